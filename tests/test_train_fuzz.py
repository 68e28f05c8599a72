"""`hgpipe train` on damaged shards folders (issue 19): each case runs the real command in
its own subprocess with a timeout, and must end in exit 0, or in a non-zero exit with
exactly one stderr line naming a file of the folder and no checkpoint written; never a
traceback, a hang or a crash (a signal). The mutations are the kinds
tests/fuzz_worker.py applies to a shards folder, one case of each, seeded; a train costs
~10-15 s of TensorFlow start-up, so there are few cases (the reader-level fuzzing of the
same kinds, hundreds of cases, is tests/test_fuzz_inputs.py).

Targeted regressions of what such runs found, without TensorFlow: a manifest entry with
no or a malformed checksum (an error escaped the integrity thread: a thread traceback,
exit 0, a checkpoint saved), any error in that thread, and the prefetcher's wait on a
reader thread that ended without a batch (it waited forever)."""
import json
import os
import random
import shutil
import subprocess
import sys
import threading

import pytest

from conftest import REPO_ROOT, prepare_synthetic_shards
from hgpipe.data import integrity, shards
from hgpipe.data.shards import ShardError, load_manifest
from hgpipe.train.feeder import Prefetcher, ReaderError

TIMEOUT = 240     # seconds per train subprocess: a hang fails the case instead of holding CI
TRAIN = ["--config", os.path.join(REPO_ROOT, "configs", "tiny.cfg"), "--steps", "2",
         "--set", "Network.nStacks=1", "--set", "Network.nFeats=8",
         "--set", "Network.nLow=1", "--set", "Train.batch_size=2",
         "--set", "Validation.validate_every=0", "--set", "Saver.saver_step=1"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return prepare_synthetic_shards(tmp_path_factory, 6, 5, "Prepare.variants=2",
                                    "Prepare.shard_size=8")


def _edit_manifest(folder, change):
    path = os.path.join(folder, "manifest.json")
    with open(path) as handle:
        manifest = json.load(handle)
    change(manifest)
    with open(path, "w") as out:
        json.dump(manifest, out)
    return path


def _edit_shard(folder, rng, change):
    names = sorted(n for n in os.listdir(folder) if n.endswith(".h5"))
    path = os.path.join(folder, rng.choice(names))
    with open(path, "rb") as handle:
        data = bytearray(handle.read())
    with open(path, "wb") as out:
        out.write(bytes(change(data)))
    return path


def _flip(data, rng, head):
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(min(head, len(data)))] = rng.randrange(256)
    return data


def _no_checksum(folder, rng):
    def change(manifest):
        del rng.choice(manifest["shards"])["crc32"]
    return _edit_manifest(folder, change)


def _bad_checksum(folder, rng):
    def change(manifest):
        rng.choice(manifest["shards"])["crc32"] = rng.choice(["", "xyz", "1234567", 7, None])
    return _edit_manifest(folder, change)


def _fuzzed_manifest(folder, rng):
    import fuzz_worker
    return _edit_manifest(folder, lambda m: m.update(fuzz_worker._mutate_json(m, rng)))


def _data_bytes(folder, rng):   # bytes replaced anywhere, the size kept
    return _edit_shard(folder, rng, lambda data: _flip(data, rng, len(data)))


def _metadata_bytes(folder, rng):   # bytes replaced in the first 4 KB (HDF5's metadata)
    return _edit_shard(folder, rng, lambda data: _flip(data, rng, 4096))


def _truncated(folder, rng):
    return _edit_shard(folder, rng, lambda data: data[:rng.randrange(len(data))])


# the manifest cases fail before TensorFlow loads (~1 s each); the shard cases cost a
# TensorFlow start each, and fail in train's main thread (metadata, truncated: the shard
# cannot be opened, while the check thread may still be inside h5py: the exit that hung)
# or in its check thread (data bytes: the checksum, before the first checkpoint)
CASES = [_no_checksum, _bad_checksum, _fuzzed_manifest, _data_bytes, _metadata_bytes,
         _truncated]


def _train(data, logdir):
    cmd = [sys.executable, "-m", "hgpipe", "train", "--data", data, "--logdir", logdir] + TRAIN
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("HGPIPE_DEBUG", None)
    try:
        out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail("train on %s hung (> %d s)" % (data, TIMEOUT))
    return out.returncode, out.stdout.decode("utf-8", "replace"), \
        out.stderr.decode("utf-8", "replace")


def _checkpoints(logdir):
    return sorted(n for n in os.listdir(logdir) if n.startswith("model.ckpt")) \
        if os.path.isdir(logdir) else []


@pytest.mark.slow
@pytest.mark.parametrize("mutate", CASES, ids=lambda f: f.__name__.strip("_"))
def test_train_on_a_damaged_folder_ends_in_success_or_one_line(pristine, tmp_path, mutate):
    data = str(tmp_path / "shards")
    shutil.copytree(pristine, data)
    victim = mutate(data, random.Random("%s-19" % mutate.__name__))
    logdir = str(tmp_path / "run")
    code, stdout, stderr = _train(data, logdir)
    assert code >= 0, "train died of signal %d:\n%s" % (-code, stderr[-2000:])
    assert "Traceback" not in stdout + stderr, stderr[-3000:]
    if code == 0:   # the damage did not matter: a complete run
        assert _checkpoints(logdir), stdout
        return
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr[-3000:]
    print("%s: exit %d: %s" % (mutate.__name__, code, lines[0]))
    assert data in lines[0], lines[0]
    if mutate in (_no_checksum, _bad_checksum):   # the file to blame is known
        assert victim in lines[0], lines[0]
    assert _checkpoints(logdir) == [], lines[0]


# ---------------------------------------------------------------- targeted regressions
@pytest.mark.parametrize("value", [None, "", "xyz", "1234567", "123456789", "0000000g", 7,
                                   ["00000000"]])
def test_manifest_entry_without_a_well_formed_checksum_is_one_line(pristine, tmp_path, value):
    data = str(tmp_path / "shards")
    shutil.copytree(pristine, data)

    def change(manifest):
        entry = manifest["shards"][1]
        if value is None:
            del entry["crc32"]
        else:
            entry["crc32"] = value
    path = _edit_manifest(data, change)
    with pytest.raises(ShardError) as error:
        load_manifest(data)
    text = str(error.value)
    assert text.startswith(path + ": ") and "\n" not in text
    name = json.load(open(path))["shards"][1]["file"]
    assert "manifest entry %s has " % name in text and "crc32" in text


def test_older_sha256_checksums_must_be_64_hex_digits(pristine, tmp_path):
    data = str(tmp_path / "shards")
    shutil.copytree(pristine, data)

    def to_sha256(digest):
        def change(manifest):
            for entry in manifest["shards"]:
                entry.pop("crc32", None)
                entry["sha256"] = digest(os.path.join(data, entry["file"]))
        return change
    _edit_manifest(data, to_sha256(lambda p: shards.file_sha256(p).upper()))
    assert shards.verify_checksums(data) == []   # upper-case hex is the same checksum
    _edit_manifest(data, to_sha256(lambda p: shards.file_sha256(p)[:40]))
    with pytest.raises(ShardError, match="sha256 .* expected 64 hex digits"):
        load_manifest(data)


def test_any_error_in_the_integrity_thread_is_that_shards_problem(pristine, monkeypatch):
    """An error escaping the check thread printed a thread traceback and left no
    problem: the run went on and saved a checkpoint."""
    manifest = load_manifest(pristine)
    victim = manifest["shards"][0]["file"]
    real = shards.shard_problem

    def failing(shards_dir, entry, manifest=None):
        if entry["file"] == victim:
            raise TypeError("unexpected")
        return real(shards_dir, entry, manifest)
    monkeypatch.setattr(shards, "shard_problem", failing)
    seen = []
    monkeypatch.setattr(threading, "excepthook", seen.append, raising=False)
    verifier = integrity.ShardVerifier(pristine, manifest)
    with pytest.raises(ShardError) as error:
        verifier.check(wait=True)
    text = str(error.value)
    assert text.startswith(os.path.join(pristine, victim) + ": ") and "\n" not in text
    assert "TypeError: unexpected" in text and seen == []


def test_a_checksumless_entry_given_to_the_thread_is_refused(pristine):
    """The thread's own guard, for a manifest that did not come from load_manifest."""
    manifest = load_manifest(pristine)
    del manifest["shards"][2]["crc32"]
    verifier = integrity.ShardVerifier(pristine, manifest)
    with pytest.raises(ShardError, match="no checksum"):
        verifier.check(wait=True)


def test_closing_the_verifier_waits_for_its_thread_to_leave_h5py(pristine, monkeypatch):
    """A check thread left inside h5py at exit deadlocked the interpreter's finalisation
    on h5py's lock (train hung after its line, or crashed on exit): close() now waits
    for the shard being checked, and the thread checks no further shard."""
    entered, release, checked = threading.Event(), threading.Event(), []
    real = shards.shard_problem

    def slow(shards_dir, entry, manifest=None):
        checked.append(entry["file"])
        entered.set()
        release.wait(30)
        return real(shards_dir, entry, manifest)
    monkeypatch.setattr(shards, "shard_problem", slow)
    verifier = integrity.ShardVerifier(pristine, load_manifest(pristine))
    assert entered.wait(30)
    timer = threading.Timer(1.0, release.set)
    timer.start()
    verifier.close()
    assert verifier.done and release.is_set()
    assert len(checked) == 1 < len(load_manifest(pristine)["shards"])
    timer.join()


def _get_within(fetch, seconds=20):
    """fetch.get() in a thread: (returned, raised), failing the test if it still waits."""
    result = {}

    def run():
        try:
            result["item"] = fetch.get()
        except BaseException as exc:  # noqa: BLE001 - what get raised is the result
            result["error"] = exc
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "Prefetcher.get still waiting after %d s" % seconds
    return result.get("item"), result.get("error")


def test_prefetcher_get_does_not_wait_forever_for_an_ended_reader():
    gate = threading.Event()

    def items():
        yield 1
        gate.wait()
        yield 2
    fetch = Prefetcher(items(), capacity=1)
    assert _get_within(fetch) == (1, None)
    fetch._stop.set()   # what close() does first: the reader, let go, queues nothing more
    gate.set()
    fetch.close()
    _item, error = _get_within(fetch)
    assert isinstance(error, ReaderError) and "ended without a batch" in str(error)


def test_prefetcher_reraises_a_foreign_reader_error_as_one_line():
    def items():
        yield 1
        raise RuntimeError("HDF5 said no\nsecond line")
    fetch = Prefetcher(items(), capacity=2)
    assert _get_within(fetch) == (1, None)
    for _ in range(2):   # and again: the end stays the end
        _item, error = _get_within(fetch)
        assert isinstance(error, ReaderError)
        assert str(error) == "the batch reader thread failed: RuntimeError: HDF5 said no"
    fetch.close()


def test_prefetcher_reraises_hgpipe_errors_as_they_are(pristine):
    def items():
        raise ShardError("%s: short read" % os.path.join(pristine, "train-00000.h5"))
        yield   # pragma: no cover
    _item, error = _get_within(Prefetcher(items(), capacity=2))
    assert type(error) is ShardError and "train-00000.h5: short read" in str(error)
