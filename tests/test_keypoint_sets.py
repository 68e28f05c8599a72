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


# ------------------------------------------------------------------------ prepare
import json  # noqa: E402
import os  # noqa: E402

import h5py  # noqa: E402
import pytest  # noqa: E402

from conftest import make_synthetic_keypoint_records  # noqa: E402
from hgpipe.codec import heatmap_to_crop  # noqa: E402
from hgpipe.config import load_config  # noqa: E402
from hgpipe.data import schema  # noqa: E402
from hgpipe.data.prepare import PrepareError, prepare_records  # noqa: E402
from hgpipe.data.shards import ShardError, load_manifest, shard_paths  # noqa: E402
from hgpipe.data.transforms import apply_affine  # noqa: E402

TINY = ["DataSetHG.img_size=64", "DataSetHG.hm_size=16", "Prepare.variants=4",
        "Prepare.shard_size=8"]

# 16 joints as MPII has, but other pairs: a flip that used MPII's permutation would pass
# every shape check and swap the wrong joints
ODD16 = joints.from_coco_category({
    "name": "odd16",
    "keypoints": ["nose", "left_a", "right_a", "tail", "left_b", "right_b", "left_c",
                  "mid_1", "right_c", "mid_2", "left_d", "mid_3", "right_d", "mid_4",
                  "left_e", "right_e"],
    "skeleton": [[1, 2], [2, 3], [1, 3], [4, 8], [5, 6], [7, 9]]},
    sigmas=[0.5] * 16)


def _read(out, split):
    arrays = {}
    for path in shard_paths(out, split):
        with h5py.File(path, "r") as shard:
            for name in shard:
                arrays.setdefault(name, []).append(shard[name][...])
    return {k: np.concatenate(v) for k, v in arrays.items()}


def _prepare(tmp_path, keypoints, n_images=6, **kwargs):
    root = str(tmp_path / ("data-" + keypoints.name))
    records = make_synthetic_keypoint_records(root, keypoints, n_images)
    out = str(tmp_path / ("shards-" + keypoints.name))
    manifest = prepare_records(load_config(None, TINY), records, root, out,
                               echo=lambda *a, **k: None, **kwargs)
    return records, out, manifest


def test_odd16_differs_from_mpii_pairs():
    assert ODD16.num_joints == joints.MPII.num_joints
    assert ODD16.flip_permutation != joints.MPII.flip_permutation
    assert ODD16.flip_permutation[1] == 2 and ODD16.flip_permutation[14] == 15


@pytest.mark.parametrize("keypoints", [joints.LSP, ODD16], ids=lambda s: s.name)
def test_prepare_sizes_and_flips_by_the_records_set(tmp_path, keypoints):
    records, out, manifest = _prepare(tmp_path, keypoints)
    k = keypoints.num_joints
    assert schema.keypoints_of(load_manifest(out)) == keypoints
    assert manifest["keypoints"]["name"] == keypoints.name
    by_name = {r.image_name: r for r in records}
    train = _read(out, "train")
    assert train["heatmaps"].shape[1:] == (16, 16, k) and train["joints"].shape[1:] == (k, 2)
    assert train["flipped"].any() and not train["flipped"].all()
    perm = list(keypoints.flip_permutation)
    for i in range(len(train["images"])):
        record = by_name[train["image_name"][i].decode()]
        expected = record.joints[perm] if train["flipped"][i] else record.joints
        seen = train["weights"][i] > 0
        back = apply_affine(train["crop_to_image"][i],
                            heatmap_to_crop(train["joints"][i].astype(np.float64), 64, 16))
        assert np.abs(back - expected)[seen].max() < 0.01
        # the unannotated joint moves with its identity
        want_annotated = record.annotated[perm] if train["flipped"][i] else record.annotated
        assert not np.any(seen & ~want_annotated)
    val = _read(out, "val")
    assert val["gt_joints"].shape[1:] == (k, 2)
    if keypoints.metric == "oks":   # what OKS AP needs rides in the val shards
        want = [r for r in records if r.is_validation]
        assert val["area"].tolist() == [r.area for r in want]
        assert val["image_id"].tolist() == [r.image_id for r in want]
        assert val["annotation_id"].tolist() == [r.annotation_id for r in want]
    else:
        assert "area" not in val


def test_prepare_refuses_two_sets_in_one_folder(tmp_path):
    root = str(tmp_path / "data")
    records = make_synthetic_keypoint_records(root, joints.LSP, 3)
    records.append(records[0]._replace(
        keypoints=joints.MPII, joints=np.ones((16, 2)), annotated=np.ones(16, bool),
        visible=np.ones(16, np.int8), source="other.json:4"))
    with pytest.raises(PrepareError) as info:
        prepare_records(load_config(None, TINY), records, root, str(tmp_path / "out"),
                        annotation_files=["lsp.mat", "other.json"], echo=lambda *a, **k: None)
    text = str(info.value)
    assert "lsp.mat + other.json" in text and "lsp, then mpii" in text
    assert "other.json:4" in text and "\n" not in text


def test_manifest_without_keypoints_is_mpii_and_a_bad_one_is_one_line(tmp_path):
    _records, out, _manifest = _prepare(tmp_path, joints.LSP, n_images=3)
    path = os.path.join(out, "manifest.json")
    with open(path) as handle:
        manifest = json.load(handle)
    del manifest["keypoints"]
    assert schema.keypoints_of(manifest) is joints.MPII
    manifest["keypoints"] = {"name": "x", "joint_names": ["a", "a"], "flip_pairs": [],
                             "skeleton": []}
    with open(path, "w") as handle:
        json.dump(manifest, handle)
    with pytest.raises(ShardError) as info:
        load_manifest(out)
    assert str(info.value).startswith(path) and "joint names repeat" in str(info.value)


@pytest.mark.parametrize("field, value, words", [
    ("flip_pairs", [[0, float("inf")]], "is not an integer"),   # OverflowError in int()
    ("flip_pairs", [[0, 1.5]], "is not an integer"),            # int() would round it
    ("skeleton", [["0", 1]], "is not an integer"),
    ("torso", [0, True], "is not an integer"),
    ("oks_sigmas", [float("inf")] * 17, "positive, finite sigma"),
])
def test_a_recorded_set_with_non_integer_ids_or_infinite_sigmas_is_refused(field, value,
                                                                           words):
    raw = json.loads(joints.COCO.to_json())
    assert joints.KeypointSet.from_json(json.dumps(raw)) == joints.COCO
    raw[field] = value
    if field == "torso":
        raw["metric"] = "pck_torso"
    with pytest.raises(ValueError) as info:
        joints.KeypointSet.from_json(json.dumps(raw))
    assert words in str(info.value)
