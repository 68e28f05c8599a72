"""The one home of the joint order used everywhere in hgpipe.

MPII's own ids 0-15; every reader, shard, model output and predictions file uses this
order, so nothing ever needs a remap table except the readers of foreign formats.
"""
NUM_JOINTS = 16

JOINT_NAMES = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle",
    "pelvis", "thorax", "upper_neck", "head_top",
    "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
)

R_ANKLE, R_KNEE, R_HIP, L_HIP, L_KNEE, L_ANKLE = 0, 1, 2, 3, 4, 5
PELVIS, THORAX, UPPER_NECK, HEAD_TOP = 6, 7, 8, 9
R_WRIST, R_ELBOW, R_SHOULDER, L_SHOULDER, L_ELBOW, L_WRIST = 10, 11, 12, 13, 14, 15

# Left/right pairs (right, left): a horizontal flip of the image swaps these joints.
FLIP_PAIRS = ((R_ANKLE, L_ANKLE), (R_KNEE, L_KNEE), (R_HIP, L_HIP),
              (R_WRIST, L_WRIST), (R_ELBOW, L_ELBOW), (R_SHOULDER, L_SHOULDER))
RIGHT_JOINTS = tuple(right for right, _left in FLIP_PAIRS)
LEFT_JOINTS = tuple(left for _right, left in FLIP_PAIRS)
CENTRE_JOINTS = (PELVIS, THORAX, UPPER_NECK, HEAD_TOP)  # on the body's midline


def _flip_permutation():
    perm = list(range(NUM_JOINTS))
    for a, b in FLIP_PAIRS:
        perm[a], perm[b] = b, a
    return tuple(perm)


# joints_after_flip = joints_before_flip[FLIP_PERMUTATION] (it is its own inverse).
FLIP_PERMUTATION = _flip_permutation()

# Limbs to draw a skeleton (joint id pairs).
SKELETON = ((R_ANKLE, R_KNEE), (R_KNEE, R_HIP), (R_HIP, PELVIS), (PELVIS, L_HIP),
            (L_HIP, L_KNEE), (L_KNEE, L_ANKLE), (PELVIS, THORAX), (THORAX, UPPER_NECK),
            (UPPER_NECK, HEAD_TOP), (R_WRIST, R_ELBOW), (R_ELBOW, R_SHOULDER),
            (R_SHOULDER, THORAX), (THORAX, L_SHOULDER), (L_SHOULDER, L_ELBOW),
            (L_ELBOW, L_WRIST))
