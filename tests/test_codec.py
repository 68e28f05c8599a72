"""The codec's own contract: frames, the cv2 fold, encode, flip (see hgpipe/codec.py)."""
import cv2
import numpy as np

from hgpipe import codec
from hgpipe.data.transforms import (Augmentation, apply_affine, image_to_crop_affine,
                                    warp_crop)
from hgpipe.joints import FLIP_PERMUTATION, L_WRIST, NUM_JOINTS, R_WRIST


def test_stride_four_pixel_centre_convention():
    c = codec.HeatmapCodec(256, 64, sigma=1.0)
    assert c.stride == 4.0
    np.testing.assert_allclose(c.heatmap_to_crop([[0.0, 10.0]]), [[1.5, 41.5]])
    np.testing.assert_allclose(c.crop_to_heatmap([[1.5, 41.5]]), [[0.0, 10.0]])


def test_cv2_affine_puts_a_1_based_pixel_where_the_affine_says():
    """A single bright pixel at 1-based (x, y) lands at apply_affine(to_crop, (x, y)),
    from the full-size array and from one decoded 2x smaller."""
    image = np.zeros((200, 300, 3), np.uint8)
    x, y = 121, 81  # 1-based
    image[y - 2:y + 2, x - 2:x + 2] = 255  # 4x4 block centred on 1-based (x + 0.5, y + 0.5)
    to_crop = image_to_crop_affine(np.array([150.0, 100.0]), 0.5, 100)  # 1:1 zoom
    for reduction in (1, 2):
        source = image if reduction == 1 else cv2.resize(image, (150, 100),
                                                         interpolation=cv2.INTER_AREA)
        crop = warp_crop(source, codec.cv2_affine(to_crop, reduction), 100)[..., 0]
        yy, xx = np.mgrid[:100, :100]
        w = crop.astype(np.float64) / crop.sum()
        centroid = [(w * xx).sum(), (w * yy).sum()]
        np.testing.assert_allclose(centroid, apply_affine(to_crop, [x + 0.5, y + 0.5]),
                                   atol=0.05)


def test_cv2_affine_at_full_size_is_the_plain_1_based_shift():
    to_crop = image_to_crop_affine(np.array([90.0, 60.0]), 0.8, 64, Augmentation(20, 1.1))
    folded = codec.cv2_affine(to_crop)
    # 0-based p0 = p1 - 1: folded @ p0 == to_crop @ (p0 + 1)
    p0 = np.array([[3.0, 7.0], [50.5, 20.25]])
    np.testing.assert_allclose(apply_affine(folded, p0), apply_affine(to_crop, p0 + 1.0))


def test_encode_weights_and_peaks():
    c = codec.HeatmapCodec(64, 16, sigma=1.0)
    joints = np.tile([[30.0, 22.0]], (NUM_JOINTS, 1))
    annotated = np.ones(NUM_JOINTS, bool)
    annotated[3] = False
    joints[5] = [70.0, 10.0]     # outside the crop -> outside the heatmap
    joints[6] = [-0.5, 10.0]     # heatmap x = -0.5: the first pixel's outer edge, inside
    heatmaps, weights, joints_hm = c.encode(joints, annotated)
    assert heatmaps.shape == (16, 16, NUM_JOINTS) and heatmaps.dtype == np.float32
    expected = np.ones(NUM_JOINTS, np.float32)
    expected[[3, 5]] = 0
    np.testing.assert_array_equal(weights, expected)
    np.testing.assert_allclose(joints_hm[0], [(30 - 1.5) / 4, (22 - 1.5) / 4])
    assert not heatmaps[..., 3].any() and not heatmaps[..., 5].any()
    peak = np.unravel_index(np.argmax(heatmaps[..., 0]), (16, 16))
    assert peak == (5, 7)  # rows y = 5.125 -> 5, columns x = 7.125 -> 7
    stored = codec.quantize_heatmaps(heatmaps)
    np.testing.assert_allclose(codec.dequantize_heatmaps(stored), heatmaps, atol=0.5 / 255)


def test_flip_joints_matches_the_flipped_crop_affine():
    """Mirroring crop joints with the codec equals cropping with aug.flip."""
    rng = np.random.RandomState(0)
    image_joints = rng.uniform(40, 160, size=(NUM_JOINTS, 2))
    centre = np.array([100.0, 100.0])
    plain = apply_affine(image_to_crop_affine(centre, 0.6, 64), image_joints)
    flipped = apply_affine(image_to_crop_affine(centre, 0.6, 64, Augmentation(flip=True)),
                           image_joints)
    np.testing.assert_allclose(codec.flip_joints(plain, 64),
                               flipped[list(FLIP_PERMUTATION)], atol=1e-9)
    np.testing.assert_allclose(codec.flip_joints(codec.flip_joints(plain, 64), 64), plain,
                               atol=1e-9)


def test_flip_heatmaps_agrees_with_flip_joints_in_heatmap_pixels():
    c = codec.HeatmapCodec(64, 16, sigma=1.0)
    joints_hm = np.tile([[3.0, 6.0]], (NUM_JOINTS, 1))
    joints_hm[R_WRIST] = [11.0, 2.0]
    weights = np.ones(NUM_JOINTS, np.float32)
    maps = codec.render_heatmaps(joints_hm, weights, 16, 1.0)
    mirrored = codec.flip_heatmaps(maps[None])
    coords, _ = c.decode(mirrored)
    np.testing.assert_allclose(coords[0], codec.flip_joints(joints_hm, 16))
    np.testing.assert_allclose(coords[0, L_WRIST], [4.0, 2.0])
    np.testing.assert_array_equal(codec.swap_left_right(np.arange(NUM_JOINTS)),
                                  FLIP_PERMUTATION)
    images = np.arange(2 * 3 * 4 * 3).reshape(2, 3, 4, 3)
    np.testing.assert_array_equal(codec.flip_images(images)[:, :, 0], images[:, :, 3])
