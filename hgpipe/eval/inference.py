"""Running a model over crops: batching with a fixed shape, flip-test, back to image pixels.

The model is any ``run(images_uint8_batch) -> final heatmaps`` callable, so the trainer's
periodic validation (inside its own Session) and ``hgpipe pck --checkpoint`` share this
code. Batches keep one static shape (the last one padded), because accelerators such as
the Ascend NPU compile a graph per input shape.
"""
import numpy as np

from hgpipe.codec import flip_heatmaps, flip_images, heatmaps_to_image_coords
from hgpipe.data import schema, shard_checks, shards
from hgpipe.joints import MPII


def run_batched(run, images, batch_size):
    """Apply ``run`` to ``images`` in batches of exactly ``batch_size`` (last one padded)."""
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        real = len(batch)
        if real < batch_size:
            pad = np.repeat(batch[-1:], batch_size - real, axis=0)
            batch = np.concatenate([batch, pad], axis=0)
        outputs.append(np.asarray(run(batch))[:real])
    return np.concatenate(outputs, axis=0)


def predict_heatmaps(run, images, batch_size, flip=False, keypoints=MPII):
    """Final-stack heatmaps for uint8 crops; with ``flip`` averaged with the mirrored
    input's heatmaps mapped back (left/right swapped: ``keypoints``' pairs)."""
    heatmaps = run_batched(run, images, batch_size)
    if flip:
        mirrored = np.ascontiguousarray(flip_images(images))
        heatmaps = 0.5 * (heatmaps + flip_heatmaps(run_batched(run, mirrored, batch_size),
                                                   keypoints))
    return heatmaps


def read_val_inputs(shards_dir, limit=None):
    """(images uint8, crop_to_image affines) of the val shards, in manifest order."""
    images, affines = [], []
    remaining = limit
    manifest = shards.load_manifest(shards_dir)
    for path in shards.shard_paths(shards_dir, "val", manifest):
        with shard_checks.open_checked(path, "val", manifest["input_size"],
                                       manifest["heatmap_size"],
                                       keypoints=schema.keypoints_of(manifest),
                                       fields=("images", "crop_to_image")) as shard, \
                shard_checks.reading(path):
            n = shard["images"].shape[0] if remaining is None else min(
                remaining, shard["images"].shape[0])
            images.append(shard["images"][:n])
            affines.append(shard["crop_to_image"][:n])
        if remaining is not None:
            remaining -= n
            if remaining <= 0:
                break
    if not images:
        raise shards.ShardError("%s: no validation samples" % shards_dir)
    return np.concatenate(images), np.concatenate(affines)


def predict_image_coords(run, images, affines, batch_size, flip=False, keypoints=MPII):
    """Joint positions in original image pixels (1-based) and their confidences;
    ``keypoints``: whose joints the heatmap channels are (the flip test swaps its pairs)."""
    heatmaps = predict_heatmaps(run, images, batch_size, flip, keypoints)
    return heatmaps_to_image_coords(heatmaps, affines, images.shape[1])

