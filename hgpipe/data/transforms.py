"""Geometry of a training sample: the hourglass crop and its augmentation.

The frames, the heatmap targets and the flip convention are :mod:`hgpipe.codec`'s.
Everything here is an explicit 2x3 affine so a crop can always be mapped back to the
original image exactly; the flip is folded into the same affine, so one
``cv2.warpAffine`` makes the whole crop.
"""
import zlib
from typing import NamedTuple

import cv2
import numpy as np

from hgpipe import codec
from hgpipe.data.augment import sample_preset

# The hourglass papers' crop: centre moved down 15*s, box 200*s enlarged by 1.25.
CENTER_SHIFT_Y = 15.0
SCALE_ENLARGE = 1.25
BOX_PIXELS = 200.0


class Augmentation(NamedTuple):
    rotation: float = 0.0   # degrees, counter-clockwise as the crop is displayed
    scale: float = 1.0      # >1 zooms out (a bigger box of the image in the same crop)
    flip: bool = False      # mirror horizontally and swap left/right joints
    gains: tuple = (1.0, 1.0, 1.0)  # per-channel colour gain (R, G, B)


PLAIN = Augmentation()

CROPS = ("hourglass", "seed_box")
SEED_BOX_MARGIN = 0.2   # datagen.py:422, _crop_data(..., boxp = 0.2)


def hourglass_box(center, scale):
    """Raw MPII objpos/scale -> the crop centre and scale the hourglass papers use."""
    center = np.asarray(center, dtype=np.float64)
    return np.array([center[0], center[1] + CENTER_SHIFT_Y * scale]), scale * SCALE_ENLARGE


def seed_box(joints, annotated, width, height, margin=SEED_BOX_MARGIN):
    """The seed's crop (wbenbihi 356e063 ``datagen.py:249-298``, called at :422) as the
    (centre, scale) of :func:`image_to_crop_affine`.

    Its dataset.txt box is the annotated joints' bounding box (README.md's example rows);
    ``_crop_data`` widens it by ``int(0.2 * w)`` / ``int(0.2 * h)`` on each side (:264),
    clamps it to the image, 0..width-1 and 0..height-1 (:265-268), takes the centre
    ``left + new_w // 2``, ``top + new_h // 2`` of the clamped box (:269-271) and the
    square of side ``max(new_w, new_h)`` around it, padding with zeros what falls outside
    the image (:272-285); ``_crop_img`` slices ``[c - L//2, c + L//2)`` (:297), so the crop
    is ``2 * (L // 2)`` pixels square. The seed indexes its array with MPII's numbers as
    they are, so those pixels are 1-based image pixels ``c - L//2 + 1 .. c + L//2``,
    centred at ``c + 0.5``. A box of one point is given a side of 2 pixels (the seed's
    slice would be empty and its generator would skip the sample, :437).

    Not copied: the seed checks the bottom edge against the width (:282), so a wide box
    whose square reaches below the image is not padded there and the resize then
    stretches the shorter crop while its joints are scaled as if it were square;
    hgpipe pads every side (cv2's constant border), keeping image and joints aligned.
    """
    points = np.asarray(joints, dtype=np.float64)[np.asarray(annotated, dtype=bool)]
    if not len(points):
        raise ValueError("seed_box: no annotated joint to box")
    (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
    dx, dy = int(margin * (x1 - x0)), int(margin * (y1 - y0))
    left, top = max(x0 - dx, 0), max(y0 - dy, 0)
    right, bottom = min(x1 + dx, width - 1), min(y1 + dy, height - 1)
    new_w, new_h = int(right - left), int(bottom - top)
    cx, cy = left + new_w // 2, top + new_h // 2
    half = max(max(new_w, new_h) // 2, 1)
    return np.array([cx + 0.5, cy + 0.5]), 2.0 * half / BOX_PIXELS


def image_to_crop_affine(center, scale, input_size, aug=PLAIN):
    """2x3 affine from image coordinates (1-based) to crop pixels (0-based).

    ``center``/``scale`` are already the hourglass box (see :func:`hourglass_box`).
    The box of side ``200 * scale * aug.scale`` image pixels around ``center`` fills the
    crop; rotation is about the crop centre; the flip mirrors the crop horizontally.
    """
    zoom = input_size / (BOX_PIXELS * scale * aug.scale)
    mid = (input_size - 1) / 2.0
    theta = np.deg2rad(aug.rotation)
    cos, sin = np.cos(theta) * zoom, np.sin(theta) * zoom
    # y points down, so a counter-clockwise rotation on screen is this matrix.
    linear = np.array([[cos, sin], [-sin, cos]])
    if aug.flip:  # x -> S - 1 - x about the crop centre (the codec's mirror)
        linear[0] *= -1.0
    center0 = np.asarray(center, dtype=np.float64) - 1.0  # 1-based -> 0-based
    offset = np.array([mid, mid]) - linear.dot(center0)
    # image 1-based p: crop = linear @ (p - 1 - c0) + mid
    offset -= linear.dot(np.ones(2))
    return np.hstack([linear, offset[:, None]])


def invert_affine(affine):
    """Inverse of a 2x3 affine (or of a stack of them, shape (..., 2, 3))."""
    affine = np.asarray(affine, dtype=np.float64)
    linear = np.linalg.inv(affine[..., :2])
    shift = -np.einsum("...ij,...j->...i", linear, affine[..., 2])
    return np.concatenate([linear, shift[..., None]], axis=-1)


def apply_affine(affine, points):
    """Map (..., 2) points through a 2x3 affine."""
    points = np.asarray(points, dtype=np.float64)
    return points.dot(affine[:, :2].T) + affine[:, 2]


def warp_crop(image_bgr, affine_0based, input_size):
    """Crop + rotate + scale + flip in one bilinear warp; black outside the image."""
    return cv2.warpAffine(image_bgr, affine_0based, (input_size, input_size),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(0, 0, 0))


def sample_augmentation(rng, cfg_prepare):
    """Draw one augmentation: a preset of :mod:`hgpipe.data.augment`, or ``custom``:

    scale = 1 + N(0, f) clamped to [1-f, 1+f]; rotation = N(0, r) clamped to [-2r, 2r],
    applied with probability ``rotation_prob``; flip with probability 0.5; colour: each
    channel multiplied by U(1-c, 1+c) (with the defaults: bearpaw's ranges).
    """
    preset = cfg_prepare.get("augmentation", "custom")
    if preset != "custom":
        return Augmentation(*sample_preset(rng, preset, flip=cfg_prepare["flip"],
                                           color=cfg_prepare["color_jitter"] > 0))
    f = cfg_prepare["scale_factor"]
    r = cfg_prepare["rotation"]
    c = cfg_prepare["color_jitter"]
    scale = float(np.clip(1.0 + rng.randn() * f, 1.0 - f, 1.0 + f))
    rotation = float(np.clip(rng.randn() * r, -2.0 * r, 2.0 * r))
    if rng.uniform() >= cfg_prepare["rotation_prob"]:
        rotation = 0.0
    flip = bool(cfg_prepare["flip"]) and rng.uniform() < 0.5
    gains = tuple(float(g) for g in rng.uniform(1.0 - c, 1.0 + c, size=3))
    return Augmentation(rotation, scale, flip, gains)


_PERSON_RNG = np.random.RandomState(0)


def person_rng(seed, image_name, person_index, ordinal):
    """A RandomState fixed by (seed, person): the same draws whatever worker runs it.

    The one generator of this process is re-seeded (constructing a RandomState costs
    ~200 us, re-seeding ~2 us, same stream), so use the draws before the next call.
    """
    key = "%d|%s|%d|%d" % (seed, image_name, person_index, ordinal)
    _PERSON_RNG.seed(zlib.crc32(key.encode("utf-8")) & 0xFFFFFFFF)
    return _PERSON_RNG


def bgr_to_rgb_with_gains(crop_bgr, gains=(1.0, 1.0, 1.0), out=None):
    """BGR -> RGB and per-channel colour gain (saturating) in one pass: one 3x3 colour
    transform, ~4x cheaper than a conversion followed by lookup tables. Written into
    ``out`` when given (same shape, contiguous)."""
    matrix = np.zeros((3, 3), np.float32)
    for out_channel, source_channel in enumerate((2, 1, 0)):
        matrix[out_channel, source_channel] = gains[out_channel]
    return cv2.transform(crop_bgr, matrix, dst=out)


def crop_zoom(record, aug, input_size):
    """Crop pixels per image pixel of this sample (< 1: the crop shrinks the image)."""
    _center, scale = hourglass_box(record.center, record.scale)
    return input_size / (BOX_PIXELS * scale * aug.scale)


def decode_reduction(zooms, largest=8):
    """The largest 1/2^k decode size that still leaves every crop shrinking (or 1:1).

    With zoom z, a crop takes 1/z image pixels per crop pixel: decoding at 1/f of the
    size is free of loss while f <= 1/z, and it is several times faster.
    """
    reduction = 1
    while reduction < largest and 2 * reduction * max(zooms) <= 1.0:
        reduction *= 2
    return reduction


def make_sample(image_bgr, record, aug, input_size, heatmap_size, sigma, reduction=1,
                heatmap_scale=None, out=None, centre="float", window=0,
                joint_weight="supervised", crop="hourglass"):
    """One training/validation sample from a decoded image and a person record.

    ``reduction`` is the factor the image was decoded smaller by (see
    :func:`hgpipe.data.images.decode_image`); coordinates stay those of the full image.
    Returns a dict with the per-sample arrays of the shard schema (image, heatmaps as
    float, joints in heatmap pixels, weights, crop_to_image, center, scale, ...). With
    ``heatmap_scale`` the heatmaps are the stored uint8 ones
    (:func:`hgpipe.codec.render_quantized_heatmaps`); ``out`` may hold destination arrays for
    "images" and "heatmaps" (one sample each), written in place instead of allocated.
    ``centre`` and ``window`` are the codec's Gaussian settings (:mod:`hgpipe.codec`).
    ``joint_weight = "visible"`` also gives weight 0 to joints MPII flags occluded
    (``is_visible`` 0; unknown counts as visible), as bearpaw HEAD's ``target_weight``
    (``pose/datasets/mpii.py:115, 122``); their Gaussians are still drawn, as there.
    ``crop = "seed_box"`` crops the seed's box (:func:`seed_box`) instead of the
    hourglass papers' one; the image is then decoded at full size (``reduction`` 1).
    """
    out = out or {}
    if crop == "seed_box":
        height, width = image_bgr.shape[:2]
        center, scale = seed_box(record.joints, record.annotated, width * reduction,
                                 height * reduction)
    else:
        center, scale = hourglass_box(record.center, record.scale)
    to_crop = image_to_crop_affine(center, scale, input_size, aug)
    crop = bgr_to_rgb_with_gains(
        warp_crop(image_bgr, codec.cv2_affine(to_crop, reduction), input_size), aug.gains,
        out.get("images"))

    joints_crop = apply_affine(to_crop, record.joints)
    annotated = record.annotated.copy()
    occluded = np.asarray(record.visible) == 0
    if aug.flip:  # the affine mirrored the crop; now swap the joints' identities
        keypoints = record.keypoints
        joints_crop = codec.swap_left_right(joints_crop, keypoints=keypoints)
        annotated = codec.swap_left_right(annotated, keypoints=keypoints)
        occluded = codec.swap_left_right(occluded, keypoints=keypoints)
    target = codec.HeatmapCodec(input_size, heatmap_size, sigma, centre, window)
    heatmaps, weights, joints_hm = target.encode(joints_crop, annotated, heatmap_scale,
                                                 out.get("heatmaps"))
    if joint_weight == "visible":
        weights = weights * ~(occluded & annotated)
    return {
        "images": crop,
        "heatmaps": heatmaps,
        "joints": joints_hm.astype(np.float32),
        "weights": weights,
        "crop_to_image": invert_affine(to_crop),
        "center": center.astype(np.float32),
        "scale": np.float32(scale * aug.scale),
        "rotation": np.float32(aug.rotation),
        "flipped": np.uint8(aug.flip),
    }

