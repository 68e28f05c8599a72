"""``hgpipe prepare``: person records -> augmented crops + heatmaps in HDF5 shards.

Why offline: an online loader spends milliseconds of CPU per sample (JPEG decode, warp,
heatmaps; ``hgpipe bench``'s online row measures it), which starves an accelerator;
here that work is done once, each image decoded once for all its persons and variants,
and training only copies bytes.

Determinism: the shard plan depends only on the records and the config, and each
variant's augmentation only on (seed, image, person, variant), so the arrays are
identical whatever ``--workers``. Resume: a shard file with its final name is complete
(written to a temporary name, then renamed), and carries a fingerprint of its plan; a
rerun keeps every shard whose fingerprint matches and builds only the rest.
"""
import collections
import contextlib
import hashlib
import json
import os
import sys
from typing import List, NamedTuple

import numpy as np

from hgpipe import __version__, atomic
from hgpipe.codec import HEATMAP_SCALE
from hgpipe.data import plausible, schema, shard_records, shards
from hgpipe.data.augment import preset_of
from hgpipe.data.context import context_geometry, make_context
from hgpipe.data.images import (ImageError, ImageLocator, ImageNameError, ImageOutsideError,
                                decode_image)
from hgpipe.data.readers import (find_annotation_file, read_annotation_files,
                                 validate_records)
from hgpipe.data.workers import run_pool
from hgpipe.data.transforms import (PLAIN, Augmentation, crop_zoom, decode_reduction,
                                    make_sample, person_rng, sample_augmentation)
from hgpipe.joints import MPII
from hgpipe.lock import folder_lock


SKIPPED_FILE = "skipped.json"


class PrepareError(ValueError):
    """prepare cannot go on (nothing usable, or the output holds other shards)."""


class SkipKind(object):
    """Why a person is left out of the shards: the ``kind`` of each skipped.json entry."""
    INVALID_ANNOTATION = "invalid annotation"
    IMAGE_NAME_TOO_LONG = "image name too long"
    IMAGE_NAME_INVALID = "image name invalid"
    IMAGE_OUTSIDE_FOLDER = "image outside the images folder"
    IMAGE_NOT_FOUND = "image not found"
    IMAGE_UNREADABLE = "image unreadable"
    IMPLAUSIBLE_BOX = plausible.SKIP_REASON


class Skip(NamedTuple):
    """One person left out: who, why (a :class:`SkipKind` value), the one-line reason
    (naming the file where there is one) and its detail without the file or prefix."""
    person: str
    kind: str
    reason: str
    detail: str

    def summary_key(self):
        """What ``skipped_by_reason`` counts it under: a missing image or an implausible
        box by kind, anything else by its detail ("empty file", "no annotated joints")."""
        if self.kind in (SkipKind.IMAGE_NOT_FOUND, SkipKind.IMPLAUSIBLE_BOX,
                         SkipKind.IMAGE_OUTSIDE_FOLDER):
            return self.kind
        return self.detail


def invalid_annotation(record, why):
    """The Skip of a record :func:`hgpipe.data.readers.validate_records` refused."""
    return Skip(record.describe(), SkipKind.INVALID_ANNOTATION, "invalid annotation: " + why,
                why)


def _stored_skip(item):
    """A Skip from a shard's ``skipped`` attribute; shards written before skip kinds
    existed hold [person, reason] pairs (an unreadable image or an implausible box)."""
    if len(item) == 4:
        return Skip(*item)
    person, reason = item
    if reason.startswith(plausible.SKIP_REASON):
        return Skip(person, SkipKind.IMPLAUSIBLE_BOX, reason,
                    reason[len(plausible.SKIP_REASON) + 2:])
    return Skip(person, SkipKind.IMAGE_UNREADABLE, reason, reason.split(": ", 1)[-1])


class ImageJob(NamedTuple):
    image_name: str
    path: str
    records: list  # PersonRecords of this image, in output order


class ShardTask(NamedTuple):
    split: str
    index: int
    jobs: List[ImageJob]
    samples: int       # planned samples (persons x variants)
    fingerprint: str   # hash of everything that determines the shard's content

    @property
    def file_name(self):
        return schema.shard_name(self.split, self.index)


def _record_key(record):
    key = [record.image_name, record.person_index, record.annolist_index,
           np.round(record.joints, 4).tolist(), record.annotated.tolist(),
           np.round(record.center, 4).tolist(), round(record.scale, 6)]
    if record.keypoints.metric == "oks":   # stored in its val shards (schema.datasets)
        key += [repr(float(record.area)), int(record.image_id), int(record.annotation_id)]
    return key


def records_keypoints(records, where):
    """The one keypoint set of ``records`` (MPII for none): a shards folder holds one
    set, so records of two (an LSP and an MPII file given together) are refused in one
    line naming ``where`` and the first record of the second set."""
    found = records[0].keypoints if records else MPII
    for record in records:
        if record.keypoints != found:
            raise PrepareError(
                "%s: persons of two keypoint sets (%s, then %s at %s); prepare one set "
                "per shards folder" % (where, found.name, record.keypoints.name,
                                       record.describe()))
    return found


def _fingerprint(split, jobs, settings):
    payload = json.dumps([schema.SCHEMA_VERSION, split, settings,
                          [[_record_key(r) for r in job.records] for job in jobs]],
                         sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


TARGET_DEFAULTS = {"gaussian_centre": "float", "gaussian_window": 0,
                   "joint_weight": "supervised", "crop": "hourglass", "gaussian_fwhm": 0.0}


def shard_settings(cfg, keypoints=None):
    """The config values that determine shard contents (part of every fingerprint), and
    the records' keypoint set when it is not MPII (MPII shards keep the fingerprints
    they had before sets were recorded)."""
    data, prep = cfg["DataSetHG"], cfg["Prepare"]
    settings = {"input_size": data["img_size"], "heatmap_size": data["hm_size"]}
    if keypoints is not None and keypoints != MPII:
        settings["keypoints"] = schema.keypoints_entry(keypoints)
    settings.update((k, v) for k, v in prep.items() if k != "shard_size")
    if settings.get("geometry") == "offline":   # the default: fingerprints as before it
        del settings["geometry"]
    # target settings added later count only when set, so shards prepared before they
    # existed keep their fingerprints (same contents) and are not rebuilt
    for key, default in TARGET_DEFAULTS.items():
        if settings[key] == default:
            del settings[key]
    if settings.get("geometry") == "device" and settings.get("joint_weight") == "visible":
        # context shards made before their weights followed joint_weight held 1 for
        # occluded joints: this key makes their fingerprint differ, so they are rebuilt
        settings["context_weights"] = "visible"
    return settings


def settings_keypoints(settings):
    """The keypoint set of shard settings (:func:`shard_settings`)."""
    return schema.keypoints_of(settings)


def context_of(settings):
    """The :class:`hgpipe.data.context.ContextGeometry` of ``[Prepare] geometry =
    device`` shard settings, None for offline variants (the default)."""
    if settings.get("geometry", "offline") != "device":
        return None
    return context_geometry(preset_of(settings), settings["input_size"])


def samples_per_person(settings, split):
    """Train: ``variants`` crops per person offline, one context crop with device
    geometry; val: one plain crop."""
    if split != "train" or context_of(settings) is not None:
        return 1
    return settings["variants"]


def _spec(settings, split):
    context = context_of(settings) if split == "train" else None
    return schema.datasets(settings["input_size"], settings["heatmap_size"], split,
                           context.side if context else None, settings_keypoints(settings))


def plan_shards(records, cfg, locator, keypoints=None):
    """Group records into shard tasks; returns (tasks, [Skip, ...]).

    ``keypoints``: the records' one set (:func:`records_keypoints`, found if None).

    Train: images in a seeded random order (so consecutive samples are unrelated and a
    reader may take contiguous slices), packed into shards of about ``shard_size``
    samples. Val: persons in their given order (the canonical Tompson order, so val
    shards line up with published ground-truth files), one plain crop each.
    """
    prep = cfg["Prepare"]
    if keypoints is None:
        keypoints = records_keypoints(records, "records")
    settings = shard_settings(cfg, keypoints)
    skipped = []
    by_split = {"train": collections.OrderedDict(), "val": []}
    for record in records:
        # the name comes from the annotation: it must stay inside the images folder and
        # be a valid UTF-8 file name (one odd name is skipped, never the whole run)
        try:
            path = locator.find(record.image_name)
        except (ImageOutsideError, ImageNameError) as exc:
            kind = SkipKind.IMAGE_OUTSIDE_FOLDER if isinstance(exc, ImageOutsideError) \
                else SkipKind.IMAGE_NAME_INVALID
            skipped.append(Skip(record.describe(), kind, str(exc), exc.problem))
            continue
        if len(record.image_name.encode("utf-8")) > schema.MAX_IMAGE_NAME:
            reason = "image name longer than %d bytes" % schema.MAX_IMAGE_NAME
            skipped.append(Skip(record.describe(), SkipKind.IMAGE_NAME_TOO_LONG, reason,
                                reason))
            continue
        if path is None:
            skipped.append(Skip(record.describe(), SkipKind.IMAGE_NOT_FOUND,
                                "image not found in %s" % locator.images_dir,
                                locator.images_dir))
            continue
        if record.is_validation:
            val = by_split["val"]
            if val and val[-1].image_name == record.image_name:
                val[-1].records.append(record)
            else:
                val.append(ImageJob(record.image_name, path, [record]))
        else:
            job = by_split["train"].setdefault(
                record.image_name, ImageJob(record.image_name, path, []))
            job.records.append(record)

    tasks = []
    for split in schema.SPLITS:
        jobs = by_split[split]
        if split == "train":
            jobs = [jobs[name] for name in sorted(jobs)]
            order = np.random.RandomState(prep["seed"]).permutation(len(jobs))
            jobs = [jobs[i] for i in order]
        per_person = samples_per_person(settings, split)
        current, count = [], 0
        for job in jobs:
            current.append(job)
            count += len(job.records) * per_person
            if count >= prep["shard_size"]:
                tasks.append(ShardTask(split, len([t for t in tasks if t.split == split]),
                                       current, count, _fingerprint(split, current, settings)))
                current, count = [], 0
        if current:
            tasks.append(ShardTask(split, len([t for t in tasks if t.split == split]),
                                   current, count, _fingerprint(split, current, settings)))
    return tasks, skipped


def _augmentations(record, split, prep):
    if split == "val":
        return [PLAIN]
    context = context_of(prep)
    if context is not None:   # the context crop: its zoom is density / box
        return [Augmentation(scale=1.0 / context.density)]
    augs = []
    for variant in range(prep["variants"]):
        if variant == 0 and prep["first_variant_plain"]:
            augs.append(PLAIN)
        else:
            rng = person_rng(prep["seed"], record.image_name, record.person_index, variant)
            augs.append(sample_augmentation(rng, prep))
    return augs


def build_shard(task, settings, out_dir, progress=None):
    """Make and write one shard; returns its manifest entry (with its skipped persons).

    With the default uncompressed storage each sample's crop and heatmaps go from one
    reused buffer straight to their place in the file (:class:`shards.RowWriter`); gzip
    storage gathers the shard in memory and writes it through h5py. A shard that ends
    short (unreadable image, implausible box) is gathered and written the second way.
    """
    input_size, heatmap_size = settings["input_size"], settings["heatmap_size"]
    compression = {"images": settings["image_compression"],
                   "heatmaps": settings["heatmap_compression"]}
    path = os.path.join(out_dir, task.file_name)

    def record(digest, size):
        shard_records.write_record(out_dir, task.file_name, digest, size, task.fingerprint)

    def attrs(skipped):
        return {"fingerprint": task.fingerprint, "hgpipe_version": __version__,
                "skipped": json.dumps(skipped),
                "settings": json.dumps(settings, sort_keys=True)}

    spec = _spec(settings, task.split)
    streamed = shards.streamed_fields(spec)
    if all(compression[name] == "none" for name in streamed):
        with shards.RowWriter(path, task.split, input_size, heatmap_size,
                              task.samples, spec=spec) as writer:
            arrays, count, skipped, kept = _make_samples(task, settings, progress, writer)
            if kept is None:
                digest, size = writer.finish(arrays, attrs(skipped), before_rename=record)
                return _entry(task, count, digest, size, skipped)
            arrays.update((name, writer.read_rows(name, kept)) for name in streamed)
    else:
        arrays, count, skipped, kept = _make_samples(task, settings, progress)
        if kept is not None:
            arrays.update((name, arrays[name][kept]) for name in streamed)
    if kept is not None:
        arrays.update((name, array[kept]) for name, array in arrays.items()
                      if name not in streamed)
    digest, size = shards.write_shard(path, arrays, task.split, input_size, heatmap_size,
                                      attrs=attrs(skipped), compression=compression,
                                      before_rename=record, spec=spec)
    return _entry(task, count, digest, size, skipped)


def _make_samples(task, settings, progress=None, writer=None):
    """Every sample of a shard task, each in a random slot of the shard (train), so that
    any contiguous slice of it is a random batch.

    Crops and heatmaps go to ``writer`` (a :class:`shards.RowWriter`) when given, else
    into the returned arrays with the other datasets. Returns (arrays, samples made,
    skipped persons, kept): ``kept`` is None when every slot was filled, else the sorted
    slots that were (the shard must be compacted to them, keeping the random order).
    """
    input_size, heatmap_size = settings["input_size"], settings["heatmap_size"]
    spec = _spec(settings, task.split)
    streamed = shards.streamed_fields(spec)
    context = context_of(settings) if task.split == "train" else None
    in_memory = [name for name in spec if writer is None or name not in streamed]
    arrays = {name: np.zeros((task.samples,) + tuple(spec[name][0]), dtype=spec[name][1])
              for name in in_memory}
    rows = {} if writer is None else {
        name: np.empty(spec[name][0], dtype=spec[name][1]) for name in streamed}
    skipped, n = [], 0
    slots = np.arange(task.samples)
    if task.split == "train":
        slots = np.random.RandomState(int(task.fingerprint[:8], 16)).permutation(task.samples)
    per_person = samples_per_person(settings, task.split)
    target = {"centre": settings.get("gaussian_centre", TARGET_DEFAULTS["gaussian_centre"]),
              "window": settings.get("gaussian_window", TARGET_DEFAULTS["gaussian_window"]),
              "joint_weight": settings.get("joint_weight", TARGET_DEFAULTS["joint_weight"]),
              "crop": settings.get("crop", TARGET_DEFAULTS["crop"])}
    for job in task.jobs:
        augmentations = [(record, _augmentations(record, task.split, settings))
                         for record in job.records]
        reduction = 1 if target["crop"] == "seed_box" else decode_reduction(
            [crop_zoom(r, aug, input_size) for r, augs in augmentations for aug in augs])
        try:
            image = decode_image(job.path, reduction)
        except ImageError as exc:
            skipped.extend(Skip(r.describe(), SkipKind.IMAGE_UNREADABLE, str(exc), exc.problem)
                           for r in job.records)
            if progress is not None:
                progress.put(len(job.records) * per_person)
            continue
        done = 0
        for record, augs in augmentations:
            # the size of the full image, as decoded at 1/reduction
            problem = plausible.box_problem(record.center, record.scale,
                                            image.shape[1] * reduction,
                                            image.shape[0] * reduction)
            if problem:
                skipped.append(Skip(record.describe(), SkipKind.IMPLAUSIBLE_BOX, "%s: %s" % (
                    plausible.SKIP_REASON, problem), problem))
                if progress is not None:
                    progress.put(len(augs))
                continue
            for aug in augs:
                slot = slots[n]
                # the crop and the stored heatmaps are made in place: in their row of
                # the arrays, or in the reused row buffers the writer writes out
                direct = rows or {name: arrays[name][slot] for name in streamed}
                if context is not None:
                    sample = make_context(image, record, input_size, context, reduction,
                                          direct["images"], target["joint_weight"])
                else:
                    sample = make_sample(image, record, aug, input_size, heatmap_size,
                                         settings["sigma"], reduction, HEATMAP_SCALE, direct,
                                         **target)
                sample["image_name"] = record.image_name.encode("utf-8")
                sample["annolist_index"] = record.annolist_index
                sample["person_index"] = record.person_index
                if task.split == "val":
                    sample["gt_joints"] = record.joints
                    sample["gt_annotated"] = record.annotated
                    sample["head_normalizer"] = record.head_normalizer()
                    sample["area"] = record.area   # only in the spec of oks sets
                    sample["image_id"] = record.image_id
                    sample["annotation_id"] = record.annotation_id
                for name in in_memory:
                    if name not in direct:
                        arrays[name][slot] = sample[name]
                for name, row in rows.items():
                    writer.write_row(name, slot, row)
                n += 1
                done += 1
        if progress is not None:
            progress.put(done)
    kept = None if n == task.samples else np.sort(slots[:n])
    return arrays, n, skipped, kept


def _entry(task, count, digest, size, skipped):
    return {"file": task.file_name, "split": task.split, "count": int(count),
            shards.CHECKSUM_KEY: digest, "bytes": int(size), "fingerprint": task.fingerprint,
            "skipped": skipped}


def existing_entry(task, out_dir, previous=None, on_rebuild=None):
    """Manifest entry of an already complete shard for this task, else None.

    Complete means: the bytes prepare recorded writing for this task's plan
    (:mod:`hgpipe.data.shard_records`, or ``previous``: the folder's last manifest).
    A shard of this plan that differs (damaged, truncated) or has no record is removed
    and ``on_rebuild(path, why)`` called: it is rebuilt, never blessed as it is.
    Raises PrepareError if a shard with this name holds something else.
    """
    path = os.path.join(out_dir, task.file_name)
    if not os.path.exists(path):
        return None
    record = shard_records.find_record(out_dir, task.file_name, previous)
    attrs = shards.read_shard_attrs(path)
    if record is None or record.get("fingerprint") != task.fingerprint:
        if attrs is None:
            raise PrepareError("%s: exists but cannot be read (damaged?); use --overwrite "
                               "to rebuild it" % path)
        if attrs.get("fingerprint") != task.fingerprint:
            raise PrepareError(
                "%s: holds a shard of a different dataset or config; use a new --out "
                "directory or --overwrite" % path)
        problem = "no record of prepare writing it to the end"
    else:
        problem = shards.shard_problem(out_dir, record)
        if problem is None:
            digest = record.get(shards.CHECKSUM_KEY) or shards.file_crc32(path)
            return _entry(task, int(attrs["count"]), digest, os.path.getsize(path),
                          [_stored_skip(item) for item in json.loads(attrs["skipped"])])
    if on_rebuild is not None:
        on_rebuild(path, problem)
    os.remove(path)
    return None


@contextlib.contextmanager
def _opencv_threads_stopped():
    """Stop this process's OpenCV thread pool while workers are forked from it.

    OpenCV's pool does not survive ``fork``: once this process has run a parallel cv2
    call (a resize, a warp: any notebook or test that touched an image first), a forked
    worker's first ``cv2.setNumThreads`` waits forever for threads that exist only here,
    and prepare hangs with all workers idle. One thread here means no pool threads to
    inherit; this process only waits while the workers run, and gets its setting back.
    """
    import cv2
    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def _worker_init():
    import cv2
    cv2.setNumThreads(1)


def _run_task(args, progress):
    task, settings, out_dir = args
    return build_shard(task, settings, out_dir, progress)


def run_tasks(tasks, settings, out_dir, workers, on_progress=None, on_done=None):
    """Build shards, in this process or in workers (:mod:`hgpipe.data.workers`: they die
    with this process); calls on_progress(samples) as it goes, on_done(entry) per shard."""
    if workers > 1:
        with _opencv_threads_stopped():
            return run_pool(_run_task, [(t, settings, out_dir) for t in tasks], workers,
                            _worker_init, on_progress, on_done)
    _worker_init()

    class _Direct(object):
        def put(self, n):
            if on_progress:
                on_progress(n)
    entries = []
    for task in tasks:
        entry = build_shard(task, settings, out_dir, _Direct())
        entries.append(entry)
        if on_done:
            on_done(entry)
    return entries


def summarize_skipped(skips):
    """Counts of skipped persons by :meth:`Skip.summary_key`."""
    return collections.Counter(skip.summary_key() for skip in skips)


def write_manifest(out_dir, cfg, entries, skips, annotation_file, sources, keypoints=None,
                   crowd=()):
    """``manifest.json`` and ``skipped.json`` (every Skip: person, kind, reason).
    ``keypoints``: the shards' set (MPII if None), recorded as its JSON. An ``oks`` set
    also gets ``crowd.json``, its val images' crowd regions ``crowd`` (COCO-format
    dicts, :data:`hgpipe.data.schema.CROWD_FILE`), named in the manifest; any other set
    none (a stale one of an earlier run is removed)."""
    counts = {split: sum(e["count"] for e in entries if e["split"] == split)
              for split in schema.SPLITS}
    entries = sorted(entries, key=lambda e: e["file"])
    manifest = {
        "schema_version": schema.SCHEMA_VERSION,
        "hgpipe_version": __version__,
        "annotation_file": " + ".join(os.path.basename(p) for p in (
            [annotation_file] if isinstance(annotation_file, str) else annotation_file)),
        "sources": sources,
        "counts": counts,
        "input_size": cfg["DataSetHG"]["img_size"],
        "heatmap_size": cfg["DataSetHG"]["hm_size"],
        "heatmap_scale": HEATMAP_SCALE,
        "keypoints": schema.keypoints_entry(keypoints or MPII),
        "geometry": cfg["Prepare"]["geometry"],
        "config": cfg.as_dict(),
        "shards": [{k: v for k, v in e.items() if k != "skipped"} for e in entries],
        "skipped_count": len(skips),
        "skipped_by_reason": dict(summarize_skipped(skips)),
    }
    context = context_of(shard_settings(cfg, keypoints))
    if context is not None:
        manifest.update(context_side=context.side, context_density=context.density)
    crowd_path = os.path.join(out_dir, schema.CROWD_FILE)
    if (keypoints or MPII).metric == "oks":
        manifest["crowd"] = shards.write_crowd(out_dir, crowd)
    elif os.path.exists(crowd_path):
        os.remove(crowd_path)
    atomic.write_json(os.path.join(out_dir, shards.MANIFEST), manifest)
    atomic.write_json(os.path.join(out_dir, SKIPPED_FILE),
                      [{"person": s.person, "kind": s.kind, "reason": s.reason} for s in skips])
    return manifest


# ------------------------------------------------------------------ the whole command
def _print(line, err=False):
    print(line, file=sys.stderr if err else sys.stdout)


class _NoProgress(object):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n):
        pass


def prepare_dataset(cfg, mpii_dir, out_dir, annotations=None, workers=1, overwrite=False,
                    echo=_print, progress=None):
    """``hgpipe prepare``: annotations + images -> shards, manifest.json and skipped.json.

    The whole policy: read and validate the records, skip what cannot be used (each
    :class:`Skip` typed by :class:`SkipKind`), keep every complete shard of the same plan
    (resume), refuse or (``overwrite``) replace shards of another plan, build the rest
    on ``workers`` processes, write the manifest. ``echo(line, err=False)`` reports as it
    goes; ``progress(total)`` gives a context manager with ``update(samples)`` (a tqdm
    bar). Returns the manifest; raises :class:`PrepareError` when nothing usable is left.
    """
    if not os.path.isdir(mpii_dir):
        raise ValueError("%s: dataset folder not found" % mpii_dir)
    if isinstance(annotations, (list, tuple)):
        paths = list(annotations) or [find_annotation_file(mpii_dir)]
    else:
        paths = [annotations or find_annotation_file(mpii_dir)]
    if len(set(paths)) != len(paths):
        raise ValueError("%s: the same --annotations file is given twice"
                         % [p for p in paths if paths.count(p) > 1][0])
    # several files (e.g. MMPose's train and val JSONs): read in order, a person listed
    # in two files is kept from the first (readers.read_annotation_files)
    notes, crowd = [], []
    records, duplicates = read_annotation_files(paths, notes, crowd)
    for line in notes:
        echo(line)
    for path, dropped in duplicates.items():
        echo("%s: %d persons already read from an earlier --annotations file; the first "
             "file's record kept" % (path, dropped))
    return prepare_records(cfg, records, mpii_dir, out_dir, paths, workers, overwrite, echo,
                           progress, crowd=crowd)


def prepare_records(cfg, records, dataset_dir, out_dir, annotation_files=("(records)",),
                    workers=1, overwrite=False, echo=_print, progress=None, crowd=()):
    """prepare's policy from person records on (:func:`prepare_dataset` after reading
    its files; a caller with records of its own, from
    :func:`hgpipe.data.records.make_record`, starts here). ``dataset_dir`` holds the
    ``images/`` folder; ``annotation_files`` name the records' sources in messages and
    the manifest. The records' keypoint set (one per folder) sizes and names the shards.
    ``crowd``: the val images' crowd regions of an ``oks`` set (:func:`write_manifest`).
    """
    paths = list(annotation_files)
    mpii_dir = dataset_dir
    annotation_file = " + ".join(paths)
    keypoints = records_keypoints(records, annotation_file)
    good, invalid = validate_records(records)
    skips = [invalid_annotation(record, why) for record, why in invalid]
    n_val = sum(1 for r in good if r.is_validation)
    echo("read %d persons from %s: %d train, %d val, %d invalid" % (
        len(records), annotation_file, len(good) - n_val, n_val, len(invalid)))

    images_dir = os.path.join(mpii_dir, "images")
    if not os.path.isdir(images_dir):
        raise ValueError("%s: no images/ folder" % mpii_dir)
    tasks, unplanned = plan_shards(good, cfg, ImageLocator(images_dir), keypoints)
    skips += unplanned
    missing = sum(1 for s in unplanned if s.kind == SkipKind.IMAGE_NOT_FOUND)
    if missing:
        echo("%d persons skipped: their image is not in %s" % (missing, images_dir))
    outside = sum(1 for s in unplanned if s.kind == SkipKind.IMAGE_OUTSIDE_FOLDER)
    if outside:
        echo("%d persons skipped: their image name or symlink leads outside %s" % (
            outside, images_dir), err=True)
    if not tasks:
        raise PrepareError("%s: no usable person (all %d skipped); see the reasons above"
                           % (annotation_file, len(skips)))

    with folder_lock(out_dir):  # one writer per folder, for the whole run
        return _write_shards(cfg, out_dir, tasks, skips, paths, mpii_dir,
                             workers, overwrite, echo, progress, keypoints, crowd)


def _write_shards(cfg, out_dir, tasks, skips, annotation_file, mpii_dir, workers,
                  overwrite, echo, progress, keypoints=MPII, crowd=()):
    shard_records.remove_leftovers(out_dir)
    if overwrite:  # nothing of the old config stays, not even its manifest
        shard_records.remove_other_shards(out_dir, set(t.file_name for t in tasks))
    entries, todo = complete_and_pending(tasks, out_dir, overwrite, echo)
    if entries:
        echo("resuming: %d of %d shards already complete" % (len(entries), len(tasks)))
    with (progress or (lambda total: _NoProgress()))(sum(t.samples for t in todo)) as bar:
        try:
            entries += run_tasks(todo, shard_settings(cfg, keypoints), out_dir,
                                 min(workers, max(1, len(todo))), on_progress=bar.update)
        except BaseException:
            # the workers are gone (stopped and joined); what they were writing is
            # half a shard under a temporary name: remove it now, not at the next run
            shard_records.remove_leftovers(out_dir)
            raise
    for entry in entries:
        skips += entry["skipped"]
    _report_unreadable(skips, echo)
    manifest = write_manifest(out_dir, cfg, entries, skips, annotation_file,
                              {"mpii": os.path.abspath(mpii_dir)}, keypoints, crowd)
    counts = manifest["counts"]
    echo("wrote %d train + %d val samples in %d shards to %s" % (
        counts["train"], counts["val"], len(manifest["shards"]), out_dir))
    if skips:
        echo("skipped %d persons (details in %s):" % (
            len(skips), os.path.join(out_dir, SKIPPED_FILE)))
        for reason, n in sorted(manifest["skipped_by_reason"].items(), key=lambda x: -x[1]):
            echo("  %7d  %s" % (n, reason))
    if counts["train"] + counts["val"] == 0:
        raise PrepareError("%s: no usable samples were written" % out_dir)
    return manifest


def complete_and_pending(tasks, out_dir, overwrite=False, echo=_print):
    """Resume policy: (manifest entries of the shards already complete, tasks still to
    build). A shard that is not what prepare wrote for it is rebuilt (see
    :func:`existing_entry`); a shard file of another plan is an error, or with
    ``overwrite`` removed and rebuilt."""
    previous = shard_records.previous_manifest(out_dir)
    if overwrite and previous is not None:
        os.remove(os.path.join(out_dir, shards.MANIFEST))
    entries, todo = [], []
    for task in tasks:
        try:
            entry = existing_entry(task, out_dir, previous, on_rebuild=lambda path, why:
                                   echo("rebuilding %s: %s" % (path, why), err=True))
        except PrepareError:
            if not overwrite:
                raise
            os.remove(os.path.join(out_dir, task.file_name))
            entry = None
        if entry is None:
            todo.append(task)
        else:
            entries.append(entry)
    return entries, todo


def _report_unreadable(skips, echo, shown=20):
    """Unreadable images are worth a line each on stderr (the first ``shown``)."""
    unreadable = [s for s in skips if s.kind == SkipKind.IMAGE_UNREADABLE]
    for skip in unreadable[:shown]:
        echo("skipped %s: %s" % (skip.person, skip.reason), err=True)
    if len(unreadable) > shown:
        echo("... and %d more unreadable (see %s)" % (len(unreadable) - shown, SKIPPED_FILE),
             err=True)
