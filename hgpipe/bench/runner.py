"""Orders the bench's phases, shares their inputs, and collects one list of rows.

The phases feed each other: prepare's shards are what the feed reads (unless --data
names others), and the train phase reuses them when the config's crop size matches.
Everything scratch lives in one temporary directory, removed at the end.
"""
import os
import platform
import shutil
import tempfile
import time
from typing import NamedTuple

from hgpipe import __version__
from hgpipe.bench import feed as feed_bench
from hgpipe.bench import mixing as mixing_bench
from hgpipe.bench import online as online_bench
from hgpipe.bench import distributed as distributed_bench
from hgpipe.bench import predict as predict_bench
from hgpipe.bench import prepare as prepare_bench
from hgpipe.bench import train as train_bench
from hgpipe.bench.report import BenchError, make_row, ratio_row
from hgpipe.bench.sources import find_dataset, load_source
from hgpipe.bench.system import (disk_read_bandwidth, load_average, memcpy_bandwidth,
                                 one_core, physical_memory_bytes, usable_cores)
from hgpipe.config import load_config
from hgpipe.data import shards

PHASES = ("online", "prepare", "feed", "train", "distributed", "predict")
DEVICE_AUGMENT_CONFIG = "hg2"   # its step time is measured again with device flip + colour
ONLINE_RATIO_TARGET = ">= 40"
PREPARE_RATIO_TARGET = ">= 3"   # issue 9
FITS_IN_MEMORY = 0.8   # a shard set this fraction of RAM or less stays in the page cache


class BenchSizes(NamedTuple):
    online_samples: int
    prepare_samples: int
    feed_seconds: float     # minimum timed span of a warm feed measurement (all runs)
    feed_repeats: int       # runs per feed measurement; the best one is reported
    memcpy_bytes: int
    train_steps: dict       # config name -> steps (first one is warm-up)
    train_samples: int      # samples prepared for a train config of another crop size
    predict_images: int = 64   # images of the folder run (predict phase)
    predict_loop: int = 8      # images predicted one process each


DEFAULT_SIZES = BenchSizes(400, 2048, 3.0, 3, 512 << 20, {"tiny": 30, "hg2": 6}, 512)
QUICK_SIZES = BenchSizes(40, 256, 0.3, 2, 64 << 20, {"tiny": 4, "hg2": 3}, 128, 8, 2)

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def default_train_configs():
    """configs/tiny.cfg and configs/hg2.cfg of the checkout (the issue's two models)."""
    paths = [os.path.join(_REPO_ROOT, "configs", name) for name in ("tiny.cfg", "hg2.cfg")]
    return [os.path.relpath(p) for p in paths if os.path.isfile(p)]


def _config_name(path):
    return os.path.splitext(os.path.basename(path))[0]


class Bench(object):
    """One bench run; ``run()`` returns (rows, meta, notes)."""

    def __init__(self, cfg, mpii_dir=None, data_dir=None, train_configs=None,
                 sizes=DEFAULT_SIZES, skip=(), work_dir=None, keep=False, log=None,
                 progress=True):
        unknown = set(skip) - set(PHASES)
        if unknown:
            raise BenchError("unknown phase(s) to skip: %s (phases: %s)" % (
                ", ".join(sorted(unknown)), ", ".join(PHASES)))
        if data_dir is not None:
            shards.load_manifest(data_dir)   # fail now, with the manifest's own message
        self.cfg = cfg
        self.mpii_dir = mpii_dir
        self.data_dir = data_dir
        self.train_configs = list(train_configs if train_configs is not None
                                  else default_train_configs())
        if "train" not in skip and not self.train_configs:
            raise BenchError("no train config found (configs/tiny.cfg, configs/hg2.cfg); "
                             "pass --train-config FILE or --skip train")
        for path in self.train_configs:
            if not os.path.isfile(path):
                raise BenchError("%s: config file not found" % path)
        self.sizes = sizes
        self.skip = set(skip)
        self.work_parent = work_dir
        self.keep = keep
        self.log = log or (lambda message: None)
        self.progress = progress
        self.cores = usable_cores()
        self.rows, self.notes = [], []
        self._source = None
        self._train_dirs = {}   # train config name -> the shards its phases read
        self._started = time.time()

    # ------------------------------------------------------------------ helpers
    def say(self, message):
        self.log("[bench %4.0fs] %s" % (time.time() - self._started, message))

    @property
    def source(self):
        if self._source is None:
            dataset = find_dataset(self.mpii_dir)
            self.say("reading annotations in %s" % dataset)
            self._source = load_source(dataset)
            self.say(self._source.describe())
        return self._source

    def _prepare(self, cfg, samples, workers, name, quiet=False):
        result = prepare_bench.prepare_shards(self.source, cfg, samples, workers,
                                              self.work, name)
        if not quiet:
            self.say("prepare %s: %d samples, %d worker(s): %.0f samples/s, %.0f B/sample"
                     % (name, result.samples, result.workers, result.rate,
                        result.bytes_per_sample))
        return result

    def _add(self, rows):
        self.rows.extend(rows)

    # ------------------------------------------------------------------ phases
    def run(self):
        meta = {"hgpipe": __version__, "python": platform.python_version(),
                "platform": platform.platform(), "cores": self.cores,
                "load_average_start": load_average(), "skipped_phases": sorted(self.skip)}
        self.work = tempfile.mkdtemp(prefix="hgpipe-bench-", dir=self.work_parent)
        try:
            online = None if "online" in self.skip else self._online()
            prepared = self._prepare_phase()
            if "feed" not in self.skip:
                self._feed_phase(prepared, online)
            if "train" not in self.skip:
                self._train_phase(prepared)
                if "distributed" not in self.skip:  # uses the train phase's shards
                    self._distributed_phase(prepared)
                if "predict" not in self.skip:      # uses the train phase's model
                    self._predict_phase()
            elif "predict" not in self.skip:
                self.notes.append("predict rows skipped: they time the train phase's model")
        finally:
            if self.keep:
                self.say("kept scratch files in %s" % self.work)
            else:
                shutil.rmtree(self.work, ignore_errors=True)
        meta.update({"load_average_end": load_average(),
                     "seconds": time.time() - self._started,
                     "sizes": self.sizes._asdict()})
        if self._source is not None:
            meta["source"] = self._source.describe()
            self.notes.insert(0, "images: %s" % self._source.describe())
        try:
            import numpy
            import h5py
            import cv2
            meta.update({"numpy": numpy.__version__, "h5py": h5py.__version__,
                         "opencv": cv2.__version__})
        except ImportError:
            pass
        if "train" not in self.skip:
            from hgpipe.tf_compat import import_tf
            meta["tensorflow"] = import_tf().__version__
        if {"online", "prepare", "feed"} - self.skip:
            self.notes.append("value = wall clock (1-core rows pinned to the idlest core); "
                              "per CPU-s = the same work per CPU-second used, what a free "
                              "core would do when others load the machine; targets judge "
                              "the value")
        load = meta["load_average_start"], meta["load_average_end"]
        if load[0] is not None:
            self.notes.append("shared machine: load average %.2f at start, %.2f at end on %d "
                              "cores - other users' work is in these numbers"
                              % (load[0][0], load[1][0], self.cores))
        return self.rows, meta, self.notes

    def _online(self):
        self.say("online: %d samples of the peer-style loader on 1 core"
                 % self.sizes.online_samples)
        result = online_bench.measure_online(self.source, self.cfg, self.sizes.online_samples)
        self._add(online_bench.online_rows(result))
        self.say("online: %.1f samples/s (%.1f ms/sample)" % (result.samples_per_sec,
                                                               result.ms_per_sample))
        return result

    def _prepare_phase(self):
        """Returns {"main": PrepareResult, "other": PrepareResult or None}, or None."""
        need_shards = self.data_dir is None and "feed" not in self.skip
        if "prepare" in self.skip and not need_shards:
            return None
        samples = self.sizes.prepare_samples
        main_compression = self.cfg["Prepare"]["heatmap_compression"]
        other_compression = "none" if main_compression == "gzip" else "gzip"
        shard_size = prepare_bench.shard_size_for(samples, self.cores)
        main_cfg = prepare_bench.bench_config(self.cfg, shard_size, prepare_bench.VARIANTS)
        if "prepare" in self.skip:
            self.say("prepare (not reported): shards for the feed")
            return {"main": self._prepare(main_cfg, samples, self.cores, "shards_main"),
                    "other": None}
        self.say("prepare: %d samples at 1 worker, then %d workers, then heatmaps %s"
                 % (samples, self.cores, other_compression))
        single = self._prepare(main_cfg, samples, 1, "shards_1worker")
        shutil.rmtree(single.out_dir)    # same content as the parallel run's
        parallel = self._prepare(main_cfg, samples, self.cores, "shards_main")
        other_cfg = prepare_bench.bench_config(self.cfg, shard_size, prepare_bench.VARIANTS,
                                               other_compression)
        other = self._prepare(other_cfg, samples, self.cores, "shards_other")
        self._add(prepare_bench.prepare_rows(single, parallel if self.cores > 1 else None,
                                             other))
        if "online" not in self.skip:
            self._add([ratio_row("ratio.prepare_online", "prepare 1 worker / online loader, "
                                 "per core", self.rows, "prepare.1w.per_core",
                                 "online.samples_per_sec", PREPARE_RATIO_TARGET)])
        return {"main": parallel, "other": other}

    def _feed_label(self, shards_dir):
        manifest = shards.load_manifest(shards_dir)
        return "%dpx, heatmaps %s" % (manifest["input_size"],
                                     manifest["config"]["Prepare"]["heatmap_compression"])

    def _feed_phase(self, prepared, online):
        feed_dir = self.data_dir or prepared["main"].out_dir
        label = self._feed_label(feed_dir)
        seconds = self.sizes.feed_seconds
        for cold in (False, True):
            for reader, batch in (("shuffled", 4), ("shuffled", 16), ("block", 16)):
                self.say("feed: %s reader, %s, batch %d, %s" % (
                    reader, label, batch, "cold" if cold else "warm"))
                result = feed_bench.measure_feed(feed_dir, batch, cold, seconds,
                                                 self.sizes.feed_repeats, reader)
                self._add([feed_bench.feed_row(result, label)])
                if cold:
                    self.notes.append("cold feed, %s reader, batch %d: evicted by %s, %s of "
                                      "the pages resident afterwards" % (
                                          reader, batch, result.cache_method,
                                          "unknown" if result.resident_after is None else
                                          "%.1f%%" % (100 * result.resident_after)))
        self.say("feed: memory-copy bandwidth")
        with one_core():
            bandwidth = memcpy_bandwidth(self.sizes.memcpy_bytes)
        per_sample = feed_bench.sample_bytes(feed_dir)
        self._add(feed_bench.limit_rows(bandwidth, per_sample))
        self.say("feed: the disk's read rate, cold")
        disk, method = disk_read_bandwidth(shards.shard_paths(feed_dir, "train"))
        self._add(feed_bench.disk_rows(disk, per_sample, method))
        if online is not None:
            self._add([ratio_row("ratio.feed_online", "feed warm b16 / online loader",
                                 self.rows, "feed.warm.b16", "online.samples_per_sec",
                                 ONLINE_RATIO_TARGET)])
        self._add([ratio_row("ratio.feed_limit", "feed warm b16 / physical limit",
                             self.rows, "feed.warm.b16", "feed.limit",
                             feed_bench.LIMIT_TARGET)])
        self._add([ratio_row("ratio.feed_disk", "feed cold b16 / cold limit (the disk's "
                             "sequential read rate)", self.rows, "feed.cold.b16",
                             "feed.disk_limit")])
        for cold in ("warm", "cold"):
            self._add([ratio_row("ratio.feed_block.%s" % cold, "feed %s b16: shuffled per "
                                 "epoch / old block reader" % cold, self.rows,
                                 "feed.%s.b16" % cold, "feed.%s.b16.block" % cold)])
        self._mixing_phase(feed_dir)
        if prepared is not None and prepared.get("other") is not None:
            self._storage_verdict(prepared, feed_dir)

    def _mixing_phase(self, feed_dir):
        self.say("mixing: batch membership over epochs, training reader vs block reader")
        self._add(mixing_bench.mixing_rows(mixing_bench.measure_mixing(feed_dir, 16)))

    def _storage_verdict(self, prepared, feed_dir):
        """gzip vs none heatmaps: bytes saved against feed speed where the data will live."""
        results = {}
        for which in ("main", "other"):
            result = prepared[which]
            compression = result.heatmap_compression
            label = self._feed_label(result.out_dir)
            for cold in (False, True):
                if result.out_dir == feed_dir:
                    key = "feed.%s.b16" % ("cold" if cold else "warm")
                    results[(compression, cold)] = key
                    continue
                self.say("feed: %s, batch 16, %s" % (label, "cold" if cold else "warm"))
                feed = feed_bench.measure_feed(result.out_dir, 16, cold,
                                               self.sizes.feed_seconds,
                                               self.sizes.feed_repeats)
                key = "%s.heatmaps_%s" % (feed_bench.feed_key(feed), compression)
                self._add([feed_bench.feed_row(feed, label, key)._replace(
                    phase="storage", target="", met=None)])
                results[(compression, cold)] = key
        memory = physical_memory_bytes()
        persons = self.source.train_persons
        regime = {}
        for which in ("main", "other"):
            result = prepared[which]
            compression = result.heatmap_compression
            full = persons * prepare_bench.VARIANTS * result.bytes_per_sample
            self._add([make_row("storage.full.%s" % compression, "storage",
                                "whole train split (%d persons x %d variants), heatmaps %s"
                                % (persons, prepare_bench.VARIANTS, compression),
                                full / 1e9, "GB")])
            regime[compression] = memory is not None and full <= FITS_IN_MEMORY * memory
        if memory is not None:
            self._add([make_row("storage.ram", "storage", "physical memory (page-cache "
                                "ceiling)", memory / 1e9, "GB")])
        gzip_key = results[("gzip", not regime["gzip"])]
        none_key = results[("none", not regime["none"])]
        verdict = ratio_row("storage.verdict", "heatmaps gzip / none, feed b16 where the "
                            "whole set lives (gzip %s, none %s)" % (
                                "warm" if regime["gzip"] else "cold",
                                "warm" if regime["none"] else "cold"),
                            self.rows, gzip_key, none_key, phase="storage")
        winner = "gzip" if verdict.value > 1.0 else "none"
        verdict = verdict._replace(what=verdict.what + ": %s pays" % winner)
        self._add([verdict])
        by_key = {row.key: row for row in self.rows}
        self.notes.append(
            "heatmap storage: gzip-1 saves %.0f B/sample (%.0f%%) on disk; the whole train "
            "split at 8 variants is %.1f GB (gzip) / %.1f GB (none) against %.1f GB RAM, so "
            "training reads it %s; there gzip feeds %.0f images/s and none %.0f: %s pays" % (
                by_key["prepare.bytes.none"].value - by_key["prepare.bytes.gzip"].value,
                100 * (1 - by_key["prepare.bytes.gzip"].value
                       / by_key["prepare.bytes.none"].value),
                by_key["storage.full.gzip"].value, by_key["storage.full.none"].value,
                (memory or 0) / 1e9,
                "from the page cache" if regime["gzip"] and regime["none"]
                else "from disk (cold)" if not (regime["gzip"] or regime["none"])
                else "warm for one storage and cold for the other",
                by_key[gzip_key].value, by_key[none_key].value, winner))

    def _train_shards(self, cfg, name, prepared):
        """Shards of the config's crop size: --data's or prepare's when they fit, else
        prepared here once per config (the train and distributed phases share them)."""
        if name in self._train_dirs:
            return self._train_dirs[name]
        self._train_dirs[name] = self._find_or_prepare_train_shards(cfg, name, prepared)
        return self._train_dirs[name]

    def _find_or_prepare_train_shards(self, cfg, name, prepared):
        size = (cfg["DataSetHG"]["img_size"], cfg["DataSetHG"]["hm_size"])
        candidates = [self.data_dir] if self.data_dir else []
        if prepared is not None:
            candidates.append(prepared["main"].out_dir)
        for directory in candidates:
            manifest = shards.load_manifest(directory)
            if (manifest["input_size"], manifest["heatmap_size"]) == size:
                return directory
        self.say("train %s: preparing %d samples at %dpx" % (name, self.sizes.train_samples,
                                                           size[0]))
        shard_cfg = prepare_bench.bench_config(
            cfg, prepare_bench.shard_size_for(self.sizes.train_samples, self.cores))
        return self._prepare(shard_cfg, self.sizes.train_samples, self.cores,
                             "train_shards_%s" % name, quiet=True).out_dir

    def _device_augment(self, cfg, name, shards_dir, steps, plain):
        """The same config again with device-side flip + colour, right after the plain run."""
        self.say("train %s: %d steps with device flip + colour" % (name, steps))
        augmented = train_bench.measure_train(
            train_bench.with_device_augment(cfg), name, shards_dir, steps,
            os.path.join(self.work, "logdir_%s_device_augment" % name), echo=self.log,
            progress=self.progress)
        op_ms = train_bench.time_device_augment_op(
            plain.batch_size, plain.input_size, cfg["DataSetHG"]["hm_size"])
        self._add(train_bench.device_augment_rows(plain, augmented, op_ms))
        self._device_geometry(train_bench.with_device_augment(cfg), name, steps, augmented)

    def _device_geometry(self, cfg, name, steps, augmented):
        """Context shards and device geometry against the device flip + colour run: the
        step on/off, the geometry ops alone, bytes per person of both storages."""
        geometry_cfg = train_bench.with_device_geometry(cfg)
        self._add(train_bench.bytes_per_person_rows(geometry_cfg, name))
        self.say("train %s: context shards, %d steps with device geometry" % (name, steps))
        shard_cfg = prepare_bench.bench_config(
            geometry_cfg, prepare_bench.shard_size_for(self.sizes.train_samples, self.cores))
        shard_cfg.set("Prepare", "geometry", "device")
        context_dir = self._prepare(shard_cfg, self.sizes.train_samples, self.cores,
                                    "context_shards_%s" % name, quiet=True).out_dir
        geometry = train_bench.measure_train(
            geometry_cfg, name, context_dir, steps,
            os.path.join(self.work, "logdir_%s_device_geometry" % name), echo=self.log,
            progress=self.progress)
        op_ms = train_bench.time_device_geometry_op(geometry_cfg, augmented.batch_size)
        self._add(train_bench.device_geometry_rows(augmented, geometry, op_ms))

    def _distributed_phase(self, prepared):
        """2 Horovod processes vs 1 on the first train config (hgpipe.bench.distributed)."""
        if distributed_bench.horovodrun_path() is None:
            self.notes.append("distributed rows skipped: Horovod is not installed in this "
                              "Python (bin/test's py37-tf115 and py311-tf215-hvd lanes have it)")
            return
        path = self.train_configs[0]
        name = _config_name(path)
        shards_dir = self._train_shards(load_config(path), name, prepared)
        steps = self.sizes.train_steps.get(name, min(self.sizes.train_steps.values()))
        self.say("distributed %s: %d steps in 1 process, then 2 Horovod/Gloo processes, "
                 "then the gradient all-reduce alone" % (name, steps))
        one, two, seconds, floats = distributed_bench.measure_distributed(
            path, shards_dir, steps, self.work)
        self._add(distributed_bench.distributed_rows(name, one, two, seconds, floats))
        self.notes.append("distributed: both processes share this machine's %d cores, so the "
                          "scaling efficiency is what the all-reduce and the sharing cost "
                          "here, not what separate devices would gain" % self.cores)

    def _predict_phase(self):
        """``hgpipe predict FOLDER`` against a process per image (hgpipe.bench.predict),
        on the first train config's model."""
        name = _config_name(self.train_configs[0])
        sizes = self.sizes
        self.say("predict: one run over a folder of %d images, then %d runs of one image"
                 % (sizes.predict_images, sizes.predict_loop))
        result = predict_bench.measure_predict(
            os.path.join(self.work, "logdir_%s" % name), list(self.source.paths.values()),
            sizes.predict_images, sizes.predict_loop, self.work)
        self._add(predict_bench.predict_rows(result, name))
        self.say("predict: %.2f images/s in one run, %.2f a process each" % (
            result.folder_rate, result.loop_rate))

    def _train_phase(self, prepared):
        for path in self.train_configs:
            name = _config_name(path)
            cfg = load_config(path)
            shards_dir = self._train_shards(cfg, name, prepared)
            steps = self.sizes.train_steps.get(name, min(self.sizes.train_steps.values()))
            self.say("train %s: %d steps (%s)" % (name, steps, path))
            result = train_bench.measure_train(
                cfg, name, shards_dir, steps, os.path.join(self.work, "logdir_%s" % name),
                echo=self.log, progress=self.progress)
            self._add(train_bench.train_rows(result))
            self.say("train %s: %.2f images/s, input wait %.2f%%" % (
                name, result.images_per_sec, 100 * result.input_wait))
            if name == DEVICE_AUGMENT_CONFIG:
                self._device_augment(cfg, name, shards_dir, steps, result)
        self.notes.append("train GFLOP: convolutions only (Conv2D forward; "
                          "Conv2DBackpropInput/Filter backward), counted from the graph that "
                          "trained; TF uses all cores for a step")
