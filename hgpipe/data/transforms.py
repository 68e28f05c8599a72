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


def hourglass_box(center, scale):
    """Raw MPII objpos/scale -> the crop centre and scale the hourglass papers use."""
    center = np.asarray(center, dtype=np.float64)
    return np.array([center[0], center[1] + CENTER_SHIFT_Y * scale]), scale * SCALE_ENLARGE


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
                joint_weight="supervised"):
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
    """
    out = out or {}
    center, scale = hourglass_box(record.center, record.scale)
    to_crop = image_to_crop_affine(center, scale, input_size, aug)
    crop = bgr_to_rgb_with_gains(
        warp_crop(image_bgr, codec.cv2_affine(to_crop, reduction), input_size), aug.gains,
        out.get("images"))

    joints_crop = apply_affine(to_crop, record.joints)
    annotated = record.annotated.copy()
    occluded = np.asarray(record.visible) == 0
    if aug.flip:  # the affine mirrored the crop; now swap the joints' identities
        joints_crop = codec.swap_left_right(joints_crop)
        annotated = codec.swap_left_right(annotated)
        occluded = codec.swap_left_right(occluded)
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

