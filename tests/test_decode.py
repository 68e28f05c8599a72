"""Heatmap decoding, flip-back and the heatmap -> crop -> image coordinate maps."""
import numpy as np
import pytest

from hgpipe.codec import (
    crop_to_heatmap, crop_to_image_coords, decode_heatmaps, flip_heatmaps, heatmap_to_crop,
    heatmaps_to_image_coords)
from hgpipe.data.transforms import invert_affine
from hgpipe.joints import FLIP_PERMUTATION, L_WRIST, NUM_JOINTS, R_WRIST

SIZE = 64


def render(coords, size=SIZE, sigma=1.0):
    """(N, J, 2) float positions -> (N, size, size, J) Gaussians peaking at 1."""
    grid = np.arange(size, dtype=np.float64)
    dx = grid[None, None, :] - coords[..., 0][..., None]      # (N, J, W)
    dy = grid[None, None, :] - coords[..., 1][..., None]      # (N, J, H)
    maps = np.exp(-(dy[..., :, None] ** 2 + dx[..., None, :] ** 2) / (2 * sigma ** 2))
    return np.moveaxis(maps, 1, -1)                          # (N, H, W, J)


def test_decode_within_a_quarter_pixel_and_better_than_argmax():
    rng = np.random.RandomState(0)
    truth = rng.uniform(3, SIZE - 4, size=(20, NUM_JOINTS, 2))
    coords, confidence = decode_heatmaps(render(truth))
    assert coords.shape == (20, NUM_JOINTS, 2) and coords.dtype == np.float64
    error = np.abs(coords - truth)
    assert error.max() <= 0.25 + 1e-9
    # The quarter step halves the mean error of the plain argmax (0.25 -> 0.125).
    argmax_error = np.abs(np.round(truth) - truth)
    assert error.mean() < 0.7 * argmax_error.mean()
    assert np.all(confidence > 0.6) and np.all(confidence <= 1.0)


def test_decode_exact_centres_and_axes():
    truth = np.zeros((1, NUM_JOINTS, 2))
    truth[0, :, 0] = np.arange(NUM_JOINTS) + 10.0  # x distinct from y: catches a swap
    truth[0, :, 1] = 40.0
    coords, confidence = decode_heatmaps(render(truth))
    np.testing.assert_array_equal(coords, truth)   # symmetric neighbours: no step
    np.testing.assert_allclose(confidence, 1.0)


def test_decode_uint8_heatmaps_without_wraparound():
    rng = np.random.RandomState(1)
    truth = rng.uniform(3, SIZE - 4, size=(8, NUM_JOINTS, 2))
    maps = render(truth)
    stored = np.round(maps * 255).astype(np.uint8)
    coords_u8, conf_u8 = decode_heatmaps(stored)
    coords_f, _ = decode_heatmaps(stored.astype(np.float32))
    np.testing.assert_array_equal(coords_u8, coords_f)
    assert np.abs(coords_u8 - truth).max() <= 0.26  # quantisation can flip near-ties
    assert conf_u8.max() <= 255.0 and conf_u8.dtype == np.float64


def test_decode_at_border_takes_no_step():
    truth = np.full((1, NUM_JOINTS, 2), 30.3)
    truth[0, 0] = (0.0, 30.3)          # on the left edge: no neighbour on one side
    truth[0, 1] = (SIZE - 1.0, 30.3)
    coords, _ = decode_heatmaps(render(truth))
    np.testing.assert_array_equal(coords[0, 0], (0.0, 30.0))
    np.testing.assert_array_equal(coords[0, 1], (SIZE - 1.0, 30.0))
    assert coords[0, 2, 1] == pytest.approx(30.25)


def test_flip_heatmaps_of_flipped_rendering_is_the_original():
    rng = np.random.RandomState(2)
    truth = rng.uniform(2, SIZE - 3, size=(3, NUM_JOINTS, 2))
    # What the network should output for the mirrored input: positions mirrored and
    # left/right labels swapped.
    mirrored = truth.copy()
    mirrored[..., 0] = SIZE - 1 - mirrored[..., 0]
    flipped_output = render(mirrored[:, list(FLIP_PERMUTATION)])
    np.testing.assert_allclose(flip_heatmaps(flipped_output), render(truth), atol=1e-12)
    # Channel-level check: the right wrist comes back from the left wrist's channel.
    back = flip_heatmaps(flipped_output)
    np.testing.assert_array_equal(back[..., R_WRIST], flipped_output[..., ::-1, L_WRIST])
    np.testing.assert_array_equal(flip_heatmaps(back), flipped_output)
    with pytest.raises(ValueError, match="16 joint channels"):
        flip_heatmaps(np.zeros((1, 4, 4, 14)))


def test_heatmap_crop_maps_follow_the_schema_and_invert():
    # stride 4: heatmap pixel 0 covers crop pixels 0..3, whose centre is 1.5.
    assert heatmap_to_crop(0.0, 256, 64) == 1.5
    assert heatmap_to_crop(63.0, 256, 64) == 253.5
    assert heatmap_to_crop(5.0, 64, 64) == 5.0
    rng = np.random.RandomState(3)
    points = rng.uniform(-5, 70, size=(4, NUM_JOINTS, 2))
    np.testing.assert_allclose(crop_to_heatmap(heatmap_to_crop(points, 256, 64), 256, 64),
                               points)


def test_crop_to_image_affine_and_its_inverse():
    rng = np.random.RandomState(4)
    n = 5
    angle = rng.uniform(-0.5, 0.5, n)
    scale = rng.uniform(0.5, 3.0, n)
    affine = np.zeros((n, 2, 3))
    affine[:, 0, 0], affine[:, 0, 1] = scale * np.cos(angle), -scale * np.sin(angle)
    affine[:, 1, 0], affine[:, 1, 1] = scale * np.sin(angle), scale * np.cos(angle)
    affine[:, :, 2] = rng.uniform(0, 800, (n, 2))
    crop = rng.uniform(0, 256, size=(n, NUM_JOINTS, 2))
    image = crop_to_image_coords(crop, affine)
    # Independent per-point reference: A @ [x, y, 1].
    homogeneous = np.concatenate([crop[1, 3], [1.0]])
    np.testing.assert_allclose(image[1, 3], affine[1] @ homogeneous)
    np.testing.assert_allclose(crop_to_image_coords(image, invert_affine(affine)), crop,
                               atol=1e-9)
    with pytest.raises(ValueError, match="affine"):
        crop_to_image_coords(crop, affine[:2])


def test_heatmaps_to_image_coords_end_to_end():
    truth_hm = np.full((1, NUM_JOINTS, 2), 20.0)
    truth_hm[0, :, 0] += np.arange(NUM_JOINTS)
    # crop_to_image: scale 2 and shift (100, 50), as a crop of a larger image would.
    affine = np.array([[[2.0, 0.0, 100.0], [0.0, 2.0, 50.0]]])
    image, _ = heatmaps_to_image_coords(render(truth_hm), affine, 256)
    expected = (4 * truth_hm + 1.5) * 2 + np.array([100.0, 50.0])
    np.testing.assert_allclose(image, expected)
