"""Bounded fuzzing of every reader of a user's annotation and image files: seeded
mutations of real files (tests/fuzz_readers.py; ../shared/mpii when present, else
files of the same formats made there), each case in a child process capped at 2 GiB of
address space and 20 s per case. Every case must end in success or hgpipe's one-line
error naming the file; never another exception, a hang, a MemoryError, or a line on
stderr (a warning, or an image library's own message)."""
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

CASES = {"mpii_json": 300, "head_boxes": 300, "hrnet_json": 300, "dataset_txt": 300,
         "mat": 300, "images": 300}


@pytest.mark.slow
@pytest.mark.parametrize("reader", sorted(CASES))
def test_fuzzed_files_end_in_success_or_one_line(reader, tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "tests", "fuzz_readers.py"),
                           reader, "19", str(CASES[reader]), str(tmp_path)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600,
                          env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    out = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0, out[-4000:] + proc.stderr.decode(errors="replace")[-2000:]
    # nothing else reached stderr: no warning, and no line of libpng / libjpeg / OpenCV
    # (decode_image turns those into its one line)
    assert not proc.stderr.strip(), proc.stderr.decode(errors="replace")[-2000:]
    counts = json.loads(out.strip().splitlines()[-1])
    assert counts["cases"] == CASES[reader]
    assert counts["read"] + counts["refused"] == CASES[reader]
    assert counts["refused"] > 0  # the mutations do reach the checks
