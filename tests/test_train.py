"""`hgpipe train` on a tiny graph: metrics, resume, SIGTERM, NaN stop, device configs."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO_ROOT, cli_runner, prepare_synthetic_shards
from hgpipe.cli import main

TINY = ["--set", "Network.nStacks=2", "--set", "Network.nFeats=16", "--set", "Network.nLow=2",
        "--set", "Train.batch_size=4", "--set", "Train.log_every=1",
        "--set", "Validation.validate_every=4", "--set", "Saver.saver_step=4",
        "--set", "Saver.keep_checkpoints=3"]


@pytest.fixture(scope="module")
def shards_dir(tmp_path_factory):
    return prepare_synthetic_shards(tmp_path_factory, 9, 3, "Prepare.variants=4")


def train(shards_dir, logdir, *extra):
    return cli_runner().invoke(main, ["train", "--data", shards_dir, "--logdir", logdir] +
                               TINY + list(extra), catch_exceptions=False)


def test_train_reports_metrics_resumes_and_guards_logdir(shards_dir, tmp_path):
    logdir = str(tmp_path / "run")
    result = train(shards_dir, logdir, "--steps", "6")
    assert result.exit_code == 0, result.output + result.stderr
    assert "Final Performance images/sec :" in result.output
    assert "E2E Training Duration sec :" in result.output
    summary = json.load(open(os.path.join(logdir, "train_summary.json")))
    assert summary["global_step"] == 6 and summary["steps_run"] == 6
    assert summary["images_per_sec"] > 0 and 0 <= summary["input_wait_fraction"] < 1
    assert [v["step"] for v in summary["validation"]] == [4, 6]
    # the whole val split by default, whatever the seed's valid_iteration says
    val_total = json.load(open(os.path.join(shards_dir, "manifest.json")))["counts"]["val"]
    assert val_total > 2
    assert "step 4: val PCKh@0.5" in result.output
    assert "(%d persons)" % val_total in result.output
    assert os.path.exists(os.path.join(logdir, "model.ckpt-6.index"))
    assert any(n.startswith("events.") for n in os.listdir(os.path.join(logdir, "train")))

    result = train(shards_dir, logdir, "--steps", "9", "--set", "Validation.val_persons=2",
                   "--set", "Validation.valid_iteration=1")
    assert result.exit_code == 0
    assert "step 8: val PCKh@0.5" in result.output
    assert "(2 of %d persons, subset)" % val_total in result.output
    assert "resumed from" in result.output and "model.ckpt-6" in result.output
    summary = json.load(open(os.path.join(logdir, "train_summary.json")))
    assert summary["global_step"] == 9 and summary["steps_run"] == 3
    # saved at 4, 6 (end), 8, 9 (end): the last three are kept, across the resume too
    kept = sorted(n for n in os.listdir(logdir) if n.endswith(".index"))
    assert kept == ["model.ckpt-6.index", "model.ckpt-8.index", "model.ckpt-9.index"]

    # TensorBoard got what the run measured
    from hgpipe.tf_compat import import_tf
    tf = import_tf()
    tags = set()
    events = os.path.join(logdir, "train")
    for name in os.listdir(events):
        for event in tf.train.summary_iterator(os.path.join(events, name)):
            tags.update(v.tag for v in event.summary.value)
    assert {"loss/total", "loss/stack0", "loss/stack1", "learning_rate",
            "perf/images_per_sec", "perf/input_wait_fraction", "perf/step_time_ms",
            "val/PCKh_mean", "val/predictions"} <= tags

    # a logdir belongs to one network: another architecture is refused, nothing touched
    result = train(shards_dir, logdir, "--steps", "12", "--set", "Network.nFeats=32")
    assert result.exit_code == 1 and "nFeats" in result.stderr
    assert not os.path.exists(os.path.join(logdir, "model.ckpt-12.index"))


def test_nan_loss_stops_without_saving(shards_dir, tmp_path):
    logdir = str(tmp_path / "run")
    assert train(shards_dir, logdir, "--steps", "4").exit_code == 0
    result = train(shards_dir, logdir, "--steps", "40", "--set", "Train.learning_rate=1e30",
                   "--set", "Train.weighted_loss=False")
    assert result.exit_code == 1
    assert "loss became" in result.stderr and "model.ckpt-4" in result.stderr
    saved = sorted(n for n in os.listdir(logdir) if n.endswith(".index"))
    assert saved == ["model.ckpt-4.index"]


def test_sigterm_saves_a_checkpoint_and_rerun_continues(shards_dir, tmp_path):
    logdir = str(tmp_path / "run")
    cmd = [sys.executable, "-m", "hgpipe", "train", "--data", shards_dir, "--logdir", logdir,
           "--steps", "100000"] + TINY + ["--set", "Saver.saver_step=1000000",
                                          "--set", "Validation.validate_every=0"]
    proc = subprocess.Popen(cmd, env=dict(os.environ, PYTHONPATH=REPO_ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    events = os.path.join(logdir, "train")
    deadline = time.time() + 240
    while time.time() < deadline and not (os.path.isdir(events) and os.listdir(events)):
        time.sleep(0.2)
    time.sleep(3)  # a few steps
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=120)[0].decode()
    assert proc.returncode == 130, output
    assert "stopped by signal at step" in output
    step = int(output.split("stopped by signal at step ")[1].split(";")[0])
    assert step > 0 and os.path.exists(os.path.join(logdir, "model.ckpt-%d.index" % step))
    result = train(shards_dir, logdir, "--steps", str(step + 2))
    assert "model.ckpt-%d" % step in result.output
    assert json.load(open(os.path.join(logdir, "train_summary.json")))["steps_run"] == 2


def test_npu_session_config_without_npu_bridge():
    from hgpipe.train.devices import DeviceError, check_device, session_config
    from tensorflow.core.protobuf.rewriter_config_pb2 import RewriterConfig
    config = session_config("npu")
    options = config.graph_options.rewrite_options
    npu = options.custom_optimizers[0]
    assert npu.name == "NpuOptimizer"
    assert npu.parameter_map["use_off_line"].b is True
    assert npu.parameter_map["precision_mode"].s == b"allow_mix_precision"
    assert options.remapping == RewriterConfig.OFF
    assert options.memory_optimization == RewriterConfig.NO_MEM_OPT
    assert session_config("npu", mixed_precision=False).graph_options.rewrite_options \
        .custom_optimizers[0].parameter_map["precision_mode"].s == b"force_fp32"
    assert not session_config("cpu").graph_options.rewrite_options.custom_optimizers
    try:
        import npu_bridge  # noqa: F401
    except ImportError:
        with pytest.raises(DeviceError, match="npu_bridge"):
            check_device("npu")


def test_train_cli_npu_without_bridge_is_one_line(shards_dir, tmp_path):
    pytest.importorskip("tensorflow")
    try:
        import npu_bridge  # noqa: F401
        pytest.skip("npu_bridge is installed here")
    except ImportError:
        pass
    result = train(shards_dir, str(tmp_path / "r"), "--steps", "1", "--device", "npu")
    assert result.exit_code == 1
    assert "npu_bridge" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_dataset_input_and_modelzoo_performance_script(shards_dir, tmp_path):
    """The tf.data input layer trains through the same graph; the seed's ModelZoo
    performance script runs end to end and writes its CaseName log."""
    script = os.path.join(REPO_ROOT, "bin", "train_performance_1p.sh")
    env = dict(os.environ, PYTHON=sys.executable, ASCEND_DEVICE_ID="0")
    cfg = str(tmp_path / "tiny.cfg")
    with open(cfg, "w") as out:
        out.write("[Network]\nnStacks = 1\nnFeats = 16\nnLow = 2\n[Train]\nbatch_size = 4\n"
                  "[Validation]\nvalidate_every = 3\n")
    proc = subprocess.run(["bash", script, "--data_path=%s" % shards_dir, "--device=cpu",
                           "--config=%s" % cfg, "--steps=3"], cwd=str(tmp_path), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    output = proc.stdout.decode()
    assert proc.returncode == 0, output
    assert "Final Performance images/sec :" in output and "E2E Training Duration sec :" in output
    case = os.path.join(str(tmp_path), "output", "0",
                        "Hourglass_ID0155_for_TensorFlow_bs4_1p_perf.log")
    fields = dict(line.split(" = ", 1) for line in open(case).read().splitlines())
    assert set(fields) == {"Network", "RankSize", "BatchSize", "DeviceType", "CaseName",
                           "ActualFPS", "TrainingTime", "TrainAccuracy", "ActualLoss",
                           "E2ETrainingTime"}
    assert float(fields["ActualFPS"]) > 0 and fields["BatchSize"] == "4"

    logdir = os.path.join(str(tmp_path), "output", "0", "ckpt")
    result = cli_runner().invoke(main, ["train", "--data", shards_dir, "--logdir", logdir,
                                        "--config", cfg, "--steps", "5", "--input", "dataset"],
                                 catch_exceptions=False)
    assert result.exit_code == 0, result.output + result.stderr
    summary = json.load(open(os.path.join(logdir, "train_summary.json")))
    assert summary["input_mode"] == "dataset" and summary["global_step"] == 5
