"""PCKh: readers, both conventions, published MPII tables, plot and the ``pck`` command.

The published numbers below are third-party figures (the prediction files' authors'
tables, see ../shared/mpii/README.md); reproducing them to the digit is the point.
"""
import glob
import json
import os

import cv2
import h5py
import numpy as np
import pytest
import scipy.io

from hgpipe.eval import pckh
from hgpipe.eval.pred_files import (
    EvalFileError, GroundTruth, check_compatible, load_predictions, read_ground_truth,
    write_predictions)
from hgpipe.eval.plot import PALETTE, plot_pckh_curves
from hgpipe.joints import (HEAD_TOP, L_ANKLE, L_SHOULDER, NUM_JOINTS, R_SHOULDER,
                           UPPER_NECK)

PUBLISHED_TOMPSON = {
    "bearpaw-hg_s2_b1.mat": [95.80, 94.57, 88.12, 83.31, 86.24, 80.88, 77.44, 86.76],
    "bearpaw-hg_s8_b1.mat": [96.79, 95.19, 90.08, 85.32, 87.48, 84.26, 80.73, 88.64],
    "newell-valid-ours.h5": [95.94, 94.68, 88.53, 83.38, 87.48, 83.09, 79.05, 87.56],
}
PUBLISHED_MPII_TOTAL = {
    "bearpaw-hg_s2_b1.mat": 87.30,
    "bearpaw-hg_s8_b1.mat": 89.09,
    "newell-valid-ours.h5": 88.04,
}


@pytest.fixture(scope="module")
def detections_path(shared_mpii):
    return os.path.join(shared_mpii, "val", "detections_our_format.mat")


@pytest.fixture(scope="module")
def detections_gt(detections_path):
    return read_ground_truth(detections_path)


@pytest.fixture(scope="module")
def detections_raw(detections_path):
    """The same file through scipy alone, as an independent reference."""
    return scipy.io.loadmat(detections_path)


def _pred_path(shared_mpii, name):
    return os.path.join(shared_mpii, "preds", name)


# --------------------------------------------------------------------- published tables

@pytest.mark.parametrize("name", sorted(PUBLISHED_TOMPSON))
def test_reproduces_published_tompson_table(shared_mpii, detections_gt, name):
    preds = load_predictions(_pred_path(shared_mpii, name)).coords
    result = pckh.score_pckh(preds, detections_gt, "tompson")
    assert list(result.columns) == ["Head", "Sho", "Elb", "Wri", "Hip", "Knee", "Ank", "Mean"]
    assert [round(v, 2) for v in result.columns.values()] == PUBLISHED_TOMPSON[name]
    table = pckh.format_table([result], label=name)
    assert "%.2f" % PUBLISHED_TOMPSON[name][-1] in table


@pytest.mark.parametrize("name", sorted(PUBLISHED_MPII_TOTAL))
def test_reproduces_published_mpii_total(shared_mpii, detections_gt, name):
    preds = load_predictions(_pred_path(shared_mpii, name)).coords
    result = pckh.score_pckh(preds, detections_gt, "mpii")
    assert round(result.columns["Total"], 2) == PUBLISHED_MPII_TOTAL[name]
    # Sho...Ank need no convention-specific joints: both conventions agree to 0.05 there
    # (only `<` vs `<=` differs), while Head adds upper-neck under mpii.
    tompson = pckh.score_pckh(preds, detections_gt, "tompson")
    for column in ("Sho", "Elb", "Wri", "Hip", "Knee", "Ank"):
        assert abs(result.columns[column] - tompson.columns[column]) < 0.05
    assert result.columns["Head"] != tompson.columns["Head"]


def test_detections_gt_matches_file_and_keeps_zero_quirk(detections_gt, detections_raw):
    gt = detections_gt
    assert gt.joints.shape == (2958, NUM_JOINTS, 2) and gt.joints.dtype == np.float64
    np.testing.assert_array_equal(gt.annotated, detections_raw["jnt_missing"].T == 0)
    boxes = detections_raw["headboxes_src"]
    diag = np.hypot(boxes[1, 0] - boxes[0, 0], boxes[1, 1] - boxes[0, 1])
    np.testing.assert_allclose(gt.normalizer, 0.6 * diag)
    quirk = (gt.joints == 0).any(-1) & gt.annotated
    assert int(quirk.sum()) == 13  # as the README says; still scored, as published
    assert any("13" in note for note in gt.notes)


# --------------------------------------------------------------------- readers

def test_tompson_octave_hdf5_is_read_in_mpii_orientation(shared_mpii, detections_gt,
                                                         detections_raw):
    path = _pred_path(shared_mpii, "tompson_v1_0679e1f.h5")
    with h5py.File(path, "r") as f:  # the stored layout this reader must undo
        assert isinstance(f["preds"], h5py.Group)
        assert f["preds"]["value"].shape == (2, NUM_JOINTS, 2958)
    preds = load_predictions(path).coords
    assert preds.shape == (2958, NUM_JOINTS, 2) and preds.dtype == np.float64
    # Same predictions as pos_pred_src (Tompson CVPR'15), up to float32 storage.
    reference = detections_raw["pos_pred_src"].transpose(2, 0, 1)
    assert np.max(np.abs(preds - reference)) < 1e-3
    ours = pckh.score_pckh(preds, detections_gt, "tompson").columns
    ref = pckh.score_pckh(reference, detections_gt, "tompson").columns
    assert [round(v, 2) for v in ours.values()] == [round(v, 2) for v in ref.values()]
    assert 70.0 < ours["Mean"] < 90.0  # a wrong orientation would score near 0


def test_matlab_v73_column_major_dataset_is_transposed(tmp_path):
    rng = np.random.RandomState(5)
    preds = rng.uniform(1, 500, size=(3, NUM_JOINTS, 2))
    marked, plain = str(tmp_path / "v73.mat"), str(tmp_path / "plain.h5")
    with h5py.File(marked, "w") as f:  # MATLAB v7.3 writes (N,16,2) as HDF5 (2,16,N)
        f["preds"] = preds.transpose(2, 1, 0)
        f["preds"].attrs["MATLAB_class"] = np.bytes_(b"double")
    with h5py.File(plain, "w") as f:
        f["preds"] = preds.transpose(2, 1, 0)
    np.testing.assert_array_equal(load_predictions(marked).coords, preds)
    np.testing.assert_array_equal(load_predictions(plain).coords, preds)


def test_pos_pred_src_is_accepted_as_predictions(detections_path, detections_raw):
    preds = load_predictions(detections_path).coords
    np.testing.assert_array_equal(preds, detections_raw["pos_pred_src"].transpose(2, 0, 1))


def test_newell_valid_h5_ground_truth(shared_mpii, detections_gt):
    gt = read_ground_truth(os.path.join(shared_mpii, "val", "valid.h5"))
    assert gt.num_persons == detections_gt.num_persons
    np.testing.assert_array_equal(gt.annotated, detections_gt.annotated)
    np.testing.assert_allclose(gt.normalizer, detections_gt.normalizer, atol=1e-3)
    ann = gt.annotated & (detections_gt.joints != 0).all(-1)
    # Truncated toward zero, not rounded: within a pixel, and below the float value
    # (float noise aside) wherever the coordinate is positive.
    diff = detections_gt.joints - gt.joints
    assert np.abs(diff[ann]).max() < 1.0
    assert diff[ann & (detections_gt.joints > 1).all(-1)].min() > -1e-3
    # Only upper-neck and head-top have fractional annotations, so only they change.
    changed = (np.abs(diff) > 0.01).any(-1) & ann
    assert set(np.flatnonzero(changed.any(0))) == {UPPER_NECK, HEAD_TOP}
    assert gt.annolist_index is not None and gt.annolist_index.min() >= 1
    assert any("truncated" in note for note in gt.notes)
    preds = load_predictions(_pred_path(shared_mpii, "newell-valid-ours.h5")).coords
    from_valid = pckh.score_pckh(preds, gt, "tompson").columns["Mean"]
    published = PUBLISHED_TOMPSON["newell-valid-ours.h5"][-1]
    assert abs(from_valid - published) < 0.1


def _write_val_shards(folder, gt, rows_per_shard):
    """Two val shards with the schema's ground-truth datasets, written out of order."""
    os.makedirs(folder)
    starts = list(range(0, gt.num_persons, rows_per_shard))
    for index in reversed(range(len(starts))):
        sl = slice(starts[index], starts[index] + rows_per_shard)
        with h5py.File(os.path.join(folder, "val-%05d.h5" % index), "w") as f:
            f["gt_joints"] = gt.joints[sl].astype(np.float32)
            f["gt_annotated"] = gt.annotated[sl].astype(np.uint8)
            f["head_normalizer"] = gt.normalizer[sl].astype(np.float32)
            f["annolist_index"] = np.arange(sl.start, sl.start + len(gt.joints[sl])) + 1
            f["person_index"] = np.ones(len(gt.joints[sl]), np.int32)
    with open(os.path.join(folder, "manifest.json"), "w") as f:
        json.dump({"counts": {"val": gt.num_persons}}, f)


def _subset(gt, rows):
    return GroundTruth(gt.joints[rows], gt.annotated[rows], gt.normalizer[rows], "subset")


def test_shards_ground_truth_reads_val_shards_in_order(tmp_path, shared_mpii, detections_gt):
    sub = _subset(detections_gt, slice(0, 30))
    folder = str(tmp_path / "shards")
    _write_val_shards(folder, sub, 12)
    gt = read_ground_truth(folder)
    np.testing.assert_allclose(gt.joints, sub.joints, atol=1e-3)
    np.testing.assert_array_equal(gt.annotated, sub.annotated)
    np.testing.assert_array_equal(gt.annolist_index, np.arange(1, 31))
    one = read_ground_truth(os.path.join(folder, "val-00001.h5"))  # a single shard
    np.testing.assert_array_equal(one.annolist_index, np.arange(13, 25))
    preds = load_predictions(_pred_path(shared_mpii, "bearpaw-hg_s8_b1.mat")).coords[:30]
    a = pckh.score_pckh(preds, gt, "mpii").joint_pckh
    b = pckh.score_pckh(preds, sub, "mpii").joint_pckh
    np.testing.assert_allclose(a, b)


def test_own_predictions_roundtrip_and_order_check(tmp_path):
    rng = np.random.RandomState(0)
    preds = rng.uniform(1, 500, size=(6, NUM_JOINTS, 2))
    path = str(tmp_path / "preds.h5")
    write_predictions(path, preds, annolist_index=np.arange(1, 7), person_index=[1] * 6)
    assert os.listdir(str(tmp_path)) == ["preds.h5"]  # no temp file left behind
    np.testing.assert_array_equal(load_predictions(path).coords, preds)
    loaded = load_predictions(path)
    np.testing.assert_array_equal(loaded.annolist_index, np.arange(1, 7))
    joints = rng.uniform(1, 500, size=(6, NUM_JOINTS, 2))
    gt = GroundTruth(joints, np.ones((6, NUM_JOINTS), bool), np.full(6, 30.0), "gt-dir",
                     np.array([1, 2, 3, 5, 4, 6]), np.ones(6, np.int64))
    with pytest.raises(EvalFileError, match=r"preds\.h5: row 3 is annolist_index 4"):
        check_compatible(loaded, gt)


# --------------------------------------------------------------------- errors

def test_errors_name_the_file(tmp_path, detections_gt):
    missing = str(tmp_path / "nothere.mat")
    with pytest.raises(EvalFileError, match="nothere.mat: no such file"):
        load_predictions(missing).coords
    no_key_h5 = str(tmp_path / "nokey.h5")
    with h5py.File(no_key_h5, "w") as f:
        f["joints"] = np.zeros((3, NUM_JOINTS, 2))
    with pytest.raises(EvalFileError, match="nokey.h5: no 'preds' dataset"):
        load_predictions(no_key_h5).coords
    no_key_mat = str(tmp_path / "nokey.mat")
    scipy.io.savemat(no_key_mat, {"joints": np.zeros((3, NUM_JOINTS, 2))})
    with pytest.raises(EvalFileError, match="nokey.mat: no 'preds' variable"):
        load_predictions(no_key_mat).coords
    wrong = str(tmp_path / "wrong.mat")
    scipy.io.savemat(wrong, {"preds": np.zeros((3, 14, 2))})
    with pytest.raises(EvalFileError, match=r"wrong.mat: .*\(N, 16, 2\), got \(3, 14, 2\)"):
        load_predictions(wrong).coords
    short = str(tmp_path / "short.h5")
    write_predictions(short, np.zeros((5, NUM_JOINTS, 2)))
    with pytest.raises(EvalFileError, match="short.h5: 5 predictions but .* has 2958"):
        check_compatible(load_predictions(short), detections_gt)
    with pytest.raises(EvalFileError, match="empty: .*no manifest.json"):
        os.makedirs(str(tmp_path / "empty"))
        read_ground_truth(str(tmp_path / "empty"))
    assert issubclass(EvalFileError, ValueError)
    with pytest.raises(ValueError, match="unknown PCKh convention 'coco'"):
        pckh.get_convention("coco")


# --------------------------------------------------------------------- conventions

def _synthetic_gt(n, normalizer=10.0):
    rng = np.random.RandomState(1)
    # Integer positions, so that offsets and distances are exact in floating point.
    joints = rng.randint(50, 400, size=(n, NUM_JOINTS, 2)).astype(np.float64)
    return GroundTruth(joints, np.ones((n, NUM_JOINTS), bool), np.full(n, normalizer))


def _offset(gt, distance):
    """Predictions exactly ``distance`` pixels to the right of every ground-truth joint."""
    preds = gt.joints.copy()
    preds[..., 0] += distance
    return preds


def test_threshold_comparison_strict_vs_inclusive():
    gt = _synthetic_gt(4, normalizer=10.0)
    preds = _offset(gt, 5.0)  # 5 / 10 = 0.5 exactly
    assert pckh.score_pckh(preds, gt, "tompson").columns["Mean"] == 0.0
    assert pckh.score_pckh(preds, gt, "mpii").columns["Total"] == 100.0


def test_pckh_at_01_uses_01():
    gt = _synthetic_gt(3, normalizer=100.0)
    near, far = pckh.score_pckh(_offset(gt, 9.0), gt), pckh.score_pckh(_offset(gt, 11.0), gt)
    assert near.columns_at_01["Mean"] == 100.0 and far.columns_at_01["Mean"] == 0.0
    assert near.columns["Mean"] == 100.0 and far.columns["Mean"] == 100.0


def test_curve_and_auc_of_a_step():
    gt = _synthetic_gt(5, normalizer=100.0)
    for name in ("tompson", "mpii"):
        result = pckh.score_pckh(_offset(gt, 25.5), gt, name)  # every joint at 0.255
        summary = result.curves[result.summary_name]
        t = result.curve_thresholds
        assert len(t) == 51 and t[0] == 0.0 and t[-1] == 0.5
        np.testing.assert_array_equal(summary, np.where(t > 0.255, 100.0, 0.0))
        # Step between 0.25 and 0.26: area = 0.24*100 + 0.01*100/2 over a 0.5 span.
        assert result.auc[result.summary_name] == pytest.approx(49.0)


def test_head_column_definitions():
    gt = _synthetic_gt(4)
    preds = gt.joints.copy()
    preds[:, UPPER_NECK, 0] += 1000.0
    tompson = pckh.score_pckh(preds, gt, "tompson")
    mpii = pckh.score_pckh(preds, gt, "mpii")
    assert tompson.columns["Head"] == 100.0  # head-top only
    assert mpii.columns["Head"] == 50.0      # mean of upper-neck and head-top
    assert tompson.columns["Mean"] == pytest.approx(100.0 * 13 / 14)
    assert mpii.columns["Total"] == pytest.approx(100.0 * 13 / 14)
    assert mpii.columns["UBody"] == 100.0


def test_mean_is_per_joint_but_total_and_ubody_are_pooled():
    gt = _synthetic_gt(4)
    annotated = gt.annotated.copy()
    annotated[1:, L_ANKLE] = False      # one annotated left ankle ...
    annotated[1:, L_SHOULDER] = False   # ... and one left shoulder
    gt = gt._replace(annotated=annotated)
    preds = gt.joints.copy()
    preds[0, L_ANKLE, 0] += 1000.0      # ... both missed
    preds[0, L_SHOULDER, 0] += 1000.0
    preds[1:, L_ANKLE] = np.nan         # unannotated: never scored, NaN or not
    tompson = pckh.score_pckh(preds, gt, "tompson")
    mpii = pckh.score_pckh(preds, gt, "mpii")
    assert tompson.columns["Ank"] == 50.0 and mpii.columns["Ank"] == 50.0
    assert tompson.columns["Sho"] == 50.0 and mpii.columns["Sho"] == 50.0
    assert tompson.columns["Mean"] == pytest.approx(100.0 * 12 / 14)
    assert mpii.columns["Total"] == pytest.approx(100.0 * (12 * 4) / (12 * 4 + 2))
    assert mpii.columns["UBody"] == pytest.approx(100.0 * (5 * 4) / (5 * 4 + 1))
    assert list(mpii.joint_counts[[L_ANKLE, L_SHOULDER, R_SHOULDER, HEAD_TOP]]) == [1, 1, 4, 4]
    preds[0, R_SHOULDER] = np.nan       # annotated and NaN: a miss, not skipped
    assert pckh.score_pckh(preds, gt, "tompson").joint_pckh[R_SHOULDER] == 75.0


def test_result_dict_is_json_and_table_lists_measures():
    gt = _synthetic_gt(3, normalizer=100.0)
    result = pckh.score_pckh(_offset(gt, 20.0), gt, "mpii", threshold=0.3)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["convention"] == "mpii" and data["comparison"] == "<="
    assert data["columns"]["Total"] == 100.0 and data["pckh_at_0.1"]["Total"] == 0.0
    assert data["joints"]["pelvis"]["count"] == 3
    assert len(data["curve"]["thresholds"]) == len(data["curve"]["columns"]["Total"])
    table = pckh.format_table([result], markdown=True)
    assert "PCKh@0.3" in table and "PCKh@0.1" in table and "AUC" in table
    assert table.splitlines()[1].startswith("| ---")


# --------------------------------------------------------------------- plot and command

def test_plot_writes_png_with_curves(tmp_path, shared_mpii, detections_gt):
    preds = load_predictions(_pred_path(shared_mpii, "bearpaw-hg_s2_b1.mat")).coords
    result = pckh.score_pckh(preds, detections_gt, "tompson")
    path = str(tmp_path / "curves.png")
    plot_pckh_curves(result, path)
    assert os.listdir(str(tmp_path)) == ["curves.png"]
    image = cv2.imread(path)
    assert image is not None and image.shape[2] == 3
    for color in PALETTE[:7]:  # each joint-group curve's colour is on the canvas
        assert np.any(np.all(image == np.array(color, np.uint8), axis=-1)), color
    assert (image < 60).all(-1).sum() > 500  # thick black summary curve, axes, text


def _cli():
    from click.testing import CliRunner
    from hgpipe.cli.pck_cmd import pck_command
    return CliRunner(), pck_command


def test_pck_command_on_real_files(tmp_path, shared_mpii, detections_path):
    runner, command = _cli()
    json_path, plot_path = str(tmp_path / "out.json"), str(tmp_path / "out.png")
    args = ["--predictions", _pred_path(shared_mpii, "bearpaw-hg_s2_b1.mat"),
            "--gt", detections_path, "--json", json_path, "--plot", plot_path]
    result = runner.invoke(command, args)
    assert result.exit_code == 0, result.output
    assert "convention tompson" in result.output and "convention mpii" in result.output
    assert "| 86.76 |" in result.output and "| 87.30 |" in result.output
    with open(json_path) as f:
        data = json.load(f)
    assert [r["convention"] for r in data["results"]] == ["tompson", "mpii"]
    assert round(data["results"][0]["columns"]["Wri"], 2) == 83.31
    assert os.path.getsize(plot_path) > 1000

    result = runner.invoke(command, args[:4] + ["--convention", "mpii", "--plain"])
    assert result.exit_code == 0, result.output
    assert "convention tompson" not in result.output and "87.30" in result.output


def test_pck_command_errors(tmp_path, shared_mpii, detections_path):
    runner, command = _cli()
    result = runner.invoke(command, [])
    assert result.exit_code == 2 and "--predictions" in result.output
    result = runner.invoke(command, ["--predictions", str(tmp_path / "x.h5"),
                                     "--gt", detections_path])
    assert result.exit_code == 1 and "x.h5: no such file" in result.output
    # A predictions file given as ground truth says what is wrong with it.
    newell = _pred_path(shared_mpii, "newell-valid-ours.h5")
    result = runner.invoke(command, ["--predictions", newell, "--gt", newell])
    assert result.exit_code == 1 and "not a ground-truth file" in result.output
    assert not glob.glob(str(tmp_path / "*"))
