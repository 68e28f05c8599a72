"""The seed's data pipeline (wbenbihi/hourglasstensorlfow 356e063 datagen.py) as the
seed_4x256 recipe's [Prepare] settings: its crop and its targets, against numpy versions
of the seed's own formulas written here."""
import math
import os

import numpy as np
import pytest

from hgpipe.config import load_config
from hgpipe.data.records import make_record
from hgpipe.data.transforms import PLAIN, Augmentation, make_sample, seed_box

CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "configs", "seed_4x256.cfg")


def _record(x_range, y_range):
    """16 joints spread over the given box (corners included), all annotated."""
    xs = np.linspace(x_range[0], x_range[1], 16)
    ys = np.linspace(y_range[0], y_range[1], 16)[::-1]
    joints = np.stack([xs, ys], axis=1)
    joints[3] = (x_range[0], y_range[0])
    joints[12] = (x_range[1], y_range[1])
    return make_record("x.jpg", joints, np.ones(16, bool), center=joints.mean(0), scale=1.0)


def test_seed_box_of_the_seeds_readme_row():
    """README.md's dataset row 055906773.jpgA, box 391 195 596 567 (its joints' box) in a
    1280 x 720 image, by hand from datagen.py:264-271: +int(0.2*205) = 41 and
    +int(0.2*372) = 74 -> [350, 121, 637, 641], inside the image; new_w 287, new_h 520;
    centre (350 + 143, 121 + 260) = (493, 381); side 520: array pixels 233..752 x
    121..640, 1-based centre (493.5, 381.5), scale 520 / 200."""
    joints = np.array([[391, 195], [596, 567]] + [[500, 300]] * 14, np.float64)
    centre, scale = seed_box(joints, np.ones(16, bool), 1280, 720)
    assert centre.tolist() == [493.5, 381.5] and scale == pytest.approx(2.6)
    # a joint not annotated does not count in the box
    annotated = np.ones(16, bool)
    joints[5] = (1, 1)
    annotated[5] = False
    assert seed_box(joints, annotated, 1280, 720)[0].tolist() == [493.5, 381.5]


def test_seed_box_at_the_image_border():
    """Joints x 10..110, y 100..500 in a 400 x 600 image: the margins (20, 80) are clamped
    at x = 0 first (:265-268): [0, 20, 130, 580]; new_w 130, new_h 560, centre
    (65, 300), side 560."""
    centre, scale = seed_box(_record((10, 110), (100, 500)).joints, np.ones(16, bool),
                             400, 600)
    assert centre.tolist() == [65.5, 300.5] and scale == pytest.approx(2.8)
    # clamped at the bottom too: y 100..590 + int(98) -> [2, 599]; new_h 597 (odd): the
    # seed's slice is 2 * (597 // 2) = 596 pixels
    centre, scale = seed_box(_record((10, 110), (100, 590)).joints, np.ones(16, bool),
                             400, 600)
    assert centre.tolist() == [65.5, 300.5] and scale == pytest.approx(2.98)


def _seed_crop(image, joints, width, height, boxp=0.2):
    """datagen.py _crop_data + _crop_img (:249-298) for a box taller than wide, as the
    seed runs it (the dataset box is the joints' box)."""
    x0, y0 = joints.min(0).astype(int)
    x1, y1 = joints.max(0).astype(int)
    box = [x0 - int(boxp * (x1 - x0)), y0 - int(boxp * (y1 - y0)),
           x1 + int(boxp * (x1 - x0)), y1 + int(boxp * (y1 - y0))]
    box = [max(box[0], 0), max(box[1], 0), min(box[2], width - 1), min(box[3], height - 1)]
    new_h, new_w = box[3] - box[1], box[2] - box[0]
    cx, cy = box[0] + new_w // 2, box[1] + new_h // 2
    assert new_h > new_w
    pad_left = max(0, -(cx - new_h // 2))
    pad_right = max(0, cx + new_h // 2 - width) if cx + new_h // 2 > width - 1 else 0
    padded = np.pad(image, [[0, 0], [pad_left, pad_right], [0, 0]], mode="constant")
    cx += pad_left
    half = new_h // 2
    return padded[cy - half:cy + half, cx - half:cx + half], (cx - pad_left - half,
                                                              cy - half, new_h)


@pytest.mark.parametrize("x_range", [(100, 200), (10, 110)])
def test_seed_crop_pixels_equal_the_seeds_slice(x_range):
    """At a side of 256 image pixels (no resize) the crop is the seed's padded slice,
    pixel for pixel, inside the image and where it pads with zeros (x 10..110)."""
    rng = np.random.RandomState(0)
    image = rng.randint(0, 256, (300, 400, 3)).astype(np.uint8)
    record = _record(x_range, (40, 224))     # 184 + 2 * int(36.8) = 256 rows
    expected, _ = _seed_crop(image, record.joints, 400, 300)
    assert expected.shape == (256, 256, 3)
    sample = make_sample(image, record, PLAIN, 256, 64, 1.0, crop="seed_box")
    assert np.array_equal(sample["images"], expected[:, :, ::-1])   # BGR -> RGB
    if x_range[0] == 10:
        assert (sample["images"][:, :63] == 0).all()


def _seed_maps(centres, size=64, fwhm=3.0):
    """datagen.py:221-229 _makeGaussian over the whole map, one map per joint."""
    x = np.arange(0, size, 1, float)
    y = np.arange(0, size, 1, float)[:, np.newaxis]
    return np.stack([np.exp(-4 * np.log(2) * ((x - cx) ** 2 + (y - cy) ** 2) / fwhm ** 2)
                     for cx, cy in centres], axis=-1)


def test_seed_recipe_targets_are_the_seeds_gaussians():
    """The recipe's target settings (FWHM 3 -> sigma 3 / (2 sqrt(2 ln 2)), whole map,
    pixel centres) give the seed's _makeGaussian maps (datagen.py:229, 243) at hgpipe's
    integer centres; those are the seed's int((x - start) * 64 / L) (:328) except where
    its fraction is below 32 / L, where hgpipe's is one pixel lower (the seed reads MPII's
    1-based numbers as 0-based indices and truncates in a corner frame)."""
    cfg = load_config(CONFIG)["Prepare"]
    sigma = cfg["sigma"]
    assert sigma == pytest.approx(3 / (2 * math.sqrt(2 * math.log(2))), rel=1e-12)
    assert sigma == pytest.approx(1.274, abs=5e-4)
    assert (cfg["gaussian_centre"], cfg["gaussian_window"], cfg["crop"]) == (
        "pixel", 0, "seed_box")
    rng = np.random.RandomState(3)
    image = rng.randint(0, 256, (300, 400, 3)).astype(np.uint8)
    record = _record((100, 200), (40, 224))
    # float positions (MPII has some), so that both sides of the 32 / L band occur
    inner = [j for j in range(16) if j not in (3, 12)]     # 3, 12: the box's corners
    record.joints[inner] = rng.uniform((101, 41), (199, 223), (14, 2))
    _, (start_x, start_y, side) = _seed_crop(image, record.joints, 400, 300)
    sample = make_sample(image, record, PLAIN, 256, 64, sigma, crop="seed_box",
                         centre=cfg["gaussian_centre"], window=cfg["gaussian_window"])
    heat = sample["heatmaps"]
    got = np.array([np.unravel_index(np.argmax(heat[..., j]), (64, 64))[::-1]
                    for j in range(16)])
    seed_value = (record.joints - [start_x, start_y]) * 64 / (side + 1e-7)
    seed_centre = seed_value.astype(np.int32)
    np.testing.assert_allclose(heat, _seed_maps(got), atol=1e-6)
    band = (seed_value - np.floor(seed_value)) < 32.0 / side
    assert np.array_equal(got[~band], seed_centre[~band])
    assert np.array_equal(got[band], seed_centre[band] - 1)
    assert (~band).sum() >= 16 and band.sum() >= 1   # both cases are exercised


def test_rotated_seed_crop_turns_about_the_crop_centre():
    """The preset's rotation (datagen.py:336, skimage rotate about the crop's centre,
    counter-clockwise) on the seed box: a joint at the crop centre stays there."""
    image = np.zeros((300, 400, 3), np.uint8)
    record = _record((100, 200), (40, 224))
    record.joints[7] = (150.5, 132.5)     # the box's 1-based centre
    sample = make_sample(image, record, Augmentation(29.0, 1.0, False), 256, 64, 1.0,
                         crop="seed_box")
    np.testing.assert_allclose(sample["joints"][7], (31.5, 31.5), atol=1e-9)

