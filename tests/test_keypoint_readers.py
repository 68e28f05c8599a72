"""Readers of the keypoint sets that are not MPII: LSP's joints.mat (both layouts) and
COCO-format keypoint files, to records of the right set, boxes, split and skip reasons;
bad files are one line naming the file."""
import json
import os
import re
import struct

import cv2
import numpy as np
import pytest
import scipy.io

from conftest import cli_runner
from hgpipe.cli import main
from hgpipe.data.readers import AnnotationError, read_annotation_files, read_annotations
from hgpipe.data.readers.lsp_mat import TRAIN_IMAGES
from hgpipe.data.transforms import hourglass_box
from hgpipe.joints import COCO, LSP

pytest.importorskip("pycocotools")

# An upright LSP person (joints.mat order, 0-based ids of hgpipe.joints.LSP): ankles at
# the bottom, head top at the top; 150 px tall, 60 px wide.
PERSON = np.array([
    [40, 170], [42, 130], [45, 95], [65, 95], [68, 130], [70, 170],   # legs, r then l
    [20, 100], [28, 70], [38, 45], [72, 45], [82, 70], [90, 100],     # arms, r then l
    [55, 40], [55, 20]], dtype=np.float64)                           # neck, head top


def _lsp_original(xy, occluded):
    """joints.mat of the original LSP: 3 x 14 x N, row 3 = 1 where occluded."""
    n = len(xy)
    joints = np.zeros((3, 14, n))
    joints[0], joints[1] = xy[:, :, 0].T, xy[:, :, 1].T
    joints[2] = np.asarray(occluded, dtype=np.float64).T
    return joints


def _lsp_extended(xy, visible):
    """joints.mat of LSP extended: 14 x 3 x N, column 3 = 1 where visible."""
    joints = np.zeros((14, 3, len(xy)))
    joints[:, 0], joints[:, 1] = xy[:, :, 0].T, xy[:, :, 1].T
    joints[:, 2] = np.asarray(visible, dtype=np.float64).T
    return joints


def _save(tmp_path, name, **variables):
    path = str(tmp_path / name)
    scipy.io.savemat(path, variables, do_compression=True)
    return path


def _expected_scale_provided(xy, visible):
    """gen_lsp.m:176-202 for a file of identical persons: every limb's median ratio is the
    person's own, so each visible limb normalises to the neck-head length exactly and its
    0.75 quantile is that length."""
    head = np.hypot(*(xy[13] - xy[12]))
    seen = xy[visible]
    extent = (seen.max(axis=0) - seen.min(axis=0)).max()
    return max(head / 35.0, 41.0 / 35.0 * extent / (368.0 - 64.0))


@pytest.mark.parametrize("head_top_y", [15.0, 33.0])   # the limb term wins / the extent does
def test_lsp_original_layout(tmp_path, head_top_y):
    n = TRAIN_IMAGES + 3
    person = PERSON.copy()
    person[13, 1] = head_top_y
    xy = np.repeat(person[None], n, axis=0)
    occluded = np.zeros((n, 14), dtype=bool)
    occluded[:, 6] = True    # the right wrist is hidden on every person
    path = _save(tmp_path, "joints.mat", joints=_lsp_original(xy, occluded))
    records = read_annotations(path)

    assert len(records) == n
    assert all(r.keypoints == LSP for r in records)
    assert [r.image_name for r in records[:2]] == ["im0001.jpg", "im0002.jpg"]
    assert records[-1].image_name == "im%04d.jpg" % n
    # bearpaw's split: the first 1000 train, the rest (LSP's test half) val
    assert [r.is_validation for r in records].count(True) == 3
    assert not any(r.is_validation for r in records[:TRAIN_IMAGES])
    assert len(read_annotations(path, split="val")) == 3
    first = records[0]
    assert first.annotated.all()   # occluded joints of LSP have positions too
    assert first.visible.tolist() == [0 if j == 6 else 1 for j in range(14)]
    np.testing.assert_allclose(first.joints, person)
    assert first.problem() is None

    visible = ~occluded[0]
    scale = _expected_scale_provided(person, visible)
    center, crop_scale = hourglass_box(first.center, first.scale)
    seen = person[visible]
    # bearpaw's crop: 1.4375 x scale_provided around the visible joints' middle
    np.testing.assert_allclose(center, (seen.min(axis=0) + seen.max(axis=0)) / 2.0)
    np.testing.assert_allclose(crop_scale, 1.4375 * scale)
    extent = 170.0 - head_top_y
    limbs_win = np.hypot(*(person[13] - person[12])) / 35.0 > 41.0 / 35.0 * extent / 304
    assert limbs_win == (head_top_y == 15.0)   # both terms of the max are exercised


def test_lsp_extended_layout(tmp_path):
    xy = np.repeat(PERSON[None], 4, axis=0)
    visible = np.ones((4, 14), dtype=bool)
    visible[1, [0, 5]] = False             # person 2: ankles not visible, no positions
    xy[1, [0, 5]] = np.nan
    path = _save(tmp_path, "joints.mat", joints=_lsp_extended(xy, visible))
    records = read_annotations(path)
    assert [r.image_name for r in records] == ["im%05d.jpg" % k for k in (1, 2, 3, 4)]
    assert not any(r.is_validation for r in records)   # LSP extended trains only
    assert records[1].annotated.tolist() == visible[1].tolist()
    assert records[1].joints[0].tolist() == [0.0, 0.0]
    assert records[1].visible.tolist() == visible[1].astype(int).tolist()
    assert all(r.problem() is None for r in records)
    # person 2's extent is shorter (no ankles): its box centre moves up with it
    c0, _ = hourglass_box(records[0].center, records[0].scale)
    c1, _ = hourglass_box(records[1].center, records[1].scale)
    np.testing.assert_allclose(c0, [55.0, 95.0])
    np.testing.assert_allclose(c1, [55.0, (20.0 + 130.0) / 2.0])


def test_lsp_single_person_file(tmp_path):
    # MATLAB drops the trailing singleton of a 3 x 14 x 1 matrix
    one = _lsp_original(PERSON[None], np.zeros((1, 14)))[:, :, 0]
    path = _save(tmp_path, "joints.mat", joints=one)
    (record,) = read_annotations(path)
    assert record.image_name == "im0001.jpg" and record.problem() is None


def _one_line(path, exc_info):
    text = str(exc_info.value)
    assert "\n" not in text and path in text
    return text


@pytest.mark.parametrize("joints, problem", [
    (np.zeros((5, 14, 2)), "has shape 5x14x2; expected 3 x 14 x N"),
    (np.zeros((3, 16, 2)), "has shape 3x16x2"),
    (np.array(["abc"]), "must be a numeric matrix"),
    (np.full((3, 14, 2), 0.5), "the visibility flag must be 0 or 1, got 0.5"),
])
def test_bad_lsp_files_are_one_line(tmp_path, joints, problem):
    path = _save(tmp_path, "joints.mat", joints=joints)
    with pytest.raises(AnnotationError) as exc_info:
        read_annotations(path)
    assert problem in _one_line(path, exc_info)


def test_lsp_non_finite_joint_is_one_line(tmp_path):
    xy = np.repeat(PERSON[None], 2, axis=0)
    xy[1, 3, 0] = np.inf
    path = _save(tmp_path, "joints.mat", joints=_lsp_original(xy, np.zeros((2, 14))))
    with pytest.raises(AnnotationError) as exc_info:
        read_annotations(path)
    assert "person 2 joint 4 has a position that is not a finite number" in \
        _one_line(path, exc_info)


def test_mat_without_joints_and_truncated_mat(tmp_path):
    path = _save(tmp_path, "other.mat", points=np.zeros((3, 14, 2)))
    with pytest.raises(AnnotationError) as exc_info:
        read_annotations(path)
    assert "nor LSP's joints" in _one_line(path, exc_info)
    good = _save(tmp_path, "joints.mat", joints=_lsp_original(PERSON[None], np.zeros((1, 14))))
    with open(good, "rb") as handle:
        data = handle.read()
    with open(good, "wb") as handle:
        handle.write(data[:len(data) - 20])
    with pytest.raises(AnnotationError) as exc_info:
        read_annotations(good)
    _one_line(good, exc_info)


@pytest.mark.parametrize("tag, problem", [
    (struct.pack("<II", 0x4609, 2 * 14 * 3 * 8),
     "a data element has an unknown type (17929)"),
    (struct.pack("<II", 9, 2 * 14 * 3 * 8 + 64), "a data element declares 736 bytes where "
                                                 "672 are left"),
])
def test_damaged_mat_tags_are_refused_before_scipy(tmp_path, tag, problem):
    """scipy's C reader trusts these tags: the flipped type crashed the process (SIGSEGV,
    found by tests/test_fuzz_inputs.py), so hgpipe.data.readers.mat_size walks them first."""
    path = str(tmp_path / "joints.mat")
    scipy.io.savemat(path, {"joints": _lsp_original(np.repeat(PERSON[None], 2, axis=0),
                                                    np.zeros((2, 14)))})
    with open(path, "rb") as handle:
        data = handle.read()
    real = struct.pack("<II", 9, 2 * 14 * 3 * 8)   # miDOUBLE, the 3 x 14 x 2 values
    assert data.count(real) == 1
    with open(path, "wb") as handle:
        handle.write(data.replace(real, tag))
    with pytest.raises(AnnotationError) as exc_info:
        read_annotations(path)
    assert _one_line(path, exc_info) == "%s: %s" % (path, problem)


def test_prepare_lsp_writes_lsp_shards(tmp_path):
    root = tmp_path / "lsp_dataset"
    (root / "images").mkdir(parents=True)
    xy = np.repeat(PERSON[None], 3, axis=0) + np.arange(3)[:, None, None] * 4.0
    for k in range(3):
        image = np.full((200, 120, 3), 90 + 40 * k, dtype=np.uint8)
        cv2.imwrite(str(root / "images" / ("im%04d.jpg" % (k + 1))), image)
    _save(root, "joints.mat", joints=_lsp_original(xy, np.zeros((3, 14))))
    out = str(tmp_path / "shards")
    result = cli_runner().invoke(main, [
        "prepare", "--mpii", str(root), "--out", out, "--workers", "1",
        "--set", "DataSetHG.img_size=64", "--set", "DataSetHG.hm_size=16",
        "--set", "Prepare.variants=1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output + result.stderr
    with open(os.path.join(out, "manifest.json")) as handle:
        manifest = json.load(handle)
    assert manifest["keypoints"]["name"] == "lsp"
    assert manifest["annotation_file"] == "joints.mat"
    assert manifest["counts"] == {"train": 3, "val": 0}


# --------------------------------------------------------------------------- COCO
def _kps(points):
    """17 (x, y, v) triples from a {joint id: (x, y, v)} dict, flat."""
    flat = []
    for j in range(17):
        flat += list(points.get(j, (0, 0, 0)))
    return flat


def _coco(images, annotations, categories=None):
    category = {"id": 1, "name": "person", "supercategory": "person",
                "keypoints": list(COCO.joint_names),
                "skeleton": [[a + 1, b + 1] for a, b in COCO.skeleton]}
    return {"images": images, "annotations": annotations,
            "categories": categories if categories is not None else [category]}


def _write(tmp_path, name, document):
    path = str(tmp_path / name)
    with open(path, "w") as handle:
        json.dump(document, handle)
    return path


IMAGES = [{"id": 7, "file_name": "a.jpg", "width": 320, "height": 240},
          {"id": 9, "file_name": "b.jpg", "width": 200, "height": 100}]


def _ann(ann_id, image_id, bbox, points, **extra):
    kps = _kps(points)
    ann = {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0,
           "bbox": bbox, "area": 1000.0 + ann_id, "keypoints": kps,
           "num_keypoints": sum(1 for v in kps[2::3] if v > 0)}
    ann.update(extra)
    return ann


def test_coco_file_to_records(tmp_path):
    annotations = [
        _ann(1, 7, [100.0, 50.0, 40.0, 120.0], {0: (120, 60, 2), 5: (110, 90, 1)}),
        _ann(2, 7, [10, 10, 300, 200], {}, iscrowd=1),
        _ann(3, 9, [20.5, 5.0, 60.0, 30.0], {}),          # no keypoint labelled
        _ann(4, 9, [-30.0, -10.0, 90.0, 500.0], {16: (10, 50, 2)}),   # clipped to the image
        _ann(5, 9, [250.0, 20.0, 10.0, 10.0], {3: (255, 25, 2)}),     # box outside: empty
        _ann(6, 7, [1.0, 2.0, 3.0, 4.0], {1: (2, 3, 2)}, area=0.0),   # zero area
    ]
    path = _write(tmp_path, "person_keypoints_train2017.json", _coco(IMAGES, annotations))
    records = read_annotations(path)
    assert [r.annotation_id for r in records] == [1, 4]
    assert records.notes == ["person_keypoints_train2017.json: 2 coco persons (train); 4 "
                             "annotations left out: 1 iscrowd, 2 no box, or an empty one "
                             "inside the image, 1 num_keypoints == 0"]
    first, clipped = records
    assert first.keypoints == COCO and not first.is_validation
    assert (first.image_name, first.image_id, first.area) == ("a.jpg", 7, 1001.0)
    # COCO's 0-based pixels + 1; v 2 visible, 1 labelled but hidden, 0 not annotated
    assert first.joints[0].tolist() == [121.0, 61.0] and first.joints[5].tolist() == [111.0, 91.0]
    assert first.annotated.nonzero()[0].tolist() == [0, 5]
    assert first.visible[[0, 5]].tolist() == [1, 0]
    assert first.joints[1].tolist() == [0.0, 0.0]
    # MMPose's box: centre of the (clipped) box, longer side / 200 x 1.25 (square input)
    center, scale = hourglass_box(first.center, first.scale)
    np.testing.assert_allclose(center, [100 + 20 + 1, 50 + 60 + 1])
    np.testing.assert_allclose(scale, 120 / 200.0 * 1.25)
    # clipped: x1 = 0, y1 = 0, x2 = min(199, 0 + 90), y2 = min(99, 0 + 500)
    center, scale = hourglass_box(clipped.center, clipped.scale)
    np.testing.assert_allclose(center, [45 + 1, 49.5 + 1])
    np.testing.assert_allclose(scale, 99 / 200.0 * 1.25)
    # person_index: the place among its image's annotations (id 3, left out, is first)
    assert clipped.person_index == 2 and clipped.image_name == "b.jpg"


def test_coco_val_file_keeps_its_crowd_regions(tmp_path):
    """A val file's crowd annotations ride with its records (as the file has them, for
    OKS AP); a train file's do not; a crowd annotation without a box is one line."""
    crowd = _ann(2, 7, [10, 10, 300, 200], {}, iscrowd=1, segmentation={"counts": "x"})
    annotations = [_ann(1, 7, [100.0, 50.0, 40.0, 120.0], {0: (120, 60, 2)}), crowd]
    document = _coco(IMAGES, annotations)
    val = read_annotations(_write(tmp_path, "person_keypoints_val2017.json", document))
    assert [r.annotation_id for r in val] == [1]
    want = {k: v for k, v in crowd.items() if k != "segmentation"}
    assert val.crowd == [want]
    assert read_annotations(str(tmp_path / "person_keypoints_val2017.json"),
                            split="train").crowd == []
    assert read_annotations(_write(tmp_path, "train.json", document)).crowd == []
    found = []
    read_annotation_files(
        [str(tmp_path / "train.json"), str(tmp_path / "person_keypoints_val2017.json")],
        crowd=found)
    assert found == [want]
    del crowd["bbox"]
    path = _write(tmp_path, "val.json", _coco(IMAGES, annotations))
    with pytest.raises(AnnotationError, match=r"^%s: annotation id 2: a crowd annotation "
                       r"needs bbox" % re.escape(path)):
        read_annotations(path)


def test_coco_val_split_is_the_val_file(tmp_path):
    document = _coco(IMAGES[:1], [_ann(1, 7, [100, 50, 40, 120], {0: (120, 60, 2)})])
    for name, val in (("person_keypoints_val2017.json", True), ("valid.json", True),
                      ("val.json", True), ("person_keypoints_minival2014.json", True),
                      ("train.json", False), ("interval.json", False)):
        (record,) = read_annotations(_write(tmp_path, name, document))
        assert record.is_validation == val, name
        assert len(read_annotations(str(tmp_path / name), split="val")) == int(val)


def test_custom_keypoint_set(tmp_path):
    names = ["head", "l_hand", "r_hand", "l_foot", "r_foot"]
    category = {"id": 3, "name": "robot", "keypoints": names,
                "skeleton": [[1, 2], [1, 3], [1, 4], [1, 5]],
                "sigmas": [0.05, 0.06, 0.06, 0.07, 0.07]}
    kps = [10, 10, 2, 5, 20, 2, 15, 20, 1, 0, 0, 0, 16, 40, 2]
    document = _coco(IMAGES[:1], [{"id": 1, "image_id": 7, "category_id": 3, "bbox":
                                   [0, 0, 30, 50], "area": 900, "keypoints": kps,
                                   "num_keypoints": 4}], [category])
    (record,) = read_annotations(_write(tmp_path, "robots.json", document))
    keypoints = record.keypoints
    assert keypoints.name == "robot" and keypoints.joint_names == tuple(names)
    assert keypoints.oks_sigmas == (0.05, 0.06, 0.06, 0.07, 0.07)
    assert sorted(keypoints.flip_pairs) == [(2, 1), (4, 3)]
    assert keypoints.skeleton == ((0, 1), (0, 2), (0, 3), (0, 4))
    assert record.annotated.tolist() == [True, True, True, False, True]

    del category["sigmas"]
    path = _write(tmp_path, "robots_nosigma.json", document)
    with pytest.raises(AnnotationError) as exc_info:
        read_annotations(path)
    assert "category 'robot': its 5 keypoints are not COCO's and it has no 'sigmas': OKS " \
           "AP needs one sigma per keypoint" in _one_line(path, exc_info)


def _bad(document_change):
    document = _coco([dict(i) for i in IMAGES],
                     [_ann(1, 7, [100, 50, 40, 120], {0: (120, 60, 2)})])
    document_change(document)
    return document


@pytest.mark.parametrize("change, problem", [
    (lambda d: d.pop("categories"), "no category declares keypoints"),
    (lambda d: d["annotations"][0].update(image_id=99),
     "annotation id 1 refers to image id 99, which the file does not list"),
    (lambda d: d["annotations"][0].update(keypoints=[1, 2, 2]),
     "keypoints must be a list of 51 numbers"),
    (lambda d: d["annotations"][0]["keypoints"].__setitem__(2, 3),
     "a keypoint's v must be 0, 1 or 2, got 3"),
    (lambda d: d["annotations"][0].update(bbox=[1, 2, float("nan"), 4]),
     "bbox must be a finite number"),
    (lambda d: d["annotations"][0].update(bbox="box"), "bbox must be [x, y, w, h]"),
    (lambda d: d["annotations"].append(dict(d["annotations"][0])), "id 1 appears twice"),
    (lambda d: d["images"][0].update(id="7"), "images[0]: id must be an integer"),
    (lambda d: d["images"][1].pop("width"), "images[1] lacks width"),
    (lambda d: d["images"][0].update(width=-3), "width must be a positive number"),
    (lambda d: d.update(annotations={}), "'annotations' must be a list"),
    (lambda d: d["categories"].append(dict(d["categories"][0], id=2)),
     "2 categories declare keypoints"),
    (lambda d: d["categories"][0].update(skeleton=[[1, 99]]), "a joint id is outside"),
])
def test_bad_coco_files_are_one_line(tmp_path, change, problem):
    path = _write(tmp_path, "bad.json", _bad(change))
    with pytest.raises(AnnotationError) as exc_info:
        read_annotations(path)
    assert problem in _one_line(path, exc_info)


def test_bad_coco_file_through_prepare_is_one_line(tmp_path):
    root = tmp_path / "coco"
    (root / "images").mkdir(parents=True)
    path = _write(tmp_path, "bad.json", _bad(lambda d: d["annotations"][0].update(
        keypoints=[0] * 50)))
    result = cli_runner().invoke(main, ["prepare", "--mpii", str(root), "--out",
                                        str(tmp_path / "out"), "--annotations", path])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "Error: %s: annotation id 1: keypoints must be a list of 51 numbers (x, y, v for 17 "
        "keypoints), got 50 values" % path]
