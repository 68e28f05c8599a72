"""A val person without a usable head box is left out with a note, the rest still scored;
repeated persons are named in a note (issue 19, item 8)."""
import h5py
import numpy as np
import pytest

from conftest import cli_runner
from hgpipe.cli import main
from hgpipe.eval import pckh
from hgpipe.eval.pred_files import EvalFileError, read_ground_truth, write_predictions


def _gt_file(path, normalizer, annolist, person, n=6):
    rng = np.random.RandomState(0)
    with h5py.File(path, "w") as f:
        f["gt_joints"] = rng.uniform(50, 400, (n, 16, 2)).astype(np.float32)
        f["gt_annotated"] = np.ones((n, 16), np.uint8)
        f["head_normalizer"] = np.asarray(normalizer, np.float32)
        f["annolist_index"] = np.asarray(annolist, np.int32)
        f["person_index"] = np.asarray(person, np.int32)
    return path


def test_bad_head_boxes_are_skipped_and_the_rest_scored(tmp_path):
    gt_path = _gt_file(str(tmp_path / "val-00000.h5"), [30, np.nan, 30, 0, 30, 30],
                       [1, 2, 3, 4, 5, 5], [1, 1, 1, 1, 1, 1])
    gt = read_ground_truth(gt_path)
    assert gt.num_persons == 6 and not gt.annotated[[1, 3]].any()
    assert gt.annotated[[0, 2, 4, 5]].all()
    # persons 0, 2, 4, 5 exact; persons 1 and 3 (no head size) far off: not counted
    preds = gt.joints.copy()
    preds[[1, 3]] += 1000.0
    result = pckh.score_pckh(preds, gt, "tompson")
    assert result.columns["Mean"] == 100.0 and int(result.joint_counts[0]) == 4
    pred_path = str(tmp_path / "preds.h5")
    write_predictions(pred_path, preds, gt.annolist_index, gt.person_index)
    out = cli_runner().invoke(main, ["pck", "--predictions", pred_path, "--gt", gt_path])
    assert out.exit_code == 0, out.output
    assert ("note: 2 persons have no usable head size (NaN, zero or negative head box; "
            "first: row 1): not scored") in out.output
    assert ("note: 1 rows repeat a person listed before them (same annolist and person "
            "index; first: row 5): each copy is scored") in out.output


def test_no_usable_head_box_at_all_is_one_line(tmp_path):
    gt_path = _gt_file(str(tmp_path / "val-00000.h5"), [0] * 6, range(1, 7), [1] * 6)
    with pytest.raises(EvalFileError, match="none of its 6 persons has a usable head size"):
        read_ground_truth(gt_path)


def test_distinct_persons_get_no_note(tmp_path):
    gt = read_ground_truth(_gt_file(str(tmp_path / "val-00000.h5"), [30] * 6,
                                    range(1, 7), [1] * 6))
    assert gt.notes == ()
