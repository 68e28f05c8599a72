"""The metrics of keypoint sets other than MPII's (hgpipe/eval/keypoint_metrics.py).

PCK@0.2 of the torso against a case worked out by hand from the reference's rule
(bearpaw/eval_pose utils/eval_pck.m: distance / ||left shoulder - right hip|| <= 0.2);
OKS AP against pycocotools' COCOeval run directly on files written in COCO format
(ground truth with its own boxes, predictions in COCO results format), for COCO's 17
joints and for a custom 5-joint set with its own sigmas."""
import json
import os

import numpy as np
import pytest

from hgpipe.eval import keypoint_metrics as km
from hgpipe.joints import COCO, LSP

pytest.importorskip("pycocotools")


def _lsp_case():
    """Three persons of LSP's 14 joints, every prediction exact except where noted."""
    gt = np.tile(np.arange(14, dtype=np.float64)[:, None] * [3.0, 2.0] + 20.0, (3, 1, 1))
    annotated = np.ones((3, 14), bool)
    # person 0: left shoulder (9) at (10, 10), right hip (2) at (13, 14): torso 5, so a
    # joint is correct within 1.0 px
    gt[0, 9], gt[0, 2] = (10.0, 10.0), (13.0, 14.0)
    # person 1: torso 10 (6, 8 apart): correct within 2.0 px; joint 3 not annotated
    gt[1, 9], gt[1, 2] = (50.0, 50.0), (56.0, 58.0)
    annotated[1, 3] = False
    # person 2: both torso joints on one point: no normaliser, every joint wrong
    gt[2, 9] = gt[2, 2] = (70.0, 70.0)
    pred = gt.copy()
    pred[0, 0] += (1.0, 0.0)          # exactly 1.0 px: correct (<=)
    pred[0, 1] += (0.0, 1.25)         # 1.25 px: wrong
    pred[1, 0] += (1.5, 2.0)          # 2.5 px > 2.0: wrong
    pred[1, 3] += (40.0, 40.0)        # far off, but not annotated: not counted
    return pred, gt, annotated


def test_pck_torso_matches_the_hand_computed_case():
    pred, gt, annotated = _lsp_case()
    score = km.pck_torso(pred, gt, annotated, LSP.torso)
    assert LSP.torso == (9, 2)  # eval_pck.m:36, gt(:,10) - gt(:,3), 1-based
    # counted: 14 + 13 + 14 = 41 joints; correct: 13 (person 0) + 12 (person 1) + 0
    assert score.metric == "pck_torso" and score.num_persons == 3
    assert score.total == pytest.approx(100.0 * 25 / 41)
    assert score.details["no_torso"] == 1 and score.details["joints_counted"] == 41
    per_joint = score.per_joint
    assert per_joint[0] == pytest.approx(100.0 / 3)   # right only for person 0
    assert per_joint[1] == pytest.approx(100.0 / 3)   # right only for person 1
    assert per_joint[3] == pytest.approx(50.0)        # person 0 of the two counted
    assert per_joint[5] == pytest.approx(200.0 / 3)
    # the reference's table: right and left averaged (eval_pck.m:14); ankles 0 and 5
    paired = dict(((a, b), v) for a, b, v in km.paired_pck(per_joint, LSP.flip_pairs))
    assert paired[(0, 5)] == pytest.approx((100.0 / 3 + 200.0 / 3) / 2)
    assert paired[(12, 12)] == pytest.approx(200.0 / 3)  # neck: no partner


def test_pck_torso_threshold_is_inclusive_and_scales():
    pred, gt, annotated = _lsp_case()
    # at 0.25 person 0's 1.25 px joint (torso 5) and person 1's 2.5 px one (torso 10)
    # are exactly at the threshold: both correct
    assert km.pck_torso(pred, gt, annotated, LSP.torso, threshold=0.25).total == \
        pytest.approx(100.0 * 27 / 41)
    assert km.pck_torso(pred, gt, annotated, LSP.torso, threshold=0.0).total == \
        pytest.approx(100.0 * 24 / 41)  # only the exact ones: 12 + 12


def _coco_case(num_joints, seed, n_images=4, per_image=(1, 3)):
    """Ground truth in COCO format (0-based pixels, real-looking boxes) and predictions
    with errors from exact to far, plus per-joint scores."""
    rng = np.random.RandomState(seed)
    images, annotations, persons = [], [], []
    ann_id = 900
    for image_id in range(11, 11 + n_images):
        images.append({"id": image_id, "file_name": "%d.jpg" % image_id,
                       "width": 640, "height": 480})
        for _ in range(rng.randint(per_image[0], per_image[1] + 1)):
            ann_id += 7
            centre = rng.uniform(100, 400, size=2)
            joints = centre + rng.uniform(-60, 60, size=(num_joints, 2))
            v = rng.choice([0, 1, 2], size=num_joints, p=[0.15, 0.25, 0.6])
            v[0] = 2
            joints[v == 0] = 0.0
            area = float(rng.uniform(2000, 20000))
            box = [float(centre[0] - 70), float(centre[1] - 80), 140.0, 160.0]
            annotations.append({
                "id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                "area": area, "bbox": box, "num_keypoints": int((v > 0).sum()),
                "keypoints": [float(c) for c in
                              np.concatenate([joints, v[:, None]], axis=1).ravel()]})
            noise = rng.normal(0, 1, size=(num_joints, 2)) * rng.choice([0.5, 3, 10, 30])
            persons.append((image_id, ann_id, joints, v > 0, area, joints + noise,
                            rng.uniform(0, 1, size=num_joints)))
    return images, annotations, persons


def _direct_cocoeval(tmp_path, images, annotations, results, sigmas, names):
    """COCOeval as a user runs it: COCO(file), loadRes(file), the set's sigmas."""
    from pycocotools.coco import COCO as CocoApi
    from pycocotools.cocoeval import COCOeval
    gt_file, res_file = str(tmp_path / "gt.json"), str(tmp_path / "results.json")
    with open(gt_file, "w") as handle:
        json.dump({"images": images, "annotations": annotations,
                   "categories": [{"id": 1, "name": "person", "keypoints": list(names)}]},
                  handle)
    with open(res_file, "w") as handle:
        json.dump(results, handle)
    coco_gt = CocoApi(gt_file)
    evaluator = COCOeval(coco_gt, coco_gt.loadRes(res_file), "keypoints")
    evaluator.params.kpt_oks_sigmas = np.array(sigmas)
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return evaluator.stats


@pytest.mark.parametrize("keypoints,seed", [
    (COCO, 3),
    (COCO._replace(name="paws", joint_names=("nose", "left_paw", "right_paw", "left_ear",
                                             "right_ear"), flip_pairs=((2, 1), (4, 3)),
                   skeleton=((0, 1),), oks_sigmas=(0.05, 0.07, 0.07, 0.1, 0.1)), 5)],
    ids=["coco17", "custom5"])
def test_oks_ap_equals_cocoeval_run_directly(tmp_path, keypoints, seed):
    assert keypoints.problem() is None
    images, annotations, persons = _coco_case(keypoints.num_joints, seed)
    image_id, ann_id, gt, annotated, area, pred, scores = (
        np.array([p[i] for p in persons]) for i in range(7))
    # hgpipe's arrays are 1-based pixels (COCO + 1), as the reader and shards hold them
    score = km.oks_ap(pred + 1.0, scores, gt + 1.0, annotated, area, image_id, ann_id,
                      keypoints.oks_sigmas)
    # the user's own run: results in COCO format, written by hand here
    results = []
    for n in range(len(persons)):
        above = scores[n][scores[n] > 0.2]
        results.append({"image_id": int(image_id[n]), "category_id": 1,
                        "score": float(above.mean()) if len(above) else 0.0,
                        "keypoints": [float(c) for c in np.concatenate(
                            [pred[n], scores[n][:, None]], axis=1).ravel()]})
    for mine, theirs in zip(km.coco_results(pred + 1.0, scores, image_id), results):
        assert sorted(mine) == sorted(theirs) and mine["image_id"] == theirs["image_id"]
        assert mine["score"] == pytest.approx(theirs["score"])
        assert mine["keypoints"] == pytest.approx(theirs["keypoints"], abs=1e-9)
    stats = _direct_cocoeval(tmp_path, images, annotations, results, keypoints.oks_sigmas,
                             keypoints.joint_names)
    assert 0.05 < stats[0] < 0.95   # neither nothing nor everything right: a real test
    assert score.metric == "oks" and score.num_persons == len(persons)
    assert score.total == pytest.approx(100.0 * stats[0], abs=1e-9)
    for name, value in zip(km.COCO_STATS, stats):
        expected = float("nan") if value < 0 else 100.0 * value
        assert score.details[name] == pytest.approx(expected, abs=1e-9, nan_ok=True), name


def test_oks_ap_uses_the_sets_sigmas():
    images, annotations, persons = _coco_case(17, 3)
    image_id, ann_id, gt, annotated, area, pred, scores = (
        np.array([p[i] for p in persons]) for i in range(7))
    tight = km.oks_ap(pred, scores, gt, annotated, area, image_id, ann_id, COCO.oks_sigmas)
    loose = km.oks_ap(pred, scores, gt, annotated, area, image_id, ann_id,
                      np.array(COCO.oks_sigmas) * 4)
    assert loose.total > tight.total
    # COCO's sigmas are pycocotools' own (cocoeval.py: np.array([.26, ...]) / 10.0)
    from pycocotools.cocoeval import Params
    assert np.array_equal(np.array(COCO.oks_sigmas), Params("keypoints").kpt_oks_sigmas)


def test_perfect_predictions_score_100_and_nothing_scores_nan():
    images, annotations, persons = _coco_case(17, 4)
    image_id, ann_id, gt, annotated, area, _pred, scores = (
        np.array([p[i] for p in persons]) for i in range(7))
    perfect = km.oks_ap(gt, scores, gt, annotated, area, image_id, ann_id, COCO.oks_sigmas)
    assert perfect.total == pytest.approx(100.0)
    empty = km.oks_ap(np.zeros((0, 17, 2)), np.zeros((0, 17)), np.zeros((0, 17, 2)),
                      np.zeros((0, 17), bool), [], [], [], COCO.oks_sigmas)
    assert np.isnan(empty.total) and empty.num_persons == 0
    with pytest.raises(ValueError, match="annotation ids repeat"):
        km.oks_ap(gt, scores, gt, annotated, area, image_id, np.zeros_like(ann_id),
                  COCO.oks_sigmas)
