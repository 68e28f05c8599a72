"""Mistakes a user makes get one line and a non-zero exit, never garbage: implausible
person boxes, bad config values, odd prediction files."""
import os

import cv2
import numpy as np
import pytest

from conftest import SHARED_MPII, cli_runner
from hgpipe.cli import main
from hgpipe.data import plausible


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from test_predict_export import write_inference_checkpoint
    return write_inference_checkpoint(str(tmp_path_factory.mktemp("ckpt") / "run"))


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("img") / "person.jpg")
    cv2.imwrite(path, np.random.RandomState(0).randint(0, 255, (300, 200, 3)).astype(np.uint8))
    return path


# --------------------------------------------------------------------------- predict

@pytest.mark.parametrize("box, words", [
    (["--center", "100", "150", "--scale", "1e30"], "implausible"),
    (["--center", "100", "150", "--scale", "240"], "scale in pixels"),   # 240 px, not /200
    (["--center", "99954", "-49912", "--scale", "1"], "outside the 200x300 image"),
    (["--bbox", "5000", "5000", "5100", "5200"], "outside"),
    (["--center", "100", "150", "--scale", "0.001"], "implausible"),
])
def test_predict_refuses_a_box_that_cannot_be_right(checkpoint, image_path, tmp_path, box,
                                                    words):
    out = str(tmp_path / "out")
    result = cli_runner().invoke(main, ["predict", image_path, "--checkpoint", checkpoint,
                                        "--out", out] + box)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert image_path in result.stderr and words in result.stderr
    assert not os.path.isdir(out) or os.listdir(out) == []


def test_predict_writes_both_files_or_neither(checkpoint, image_path, tmp_path):
    out = str(tmp_path / "out")
    os.makedirs(os.path.join(out, "person.pose.png"))  # the PNG cannot be written
    result = cli_runner().invoke(main, ["predict", image_path, "--checkpoint", checkpoint,
                                        "--out", out])
    assert result.exit_code == 1
    assert sorted(os.listdir(out)) == ["person.pose.png"]  # no JSON, no temporary file
    os.rmdir(os.path.join(out, "person.pose.png"))
    result = cli_runner().invoke(main, ["predict", image_path, "--checkpoint", checkpoint,
                                        "--out", out])
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(out)) == ["person.pose.json", "person.pose.png"]


def test_no_real_mpii_person_is_implausible():
    import gzip
    import json
    path = os.path.join(SHARED_MPII, "annotations", "mpii_annotations.json.gz")
    if not os.path.isfile(path):
        pytest.skip("../shared/mpii is not available")
    with gzip.open(path, "rt") as handle:
        entries = json.load(handle)
    problems = [plausible.box_problem(e["objpos"], e["scale_provided"], e["img_width"],
                                      e["img_height"]) for e in entries]
    assert len(entries) > 25000 and not any(problems)
    # and the same persons with their scale in pixels (x200) are all caught
    caught = [plausible.box_problem(e["objpos"], 200 * e["scale_provided"], e["img_width"],
                                    e["img_height"]) for e in entries[:2000]]
    assert all(caught)
