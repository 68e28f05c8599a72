"""Bounded, seeded fuzzing of shards folders (HDF5 shards and manifest.json), config
files (issue 19, item 5) and the keypoint annotation readers (issue 22: COCO-format JSON,
LSP's joints.mat): every case ends in success or one of hgpipe's one-line errors,
never another exception, a hang (subprocess timeout) or memory past a bound (the
worker's address space is capped; RSS reported). The cases: tests/fuzz_worker.py."""
import json
import os
import subprocess
import sys

import pytest

from conftest import prepare_synthetic_shards

HERE = os.path.dirname(os.path.abspath(__file__))
LIMIT_MB = 2048        # address space of the worker (numpy + h5py start near 600 MB)
TIMEOUT = 120          # seconds: a hang fails the test instead of holding CI


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return prepare_synthetic_shards(tmp_path_factory, 6, 5, "Prepare.variants=2",
                                    "Prepare.shard_size=8")


def _fuzz(kind, source, cases, seed):
    out = subprocess.run([sys.executable, os.path.join(HERE, "fuzz_worker.py"), kind,
                          source, str(cases), str(seed), str(LIMIT_MB)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT)
    assert out.returncode == 0, out.stderr.decode("utf-8", "replace")[-3000:]
    summary = json.loads(out.stdout.decode("utf-8").strip().splitlines()[-1])
    assert not summary["failures"], "\n".join(summary["failures"][:3])
    assert summary["cases"] == cases
    return summary


SHARD_CASES = 300
CONFIG_CASES = 400


def test_fuzzed_shards_folders_end_in_success_or_one_line(pristine):
    summary = _fuzz("shards", pristine, SHARD_CASES, seed=19)
    assert summary["refused"] > SHARD_CASES // 10 and summary["ok"] > 0, summary
    print("shards fuzz: %(cases)d cases, %(ok)d read, %(refused)d refused in one line, "
          "peak RSS %(max_rss_mb)d MB" % summary)


def test_fuzzed_configs_end_in_success_or_one_line():
    summary = _fuzz("configs", os.path.join(HERE, os.pardir, "configs"), CONFIG_CASES,
                    seed=19)
    assert summary["refused"] > CONFIG_CASES // 10 and summary["ok"] > 0, summary
    print("config fuzz: %(cases)d cases, %(ok)d loaded, %(refused)d refused in one line, "
          "peak RSS %(max_rss_mb)d MB" % summary)


COCO_CASES = 300
LSP_CASES = 300


def test_fuzzed_coco_files_end_in_success_or_one_line():
    pytest.importorskip("pycocotools")
    source = os.path.join(HERE, os.pardir, "data", "demo_coco", "annotations",
                          "person_keypoints_val.json")
    summary = _fuzz("coco", source, COCO_CASES, seed=22)
    assert summary["refused"] > COCO_CASES // 10 and summary["ok"] > 0, summary
    print("coco fuzz: %(cases)d cases, %(ok)d read, %(refused)d refused in one line, "
          "peak RSS %(max_rss_mb)d MB" % summary)


def test_fuzzed_lsp_files_end_in_success_or_one_line():
    summary = _fuzz("lsp", HERE, LSP_CASES, seed=22)
    assert summary["refused"] > LSP_CASES // 10 and summary["ok"] > 0, summary
    print("lsp fuzz: %(cases)d cases, %(ok)d read, %(refused)d refused in one line, "
          "peak RSS %(max_rss_mb)d MB" % summary)
