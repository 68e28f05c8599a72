"""One writer per folder: the second run is refused with one line naming the first; the
lock of a killed process is taken over."""
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO_ROOT
from hgpipe.lock import FolderLockedError, LockFileError, folder_lock

HOLD = ("import sys, time\n"
        "from hgpipe.lock import folder_lock\n"
        "with folder_lock(sys.argv[1], 'hgpipe train --logdir x'):\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(600)\n")


def hold_in_child(folder):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, folder], stdout=subprocess.PIPE,
                            env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    assert proc.stdout.readline().strip() == b"locked"
    return proc


def test_second_writer_is_refused_naming_the_first_and_dead_holders_are_taken_over(tmp_path):
    folder = str(tmp_path / "run")
    proc = hold_in_child(folder)
    try:
        with pytest.raises(FolderLockedError) as info:
            with folder_lock(folder):
                pass
        message = str(info.value)
        assert "pid %d" % proc.pid in message and "hgpipe train --logdir x" in message
        assert folder in message and len(message.splitlines()) == 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # the kernel dropped the dead process's lock: taken over, and our pid is recorded
    with folder_lock(folder, "hgpipe prepare"):
        text = open(os.path.join(folder, ".hgpipe.lock")).read()
        assert '"pid": %d' % os.getpid() in text
    with folder_lock(folder):  # released on exit
        pass


def test_lock_is_released_when_the_body_fails(tmp_path):
    folder = str(tmp_path / "run")
    with pytest.raises(RuntimeError):
        with folder_lock(folder):
            raise RuntimeError("boom")
    start = time.time()
    with folder_lock(folder):
        assert time.time() - start < 5


@pytest.mark.parametrize("kind", ["file", "dangling", "folder", "fifo"])
def test_a_planted_lock_file_is_refused_and_its_target_never_touched(tmp_path, kind):
    """A symlink (to a file, to nothing, to a folder) or a FIFO named .hgpipe.lock in a
    shared folder: refused in one line; the file it points to keeps its bytes, a
    dangling link's target is not created."""
    folder = tmp_path / "run"
    folder.mkdir()
    lock = folder / ".hgpipe.lock"
    canary = tmp_path / "canary.txt"
    if kind == "file":
        canary.write_bytes(b"another user's precious file\n")
        os.symlink(str(canary), str(lock))
    elif kind == "dangling":
        os.symlink(str(canary), str(lock))
    elif kind == "folder":
        (tmp_path / "elsewhere").mkdir()
        os.symlink(str(tmp_path / "elsewhere"), str(lock))
    else:
        os.mkfifo(str(lock))
    with pytest.raises(LockFileError) as info:
        with folder_lock(str(folder)):
            pytest.fail("the body ran under a planted lock file")
    message = str(info.value)
    assert message.startswith(str(lock)) and len(message.splitlines()) == 1
    assert "not a regular file" in message
    if kind == "file":
        assert canary.read_bytes() == b"another user's precious file\n"
    if kind == "dangling":
        assert not canary.exists()
    if kind == "folder":
        assert os.listdir(str(tmp_path / "elsewhere")) == []


def test_prepare_on_a_folder_with_a_planted_lock_is_one_line(tmp_path):
    from conftest import make_synthetic_mpii
    root, _ = make_synthetic_mpii(str(tmp_path / "mpii"), n_images=2)
    out = tmp_path / "shards"
    out.mkdir()
    canary = tmp_path / "canary.txt"
    canary.write_bytes(b"keep me")
    os.symlink(str(canary), str(out / ".hgpipe.lock"))
    proc = subprocess.run([sys.executable, "-m", "hgpipe", "prepare", "--mpii", root,
                           "--out", str(out), "--workers", "1"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    err = proc.stderr.decode().strip().splitlines()
    assert proc.returncode == 1
    assert len(err) == 1 and ".hgpipe.lock" in err[0] and "not a regular file" in err[0], err
    assert canary.read_bytes() == b"keep me"
    assert not [name for name in os.listdir(str(out)) if name.endswith(".h5")]
