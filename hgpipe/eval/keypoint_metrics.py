"""Scores of the keypoint sets that are not MPII's: PCK@0.2 of the torso, and OKS AP.

:func:`hgpipe.eval.evaluate.score_predictions` dispatches on ``KeypointSet.metric``:
``pckh`` goes to :mod:`hgpipe.eval.pckh` (MPII, unchanged), ``pck_torso`` to
:func:`pck_torso`, ``oks`` to :func:`oks_ap`. Both take arrays in the val shards' order
and units (1-based image pixels, as every hgpipe predictions file); an offset common to
predictions and ground truth changes neither score.

STUB: the signatures are the agreed call points; the bodies are not written yet and raise
NotImplementedError (the LSP/COCO metric work fills them).
"""
from typing import NamedTuple, Optional, Tuple


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


def pck_torso(pred_xy, gt_xy, annotated, torso_pair, threshold=0.2):
    """PCK@``threshold`` with the torso normaliser (LSP).

    ``pred_xy``, ``gt_xy``: (N, K, 2) pixels; ``annotated``: (N, K) bool, the joints that
    count; ``torso_pair``: the two joint ids whose ground-truth distance normalises each
    person (``KeypointSet.torso``). Returns a :class:`KeypointScore`."""
    raise NotImplementedError("pck_torso: not written yet (stub call point)")


def oks_ap(pred_xy, pred_scores, gt_xy, annotated, area, image_id, annotation_id, sigmas):
    """OKS AP with ground-truth boxes, through pycocotools' COCOeval (COCO-format sets).

    ``pred_xy``, ``gt_xy``: (N, K, 2) pixels, one prediction per ground-truth person;
    ``pred_scores``: (N, K) heatmap peak values; ``annotated``: (N, K) bool (COCO v > 0);
    ``area``: (N,) the annotations' areas; ``image_id``, ``annotation_id``: (N,) ints
    from the source file; ``sigmas``: (K,) ``KeypointSet.oks_sigmas``. Returns a
    :class:`KeypointScore` whose total is AP (x 100) over OKS 0.50:0.95."""
    raise NotImplementedError("oks_ap: not written yet (stub call point)")

