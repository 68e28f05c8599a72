"""Rows 5: data parallel on this machine's CPU: 2 Horovod/Gloo processes against 1.

Three measurements, side by side in one run:

* the real Trainer (``hgpipe train``) for a few steps in one process, and the same under
  ``horovodrun -np 2 --gloo ... --distributed horovod`` (global images/s); scaling
  efficiency = 2-process images/s / (2 x 1-process images/s);
* the time of one all-reduce of the model's whole gradient (as many float32 as it has
  trainable parameters) between the 2 processes, against the 2-process step time.

On one CPU box both processes share the same cores, so the efficiency says what the
collective and the oversubscription cost, not what 2 GPUs would gain. Skipped, with a
note, when Horovod is not installed (``bin/test`` builds it into the py37-tf115 and
py311-tf215-hvd lanes).
"""
import json
import os
import subprocess
import sys
import time

from hgpipe.bench.report import make_row

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def horovodrun_path():
    """horovodrun beside this Python, or None when horovod.tensorflow does not import."""
    try:
        import horovod.tensorflow  # noqa: F401
    except Exception:  # ImportError, or a build that does not load against this TF
        return None
    path = os.path.join(os.path.dirname(sys.executable), "horovodrun")
    return path if os.path.isfile(path) else None


def _env():
    path = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=_REPO_ROOT + (os.pathsep + path if path else ""),
                HGPIPE_QUIET_TF="1", TF_CPP_MIN_LOG_LEVEL="2")


def _gloo(np_):
    # `python horovodrun`: a relocated virtualenv's scripts may name a stale interpreter
    return [sys.executable, horovodrun_path(), "-np", str(np_), "-H", "localhost:%d" % np_,
            "--gloo"]


def _run(cmd, what):
    proc = subprocess.run(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError("%s failed (exit %d): %s" % (
            what, proc.returncode, proc.stdout.decode(errors="replace")[-2000:]))


def _train(config, shards_dir, steps, logdir, ranks):
    cmd = [sys.executable, "-m", "hgpipe", "train", "--config", config, "--data", shards_dir,
           "--logdir", logdir, "--steps", str(steps), "--no-resume",
           "--set", "Validation.validate_every=0", "--set", "Saver.saver_step=1000000000"]
    if ranks > 1:
        cmd = _gloo(ranks) + cmd + ["--distributed", "horovod"]
    _run(cmd, "training on %d process(es)" % ranks)
    with open(os.path.join(logdir, "train_summary.json")) as handle:
        return json.load(handle)


def measure_distributed(config, shards_dir, steps, work, allreduce_repeats=10):
    """(summary of 1 process, summary of 2 processes, all-reduce seconds, floats)."""
    one = _train(config, shards_dir, steps, os.path.join(work, "dist_1p"), 1)
    two = _train(config, shards_dir, steps, os.path.join(work, "dist_2p"), 2)
    from hgpipe.config import load_config
    floats = trainable_parameters(load_config(config))
    out = os.path.join(work, "allreduce.json")
    _run(_gloo(2) + [sys.executable, "-m", "hgpipe.bench.distributed", "allreduce",
                     str(floats), str(allreduce_repeats), out], "the all-reduce timing")
    with open(out) as handle:
        seconds = json.load(handle)["median_seconds"]
    return one, two, seconds, floats


def trainable_parameters(cfg):
    """Number of trainable float32 values of the config's model (= gradient size)."""
    from hgpipe.model.hourglass import build_hourglass, count_parameters
    from hgpipe.model.inference import model_kwargs
    from hgpipe.tf_compat import import_tf
    tf = import_tf()
    size = cfg["DataSetHG"]["img_size"]
    with tf.Graph().as_default() as graph:
        build_hourglass(tf.zeros((1, size, size, 3)), is_training=True, **model_kwargs(cfg))
        return int(count_parameters(graph))


def distributed_rows(name, one, two, allreduce_seconds, floats):
    label = "%s (batch %d per process)" % (name, one["batch_size"])
    rate1, rate2 = one["images_per_sec"], two["images_per_sec"]
    step2 = two["step_time_ms_median"]
    return [
        make_row("dist.1p.images_per_sec", "distributed", label + ": 1 process, images/s",
                 rate1, "images/s"),
        make_row("dist.2p.images_per_sec", "distributed", label + ": 2 Horovod/Gloo "
                 "processes, global images/s", rate2, "images/s"),
        make_row("dist.scaling", "distributed", "scaling efficiency: 2-process images/s / "
                 "(2 x 1-process)", rate2 / (2 * rate1), "x"),
        make_row("dist.2p.step_ms", "distributed", label + ": 2 processes, median step",
                 step2, "ms"),
        make_row("dist.allreduce_ms", "distributed", "all-reduce of the whole gradient "
                 "(%d float32) between 2 processes" % floats, 1000 * allreduce_seconds, "ms"),
        make_row("dist.allreduce_share", "distributed", "all-reduce / 2-process step time",
                 1000 * allreduce_seconds / step2, "x"),
    ]


def _time_allreduce(floats, repeats, out):
    """Run under horovodrun: median seconds of an all-reduce of ``floats`` float32."""
    import numpy as np
    from hgpipe.train.distributed import backend
    from hgpipe.tf_compat import import_tf
    tf = import_tf()
    dist = backend("horovod")
    value = tf.placeholder(tf.float32, (floats,))
    total = dist.sum_across_ranks(value)
    data = np.ones(floats, np.float32)
    times = []
    with tf.Session() as sess:
        for _ in range(repeats + 1):  # the first one negotiates and allocates
            start = time.perf_counter()
            sess.run(total, {value: data})
            times.append(time.perf_counter() - start)
    if dist.is_chief:
        with open(out, "w") as handle:
            json.dump({"median_seconds": float(np.median(times[1:])), "floats": floats}, handle)


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "allreduce":
    _time_allreduce(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
