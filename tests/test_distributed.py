"""Data-parallel training: 2 Horovod/Gloo processes on the CPU, the HCCL backend's
environment and session config without npu_bridge, and the 8p launch scripts.

The Horovod tests skip when horovod.tensorflow is not importable; bin/test runs them on
the py37-tf115 lane and on the py311-tf215-hvd lane (TF 2.15.1, the TF 2 that Horovod
0.28.1 compiles against and that was checked at run time).
"""
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT

HERE = os.path.dirname(os.path.abspath(__file__))


def _horovod():
    try:
        import horovod.tensorflow  # noqa: F401
    except Exception as exc:  # ImportError, or a build that does not load
        pytest.skip("horovod.tensorflow is not importable here: %s" % exc)
    return os.path.join(os.path.dirname(sys.executable), "horovodrun")


def horovodrun(args, timeout=300, env=None, retry=True, before_retry=None, **popen):
    """``horovodrun -np 2 -H localhost:2 --gloo`` + args; the finished process.

    Each run here takes 30-60 s on 2 loaded cores. One that outlives ``timeout`` is a
    hang: every rank gets SIGABRT, which faulthandler (PYTHONFAULTHANDLER) answers with
    the Python stack of each of its threads. Horovod 0.28.1's Gloo controller hangs a
    2-rank run about once in 65 here, with or without its response cache (one rank's
    background thread inside a controller collective, the other between cycles: gdb
    stacks in docs/distributed.md), which no hgpipe code can prevent; so a hung run is
    reported on stderr with its stacks and run once more (``before_retry`` resets what it
    wrote), and a second hang fails the test with the stacks."""
    for attempt in (1, 2):
        proc, output, hung = _horovodrun_once(args, timeout, env, popen.get("cwd"))
        if not hung:
            return proc
        report = ("horovodrun hung for %d s (attempt %d); the ranks' stacks at SIGABRT:\n%s"
                  % (timeout, attempt, output.decode(errors="replace")[-12000:]))
        if attempt == 2 or not retry:
            pytest.fail(report)
        sys.stderr.write(report + "\n")
        if before_retry is not None:
            before_retry()


def _horovodrun_once(args, timeout, env, cwd):
    import signal
    # run as `python horovodrun`: the script's #! names the venv's build-time folder
    cmd = [sys.executable, _horovod(), "-np", "2", "-H", "localhost:2", "--gloo"] + list(args)
    import psutil  # a dependency of horovod
    full_env = dict(os.environ, PYTHONPATH=REPO_ROOT, HGPIPE_QUIET_TF="1",
                    TF_CPP_MIN_LOG_LEVEL="2", OMP_NUM_THREADS="1", PYTHONFAULTHANDLER="1",
                    **(env or {}))
    proc = subprocess.Popen(cmd, env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, cwd=cwd)
    try:
        output = proc.communicate(timeout=timeout)[0]
        return subprocess.CompletedProcess(cmd, proc.returncode, output, None), output, False
    except subprocess.TimeoutExpired:
        for child in psutil.Process(proc.pid).children(recursive=True):
            try:
                if "HOROVOD_RANK" in child.environ() and child.name().startswith("python"):
                    child.send_signal(signal.SIGABRT)
            except psutil.Error:  # gone meanwhile
                pass
        try:
            output = proc.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            output = proc.communicate()[0]
        return None, output, True


def _load(out, rank):
    with np.load(os.path.join(out, "rank%d.npz" % rank)) as data:
        return {k: data[k] for k in data.files}


# --------------------------------------------------------------------- 2 Horovod ranks
def test_ranks_hold_identical_weights_after_every_step(tmp_path):
    steps = 3
    proc = horovodrun([sys.executable, os.path.join(HERE, "hvd_worker.py"), "sync",
                       str(tmp_path), str(steps)])
    assert proc.returncode == 0, proc.stdout.decode()[-3000:]
    ranks = [_load(str(tmp_path), r) for r in (0, 1)]
    assert int(ranks[0]["size"]) == 2
    checked = 0
    for step in range(steps + 1):
        keys = [k for k in ranks[0] if k.startswith("%d/" % step)]
        assert keys
        for key in keys:
            if "moving_" in key:
                continue  # batch-norm statistics: each rank's own batches (see below)
            np.testing.assert_array_equal(ranks[0][key], ranks[1][key], err_msg=key)
            checked += 1
        if step > 0:  # the step really changed the weights
            changed = [k for k in keys if "/weights" in k and not np.array_equal(
                ranks[0][k], ranks[0][k.replace("%d/" % step, "%d/" % (step - 1), 1)])]
            assert changed, "step %d changed no weight" % step
    assert checked > 100
    # the ranks trained on different data: their batch-norm moving statistics differ
    # (only rank 0's are saved; every rank gets them back by the broadcast on resume)
    moving = [k for k in ranks[0] if k.startswith("%d/" % steps) and "moving_mean" in k]
    assert moving and any(not np.array_equal(ranks[0][k], ranks[1][k]) for k in moving)


def test_averaged_gradient_equals_union_batch_gradient(tmp_path):
    """One SGD step (lr 1) through Horovod's averaging on 2 ranks moves the weights by
    exactly the gradient of both ranks' batches together, computed here in one process."""
    proc = horovodrun([sys.executable, os.path.join(HERE, "hvd_worker.py"), "gradient",
                       str(tmp_path)])
    assert proc.returncode == 0, proc.stdout.decode()[-3000:]
    ranks = [_load(str(tmp_path), r) for r in (0, 1)]
    names = sorted(k[len("before/"):] for k in ranks[0] if k.startswith("before/"))
    for name in names:  # the broadcast made the ranks agree, and the step kept them so
        np.testing.assert_array_equal(ranks[0]["before/" + name], ranks[1]["before/" + name])
        np.testing.assert_array_equal(ranks[0]["after/" + name], ranks[1]["after/" + name])

    sys.path.insert(0, HERE)
    import hvd_worker
    from hgpipe.tf_compat import import_tf
    tf = import_tf()
    graph = tf.Graph()
    with graph.as_default():
        images, heatmaps, loss = hvd_worker.inference_mode_model(tf)
        variables = tf.trainable_variables()
        assert sorted(v.name for v in variables) == names
        gradients = tf.gradients(loss, variables)
        halves = [hvd_worker.rank_batch(r, 0) for r in (0, 1)]
        feed = {images: np.concatenate([h["images"] for h in halves]),
                heatmaps: np.concatenate([h["heatmaps"] for h in halves])}
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())  # moving statistics: 0 and 1
            for v in variables:
                v.load(ranks[0]["before/" + v.name], sess)
            union = sess.run(gradients, feed)
    largest = max(float(np.abs(g).max()) for g in union)
    assert largest > 0
    for v, g in zip(variables, union):
        step = ranks[0]["before/" + v.name] - ranks[0]["after/" + v.name]
        np.testing.assert_allclose(step, g, rtol=1e-4, atol=1e-6 * largest, err_msg=v.name)


def test_trainer_ranks_partition_each_epoch(shards_dir, tmp_path):
    """The reader the Trainer builds on each Horovod rank: disjoint batches whose union
    is the epoch (less a remainder smaller than one global batch), reshuffled per epoch."""
    proc = horovodrun([sys.executable, os.path.join(HERE, "hvd_worker.py"), "partition",
                       str(tmp_path), shards_dir])
    assert proc.returncode == 0, proc.stdout.decode()[-3000:]
    ranks = [_load(str(tmp_path), r) for r in (0, 1)]
    total = int(ranks[0]["total"])
    for epoch in ("epoch0", "epoch1"):
        seen = np.concatenate([r[epoch].ravel() for r in ranks])
        assert len(np.unique(seen)) == len(seen)            # nothing twice
        assert 0 <= total - len(seen) < 2 * 4               # all but a remainder
        assert ranks[0][epoch].shape == ranks[1][epoch].shape
    assert not np.array_equal(ranks[0]["epoch0"], ranks[0]["epoch1"])


# ------------------------------------------------------- learning rate and batch size
def test_linear_lr_scaling_ramps_over_the_warmup():
    from hgpipe.tf_compat import import_tf
    from hgpipe.train.distributed import scaled_learning_rate
    tf = import_tf()
    with tf.Graph().as_default():
        step = tf.placeholder(tf.int64, ())
        base = tf.constant(0.5)
        ramp = scaled_learning_rate(tf, base, step, 4, "linear", 10)
        jump = scaled_learning_rate(tf, base, step, 4, "linear", 0)
        assert scaled_learning_rate(tf, base, step, 4, "none", 10) is base
        assert scaled_learning_rate(tf, base, step, 1, "linear", 10) is base
        with tf.Session() as sess:
            values = [sess.run(ramp, {step: s}) for s in (0, 5, 10, 50)]
            assert sess.run(jump, {step: 0}) == pytest.approx(2.0)
    assert values == pytest.approx([0.5, 0.5 * 2.5, 2.0, 2.0])


# ------------------------------------------------------------------ HCCL (no npu_bridge)
def _rank_table(tmp_path):
    path = str(tmp_path / "rank_table.json")
    with open(path, "w") as out:
        json.dump({"server_count": "1", "status": "completed"}, out)
    return path


def test_hccl_environment_is_parsed_and_checked(tmp_path):
    from hgpipe.train.distributed import DistributedError, Hccl, backend, hccl_env
    table = _rank_table(tmp_path)
    env = {"RANK_ID": "3", "RANK_SIZE": "8", "ASCEND_DEVICE_ID": "3", "RANK_TABLE_FILE": table}
    assert hccl_env(env) == (3, 8, 3, table)
    hccl = Hccl(env)
    assert (hccl.rank, hccl.size, hccl.local_rank, hccl.is_chief) == (3, 8, 3, False)
    assert hccl_env({"RANK_ID": "0", "RANK_SIZE": "1", "DEVICE_ID": "5"}) == (0, 1, 5, None)
    bad = [({}, "RANK_SIZE is not set"),
           (dict(env, RANK_ID="8"), "RANK_ID=8 is outside 0..7"),
           (dict(env, RANK_SIZE="eight"), "RANK_SIZE='eight' is not an integer"),
           (dict(env, RANK_TABLE_FILE=""), "RANK_TABLE_FILE is not set"),
           (dict(env, RANK_TABLE_FILE=table + ".missing"), "RANK_TABLE_FILE does not exist"),
           ({"RANK_ID": "0", "RANK_SIZE": "2", "RANK_TABLE_FILE": table},
            "ASCEND_DEVICE_ID is not set")]
    for environ, message in bad:
        with pytest.raises(DistributedError, match=message):
            hccl_env(environ)
    with pytest.raises(DistributedError, match="use --device npu"):
        backend("hccl", "cpu", env)
    with pytest.raises(DistributedError, match="on Ascend use hccl"):
        backend("horovod", "npu")
    with pytest.raises(DistributedError, match="unknown distributed backend"):
        backend("mpi", "cpu")


def test_hccl_session_config_and_missing_bridge(tmp_path):
    from hgpipe.train.devices import session_config
    from hgpipe.train.distributed import DistributedError, backend
    env = {"RANK_ID": "1", "RANK_SIZE": "2", "ASCEND_DEVICE_ID": "1",
           "RANK_TABLE_FILE": _rank_table(tmp_path)}
    hccl = backend("hccl", "npu", env)
    config = hccl.session_config(session_config("npu"), "npu")
    npu = config.graph_options.rewrite_options.custom_optimizers[0]
    assert npu.name == "NpuOptimizer" and npu.parameter_map["hcom_parallel"].b is True
    assert npu.parameter_map["use_off_line"].b is True
    try:
        import npu_bridge  # noqa: F401
        pytest.skip("npu_bridge is installed here")
    except ImportError:
        pass
    from hgpipe.tf_compat import import_tf
    tf = import_tf()
    with tf.Graph().as_default():
        with pytest.raises(DistributedError, match="npu_bridge"):
            hccl.distribute_optimizer(tf.train.GradientDescentOptimizer(1.0))


def test_npu_bridge_names_used_exist_in_its_api():
    """Every npu_bridge module and name the distributed backend uses is in Huawei's API
    list (../shared/npu_bridge_api.txt), keywords included."""
    api_path = os.path.join(os.path.dirname(REPO_ROOT), "shared", "npu_bridge_api.txt")
    if not os.path.isfile(api_path):
        pytest.skip("../shared/npu_bridge_api.txt is not available")
    api = open(api_path).read()
    for name in ("npu_bridge.estimator.npu.npu_optimizer.NPUDistributedOptimizer.__init__"
                 "(self, optimizer,",
                 "npu_bridge.estimator.npu.npu_hook.broadcast_global_variables(root_rank)",
                 "npu_bridge.hccl.hccl_ops.allreduce(tensor, reduction,",
                 "npu_bridge.hccl.hccl_ops.allgather(tensor, rank_size,",
                 "NPULossScaleOptimizer.__init__(self, opt, loss_scale_manager, "
                 "is_distributed=False)",
                 "hcom_parallel="):
        assert name in api, name
    source = open(os.path.join(REPO_ROOT, "hgpipe", "train", "distributed.py")).read()
    assert "from npu_bridge.estimator.npu import npu_hook, npu_optimizer" in source
    assert "from npu_bridge.hccl import hccl_ops" in source


# ----------------------------------------------------------------- the 8p launch script
STUB = """#!/usr/bin/env bash
# stands in for python: records how the 8p script launched this rank (other uses of
# $PYTHON, such as reading train_summary.json, go to the real python3)
[ "$1" = -m ] || exec python3 "$@"
out="$STUB_OUT/rank$RANK_ID.txt"
echo "RANK_ID=$RANK_ID RANK_SIZE=$RANK_SIZE ASCEND_DEVICE_ID=$ASCEND_DEVICE_ID" > "$out"
echo "RANK_TABLE_FILE=$RANK_TABLE_FILE" >> "$out"
echo "ARGS $*" >> "$out"
echo "training rank $RANK_ID"
logdir=""; prev=""
for a in "$@"; do [ "$prev" = --logdir ] && logdir="$a"; prev="$a"; done
if [ "$RANK_ID" = 0 ]; then
  mkdir -p "$logdir"
  echo '{"batch_size": 4, "images_per_sec": 123.456, "step_time_ms_median": 65.0,
         "final_loss": 0.5, "validation": [{"step": 3, "pckh": 42.0}]}' \\
    > "$logdir/train_summary.json"
fi
exit "${STUB_EXIT:-0}"
"""


def _run_8p(tmp_path, script, *args, **env):
    stub = str(tmp_path / "python-stub")
    with open(stub, "w") as out:
        out.write(STUB)
    os.chmod(stub, 0o755)
    shards = tmp_path / "shards"
    shards.mkdir(exist_ok=True)
    (shards / "manifest.json").write_text("{}")
    stub_out = tmp_path / "calls"
    stub_out.mkdir(exist_ok=True)
    full_env = dict(os.environ, PYTHON=stub, STUB_OUT=str(stub_out))
    for name in ("RANK_TABLE_FILE", "RANK_ID_START", "DEVICE_NUM"):
        full_env.pop(name, None)
    full_env.update(env)
    return subprocess.run(["bash", os.path.join(REPO_ROOT, "bin", script),
                           "--data_path=%s" % shards] + list(args),
                          cwd=str(tmp_path), env=full_env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=600)


def test_8p_script_launches_one_process_per_device(tmp_path):
    table = _rank_table(tmp_path)
    proc = _run_8p(tmp_path, "train_performance_8p.sh", "--rank_table_file=%s" % table,
                   RANK_SIZE="3")
    output = proc.stdout.decode()
    assert proc.returncode == 0, output
    calls = sorted(glob.glob(str(tmp_path / "calls" / "rank*.txt")))
    assert [os.path.basename(c) for c in calls] == ["rank0.txt", "rank1.txt", "rank2.txt"]
    logdir = str(tmp_path / "output" / "ckpt_perf")
    for rank, path in enumerate(calls):
        lines = open(path).read().splitlines()
        assert lines[0] == "RANK_ID=%d RANK_SIZE=3 ASCEND_DEVICE_ID=%d" % (rank, rank)
        assert lines[1] == "RANK_TABLE_FILE=%s" % table
        args = lines[2].split()
        assert args[1:4] == ["-m", "hgpipe", "train"]
        assert args[args.index("--logdir") + 1] == logdir  # one logdir, rank 0 writes it
        assert args[args.index("--distributed") + 1] == "hccl"
        assert args[args.index("--device") + 1] == "npu"
        assert args[args.index("--steps") + 1] == "1000"
        device_log = tmp_path / "output" / str(rank) / ("train_%d.log" % rank)
        assert "training rank %d" % rank in device_log.read_text()
    assert "Final Performance images/sec : 123.46" in output
    case = tmp_path / "output" / "0" / "Hourglass_ID0155_for_TensorFlow_bs4_3p_perf.log"
    fields = dict(line.split(" = ", 1) for line in case.read_text().splitlines())
    assert fields["RankSize"] == "3" and fields["ActualFPS"] == "123.46"
    assert fields["TrainAccuracy"] == "42.00"


def test_8p_script_refuses_without_rank_table_and_reports_a_failed_device(tmp_path):
    proc = _run_8p(tmp_path, "train_full_8p.sh", RANK_SIZE="2")
    assert proc.returncode == 1 and "RANK_TABLE_FILE" in proc.stdout.decode()
    assert not glob.glob(str(tmp_path / "calls" / "*"))
    table = _rank_table(tmp_path)
    proc = _run_8p(tmp_path, "train_full_8p.sh", RANK_SIZE="2", RANK_TABLE_FILE=table,
                   STUB_EXIT="3")
    output = proc.stdout.decode()
    assert proc.returncode == 1 and "training failed on device(s) 0 1" in output
    assert not (tmp_path / "output" / "0" / "Hourglass_ID0155_for_TensorFlow_bs4_2p_acc.log"
                ).exists()


# ------------------------------------------------------- hgpipe train on 2 Horovod ranks
TINY = ["--set", "Network.nStacks=1", "--set", "Network.nFeats=16", "--set", "Network.nLow=2",
        "--set", "Train.batch_size=4", "--set", "Train.log_every=1",
        "--set", "Validation.validate_every=0", "--set", "Saver.saver_step=4",
        "--set", "Saver.keep_checkpoints=3"]


@pytest.fixture(scope="module")
def shards_dir(tmp_path_factory):
    _horovod()
    from conftest import prepare_synthetic_shards
    return prepare_synthetic_shards(tmp_path_factory, 9, 3, "Prepare.variants=4")


def _train_cmd(shards_dir, logdir, steps):
    return [sys.executable, "-m", "hgpipe", "train", "--data", shards_dir, "--logdir", logdir,
            "--steps", str(steps), "--distributed", "horovod"] + TINY


def test_two_ranks_train_then_a_killed_rank_stops_the_job_and_rerun_resumes(shards_dir,
                                                                           tmp_path):
    import signal
    import time
    import shutil
    logdir = str(tmp_path / "run")
    proc = horovodrun(_train_cmd(shards_dir, logdir, 4),
                      before_retry=lambda: shutil.rmtree(logdir, ignore_errors=True))
    output = proc.stdout.decode()
    assert proc.returncode == 0, output[-3000:]
    # rank 0 alone reports the ModelZoo lines and writes the logdir
    assert output.count("Final Performance images/sec :") == 1
    assert "rank 0 of 2 (horovod)" in output and "rank 1 of 2 (horovod)" in output
    summary = json.load(open(os.path.join(logdir, "train_summary.json")))
    assert summary["ranks"] == 2 and summary["global_batch_size"] == 8
    assert summary["global_step"] == 4 and len(summary["per_rank"]) == 2
    from hgpipe.train.distributed import global_throughput
    rate, wait = global_throughput(summary["per_rank"], 4)
    assert summary["images_per_sec"] == pytest.approx(rate) and rate > 0
    assert summary["per_rank"][1]["timed_steps"] == 3
    assert len(os.listdir(os.path.join(logdir, "train"))) == 1  # one events file

    # a rank dies: the job ends with a clear message instead of hanging
    import psutil  # a dependency of horovod
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, HGPIPE_QUIET_TF="1", TF_CPP_MIN_LOG_LEVEL="2",
               OMP_NUM_THREADS="1")
    launcher = [sys.executable, _horovod(), "-np", "2", "-H", "localhost:2", "--gloo"]
    run = subprocess.Popen(launcher + _train_cmd(shards_dir, logdir, 100000), env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not os.path.exists(
                os.path.join(logdir, "model.ckpt-8.index")):
            assert run.poll() is None, run.stdout.read().decode()[-3000:]
            time.sleep(0.2)
        victims = [p for p in psutil.Process(run.pid).children(recursive=True)
                   if p.environ().get("HOROVOD_RANK") == "1" and "hgpipe" in p.cmdline()]
        assert len(victims) == 1
        victims[0].send_signal(signal.SIGKILL)
        output = run.communicate(timeout=240)[0].decode()
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode != 0
    # whichever comes first: the surviving rank's failed all-reduce (hgpipe's message) or
    # horovodrun ending the job after the dead rank's exit (Horovod's)
    assert ("another rank died or stopped" in output or
            "one or more processes exited with non-zero status" in output), output[-3000:]
    saved = sorted(int(n.split("-")[1].split(".")[0]) for n in os.listdir(logdir)
                   if n.endswith(".index"))
    last = saved[-1]
    assert last >= 8

    # rerun: every rank resumes from rank 0's last checkpoint
    proc = horovodrun(_train_cmd(shards_dir, logdir, last + 2), retry=False)
    output = proc.stdout.decode()
    assert proc.returncode == 0, output[-3000:]
    assert output.count("resumed from %s" % os.path.join(logdir, "model.ckpt-%d" % last)) == 2
    summary = json.load(open(os.path.join(logdir, "train_summary.json")))
    assert summary["global_step"] == last + 2 and summary["steps_run"] == 2
