"""Stateless per-sample draws for the device: a pure function of (seed, step, sample).

Why stateless: a stateful ``tf.random_uniform`` restarts its stream when a run is resumed
(the new process builds a new graph), so the resumed run drew other flips, colours and
geometry than the uninterrupted one would have. Here every draw is
``tf.random.stateless_uniform`` keyed by ``(seed, step)``: one row per sample of the
*global* batch (all ranks), of which a rank takes its own rows; the row index is the
sample's slot in the global batch. A checkpoint holds the global step, so a resumed
run draws exactly what the uninterrupted one would have.

Normal draws are made from two uniforms (Box-Muller), so the only random op in the
graph is ``StatelessRandomUniform`` (TF 1.15 ``tf.compat.v1.random.stateless_uniform``).
The preset laws are those of :mod:`hgpipe.data.augment` (the one home of the presets,
read by host and device); the columns of one draw are :data:`COLUMNS`.
"""
import math
from typing import NamedTuple

from hgpipe.tf_compat import import_tf

# columns of the (batch, len(COLUMNS)) uniform draw of one step
COLUMNS = ("scale_a", "scale_b", "rotation_a", "rotation_b", "rotation_keep", "flip",
           "gain_r", "gain_g", "gain_b")
_COL = {name: i for i, name in enumerate(COLUMNS)}


class Draws(NamedTuple):
    rotation: object   # float32 (B,) degrees
    scale: object      # float32 (B,)
    flipped: object    # bool (B,)
    gains: object      # float32 (B, 1, 1, 3)


def uniform_draws(seed, step, batch, rank=0, ranks=1):
    """(batch, len(COLUMNS)) uniforms in [0, 1) of this rank's samples at ``step``.

    ``seed`` is an int, ``step`` an int64 scalar tensor (the global step before the
    update) or an int."""
    tf = import_tf()
    key = tf.stack([tf.constant(int(seed), tf.int64), tf.cast(step, tf.int64)])
    every_rank = tf.random.stateless_uniform([int(batch) * int(ranks), len(COLUMNS)],
                                             seed=key, dtype=tf.float32)
    return every_rank[int(rank) * int(batch):(int(rank) + 1) * int(batch)]


def _normal(tf, u, first, second):
    """A standard normal per row from two uniform columns (Box-Muller; 1 - u > 0)."""
    radius = tf.sqrt(-2.0 * tf.log(1.0 - u[:, _COL[first]]))
    return radius * tf.cos(2.0 * math.pi * u[:, _COL[second]])


def preset_draws(u, preset, flip=True, color=0.0):
    """Rotation, scale, flip and gains from uniforms ``u`` with the laws of ``preset``
    (a :class:`hgpipe.data.augment.Preset`; the same laws as
    :func:`hgpipe.data.augment.sample_preset`). ``flip``: mirror with the preset's
    probability; ``color`` > 0: per-channel gains U(1 - color, 1 + color)."""
    tf = import_tf()
    f, r = float(preset.scale_factor), float(preset.rotation)
    if preset.scale_law == "exp2":
        scale = tf.pow(2.0, tf.clip_by_value(_normal(tf, u, "scale_a", "scale_b") * f,
                                             -2.0 * f, 2.0 * f))
    elif preset.scale_law == "linear":
        scale = tf.clip_by_value(1.0 + _normal(tf, u, "scale_a", "scale_b") * f,
                                 1.0 - f, 1.0 + f)
    else:
        scale = (1.0 - f) + 2.0 * f * u[:, _COL["scale_a"]]
    if preset.rotation_law == "normal":
        rotation = tf.clip_by_value(_normal(tf, u, "rotation_a", "rotation_b") * r,
                                    -2.0 * r, 2.0 * r)
    elif preset.rotation_law == "integer":   # floor(u * 2r) - r: -r .. r - 1, equally likely
        rotation = tf.minimum(tf.floor(u[:, _COL["rotation_a"]] * (2.0 * r)), 2.0 * r - 1.0) - r
    else:
        rotation = (2.0 * u[:, _COL["rotation_a"]] - 1.0) * r
    if preset.rotation_prob < 1.0:
        rotation = tf.where(u[:, _COL["rotation_keep"]] < preset.rotation_prob, rotation,
                            tf.zeros_like(rotation))
    flipped = u[:, _COL["flip"]] < (preset.flip_prob if flip else 0.0)
    gains = None
    if color > 0:
        low, high = 1.0 - float(color), 1.0 + float(color)
        gains = low + (high - low) * u[:, _COL["gain_r"]:_COL["gain_b"] + 1]
        gains = tf.reshape(gains, [-1, 1, 1, 3])
    return Draws(rotation, scale, flipped, gains)
