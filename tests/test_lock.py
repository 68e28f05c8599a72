"""One writer per folder: the second run is refused with one line naming the first; the
lock of a killed process is taken over."""
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO_ROOT
from hgpipe.lock import FolderLockedError, folder_lock

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
