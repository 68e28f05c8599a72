"""Annotation readers and the Tompson validation split, checked against the real MPII
files in ../shared/mpii (each big file parsed once per module) and small synthetic files
that exercise the official .mat's quirks and the error paths."""
import gzip
import json
import os

import numpy as np
import pytest
import scipy.io

from hgpipe.data import split as val_split
from hgpipe.data.readers import (AnnotationError, find_annotation_file, read_annotations,
                                 read_dataset_txt, read_hrnet_json, read_mpii_json,
                                 read_release_mat, read_val_detections_mat,
                                 validate_records, write_dataset_txt)
from hgpipe.data.records import make_record
from hgpipe.data.transforms import hourglass_box
from hgpipe.joints import HEAD_TOP, NUM_JOINTS, UPPER_NECK

N_VAL = 2958     # README: Tompson split, 2,958 persons in 2,729 images
N_TRAIN = 22246  # README: the JSON conversion's training persons


# ------------------------------------------------------------------ shared real data

@pytest.fixture(scope="module")
def json_path(shared_mpii):
    return os.path.join(shared_mpii, "annotations", "mpii_annotations.json.gz")


@pytest.fixture(scope="module")
def json_records(json_path):
    return read_annotations(json_path)


@pytest.fixture(scope="module")
def json_val(json_records):
    return [r for r in json_records if r.is_validation]


@pytest.fixture(scope="module")
def raw_json(json_path):
    with gzip.open(json_path, "rt") as handle:
        return json.load(handle)


@pytest.fixture(scope="module")
def det_records(shared_mpii):
    return read_annotations(os.path.join(shared_mpii, "val", "detections.mat"))


@pytest.fixture(scope="module")
def gt(shared_mpii):
    """detections_our_format.mat as person-major arrays."""
    mat = scipy.io.loadmat(os.path.join(shared_mpii, "val", "detections_our_format.mat"))
    return {
        "joints": np.transpose(mat["pos_gt_src"], (2, 0, 1)),          # (N, 16, 2)
        "annotated": mat["jnt_missing"].T == 0,                         # (N, 16)
        "head_boxes": np.transpose(mat["headboxes_src"], (2, 0, 1)).reshape(-1, 4),
    }


@pytest.fixture(scope="module")
def valid_h5(shared_mpii):
    import h5py
    with h5py.File(os.path.join(shared_mpii, "val", "valid.h5"), "r") as h5:
        return {k: h5[k][:] for k in ("index", "person", "imgname", "center", "scale",
                                      "visible", "normalize")}


def _stack(records, field):
    return np.array([getattr(r, field) for r in records])


# ------------------------------------------------------------------ validation split

def _val_head_boxes():
    """(N, 4) head boxes of the validation persons, in the split's order."""
    return np.array([person.head_box for person in val_split.val_persons()])


def test_split_file_regenerates_exactly(shared_mpii, tmp_path):
    out = str(tmp_path / "split.txt")
    assert val_split.build_split_file(shared_mpii, out) == N_VAL
    with open(out, "rb") as fresh, open(val_split.SPLIT_FILE, "rb") as committed:
        assert fresh.read() == committed.read()


def test_split_agrees_with_every_val_file(shared_mpii, valid_h5, gt):
    keys = val_split.val_keys()
    assert len(keys) == N_VAL and len(set(keys)) == N_VAL
    # valid.h5 counts from 0, the split from 1.
    assert keys == [(int(a) + 1, int(p) + 1)
                    for a, p in zip(valid_h5["index"], valid_h5["person"])]
    det = scipy.io.loadmat(os.path.join(shared_mpii, "val", "detections.mat"))
    assert keys == list(zip(det["RELEASE_img_index"].ravel().tolist(),
                            det["RELEASE_person_index"].ravel().tolist()))
    names = [p.image_name for p in val_split.val_persons()]
    assert names == [n.decode() for n in valid_h5["imgname"]]
    assert len(set(names)) == 2729
    boxes = _val_head_boxes()
    np.testing.assert_array_equal(boxes, gt["head_boxes"])
    # Newell's normaliser is 0.6 x the head-box diagonal of the same boxes.
    diagonal = np.hypot(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    np.testing.assert_allclose(0.6 * diagonal, valid_h5["normalize"], rtol=1e-6)


def test_split_lookups(raw_json):
    first_val = next(e for e in raw_json if e["isValidation"] == 1.0)
    first_train = next(e for e in raw_json if e["isValidation"] == 0.0)
    a, p = int(first_val["annolist_index"]), int(first_val["people_index"])
    assert val_split.is_val(a, p) and val_split.is_val_image(first_val["img_paths"])
    assert val_split.val_person(a, p).head_box is not None
    ta, tp = int(first_train["annolist_index"]), int(first_train["people_index"])
    assert not val_split.is_val(ta, tp) and val_split.val_person(ta, tp) is None
    assert not val_split.is_val_image(first_train["img_paths"])


def test_split_file_errors_name_the_line(tmp_path):
    path = tmp_path / "bad_split.txt"
    path.write_text(u"# header\n7 1 a.jpg 1 2 3 4 5\n")
    with pytest.raises(ValueError, match=r"bad_split.txt:2: expected 9 columns"):
        val_split.load_split(str(path))


# ------------------------------------------------------------------ official layout (real)

def test_detections_mat_matches_published_ground_truth(det_records, gt, valid_h5,
                                                       shared_mpii):
    assert len(det_records) == N_VAL
    det_path = os.path.join(shared_mpii, "val", "detections.mat")
    assert read_val_detections_mat(det_path, split="train") == []
    assert [(r.annolist_index, r.person_index) for r in det_records] == val_split.val_keys()
    assert all(r.is_validation for r in det_records)
    assert [r.image_name for r in det_records] == [n.decode() for n in valid_h5["imgname"]]
    joints, annotated = _stack(det_records, "joints"), _stack(det_records, "annotated")
    np.testing.assert_array_equal(annotated, gt["annotated"])
    # The 13 joints whose published GT has a 0 coordinate (upstream quirk) hold real
    # positions in the official record; everywhere else the two agree.
    zero_gt = annotated & np.any(gt["joints"] == 0, axis=2)
    assert zero_gt.sum() == 13
    assert np.all(joints[zero_gt] != 0)
    same = annotated & ~zero_gt
    np.testing.assert_allclose(joints[same], gt["joints"][same], atol=1e-3)
    assert np.all(joints[~annotated] == 0)
    np.testing.assert_allclose(_stack(det_records, "head_box"), gt["head_boxes"], atol=1e-3)
    # Raw centre/scale: Newell's valid.h5 holds them after the +15*s / x1.25 adjustment.
    center, scale = _stack(det_records, "center"), _stack(det_records, "scale")
    np.testing.assert_allclose(center + np.outer(15 * scale, [0, 1]), valid_h5["center"])
    np.testing.assert_allclose(1.25 * scale, valid_h5["scale"])
    # valid.h5's visible is 1 for visible-or-unknown; unknown (-1) exists in the file.
    visible = _stack(det_records, "visible")
    assert set(np.unique(visible).tolist()) == {-1, 0, 1}
    np.testing.assert_array_equal(annotated & (visible != 0), valid_h5["visible"] == 1)
    assert validate_records(det_records) == (det_records, [])


def test_json_and_official_layout_agree_on_val(json_val, det_records):
    assert [(r.annolist_index, r.person_index) for r in json_val] == \
        [(r.annolist_index, r.person_index) for r in det_records]
    for field in ("annotated", "center"):
        np.testing.assert_array_equal(_stack(json_val, field), _stack(det_records, field))
    annotated = _stack(det_records, "annotated")
    np.testing.assert_allclose(_stack(json_val, "joints")[annotated],
                               _stack(det_records, "joints")[annotated], atol=5e-4)
    np.testing.assert_allclose(_stack(json_val, "scale"), _stack(det_records, "scale"),
                               atol=5e-4)  # the JSON rounds scale to 3 decimals
    np.testing.assert_allclose(_stack(json_val, "head_box"), _stack(det_records, "head_box"),
                               atol=1e-3)
    # The JSON turned MPII's unknown visibility into 1; known values are identical.
    v_json, v_mat = _stack(json_val, "visible"), _stack(det_records, "visible")
    assert np.all(v_json[v_mat == -1] == 1)
    np.testing.assert_array_equal(v_json[v_mat != -1], v_mat[v_mat != -1])


# ------------------------------------------------------------------ official layout (synthetic)

def _struct_array(dicts):
    """A MATLAB 1xN struct array (all structs share the first one's fields)."""
    names = list(dicts[0])
    array = np.zeros((1, len(dicts)), dtype=[(n, object) for n in names])
    for i, fields in enumerate(dicts):
        for name in names:
            array[0, i][name] = fields.get(name, np.zeros((0, 0)))
    return array


EMPTY = np.zeros((0, 0))


def _point(joint_id, x, y, vis):
    return {"id": joint_id, "x": float(x), "y": float(y), "is_visible": vis}


def _rect(points=None, scale=None, objpos=None, head=(10, 20, 30, 50)):
    rect = {"x1": float(head[0]), "y1": float(head[1]), "x2": float(head[2]),
            "y2": float(head[3]), "annopoints": EMPTY, "scale": EMPTY, "objpos": EMPTY}
    if points is not None:
        rect["annopoints"] = {"point": _struct_array(points)}
    if scale is not None:
        rect["scale"] = float(scale)
    if objpos is not None:
        rect["objpos"] = {"x": float(objpos[0]), "y": float(objpos[1])}
    return rect


def _write_release(path, images, img_train):
    annolist = _struct_array([{"image": {"name": name}, "annorect": rects}
                              for name, rects in images])
    release = {"annolist": annolist, "img_train": np.array([img_train], dtype=np.uint8),
               "single_person": _struct_array([{"v": EMPTY}] * len(images))}
    scipy.io.savemat(str(path), {"RELEASE": release})


def _full_person(offset, visibility):
    """16 points in shuffled id order with the given is_visible values."""
    order = [9, 3, 0, 15, 8, 1, 12, 6, 14, 2, 11, 5, 7, 13, 4, 10]
    return [_point(j, 100 + offset + j, 200 + j, visibility[j]) for j in order]


@pytest.fixture(scope="module")
def synthetic_release(tmp_path_factory):
    visibility = [1, 0, "1", "0", EMPTY, np.array([], dtype=np.uint8), 1, 1,
                  EMPTY, EMPTY, 0, 1, "1", 0, 1, 0]
    val_name = val_split.val_persons()[0].image_name
    val_key = val_split.val_keys()[0]
    single = _struct_array([_rect(_full_person(0, visibility), 2.5, (110, 215))])
    multi = _struct_array([
        _rect([_point(j, 300 + j, 50 + j, 1) for j in (14, 2, 9, 6, 0)], 1.5, (305, 60)),
        _rect(None, 1.0, (400, 90)),                                  # no annopoints
        _rect([_point(j, 500, 70, 1) for j in (3, 8, 1)]),             # no scale/objpos
        _rect([_point(7, 600, 80, "0")], 0.8, (600, 85), head=(590, 60, 610, 75)),
    ])
    # A test image (img_train 0) is skipped even where a rect would parse.
    test_image = _struct_array([_rect([_point(0, 50, 60, 1)], 3.0, (50, 60))])
    images = [("single.jpg", single), ("multi.jpg", multi), ("test.jpg", test_image),
              ("no_people.jpg", EMPTY)]
    img_train = [1, 1, 0, 1]
    # Pad the annolist so the real val key's image sits at its official index.
    while len(images) < val_key[0] - 1:
        images.append(("filler%d.jpg" % len(images), EMPTY))
        img_train.append(1)
    rects = [_rect([_point(j, 900 + j, 300, 1) for j in range(NUM_JOINTS)], 4.0, (950, 350))
             for _ in range(val_key[1])]
    images.append((val_name, _struct_array(rects)))
    img_train.append(1)
    path = tmp_path_factory.mktemp("release") / "mpii_human_pose_v1_u12_1.mat"
    _write_release(path, images, img_train)
    return str(path), visibility, val_key


def test_release_mat_survives_official_quirks(synthetic_release):
    path, visibility, val_key = synthetic_release
    records = read_annotations(path)
    keyed = {(r.annolist_index, r.person_index): r for r in records}
    # rect 2 has no points, rect 3 no scale/objpos, image 3 is a test image.
    assert sorted(keyed) == sorted([(1, 1), (2, 1), (2, 4), val_key])

    single = keyed[(1, 1)]
    assert single.image_name == "single.jpg" and single.source.endswith(
        "mpii_human_pose_v1_u12_1.mat:annolist(1).annorect(1)")
    assert single.annotated.all()
    np.testing.assert_array_equal(single.joints[:, 0], 100 + np.arange(NUM_JOINTS))
    np.testing.assert_array_equal(single.joints[:, 1], 200 + np.arange(NUM_JOINTS))
    expected_vis = [-1 if isinstance(v, np.ndarray) else int(v) for v in visibility]
    np.testing.assert_array_equal(single.visible, expected_vis)
    np.testing.assert_array_equal(single.center, [110, 215])
    assert single.scale == 2.5
    np.testing.assert_array_equal(single.head_box, [10, 20, 30, 50])
    assert not single.is_validation

    five = keyed[(2, 1)]
    assert sorted(np.flatnonzero(five.annotated).tolist()) == [0, 2, 6, 9, 14]
    np.testing.assert_array_equal(five.joints[14], [314, 64])
    assert np.all(five.joints[~five.annotated] == 0)
    assert np.all(five.visible[~five.annotated] == 0)

    lone = keyed[(2, 4)]  # a single point: squeezed to a lone struct
    assert np.flatnonzero(lone.annotated).tolist() == [7] and lone.visible[7] == 0
    np.testing.assert_array_equal(lone.head_box, [590, 60, 610, 75])

    val = keyed[val_key]
    assert val.is_validation
    assert [r.person_index for r in read_release_mat(path, split="val")] == [val_key[1]]
    assert len(read_release_mat(path, split="train")) == 3


@pytest.mark.parametrize("bad_point, message", [
    (_point(3, 1, 2, "2"), "is_visible must be 0, 1 or empty"),
    (_point(16, 1, 2, 1), "joint id must be an integer 0-15"),
    (_point(0, 1, 2, 1), "joint id 0 appears twice"),
])
def test_release_mat_bad_points_are_clear_errors(tmp_path, bad_point, message):
    points = [_point(0, 5, 5, 1), bad_point]
    path = tmp_path / "bad.mat"
    _write_release(path, [("a.jpg", _struct_array([_rect(points, 1.0, (5, 5))]))], [1])
    with pytest.raises(AnnotationError, match=r"bad.mat:annolist\(1\).annorect\(1\)"
                       r".annopoints.point\(2\): " + message):
        read_release_mat(str(path))


def test_release_mat_with_foreign_indices_is_refused(tmp_path):
    val_key = val_split.val_keys()[0]
    images = [("x%d.jpg" % i, EMPTY) for i in range(val_key[0] - 1)]
    rects = [_rect([_point(0, 5, 5, 1)], 1.0, (5, 5))] * val_key[1]
    images.append(("not_the_val_image.jpg", _struct_array(rects)))
    path = tmp_path / "renumbered.mat"
    _write_release(path, images, [1] * len(images))
    with pytest.raises(AnnotationError, match="does not use the official MPII indices"):
        read_release_mat(str(path))


def test_unreadable_or_foreign_mat_files(tmp_path, shared_mpii):
    garbage = tmp_path / "garbage.mat"
    garbage.write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(AnnotationError, match="garbage.mat"):
        read_annotations(str(garbage))
    # A v7.3 file: a MATLAB header (version 0x0200) over HDF5, which scipy cannot read.
    import h5py
    v73 = str(tmp_path / "new.mat")
    with h5py.File(v73, "w", userblock_size=512) as h5:
        h5["RELEASE"] = np.zeros(3)
    with open(v73, "r+b") as handle:
        handle.write(b"MATLAB 7.3 MAT-file".ljust(124, b" ") + b"\x00\x02IM")
    with pytest.raises(AnnotationError, match="new.mat is a MATLAB v7.3"):
        read_annotations(v73)
    with pytest.raises(AnnotationError, match="new.mat is a MATLAB v7.3"):
        read_release_mat(v73)
    with pytest.raises(AnnotationError, match="neither the official RELEASE"):
        read_annotations(os.path.join(shared_mpii, "val", "detections_our_format.mat"))


# ------------------------------------------------------------------ JSON conversion

def test_json_counts_split_and_head_boxes(json_records, json_val, raw_json, gt):
    assert len(json_records) == N_TRAIN + N_VAL and len(json_val) == N_VAL
    assert [r.is_validation for r in json_records] == \
        [e["isValidation"] == 1.0 for e in raw_json]
    assert [(r.annolist_index, r.person_index) for r in json_records] == \
        [(int(e["annolist_index"]), int(e["people_index"])) for e in raw_json]
    # Val persons in the published GT order, with the published joints and head boxes.
    annotated = _stack(json_val, "annotated")
    np.testing.assert_array_equal(annotated, gt["annotated"])
    same = annotated & ~np.any(gt["joints"] == 0, axis=2)
    np.testing.assert_allclose(_stack(json_val, "joints")[same], gt["joints"][same],
                               atol=1e-3)  # 3 decimals in the JSON
    np.testing.assert_array_equal(_stack(json_val, "head_box"), gt["head_boxes"])
    assert all(r.head_box is None for r in json_records if not r.is_validation)
    np.testing.assert_array_equal(_stack(json_records, "center"),
                                  [e["objpos"] for e in raw_json])
    first = json_records[0]
    assert first.source == "mpii_annotations.json.gz:0"
    unannotated = ~first.annotated
    np.testing.assert_array_equal(
        unannotated, [j == [0, 0, 0] for j in raw_json[0]["joint_self"]])
    good, skipped = validate_records(json_records)
    assert len(good) == len(json_records) and skipped == []


def test_json_split_filter_and_isvalidation_check(raw_json, tmp_path):
    train = [dict(e) for e in raw_json if e["isValidation"] == 0.0][:40]
    val = [dict(e) for e in raw_json if e["isValidation"] == 1.0][:7]
    path = tmp_path / "plain.json"
    path.write_text(json.dumps(train + val))  # plain, not gzipped
    records = read_annotations(str(path))
    assert [r.is_validation for r in records] == [False] * 40 + [True] * 7
    assert [r.source for r in read_mpii_json(str(path), split="val")] == \
        ["plain.json:%d" % k for k in range(40, 47)]
    assert len(read_annotations(str(path), split="train")) == 40
    with pytest.raises(ValueError, match="split must be one of"):
        read_annotations(str(path), split="test")
    val[0]["isValidation"] = 0.0
    path.write_text(json.dumps(train + val))
    with pytest.raises(AnnotationError, match="isValidation disagrees .* for 1 persons"):
        read_annotations(str(path))


def test_json_malformed_entries(raw_json, tmp_path):
    broken = dict(raw_json[0])
    del broken["objpos"]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps([raw_json[1], broken]))
    with pytest.raises(AnnotationError, match=r"broken.json:1: missing objpos"):
        read_annotations(str(path))
    short = dict(raw_json[0], joint_self=raw_json[0]["joint_self"][:15])
    path.write_text(json.dumps([short]))
    with pytest.raises(AnnotationError, match="joint_self must be 16"):
        read_annotations(str(path))
    path.write_text(u"[{\"nothing\": 1}]")
    with pytest.raises(AnnotationError, match="not a known JSON annotation format"):
        read_annotations(str(path))
    path.write_text(u"[{")
    with pytest.raises(AnnotationError, match="not valid JSON"):
        read_annotations(str(path))


# ------------------------------------------------------------------ mmpose / HRNet list

def test_hrnet_list_gives_the_same_records(shared_mpii, json_val, det_records):
    path = os.path.join(shared_mpii, "images", "val", "test_mpii.json")
    records = read_annotations(path)
    assert len(records) == 5
    for mine, ref, official in zip(records, json_val[:5], det_records[:5]):
        assert mine.image_name == ref.image_name
        assert (mine.annolist_index, mine.person_index) == \
            (ref.annolist_index, ref.person_index)
        assert mine.is_validation and mine.source.startswith("test_mpii.json:")
        np.testing.assert_array_equal(mine.annotated, ref.annotated)
        np.testing.assert_allclose(mine.joints, ref.joints, atol=5e-4)
        np.testing.assert_array_equal(mine.center, ref.center)
        np.testing.assert_allclose(mine.scale, official.scale, atol=1e-6)  # raw, 6 decimals
        np.testing.assert_array_equal(mine.head_box, ref.head_box)
        np.testing.assert_array_equal(mine.visible, np.where(ref.annotated, -1, 0))


def test_hrnet_list_train_person_and_unannotated_entry(tmp_path, raw_json):
    train = raw_json[0]
    items = [
        {"image": train["img_paths"], "center": train["objpos"],
         "scale": train["scale_provided"],
         "joints": [j[:2] if any(j) else [-1, -1] for j in train["joint_self"]],
         "joints_vis": [int(any(j)) for j in train["joint_self"]]},
        {"image": "032081651.jpg", "center": [100, 200], "scale": 1.2},  # test.json entry
    ]
    path = tmp_path / "train.json"
    path.write_text(json.dumps(items))
    records = read_hrnet_json(str(path))
    assert len(records) == 1
    record = records[0]
    assert not record.is_validation and record.head_box is None
    assert (record.annolist_index, record.person_index) == (-1, -1)
    expected = np.array([j[:2] for j in train["joint_self"]])
    np.testing.assert_array_equal(record.joints, expected)


# ------------------------------------------------------------------ dataset.txt

def test_dataset_txt_reference_lines(tmp_path):
    joints = ["%d %d" % (10 * j, 5 * j) for j in range(NUM_JOINTS)]
    joints[3] = "-1 -1"
    lines = [
        "img1.jpgA 100 200 300 600 " + " ".join(joints),
        "img1.jpgB -1 -1 -1 -1 " + " ".join(joints),
        "img2.png 0 0 10 10 " + " ".join(["-1 -1"] * NUM_JOINTS),  # no joints: dropped
        "",
    ]
    path = tmp_path / "dataset.txt"
    path.write_text(u"\n".join(lines))
    first, second = read_annotations(str(path))
    assert first.image_name == second.image_name == "img1.jpg"
    assert first.source == "dataset.txt:1" and second.source == "dataset.txt:2"
    assert first.annotated.sum() == 15 and not first.annotated[3]
    np.testing.assert_array_equal(first.joints[5], [50, 25])
    np.testing.assert_array_equal(first.visible, np.where(first.annotated, -1, 0))
    # The reference crop of box (100, 200)-(300, 600): padded 20 % per side -> 280 x 560,
    # squared to 560 about (200, 400). Our hourglass crop must be that square.
    crop_center, crop_scale = hourglass_box(first.center, first.scale)
    np.testing.assert_allclose(crop_center, [200, 400])
    np.testing.assert_allclose(200 * crop_scale, 560)
    # Box of -1s: the annotated joints' extent, (0, 0)-(150, 75) -> 210 px about (75, 37.5).
    crop_center, crop_scale = hourglass_box(second.center, second.scale)
    np.testing.assert_allclose(crop_center, [75, 37.5])
    np.testing.assert_allclose(200 * crop_scale, 210)


@pytest.mark.parametrize("line, message", [
    ("img.jpgA 1 2 3", "expected 37 fields"),
    ("img.gifA " + " ".join(["1"] * 36), "'img.gifA' is not an image file name"),
    ("img.jpgA x " + " ".join(["1"] * 35), "non-numeric value"),
])
def test_dataset_txt_bad_lines(tmp_path, line, message):
    path = tmp_path / "mine.txt"
    path.write_text(u"\n" + line + "\n")
    with pytest.raises(AnnotationError, match="mine.txt:2: " + message):
        read_dataset_txt(str(path))


def test_dataset_txt_round_trip_keeps_records_and_val_identity(json_records, tmp_path):
    path = str(tmp_path / "dataset.txt")
    assert write_dataset_txt(json_records, path) == len(json_records)
    with open(path) as handle:
        names = [line.split()[0] for line in handle]
    assert names[0].endswith("A") and names[1] == names[0][:-1] + "B"  # same image
    back = read_annotations(path)
    assert len(back) == len(json_records)
    assert [r.image_name for r in back] == [r.image_name for r in json_records]
    np.testing.assert_array_equal(_stack(back, "annotated"), _stack(json_records, "annotated"))
    np.testing.assert_allclose(_stack(back, "joints"), _stack(json_records, "joints"), atol=1e-4)
    np.testing.assert_allclose(_stack(back, "center"), _stack(json_records, "center"), atol=1e-3)
    np.testing.assert_allclose(_stack(back, "scale"), _stack(json_records, "scale"), atol=1e-4)
    # No indices in the format: every val person is found again, with its head box.
    assert [r.is_validation for r in back] == [r.is_validation for r in json_records]
    back_val = [r for r in back if r.is_validation]
    assert [(r.annolist_index, r.person_index) for r in back_val] == val_split.val_keys()
    np.testing.assert_array_equal(_stack(back_val, "head_box"), _val_head_boxes())
    headless = [r for r in back_val if not r.annotated[[UPPER_NECK, HEAD_TOP]].any()]
    assert headless  # the real split has such persons: matched by elimination


def test_dataset_txt_writer_refuses_unwritable_records(tmp_path):
    joints = np.ones((NUM_JOINTS, 2))
    annotated = np.ones(NUM_JOINTS, bool)
    no_center = make_record("a.jpg", joints, annotated, center=(np.nan, 1), scale=1.0)
    with pytest.raises(AnnotationError, match="cannot write a.jpg"):
        write_dataset_txt([no_center], str(tmp_path / "out.txt"))
    ok = make_record("a.jpg", joints, annotated, center=(5, 5), scale=1.0)
    with pytest.raises(AnnotationError, match="at most 26 persons"):
        write_dataset_txt([ok] * 27, str(tmp_path / "out.txt"))


# ------------------------------------------------------------------ dispatcher, validation

def test_find_annotation_file(shared_mpii, tmp_path):
    assert find_annotation_file(shared_mpii).endswith(
        os.path.join("annotations", "mpii_annotations.json.gz"))
    with pytest.raises(AnnotationError, match="looked for: mpii_human_pose_v1_u12_1.mat"):
        find_annotation_file(str(tmp_path))
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "dataset.txt").write_text(u"")
    (tmp_path / "mpii_human_pose_v1_u12_1.mat").write_bytes(b"")
    assert find_annotation_file(str(tmp_path)).endswith("mpii_human_pose_v1_u12_1.mat")
    with pytest.raises(AnnotationError, match="does not exist"):
        find_annotation_file(str(tmp_path / "nowhere"))


def test_read_annotations_refuses_unknown_inputs(tmp_path):
    with pytest.raises(AnnotationError, match="is a folder"):
        read_annotations(str(tmp_path))
    with pytest.raises(AnnotationError, match="does not exist"):
        read_annotations(str(tmp_path / "missing.json"))
    other = tmp_path / "labels.csv"
    other.write_text(u"a,b\n")
    with pytest.raises(AnnotationError, match="labels.csv: unknown annotation format"):
        read_annotations(str(other))


def test_validate_records_sorts_and_explains():
    joints = np.arange(2 * NUM_JOINTS, dtype=float).reshape(NUM_JOINTS, 2)
    annotated = np.ones(NUM_JOINTS, bool)
    good = make_record("good.jpg", joints, annotated, center=(5, 5), scale=1.0)
    no_scale = make_record("a.jpg", joints, annotated, center=(5, 5), scale=0.0)
    no_center = make_record("b.jpg", joints, annotated, scale=1.0)
    no_joints = make_record("c.jpg", joints, np.zeros(NUM_JOINTS, bool), center=(5, 5),
                            scale=1.0)
    kept, skipped = validate_records([no_scale, good, no_center, no_joints])
    assert kept == [good]
    assert [r.image_name for r, _ in skipped] == ["a.jpg", "b.jpg", "c.jpg"]
    assert "scale" in skipped[0][1] and "centre" in skipped[1][1]
    assert skipped[2][1] == "no annotated joints"


def test_unmatched_record_in_a_val_image_is_in_neither_split():
    """mark_by_match: a record without official indices that matches no validation
    person is training data only if its image is not a validation image."""
    from hgpipe.data.readers.common import mark_by_match
    person = val_split.val_persons()[0]
    train_image = "not_a_val_image_%s" % person.image_name
    assert val_split.is_val_image(person.image_name)
    assert not val_split.is_val_image(train_image)
    joints = np.zeros((NUM_JOINTS, 2))
    annotated = np.zeros(NUM_JOINTS, bool)
    annotated[0] = True
    matched = make_record(person.image_name, joints, annotated, center=person.objpos, scale=1.0)
    far = np.asarray(person.objpos) + 10000.0  # no validation person is there
    stray = make_record(person.image_name, joints, annotated, center=far, scale=1.0)
    elsewhere = make_record(train_image, joints, annotated, center=far, scale=1.0)
    marked = mark_by_match([matched, stray, elsewhere])
    assert [(r.image_name, r.is_validation) for r in marked] == [
        (person.image_name, True), (train_image, False)]
    assert (marked[0].annolist_index, marked[0].person_index) == (
        person.annolist_index, person.person_index)
