"""prepare under mistakes and accidents: implausible boxes, damaged shards on resume,
two runs on one folder, Ctrl-C, kill -9 of the parent, leftovers, --overwrite."""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO_ROOT, cli_runner, make_synthetic_mpii
from hgpipe.cli import main
from hgpipe.data.shards import CHECKSUM_KEY, file_crc32, load_manifest

SMALL = ["--set", "Prepare.variants=3", "--set", "Prepare.shard_size=8",
         "--set", "DataSetHG.img_size=64", "--set", "DataSetHG.hm_size=16"]


def prepare(root, out, *extra):
    return cli_runner().invoke(main, ["prepare", "--mpii", root, "--out", out,
                                      "--workers", "1"] + SMALL + list(extra))


def digests(out):
    return {e["file"]: e[CHECKSUM_KEY] for e in load_manifest(out)["shards"]}


def shard_files(out):
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(out, "*.h5")))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_synthetic_mpii(str(tmp_path_factory.mktemp("data")), n_images=12, seed=6)[0]


@pytest.fixture(scope="module")
def reference(dataset, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("reference") / "shards")
    assert prepare(dataset, out).exit_code == 0
    return out


def test_implausible_boxes_are_skipped_with_a_reason(tmp_path):
    root, entries = make_synthetic_mpii(str(tmp_path / "data"), n_images=6, seed=1)
    entries[0]["scale_provided"] *= 200.0  # given in pixels
    entries[1]["objpos"] = [99954.0, -49912.0]
    entries[2]["scale_provided"] = 1e6
    with open(os.path.join(root, "annotations", "mpii_annotations.json"), "w") as out:
        json.dump(entries, out)
    out = str(tmp_path / "shards")
    result = prepare(root, out)
    assert result.exit_code == 0, result.output
    skipped = json.load(open(os.path.join(out, "skipped.json")))
    implausible = [s for s in skipped if s["reason"].startswith("implausible person box")]
    assert len(implausible) == 3
    assert any("synth_000.jpg person 1" in s["person"] for s in implausible)
    assert any("outside the 320x240 image" in s["reason"] for s in implausible)
    manifest = load_manifest(out)
    assert manifest["skipped_by_reason"]["implausible person box"] == 3
    n_train = sum(1 for e in entries if not e["isValidation"])
    n_val = len(entries) - n_train
    bad_train = sum(1 for e in entries[:3] if not e["isValidation"])
    assert manifest["counts"] == {"train": 3 * (n_train - bad_train),
                                  "val": n_val - (3 - bad_train)}
    assert "implausible person box" in result.output


def children_of(pid):
    """Pids of the live processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name) as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except (IOError, OSError):
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(name))
    return found


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (IOError, OSError):
        return False


def start_prepare(root, out, workers="2", extra=()):
    cmd = [sys.executable, "-m", "hgpipe", "prepare", "--mpii", root, "--out", out,
           "--workers", workers] + SMALL + list(extra)
    return subprocess.Popen(cmd, env=dict(os.environ, PYTHONPATH=REPO_ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


def wait_for(condition, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline and not condition():
        time.sleep(0.01)
    return condition()


@pytest.fixture(scope="module")
def big_dataset(tmp_path_factory):
    return make_synthetic_mpii(str(tmp_path_factory.mktemp("big")), n_images=60, seed=8)[0]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_the_parent_leaves_no_process_behind(big_dataset, tmp_path):
    out = str(tmp_path / "shards")
    proc = start_prepare(big_dataset, out)
    assert wait_for(lambda: len(children_of(proc.pid)) >= 2 and shard_files(out))
    children = children_of(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert wait_for(lambda: not any(alive(c) for c in children), 10), \
        "processes outlived their parent"
    stderr = proc.stderr.read().decode()
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr
    # and the folder is free again: the next run resumes
    result = prepare(big_dataset, out)
    assert result.exit_code == 0 and "resuming:" in result.output
def test_resume_rebuilds_a_damaged_shard_instead_of_blessing_it(dataset, reference, tmp_path):
    out = str(tmp_path / "shards")
    shutil.copytree(reference, out)
    victim = os.path.join(out, sorted(digests(out))[2])
    with open(victim, "r+b") as handle:
        handle.seek(-100, os.SEEK_END)
        handle.write(b"\x00" * 8 + b"\xff" * 8)
    result = prepare(dataset, out)
    assert result.exit_code == 0, result.output + result.stderr
    assert "rebuilding %s: checksum differs" % victim in result.stderr
    assert digests(out) == digests(reference)
    assert file_crc32(victim) == digests(reference)[os.path.basename(victim)]
    assert cli_runner().invoke(main, ["inspect", out, "--verify"]).exit_code == 0

    # no manifest yet (an interrupted first run) and a truncated shard: rebuilt too
    os.remove(os.path.join(out, "manifest.json"))
    with open(victim, "r+b") as handle:
        handle.truncate(1000)
    result = prepare(dataset, out)
    assert result.exit_code == 0 and "rebuilding %s" % victim in result.stderr
    assert digests(out) == digests(reference)


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs RLIMIT_FSIZE")
def test_a_write_that_fails_names_the_shard_and_leaves_nothing_half_written(
        dataset, reference, tmp_path):
    """A full disk, as a file size limit: the shard's positional writes fail (EFBIG), in
    a worker process; prepare ends with one line naming the shard, no shard or temporary
    file is left, and a rerun with room writes exactly the reference."""
    import resource
    out = str(tmp_path / "shards")

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # EFBIG instead of a signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))
    cmd = [sys.executable, "-m", "hgpipe", "prepare", "--mpii", dataset, "--out", out,
           "--workers", "2"] + SMALL
    result = subprocess.run(cmd, env=dict(os.environ, PYTHONPATH=REPO_ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=small_files, timeout=300)
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert "File too large" in last and ".h5" in last and out in last, stderr
    assert shard_files(out) == []
    assert [n for n in os.listdir(out) if n.endswith(".tmp")] == []
    assert prepare(dataset, out).exit_code == 0
    assert digests(out) == digests(reference)


def _dies_on_three(item, progress):
    if item == 3:
        os.kill(os.getpid(), signal.SIGKILL)   # what the kernel's OOM killer does
    time.sleep(0.05)
    return item


def test_a_worker_killed_ends_the_pool_with_one_line_instead_of_waiting_forever():
    from hgpipe.data.workers import WorkerDied, run_pool
    start = time.time()
    with pytest.raises(WorkerDied, match=r"killed by SIGKILL \(out of memory\?\)"):
        run_pool(_dies_on_three, list(range(8)), 2)
    assert time.time() - start < 30
    assert run_pool(_dies_on_three, [0, 1, 2], 2) and True   # the next pool works


def test_leftovers_removed_and_overwrite_keeps_only_the_new_config(dataset, tmp_path):
    out = str(tmp_path / "shards")
    assert prepare(dataset, out).exit_code == 0
    old = shard_files(out)
    leftover = os.path.join(out, ".train-00001.h5.k2j3h4.tmp")
    open(leftover, "wb").close()
    # one variant instead of three: fewer shards; --overwrite leaves none of the old ones
    result = prepare(dataset, out, "--set", "Prepare.variants=1", "--overwrite")
    assert result.exit_code == 0, result.output + result.stderr
    assert not os.path.exists(leftover)
    assert shard_files(out) == sorted(digests(out)) and len(shard_files(out)) < len(old)
    assert cli_runner().invoke(main, ["inspect", out, "--verify"]).exit_code == 0


@pytest.mark.slow
def test_ctrl_c_is_exit_130_with_one_line(big_dataset, tmp_path):
    out = str(tmp_path / "shards")
    proc = start_prepare(big_dataset, out)
    assert wait_for(lambda: shard_files(out))
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends: the whole group
    _stdout, stderr = proc.communicate(timeout=60)
    stderr = stderr.decode()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    lines = [l for l in stderr.splitlines() if l.strip() and "prepare:" not in l]
    assert len(lines) == 1 and "rerun the same command" in lines[0]
    if sys.platform.startswith("linux"):
        assert not children_of(proc.pid)


@pytest.mark.slow
def test_two_prepares_on_one_folder_the_second_is_refused(big_dataset, tmp_path):
    out = str(tmp_path / "shards")
    first = start_prepare(big_dataset, out, workers="1")
    lock = os.path.join(out, ".hgpipe.lock")
    assert wait_for(lambda: os.path.exists(lock) and "pid" in open(lock).read())
    result = prepare(big_dataset, out, "--set", "Prepare.sigma=2")
    assert result.exit_code == 1
    assert "in use by another hgpipe run (pid %d" % first.pid in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert first.wait(timeout=300) == 0
    manifest = load_manifest(out)
    assert manifest["config"]["Prepare"]["sigma"] == 1.0
    assert shard_files(out) == sorted(digests(out))
    assert cli_runner().invoke(main, ["inspect", out, "--verify"]).exit_code == 0



@pytest.mark.slow
@pytest.mark.parametrize("target", ["group", "parent"])
def test_sigterm_is_exit_130_with_one_line_no_leftovers_and_resumable(big_dataset, tmp_path,
                                                                     target):
    """SIGTERM (a scheduler or `kill`; to the whole process group or the parent alone)
    stops prepare like Ctrl-C: exit 130, one line, no hidden temporary shard left, and
    a rerun resumes from the complete shards."""
    out = str(tmp_path / "shards")
    proc = start_prepare(big_dataset, out)
    assert wait_for(lambda: shard_files(out))
    if target == "group":
        os.killpg(proc.pid, signal.SIGTERM)
    else:
        os.kill(proc.pid, signal.SIGTERM)
    _stdout, stderr = proc.communicate(timeout=60)
    stderr = stderr.decode()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    lines = [l for l in stderr.splitlines() if l.strip() and "prepare:" not in l]
    assert len(lines) == 1 and "interrupted (SIGTERM)" in lines[0], lines
    assert "rerun the same command" in lines[0]
    if sys.platform.startswith("linux"):
        assert wait_for(lambda: not children_of(proc.pid), 10)
    hidden = [name for folder, _dirs, names in os.walk(out) for name in names
              if name.startswith(".") and name != ".hgpipe.lock"]
    assert not hidden, hidden
    kept = shard_files(out)
    result = prepare(big_dataset, out)
    assert result.exit_code == 0, result.output + result.stderr
    if kept:
        assert "resuming:" in result.output
    assert cli_runner().invoke(main, ["inspect", out, "--verify"]).exit_code == 0
