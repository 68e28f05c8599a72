"""``hgpipe inspect``: what is in a shards directory, and a picture of what training sees."""
import os

import cv2
import numpy as np

from hgpipe import draw
from hgpipe.codec import (crop_to_heatmap, dequantize_heatmaps, gaussian_centres,
                          heatmap_to_crop, render_heatmaps, supervised)
from hgpipe.data import schema, shard_checks, shards
from hgpipe.data.augment import preset_of, sample_preset
from hgpipe.data.context import context_view
from hgpipe.data.transforms import Augmentation

MIN_TILE = 192  # pixels: the smallest tile a person can read in a montage


def report(shards_dir, damaged=None):
    """Text summary of a shards directory (counts, bytes, skipped, schema).

    ``damaged``: the result of :func:`hgpipe.data.shards.damaged_shards`, when verified.
    """
    manifest = shards.load_manifest(shards_dir)
    size, hm = manifest["input_size"], manifest["heatmap_size"]
    lines = ["shards: %s (schema v%d, written by hgpipe %s)" % (
        shards_dir, manifest["schema_version"], manifest.get("hgpipe_version", "?"))]
    for split in schema.SPLITS:
        entries = [e for e in manifest["shards"] if e["split"] == split]
        count = sum(e["count"] for e in entries)
        total = sum(e.get("bytes", 0) for e in entries)
        per = total / float(count) if count else 0.0
        lines.append("  %-5s %7d samples in %3d shards, %8.1f MB, %7.1f KB/sample" % (
            split, count, len(entries), total / 1e6, per / 1e3))
    prep = manifest["config"]["Prepare"]   # what prepare recorded: shown, never trusted
    lines.append("  input %d px, heatmaps %d px, sigma %s, %s variants/person, seed %s" % (
        size, hm, prep.get("sigma"), prep.get("variants"), prep.get("seed")))
    keypoints = schema.keypoints_of(manifest)
    lines.append("  keypoints: %s (%d joints, scored by %s)" % (
        keypoints.name, keypoints.num_joints, keypoints.metric))
    lines.append("  skipped persons: %s" % (manifest.get("skipped_count"),))
    by_reason = manifest.get("skipped_by_reason")
    by_reason = by_reason if isinstance(by_reason, dict) else {}
    for reason, n in sorted(by_reason.items(), key=lambda x: -x[1]
                            if isinstance(x[1], (int, float)) else 0):
        lines.append("    %6s  %s" % (n, reason))
    if damaged is not None:
        lines.append(checksum_line(damaged, manifest))
    lines.append("")
    lines.append(schema.describe(size, hm, keypoints))
    return "\n".join(lines)


def checksum_line(damaged, manifest):
    if not damaged:
        return "  checksums: all %d intact" % len(manifest["shards"])
    return "  checksums: MISMATCH in " + ", ".join(
        "%s (%s)" % (path, problem) for path, problem in damaged)


def sample_tiles(shards_dir, split="train", count=8, seed=0):
    """Pairs of tiles per sample: crop + joints, crop + heatmap overlay."""
    manifest = shards.load_manifest(shards_dir)
    paths = shards.shard_paths(shards_dir, split, manifest)
    if not paths:
        raise shards.ShardError("%s: no %s samples" % (shards_dir, split))
    size, hm = manifest["input_size"], manifest["heatmap_size"]
    rng = np.random.RandomState(seed)
    tiles = []
    path = paths[rng.randint(len(paths))]
    side = schema.context_side(manifest) if split == "train" else None
    # small crops (the tiny config's 64 px) are enlarged to stay readable
    zoom = max(1, MIN_TILE // size)
    with shard_checks.open_checked(path, split, size, hm, side,
                                   schema.keypoints_of(manifest)) as shard, \
            shard_checks.reading(path):
        n = shard["images"].shape[0]
        for i in sorted(rng.choice(n, size=min(count, n), replace=False)):
            if side:
                crop, joints, weights, heat, aug = _device_view(shard, i, manifest, rng)
            else:
                crop, weights = shard["images"][i], shard["weights"][i]
                joints = heatmap_to_crop(shard["joints"][i], size, hm)
                heat = dequantize_heatmaps(shard["heatmaps"][i], manifest["heatmap_scale"])
                aug = Augmentation(shard["rotation"][i], shard["scale"][i],
                                   bool(shard["flipped"][i]))
            image = cv2.resize(crop, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
            joints = joints * zoom + (zoom - 1) / 2.0
            label = "%s p%d\n%s%sr%+.0f s%.2f" % (
                os.path.splitext(shard["image_name"][i].decode("utf-8"))[0],
                shard["person_index"][i], "draw " if side else "",
                "flip " if aug.flip else "", aug.rotation, aug.scale)
            tiles.append(draw.put_label(draw.draw_skeleton(
                image, joints, weights > 0, keypoints=schema.keypoints_of(manifest)), label))
            tiles.append(draw.heatmap_overlay(image, heat))
    return tiles


def _device_view(shard, i, manifest, rng):
    """A context shard's sample as one training step sees it: a draw of the recorded
    preset (geometry and colour), the host twin of the device warp
    (:func:`hgpipe.data.context.context_view`) and the codec's targets with the recorded
    target settings."""
    size, hm = manifest["input_size"], manifest["heatmap_size"]
    prep = manifest["config"]["Prepare"]
    rotation, scale, flipped, gains = sample_preset(rng, preset_of(prep))
    aug = Augmentation(rotation, scale, flipped)
    crop, joints, annotated = context_view(shard["images"][i], shard["joints"][i],
                                           shard["weights"][i], aug,
                                           float(manifest["context_density"]), size,
                                           schema.keypoints_of(manifest))
    crop = np.clip(crop * np.asarray(gains, np.float32), 0, 255).astype(np.uint8)
    joints_hm = crop_to_heatmap(joints, size, hm)
    weights = supervised(joints_hm, annotated, hm)
    heat = render_heatmaps(gaussian_centres(joints_hm, prep.get("gaussian_centre", "float")),
                           weights, hm, float(prep["sigma"]), int(prep.get("gaussian_window", 0)))
    return crop, joints, weights, heat, aug


def write_montage(shards_dir, out_png, split="train", count=8, seed=0):
    tiles = sample_tiles(shards_dir, split, count, seed)
    draw.write_png(out_png, draw.montage(tiles, columns=4))
    return os.path.abspath(out_png)
