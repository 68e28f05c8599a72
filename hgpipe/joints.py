"""The one home of keypoint sets: each dataset's joints, flip pairs, skeleton and metric.

A :class:`KeypointSet` is data, not code: MPII's 16 joints (hgpipe's default, every MPII
shard, model and predictions file uses that order), LSP's 14, COCO's 17, or any set a
COCO-format file declares in its ``categories`` entry (:func:`from_coco_category`). A set
travels with the data as JSON (:meth:`KeypointSet.to_json`): prepare records it in the
shard manifest, training in the logdir, so codec, training, eval, drawing, export and
import read the same set without a table of their own.

The module-level MPII names (``NUM_JOINTS``, ``R_ANKLE`` ...) stay: MPII's readers and
PCKh are about MPII's joints and nothing else.
"""
import json
import math
from typing import NamedTuple, Optional, Tuple


class KeypointSet(NamedTuple):
    """One dataset's keypoints. Joint ids are 0-based indices into ``joint_names``.

    ``metric`` names how the set is scored: ``pckh`` (MPII: 0.5 x 0.6 head-box diagonal,
    :mod:`hgpipe.eval.pckh`), ``pck_torso`` (LSP: PCK@0.2 of the torso, the distance of
    the ``torso`` pair), ``oks`` (COCO-format: OKS AP with ``oks_sigmas``, pycocotools).
    ``midline`` joints are drawn in the centre colour; the others by side of their pair.
    """
    name: str
    joint_names: Tuple[str, ...]
    flip_pairs: Tuple[Tuple[int, int], ...]    # (right, left)
    skeleton: Tuple[Tuple[int, int], ...]      # limbs to draw
    metric: str = "pckh"
    torso: Optional[Tuple[int, int]] = None    # pck_torso normaliser's two joints
    oks_sigmas: Optional[Tuple[float, ...]] = None  # oks: per-joint falloff

    @property
    def num_joints(self):
        return len(self.joint_names)

    @property
    def flip_permutation(self):
        """``after_flip = before_flip[perm]``; its own inverse."""
        perm = list(range(self.num_joints))
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return tuple(perm)

    @property
    def right_joints(self):
        return tuple(right for right, _left in self.flip_pairs)

    @property
    def left_joints(self):
        return tuple(left for _right, left in self.flip_pairs)

    @property
    def midline(self):
        paired = set(self.right_joints) | set(self.left_joints)
        return tuple(j for j in range(self.num_joints) if j not in paired)

    def problem(self):
        """Why this set is unusable (one sentence), or None."""
        n = self.num_joints
        if not self.name or n == 0:
            return "a keypoint set needs a name and at least one joint"
        if len(set(self.joint_names)) != n:
            return "joint names repeat"
        ids = [j for pair in self.flip_pairs + self.skeleton for j in pair]
        if self.torso:
            ids += list(self.torso)
        if any(not isinstance(j, int) or not 0 <= j < n for j in ids):
            return "a joint id is outside 0..%d" % (n - 1)
        flipped = [j for pair in self.flip_pairs for j in pair]
        if len(set(flipped)) != len(flipped) or any(a == b for a, b in self.flip_pairs):
            return "a joint is in two flip pairs, or paired with itself"
        if self.metric not in METRICS:
            return "metric must be one of %s, got %r" % ("/".join(METRICS), self.metric)
        if self.metric == "pck_torso" and not self.torso:
            return "metric pck_torso needs a torso pair"
        if self.metric == "oks" and (self.oks_sigmas is None or len(self.oks_sigmas) != n
                                     or not all(math.isfinite(s) and s > 0
                                                for s in self.oks_sigmas)):
            return "metric oks needs one positive, finite sigma per joint"
        return None

    def to_json(self):
        return json.dumps(self._asdict(), sort_keys=True)

    @classmethod
    def from_json(cls, text):
        """The set a manifest or logdir recorded; ValueError if it is not a valid set."""
        try:
            raw = json.loads(text)
            keypoints = cls(
                name=str(raw["name"]), joint_names=tuple(str(n) for n in raw["joint_names"]),
                flip_pairs=tuple((_joint_id(a), _joint_id(b)) for a, b in raw["flip_pairs"]),
                skeleton=tuple((_joint_id(a), _joint_id(b)) for a, b in raw["skeleton"]),
                metric=str(raw.get("metric", "pckh")),
                torso=(tuple(_joint_id(j) for j in raw["torso"]) if raw.get("torso")
                       else None),
                oks_sigmas=(tuple(float(s) for s in raw["oks_sigmas"])
                            if raw.get("oks_sigmas") is not None else None))
        except (ValueError, KeyError, TypeError, OverflowError) as exc:
            raise ValueError("not a keypoint set: %s" % exc)
        problem = keypoints.problem()
        if problem:
            raise ValueError("keypoint set %r: %s" % (keypoints.name, problem))
        return keypoints


def _joint_id(value):
    """A joint id as recorded: a JSON integer (1.5, 1e309 or "3" are refused, not rounded)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("joint id %r is not an integer" % (value,))
    return value


METRICS = ("pckh", "pck_torso", "oks")

# --- MPII: the official ids 0-15 --------------------------------------------------------
NUM_JOINTS = 16
JOINT_NAMES = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle",
    "pelvis", "thorax", "upper_neck", "head_top",
    "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
)
R_ANKLE, R_KNEE, R_HIP, L_HIP, L_KNEE, L_ANKLE = 0, 1, 2, 3, 4, 5
PELVIS, THORAX, UPPER_NECK, HEAD_TOP = 6, 7, 8, 9
R_WRIST, R_ELBOW, R_SHOULDER, L_SHOULDER, L_ELBOW, L_WRIST = 10, 11, 12, 13, 14, 15

MPII = KeypointSet(
    name="mpii", joint_names=JOINT_NAMES,
    flip_pairs=((R_ANKLE, L_ANKLE), (R_KNEE, L_KNEE), (R_HIP, L_HIP),
                (R_WRIST, L_WRIST), (R_ELBOW, L_ELBOW), (R_SHOULDER, L_SHOULDER)),
    skeleton=((R_ANKLE, R_KNEE), (R_KNEE, R_HIP), (R_HIP, PELVIS), (PELVIS, L_HIP),
              (L_HIP, L_KNEE), (L_KNEE, L_ANKLE), (PELVIS, THORAX), (THORAX, UPPER_NECK),
              (UPPER_NECK, HEAD_TOP), (R_WRIST, R_ELBOW), (R_ELBOW, R_SHOULDER),
              (R_SHOULDER, THORAX), (THORAX, L_SHOULDER), (L_SHOULDER, L_ELBOW),
              (L_ELBOW, L_WRIST)),
    metric="pckh")

# MPII names kept for the MPII-only code (readers, PCKh, the demo generator).
FLIP_PAIRS = MPII.flip_pairs
RIGHT_JOINTS = MPII.right_joints
LEFT_JOINTS = MPII.left_joints
CENTRE_JOINTS = MPII.midline
FLIP_PERMUTATION = MPII.flip_permutation
SKELETON = MPII.skeleton

# --- LSP: joints.mat's order (Johnson & Everingham 2010; bearpaw pose/datasets/lsp.py) ---
LSP = KeypointSet(
    name="lsp",
    joint_names=("r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle",
                 "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
                 "neck", "head_top"),
    flip_pairs=((0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9)),
    skeleton=((0, 1), (1, 2), (3, 4), (4, 5), (2, 8), (3, 9), (6, 7), (7, 8), (8, 12),
              (12, 9), (9, 10), (10, 11), (12, 13)),
    metric="pck_torso",
    # PCK's normaliser: left shoulder - right hip, bearpaw/eval_pose utils/eval_pck.m:4, 36
    # (norm(gt(:,10) - gt(:,3)) in 1-based LSP ids), hgpipe.eval.keypoint_metrics
    torso=(9, 2))

# --- COCO person keypoints (person_keypoints_*.json's category 1) ------------------------
COCO_NAMES = ("nose", "left_eye", "right_eye", "left_ear", "right_ear",
              "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
              "left_wrist", "right_wrist", "left_hip", "right_hip",
              "left_knee", "right_knee", "left_ankle", "right_ankle")
# pycocotools cocoeval.py Params.setKpParams: kpt_oks_sigmas = np.array([.26, ...]) / 10.0,
# the values COCOeval computes OKS with (MMPose divides the same list by 10.0 too)
COCO_SIGMAS = tuple(s / 10.0 for s in (.26, .25, .25, .35, .35, .79, .79, .72, .72, .62,
                                       .62, 1.07, 1.07, .87, .87, .89, .89))
COCO_SKELETON_1BASED = ((16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12),
                        (7, 13), (6, 7), (6, 8), (7, 9), (8, 10), (9, 11), (2, 3), (1, 2),
                        (1, 3), (2, 4), (3, 5), (4, 6), (5, 7))


def from_coco_category(category, name=None, sigmas=None):
    """The keypoint set a COCO-format ``categories`` entry declares.

    Joints are its ``keypoints`` names in order; limbs its 1-based ``skeleton``; flip pairs
    the names that differ only by a ``left``/``right`` part (``left_eye``/``right_eye``,
    ``l_knee``/``r_knee``). ``sigmas``: OKS falloffs; COCO's own for the 17 COCO names,
    else required (there is no principled default for a custom set)."""
    names = tuple(str(n) for n in category.get("keypoints") or ())
    by_name = {n: i for i, n in enumerate(names)}
    pairs = []
    for i, n in enumerate(names):
        for right, left in (("right", "left"), ("r_", "l_"), ("R_", "L_")):
            if right in n:
                j = by_name.get(n.replace(right, left, 1))
                if j is not None and j != i:
                    pairs.append((i, j))
                break
    skeleton = tuple((int(a) - 1, int(b) - 1) for a, b in category.get("skeleton") or ())
    if sigmas is None and names == COCO_NAMES:
        sigmas = COCO_SIGMAS
    keypoints = KeypointSet(
        name=str(name or category.get("name") or "custom"), joint_names=names,
        flip_pairs=tuple(pairs), skeleton=skeleton, metric="oks",
        oks_sigmas=tuple(float(s) for s in sigmas) if sigmas is not None else None)
    problem = keypoints.problem()
    if problem:
        raise ValueError("keypoint set %r: %s" % (keypoints.name, problem))
    return keypoints


COCO = from_coco_category({"name": "coco", "keypoints": COCO_NAMES,
                           "skeleton": COCO_SKELETON_1BASED})

KEYPOINT_SETS = {s.name: s for s in (MPII, LSP, COCO)}


def keypoint_set(name):
    """A built-in set by name (``mpii``, ``lsp``, ``coco``); ValueError naming the choices."""
    try:
        return KEYPOINT_SETS[str(name).lower()]
    except KeyError:
        raise ValueError("unknown keypoint set %r (choose %s, or a COCO-format file's own)"
                         % (name, ", ".join(sorted(KEYPOINT_SETS))))
