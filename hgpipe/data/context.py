"""Context crops: one stored crop per person, from which the device cuts fresh geometry.

``[Prepare] geometry = device`` stores, per training person, one square crop around the
hourglass box (:func:`hgpipe.data.transforms.hourglass_box`), unrotated, unflipped, at
the crop's own density (``input_size`` pixels per box side) and large enough to hold the
network crop at the preset's largest scale and rotation: side
``input_size * max_scale * max(|cos r| + |sin r|)`` plus a pixel each side for the
bilinear taps. The training graph (:mod:`hgpipe.train.geometry`) then draws rotation
and scale every step and warps this crop, instead of reusing ``variants`` fixed crops.

Bytes: a crop side above :data:`MAX_SIDE_FACTOR` x ``input_size`` (480 px at 256;
newell's +-60 degrees at 2^0.5 needs 514) is stored at the density that fits in it
(480/514 = 0.93 pixel per crop pixel), so that a person costs at most a third of what 8
offline variants cost (issue 20: 262,513 B x 8 / 3 = 700,034 B; 480 x 480 x 3 =
691,200 B, and no heatmaps: they are rendered on the device).

Frames: context pixels are 0-based, ``context = density * (crop1 - mid) + mid_context``
where ``crop1`` is the scale-1 plain crop (:func:`image_to_crop_affine` with ``PLAIN``),
``mid = (input_size - 1) / 2`` and ``mid_context = (side - 1) / 2``.
"""
import math
from typing import NamedTuple

import cv2
import numpy as np

from hgpipe import codec
from hgpipe.joints import MPII
from hgpipe.data.transforms import (Augmentation, apply_affine, bgr_to_rgb_with_gains,
                                    hourglass_box, image_to_crop_affine, invert_affine,
                                    warp_crop)

MAX_SIDE_FACTOR = 1.875   # largest stored side / input_size (480 px at 256)
_TAPS = 2                 # pixels added to the side: one each way for the bilinear taps


class ContextGeometry(NamedTuple):
    side: int          # stored context crop side, pixels (even when input_size is)
    density: float     # context pixels per crop pixel (1 unless capped)
    max_scale: float
    max_rotation: float


def max_scale(preset):
    """The largest scale a preset draws (>1 zooms out: a bigger box of the image)."""
    f = preset.scale_factor
    return 2.0 ** (2.0 * f) if preset.scale_law == "exp2" else 1.0 + f


def max_rotation(preset):
    """The largest |rotation| in degrees a preset draws (0 if it never rotates)."""
    if preset.rotation_prob <= 0:
        return 0.0
    return 2.0 * preset.rotation if preset.rotation_law == "normal" else preset.rotation


def context_geometry(preset, input_size):
    """Side and density of the context crop for ``preset`` (see the module docstring)."""
    rotation = min(abs(max_rotation(preset)), 90.0)
    theta = math.radians(rotation)
    footprint = math.sqrt(2.0) if rotation >= 45.0 else math.cos(theta) + math.sin(theta)
    needed = input_size * max_scale(preset) * footprint + _TAPS
    # same parity as input_size, so a scale-1 unrotated crop is an integer shift of it
    side = int(math.ceil(needed))
    side += (side - input_size) % 2
    cap = int(MAX_SIDE_FACTOR * input_size)
    cap -= (cap - input_size) % 2
    if side <= cap:
        return ContextGeometry(side, 1.0, max_scale(preset), rotation)
    return ContextGeometry(cap, cap / needed, max_scale(preset), rotation)


def image_to_context_affine(center, scale, input_size, geometry):
    """2x3 affine image (1-based) -> context pixels (0-based) of the hourglass box."""
    zoom_out = geometry.side / (geometry.density * input_size)
    return image_to_crop_affine(center, scale, geometry.side, Augmentation(scale=zoom_out))


def make_context(image_bgr, record, input_size, geometry, reduction=1, out=None,
                 joint_weight="supervised"):
    """One person's context crop (RGB uint8), joints in context pixels and the
    shard-schema arrays (``out``: an optional destination for the crop).

    ``weights`` are what the device gives each joint (times inside-the-crop, after its
    draws): 1 where annotated; with ``joint_weight = "visible"`` also 0 where MPII flags
    the joint occluded, as the offline path (:func:`hgpipe.data.transforms.make_sample`)
    and bearpaw HEAD's ``target_weight`` (``pose/datasets/mpii.py:115, 122``). The device
    then draws no Gaussian for such a joint where the offline path draws one; its weight
    is 0 either way, and a weighted loss multiplies the target by the weight, so the loss
    is the same."""
    center, scale = hourglass_box(record.center, record.scale)
    to_context = image_to_context_affine(center, scale, input_size, geometry)
    crop = bgr_to_rgb_with_gains(
        warp_crop(image_bgr, codec.cv2_affine(to_context, reduction), geometry.side),
        out=out)
    return {
        "images": crop,
        "joints": apply_affine(to_context, record.joints).astype(np.float32),
        "weights": context_weights(record, joint_weight),
        "crop_to_image": invert_affine(to_context),
        "center": center.astype(np.float32),
        "scale": np.float32(scale),
    }


def context_weights(record, joint_weight="supervised"):
    """The stored per-joint weights of a context sample (see :func:`make_context`)."""
    weights = record.annotated.astype(np.float32)
    if joint_weight == "visible":
        weights *= np.asarray(record.visible) != 0
    return weights


def context_view(context, joints, annotated, aug, density, input_size, keypoints=MPII):
    """One fixed draw of the device geometry, computed on the host: the network crop the
    training graph cuts from ``context`` for ``aug`` (rotation, scale, flip), the joints
    in crop pixels (left and right swapped after a mirror, as prepare does) and their
    annotated flags in that order (``keypoints``: the shards' set, whose pairs swap).

    The same matrices as :func:`hgpipe.train.geometry._matrices` (crop offset -> context
    offset ``k R^T F``, k = density x scale, about the crops' centres), warped by OpenCV's
    bilinear ``warpAffine``, which the device's gather warp equals to one grey level
    (``tests/test_device_geometry.py``). ``inspect`` draws it so that its montage shows
    what training sees for context shards too, without building a graph.
    """
    side = context.shape[0]
    theta = math.radians(aug.rotation)
    cos, sin = math.cos(theta), math.sin(theta)
    mirror = -1.0 if aug.flip else 1.0
    k = density * aug.scale
    to_context = np.array([[k * cos * mirror, -k * sin], [k * sin * mirror, k * cos]])
    mid, mid_context = (input_size - 1) / 2.0, (side - 1) / 2.0
    inverse_map = np.zeros((2, 3))
    inverse_map[:, :2] = to_context
    inverse_map[:, 2] = mid_context - to_context.dot([mid, mid])
    crop = cv2.warpAffine(context, inverse_map, (input_size, input_size),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    crop_joints = (np.asarray(joints, np.float64) - mid_context).dot(
        np.linalg.inv(to_context).T) + mid
    annotated = np.asarray(annotated) > 0
    if aug.flip:
        perm = list(keypoints.flip_permutation)
        crop_joints, annotated = crop_joints[perm], annotated[perm]
    return crop, crop_joints, annotated
