"""Damaged checkpoints and full disks: one line naming the file and the problem, a
non-zero exit, the older checkpoints intact, and the whole checkpoint a run can use.

The damaged checkpoints are made at test time from a tiny trained logdir (steps 2 and
4): the latest one's data file truncated, a byte of a network weight flipped, its
index flipped or truncated, a file deleted, the ``checkpoint`` state file garbage. A
full disk is a file size limit (RLIMIT_FSIZE, SIGXFSZ ignored) in a subprocess, as in
tests/test_prepare_reliability.py.
"""
import hashlib
import os
import shutil
import signal
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import REPO_ROOT, cli_runner, prepare_synthetic_shards
from hgpipe.cli import main

TINY = ["--set", "Network.nStacks=1", "--set", "Network.nFeats=8", "--set", "Network.nLow=1",
        "--set", "Train.batch_size=2", "--set", "Validation.validate_every=0",
        "--set", "Saver.saver_step=2", "--set", "Saver.keep_checkpoints=2"]
DATA = ".data-00000-of-00001"


@pytest.fixture(scope="module")
def shards_dir(tmp_path_factory):
    return prepare_synthetic_shards(tmp_path_factory, 6, 7, "Prepare.variants=2")


@pytest.fixture(scope="module")
def trained(shards_dir, tmp_path_factory):
    """A logdir with model.ckpt-2 and model.ckpt-4 (keep 2)."""
    logdir = str(tmp_path_factory.mktemp("trained") / "run")
    result = train(shards_dir, logdir, "--steps", "4")
    assert result.exit_code == 0, result.output + result.stderr
    return logdir


def train(shards_dir, logdir, *extra):
    return cli_runner().invoke(main, ["train", "--data", shards_dir, "--logdir", logdir] +
                               TINY + list(extra))


def one_line_error(result):
    assert result.exit_code == 1, result.output + result.stderr
    assert "Traceback" not in result.output + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def digests(logdir):
    """sha1 of every checkpoint file and the state file."""
    return {name: hashlib.sha1(open(os.path.join(logdir, name), "rb").read()).hexdigest()
            for name in os.listdir(logdir)
            if name.startswith("model.ckpt-") or name == "checkpoint"}


def copy_of(trained, tmp_path):
    logdir = str(tmp_path / "run")
    shutil.copytree(trained, logdir)
    return logdir


def _flip(path, offset):
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0x5a]))


def _truncate(path, size):
    with open(path, "r+b") as handle:
        handle.truncate(size)


def network_weight_offset(prefix):
    """Where in the data file the bytes of a network weight (not an optimizer slot) are."""
    from hgpipe.tf_compat import import_tf
    reader = import_tf().train.NewCheckpointReader(prefix)
    names = [n for n in reader.get_variable_to_shape_map()
             if n.endswith("/weights") and "RMSProp" not in n]
    name = max(names, key=lambda n: reader.get_tensor(n).size)
    data = open(prefix + DATA, "rb").read()
    offset = data.find(reader.get_tensor(name).tobytes())
    assert offset >= 0
    return offset + len(reader.get_tensor(name).tobytes()) // 2


# name -> (damage the latest checkpoint's files, the file the line must name, words)
DAMAGES = {
    "truncated data": (lambda p: _truncate(p + DATA, os.path.getsize(p + DATA) // 2),
                       DATA, "truncated"),
    "flipped data": (lambda p: _flip(p + DATA, network_weight_offset(p)),
                     DATA, "checksum mismatch"),
    "flipped index": (lambda p: _flip(p + ".index", 100), ".index", "damaged"),
    "truncated index": (lambda p: _truncate(p + ".index", 5000), ".index", "damaged"),
    "missing data": (lambda p: os.remove(p + DATA), DATA, "missing"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_latest_checkpoint_is_one_line_naming_the_file_and_a_whole_one(
        damage, shards_dir, trained, tmp_path):
    logdir = copy_of(trained, tmp_path)
    latest = os.path.join(logdir, "model.ckpt-4")
    spoil, suffix, words = DAMAGES[damage]
    spoil(latest)
    before = digests(logdir)
    line = one_line_error(train(shards_dir, logdir, "--steps", "6"))
    assert "%s%s: " % (latest, suffix) in line and words in line, line
    assert "--resume-from %s" % os.path.join(logdir, "model.ckpt-2") in line, line
    assert digests(logdir) == before  # nothing written, nothing rotated away
    # pck, predict and export name the same file, and the whole checkpoint to pass
    out = str(tmp_path / "model.pb")
    line = one_line_error(cli_runner().invoke(main, ["export", "--checkpoint", latest,
                                                     "--out", out]))
    assert "%s%s: " % (latest, suffix) in line and words in line, line
    assert "does not match" not in line and "Graph execution" not in line
    assert "--checkpoint %s" % os.path.join(logdir, "model.ckpt-2") in line, line
    assert not os.path.exists(out)
    assert digests(logdir) == before


def test_pck_and_predict_on_a_damaged_checkpoint_name_the_file(shards_dir, trained, tmp_path):
    logdir = copy_of(trained, tmp_path)
    latest = os.path.join(logdir, "model.ckpt-4")
    _flip(latest + DATA, network_weight_offset(latest))
    line = one_line_error(cli_runner().invoke(main, ["pck", "--checkpoint", logdir,
                                                     "--data", shards_dir]))
    assert latest + DATA + ": damaged (checksum mismatch)" in line, line
    image = str(tmp_path / "person.jpg")
    cv2.imwrite(image, np.full((80, 60, 3), 128, np.uint8))
    result = cli_runner().invoke(main, ["predict", image, "--checkpoint", latest,
                                        "--out", str(tmp_path / "pred")])
    line = one_line_error(result)
    assert latest + DATA + ": damaged (checksum mismatch)" in line, line
    assert "pass --checkpoint %s" % os.path.join(logdir, "model.ckpt-2") in line


def test_resume_from_the_whole_checkpoint_rewrites_the_damaged_one(shards_dir, trained,
                                                                    tmp_path):
    from hgpipe.eval.checkpoint_damage import find_damage
    logdir = copy_of(trained, tmp_path)
    latest = os.path.join(logdir, "model.ckpt-4")
    _truncate(latest + DATA, 1000)
    assert "truncated (1,000 bytes" in find_damage(latest)
    result = train(shards_dir, logdir, "--steps", "6", "--resume-from", "model.ckpt-2")
    assert result.exit_code == 0, result.output + result.stderr
    assert "resumed from %s" % os.path.join(logdir, "model.ckpt-2") in result.output
    assert find_damage(latest) is None
    assert find_damage(os.path.join(logdir, "model.ckpt-6")) is None
    assert sorted(n for n in os.listdir(logdir) if n.endswith(".index")) == \
        ["model.ckpt-4.index", "model.ckpt-6.index"]
    # --resume-from takes only a checkpoint of this logdir
    line = one_line_error(train(shards_dir, logdir, "--steps", "8", "--resume-from",
                                os.path.join(trained, "model.ckpt-2")))
    assert "not of another folder" in line
    line = one_line_error(train(shards_dir, logdir, "--steps", "8",
                                "--resume-from", "model.ckpt-3"))
    assert "no such checkpoint" in line and "model.ckpt-4, model.ckpt-6" in line


def test_a_garbage_state_file_is_refused_naming_it(shards_dir, trained, tmp_path):
    logdir = copy_of(trained, tmp_path)
    state = os.path.join(logdir, "checkpoint")
    with open(state, "wb") as out:
        out.write(b"\xff\xfegarbage {{{ model_checkpoint_path")
    before = digests(logdir)
    line = one_line_error(train(shards_dir, logdir, "--steps", "6"))
    assert line.startswith("Error: %s: " % state), line
    assert "--resume-from %s" % os.path.join(logdir, "model.ckpt-4") in line
    assert digests(logdir) == before


def _limited(size):
    import resource

    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # EFBIG instead of a signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    return preexec


def _run_limited(args, size):
    result = subprocess.run([sys.executable] + args,
                            env=dict(os.environ, PYTHONPATH=REPO_ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=_limited(size), timeout=300)
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs RLIMIT_FSIZE")
def test_a_full_disk_while_saving_keeps_the_older_checkpoints(shards_dir, trained, tmp_path):
    """The data file of a checkpoint (1.5 MB) exceeds the limit: the save of step 6
    fails; the state file still names model.ckpt-4, model.ckpt-2 is not rotated away,
    nothing of the failed save is left, and a rerun with room resumes from step 4."""
    logdir = copy_of(trained, tmp_path)
    before = digests(logdir)
    line = _run_limited(["-m", "hgpipe", "train", "--data", shards_dir, "--logdir", logdir,
                         "--steps", "6"] + TINY, 1 << 20)
    assert line.startswith("Error: %s: cannot write the checkpoint of step 6 (File too "
                           "large)" % os.path.join(logdir, "model.ckpt-6" + DATA)), line
    assert "resume from %s" % os.path.join(logdir, "model.ckpt-4") in line, line
    assert digests(logdir) == before
    assert [n for n in os.listdir(logdir) if "temp" in n or ".tmp" in n] == []
    result = train(shards_dir, logdir, "--steps", "6")
    assert result.exit_code == 0, result.output + result.stderr
    assert "resumed from %s" % os.path.join(logdir, "model.ckpt-4") in result.output


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs RLIMIT_FSIZE")
def test_a_full_disk_on_export_names_the_file_and_leaves_nothing(trained, tmp_path):
    out_dir = str(tmp_path / "out")
    os.makedirs(out_dir)
    out = os.path.join(out_dir, "model.pb")
    line = _run_limited(["-m", "hgpipe", "export", "--checkpoint", trained, "--out", out],
                        256 << 10)
    assert line == "Error: %s: File too large" % out
    assert os.listdir(out_dir) == []
    # the SavedModel's variables (0.5 MB) do not fit: one error naming the folder
    saved = os.path.join(out_dir, "saved")
    script = ("import resource, signal, sys\n"
              "from hgpipe.eval.checkpoint import open_checkpoint\n"
              "from hgpipe.eval import export\n"
              "with open_checkpoint(sys.argv[1]) as model:\n"
              "    resource.setrlimit(resource.RLIMIT_FSIZE, (%d, %d))\n"
              "    try:\n"
              "        export.write_saved_model(model, sys.argv[2])\n"
              "    except export.ExportError as exc:\n"
              "        sys.exit('Error: %%s' %% exc)\n" % (256 << 10, 256 << 10))
    line = _run_limited(["-c", script, trained, saved], 1 << 30)
    assert line == ("Error: %s: cannot write the SavedModel (variables/variables%s: File "
                    "too large); nothing of it was kept" % (saved, DATA)), line
    assert os.listdir(out_dir) == []


HOLD = ("import os, sys\n"
        "from hgpipe.staging import staging_folder\n"
        "with staging_folder(sys.argv[1], '.tmp-savedmodel-') as folder:\n"
        "    open(os.path.join(folder, 'half'), 'w').close()\n"
        "    print(folder, flush=True)\n"
        "    if sys.argv[2] == 'die':\n"
        "        os.kill(os.getpid(), 9)\n"
        "    sys.stdin.read()\n")


def test_export_removes_staging_folders_of_dead_exports_only(trained, tmp_path):
    out_dir = str(tmp_path / "out")
    os.makedirs(out_dir)
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    live = subprocess.Popen([sys.executable, "-c", HOLD, out_dir, "live"], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        live_folder = live.stdout.readline().decode().strip()
        dead = subprocess.run([sys.executable, "-c", HOLD, out_dir, "die"], env=env,
                              stdout=subprocess.PIPE, timeout=60)
        assert dead.returncode == -9
        dead_folder = dead.stdout.decode().strip()
        assert os.path.isdir(dead_folder) and os.path.isdir(live_folder)
        saved = os.path.join(out_dir, "saved")
        result = cli_runner().invoke(main, ["export", "--checkpoint", trained, "--out",
                                            os.path.join(out_dir, "model.pb"),
                                            "--saved-model", saved])
        assert result.exit_code == 0, result.output + result.stderr
        assert "removed %s (left by an interrupted export)" % os.path.basename(
            dead_folder) in result.output
        assert not os.path.exists(dead_folder)
        assert os.path.isdir(live_folder)  # a running export's folder stays
    finally:
        live.communicate(b"", timeout=60)
    assert not os.path.exists(live_folder)  # its own export removed it at the end
    mask = os.umask(0)
    os.umask(mask)
    for root, dirs, files in os.walk(saved):
        assert os.stat(root).st_mode & 0o777 == 0o777 & ~mask, root
        for name in files:
            mode = os.stat(os.path.join(root, name)).st_mode & 0o777
            assert mode == 0o666 & ~mask, (name, oct(mode))
    assert os.stat(os.path.join(out_dir, "model.pb")).st_mode & 0o777 == 0o666 & ~mask
