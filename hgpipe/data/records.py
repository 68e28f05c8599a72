"""The normalised person record that every annotation reader produces.

Coordinates are MPII annotation coordinates: 1-based pixels as in the official MATLAB
files (x = 1 is the centre of the leftmost pixel column). ``center`` and ``scale`` are the
*raw* official values (``objpos``; person height / 200 px); the hourglass crop adjustment
(centre moved down 15*s, scale x1.25) is applied exactly once, in
:mod:`hgpipe.data.transforms`, never by a reader.
"""
import math
from typing import NamedTuple, Optional

import numpy as np

from hgpipe.joints import MPII, KeypointSet


class PersonRecord(NamedTuple):
    image_name: str                 # file name inside the dataset's images/ folder
    joints: np.ndarray              # (K, 2) float64, 1-based image pixels; 0 where missing
    annotated: np.ndarray           # (K,) bool: the joint has a ground-truth position
    visible: np.ndarray             # (K,) int8: 1 visible, 0 occluded, -1 unknown
    center: np.ndarray              # (2,) float64 raw objpos
    scale: float                    # raw person scale (height / 200 px)
    head_box: Optional[np.ndarray]  # (4,) float64 x1, y1, x2, y2, or None
    annolist_index: int = -1        # 1-based index into the official annolist (-1 unknown)
    person_index: int = -1          # 1-based index into annolist(i).annorect (-1 unknown)
    is_validation: bool = False     # member of the Tompson validation split
    source: str = ""                # where it came from, for error messages ("file:row")
    keypoints: KeypointSet = MPII   # whose K joints these are (hgpipe.joints)
    # COCO-format ground truth that OKS AP needs (hgpipe.eval.keypoint_metrics.oks_ap):
    # the annotation's segmentation area (OKS scale s^2) and its ids in the source file.
    area: float = float("nan")      # pixels^2; NaN when the source has none
    image_id: int = -1              # COCO images[].id (-1 unknown)
    annotation_id: int = -1         # COCO annotations[].id (-1 unknown)

    def head_normalizer(self):
        """PCKh normaliser: 0.6 x the head-box diagonal (NaN without a head box)."""
        if self.head_box is None:
            return float("nan")
        x1, y1, x2, y2 = self.head_box
        return 0.6 * math.hypot(x2 - x1, y2 - y1)

    def problem(self):
        """A short description of why this record cannot be used, or None if it can."""
        if not np.all(np.isfinite(self.center)):
            return "centre is not finite (%s)" % (self.center.tolist(),)
        if not (np.isfinite(self.scale) and self.scale > 0):
            return "scale must be a positive number, got %r" % (self.scale,)
        k = self.keypoints.num_joints
        if self.joints.shape != (k, 2):
            return "expected %d %s joints, got shape %s" % (k, self.keypoints.name,
                                                          self.joints.shape)
        bad = self.annotated & ~np.all(np.isfinite(self.joints), axis=1)
        if bad.any():
            return "joint %d is annotated but not finite" % int(np.flatnonzero(bad)[0])
        if not self.annotated.any():
            return "no annotated joints"
        return None

    def describe(self):
        """Human-readable identity for messages: image, person and source."""
        who = "%s person %d" % (self.image_name, self.person_index)
        return "%s (%s)" % (who, self.source) if self.source else who


def make_record(image_name, joints, annotated, visible=None, center=None, scale=None,
                head_box=None, **extra):
    """Build a PersonRecord from loosely-typed values (lists, floats), normalising dtypes.

    ``keypoints`` (in ``extra``): the record's keypoint set, MPII unless a reader of
    another dataset says otherwise; the arrays must hold its number of joints."""
    k = extra.get("keypoints", MPII).num_joints
    joints = np.asarray(joints, dtype=np.float64).reshape(k, 2)
    annotated = np.asarray(annotated, dtype=bool).reshape(k)
    if visible is None:
        visible = np.where(annotated, -1, 0)
    visible = np.asarray(visible, dtype=np.int8).reshape(k)
    center = np.asarray(center if center is not None else (np.nan, np.nan),
                        dtype=np.float64).reshape(2)
    scale = float(scale) if scale is not None else float("nan")
    if head_box is not None:
        head_box = np.asarray(head_box, dtype=np.float64).reshape(4)
    return PersonRecord(str(image_name), joints, annotated, visible, center, scale,
                        head_box, **extra)
