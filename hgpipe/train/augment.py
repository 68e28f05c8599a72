"""Device-side flip and colour: new draws for every sample at every step, in the graph.

The references draw a fresh augmentation each time a sample is seen; the shards hold a
fixed set of variants. Flip and colour gain need no resampling of the image, so they
are done here, on the device, for free on the host (``[Train] device_flip``,
``device_color``):

* flip, probability 0.5 per sample (pose.lua:36, mpii.py:98): the [0,1] image and the
  target heatmaps are mirrored along the width (``tf.reverse``), and the joint channels
  and weights are swapped by the shards' keypoint set's ``flip_permutation``
  (:class:`hgpipe.joints.KeypointSet`; MPII's by default). Exact in hgpipe's
  pixel convention (:mod:`hgpipe.codec`: mirroring a crop is mirroring its heatmap, with
  no pixel shift) -- the mirrored heatmap is the heatmap of the mirrored joints, as
  :func:`hgpipe.codec.flip_heatmaps` does on the host.
* colour, per sample and channel a gain U(1-c, 1+c), then clamp to [0, 1] (pose.lua:40-42
  with c = 0.4; mpii.py:104-106 with c = 0.2), on the [0, 1] image before any mean
  subtraction (bearpaw subtracts its mean after the gain, mpii.py:110).

Only ops Ascend runs (stateless_uniform, reverse, gather, select, multiply, clip); no
py_func. Draws are stateless, keyed by (seed, step, sample) (:mod:`hgpipe.train.draws`):
a resumed run draws what the uninterrupted one would have (stateful random ops
re-seeded on resume). A recipe that flips or colours here turns the same thing off at prepare time
(``[Prepare] flip = False``, ``color_jitter = 0``) so nothing is applied twice.
"""
from typing import NamedTuple

from hgpipe.data.augment import Preset
from hgpipe.joints import MPII
from hgpipe.tf_compat import import_tf
from hgpipe.train.draws import preset_draws, uniform_draws

# flip with probability 0.5 and no geometry: only its flip law is used here
FLIP_AND_COLOUR = Preset("uniform", 0.0, "uniform", 0.0, 0.0, 0.5, 1.0, 1.0)


class Augmented(NamedTuple):
    images: object      # float (B, S, S, 3) in [0, 1]
    heatmaps: object    # float (B, H, H, J)
    weights: object     # float (B, J)
    flipped: object     # bool (B,): which samples were mirrored (None when flip is off)
    gains: object       # float (B, 1, 1, 3) colour gains (None when colour is off)


def augment_on_device(images, heatmaps, weights, flip, color, seed=0, step=0, rank=0,
                      ranks=1, keypoints=MPII):
    """Random flip (``flip`` True) and colour gain U(1-color, 1+color) (``color`` > 0).

    ``images`` are [0, 1] floats, ``heatmaps`` and ``weights`` the float targets; the batch
    size must be static. With both off the inputs are returned untouched. The draws are
    stateless (:mod:`hgpipe.train.draws`): a function of (``seed``, ``step`` - the global
    step tensor in training - and the sample's slot in the global batch of ``ranks``), so
    a resumed run draws what the uninterrupted one would have. ``keypoints``: whose
    joints the channels are; a flip swaps its ``flip_pairs``.
    """
    tf = import_tf()
    flipped = gains = None
    with tf.name_scope("device_augment"):
        batch = images.shape[0].value if hasattr(images.shape[0], "value") \
            else images.shape[0]
        if flip or color > 0:
            u = uniform_draws(seed, step, batch, rank, ranks)
            draws = preset_draws(u, FLIP_AND_COLOUR, flip=flip, color=color)
        if flip:
            flipped = draws.flipped
            perm = list(keypoints.flip_permutation)
            images = tf.where(flipped, tf.reverse(images, [2]), images)
            mirrored = tf.gather(tf.reverse(heatmaps, [2]), perm, axis=3)
            heatmaps = tf.where(flipped, mirrored, heatmaps)
            weights = tf.where(flipped, tf.gather(weights, perm, axis=1), weights)
        if color > 0:
            gains = tf.cast(draws.gains, images.dtype)
            images = tf.clip_by_value(images * gains, 0.0, 1.0)
    return Augmented(images, heatmaps, weights, flipped, gains)
