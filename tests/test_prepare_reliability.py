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
from hgpipe.data.shards import CHECKSUM_KEY, load_manifest

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
