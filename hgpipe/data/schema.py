"""The one home of the shard schema: what ``hgpipe prepare`` writes and everything reads.

Layout of a shards directory::

    SHARDS_DIR/manifest.json          counts, shard list + checksums, config, versions
    SHARDS_DIR/train-00000.h5 ...     augmented training samples (offline geometry), or
                                      one context crop per person (device geometry)
    SHARDS_DIR/val-00000.h5 ...       one unaugmented crop per validation person

Coordinate frames (*image* 1-based, *crop* and *heatmap* 0-based,
``crop = stride * heatmap + (stride - 1) / 2``) and the heatmap encoding are those of
:mod:`hgpipe.codec`. ``crop_to_image`` is the 2x3 affine
``[x_img, y_img] = A @ [x_crop, y_crop, 1]``.
Heatmaps are stored as uint8 (value / ``codec.HEATMAP_SCALE`` is the Gaussian's height,
peak 1 -> 255): a quarter of float32's bytes, and uint8 -> float32 on the device is the
cheapest conversion measured (about 20 us/sample against 90 for float16).
"""
import numpy as np

from hgpipe.joints import NUM_JOINTS

SCHEMA_VERSION = 1
MAX_IMAGE_NAME = 64    # bytes of an image file name kept in a shard (longer: skipped)

SPLITS = ("train", "val")


def shard_name(split, index):
    return "%s-%05d.h5" % (split, index)


def datasets(input_size, heatmap_size, split, context_side=None):
    """Return {name: (per-sample shape, dtype, description)} for one split's shards.

    ``context_side``: train shards of ``[Prepare] geometry = device`` (the manifest's
    ``context_side``), one context crop per person and its joints, no heatmaps
    (:mod:`hgpipe.data.context`; the device renders them). Crop shards (the default,
    and every shard written before context shards existed) leave it None."""
    s, h, j = int(input_size), int(heatmap_size), NUM_JOINTS
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
    return spec


def context_side(manifest):
    """The context crop side of a manifest's train shards, None for crop shards."""
    return manifest.get("context_side") if manifest.get("geometry") == "device" else None


def describe(input_size=256, heatmap_size=64):
    """Markdown table of the schema (used by ``hgpipe inspect`` and the README)."""
    lines = ["| dataset | shape per sample | dtype | splits | meaning |",
             "| --- | --- | --- | --- | --- |"]
    train = datasets(input_size, heatmap_size, "train")
    for name, (shape, dtype, text) in datasets(input_size, heatmap_size, "val").items():
        splits = "train, val" if name in train else "val"
        lines.append("| %s | %s | %s | %s | %s |" % (
            name, shape, np.dtype(dtype).name, splits, text))
    return "\n".join(lines)
