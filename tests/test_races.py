"""Creation races, forced on purpose rather than met by luck.

On a fresh machine `hgpipe prepare` failed with `.records: File exists`: two workers
writing their first shard record into one new folder met between a check for the folder
and its creation. These tests release threads and processes at one barrier onto the same
first write into a folder that does not exist yet, many times over; on the old
check-then-create code the thread test failed in most trials.
"""
import json
import multiprocessing
import os
import subprocess
import sys
import threading

import pytest

from conftest import REPO_ROOT, make_synthetic_mpii
from hgpipe import atomic
from hgpipe.lock import FolderLockedError, folder_lock

TRIALS = 200
THREADS = 8


def _race_threads(n, target):
    """Run ``target(i)`` in ``n`` threads released together; returns their exceptions."""
    barrier = threading.Barrier(n)
    errors = []

    def run(i):
        barrier.wait()
        try:
            target(i)
        except Exception as exc:  # collected and asserted on by the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_threads_writing_their_first_file_into_one_new_folder(tmp_path):
    for trial in range(TRIALS):
        folder = tmp_path / ("t%d" % trial) / "deep" / ".records"
        errors = _race_threads(THREADS, lambda i: atomic.write_json(
            str(folder / ("shard-%d.json" % i)), {"i": i}))
        assert not errors, "trial %d: %r" % (trial, errors[0])
        assert sorted(os.listdir(str(folder))) == sorted("shard-%d.json" % i
                                                         for i in range(THREADS))


def test_threads_writing_one_file_leave_one_whole_copy(tmp_path):
    """Many writers of the same name: the last rename wins, nothing half-written stays."""
    for trial in range(50):
        path = tmp_path / ("t%d" % trial) / "manifest.json"
        errors = _race_threads(THREADS, lambda i: atomic.write_text(str(path), "%d\n" % i * 100))
        assert not errors, "trial %d: %r" % (trial, errors[0])
        assert os.listdir(str(path.parent)) == ["manifest.json"]
        text = path.read_text()
        assert text == text[:text.index("\n") + 1] * 100


def test_threads_creating_one_folder_lock_it_once(tmp_path):
    """folder_lock creates its folder: racing takers get the lock or FolderLockedError
    (one holder at a time), never `File exists`."""
    for trial in range(50):
        folder = str(tmp_path / ("t%d" % trial) / "logdir")
        held, refused = [], []

        def take(i):
            try:
                with folder_lock(folder):
                    held.append(i)
            except FolderLockedError:
                refused.append(i)

        errors = _race_threads(THREADS, take)
        assert not errors, "trial %d: %r" % (trial, errors[0])
        assert held and len(held) + len(refused) == THREADS


def _process_writer(barrier, folder, i):
    barrier.wait()
    atomic.write_json(os.path.join(folder, "shard-%d.json" % i), {"i": i})


def test_processes_writing_their_first_file_into_one_new_folder(tmp_path):
    context = multiprocessing.get_context("fork")
    for trial in range(20):
        folder = str(tmp_path / ("p%d" % trial) / ".records")
        barrier = context.Barrier(4)
        procs = [context.Process(target=_process_writer, args=(barrier, folder, i))
                 for i in range(4)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(60)
        assert [p.exitcode for p in procs] == [0] * 4, "trial %d" % trial
        assert len(os.listdir(folder)) == 4


_PREPARE_FOUR_TIMES = r"""
import json, sys
import cv2, numpy as np
from click.testing import CliRunner
from hgpipe.cli import main
from hgpipe.data.shards import load_manifest
# as a notebook or a test does before it prepares: an OpenCV call that starts its pool
cv2.warpAffine(np.zeros((1500, 1500, 3), np.uint8), np.eye(2, 3), (1200, 1200))
root, parent = sys.argv[1], sys.argv[2]
digests = []
for trial in range(4):
    out = "%s/run%d/shards" % (parent, trial)
    result = CliRunner().invoke(main, [
        "prepare", "--mpii", root, "--out", out, "--workers", "4",
        "--set", "Prepare.variants=2", "--set", "Prepare.shard_size=2",
        "--set", "DataSetHG.img_size=64", "--set", "DataSetHG.hm_size=16"])
    if result.exit_code != 0:
        sys.exit("trial %d: %s" % (trial, result.output))
    digests.append({e["file"]: e["crc32"] for e in load_manifest(out)["shards"]})
print(json.dumps(digests))
"""


def test_prepare_with_four_workers_on_fresh_folders(tmp_path):
    """The README's first command as a fresh machine runs it: 4 workers, a new --out, four
    times, from a process that used OpenCV first (its thread pool once hung forked
    workers). In a subprocess with a time limit, so a hang fails instead of stalling CI."""
    root, _ = make_synthetic_mpii(str(tmp_path / "data"), n_images=12, seed=3)
    env = dict(os.environ, PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", _PREPARE_FOUR_TIMES, root, str(tmp_path)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    digests = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(digests[0]) >= 4 and all(d == digests[0] for d in digests)


def test_a_file_where_the_folder_should_be_still_fails(tmp_path):
    """exist_ok is not blindness: a regular file in the folder's place is an error."""
    blocker = tmp_path / "out"
    blocker.write_text("not a folder")
    with pytest.raises(OSError):
        atomic.write_text(str(blocker / "x.json"), "{}")
