"""Crop geometry, augmentation and heatmaps on synthetic images with known answers."""
import numpy as np
import pytest

from hgpipe.codec import (crop_to_heatmap, heatmap_to_crop, quantize_heatmaps,
                          render_heatmaps, render_quantized_heatmaps)
from hgpipe.config import load_config
from hgpipe.data.records import make_record
from hgpipe.data.transforms import (PLAIN, Augmentation, apply_affine, bgr_to_rgb_with_gains,
                                    hourglass_box, make_sample, person_rng,
                                    sample_augmentation)
from hgpipe.joints import FLIP_PERMUTATION


def _dot_image(point_1based, shape=(300, 400)):
    image = np.zeros(shape + (3,), np.uint8)
    image[point_1based[1] - 1, point_1based[0] - 1] = (10, 200, 255)  # BGR
    return image


def _centroid(channel):
    yy, xx = np.mgrid[:channel.shape[0], :channel.shape[1]]
    w = channel.astype(np.float64) / channel.sum()
    return np.array([(w * xx).sum(), (w * yy).sum()])


@pytest.mark.parametrize("aug", [PLAIN, Augmentation(25.0, 0.8, False),
                                 Augmentation(-40.0, 1.2, True)])
def test_joint_lands_where_its_pixel_lands(aug):
    point = (231, 160)
    record = make_record("x.jpg", np.tile(point, (16, 1)), np.ones(16, bool),
                         center=(210, 150), scale=0.6)
    sample = make_sample(_dot_image(point), record, aug, 256, 64, 1.0)
    crop_joint = heatmap_to_crop(sample["joints"][0].astype(np.float64), 256, 64)
    # the dot was blurred by bilinear warping: its intensity centroid is where it went
    assert np.allclose(_centroid(sample["images"][..., 0]), crop_joint, atol=0.1)
    # BGR -> RGB: the red channel (255) is last in BGR, first in RGB
    assert sample["images"][..., 0].max() > sample["images"][..., 2].max()


def test_crop_to_image_inverts_exactly_and_flip_swaps_joints():
    rng = np.random.RandomState(3)
    joints = rng.uniform(80, 300, size=(16, 2))
    record = make_record("x.jpg", joints, np.ones(16, bool), center=(190, 190), scale=1.6)
    image = rng.randint(0, 255, size=(400, 400, 3)).astype(np.uint8)
    aug = Augmentation(17.0, 1.1, True)
    sample = make_sample(image, record, aug, 256, 64, 1.0)
    back = apply_affine(sample["crop_to_image"],
                        heatmap_to_crop(sample["joints"].astype(np.float64), 256, 64))
    expected = joints[list(FLIP_PERMUTATION)]
    inside = sample["weights"] > 0
    assert inside.sum() >= 12
    assert np.abs(back - expected)[inside].max() < 0.01


def test_hourglass_box_applies_the_paper_convention_once():
    center, scale = hourglass_box((100.0, 200.0), 2.0)
    assert np.allclose(center, (100.0, 230.0)) and scale == pytest.approx(2.5)


def test_heatmaps_peak_at_float_joint_and_zero_without_weight():
    joints = np.array([[10.3, 20.7]] * 16)
    weights = np.ones(16)
    weights[5] = 0
    maps = render_heatmaps(joints, weights, 64, 1.0)
    assert maps.shape == (64, 64, 16)
    assert not maps[..., 5].any()
    y, x = np.unravel_index(np.argmax(maps[..., 0]), (64, 64))
    assert (x, y) == (10, 21)
    # exact value of an unnormalised Gaussian at a grid point
    assert maps[21, 10, 0] == pytest.approx(np.exp(-(0.3 ** 2 + 0.3 ** 2) / 2), rel=1e-6)


@pytest.mark.parametrize("size,sigma", [(64, 1.0), (16, 2.0), (32, 0.5), (64, 1.7)])
def test_windowed_quantized_heatmaps_equal_the_full_render_byte_for_byte(size, sigma):
    rng = np.random.RandomState(size + int(10 * sigma))
    for _ in range(300):
        joints = rng.uniform(-6, size + 6, (16, 2))   # some outside, some on the border
        weights = (rng.rand(16) > 0.2).astype(np.float32)
        full = quantize_heatmaps(render_heatmaps(joints, weights, size, sigma), 255.0)
        out = np.full((size, size, 16), 7, np.uint8)   # overwritten, not added to
        windowed = render_quantized_heatmaps(joints, weights, size, sigma, 255.0, out)
        assert windowed is out and np.array_equal(windowed, full)


def test_sample_written_in_place_equals_the_allocated_one():
    record = make_record("a.jpg", np.tile([[150.0, 140.0]], (16, 1)) + np.arange(16)[:, None],
                         np.ones(16, bool), center=(150.0, 150.0), scale=1.0)
    image = np.random.RandomState(0).randint(0, 255, (300, 300, 3)).astype(np.uint8)
    aug = Augmentation(10.0, 1.1, True, (0.9, 1.0, 1.2))
    plain = make_sample(image, record, aug, 64, 16, 1.0)
    out = {"images": np.zeros((64, 64, 3), np.uint8), "heatmaps": np.ones((16, 16, 16), np.uint8)}
    direct = make_sample(image, record, aug, 64, 16, 1.0, heatmap_scale=255.0, out=out)
    assert direct["images"] is out["images"] and direct["heatmaps"] is out["heatmaps"]
    assert np.array_equal(out["images"], plain["images"])
    assert np.array_equal(out["heatmaps"], quantize_heatmaps(plain["heatmaps"], 255.0))


def test_out_of_crop_joint_gets_weight_zero():
    joints = np.tile([[150.0, 150.0]], (16, 1))
    joints[3] = (1000.0, 150.0)   # far right of the crop
    annotated = np.ones(16, bool)
    annotated[7] = False
    record = make_record("x.jpg", joints, annotated, center=(150, 150), scale=1.0)
    sample = make_sample(np.zeros((300, 300, 3), np.uint8), record, PLAIN, 256, 64, 1.0)
    assert sample["weights"][3] == 0 and sample["weights"][7] == 0
    assert sample["weights"].sum() == 14
    assert not sample["heatmaps"][..., 3].any()


def test_coordinate_frames_round_trip():
    points = np.random.RandomState(0).uniform(-5, 70, size=(10, 2))
    assert np.allclose(crop_to_heatmap(heatmap_to_crop(points, 256, 64), 256, 64), points)
    # the centre of heatmap pixel 0 is the centre of crop pixels 0..3
    assert np.allclose(heatmap_to_crop([[0.0, 0.0]], 256, 64), 1.5)


def test_augmentation_ranges_and_determinism():
    prep = load_config()["Prepare"]
    draws = [sample_augmentation(person_rng(0, "a.jpg", i, v), prep)
             for i in range(50) for v in range(8)]
    rotations = np.array([d.rotation for d in draws])
    scales = np.array([d.scale for d in draws])
    assert np.all(np.abs(rotations) <= 60) and np.all((scales >= 0.75) & (scales <= 1.25))
    assert 0.25 < np.mean(rotations == 0) < 0.55          # rotated with probability 0.6
    assert 0.35 < np.mean([d.flip for d in draws]) < 0.65
    gains = np.array([d.gains for d in draws])
    assert gains.min() >= 0.8 and gains.max() <= 1.2
    again = sample_augmentation(person_rng(0, "a.jpg", 3, 2), prep)
    assert again == draws[3 * 8 + 2]
    assert sample_augmentation(person_rng(1, "a.jpg", 3, 2), prep) != again


def test_colour_transform_swaps_channels_and_saturates():
    crop = np.zeros((4, 4, 3), np.uint8)
    crop[..., 0], crop[..., 1], crop[..., 2] = 50, 100, 200   # BGR
    assert bgr_to_rgb_with_gains(crop)[0, 0].tolist() == [200, 100, 50]
    out = bgr_to_rgb_with_gains(crop, (1.2, 1.0, 0.5))
    assert out[0, 0].tolist() == [240, 100, 25]
    bright = np.full((2, 2, 3), 250, np.uint8)
    assert bgr_to_rgb_with_gains(bright, (1.2, 1, 1))[0, 0, 0] == 255



def test_reduced_decode_gives_the_same_crop(tmp_path):
    """prepare decodes big images at 1/2..1/8 size when every crop shrinks them anyway:
    the crop must be the same picture, in the same place."""
    import cv2
    from hgpipe.data.images import decode_image
    from hgpipe.data.transforms import crop_zoom, decode_reduction

    rng = np.random.RandomState(2)
    image = cv2.GaussianBlur(rng.randint(0, 255, (900, 1200, 3)).astype(np.uint8), (0, 0), 4)
    cv2.circle(image, (700, 400), 9, (255, 255, 255), -1)   # 0-based centre (700, 400)
    path = str(tmp_path / "big.jpg")
    cv2.imwrite(path, image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    record = make_record("big.jpg", np.tile([701.0, 401.0], (16, 1)), np.ones(16, bool),
                         center=(650, 380), scale=4.0)
    augs = [PLAIN, Augmentation(20.0, 0.9, True)]
    reduction = decode_reduction([crop_zoom(record, a, 256) for a in augs])
    assert reduction == 2
    full, small = decode_image(path), decode_image(path, reduction)
    assert small.shape[:2] == (450, 600)
    for aug in augs:
        a = make_sample(full, record, aug, 256, 64, 1.0)
        b = make_sample(small, record, aug, 256, 64, 1.0, reduction)
        assert np.abs(a["images"].astype(int) - b["images"].astype(int)).mean() < 3.0
        joint = heatmap_to_crop(a["joints"][0].astype(np.float64), 256, 64)
        for sample in (a, b):
            disc = sample["images"][..., 1].astype(np.float64)
            disc = np.where(disc > 200, disc, 0)
            assert np.allclose(_centroid(disc), joint, atol=0.35)
    assert decode_reduction([0.05]) == 8 and decode_reduction([0.6]) == 1
