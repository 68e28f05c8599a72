"""Row 4: the real Trainer for a few steps: images/s, step time, input wait, GFLOP/s.

It runs :class:`hgpipe.train.trainer.Trainer` unchanged (prefetch thread, feed_dict,
RMSProp step) on shards of the config's own crop size, with validation off, and reads
its ``train_summary.json`` numbers (first step - graph warm-up - excluded). FLOPs are
counted from the very graph that trained (:mod:`hgpipe.bench.flops`), so GFLOP/s is
(forward + backward FLOPs per image) x images/s.
"""
import copy
import time
from typing import NamedTuple

from hgpipe.bench.flops import count_conv_flops
from hgpipe.bench.report import make_row

INPUT_WAIT_TARGET = "< 1"      # percent of step time spent waiting for input


class TrainResult(NamedTuple):
    name: str
    batch_size: int
    input_size: int
    steps: int
    images_per_sec: float
    step_ms: float
    input_wait: float           # fraction
    forward_flops: float        # per image
    training_flops: float       # per image, forward + backward
    seconds: float              # whole run: graph build, initialisation, steps, checkpoint

    @property
    def gflops_per_sec(self):
        return self.training_flops * self.images_per_sec / 1e9


def measure_train(cfg, name, shards_dir, steps, logdir, echo, progress=True):
    """Train ``steps`` steps from scratch in ``logdir``; returns the measured rates."""
    from hgpipe.train.trainer import Trainer
    cfg = copy.deepcopy(cfg)
    cfg.set("Validation", "validate_every", 0)
    cfg.set("Saver", "saver_step", 10 ** 9)
    cfg.set("Train", "device", "cpu")
    trainer = Trainer(cfg, shards_dir, logdir, device="cpu", steps=steps, resume=False,
                      echo=echo, progress=progress)
    summary = trainer.run()
    graph = trainer.graph
    flops = count_conv_flops(graph.train_op.graph, [graph.train_op, graph.loss])
    batch = trainer.batch_size
    return TrainResult(name, batch, trainer.input_size, summary["steps_run"],
                       summary["images_per_sec"], summary["step_time_ms_median"],
                       summary["input_wait_fraction"], flops.forward / batch,
                       flops.training / batch, summary["e2e_seconds"])


def train_rows(result):
    tag = "train.%s" % result.name
    label = "%s (%dpx, batch %d, %d steps, all cores)" % (
        result.name, result.input_size, result.batch_size, result.steps)
    return [
        make_row(tag + ".images_per_sec", "train", label + ": images/s", result.images_per_sec,
                 "images/s"),
        make_row(tag + ".step_ms", "train", label + ": median step time", result.step_ms, "ms"),
        make_row(tag + ".seconds", "train", label + ": whole run incl. graph build, init, "
                 "first step, checkpoint", result.seconds, "s"),
        make_row(tag + ".input_wait", "train", label + ": input wait", 100 * result.input_wait,
                 "% of step", INPUT_WAIT_TARGET),
        make_row(tag + ".gflop_forward", "train", "%s: model conv GFLOP per image, forward only"
                 % result.name, result.forward_flops / 1e9, "GFLOP/image"),
        make_row(tag + ".gflop_train", "train", "%s: conv GFLOP per image, forward + backward"
                 % result.name, result.training_flops / 1e9, "GFLOP/image"),
        make_row(tag + ".gflops", "train", "%s: achieved (fwd+bwd GFLOP/image x images/s)"
                 % result.name, result.gflops_per_sec, "GFLOP/s"),
    ]


DEVICE_AUGMENT_TARGET = "< 1.02"   # step time with / without device flip + colour (issue 8)


def with_device_augment(cfg, color=0.2):
    """The same config with per-step flip and colour gain in the graph (bearpaw's range)."""
    cfg = copy.deepcopy(cfg)
    cfg.set("Train", "device_flip", True)
    cfg.set("Train", "device_color", color)
    return cfg


def time_device_augment_op(batch, input_size, heatmap_size, runs=50):
    """Median ms of the flip + colour ops alone on one batch (no network), all cores."""
    import numpy as np
    from hgpipe.joints import NUM_JOINTS
    from hgpipe.tf_compat import import_tf
    from hgpipe.train.augment import augment_on_device
    tf = import_tf()
    graph = tf.Graph()
    with graph.as_default():
        rng = np.random.RandomState(0)
        # variables, not constants: grappler would fold a reverse of a constant away
        images = tf.Variable(rng.uniform(size=(batch, input_size, input_size, 3))
                             .astype(np.float32))
        heatmaps = tf.Variable(rng.uniform(size=(batch, heatmap_size, heatmap_size,
                                                 NUM_JOINTS)).astype(np.float32))
        weights = tf.Variable(np.ones((batch, NUM_JOINTS), np.float32))
        out = augment_on_device(images, heatmaps, weights, True, 0.2)
        # fetch scalar sums: the timing is the ops, not a copy of the result to numpy (and
        # a tf.group of them would let grappler drop the unfetched work)
        fetch = [tf.reduce_sum(out.images), tf.reduce_sum(out.heatmaps),
                 tf.reduce_sum(out.weights)]
        baseline = [tf.reduce_sum(images), tf.reduce_sum(heatmaps), tf.reduce_sum(weights)]
        init = tf.global_variables_initializer()
        with tf.Session(graph=graph) as sess:
            sess.run(init)
            return _ops_ms(sess, fetch, baseline, runs)


def _ops_ms(sess, fetch, baseline, runs):
    """Median ms of ``fetch`` less that of ``baseline`` (the same inputs without the ops
    being timed), each run once first to warm up; never below 0."""
    import numpy as np

    def median_ms(op):
        sess.run(op)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            sess.run(op)
            times.append(time.perf_counter() - start)
        return 1000 * float(np.median(times))
    return max(0.0, median_ms(fetch) - median_ms(baseline))


def device_augment_rows(plain, augmented, op_ms):
    """hg2 step time without and with device-side flip + colour, their ratio, and the
    augmentation ops timed alone against the step."""
    tag = "train.%s.device_augment" % plain.name
    label = "%s (%dpx, batch %d, %d steps)" % (plain.name, plain.input_size, plain.batch_size,
                                               plain.steps)
    return [
        make_row(tag + ".step_ms_off", "train", label + ": median step time, device "
                 "flip/colour off", plain.step_ms, "ms"),
        make_row(tag + ".step_ms_on", "train", label + ": median step time, device flip + "
                 "colour U(0.8,1.2) on", augmented.step_ms, "ms"),
        make_row(tag + ".ratio", "train", "%s: step time with / without device flip + colour"
                 % plain.name, augmented.step_ms / plain.step_ms, "x", DEVICE_AUGMENT_TARGET),
        make_row(tag + ".op_ms", "train", "%s: flip + colour ops alone on one batch (median)"
                 % plain.name, op_ms, "ms"),
        make_row(tag + ".op_fraction", "train", "%s: flip + colour ops alone / step time"
                 % plain.name, 100 * op_ms / plain.step_ms, "% of step", "< 2"),
    ]


DEVICE_GEOMETRY_TARGET = "< 3"   # percent of an hg2 step (issue 20)
CONTEXT_BYTES_TARGET = "< 0.334"  # context bytes / 8 offline variants, per person (issue 20)


def with_device_geometry(cfg):
    """The device-augmentation config with ``[Prepare] geometry = device`` (context
    shards; rotation and scale drawn in the graph as well as flip and colour)."""
    cfg = with_device_augment(cfg)
    cfg.set("Prepare", "geometry", "device")
    return cfg


def time_device_geometry_op(cfg, batch, runs=20):
    """Median ms of the geometry ops alone (draws, bilinear warp, joints, heatmaps,
    colour) on one batch of context crops of ``cfg``'s preset, no network."""
    import numpy as np
    from hgpipe.data.augment import preset_of
    from hgpipe.data.context import context_geometry
    from hgpipe.joints import NUM_JOINTS
    from hgpipe.tf_compat import import_tf
    from hgpipe.train.geometry import device_geometry
    tf = import_tf()
    size, hm = cfg["DataSetHG"]["img_size"], cfg["DataSetHG"]["hm_size"]
    preset = preset_of(cfg["Prepare"])
    geo = context_geometry(preset, size)
    graph = tf.Graph()
    with graph.as_default():
        rng = np.random.RandomState(0)
        context = tf.Variable(rng.randint(0, 255, (batch, geo.side, geo.side, 3))
                              .astype(np.uint8))
        joints = tf.Variable(rng.uniform(0, geo.side, (batch, NUM_JOINTS, 2))
                             .astype(np.float32))
        annotated = tf.Variable(np.ones((batch, NUM_JOINTS), np.float32))
        step = tf.Variable(0, dtype=tf.int64)
        out = device_geometry(context, joints, annotated, preset, size, hm,
                              cfg["Prepare"]["sigma"], geo.density, 0, step, True, 0.2)
        with tf.control_dependencies([out.images, out.heatmaps]):
            advance = tf.assign_add(step, 1)   # a new draw every run, as in training
        fetch = [tf.reduce_sum(out.images), tf.reduce_sum(out.heatmaps), advance]
        baseline = [tf.reduce_sum(tf.cast(context, tf.float32)), tf.reduce_sum(joints)]
        with tf.Session(graph=graph) as sess:
            sess.run(tf.global_variables_initializer())
            return _ops_ms(sess, fetch, baseline, runs)


def device_geometry_rows(plain, geometry, op_ms):
    """hg2 step time on offline crops (device flip + colour) against context crops with
    device rotation, scale, flip and colour; the geometry ops alone against the step."""
    tag = "train.%s.device_geometry" % plain.name
    label = "%s (%dpx, batch %d, %d steps)" % (plain.name, plain.input_size, plain.batch_size,
                                               plain.steps)
    return [
        make_row(tag + ".step_ms_on", "train", label + ": median step time, device geometry "
                 "(context crops; rotation, scale, flip, colour in the graph)",
                 geometry.step_ms, "ms"),
        make_row(tag + ".ratio", "train", "%s: step time device geometry / offline crops with "
                 "device flip + colour" % plain.name, geometry.step_ms / plain.step_ms, "x"),
        make_row(tag + ".op_ms", "train", "%s: geometry ops alone on one batch (median)"
                 % plain.name, op_ms, "ms"),
        make_row(tag + ".op_fraction", "train", "%s: geometry ops alone / step time"
                 % plain.name, 100 * op_ms / plain.step_ms, "% of step",
                 DEVICE_GEOMETRY_TARGET),
    ]


def bytes_per_person_rows(cfg, name, variants=8):
    """Train bytes per person as stored uncompressed (the shard schema's per-sample
    sizes): ``variants`` offline crops + heatmaps against one context crop + joints."""
    import numpy as np
    from hgpipe.data import schema
    from hgpipe.data.augment import preset_of
    from hgpipe.data.context import context_geometry
    size, hm = cfg["DataSetHG"]["img_size"], cfg["DataSetHG"]["hm_size"]

    def sample_bytes(spec):
        return sum(int(np.prod(shape)) * np.dtype(dtype).itemsize
                   for shape, dtype, _ in spec.values())
    offline = variants * sample_bytes(schema.datasets(size, hm, "train"))
    geo = context_geometry(preset_of(cfg["Prepare"]), size)
    context = sample_bytes(schema.datasets(size, hm, "train", geo.side))
    tag = "storage.%s" % name
    return [
        make_row(tag + ".offline_bytes_per_person", "storage", "%s (%dpx): train bytes per "
                 "person, offline %d variants" % (name, size, variants), offline, "B/person"),
        make_row(tag + ".context_bytes_per_person", "storage", "%s (%dpx): train bytes per "
                 "person, device geometry (one %dpx context crop, density %.3f)"
                 % (name, size, geo.side, geo.density), context, "B/person"),
        make_row(tag + ".context_fraction", "storage", "%s: context / offline bytes per person"
                 % name, context / float(offline), "x", CONTEXT_BYTES_TARGET),
    ]
