"""Reader of the Leeds Sports Pose ``joints.mat`` (LSP and LSP extended) -> LSP records.

One MATLAB variable ``joints`` holds x, y and a flag for 14 joints of N persons (one per
image, ``im0001.jpg``...), in :data:`hgpipe.joints.LSP`'s order. The two releases differ
in layout and in what the flag means; bearpaw/pytorch-pose ``miscs/gen_lsp.m`` (the
script behind its LSP loader, ``pose/datasets/lsp.py``) handles them as read here:

* LSP (2,000 images): ``3 x 14 x N``; the flag is 1 where the joint is *occluded*
  (gen_lsp.m:33 ``joints(3,:,:) = 1 - joints(3,:,:)`` turns it into visibility, :34
  permutes to 14 x 3). Every joint has a position, occluded or not: all are annotated.
* LSP extended (10,000 images): ``14 x 3 x N``; the flag is 1 where the joint is
  *visible* (used as is, gen_lsp.m:51), and its readme says each image has "up to 14
  visible joint locations": only flagged joints are annotated.

Images: ``im%04d.jpg`` for LSP, ``im%05d.jpg`` for LSP extended (gen_lsp.m:64).
Split: LSP's first 1000 images train, the rest (its test half, 1001-2000) validation;
every LSP extended image trains (gen_lsp.m:66-72, 106-109 ``isValidation = 1``).

Person box, from the joints as gen_lsp.m does. Centre: the middle of the visible joints'
extent (gen_lsp.m:90-93, its rule for LSP extended; for the tightly cropped LSP it
takes the image centre, :95-96, which needs the image: the joints' middle is used for
both). Scale: ``insertMPILikeScale`` (gen_lsp.m:151-203): each limb's length over the
file's median ratio of that limb to the neck-head limb, the 0.75 quantile of a person's
visible ones over 35 (:182-183), at least what fits the visible joints' extent in 304
of 368 pixels (:175-193), in 41/35 units (:202); bearpaw's loader then crops 1.4375 x
that, with no downward shift of the centre (lsp.py:93-95). A record stores the raw
centre and scale that hgpipe's one crop rule (:func:`hgpipe.data.transforms.
hourglass_box`: centre + 15 s down, scale x 1.25) turns into exactly that crop. The
medians are the given file's (bearpaw's are over LSP and LSP extended together).
"""
import numpy as np

from hgpipe.data.readers.common import AnnotationError, check_split, select_split, source_name
from hgpipe.data.readers.mat_release import load_mat
from hgpipe.data.records import make_record
from hgpipe.data.transforms import CENTER_SHIFT_Y, SCALE_ENLARGE
from hgpipe.joints import LSP

VARIABLE = "joints"
NUM_LSP_JOINTS = 14
TRAIN_IMAGES = 1000          # LSP: im0001-im1000 train, im1001-im2000 test (gen_lsp.m:106)
BEARPAW_CROP = 1.4375        # lsp.py:95, s = s * 1.4375
TARGET_DIST = 41.0 / 35.0    # gen_lsp.m:7
BOX_SIZE, PATCH_SIZE = 368.0, 64.0   # gen_lsp.m:175-176
LIMB_UNIT = 35.0             # gen_lsp.m:183, scale_in_lmdb = distToObserve / 35

# insertMPILikeScale's limbs (gen_lsp.m:153-160): joints in MPII order without pelvis
# and thorax, i.e. LSP ids below, each joined to its ``pa`` parent (gen_lsp.m:155, 1-based
# in that order, 0 = none); limb 7 (neck - head top) is the reference.
_ORDER = (0, 1, 2, 3, 4, 5, 12, 13, 6, 7, 8, 9, 10, 11)
_PARENT = (2, 3, 7, 5, 4, 7, 8, 0, 10, 11, 7, 13, 12, 7)
_LIMBS = tuple((_ORDER[i], _ORDER[p - 1]) for i, p in enumerate(_PARENT) if p)
_REFERENCE_LIMB = 6          # 0-based: limb 7 of gen_lsp.m:165, neck -> head top

LAYOUTS = {
    # name: (shape of one person's block, flag means visible?, image name pattern)
    "lsp": ((3, NUM_LSP_JOINTS), False, "im%04d.jpg"),
    "lspet": ((NUM_LSP_JOINTS, 3), True, "im%05d.jpg"),
}


def _layout(joints, path):
    """('lsp' | 'lspet', (N, 14, 3) array) from the file's ``joints`` variable."""
    if not isinstance(joints, np.ndarray) or joints.dtype.kind not in "iuf" or \
            joints.dtype.kind == "f" and joints.dtype.itemsize > 8:
        raise AnnotationError("%s: %s must be a numeric matrix, got %s" % (
            path, VARIABLE, getattr(joints, "dtype", type(joints).__name__)))
    if joints.ndim == 2:      # MATLAB drops a trailing singleton: one person
        joints = joints[:, :, None]
    for name, (block, _flag_visible, _pattern) in LAYOUTS.items():
        if joints.ndim == 3 and joints.shape[:2] == block and joints.shape[2] > 0:
            persons = joints.transpose(2, 0, 1) if name == "lspet" else \
                joints.transpose(2, 1, 0)
            return name, np.asarray(persons, dtype=np.float64)
    raise AnnotationError("%s: %s has shape %s; expected 3 x 14 x N (LSP) or 14 x 3 x N "
                          "(LSP extended)" % (path, VARIABLE, "x".join(map(str, joints.shape))))


def _matlab_quantile(values, p):
    """MATLAB's ``quantile`` of a vector (NaNs dropped): sorted values at (i - 0.5) / n,
    linear in between, the end values beyond (numpy's 'hazen' method, which numpy 1.17
    lacks). NaN for no values."""
    values = np.sort(values[np.isfinite(values)])
    n = len(values)
    if n == 0:
        return float("nan")
    return float(np.interp(p, (np.arange(n) + 0.5) / n, values))


def _limb_ratios(xy, visible):
    """Limb lengths (N, L), which limbs have both ends visible (N, L) and each limb's
    median ratio to the reference limb over the persons with both visible (gen_lsp.m:
    158-170; NaN where no person has)."""
    a = np.array([i for i, _ in _LIMBS])
    b = np.array([j for _, j in _LIMBS])
    with np.errstate(invalid="ignore"):
        lengths = np.hypot(*(xy[:, a] - xy[:, b]).transpose(2, 0, 1))
    limb_visible = visible[:, a] & visible[:, b]
    ratios = np.full(len(_LIMBS), np.nan)
    for limb in range(len(_LIMBS)):
        both = limb_visible[:, limb] & limb_visible[:, _REFERENCE_LIMB]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = lengths[both, limb] / lengths[both, _REFERENCE_LIMB]
        ratio = ratio[~np.isnan(ratio)]
        if len(ratio):
            ratios[limb] = np.median(ratio)
    return lengths, limb_visible, ratios


def bearpaw_boxes(xy, visible):
    """gen_lsp.m's (objpos, scale_provided) of each person from its joints: (N, 2), (N,).

    ``xy`` (N, 14, 2) pixels, ``visible`` (N, 14) bool. A person with fewer than two
    visible joints apart gets scale 0 or NaN (an unusable record, skipped by prepare)."""
    lengths, limb_visible, ratios = _limb_ratios(xy, visible)
    centers = np.full((len(xy), 2), np.nan)
    scales = np.full(len(xy), np.nan)
    for n in range(len(xy)):
        seen = xy[n, visible[n]]
        if not len(seen):
            continue
        low, high = seen.min(axis=0), seen.max(axis=0)
        centers[n] = (low + high) / 2.0                         # gen_lsp.m:92-93
        with np.errstate(divide="ignore", invalid="ignore"):
            normalised = lengths[n] / ratios                    # :180
        distance = _matlab_quantile(normalised[limb_visible[n]], 0.75)   # :181-182
        x_range, y_range = high - low                           # :188-189
        with np.errstate(divide="ignore"):
            upper = min((BOX_SIZE - PATCH_SIZE) / x_range, (BOX_SIZE - PATCH_SIZE) / y_range)
            by_limbs = TARGET_DIST / (distance / LIMB_UNIT)     # :183-184
        shrink = upper if np.isnan(by_limbs) else min(upper, by_limbs)  # :193, NaN ignored
        scales[n] = TARGET_DIST / shrink                        # :202
    return centers, scales


def read_lsp_mat(path, split=None):
    """The persons of an LSP or LSP extended ``joints.mat`` as LSP-set records.

    ``split``: None (all), 'train' or 'val' (LSP's test half, see the module doc)."""
    check_split(split)
    mat = load_mat(path, [VARIABLE])
    if VARIABLE not in mat:
        raise AnnotationError("%s has no %r variable: not an LSP joints.mat" % (path, VARIABLE))
    layout, persons = _layout(mat[VARIABLE], path)
    _block, flag_visible, pattern = LAYOUTS[layout]
    flags = persons[:, :, 2]
    if not np.all(np.isin(flags, (0.0, 1.0))):
        n, j = np.argwhere(~np.isin(flags, (0.0, 1.0)))[0]
        raise AnnotationError("%s: person %d joint %d: the visibility flag must be 0 or 1, "
                              "got %g" % (path, n + 1, j + 1, flags[n, j]))
    visible = flags == 1.0 if flag_visible else flags == 0.0
    annotated = visible.copy() if flag_visible else np.ones_like(visible)
    xy = persons[:, :, :2]
    bad = annotated & ~np.all(np.isfinite(xy), axis=2)
    if bad.any():
        n, j = np.argwhere(bad)[0]
        raise AnnotationError("%s: person %d joint %d has a position that is not a finite "
                              "number (%s)" % (path, n + 1, j + 1, xy[n, j].tolist()))
    xy = np.where(annotated[:, :, None], xy, 0.0)
    centers, scales = bearpaw_boxes(xy, visible)
    base = source_name(path)
    records = []
    for n in range(len(persons)):
        # bearpaw crops 1.4375 x scale_provided around objpos; hourglass_box crops 1.25 x
        # scale around centre + 15 scale: store what gives bearpaw's crop
        scale = scales[n] * BEARPAW_CROP / SCALE_ENLARGE
        center = centers[n] - (0.0, CENTER_SHIFT_Y * scale)
        records.append(make_record(
            pattern % (n + 1), xy[n], annotated[n], np.where(visible[n], 1, 0),
            center=center, scale=scale, person_index=1,
            is_validation=layout == "lsp" and n >= TRAIN_IMAGES,
            source="%s:%d" % (base, n + 1), keypoints=LSP))
    return select_split(records, split)
