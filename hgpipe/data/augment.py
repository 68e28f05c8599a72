"""Augmentation presets: the per-sample draws of the reference training codes, exactly.

``[Prepare] augmentation`` picks one; ``custom`` (the default) keeps the individual
``[Prepare]`` ranges (see :func:`hgpipe.data.transforms.sample_augmentation`).

newell -- pose-hg-train ``src/util/pose.lua`` (generateSample), ``rnd(x)`` =
    ``max(-2x, min(2x, randn()*x))`` (pose.lua:11):
    scale  ``s * 2 ^ rnd(0.25)``                      (pose.lua:21; opts.lua ``-scale .25``)
    rotation ``rnd(30)``, set to 0 when ``uniform() <= .6`` (pose.lua:22-23; ``-rotate 30``)
    flip   ``uniform() < .5``                         (pose.lua:36)
    colour each channel ``* uniform(0.6, 1.4)``, clamped to [0, 1] (pose.lua:40-42)
bearpaw -- bearpaw/pytorch-pose ``pose/datasets/mpii.py`` (Mpii.__getitem__):
    scale  ``s * clamp(1 + randn()*0.25, 0.75, 1.25)``  (mpii.py:94; main.py ``--scale-factor 0.25``)
    rotation ``clamp(randn()*30, -60, 60)`` when ``random() <= 0.6``, else 0
                                                        (mpii.py:95; main.py ``--rot-factor 30``)
    flip   ``random() <= 0.5``                          (mpii.py:98)
    colour each channel ``* uniform(0.8, 1.2)``, clamped to [0, 1] (mpii.py:104-106)
psh -- princeton-vl/pytorch_stacked_hourglass ``data/MPII/dp.py`` (Dataset.loadImage):
    rotation ``(random() * 2 - 1) * 30.`` on every sample; scale ``* (random() * 0.5 + 0.75)``
    on every sample; flip ``randint(2) == 0``. Its colour jitter (HSV hue and saturation,
    brightness, contrast; dp.py Dataset.preprocess, only on the flipped samples) is not a
    per-channel gain and is not reproduced: this preset draws no colour.
seed -- wbenbihi/hourglasstensorlfow 356e063 ``datagen.py:331-338`` (``_augment``, called by
    the training generator at :428): rotation only, ``if random.choice([0,1])`` (p 0.5) by
    ``np.random.randint(-30, 30)`` degrees, an integer in -30..29 (numpy's upper bound is
    exclusive); no scale, flip or colour. The seed rotates its already resized 256 px crop
    and its 64 px target maps about their centres with skimage (bilinear, zero outside);
    hgpipe rotates the crop about its centre while cutting it from the image and renders
    the targets at the rotated joints, so the rotated Gaussians are not resampled.

The references draw a new augmentation every time a sample is seen; hgpipe draws
``[Prepare] variants`` of them per person once. Flip and colour can instead be drawn on
the device every step (``[Train] device_flip`` / ``device_color``,
:mod:`hgpipe.train.augment`); a recipe that does so switches them off here with
``[Prepare] flip = False`` and ``color_jitter = 0`` -- with a preset, ``flip`` and
``color_jitter > 0`` are only on/off switches and the ranges are the preset's.
"""
from typing import NamedTuple

import numpy as np


class Preset(NamedTuple):
    scale_law: str          # "exp2": 2^clamp(N(0,f), -2f, 2f); "linear": clamp(1+N(0,f), 1-f, 1+f);
                            # "uniform": U(1-f, 1+f)
    scale_factor: float
    rotation_law: str       # "normal": N(0, r) clamped to [-2r, 2r]; "uniform": U(-r, r);
                            # "integer": an integer in [-r, r - 1], each equally likely
    rotation: float         # degrees
    rotation_prob: float    # chance that the rotation is kept
    flip_prob: float
    color_low: float        # per-channel gain U(low, high), then clamp (1, 1: no colour)
    color_high: float


PRESETS = {
    "newell": Preset("exp2", 0.25, "normal", 30.0, 0.4, 0.5, 0.6, 1.4),
    "bearpaw": Preset("linear", 0.25, "normal", 30.0, 0.6, 0.5, 0.8, 1.2),
    "psh": Preset("uniform", 0.25, "uniform", 30.0, 1.0, 0.5, 1.0, 1.0),
    "seed": Preset("uniform", 0.0, "integer", 30.0, 0.5, 0.0, 1.0, 1.0),
}


def sample_preset(rng, name, flip=True, color=True):
    """One draw of preset ``name`` (a name of :data:`PRESETS`, or a :class:`Preset` such
    as :func:`preset_of` gives) from a numpy RandomState.

    Returns ``(rotation_degrees, scale, flipped, (gain_r, gain_g, gain_b))``; ``flip`` /
    ``color`` False leave that part out (identity) without drawing it.
    """
    preset = name if isinstance(name, Preset) else PRESETS[name]
    f, r = preset.scale_factor, preset.rotation
    if preset.scale_law == "exp2":
        scale = float(2.0 ** np.clip(rng.randn() * f, -2.0 * f, 2.0 * f))
    elif preset.scale_law == "linear":
        scale = float(np.clip(1.0 + rng.randn() * f, 1.0 - f, 1.0 + f))
    else:
        scale = float(rng.uniform(1.0 - f, 1.0 + f))
    if preset.rotation_law == "normal":
        rotation = float(np.clip(rng.randn() * r, -2.0 * r, 2.0 * r))
    elif preset.rotation_law == "integer":
        rotation = float(rng.randint(-int(r), int(r)))
    else:
        rotation = float(rng.uniform(-r, r))
    if preset.rotation_prob < 1.0 and rng.uniform() >= preset.rotation_prob:
        rotation = 0.0
    flipped = bool(flip) and rng.uniform() < preset.flip_prob
    gains = (1.0, 1.0, 1.0)
    if color and preset.color_high > preset.color_low:
        gains = tuple(float(g) for g in rng.uniform(preset.color_low, preset.color_high, 3))
    return rotation, scale, flipped, gains


def preset_of(prepare):
    """The geometry law of a ``[Prepare]`` section (a dict): its preset, or for
    ``custom`` its own ranges (scale 1 + N(0, f) clamped, rotation N(0, r) clamped at 2r
    kept with ``rotation_prob``: :func:`hgpipe.data.transforms.sample_augmentation`).
    Device geometry (:mod:`hgpipe.train.geometry`) draws from it every step."""
    name = prepare.get("augmentation", "custom")
    if name != "custom":
        return PRESETS[name]
    c = prepare["color_jitter"]
    return Preset("linear", prepare["scale_factor"], "normal", prepare["rotation"],
                  prepare["rotation_prob"], 0.5, 1.0 - c, 1.0 + c)
