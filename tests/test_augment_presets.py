"""[Prepare] augmentation presets draw the references' distributions (hgpipe.data.augment).

Large samples, checked against the exact clamp ranges and against probabilities within
5 standard errors, so a correct sampler cannot fail by chance.
"""
import math

import numpy as np
import pytest

from hgpipe.config import load_config
from hgpipe.data.augment import PRESETS, sample_preset
from hgpipe.data.transforms import sample_augmentation

N = 60000
P_OUTSIDE_2SIGMA = math.erfc(2 / math.sqrt(2))   # P(|N(0,1)| > 2) = 0.0455
P_OUTSIDE_1SIGMA = math.erfc(1 / math.sqrt(2))   # P(|N(0,1)| > 1) = 0.3173


def _draw(preset, n=N, **kw):
    rng = np.random.RandomState(1234)
    draws = [sample_preset(rng, preset, **kw) for _ in range(n)]
    rotation = np.array([d[0] for d in draws])
    scale = np.array([d[1] for d in draws])
    flip = np.array([d[2] for d in draws])
    gains = np.array([d[3] for d in draws])
    return rotation, scale, flip, gains


def _near(fraction, p, n):
    return abs(fraction - p) <= 5 * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("name", ["newell", "bearpaw"])
def test_preset_distributions(name):
    preset = PRESETS[name]
    rotation, scale, flip, gains = _draw(name)
    # scale: the law and its exact clamp
    if name == "newell":      # s * 2^clamp(N(0,.25), -.5, .5)   (pose.lua:11,21)
        z, bound, p_clamped = np.log2(scale) / 0.25, 2.0, P_OUTSIDE_2SIGMA
        assert scale.min() >= 2 ** -0.5 - 1e-12 and scale.max() <= 2 ** 0.5 + 1e-12
    else:                     # clamp(1 + N(0,.25), .75, 1.25)    (mpii.py:94)
        z, bound, p_clamped = (scale - 1.0) / 0.25, 1.0, P_OUTSIDE_1SIGMA
        assert scale.min() >= 0.75 and scale.max() <= 1.25
    clamped = np.isclose(np.abs(z), bound, atol=1e-9).mean()
    assert _near(clamped, p_clamped, N)
    inner = z[np.abs(z) < bound - 1e-9]
    assert abs(inner.mean()) < 5 / math.sqrt(len(inner))
    # rotation: kept with the preset's probability, N(0,30) clamped at +-60
    rotated = rotation != 0
    assert _near(rotated.mean(), preset.rotation_prob, N)
    assert np.abs(rotation).max() <= 60.0
    assert _near(np.isclose(np.abs(rotation[rotated]), 60.0).mean(), P_OUTSIDE_2SIGMA,
                 rotated.sum())
    # flip with probability 0.5
    assert _near(flip.mean(), 0.5, N)
    # colour: three independent gains U(low, high)
    low, high = preset.color_low, preset.color_high
    assert gains.shape == (N, 3)
    assert gains.min() >= low and gains.max() < high
    assert gains.min() < low + 0.001 and gains.max() > high - 0.001
    for channel in range(3):
        u = (gains[:, channel] - low) / (high - low)
        assert abs(u.mean() - 0.5) < 5 * math.sqrt(1 / 12.0 / N)
        assert _near((u < 0.25).mean(), 0.25, N)
    assert abs(np.corrcoef(gains[:, 0], gains[:, 1])[0, 1]) < 5 / math.sqrt(N)


def test_presets_differ_where_the_references_differ():
    newell, bearpaw = PRESETS["newell"], PRESETS["bearpaw"]
    assert (newell.rotation_prob, bearpaw.rotation_prob) == (0.4, 0.6)
    assert (newell.color_low, newell.color_high) == (0.6, 1.4)
    assert (bearpaw.color_low, bearpaw.color_high) == (0.8, 1.2)


def test_flip_and_colour_switches_leave_them_out():
    rotation, scale, flip, gains = _draw("newell", n=2000, flip=False, color=False)
    assert not flip.any()
    assert (gains == 1.0).all()
    assert (rotation != 0).any() and (scale != 1.0).any()


def test_config_selects_the_preset_and_custom_is_unchanged():
    cfg = load_config(overrides=["Prepare.augmentation=newell"])
    rng = np.random.RandomState(7)
    augs = [sample_augmentation(rng, cfg["Prepare"]) for _ in range(4000)]
    gains = np.array([a.gains for a in augs])
    assert gains.min() < 0.7 and gains.max() > 1.3           # Newell's U(0.6, 1.4)
    assert max(a.scale for a in augs) > 1.3                   # 2^0.5 = 1.41 > bearpaw's 1.25
    # custom (the default): the individual keys, draw for draw as before presets existed
    custom = load_config()["Prepare"]
    rng_a, rng_b = np.random.RandomState(3), np.random.RandomState(3)
    for _ in range(50):
        aug = sample_augmentation(rng_a, custom)
        scale = float(np.clip(1.0 + rng_b.randn() * 0.25, 0.75, 1.25))
        rotation = float(np.clip(rng_b.randn() * 30.0, -60.0, 60.0))
        if rng_b.uniform() >= 0.6:
            rotation = 0.0
        flip = rng_b.uniform() < 0.5
        gains = tuple(rng_b.uniform(0.8, 1.2, size=3))
        assert aug == (rotation, scale, flip, gains)


def test_psh_preset_is_uniform_every_time_and_draws_no_colour():
    rotation, scale, flip, gains = _draw("psh")
    # dp.py: rotation (random()*2-1)*30 and scale random()*0.5+0.75 on every sample
    assert rotation.min() >= -30.0 and rotation.max() <= 30.0
    assert rotation.min() < -29.9 and rotation.max() > 29.9 and (rotation != 0).all()
    assert _near((np.abs(rotation) < 15.0).mean(), 0.5, N)
    assert scale.min() >= 0.75 and scale.max() <= 1.25
    assert _near((scale < 0.875).mean(), 0.25, N) and _near((scale > 1.125).mean(), 0.25, N)
    assert _near(flip.mean(), 0.5, N)
    assert (gains == 1.0).all()


def test_seed_preset_is_datagen_augment():
    """seed (datagen.py:331-338): `if random.choice([0,1])` rotate by
    `np.random.randint(-30, 30)`: an integer in -30..29, each value with probability
    0.5 / 60 (plus 0.5 for the unrotated 0); never a scale, flip or colour."""
    rotation, scale, flip, gains = _draw("seed", flip=True, color=True)
    assert np.array_equal(rotation, np.round(rotation))
    values, counts = np.unique(rotation, return_counts=True)
    assert values.tolist() == list(range(-30, 30))
    for value, count in zip(values, counts):
        p = 0.5 + 0.5 / 60 if value == 0 else 0.5 / 60
        assert _near(count / N, p, N), value
    assert (scale == 1.0).all() and not flip.any() and (gains == 1.0).all()


def test_seed_preset_on_the_device_draws_the_same_law():
    """The device's stateless draws of the seed preset (train/draws.py) give the same
    integers -30..29, uniform, kept with probability 0.5."""
    from hgpipe.tf_compat import import_tf
    from hgpipe.train.draws import preset_draws, uniform_draws
    tf = import_tf()
    n = 30000
    graph = tf.Graph()
    with graph.as_default():
        draws = preset_draws(uniform_draws(7, 3, n), PRESETS["seed"], flip=True)
        with tf.Session() as sess:
            rotation, scale, flipped = sess.run([draws.rotation, draws.scale, draws.flipped])
    assert np.array_equal(rotation, np.round(rotation))
    values, counts = np.unique(rotation, return_counts=True)
    assert values.tolist() == list(range(-30, 30))
    assert _near((rotation != 0).mean(), 0.5 * 59 / 60, n)
    for value, count in zip(values, counts):
        if value != 0:
            assert _near(count / n, 0.5 / 60, n), value
    assert np.allclose(scale, 1.0) and not flipped.any()
