"""Fresh geometry on the device: a new rotation, scale, flip and colour per sample per step.

``[Prepare] geometry = device`` shards hold one context crop per person
(:mod:`hgpipe.data.context`). Each step this module draws, per sample, the preset's
rotation and scale (:mod:`hgpipe.train.draws`: stateless, keyed by (seed, step,
sample)), the flip and the colour gains, warps the context crop bilinearly into the
``input_size`` network crop and renders the target heatmaps from the transformed joints
in hgpipe's pixel convention (:mod:`hgpipe.codec`: its frame change, inside-the-map rule
and Gaussian; float targets, not the shards' uint8 ones).

The warp is the offline one (:func:`hgpipe.data.transforms.image_to_crop_affine`)
expressed in context pixels: with ``d = crop - mid`` and ``F`` the mirror of x,

    context = mid_context + density * scale * R(rotation)^T F d

sampled as ``cv2.warpAffine(..., INTER_LINEAR, BORDER_CONSTANT 0)`` samples (0-based
pixel centres, black outside the stored crop): the four neighbours are gathered from the
crop padded by one black pixel (``tf.gather`` on the flattened batch) and blended with
their bilinear weights. Joints go the other way (``crop = mid + F R (j - mid_context) /
(density * scale)``), then a flip swaps left and right (the keypoint set's ``flip_permutation``, MPII's
by default).

Ops (all core TF 1.15 ops that Ascend runs; no py_func, no tf.contrib, no image ops):
StatelessRandomUniform, Sqrt, Log, Cos, Sin, Pow, Minimum/Maximum (clip), Select
(where), Mul/Add/Sub, MatMul (BatchMatMul), Floor, Cast, Pad, GatherV2, Reshape,
StridedSlice, Exp, Less/GreaterEqual, LogicalAnd, Square.
"""
import math
from typing import NamedTuple

import numpy as np

from hgpipe import codec
from hgpipe.joints import MPII
from hgpipe.tf_compat import import_tf
from hgpipe.train.draws import preset_draws, uniform_draws


class Warped(NamedTuple):
    images: object      # float32 (B, S, S, 3) in [0, 1]
    heatmaps: object    # float32 (B, H, H, J)
    weights: object     # float32 (B, J)
    joints: object      # float32 (B, J, 2) in crop pixels (after the flip's swap)
    draws: object       # the Draws used


def _matrices(tf, draws, density):
    """Per sample, the 2x2 linear parts (B, 2, 2): crop offset -> context offset
    (``k R^T F``, k = density * scale) and its inverse context -> crop (``F R / k``)."""
    theta = draws.rotation * (math.pi / 180.0)
    cos, sin = tf.cos(theta), tf.sin(theta)
    mirror = tf.where(draws.flipped, -tf.ones_like(cos), tf.ones_like(cos))
    k = density * draws.scale
    to_context = tf.stack([tf.stack([k * cos * mirror, -k * sin], axis=1),
                           tf.stack([k * sin * mirror, k * cos], axis=1)], axis=1)
    to_crop = tf.stack([tf.stack([mirror * cos / k, mirror * sin / k], axis=1),
                        tf.stack([-sin / k, cos / k], axis=1)], axis=1)
    return to_context, to_crop


def warp_context(context, linear, input_size):
    """Bilinear samples of ``context`` (B, C, C, 3) float at ``mid_context + linear @
    (crop - mid)`` for every crop pixel: (B, S, S, 3). Zero outside the context."""
    tf = import_tf()
    batch, side = int(context.shape[0]), int(context.shape[1])
    s = int(input_size)
    mid, mid_context = (s - 1) / 2.0, (side - 1) / 2.0
    grid = np.stack(np.meshgrid(np.arange(s), np.arange(s)), axis=-1).reshape(-1, 2)
    offsets = tf.constant((grid - mid).astype(np.float32))          # (S*S, 2) x, y
    source = tf.matmul(tf.tile(offsets[None], [batch, 1, 1]), linear,
                       transpose_b=True) + mid_context               # (B, S*S, 2)
    x, y = source[..., 0], source[..., 1]
    x0, y0 = tf.floor(x), tf.floor(y)
    wx, wy = x - x0, y - y0
    padded = side + 2   # one black pixel each side: every tap outside reads a zero
    flat = tf.reshape(tf.pad(context, [[0, 0], [1, 1], [1, 1], [0, 0]]), [-1, 3])
    base = tf.constant((np.arange(batch) * padded * padded)[:, None], tf.int32)

    def tap(xi, yi):
        xi = tf.cast(tf.clip_by_value(xi, -1.0, float(side)), tf.int32) + 1
        yi = tf.cast(tf.clip_by_value(yi, -1.0, float(side)), tf.int32) + 1
        return tf.gather(flat, base + yi * padded + xi)

    top = tap(x0, y0) * (1.0 - wx)[..., None] + tap(x0 + 1.0, y0) * wx[..., None]
    bottom = tap(x0, y0 + 1.0) * (1.0 - wx)[..., None] + \
        tap(x0 + 1.0, y0 + 1.0) * wx[..., None]
    out = top * (1.0 - wy)[..., None] + bottom * wy[..., None]
    return tf.reshape(out, [batch, s, s, 3])


def transform_joints(joints, to_crop, side, input_size):
    """Context-pixel joints (B, J, 2) -> crop pixels through ``to_crop`` (B, 2, 2)."""
    tf = import_tf()
    mid, mid_context = (input_size - 1) / 2.0, (side - 1) / 2.0
    return tf.matmul(joints - mid_context, to_crop, transpose_b=True) + mid


def render_heatmaps(joints_crop, annotated, input_size, heatmap_size, sigma, centre="float",
                    window=0):
    """Float Gaussians (B, H, H, J) and weights (B, J) of crop-pixel joints, in the
    codec's convention (:func:`hgpipe.codec.render_heatmaps`, :func:`codec.supervised`),
    with its target settings: ``centre`` ``"pixel"`` draws at the nearest heatmap pixel
    (:func:`codec.gaussian_centres`), ``window`` (odd, 0: none) cuts each map to that
    many pixels square around it."""
    tf = import_tf()
    gain, offset = codec.crop_to_heatmap_linear(input_size, heatmap_size)
    hm = joints_crop * gain + offset                                  # (B, J, 2)
    low, high = codec.supervised_bounds(heatmap_size)
    inside = tf.reduce_all(tf.logical_and(hm >= low, hm < high), axis=2)
    weights = tf.where(tf.logical_and(inside, annotated > 0), tf.ones_like(annotated),
                       tf.zeros_like(annotated))
    grid = tf.constant(np.arange(heatmap_size, dtype=np.float32)[None, :, None])
    nearest = tf.floor(hm + 0.5)
    at = nearest if centre == "pixel" else hm
    k = codec.gaussian_exponent(sigma)
    gx = tf.exp(tf.square(grid - at[:, None, :, 0]) * k)              # (B, W, J)
    gy = tf.exp(tf.square(grid - at[:, None, :, 1]) * k) * weights[:, None, :]
    if window:
        half = float(window // 2)
        gx *= tf.cast(tf.abs(grid - nearest[:, None, :, 0]) <= half, tf.float32)
        gy *= tf.cast(tf.abs(grid - nearest[:, None, :, 1]) <= half, tf.float32)
    return gy[:, :, None, :] * gx[:, None, :, :], weights


def device_geometry(context_uint8, joints, annotated, preset, input_size, heatmap_size,
                    sigma, density, seed, step, flip=True, color=0.0, rank=0, ranks=1,
                    centre="float", window=0, keypoints=MPII):
    """The whole per-step geometry: draws -> warped [0, 1] crops, heatmaps, weights.

    ``context_uint8`` (B, C, C, 3), ``joints`` (B, J, 2) in context pixels, ``annotated``
    (B, J) float 0/1; ``step`` the global step tensor (before its update); ``keypoints``
    the set whose J joints these are (a flip swaps its pairs)."""
    tf = import_tf()
    with tf.name_scope("device_geometry"):
        batch = int(context_uint8.shape[0])
        draws = preset_draws(uniform_draws(seed, step, batch, rank, ranks), preset,
                             flip=flip, color=color)
        return apply_draws(context_uint8, joints, annotated, draws, density, input_size,
                           heatmap_size, sigma, centre, window, keypoints)


def apply_draws(context_uint8, joints, annotated, draws, density, input_size, heatmap_size,
                sigma, centre="float", window=0, keypoints=MPII):
    """Warp, joints, flip's left/right swap, heatmaps and colour for given ``draws``."""
    tf = import_tf()
    side = int(context_uint8.shape[1])
    to_context, to_crop = _matrices(tf, draws, density)
    images = warp_context(tf.cast(context_uint8, tf.float32) / 255.0, to_context, input_size)
    crop_joints = transform_joints(joints, to_crop, side, input_size)
    perm, k = list(keypoints.flip_permutation), keypoints.num_joints
    crop_joints = tf.where(tf.tile(draws.flipped[:, None, None], [1, k, 2]),
                           tf.gather(crop_joints, perm, axis=1), crop_joints)
    annotated = tf.where(tf.tile(draws.flipped[:, None], [1, k]),
                         tf.gather(annotated, perm, axis=1), annotated)
    heatmaps, weights = render_heatmaps(crop_joints, annotated, input_size, heatmap_size,
                                        sigma, centre, window)
    if draws.gains is not None:
        images = tf.clip_by_value(images * draws.gains, 0.0, 1.0)
    return Warped(images, heatmaps, weights, crop_joints, draws)
