"""Scores of the keypoint sets that are not MPII's: PCK@0.2 of the torso, and OKS AP.

:func:`hgpipe.eval.evaluate.score_predictions` dispatches on ``KeypointSet.metric``:
``pckh`` goes to :mod:`hgpipe.eval.pckh` (MPII, unchanged), ``pck_torso`` to
:func:`pck_torso`, ``oks`` to :func:`oks_ap`. Both take arrays in the val shards' order
and units (1-based image pixels, as every hgpipe predictions file); an offset common to
predictions and ground truth changes neither score.

PCK@0.2 of the torso follows the LSP protocol as bearpaw/eval_pose implements it (the
evaluation code of Yang et al., CVPR 2016, itself "from a widely used version from the MPII
Human Pose Dataset", its README): ``utils/eval_pck.m:3-4`` (PCK as defined by Sapp &
Taskar, CVPR 2013; "torso height: ||left_shoulder - right hip||"), ``:36`` the normaliser
of a 14-joint person, ``norm(gt(:,10) - gt(:,3))`` (1-based LSP ids: left shoulder, right
hip; :data:`hgpipe.joints.LSP` ``torso = (9, 2)``), ``:46`` each joint's distance over
it, ``:59`` correct when ``<=`` the threshold (0.2, the end of ``range = 0:0.01:0.2``,
``:5``), ``:65`` the total over every joint of every person.

OKS AP is pycocotools' COCOeval (``iouType='keypoints'``, the set's sigmas as
``params.kpt_oks_sigmas``), on predictions in COCO results format
(:func:`coco_results`), scored against a ground truth made of the same persons: the
val shards' persons with their areas, image ids and annotation ids from the source file,
and the val images' crowd regions prepare kept (:data:`hgpipe.data.schema.CROWD_FILE`).
A person's score is MMPose's rescoring for ground-truth boxes (v0.29.0
``mmpose/datasets/datasets/top_down/topdown_coco_dataset.py:296-313``: the mean of the
joint scores above ``vis_thr``, 0.2 in its COCO configs such as
``configs/.../coco/hourglass52_coco_256x256.py:63``, times a box score of 1). No OKS NMS:
there is one prediction per ground-truth box.
"""
from typing import NamedTuple, Optional, Tuple

import numpy as np

from hgpipe import cocotools

PCK_TORSO_THRESHOLD = 0.2          # eval_pck.m:5, range = 0:0.01:0.2
VIS_THRESHOLD = 0.2                # MMPose's vis_thr for rescoring (its COCO configs)
COCO_STATS = ("AP", "AP50", "AP75", "AP_M", "AP_L", "AR", "AR50", "AR75", "AR_M", "AR_L")


class KeypointScore(NamedTuple):
    """One metric's result: ``total`` in percent (PCK or AP x 100), ``per_joint`` in
    percent per joint in the set's order (None where the metric has none, as OKS AP),
    ``details`` any further named figures (AP50, AP75, AR ... for OKS)."""
    metric: str                           # 'pck_torso' | 'oks'
    total: float
    per_joint: Optional[Tuple[float, ...]]
    num_persons: int
    details: dict

    def to_dict(self):
        return {"metric": self.metric, "total": self.total,
                "per_joint": list(self.per_joint) if self.per_joint is not None else None,
                "num_persons": self.num_persons, "details": dict(self.details)}


def _as_arrays(pred_xy, gt_xy, annotated):
    pred = np.asarray(pred_xy, dtype=np.float64)
    gt = np.asarray(gt_xy, dtype=np.float64)
    annotated = np.asarray(annotated, dtype=bool)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[2] != 2 or \
            annotated.shape != pred.shape[:2]:
        raise ValueError("predictions %s, ground truth %s and annotated %s must be "
                         "(N, K, 2), (N, K, 2) and (N, K)" % (pred.shape, gt.shape,
                                                              annotated.shape))
    return pred, gt, annotated


def pck_torso(pred_xy, gt_xy, annotated, torso_pair, threshold=PCK_TORSO_THRESHOLD):
    """PCK@``threshold`` with the torso normaliser (LSP).

    ``pred_xy``, ``gt_xy``: (N, K, 2) pixels; ``annotated``: (N, K) bool, the joints that
    count; ``torso_pair``: the two joint ids whose ground-truth distance normalises each
    person (``KeypointSet.torso``). Returns a :class:`KeypointScore`.

    A joint is correct when its distance to the ground truth is at most ``threshold``
    times the person's torso (eval_pck.m:46, 59). ``per_joint`` is each joint's own PCK
    (the reference's table then averages left and right, eval_pck.m:14: that is
    :func:`paired_pck`); ``total`` is over every counted joint (:65). A person whose
    torso has length 0 or an unannotated end has no normaliser: the reference divides
    by zero and its joints count as wrong, as here; ``details`` ``no_torso`` counts them.
    """
    pred, gt, annotated = _as_arrays(pred_xy, gt_xy, annotated)
    a, b = (int(j) for j in torso_pair)
    torso = np.hypot(*(gt[:, a] - gt[:, b]).T) if len(gt) else np.zeros(0)
    has_torso = annotated[:, a] & annotated[:, b] & (torso > 0) & np.isfinite(torso)
    dist = np.hypot(*(pred - gt).transpose(2, 0, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        correct = has_torso[:, None] & (dist <= threshold * torso[:, None])
    counted = annotated.sum(axis=0)
    hits = (correct & annotated).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_joint = np.where(counted > 0, 100.0 * hits / np.maximum(counted, 1), np.nan)
    total = 100.0 * hits.sum() / counted.sum() if counted.sum() else float("nan")
    return KeypointScore("pck_torso", float(total), tuple(float(v) for v in per_joint),
                         int(len(pred)), {"threshold": float(threshold),
                                          "no_torso": int((~has_torso).sum()),
                                          "joints_counted": int(counted.sum())})


def paired_pck(per_joint, flip_pairs):
    """The reference's table: each paired joint's PCK averaged with its partner's
    (eval_pck.m:14), one value per pair and per unpaired joint, in the set's order."""
    partner = dict(flip_pairs)
    partner.update((b, a) for a, b in flip_pairs)
    seen, out = set(), []
    for j, value in enumerate(per_joint):
        if j in seen:
            continue
        k = partner.get(j, j)
        seen.update((j, k))
        out.append((j, k, (value + per_joint[k]) / 2.0))
    return out


def person_scores(pred_scores, threshold=VIS_THRESHOLD):
    """MMPose's rescoring for ground-truth boxes: each person's mean joint score over the
    joints scoring above ``threshold``, 0 when none does (topdown_coco_dataset.py:300-313)."""
    scores = np.asarray(pred_scores, dtype=np.float64)
    above = scores > threshold
    total = np.where(above, scores, 0.0).sum(axis=1)
    count = above.sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def coco_results(pred_xy, pred_scores, image_id, category_id=1):
    """Predictions as a COCO results list (``image_id``, ``category_id``, ``keypoints``
    [x, y, score] x K in COCO's 0-based pixels, ``score``), the input of COCO.loadRes
    and of any COCO-format evaluation. ``pred_xy`` in hgpipe's 1-based pixels."""
    pred = np.asarray(pred_xy, dtype=np.float64) - cocotools.PIXEL_OFFSET
    joint_scores = np.asarray(pred_scores, dtype=np.float64)
    scores = person_scores(joint_scores)
    results = []
    for n in range(len(pred)):
        triples = np.concatenate([pred[n], joint_scores[n][:, None]], axis=1)
        results.append({"image_id": int(image_id[n]), "category_id": int(category_id),
                        "keypoints": [float(v) for v in triples.ravel()],
                        "score": float(scores[n])})
    return results


def ground_truth(gt_xy, annotated, area, image_id, annotation_id, num_joints,
                 category_id=1, crowd=()):
    """A COCO-format ground-truth dict of the given persons (hgpipe 1-based pixels in,
    COCO 0-based out; ``v`` = 2 for an annotated joint, 0 otherwise: COCOeval only asks
    ``v > 0``). The box is the annotated joints' extent: COCOeval reads a ground-truth
    box only for a person without labelled joints, which the val shards never hold.
    ``crowd``: crowd regions in COCO's format and pixels (the shards' ``crowd.json``),
    added with ``iscrowd`` 1 as they are, those of the persons' images only (COCOeval
    scores only the images it lists, ``params.imgIds``)."""
    gt = np.asarray(gt_xy, dtype=np.float64) - cocotools.PIXEL_OFFSET
    annotated = np.asarray(annotated, dtype=bool)
    annotations = []
    for n in range(len(gt)):
        points = gt[n][annotated[n]]
        low = points.min(axis=0) if len(points) else np.zeros(2)
        high = points.max(axis=0) if len(points) else np.zeros(2)
        triples = np.concatenate([np.where(annotated[n][:, None], gt[n], 0.0),
                                  2.0 * annotated[n][:, None]], axis=1)
        annotations.append({
            "id": int(annotation_id[n]), "image_id": int(image_id[n]),
            "category_id": int(category_id), "iscrowd": 0,
            "num_keypoints": int(annotated[n].sum()), "area": float(area[n]),
            "keypoints": [float(v) for v in triples.ravel()],
            "bbox": [float(low[0]), float(low[1]), float(high[0] - low[0]),
                     float(high[1] - low[1])]})
    listed = set(int(i) for i in image_id)
    for region in crowd:
        if int(region["image_id"]) in listed:
            annotations.append(dict(region, category_id=int(category_id), iscrowd=1))
    images = [{"id": i} for i in sorted(listed)]
    return {"images": images, "annotations": annotations,
            "categories": [{"id": int(category_id), "name": "keypoints",
                            "keypoints": ["joint_%d" % j for j in range(num_joints)]}]}


def cocoeval_stats(gt_dataset, results, sigmas):
    """COCOeval('keypoints') of ``results`` against ``gt_dataset`` (a dict in COCO
    format) with per-joint ``sigmas``: its ten summary figures (``stats``)."""
    COCO, COCOeval = cocotools.pycocotools("OKS AP")
    with cocotools.quiet():
        coco_gt = COCO()
        coco_gt.dataset = gt_dataset
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results) if results else COCO()
        evaluator = COCOeval(coco_gt, coco_dt, "keypoints")
        evaluator.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return [float(v) for v in evaluator.stats]


def oks_ap(pred_xy, pred_scores, gt_xy, annotated, area, image_id, annotation_id, sigmas,
           crowd=()):
    """OKS AP with ground-truth boxes, through pycocotools' COCOeval (COCO-format sets).

    ``pred_xy``, ``gt_xy``: (N, K, 2) pixels, one prediction per ground-truth person;
    ``pred_scores``: (N, K) heatmap peak values; ``annotated``: (N, K) bool (COCO v > 0);
    ``area``: (N,) the annotations' areas; ``image_id``, ``annotation_id``: (N,) ints
    from the source file; ``sigmas``: (K,) ``KeypointSet.oks_sigmas``; ``crowd``: the
    val images' crowd regions (COCO-format dicts with id, image_id, bbox, area,
    keypoints, num_keypoints: :func:`hgpipe.eval.pred_files.read_keypoint_ground_truth`
    reads them from the shards). Returns a :class:`KeypointScore` whose total is AP
    (x 100) over OKS 0.50:0.95.

    Crowd regions are not scored, but a prediction that matches one is ignored, neither
    true nor false positive (pycocotools ``cocoeval.py`` ``_prepare``: ``iscrowd`` sets
    ``ignore``; ``evaluateImg``: ``dtIg[tind,dind] = gtIg[m]``; one region may match many
    predictions): without them a prediction near a crowd is a false positive and AP
    falls (54.4 against COCOeval's 55.3 on data/demo_coco's val file). With them this is
    COCOeval on the source file, except for the persons prepare did not keep: one
    without labelled joints is also an ignored ground truth there (``num_keypoints ==
    0``), which can likewise absorb one prediction; one skipped for a bad box or image is
    missed there and absent here."""
    pred, gt, annotated = _as_arrays(pred_xy, gt_xy, annotated)
    scores = np.asarray(pred_scores, dtype=np.float64)
    sigmas = np.asarray(sigmas, dtype=np.float64)
    if scores.shape != annotated.shape or sigmas.shape != (pred.shape[1],):
        raise ValueError("scores %s and sigmas %s must be (N, K) and (K,) for K = %d"
                         % (scores.shape, sigmas.shape, pred.shape[1]))
    if not len(pred):
        return KeypointScore("oks", float("nan"), None, 0,
                             dict((name, float("nan")) for name in COCO_STATS))
    annotation_id = np.asarray(annotation_id).astype(np.int64)
    if len(set(annotation_id.tolist())) != len(annotation_id):
        raise ValueError("annotation ids repeat: each val person needs its own")
    stats = cocoeval_stats(
        ground_truth(gt, annotated, area, image_id, annotation_id, pred.shape[1],
                     crowd=crowd),
        coco_results(pred, scores, image_id), sigmas)
    stats = [float("nan") if v < 0 else 100.0 * v for v in stats]   # -1: nothing to score
    return KeypointScore("oks", stats[0], None, int(len(pred)),
                         dict(zip(COCO_STATS, stats)))
