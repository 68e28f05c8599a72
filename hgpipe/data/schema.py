"""The one home of the shard schema: what ``hgpipe prepare`` writes and everything reads.

Layout of a shards directory::

    SHARDS_DIR/manifest.json          counts, shard list + checksums, config, versions
    SHARDS_DIR/train-00000.h5 ...     augmented training samples (offline geometry), or
                                      one context crop per person (device geometry)
    SHARDS_DIR/val-00000.h5 ...       one unaugmented crop per validation person
    SHARDS_DIR/crowd.json             oks sets: the val images' crowd regions (below)

Coordinate frames (*image* 1-based, *crop* and *heatmap* 0-based,
``crop = stride * heatmap + (stride - 1) / 2``) and the heatmap encoding are those of
:mod:`hgpipe.codec`. ``crop_to_image`` is the 2x3 affine
``[x_img, y_img] = A @ [x_crop, y_crop, 1]``.
Heatmaps are stored as uint8 (value / ``codec.HEATMAP_SCALE`` is the Gaussian's height,
peak 1 -> 255): a quarter of float32's bytes, and uint8 -> float32 on the device is the
cheapest conversion measured (about 20 us/sample against 90 for float16).

Keypoint set: the manifest's ``keypoints`` (:meth:`hgpipe.joints.KeypointSet.to_json`
as an object) says whose joints the shards hold; J per sample is its joint count. A
manifest without it (every shard written before keypoint sets) holds MPII's 16. Val
shards of an ``oks`` set also carry each person's COCO ``area`` and ids, which OKS AP
needs (:func:`hgpipe.eval.keypoint_metrics.oks_ap`). Beside them, :data:`CROWD_FILE`
holds the val file's crowd annotations, which COCOeval uses to ignore the predictions
that fall in them (:mod:`hgpipe.data.readers.coco_json`): ``{"annotations": [...]}``,
each with ``id``, ``image_id``, ``category_id``, ``iscrowd`` 1, ``bbox`` (COCO's 0-based
``[x, y, w, h]``), ``area``, ``keypoints`` (``[x, y, v] * J``) and ``num_keypoints`` as
in the file. The manifest names it in ``crowd`` (``file``, ``count``, ``bytes`` and its
``crc32``, verified as a shard's); a manifest without ``crowd`` (a folder written
before it, or of another metric) has no crowd regions.
"""
import json

import numpy as np

from hgpipe.joints import MPII, KeypointSet

SCHEMA_VERSION = 1
MAX_IMAGE_NAME = 64    # bytes of an image file name kept in a shard (longer: skipped)

SPLITS = ("train", "val")
CROWD_FILE = "crowd.json"   # oks sets: the val images' crowd regions (module doc)


def shard_name(split, index):
    return "%s-%05d.h5" % (split, index)


def datasets(input_size, heatmap_size, split, context_side=None, keypoints=None):
    """Return {name: (per-sample shape, dtype, description)} for one split's shards.

    ``keypoints``: the shards' :class:`hgpipe.joints.KeypointSet` (:func:`keypoints_of`
    a manifest), MPII if None: J = its joint count.

    ``context_side``: train shards of ``[Prepare] geometry = device`` (the manifest's
    ``context_side``), one context crop per person and its joints, no heatmaps
    (:mod:`hgpipe.data.context`; the device renders them). Crop shards (the default,
    and every shard written before context shards existed) leave it None."""
    keypoints = keypoints or MPII
    s, h, j = int(input_size), int(heatmap_size), keypoints.num_joints
    if split == "train" and context_side:
        c = int(context_side)
        return {
            "images": ((c, c, 3), np.uint8, "RGB context crop around the hourglass box"),
            "joints": ((j, 2), np.float32, "joint positions in context pixels (0-based)"),
            "weights": ((j,), np.float32, "1 if the joint is annotated"),
            "crop_to_image": ((2, 3), np.float64,
                              "affine: context pixels -> image pixels (1-based)"),
            "center": ((2,), np.float32, "box centre in image pixels (after the +15*s shift)"),
            "scale": ((), np.float32, "box scale: box side = 200 * scale (after x1.25)"),
            "image_name": ((), "S%d" % MAX_IMAGE_NAME, "source image file name (UTF-8)"),
            "annolist_index": ((), np.int32, "1-based official annolist index (-1 unknown)"),
            "person_index": ((), np.int32, "1-based official annorect index (-1 unknown)"),
        }
    spec = {
        "images": ((s, s, 3), np.uint8, "RGB crops, the network input"),
        "heatmaps": ((h, h, j), np.uint8, "target Gaussians x 255, zero where weight is 0"),
        "joints": ((j, 2), np.float32, "joint positions in heatmap pixels"),
        "weights": ((j,), np.float32, "1 if the joint is annotated and inside the crop"),
        "crop_to_image": ((2, 3), np.float64, "affine: crop pixels -> image pixels (1-based)"),
        "center": ((2,), np.float32, "crop centre in image pixels (after the +15*s shift)"),
        "scale": ((), np.float32, "crop scale: box side = 200 * scale (after x1.25)"),
        "rotation": ((), np.float32, "augmentation rotation, degrees counter-clockwise"),
        "flipped": ((), np.uint8, "1 if the crop was mirrored (joints already swapped)"),
        "image_name": ((), "S%d" % MAX_IMAGE_NAME, "source image file name (UTF-8)"),
        "annolist_index": ((), np.int32, "1-based official annolist index (-1 unknown)"),
        "person_index": ((), np.int32, "1-based official annorect index (-1 unknown)"),
    }
    if split == "val":
        spec.update({
            "gt_joints": ((j, 2), np.float32, "ground truth in image pixels (1-based)"),
            "gt_annotated": ((j,), np.uint8, "1 if the joint has ground truth"),
            "head_normalizer": ((), np.float32, "PCKh normaliser: 0.6 x head-box diagonal"),
        })
        if keypoints.metric == "oks":
            spec.update({
                "area": ((), np.float64, "OKS scale: the annotation's area (pixels^2)"),
                "image_id": ((), np.int64, "COCO images[].id (-1 unknown)"),
                "annotation_id": ((), np.int64, "COCO annotations[].id (-1 unknown)"),
            })
    return spec


def keypoints_of(manifest):
    """The keypoint set a manifest records (its ``keypoints`` object), MPII for one
    written before sets were recorded. ValueError if the recorded set is not valid."""
    recorded = manifest.get("keypoints")
    if recorded is None:
        return MPII
    return KeypointSet.from_json(json.dumps(recorded))


def keypoints_entry(keypoints):
    """What a manifest records for ``keypoints`` (the set's JSON, as an object)."""
    return json.loads(keypoints.to_json())


def context_side(manifest):
    """The context crop side of a manifest's train shards, None for crop shards."""
    return manifest.get("context_side") if manifest.get("geometry") == "device" else None


def describe(input_size=256, heatmap_size=64, keypoints=None):
    """Markdown table of the schema (used by ``hgpipe inspect`` and the README)."""
    lines = ["| dataset | shape per sample | dtype | splits | meaning |",
             "| --- | --- | --- | --- | --- |"]
    train = datasets(input_size, heatmap_size, "train", keypoints=keypoints)
    for name, (shape, dtype, text) in datasets(input_size, heatmap_size, "val",
                                               keypoints=keypoints).items():
        splits = "train, val" if name in train else "val"
        lines.append("| %s | %s | %s | %s | %s |" % (
            name, shape, np.dtype(dtype).name, splits, text))
    return "\n".join(lines)
