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
    assert "Traceback" not in result.stderr
    skipped, error = result.stderr.strip().splitlines()
    assert skipped.startswith("skipped %s: " % image_path) and words in skipped
    assert error == "Error: 1 image or frame skipped (listed above); nothing written"
    assert not os.path.isdir(out) or os.listdir(out) == []


def test_predict_writes_both_files_or_neither(checkpoint, image_path, tmp_path):
    out = str(tmp_path / "out")
    os.makedirs(os.path.join(out, "person.pose.png"))  # the PNG cannot be written
    args = ["predict", image_path, "--checkpoint", checkpoint, "--out", out, "--draw"]
    result = cli_runner().invoke(main, args)
    assert result.exit_code == 1
    assert "skipped %s: " % image_path in result.stderr
    assert sorted(os.listdir(out)) == ["person.pose.png"]  # no JSON, no temporary file
    os.rmdir(os.path.join(out, "person.pose.png"))
    result = cli_runner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(out)) == ["person.pose.png", "predictions.jsonl"]


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


# --------------------------------------------------------------------------- pck files

@pytest.fixture
def valid_h5(tmp_path):
    """Newell's valid.h5 layout: 5 persons, joints away from (0, 0), head size 20 px."""
    import h5py
    rng = np.random.RandomState(3)
    part = rng.uniform(50, 150, (5, 16, 2))
    path = str(tmp_path / "valid.h5")
    with h5py.File(path, "w") as f:
        f["part"] = part
        f["normalize"] = np.full(5, 20.0)
    return path, part


def write_preds(path, preds):
    import h5py
    with h5py.File(path, "w") as f:
        f["preds"] = preds


def pck(preds_path, gt_path):
    return cli_runner().invoke(main, ["pck", "--predictions", preds_path, "--gt", gt_path,
                                      "--convention", "tompson", "--plain"])


def mean_of(output):
    row = [line for line in output.splitlines() if "PCKh@0.5" in line][0]
    return float(row.split()[-1])


def test_pck_takes_x_y_of_predictions_with_a_score_column(valid_h5, tmp_path):
    gt_path, part = valid_h5
    preds = part + 3.0  # 3*sqrt(2) px off: inside 0.5 x 20 px
    preds[0] += 50.0    # person 0: every joint a miss
    with_scores = np.concatenate([preds, np.full((5, 16, 1), 0.9)], axis=-1)
    plain, scored = str(tmp_path / "p2.h5"), str(tmp_path / "p3.h5")
    write_preds(plain, preds)
    write_preds(scored, with_scores)
    a, b = pck(plain, gt_path), pck(scored, gt_path)
    assert a.exit_code == 0 and b.exit_code == 0, b.output + b.stderr
    assert mean_of(a.output) == mean_of(b.output) == 80.0
    notes = [line for line in b.output.splitlines() if "(N, 16, 3)" in line]
    assert len(notes) == 1 and "first two columns" in notes[0]
    assert "(N, 16, 3)" not in a.output


def test_pck_counts_non_finite_predictions(valid_h5, tmp_path):
    gt_path, part = valid_h5
    preds = part.copy()
    preds[1, 2, 0] = np.nan
    preds[3, 5:7] = np.inf
    path = str(tmp_path / "p.h5")
    write_preds(path, preds)
    result = pck(path, gt_path)
    assert result.exit_code == 0
    assert "note: 3 of 80 predicted joints are not finite (NaN/Inf): scored as misses" \
        in result.output
    assert mean_of(result.output) < 100.0


def test_pck_text_predictions_are_one_line(valid_h5, tmp_path):
    gt_path, _ = valid_h5
    path = str(tmp_path / "p.h5")
    write_preds(path, np.array([[b"x", b"y"]] * 16 * 5).reshape(5, 16, 2))
    result = pck(path, gt_path)
    assert result.exit_code == 1 and "Traceback" not in result.output + result.stderr
    assert result.stderr.strip() == "Error: %s: 'preds' holds text values, expected " \
        "numbers (N, 16, 2)" % path


# --------------------------------------------------------------------------- config

def test_integer_keys_refuse_fractions():
    from hgpipe.config import ConfigError, load_config
    with pytest.raises(ConfigError, match=r"batch_size = '1.5': expected an integer"):
        load_config(None, ["Train.batch_size=1.5"])
    assert load_config(None, ["Train.batch_size=2.0"])["Train"]["batch_size"] == 2
    with pytest.raises(ConfigError, match="lr_milestones"):
        load_config(None, ["Train.lr_milestones=60 90.5"])


def test_heatmap_size_must_be_a_quarter_of_the_input(tmp_path):
    from hgpipe.config import ConfigError, load_config
    with pytest.raises(ConfigError, match="hm_size must be img_size / 4"):
        load_config(None, ["DataSetHG.img_size=64"])  # hm_size stays 64
    assert load_config(None, ["DataSetHG.img_size=64", "DataSetHG.hm_size=16"])
    out = str(tmp_path / "shards")
    result = cli_runner().invoke(main, ["prepare", "--mpii", str(tmp_path), "--out", out,
                                        "--set", "DataSetHG.img_size=128"])
    assert result.exit_code == 1 and "hm_size must be img_size / 4" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not os.path.exists(out)


def test_seed_only_keys_are_named_once(tmp_path):
    cfg = str(tmp_path / "seed.cfg")
    with open(cfg, "w") as out:
        out.write("[DataSetHG]\nimg_directory: '/data/mpii/images'\nimg_size: 64\n"
                  "hm_size: 16\njoint_list = ['r_anckle']\n[Network]\nname: 'hg'\n"
                  "[Saver]\nlog_dir_train: 'logs'\nsaver_directory: 'ckpt'\n")
    result = cli_runner().invoke(main, ["prepare", "--mpii", str(tmp_path / "none"),
                                        "--out", str(tmp_path / "o"), "--config", cfg])
    lines = [l for l in result.stderr.splitlines() if "seed compatibility" in l]
    assert lines == ["%s: accepted for seed compatibility, ignored: DataSetHG.img_directory, "
                     "DataSetHG.joint_list, Network.name, Saver.log_dir_train, "
                     "Saver.saver_directory" % cfg]
    plain = str(tmp_path / "plain.cfg")
    with open(plain, "w") as out:
        out.write("[DataSetHG]\nimg_size = 64\nhm_size = 16\n")
    result = cli_runner().invoke(main, ["prepare", "--mpii", str(tmp_path / "none"),
                                        "--out", str(tmp_path / "o"), "--config", plain])
    assert "seed compatibility" not in result.stderr
