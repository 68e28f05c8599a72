"""The ModelZoo scripts: performance and full runs keep separate logdirs, a second
performance run trains its steps again, and every run writes its CaseName log."""
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, prepare_synthetic_shards


@pytest.fixture(scope="module")
def shards_dir(tmp_path_factory):
    return prepare_synthetic_shards(tmp_path_factory, 6, 4, "Prepare.variants=2")


def run_script(name, shards_dir, cwd, cfg, steps):
    script = os.path.join(REPO_ROOT, "bin", name)
    env = dict(os.environ, PYTHON=sys.executable, ASCEND_DEVICE_ID="0")
    proc = subprocess.run(["bash", script, "--data_path=%s" % shards_dir, "--device=cpu",
                           "--config=%s" % cfg, "--steps=%d" % steps], cwd=cwd, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    output = proc.stdout.decode()
    assert proc.returncode == 0, output
    return output


def case_log(cwd, suffix):
    path = os.path.join(cwd, "output", "0", "Hourglass_ID0155_for_TensorFlow_bs2_1p_%s.log"
                        % suffix)
    fields = dict(line.split(" = ", 1) for line in open(path).read().splitlines())
    os.remove(path)
    return fields


@pytest.mark.slow
def test_performance_and_full_runs_do_not_share_checkpoints(shards_dir, tmp_path):
    cwd = str(tmp_path)
    cfg = str(tmp_path / "tiny.cfg")
    with open(cfg, "w") as out:
        out.write("[DataSetHG]\nimg_size = 64\nhm_size = 16\n[Network]\nnStacks = 1\n"
                  "nFeats = 8\nnLow = 1\n[Train]\nbatch_size = 2\n"
                  "[Validation]\nvalidate_every = 0\n")
    for _ in range(2):  # the second performance run trains its 2 steps again
        output = run_script("train_performance_1p.sh", shards_dir, cwd, cfg, 2)
        assert "Final Performance images/sec :" in output
        fields = case_log(cwd, "perf")
        assert fields["CaseName"] == "Hourglass_ID0155_for_TensorFlow_bs2_1p_perf"
        assert float(fields["ActualFPS"]) > 0 and float(fields["TrainingTime"]) > 0
        summary = json.load(open(os.path.join(cwd, "output", "0", "ckpt_perf",
                                              "train_summary.json")))
        assert summary["steps_run"] == 2 and summary["global_step"] == 2

    # the full run starts at step 0, not at the performance run's checkpoint
    run_script("train_full_1p.sh", shards_dir, cwd, cfg, 3)
    summary = json.load(open(os.path.join(cwd, "output", "0", "ckpt", "train_summary.json")))
    assert summary["steps_run"] == 3 and summary["global_step"] == 3
    first = case_log(cwd, "acc")
    assert first["BatchSize"] == "2"
    # rerun of a finished full run: 0 steps to train; the run's summary is kept, so the
    # script reports the run's own figures again
    output = run_script("train_full_1p.sh", shards_dir, cwd, cfg, 3)
    again = case_log(cwd, "acc")
    assert again["CaseName"].endswith("_acc") and again["ActualFPS"] == first["ActualFPS"]
    assert float(again["ActualFPS"]) > 0
    assert "Final Performance images/sec :" in output
