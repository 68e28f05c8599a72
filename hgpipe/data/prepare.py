"""``hgpipe prepare``: person records -> augmented crops + heatmaps in HDF5 shards.

Why offline: an online loader spends ~8 ms of CPU per sample (JPEG decode, warp,
heatmaps), which starves an accelerator; here that work is done once, each image decoded
once for all its persons and variants, and training only copies bytes.

Determinism: the shard plan depends only on the records and the config, and each
variant's augmentation only on (seed, image, person, variant), so the arrays are
identical whatever ``--workers``. Resume: a shard file with its final name is complete
(written to a temporary name, then renamed), and carries a fingerprint of its plan; a
rerun keeps every shard whose fingerprint matches and builds only the rest.
"""
import collections
import hashlib
import json
import os
from typing import List, NamedTuple

import numpy as np

from hgpipe import __version__, atomic
from hgpipe.codec import HEATMAP_SCALE
from hgpipe.data import plausible, schema, shard_records, shards
from hgpipe.data.images import ImageError, decode_image
from hgpipe.data.workers import run_pool
from hgpipe.data.transforms import (PLAIN, crop_zoom, decode_reduction, make_sample,
                                    person_rng, sample_augmentation)


class PrepareError(ValueError):
    """prepare cannot go on (nothing usable, or the output holds other shards)."""


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
    return [record.image_name, record.person_index, record.annolist_index,
            np.round(record.joints, 4).tolist(), record.annotated.tolist(),
            np.round(record.center, 4).tolist(), round(record.scale, 6)]


def _fingerprint(split, jobs, settings):
    payload = json.dumps([schema.SCHEMA_VERSION, split, settings,
                          [[_record_key(r) for r in job.records] for job in jobs]],
                         sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def shard_settings(cfg):
    """The config values that determine shard contents (part of every fingerprint)."""
    data, prep = cfg["DataSetHG"], cfg["Prepare"]
    settings = {"input_size": data["img_size"], "heatmap_size": data["hm_size"]}
    settings.update((k, v) for k, v in prep.items() if k != "shard_size")
    return settings


def plan_shards(records, cfg, locator):
    """Group records into shard tasks; returns (tasks, skipped [(record, reason)]).

    Train: images in a seeded random order (so consecutive samples are unrelated and a
    reader may take contiguous slices), packed into shards of about ``shard_size``
    samples. Val: persons in their given order (the canonical Tompson order, so val
    shards line up with published ground-truth files), one plain crop each.
    """
    prep = cfg["Prepare"]
    settings = shard_settings(cfg)
    skipped = []
    by_split = {"train": collections.OrderedDict(), "val": []}
    for record in records:
        if len(record.image_name.encode("utf-8")) > schema.MAX_IMAGE_NAME:
            skipped.append((record, "image name longer than %d bytes" % schema.MAX_IMAGE_NAME))
            continue
        path = locator.find(record.image_name)
        if path is None:
            skipped.append((record, "image not found in %s" % locator.images_dir))
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
        per_person = prep["variants"] if split == "train" else 1
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
    augs = []
    for variant in range(prep["variants"]):
        if variant == 0 and prep["first_variant_plain"]:
            augs.append(PLAIN)
        else:
            rng = person_rng(prep["seed"], record.image_name, record.person_index, variant)
            augs.append(sample_augmentation(rng, prep))
    return augs


def build_shard(task, settings, out_dir, progress=None):
    """Make and write one shard; returns its manifest entry (with its skipped persons)."""
    input_size, heatmap_size = settings["input_size"], settings["heatmap_size"]
    spec = schema.datasets(input_size, heatmap_size, task.split)
    arrays = {name: np.zeros((task.samples,) + tuple(shape), dtype=dtype)
              for name, (shape, dtype, _) in spec.items()}
    skipped, n = [], 0
    # train samples go straight to a random slot, so that any contiguous slice of the
    # shard is a random batch (no reordering copy afterwards)
    slots = np.arange(task.samples)
    if task.split == "train":
        slots = np.random.RandomState(int(task.fingerprint[:8], 16)).permutation(task.samples)
    for job in task.jobs:
        augmentations = [(record, _augmentations(record, task.split, settings))
                         for record in job.records]
        reduction = decode_reduction([crop_zoom(r, aug, input_size)
                                      for r, augs in augmentations for aug in augs])
        try:
            image = decode_image(job.path, reduction)
        except ImageError as exc:
            skipped.extend((r.describe(), str(exc)) for r in job.records)
            if progress is not None:
                progress.put(len(job.records) * (settings["variants"] if task.split == "train" else 1))
            continue
        done = 0
        for record, augs in augmentations:
            # the size of the full image, as decoded at 1/reduction
            problem = plausible.box_problem(record.center, record.scale,
                                            image.shape[1] * reduction,
                                            image.shape[0] * reduction)
            if problem:
                skipped.append((record.describe(), "%s: %s" % (
                    plausible.SKIP_REASON, problem)))
                if progress is not None:
                    progress.put(len(augs))
                continue
            for aug in augs:
                # crop and stored heatmaps are written straight into the shard's arrays
                direct = {name: arrays[name][slots[n]] for name in ("images", "heatmaps")}
                sample = make_sample(image, record, aug, input_size, heatmap_size,
                                     settings["sigma"], reduction, HEATMAP_SCALE, direct)
                sample["image_name"] = record.image_name.encode("utf-8")
                sample["annolist_index"] = record.annolist_index
                sample["person_index"] = record.person_index
                if task.split == "val":
                    sample["gt_joints"] = record.joints
                    sample["gt_annotated"] = record.annotated
                    sample["head_normalizer"] = record.head_normalizer()
                for name in spec:
                    if name not in direct:
                        arrays[name][slots[n]] = sample[name]
                n += 1
                done += 1
        if progress is not None:
            progress.put(done)
    if n < task.samples:  # unreadable images: close the gaps, keep the random order
        kept = np.sort(slots[:n])
        arrays = {name: array[kept] for name, array in arrays.items()}
    attrs = {"fingerprint": task.fingerprint, "hgpipe_version": __version__,
             "skipped": json.dumps(skipped), "settings": json.dumps(settings, sort_keys=True)}
    compression = {"images": settings["image_compression"],
                   "heatmaps": settings["heatmap_compression"]}
    path = os.path.join(out_dir, task.file_name)

    def record(digest, size):
        shard_records.write_record(out_dir, task.file_name, digest, size, task.fingerprint)
    digest, size = shards.write_shard(path, arrays, task.split, input_size, heatmap_size,
                                      attrs=attrs, compression=compression,
                                      before_rename=record)
    return _entry(task, n, digest, size, skipped)


def _entry(task, count, digest, size, skipped):
    return {"file": task.file_name, "split": task.split, "count": int(count),
            shards.CHECKSUM_KEY: digest, "bytes": int(size), "fingerprint": task.fingerprint,
            "skipped": skipped}


def existing_entry(task, out_dir):
    """Manifest entry of an already complete shard for this task, else None.

    Raises PrepareError if a shard with this name holds something else.
    """
    path = os.path.join(out_dir, task.file_name)
    if not os.path.exists(path):
        return None
    attrs = shards.read_shard_attrs(path)
    if attrs is None:
        raise PrepareError("%s: exists but cannot be read (damaged?); use --overwrite to "
                           "rebuild it" % path)
    if attrs.get("fingerprint") != task.fingerprint:
        raise PrepareError(
            "%s: holds a shard of a different dataset or config; use a new --out "
            "directory or --overwrite" % path)
    return _entry(task, int(attrs["count"]), shards.file_crc32(path),
                  os.path.getsize(path), json.loads(attrs["skipped"]))


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


def summarize_skipped(skipped_pairs):
    """Counts of skipped persons by reason (reasons naming a file grouped by kind)."""
    counts = collections.Counter()
    for _who, reason in skipped_pairs:
        if reason.startswith("image not found"):
            counts["image not found"] += 1
        elif reason.startswith(plausible.SKIP_REASON):
            counts[plausible.SKIP_REASON] += 1
        else:  # "PATH: not a decodable image" -> "not a decodable image"
            counts[reason.split(": ", 1)[-1]] += 1
    return counts


def write_manifest(out_dir, cfg, entries, skipped_pairs, annotation_file, sources):
    counts = {split: sum(e["count"] for e in entries if e["split"] == split)
              for split in schema.SPLITS}
    entries = sorted(entries, key=lambda e: e["file"])
    manifest = {
        "schema_version": schema.SCHEMA_VERSION,
        "hgpipe_version": __version__,
        "annotation_file": os.path.basename(annotation_file),
        "sources": sources,
        "counts": counts,
        "input_size": cfg["DataSetHG"]["img_size"],
        "heatmap_size": cfg["DataSetHG"]["hm_size"],
        "heatmap_scale": HEATMAP_SCALE,
        "config": cfg.as_dict(),
        "shards": [{k: v for k, v in e.items() if k != "skipped"} for e in entries],
        "skipped_count": len(skipped_pairs),
        "skipped_by_reason": dict(summarize_skipped(skipped_pairs)),
    }
    atomic.write_json(os.path.join(out_dir, shards.MANIFEST), manifest)
    atomic.write_json(os.path.join(out_dir, "skipped.json"),
                             [{"person": w, "reason": r} for w, r in skipped_pairs])
    return manifest
