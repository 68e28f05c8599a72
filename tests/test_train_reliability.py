"""train under mistakes and accidents: a moved logdir, two runs on one logdir, resumes
that do not fit, damaged shards, a finished run rerun, weights that blow up."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO_ROOT, cli_runner, prepare_synthetic_shards
from hgpipe.cli import main

TINY = ["--set", "Network.nStacks=1", "--set", "Network.nFeats=8", "--set", "Network.nLow=1",
        "--set", "Train.batch_size=2", "--set", "Validation.validate_every=0",
        "--set", "Saver.saver_step=2", "--set", "Saver.keep_checkpoints=2"]


@pytest.fixture(scope="module")
def shards_dir(tmp_path_factory):
    return prepare_synthetic_shards(tmp_path_factory, 6, 7, "Prepare.variants=2")


def train(shards_dir, logdir, *extra):
    return cli_runner().invoke(main, ["train", "--data", shards_dir, "--logdir", logdir] +
                               TINY + list(extra))


def index_files(logdir):
    return sorted(n for n in os.listdir(logdir) if n.endswith(".index"))


def one_line_error(result):
    assert result.exit_code == 1, result.output + result.stderr
    assert "Traceback" not in result.output + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_moved_logdir_resumes_from_its_own_checkpoints(shards_dir, tmp_path):
    first = os.path.abspath(str(tmp_path / "first"))
    assert train(shards_dir, first, "--steps", "4").exit_code == 0
    state = open(os.path.join(first, "checkpoint")).read()
    assert tmp_path.name not in state  # names relative to the folder
    # a state file written by an older hgpipe (absolute paths), then the folder moved
    with open(os.path.join(first, "checkpoint"), "w") as out:
        out.write('model_checkpoint_path: "%s/model.ckpt-4"\n'
                  'all_model_checkpoint_paths: "%s/model.ckpt-2"\n'
                  'all_model_checkpoint_paths: "%s/model.ckpt-4"\n' % ((first,) * 3))
    moved = str(tmp_path / "moved")
    shutil.move(first, moved)
    result = train(shards_dir, moved, "--steps", "6")
    assert result.exit_code == 0, result.output + result.stderr
    assert "resumed from %s" % os.path.join(moved, "model.ckpt-4") in result.output
    summary = json.load(open(os.path.join(moved, "train_summary.json")))
    assert summary["global_step"] == 6 and summary["steps_run"] == 2
    assert index_files(moved) == ["model.ckpt-4.index", "model.ckpt-6.index"]
    assert "/" not in open(os.path.join(moved, "checkpoint")).read()


def test_unmatched_checkpoints_are_refused_not_restarted(shards_dir, tmp_path):
    logdir = str(tmp_path / "run")
    assert train(shards_dir, logdir, "--steps", "4").exit_code == 0
    with open(os.path.join(logdir, "checkpoint"), "w") as out:
        out.write('model_checkpoint_path: "/elsewhere/model.ckpt-99"\n')
    before = index_files(logdir)
    line = one_line_error(train(shards_dir, logdir, "--steps", "8"))
    assert "model.ckpt-99" in line and "model.ckpt-4" in line
    assert index_files(logdir) == before
    # without any index file the newest checkpoint is the run's state
    os.remove(os.path.join(logdir, "checkpoint"))
    result = train(shards_dir, logdir, "--steps", "6")
    assert result.exit_code == 0 and "model.ckpt-4" in result.output


def test_two_trains_on_one_logdir_the_second_is_refused(shards_dir, tmp_path):
    logdir = str(tmp_path / "run")
    cmd = [sys.executable, "-m", "hgpipe", "train", "--data", shards_dir, "--logdir", logdir,
           "--steps", "100000"] + TINY + ["--set", "Saver.saver_step=1000000"]
    proc = subprocess.Popen(cmd, env=dict(os.environ, PYTHONPATH=REPO_ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        lock = os.path.join(logdir, ".hgpipe.lock")
        deadline = time.time() + 240
        while time.time() < deadline and not (os.path.exists(lock) and
                                               "pid" in open(lock).read()):
            time.sleep(0.1)
        line = one_line_error(train(shards_dir, logdir, "--steps", "3"))
        assert "in use by another hgpipe run (pid %d" % proc.pid in line
        assert not os.path.exists(os.path.join(logdir, "model.ckpt-3.index"))
        events, deadline = os.path.join(logdir, "train"), time.time() + 300
        while time.time() < deadline and not (os.path.isdir(events) and os.listdir(events)):
            time.sleep(0.1)
        time.sleep(5)  # past start-up (signal handlers installed): a few steps
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=120)[0].decode()
    # the first run was not disturbed: it trained on and saved its own checkpoint
    assert proc.returncode == 130 and "stopped by signal at step" in output, output


def test_a_failed_resume_does_not_poison_the_logdir(shards_dir, tmp_path):
    logdir = str(tmp_path / "run")
    assert train(shards_dir, logdir, "--steps", "2").exit_code == 0
    config_ini = os.path.join(logdir, "config.ini")
    os.remove(config_ini)
    # no config.ini: the checkpoint's shapes say it is another network
    line = one_line_error(train(shards_dir, logdir, "--steps", "4",
                                "--set", "Network.nFeats=16"))
    assert "model.ckpt-2" in line and "another network" in line
    assert not os.path.exists(config_ini)
    result = train(shards_dir, logdir, "--steps", "4")  # the right command still works
    assert result.exit_code == 0, result.output + result.stderr
    written = open(config_ini).read()
    assert "nFeats = 8" in written
    # a resume with other training values keeps the run's config.ini as it was
    assert train(shards_dir, logdir, "--steps", "6",
                 "--set", "Train.learning_rate=1e-3").exit_code == 0
    assert open(config_ini).read() == written
    # a logdir trained on 128 px crops is not resumed on these 64 px shards
    with open(config_ini, "w") as out:
        out.write(written.replace("img_size = 64", "img_size = 128")
                  .replace("hm_size = 16", "hm_size = 32"))
    line = one_line_error(train(shards_dir, logdir, "--steps", "8"))
    assert "img_size" in line and "128" in line and "64" in line
    assert index_files(logdir) == ["model.ckpt-4.index", "model.ckpt-6.index"]


def test_variables_missing_from_the_checkpoint_start_initialised(tmp_path):
    """A cpu/fp32 checkpoint restored into a graph with loss-scale variables (gpu mixed
    precision, npu loss scaling): the network is restored, the rest initialised."""
    from hgpipe.tf_compat import import_tf
    from hgpipe.train import resume
    tf = import_tf()
    prefix = str(tmp_path / "model.ckpt-1")
    with tf.Graph().as_default():
        w = tf.get_variable("net/w", (3,), initializer=tf.constant_initializer(5.0))
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            tf.train.Saver().save(sess, prefix, write_meta_graph=False)
    with tf.Graph().as_default():
        w = tf.get_variable("net/w", (3,), initializer=tf.zeros_initializer())
        scale = tf.get_variable("loss_scale", (), trainable=False,
                                initializer=tf.constant_initializer(2.0 ** 15))
        missing = resume.check_checkpoint(tf, prefix, tf.global_variables(), "test")
        assert [v.op.name for v in missing] == ["loss_scale"]
        notes = []
        with tf.Session() as sess:
            resume.restore(tf, sess, tf.train.Saver(), prefix, missing, notes.append)
            np.testing.assert_array_equal(sess.run(w), [5.0] * 3)
            assert sess.run(scale) == 2.0 ** 15
        assert "lacks 1 variables" in notes[0]
        # a network variable of another shape: another architecture, refused
    with tf.Graph().as_default():
        tf.get_variable("net/w", (4,))
        with pytest.raises(resume.ResumeError, match="another network"):
            resume.check_checkpoint(tf, prefix, tf.global_variables(), "test")


def test_damaged_shards_are_refused_before_any_checkpoint(shards_dir, tmp_path):
    data = str(tmp_path / "shards")
    shutil.copytree(shards_dir, data)
    manifest = json.load(open(os.path.join(data, "manifest.json")))
    victim = os.path.join(data, [e["file"] for e in manifest["shards"]
                                 if e["split"] == "train"][0])
    with open(victim, "r+b") as handle:
        handle.seek(-64, os.SEEK_END)
        handle.write(b"\x55" * 16)
    logdir = str(tmp_path / "run")
    line = one_line_error(train(data, logdir, "--steps", "4"))
    assert victim in line and "hgpipe prepare" in line
    assert not os.path.isdir(logdir) or index_files(logdir) == []


def test_rerunning_a_finished_run_keeps_its_summary(shards_dir, tmp_path):
    logdir = str(tmp_path / "run")
    assert train(shards_dir, logdir, "--steps", "4").exit_code == 0
    path = os.path.join(logdir, "train_summary.json")
    before = open(path).read()
    result = train(shards_dir, logdir, "--steps", "4")
    assert result.exit_code == 0
    assert "already at step 4" in result.output
    assert open(path).read() == before
    assert json.loads(before)["images_per_sec"] > 0


def test_non_finite_weights_are_never_saved(shards_dir, tmp_path):
    logdir = str(tmp_path / "run")
    assert train(shards_dir, logdir, "--steps", "2").exit_code == 0
    # TF's leftovers of a save killed midway
    for name in ("model.ckpt-2.data-00000-of-00001.tempstate123456789",
                 "checkpoint.tmp0123abcd"):
        open(os.path.join(logdir, name), "wb").close()
    # an update that blows the weights up while the loss of its own step is finite:
    # saving every step would keep a checkpoint of broken weights as "last good"
    result = train(shards_dir, logdir, "--steps", "40", "--set", "Saver.saver_step=1",
                   "--set", "Train.learning_rate=1e30")
    line = one_line_error(result)
    assert "model.ckpt-2" in line and "not finite" in line
    assert index_files(logdir) == ["model.ckpt-2.index"]
    assert not [n for n in os.listdir(logdir) if "tempstate" in n or ".tmp" in n]
