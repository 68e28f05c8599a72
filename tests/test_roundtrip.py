"""joint -> crop -> heatmap -> decode -> original pixels: the frames are consistent.

The quarter-pixel decode is exact only when a joint sits on a heatmap pixel centre (the
Gaussian is then symmetric and no step is taken), so the test places the joints there:
any error left is the geometry's (the frames, the flip, the rotation), not the decoder's.
"""
import numpy as np
import pytest

from hgpipe.codec import heatmap_to_crop, heatmaps_to_image_coords
from hgpipe.data.records import make_record
from hgpipe.data.transforms import (PLAIN, Augmentation, apply_affine, hourglass_box,
                                    image_to_crop_affine, make_sample)
from hgpipe.joints import FLIP_PERMUTATION


@pytest.mark.parametrize("size,hm", [(256, 64), (64, 16)])
@pytest.mark.parametrize("aug", [PLAIN, Augmentation(30.0, 1.2, True, (0.9, 1.1, 1.0)),
                                 Augmentation(-45.0, 0.8, False)])
def test_joint_heatmap_decode_round_trip_within_a_tenth_of_a_pixel(size, hm, aug):
    rng = np.random.RandomState(11)
    center, scale = np.array([400.0, 300.0]), 1.7
    # joints on heatmap pixel centres of this very crop, expressed in image pixels
    cells = rng.randint(3, hm - 3, size=(16, 2)).astype(np.float64)
    to_crop = image_to_crop_affine(*hourglass_box(center, scale), input_size=size, aug=aug)
    full = np.vstack([to_crop, [0, 0, 1]])
    to_image = np.linalg.inv(full)[:2]
    image_joints = apply_affine(to_image, heatmap_to_crop(cells, size, hm))
    if aug.flip:  # crop joint k is the original joint FLIP_PERMUTATION[k]
        image_joints = image_joints[list(FLIP_PERMUTATION)]
    record = make_record("x.jpg", image_joints, np.ones(16, bool), center=center, scale=scale)
    sample = make_sample(np.zeros((700, 900, 3), np.uint8), record, aug, size, hm, 1.0)
    assert np.all(sample["weights"] == 1)
    decoded, _ = heatmaps_to_image_coords(sample["heatmaps"][None].astype(np.float32),
                                          sample["crop_to_image"][None], size)
    expected = image_joints[list(FLIP_PERMUTATION)] if aug.flip else image_joints
    assert np.abs(decoded[0] - expected).max() < 0.1
