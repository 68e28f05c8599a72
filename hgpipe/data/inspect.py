"""``hgpipe inspect``: what is in a shards directory, and a picture of what training sees."""
import os

import cv2
import numpy as np

from hgpipe import draw
from hgpipe.codec import dequantize_heatmaps, heatmap_to_crop
from hgpipe.data import schema, shard_checks, shards

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
    lines.append("  skipped persons: %s" % (manifest.get("skipped_count"),))
    by_reason = manifest.get("skipped_by_reason")
    by_reason = by_reason if isinstance(by_reason, dict) else {}
    for reason, n in sorted(by_reason.items(), key=lambda x: -x[1]
                            if isinstance(x[1], (int, float)) else 0):
        lines.append("    %6s  %s" % (n, reason))
    if damaged is not None:
        lines.append(checksum_line(damaged, manifest))
    lines.append("")
    lines.append(schema.describe(size, hm))
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
    with shard_checks.open_checked(path, split, size, hm, schema.context_side(manifest)) \
            as shard, shard_checks.reading(path):
        n = shard["images"].shape[0]
        for i in sorted(rng.choice(n, size=min(count, n), replace=False)):
            # small crops (the tiny config's 64 px) are enlarged to stay readable
            zoom = max(1, MIN_TILE // size)
            image = cv2.resize(shard["images"][i], None, fx=zoom, fy=zoom,
                               interpolation=cv2.INTER_NEAREST)
            weights = shard["weights"][i]
            joints = heatmap_to_crop(shard["joints"][i], size, hm) * zoom + (zoom - 1) / 2.0
            heat = dequantize_heatmaps(shard["heatmaps"][i], manifest["heatmap_scale"])
            label = "%s p%d\n%sr%+.0f s%.2f" % (
                os.path.splitext(shard["image_name"][i].decode("utf-8"))[0],
                shard["person_index"][i], "flip " if shard["flipped"][i] else "",
                shard["rotation"][i], shard["scale"][i])
            tiles.append(draw.put_label(draw.draw_skeleton(image, joints, weights > 0), label))
            tiles.append(draw.heatmap_overlay(image, heat))
    return tiles


def write_montage(shards_dir, out_png, split="train", count=8, seed=0):
    tiles = sample_tiles(shards_dir, split, count, seed)
    draw.write_png(out_png, draw.montage(tiles, columns=4))
    return os.path.abspath(out_png)
