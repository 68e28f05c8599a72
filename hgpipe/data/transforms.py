"""Geometry of a training sample: the hourglass crop, augmentation and heatmaps.

Frames (see :mod:`hgpipe.data.schema`): *image* = 1-based MPII pixels, *crop* = 0-based
pixels of the network input, *heatmap* = 0-based pixels of the output. Everything is an
explicit 2x3 affine so a crop can always be mapped back to the original image exactly;
the flip is folded into the same affine, so one ``cv2.warpAffine`` makes the whole crop.
"""
import zlib
from typing import NamedTuple

import cv2
import numpy as np

from hgpipe.data.augment import sample_preset
from hgpipe.joints import FLIP_PERMUTATION, NUM_JOINTS

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
    if aug.flip:
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


def crop_to_heatmap(points, input_size, heatmap_size):
    """Crop pixels -> heatmap pixels (pixel centres aligned)."""
    stride = float(input_size) / heatmap_size
    return (np.asarray(points, dtype=np.float64) - (stride - 1.0) / 2.0) / stride


def heatmap_to_crop(points, input_size, heatmap_size):
    """Heatmap pixels -> crop pixels; the inverse of :func:`crop_to_heatmap`."""
    stride = float(input_size) / heatmap_size
    return np.asarray(points, dtype=np.float64) * stride + (stride - 1.0) / 2.0


def warp_crop(image_bgr, affine_0based, input_size):
    """Crop + rotate + scale + flip in one bilinear warp; black outside the image."""
    return cv2.warpAffine(image_bgr, affine_0based, (input_size, input_size),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(0, 0, 0))


def _gaussian_axes(joints, heatmap_size, sigma):
    """The separable factors of every joint's Gaussian: gx (W, J) and gy (H, J), float32."""
    grid = np.arange(heatmap_size, dtype=np.float32)
    joints = np.asarray(joints, dtype=np.float32)
    scale = np.float32(-0.5 / sigma ** 2)
    gx = np.exp((grid[:, None] - joints[None, :, 0]) ** 2 * scale)  # (W, J)
    gy = np.exp((grid[:, None] - joints[None, :, 1]) ** 2 * scale)  # (H, J)
    return gx, gy


def render_heatmaps(joints, weights, heatmap_size, sigma):
    """Float Gaussians of height 1 at float joint positions, (H, W, J) float32.

    Computed separably (an outer product per joint, broadcast straight into the output
    layout) from the exact float coordinates; joints with weight 0 get an all-zero map.
    """
    gx, gy = _gaussian_axes(joints, heatmap_size, sigma)
    gy *= (np.asarray(weights) > 0)[None, :]
    return gy[:, None, :] * gx[None, :, :]


def render_quantized_heatmaps(joints, weights, heatmap_size, sigma, scale, out=None):
    """``quantize_heatmaps(render_heatmaps(...), scale)``, byte for byte, 3-4x cheaper.

    A stored value round(gx * gy * scale) is never above round(gx * scale) (gy <= 1 and
    every step is monotonic in float32), so a map is zero outside the rows and columns
    where its 1-D factors alone quantize above zero (about +-3.5 sigma): only that window
    is computed, for all joints at once. ``out`` (H, W, J) uint8 is overwritten if given.
    """
    gx, gy = _gaussian_axes(joints, heatmap_size, sigma)
    if out is None:
        out = np.zeros((heatmap_size, heatmap_size, gx.shape[1]), np.uint8)
    else:
        out.fill(0)
    scale, half = np.float32(scale), np.float32(0.5)
    live_x, live_y = gx * scale + half >= 1, gy * scale + half >= 1
    drawn = np.flatnonzero((np.asarray(weights) > 0) & live_x.any(0) & live_y.any(0))
    if len(drawn):
        windows = []
        for live in (live_y, live_x):
            first = live.argmax(0)[drawn]
            end = heatmap_size - live[::-1].argmax(0)[drawn]
            size = int((end - first).max())   # one window size for all joints, shifted
            start = np.minimum(first, heatmap_size - size)   # to stay inside the map
            windows.append(start[:, None] + np.arange(size))
        ys, xs = windows
        column = drawn[:, None]
        values = gy[ys, column][:, :, None] * gx[xs, column][:, None, :]
        out[ys[:, :, None], xs[:, None, :], drawn[:, None, None]] = (
            values * scale + half).astype(np.uint8)
    return out


def quantize_heatmaps(heatmaps, scale):
    """Float heatmaps in [0, 1] -> stored uint8 (value * scale, rounded half up)."""
    return (heatmaps * np.float32(scale) + np.float32(0.5)).astype(np.uint8)


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
                heatmap_scale=None, out=None):
    """One training/validation sample from a decoded image and a person record.

    ``reduction`` is the factor the image was decoded smaller by (see
    :func:`hgpipe.data.images.decode_image`); coordinates stay those of the full image.
    Returns a dict with the per-sample arrays of the shard schema (image, heatmaps as
    float, joints in heatmap pixels, weights, crop_to_image, center, scale, ...). With
    ``heatmap_scale`` the heatmaps are the stored uint8 ones
    (:func:`render_quantized_heatmaps`); ``out`` may hold destination arrays for
    "images" and "heatmaps" (one sample each), written in place instead of allocated.
    """
    out = out or {}
    center, scale = hourglass_box(record.center, record.scale)
    to_crop = image_to_crop_affine(center, scale, input_size, aug)
    # cv2 works in 0-based pixels of the decoded image: full 0-based = image - 1, and
    # reduced pixel r has full 0-based centre f*r + (f-1)/2; fold both into the matrix.
    f = float(reduction)
    to_crop_0 = to_crop.copy()
    to_crop_0[:, 2] += to_crop[:, :2].dot([1.0 + (f - 1.0) / 2.0] * 2)
    to_crop_0[:, :2] *= f
    crop = bgr_to_rgb_with_gains(warp_crop(image_bgr, to_crop_0, input_size), aug.gains,
                                 out.get("images"))

    joints_crop = apply_affine(to_crop, record.joints)
    annotated = record.annotated.copy()
    if aug.flip:  # crop joint k is the original joint FLIP_PERMUTATION[k]
        joints_crop = joints_crop[list(FLIP_PERMUTATION)]
        annotated = annotated[list(FLIP_PERMUTATION)]
    joints_hm = crop_to_heatmap(joints_crop, input_size, heatmap_size)
    inside = np.all((joints_hm >= -0.5) & (joints_hm < heatmap_size - 0.5), axis=1)
    weights = (annotated & inside).astype(np.float32)
    if heatmap_scale is None:
        heatmaps = render_heatmaps(joints_hm, weights, heatmap_size, sigma)
    else:
        heatmaps = render_quantized_heatmaps(joints_hm, weights, heatmap_size, sigma,
                                             heatmap_scale, out.get("heatmaps"))
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


assert len(FLIP_PERMUTATION) == NUM_JOINTS
