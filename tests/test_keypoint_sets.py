"""Keypoint sets as data, the generic plumbing: records, shards, training, eval, predict
and drawing follow the records' KeypointSet; MPII stays the default everywhere."""
import math

import numpy as np

from hgpipe import joints
from hgpipe.data.records import make_record


def test_record_oks_fields_default_and_carry():
    plain = make_record("a.jpg", np.ones((16, 2)), np.ones(16), center=(5, 5), scale=1)
    assert plain.keypoints is joints.MPII
    assert math.isnan(plain.area) and plain.image_id == -1 and plain.annotation_id == -1
    coco = make_record("b.jpg", np.ones((17, 2)), np.ones(17), center=(5, 5), scale=1,
                       keypoints=joints.COCO, area=1234.5, image_id=7, annotation_id=99)
    assert (coco.area, coco.image_id, coco.annotation_id) == (1234.5, 7, 99)
    assert coco.joints.shape == (17, 2) and coco.problem() is None
