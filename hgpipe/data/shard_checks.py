"""Checks of a shards folder's files against the schema before anything is read from them.

Why: a manifest or a shard may come from another config, another tool, a damaged disk or
a stranger, and every reader used to trust it: float64 images or int64 heatmaps trained
on silently cast values, a manifest that is a JSON list crashed every command with
``AttributeError``, an ``images`` group instead of a dataset too, and a shard declaring
10**12 samples in a few KB asked for terabytes. Each check here ends in one line
(:class:`ShardError`) naming the file and the field, and reads only metadata: what a
dataset declares is compared with the schema (:mod:`hgpipe.data.schema`) and with the
bytes the file really has before any of it is allocated.
"""
import contextlib
import numbers
import os
import re

import h5py
import numpy as np

from hgpipe.data import schema


class ShardError(ValueError):
    """A shards directory or file is missing, incomplete or of another schema."""


# zlib cannot inflate more than ~1032 bytes from one byte (deflate's longest match per
# code); a compressed dataset declaring more than this per stored byte is lying
MAX_INFLATE_RATIO = 1100
MAX_MANIFEST_BYTES = 64 << 20    # a real manifest is a few KB per thousand shards
MAX_SIDE = 4096                  # input/heatmap sides a manifest may declare
SHARD_FILE = re.compile(r"^(train|val)-\d{5,}\.h5$")   # schema.shard_name, nothing else
# the checksums a manifest entry may carry (prepare writes crc32; older manifests sha256),
# each as this many hex digits: without one, train's integrity check has nothing to verify
CHECKSUM_DIGITS = {"crc32": 8, "sha256": 64}
HEX = re.compile(r"^[0-9a-fA-F]+$")


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _require(condition, path, text):
    if not condition:
        raise ShardError("%s: %s (re-run 'hgpipe prepare')" % (path, text))


def check_manifest(manifest, path):
    """Raise ShardError unless ``manifest`` (parsed JSON) has every field readers use,
    of the right type; shard entries name files inside the folder, each once, with a
    well-formed checksum (:data:`CHECKSUM_DIGITS`)."""
    _require(isinstance(manifest, dict), path,
             "manifest is a JSON %s, not an object" % type(manifest).__name__)
    version = manifest.get("schema_version")
    if version != schema.SCHEMA_VERSION:
        raise ShardError("%s: shard schema version %s, this hgpipe reads %d (re-run prepare)"
                         % (path, _short(version), schema.SCHEMA_VERSION))
    for key in ("input_size", "heatmap_size"):
        value = manifest.get(key)
        _require(_is_int(value) and 0 < value <= MAX_SIDE, path,
                 "manifest %s is %s, expected an integer in 1..%d"
                 % (key, _short(value), MAX_SIDE))
    _require(manifest["input_size"] == 4 * manifest["heatmap_size"], path,
             "manifest heatmap_size %d is not input_size %d / 4"
             % (manifest["heatmap_size"], manifest["input_size"]))
    scale = manifest.get("heatmap_scale")
    _require(isinstance(scale, numbers.Real) and not isinstance(scale, bool)
             and np.isfinite(scale) and scale > 0, path,
             "manifest heatmap_scale is %s, expected a positive number" % _short(scale))
    try:
        schema.keypoints_of(manifest)
    except ValueError as exc:
        raise ShardError("%s: manifest keypoints: %s (re-run 'hgpipe prepare')" % (path, exc))
    side = schema.context_side(manifest)
    _require(side is None or (_is_int(side) and 0 < side <= MAX_SIDE), path,
             "manifest context_side is %s, expected an integer in 1..%d"
             % (_short(side), MAX_SIDE))
    counts = manifest.get("counts")
    _require(isinstance(counts, dict) and all(_is_int(counts.get(s, 0)) and
                                              counts.get(s, 0) >= 0 for s in schema.SPLITS),
             path, "manifest counts is %s, expected sample counts per split" % _short(counts))
    config = manifest.get("config")
    _require(isinstance(config, dict) and isinstance(config.get("Prepare"), dict), path,
             "manifest has no config with a [Prepare] section")
    entries = manifest.get("shards")
    _require(isinstance(entries, list), path,
             "manifest shards is %s, expected a list" % _short(entries))
    seen = set()
    for number, entry in enumerate(entries):
        _check_entry(entry, "%s: shard entry %d" % (path, number), path)
        _require(entry["file"] not in seen, path,
                 "manifest lists %s twice" % entry["file"])
        seen.add(entry["file"])
    return manifest


def _check_entry(entry, where, path):
    _require(isinstance(entry, dict), path, "%s is not an object" % where.split(": ")[-1])
    name = entry.get("file")
    _require(isinstance(name, str) and SHARD_FILE.match(name), path,
             "manifest shard file %s is not a shard name like train-00000.h5 in the folder"
             % _short(name))
    _require(entry.get("split") in schema.SPLITS and name.startswith(entry["split"] + "-"),
             path, "manifest entry %s has split %s" % (name, _short(entry.get("split"))))
    for key in ("count", "bytes"):
        if key in entry or key == "count":
            value = entry.get(key)
            _require(_is_int(value) and value >= 0, path, "manifest entry %s has %s %s"
                     % (name, key, _short(value)))
    sums = [key for key in CHECKSUM_DIGITS if key in entry]
    _require(sums, path, "manifest entry %s has no checksum (crc32 or sha256)" % name)
    for key in sums:
        value = entry[key]
        _require(isinstance(value, str) and len(value) == CHECKSUM_DIGITS[key]
                 and HEX.match(value), path, "manifest entry %s has %s %s, expected %d hex "
                 "digits" % (name, key, _short(value), CHECKSUM_DIGITS[key]))


def check_record(record):
    """Whether a prepare record (``OUT/.records/*.json``) has the fields a rerun reads."""
    return (isinstance(record, dict) and isinstance(record.get("file"), str)
            and bool(SHARD_FILE.match(record["file"]))
            and isinstance(record.get("fingerprint"), str)
            and _is_int(record.get("bytes")) and isinstance(record.get("crc32"), str)
            and len(record["crc32"]) == CHECKSUM_DIGITS["crc32"]
            and bool(HEX.match(record["crc32"])))


_KINDS = {"f": "f", "i": "iub", "u": "iub", "b": "iub", "S": "S"}   # lossless reads


def check_datasets(path, handle, spec, count=None, exact_dtype=True):
    """Raise ShardError unless each ``spec`` field ({name: (shape, dtype, text)} from
    :func:`hgpipe.data.schema.datasets`) of the open HDF5 file ``handle`` is a dataset
    of that dtype and per-sample shape, all of one length (``count`` if given), that
    the file's bytes can hold. Returns the number of samples.

    ``exact_dtype=False`` (readers that widen every value anyway, such as the ground
    truth's float64/int64) accepts any dtype of the same kind: floats for floats,
    integers or booleans for integers."""
    file_bytes = os.path.getsize(path)
    for name, (shape, dtype, _text) in spec.items():
        try:
            link = handle.get(name, getlink=True)
            item = handle.get(name) if link is not None else None
        except (KeyError, OSError, RuntimeError, ValueError, TypeError) as exc:
            raise ShardError("%s: dataset %s cannot be opened (%s)" % (path, name, _first(exc)))
        if item is None:
            raise ShardError("%s: no dataset %r (re-run 'hgpipe prepare')" % (path, name))
        if not isinstance(item, h5py.Dataset):
            raise ShardError("%s: %s is an HDF5 %s, not a dataset (re-run 'hgpipe prepare')"
                             % (path, name, type(item).__name__.lower()))
        expected = np.dtype(dtype)
        try:
            found, declared = item.dtype, tuple(item.shape or ())
        except (OSError, RuntimeError, TypeError, ValueError) as exc:
            raise ShardError("%s: dataset %s cannot be read (%s)" % (path, name, _first(exc)))
        if found != expected and (exact_dtype or found.kind not in _KINDS[expected.kind]):
            raise ShardError("%s: dataset %s is %s, the schema says %s (re-run 'hgpipe "
                             "prepare')" % (path, name, found, expected.name))
        if len(declared) != 1 + len(shape) or declared[1:] != tuple(shape):
            raise ShardError("%s: dataset %s has shape %s, the schema says (N,) + %s for "
                             "these shards" % (path, name, declared, tuple(shape)))
        nbytes = int(np.prod(declared)) * expected.itemsize
        room = file_bytes if item.chunks is None else file_bytes * MAX_INFLATE_RATIO
        if nbytes > room:
            raise ShardError("%s: dataset %s declares %d samples (%s) but the file has %d "
                             "bytes; damaged or not a shard" % (path, name, declared[0],
                                                               _size(nbytes), file_bytes))
        if count is None:
            count = declared[0]
        elif declared[0] != count:
            raise ShardError("%s: dataset %s has %d samples, expected %d"
                             % (path, name, declared[0], count))
    return count


def open_checked(path, split, input_size, heatmap_size, context_side=None, keypoints=None,
                 fields=None, count=None):
    """Open a shard read-only with its ``fields`` (all of the split's schema if None)
    checked; the caller closes it. Raises ShardError naming the file and the field.
    ``context_side``: train shards of device geometry (:func:`schema.context_side`);
    ``keypoints``: the manifest's set (:func:`schema.keypoints_of`; None: MPII)."""
    spec = schema.datasets(input_size, heatmap_size, split, context_side, keypoints)
    if fields is not None:
        spec = {name: spec[name] for name in fields}
    try:
        handle = h5py.File(path, "r")
    except (OSError, IOError, RuntimeError, ValueError) as exc:
        raise ShardError("%s: cannot read this shard (%s); check the directory with "
                         "'hgpipe inspect --verify' and rerun 'hgpipe prepare'"
                         % (path, _first(exc).split("(")[0].strip() or type(exc).__name__))
    try:
        with reading(path):
            check_datasets(path, handle, spec, count)
    except BaseException:
        handle.close()
        raise
    return handle


@contextlib.contextmanager
def reading(path, error=None):
    """Name the file in what HDF5 raises while it parses a damaged file's metadata or
    reads its data (a RuntimeError, KeyError or OSError that names nothing): one line,
    as ``error`` (default ShardError)."""
    try:
        yield
    except ShardError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
        if isinstance(exc, OSError) and getattr(exc, "filename", None):
            raise
        if isinstance(exc, ValueError) and type(exc).__module__.startswith("hgpipe"):
            raise
        raise (error or ShardError)("%s: damaged or not a shard: cannot be read (%s); "
                                    "re-run 'hgpipe prepare'" % (path, _first(exc)))


def shard_spec(manifest, entry):
    """(split, input_size, heatmap_size, context_side, keypoints) a manifest says one of
    its shards has (context_side: None unless its train shards hold device-geometry
    context crops; keypoints: the manifest's set, MPII if it records none)."""
    return (entry["split"], manifest["input_size"], manifest["heatmap_size"],
            schema.context_side(manifest), schema.keypoints_of(manifest))


def _first(exc):
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _short(value, limit=40):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _size(nbytes):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if nbytes < 1024:
            return "%.0f %s" % (nbytes, unit)
        nbytes /= 1024.0
    return "%.2f TiB" % nbytes
