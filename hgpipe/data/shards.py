"""Writing and reading shard files and the manifest (layout: :mod:`hgpipe.data.schema`).

Writes are atomic: a shard is written under a temporary name in the same directory and
renamed only when complete, so a file with a final name is always whole. Files are
written with ``track_times=False`` so the same arrays give byte-identical files (and
checksums) whoever writes them.

Checksums: the manifest stores each shard's CRC-32 (``"crc32"``, 8 hex digits). It
guards against damage, not tampering, and is ~2.5x cheaper than sha256 here (3.6 against
1.4 GB/s), which matters both when prepare writes shards and when a reader checks them.
Manifests written before it carry ``"sha256"``; both are verified.
"""
import contextlib
import hashlib
import json
import mmap
import os
import sys
import zlib

import h5py
import numpy as np

from hgpipe import atomic
from hgpipe.atomic import atomic_path
from hgpipe.data import schema, shard_checks
from hgpipe.data.shard_checks import ShardError  # re-exported: the one shard error type

MANIFEST = "manifest.json"


@contextlib.contextmanager
def _naming_the_shard(path):
    """HDF5 reports a failed write (a full disk, a size limit) as a RuntimeError or an
    OSError that does not name the file: name it, in one line."""
    try:
        yield
    except (OSError, RuntimeError) as exc:
        if isinstance(exc, OSError) and exc.filename:
            raise
        text = str(exc).strip().splitlines()
        raise ShardError("%s: cannot be written (%s)" % (
            path, text[0] if text else type(exc).__name__))


_METADATA_ROOM = 1 << 20   # HDF5's own bytes in a shard (object headers, attributes)


def reserve_space(fd, path, data_bytes):
    """Reserve a shard's disk space (its data plus room for HDF5's own bytes) before
    HDF5 places anything in the file open on ``fd``; the writer cuts the file back to
    what HDF5 used (:func:`_used_bytes`) once it is closed.

    A full disk (or a file size limit) then fails here, in one line naming ``path``,
    before anything is computed or written; and nothing HDF5 writes later can fail for
    space. That matters beyond the message: HDF5 1.12 (h5py 3.8, the Python 3.7 lane)
    crashes the process when it cannot extend a file it is closing.
    """
    size = int(data_bytes) + _METADATA_ROOM
    try:
        if hasattr(os, "posix_fallocate"):
            os.posix_fallocate(fd, 0, size)
        else:
            os.ftruncate(fd, size)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, path)


def _data_bytes(spec, count):
    """Bytes of ``count`` samples of a split's datasets as stored uncompressed."""
    return count * sum(int(np.prod(shape)) * np.dtype(dtype).itemsize
                       for shape, dtype, _ in spec.values())


def _used_bytes(h5file):
    """Where HDF5's data ends in an open file (not the reserve's end): flush, then ask."""
    h5file.flush()
    return h5file.id.get_filesize()


def _creation_options(name, compression):
    if name in ("images", "heatmaps") and compression.get(name, "none") == "gzip":
        return {"compression": "gzip", "compression_opts": 1, "shuffle": False}
    return {}


def write_shard(path, arrays, split, input_size, heatmap_size, attrs=None,
                compression=None, before_rename=None, spec=None):
    """Write one shard atomically; returns (its checksum, size in bytes).

    ``arrays`` maps every dataset name of the split's schema to an array whose first
    axis is the sample axis. ``compression`` maps "images"/"heatmaps" to gzip|none.
    ``before_rename(digest, size)`` runs once the file is complete, before it gets its
    final name (prepare records what it wrote there).
    """
    spec = spec or schema.datasets(input_size, heatmap_size, split)
    missing = set(spec) - set(arrays)
    if missing:
        raise ShardError("%s: missing datasets %s" % (path, sorted(missing)))
    count = len(arrays["images"])
    with atomic_path(path) as tmp, _naming_the_shard(path):
        with h5py.File(tmp, "w", track_order=False) as out:
            with open(tmp, "r+b") as handle:
                reserve_space(handle.fileno(), path, _data_bytes(spec, count))
            for name, (shape, dtype, text) in spec.items():
                data = np.asarray(arrays[name])
                if data.shape != (count,) + tuple(shape):
                    raise ShardError("%s: dataset %s has shape %s, expected %s" % (
                        path, name, data.shape, (count,) + tuple(shape)))
                options = _creation_options(name, compression or {})
                if options and count:
                    options["chunks"] = (1,) + tuple(shape)
                else:
                    options = {}
                out.create_dataset(name, data=data.astype(dtype, copy=False),
                                   track_times=False, **options)
            _write_attrs(out, split, count, attrs)
            used = _used_bytes(out)
        os.truncate(tmp, used)
        digest = file_crc32(tmp)
        size = os.path.getsize(tmp)
        if before_rename is not None:
            before_rename(digest, size)
    return digest, size


STREAMED_FIELDS = ("images", "heatmaps")   # the big per-sample rows (99.9% of a shard)


def streamed_fields(spec):
    """The streamed fields a shard of this spec has (context shards have no heatmaps)."""
    return tuple(name for name in STREAMED_FIELDS if name in spec)


class RowWriter(object):
    """One shard written sample by sample straight into its file, then made final.

    Why: gathering a shard's 256 KB samples in memory and handing the arrays to HDF5
    costs a copy and 67 MB of fresh memory per 256-sample shard; measured here that was
    ~0.6 ms of prepare's ~1.9 ms per sample, against ~0.09 ms for one positional write
    per row from a reused buffer. HDF5 stores an uncompressed dataset as one contiguous
    block at a fixed offset (the layout the training reader reads), so the block is
    allocated when the file is created and sample ``i`` is written at
    ``offset + i * row_bytes``; HDF5 itself never touches those bytes again. The small
    datasets and the attributes are written through h5py by :meth:`finish`.

    Use as a context manager; leaving it without :meth:`finish` (an error, a signal)
    removes the temporary file, so a final name always holds a whole shard.
    """

    def __init__(self, path, split, input_size, heatmap_size, count, spec=None):
        self.path, self.split, self.count = path, split, int(count)
        self.spec = spec or schema.datasets(input_size, heatmap_size, split)
        self.offsets, self.row_bytes = {}, {}
        self._fd = self._file = None
        self._stack = contextlib.ExitStack()
        self.tmp = self._stack.enter_context(atomic_path(path))
        try:
            self._file = h5py.File(self.tmp, "w", track_order=False)
            self._fd = os.open(self.tmp, os.O_RDWR)
            reserve_space(self._fd, self.path, _data_bytes(self.spec, self.count))
            creation = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            creation.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)   # the block exists now...
            creation.set_fill_time(h5py.h5d.FILL_TIME_NEVER)     # ...and is not zeroed
            creation.set_obj_track_times(False)
            for name in streamed_fields(self.spec):
                shape, dtype, _ = self.spec[name]
                space = h5py.h5s.create_simple((self.count,) + tuple(shape))
                with _naming_the_shard(self.path):
                    dataset = h5py.h5d.create(self._file.id, name.encode("ascii"),
                                              h5py.h5t.py_create(np.dtype(dtype)), space,
                                              dcpl=creation)
                self.offsets[name] = dataset.get_offset()
                self.row_bytes[name] = int(np.prod(shape)) * np.dtype(dtype).itemsize
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        self._close_files(quiet=True)
        if self._stack is not None:   # left without finish(): never a final name
            stack, self._stack = self._stack, None
            if exc_type is None:
                exc_type, exc = ShardError, ShardError("%s: left unfinished" % self.path)
            stack.__exit__(exc_type, exc, traceback)   # removes the temporary file
        return False

    def _close_files(self, quiet=False):
        """Close both handles; ``quiet``: a shard being abandoned, whose temporary file
        goes anyway (HDF5 may fail to close a file that could not be written)."""
        fd, handle = self._fd, self._file
        self._fd = self._file = None
        try:
            if fd is not None:
                os.close(fd)
            if handle is not None:
                with _naming_the_shard(self.path):
                    handle.close()
        except (OSError, ShardError):
            if not quiet:
                raise

    def write_row(self, name, index, row):
        """Write sample ``index`` of dataset ``name`` (``row``: one C-contiguous sample)."""
        data = memoryview(np.ascontiguousarray(row)).cast("B")
        if data.nbytes != self.row_bytes[name]:
            raise ShardError("%s: %s row of %d bytes, expected %d" % (
                self.path, name, data.nbytes, self.row_bytes[name]))
        position = self.offsets[name] + int(index) * data.nbytes
        while data.nbytes:   # a positional write may be short (signals, full disks)
            try:
                written = os.pwrite(self._fd, data, position)
            except OSError as exc:   # a full disk, a file size limit: name the shard
                raise OSError(exc.errno, exc.strerror, self.path)
            data, position = data[written:], position + written

    def read_rows(self, name, indices):
        """The rows at ``indices`` read back, as one array (for a shard that ends short)."""
        shape, dtype, _ = self.spec[name]
        out = np.empty((len(indices),) + tuple(shape), dtype)
        for row, index in zip(out, indices):
            data = memoryview(row).cast("B")
            if os.preadv(self._fd, [data], self.offsets[name] + int(index) * data.nbytes) \
                    != data.nbytes:
                raise ShardError("%s: short read of %s row %d" % (self.tmp, name, index))
        return out

    def finish(self, arrays, attrs=None, before_rename=None):
        """Write the other datasets (``arrays``, full length) and the attributes, give the
        file its final name; returns (checksum, size) like :func:`write_shard`."""
        for name, (shape, dtype, _) in self.spec.items():
            if name in STREAMED_FIELDS:
                continue
            data = np.asarray(arrays[name])
            if data.shape != (self.count,) + tuple(shape):
                raise ShardError("%s: dataset %s has shape %s, expected %s" % (
                    self.path, name, data.shape, (self.count,) + tuple(shape)))
            with _naming_the_shard(self.path):
                self._file.create_dataset(name, data=data.astype(dtype, copy=False),
                                          track_times=False)
        with _naming_the_shard(self.path):
            _write_attrs(self._file, self.split, self.count, attrs)
            used = _used_bytes(self._file)
        self._close_files()
        os.truncate(self.tmp, used)   # the reserved room HDF5 did not use goes back
        digest, size = file_crc32(self.tmp), os.path.getsize(self.tmp)
        if before_rename is not None:
            before_rename(digest, size)
        stack, self._stack = self._stack, None
        stack.close()   # the rename
        return digest, size


def _write_attrs(out, split, count, attrs):
    out.attrs["schema_version"] = schema.SCHEMA_VERSION
    out.attrs["split"] = split
    out.attrs["count"] = count
    for key, value in (attrs or {}).items():
        out.attrs[key] = value


def file_crc32(path):
    """CRC-32 of a file's bytes as 8 hex digits (read through mmap: no copy)."""
    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            return "%08x" % zlib.crc32(b"")
        with contextlib.closing(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)) as view:
            return "%08x" % (zlib.crc32(view) & 0xFFFFFFFF)


def file_sha256(path, block=1 << 22):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(block), b""):
            digest.update(chunk)
    return digest.hexdigest()


CHECKSUM_KEY = "crc32"   # the key of the checksum prepare writes, in manifest and records
CHECKSUMS = ((CHECKSUM_KEY, file_crc32), ("sha256", file_sha256))   # every key that verifies


def checksum_matches(path, entry):
    """Whether the file's checksum is its manifest ``entry``'s (CRC-32, or sha256 in
    manifests written before CRC-32)."""
    for key, checksum in CHECKSUMS:
        if key in entry:
            return checksum(path) == entry[key].lower()
    raise ShardError("%s: the manifest gives no checksum for this shard (re-run prepare)"
                     % path)


def read_shard_attrs(path):
    """The attributes of a complete shard, or None if it cannot be opened."""
    try:
        with h5py.File(path, "r") as shard:
            return dict(shard.attrs)
    except (OSError, IOError):
        return None


def load_manifest(shards_dir):
    """Read and check ``manifest.json``; errors name the directory and the problem."""
    path = os.path.join(shards_dir, MANIFEST)
    if not os.path.isdir(shards_dir):
        raise ShardError("%s: shards directory not found" % shards_dir)
    if not os.path.isfile(path):
        raise ShardError("%s: no manifest.json (run 'hgpipe prepare' to completion first)"
                         % shards_dir)
    if os.path.getsize(path) > shard_checks.MAX_MANIFEST_BYTES:
        raise ShardError("%s: %d bytes, too big for a manifest (re-run 'hgpipe prepare')"
                         % (path, os.path.getsize(path)))
    try:
        with open(path, "rb") as handle:
            manifest = json.loads(handle.read().decode("utf-8"))
    except (ValueError, RecursionError) as exc:   # UnicodeDecodeError is a ValueError
        raise ShardError("%s: manifest is not valid JSON: %s"
                         % (path, str(exc).splitlines()[0][:200] if str(exc) else
                            type(exc).__name__))
    return shard_checks.check_manifest(manifest, path)


def shard_paths(shards_dir, split, manifest=None):
    """The complete shard files of a split, in manifest order (skipping empty ones)."""
    manifest = manifest or load_manifest(shards_dir)
    entries = [s for s in manifest["shards"] if s["split"] == split and s["count"] > 0]
    paths = []
    for entry in entries:
        path = os.path.join(shards_dir, entry["file"])
        if not os.path.isfile(path):
            raise ShardError("%s: listed in the manifest but missing" % path)
        paths.append(path)
    return paths


def shard_problem(shards_dir, entry, manifest=None):
    """Why a manifest entry's file is not the one prepare wrote, or None if it is.

    With ``manifest``, its datasets are also checked against the schema for the
    manifest's sizes (metadata only). Reads the whole file (one sequential pass) only
    when its size is right.
    """
    path = os.path.join(shards_dir, entry["file"])
    if not os.path.isfile(path):
        return "missing"
    size = os.path.getsize(path)
    if "bytes" in entry and size != entry["bytes"]:
        return "truncated or altered (%d bytes, the manifest says %d)" % (size, entry["bytes"])
    if manifest is not None and entry["count"] > 0:
        try:
            shard_checks.open_checked(path, *shard_checks.shard_spec(manifest, entry),
                                      count=entry["count"]).close()
        except ShardError as exc:
            return str(exc)[len(path) + 2:] if str(exc).startswith(path) else str(exc)
    if not checksum_matches(path, entry):
        return "checksum differs from the manifest (damaged)"
    return None


def damaged_shards(shards_dir, manifest=None):
    """[(path, problem)] for every manifest shard that is missing or damaged (and the
    crowd regions' file, :data:`hgpipe.data.schema.CROWD_FILE`, when the manifest names
    one)."""
    manifest = manifest or load_manifest(shards_dir)
    found = []
    for entry in manifest["shards"]:
        problem = shard_problem(shards_dir, entry, manifest)
        if problem:
            found.append((os.path.join(shards_dir, entry["file"]), problem))
    crowd = manifest.get("crowd")
    if isinstance(crowd, dict) and crowd.get("file") == schema.CROWD_FILE:
        problem = shard_problem(shards_dir, crowd)
        if problem:
            found.append((os.path.join(shards_dir, schema.CROWD_FILE), problem))
    return found


MAX_CROWD_BYTES = 256 << 20   # COCO val2017's 1.5k crowd regions, without masks: ~1 MB


def write_crowd(out_dir, regions):
    """Write the crowd regions' file atomically; returns its manifest entry."""
    path = os.path.join(out_dir, schema.CROWD_FILE)
    atomic.write_json(path, {"annotations": list(regions)})
    return {"file": schema.CROWD_FILE, "count": len(regions),
            "bytes": os.path.getsize(path), CHECKSUM_KEY: file_crc32(path)}


def _crowd_problem(regions, num_joints):
    """Why a parsed crowd file is not what prepare writes (schema doc), or None."""
    if not isinstance(regions, dict) or not isinstance(regions.get("annotations"), list):
        return "expected an object with an 'annotations' list"
    for k, region in enumerate(regions["annotations"]):
        where = "annotations[%d]" % k
        if not isinstance(region, dict):
            return "%s is not an object" % where
        for key in ("id", "image_id", "category_id", "num_keypoints"):
            value = region.get(key)
            if not shard_checks._is_int(value):
                return "%s: %s must be an integer, got %s" % (where, key,
                                                              shard_checks._short(value))
        for key, size in (("bbox", 4), ("keypoints", 3 * num_joints), ("area", None)):
            value = region.get(key)
            values = [value] if size is None else value
            if not isinstance(values, list) or (size is not None and len(values) != size) \
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                               and np.isfinite(v) for v in values):
                return "%s: %s must be %s, got %s" % (
                    where, key, "a finite number" if size is None else
                    "%d finite numbers" % size, shard_checks._short(value))
    return None


def load_crowd(shards_dir, manifest):
    """The crowd regions a manifest names (a list of COCO-format dicts), [] when it names
    none. A missing, damaged or malformed file: one ShardError line naming it."""
    entry = manifest.get("crowd")
    if entry is None:
        return []
    path = os.path.join(shards_dir, schema.CROWD_FILE)
    if not isinstance(entry, dict) or entry.get("file") != schema.CROWD_FILE or \
            not isinstance(entry.get(CHECKSUM_KEY), str):
        raise ShardError("%s: manifest crowd entry is %s, expected {'file': %r, %r: ...} "
                         "(re-run 'hgpipe prepare')" % (os.path.join(shards_dir, MANIFEST),
                                                        shard_checks._short(entry),
                                                        schema.CROWD_FILE, CHECKSUM_KEY))
    problem = shard_problem(shards_dir, entry)
    if problem is None and os.path.getsize(path) > MAX_CROWD_BYTES:
        problem = "%d bytes, too big for crowd regions" % os.path.getsize(path)
    if problem is None:
        try:
            with open(path, "rb") as handle:
                regions = json.loads(handle.read().decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            problem = "not valid JSON: %s" % (str(exc).splitlines()[0][:200] if str(exc)
                                              else type(exc).__name__)
        else:
            problem = _crowd_problem(regions, schema.keypoints_of(manifest).num_joints)
    if problem:
        raise ShardError("%s: crowd regions: %s; re-run 'hgpipe prepare'"
                         % (path, problem))
    return regions["annotations"]


def damage_message(damaged):
    """One line for [(path, problem)]: the first damaged shard, how many more, the fix."""
    path, problem = damaged[0]
    more = " (and %d more shards)" % (len(damaged) - 1) if len(damaged) > 1 else ""
    return ("%s: %s%s; rerun the same 'hgpipe prepare' command to rebuild damaged shards"
            % (path, problem, more))


def verify_checksums(shards_dir, manifest=None):
    """Paths whose checksum differs from the manifest's (empty list: all intact)."""
    return [path for path, _problem in damaged_shards(shards_dir, manifest)]
