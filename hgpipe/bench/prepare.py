"""Row 2: ``hgpipe prepare`` throughput (1 worker and all cores) and bytes on disk.

It runs the real pipeline - :func:`plan_shards` then :func:`run_tasks`, i.e. decode,
augment, heatmaps, uint8 quantisation, HDF5 write, checksum - into a scratch directory,
on the symlinked training workload of :mod:`hgpipe.bench.sources`. The same shards then
serve as the feed benchmark's input. A second set, identical but for the heatmaps'
storage (gzip-1 vs none), prices the compression: bytes saved against read speed.
"""
import contextlib
import copy
import math
import os
import time
from typing import NamedTuple

from hgpipe.bench.report import BenchError, make_row, ratio_row
from hgpipe.bench.sources import training_people
from hgpipe.bench.system import cpu_seconds, one_core, per_cpu_rate
from hgpipe.data import prepare as prep
from hgpipe.data.images import ImageLocator

VARIANTS = 8   # the target is stated at 8 augmented variants per person
PREPARE_TARGET = ">= 500"   # samples/s per core


class PrepareResult(NamedTuple):
    out_dir: str
    samples: int
    seconds: float
    workers: int
    bytes_on_disk: int
    heatmap_compression: str
    variants: int
    input_size: int
    cpu: float          # CPU seconds of this process and the worker pool

    @property
    def per_cpu(self):
        return per_cpu_rate(self.samples, self.cpu)

    @property
    def rate(self):
        return self.samples / self.seconds

    @property
    def per_core(self):
        return self.rate / self.workers

    @property
    def bytes_per_sample(self):
        return self.bytes_on_disk / float(self.samples)


def bench_config(cfg, shard_size, variants=None, heatmap_compression=None):
    """A copy of ``cfg`` with the bench's prepare settings (the original is untouched)."""
    cfg = copy.deepcopy(cfg)
    cfg.set("Prepare", "shard_size", shard_size)
    if variants is not None:
        cfg.set("Prepare", "variants", variants)
    if heatmap_compression is not None:
        cfg.set("Prepare", "heatmap_compression", heatmap_compression)
    return cfg


def shard_size_for(samples, workers):
    """Small enough that every worker gets several shards, so the pool stays busy."""
    return max(32, int(math.ceil(samples / (4.0 * max(1, workers)))))


def prepare_shards(source, cfg, samples, workers, work_dir, name):
    """Prepare about ``samples`` training samples into ``work_dir/name``, timed."""
    variants = cfg["Prepare"]["variants"]
    records = training_people(source, int(math.ceil(samples / float(variants))),
                              os.path.join(work_dir, "images"))
    # the workload's images are symlinks into the source's images folder: both are allowed
    images_dir = os.path.join(work_dir, "images")
    locator = ImageLocator(images_dir, roots=[images_dir, source.images_dir])
    tasks, skipped = prep.plan_shards(records, cfg, locator)
    if not tasks:
        raise BenchError("%s: no usable training person to prepare (%d skipped)"
                         % (source.annotation_file, len(skipped)))
    out_dir = os.path.join(work_dir, name)
    os.makedirs(out_dir)
    settings = prep.shard_settings(cfg)
    workers = max(1, min(workers, len(tasks)))
    pinned = one_core() if workers == 1 else contextlib.nullcontext()
    with pinned:
        start, cpu = time.perf_counter(), cpu_seconds()
        entries = prep.run_tasks(tasks, settings, out_dir, workers)
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    for entry in entries:
        skipped += entry["skipped"]
    prep.write_manifest(out_dir, cfg, entries, skipped, source.annotation_file,
                        {"bench": source.dataset_dir})
    return PrepareResult(out_dir, sum(e["count"] for e in entries), seconds, workers,
                         sum(e["bytes"] for e in entries),
                         cfg["Prepare"]["heatmap_compression"], variants,
                         cfg["DataSetHG"]["img_size"], cpu)


def prepare_rows(single, parallel, other):
    """Rows for 1 worker, all cores, and the other heatmap storage (each may be None)."""
    rows = []
    for result in (single, parallel):
        if result is None:
            continue
        tag = "%dw" % result.workers
        label = "prepare, %d worker%s, %d variants, %dpx, heatmaps %s" % (
            result.workers, "" if result.workers == 1 else "s", result.variants,
            result.input_size, result.heatmap_compression)
        if result.workers > 1:
            rows.append(make_row("prepare.%s.rate" % tag, "prepare", label + ": total",
                                 result.rate, "samples/s"))
        rows.append(make_row("prepare.%s.per_core" % tag, "prepare", label + ": per core",
                             result.per_core, "samples/s/core", PREPARE_TARGET,
                             per_cpu=result.per_cpu))
    if single is not None and parallel is not None and parallel.workers > 1:
        rows.append(ratio_row("prepare.scaling", "prepare scaling, %d workers vs 1 (ideal %d)"
                              % (parallel.workers, parallel.workers), rows,
                              "prepare.%dw.rate" % parallel.workers, "prepare.1w.per_core",
                              phase="prepare"))
    if other is not None:
        rows.append(make_row("prepare.%dw.rate.heatmaps_%s" % (other.workers,
                                                               other.heatmap_compression),
                             "prepare", "prepare, %d workers, heatmaps %s: total" % (
                                 other.workers, other.heatmap_compression),
                             other.rate, "samples/s", per_cpu=other.per_cpu))
    for result in (parallel or single, other):
        if result is not None:
            rows.append(make_row("prepare.bytes.%s" % result.heatmap_compression, "prepare",
                                 "bytes per sample on disk, heatmaps %s"
                                 % result.heatmap_compression,
                                 result.bytes_per_sample, "B/sample"))
    return rows
