"""The generated demo dataset: determinism, MPII format fidelity, labels on the figures."""
import gzip
import hashlib
import json
import math
import os

import cv2
import numpy as np
import pytest

from hgpipe.data import demo
from hgpipe.data.readers.head_boxes import read_head_boxes
from hgpipe.data.records import make_record
from hgpipe.joints import (HEAD_TOP, L_HIP, L_SHOULDER, NUM_JOINTS, R_HIP, R_SHOULDER,
                           UPPER_NECK)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMITTED = os.path.join(REPO_ROOT, "data", "demo")

# The key set of the public mpii_annotations.json conversion (checked against the real
# file itself in test_structure_matches_real_mpii_json when ../shared is present).
MPII_JSON_KEYS = {"dataset", "isValidation", "img_paths", "img_width", "img_height",
                  "objpos", "joint_self", "scale_provided", "joint_others",
                  "scale_provided_other", "objpos_other", "annolist_index", "people_index",
                  "numOtherPeople"}


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _load_json(root, name):
    with open(os.path.join(root, name)) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A 6-train + 3-val image dataset, the subject of most format tests."""
    out = str(tmp_path_factory.mktemp("demo_small"))
    summary = demo.generate_demo_dataset(out, n_train_images=6, n_val_images=3, seed=7)
    return out, summary


@pytest.fixture(scope="module")
def committed_rows():
    path = os.path.join(COMMITTED, demo.ANNOTATION_FILE)
    if not os.path.isfile(path):
        pytest.fail("data/demo is missing; regenerate it with python -m hgpipe.data.demo data/demo")
    return _load_json(COMMITTED, demo.ANNOTATION_FILE)


def _all_files(root):
    found = {}
    for base, _, files in os.walk(root):
        for name in files:
            path = os.path.join(base, name)
            found[os.path.relpath(path, root).replace(os.sep, "/")] = _read(path)
    return found


# ------------------------------------------------------------------------ determinism
def test_same_seed_gives_byte_identical_files(small, tmp_path):
    out, _ = small
    again = str(tmp_path / "again")
    demo.generate_demo_dataset(again, n_train_images=6, n_val_images=3, seed=7)
    first, second = _all_files(out), _all_files(again)
    assert sorted(first) == sorted(second)
    assert len([n for n in first if n.startswith("images/")]) == 9
    for name in first:
        assert first[name] == second[name], name


def test_other_seed_gives_other_data(small, tmp_path):
    out, _ = small
    other = str(tmp_path / "other")
    demo.generate_demo_dataset(other, n_train_images=6, n_val_images=3, seed=8)
    assert _read(os.path.join(out, demo.ANNOTATION_FILE)) != \
        _read(os.path.join(other, demo.ANNOTATION_FILE))
    first = demo.demo_image_name(demo.annolist_index_of(0))
    assert _read(os.path.join(out, "images", first)) != _read(os.path.join(other, "images", first))


def test_regeneration_removes_stale_images_only(tmp_path):
    out = str(tmp_path / "d")
    demo.generate_demo_dataset(out, n_train_images=3, n_val_images=1)
    keep = os.path.join(out, "images", "mine.jpg")
    with open(keep, "wb") as f:
        f.write(b"not ours")
    demo.generate_demo_dataset(out, n_train_images=2, n_val_images=1)
    assert sorted(os.listdir(os.path.join(out, "images"))) == [
        "demo_100001.jpg", "demo_100002.jpg", "demo_100003.jpg", "mine.jpg"]
    assert len(_load_json(out, demo.ANNOTATION_FILE)) >= 3


def test_committed_files_match_their_checksums():
    sums = {}
    with open(os.path.join(COMMITTED, demo.CHECKSUM_FILE)) as f:
        for line in f:
            digest, name = line.rstrip("\n").split("  ", 1)
            sums[name] = digest
    images = sorted("images/" + n for n in os.listdir(os.path.join(COMMITTED, "images")))
    assert sorted(n for n in sums if n.startswith("images/")) == images
    assert "annotations/mpii_annotations.json" in sums and "annotations/head_boxes.json" in sums
    for name, digest in sums.items():
        assert hashlib.sha256(_read(os.path.join(COMMITTED, name))).hexdigest() == digest, name


def test_committed_demo_is_what_the_default_generator_draws(committed_rows):
    """Re-render every 20th committed image with the defaults: same labels, same picture."""
    lines = _read(os.path.join(COMMITTED, demo.ANNOTATION_FILE)).decode("ascii").split("\n")
    assert lines[0] == "[" and lines[-2:] == ["]", ""]
    rows_text = [line.rstrip(",") for line in lines[1:-2]]
    box_lines = [line.rstrip(",") for line in _read(os.path.join(
        COMMITTED, demo.HEAD_BOX_FILE)).decode("ascii").split("\n")[1:-2]]
    n_images = demo.DEFAULT_TRAIN_IMAGES + demo.DEFAULT_VAL_IMAGES
    assert len(os.listdir(os.path.join(COMMITTED, "images"))) == n_images
    for index in range(0, n_images, 20):
        annolist_index = demo.annolist_index_of(index)
        name = demo.demo_image_name(annolist_index)
        scene = demo.render_scene(demo.DEFAULT_SEED, index)
        expected_rows, expected_boxes = demo.scene_annotations(
            scene, name, annolist_index, index >= demo.DEFAULT_TRAIN_IMAGES)
        at = [i for i, row in enumerate(committed_rows) if row["annolist_index"] == annolist_index]
        assert [rows_text[i] for i in at] == expected_rows
        assert [box_lines[i] for i in at] == expected_boxes
        stored = cv2.imread(os.path.join(COMMITTED, "images", name))
        assert stored.shape == scene.image.shape
        # JPEG loss only, measured at most 2.7 mean / 31 99th percentile at quality 85
        # (other OpenCV builds may encode different bytes; another picture is ~50 / 150)
        diff = np.abs(stored.astype(np.int16) - scene.image.astype(np.int16))
        assert diff.mean() < 4.0 and np.percentile(diff, 99) < 45, name


# ---------------------------------------------------------------------------- format
def test_json_has_the_real_key_set_and_both_splits(small):
    out, summary = small
    rows = _load_json(out, demo.ANNOTATION_FILE)
    assert len(rows) == summary["train_persons"] + summary["val_persons"]
    assert all(set(row) == MPII_JSON_KEYS for row in rows)
    assert all(row["dataset"] == "MPI" for row in rows)
    splits = [row["isValidation"] for row in rows]
    assert set(splits) == {0.0, 1.0}
    assert splits.count(1.0) == summary["val_persons"] > 0
    val_images = {row["img_paths"] for row in rows if row["isValidation"] == 1.0}
    train_images = {row["img_paths"] for row in rows if row["isValidation"] == 0.0}
    assert len(val_images) == 3 and len(train_images) == 6 and not val_images & train_images


def test_rows_are_consistent_mpii_records(small):
    out, _ = small
    rows = _load_json(out, demo.ANNOTATION_FILE)
    boxes = _load_json(out, demo.HEAD_BOX_FILE)
    assert len(boxes) == len(rows)
    by_image = {}
    for row in rows:
        by_image.setdefault(row["img_paths"], []).append(row)
    for name, people in by_image.items():
        image = cv2.imread(os.path.join(out, "images", name))
        height, width = image.shape[:2]
        assert [p["people_index"] for p in people] == list(range(1, len(people) + 1))
        assert name == demo.demo_image_name(int(people[0]["annolist_index"]))
        for row in people:
            assert (row["img_width"], row["img_height"]) == (width, height)
            joints = np.array(row["joint_self"])
            assert joints.shape == (NUM_JOINTS, 3)
            annotated = np.any(joints != 0, axis=1)
            # 1-based: annotated joints lie in [1, width] x [1, height]
            assert np.all(joints[annotated, 0] >= 1) and np.all(joints[annotated, 0] <= width)
            assert np.all(joints[annotated, 1] >= 1) and np.all(joints[annotated, 1] <= height)
            assert set(joints[annotated, 2]) <= {0.0, 1.0}
            assert annotated[UPPER_NECK] and annotated[HEAD_TOP]
            others = [p for p in people if p is not row]
            assert row["numOtherPeople"] == len(others)
            _check_others(row, others)
            box = boxes[demo.head_box_key(int(row["annolist_index"]), int(row["people_index"]))]
            record = make_record(name, joints[:, :2], annotated, joints[:, 2],
                                 row["objpos"], row["scale_provided"], box)
            assert record.problem() is None


def _check_others(row, others):
    """joint_others & co. in the real file's three shapes: JSONlab empty, bare, list."""
    if not others:
        for key in ("joint_others", "objpos_other", "scale_provided_other"):
            assert row[key] == {"_ArrayType_": "double", "_ArraySize_": [0, 0],
                                "_ArrayData_": None}
    elif len(others) == 1:
        assert row["joint_others"] == others[0]["joint_self"]
        assert row["objpos_other"] == others[0]["objpos"]
        assert row["scale_provided_other"] == others[0]["scale_provided"]
    else:
        assert row["joint_others"] == [o["joint_self"] for o in others]
        assert row["objpos_other"] == [o["objpos"] for o in others]
        assert row["scale_provided_other"] == [o["scale_provided"] for o in others]


def test_committed_demo_has_all_people_layouts_and_missing_joints(committed_rows):
    counts = {}
    for row in committed_rows:
        counts[int(row["numOtherPeople"])] = counts.get(int(row["numOtherPeople"]), 0) + 1
    assert counts.get(0, 0) > 100 and counts.get(1, 0) > 50 and counts.get(2, 0) > 5
    joints = np.array([row["joint_self"] for row in committed_rows])
    missing = np.all(joints == 0, axis=2)
    assert 0.01 < missing.mean() < 0.1            # MPII itself: 6.7 %
    occluded = (joints[:, :, 2] == 0) & ~missing
    assert occluded.any()
    train = sum(1 for row in committed_rows if row["isValidation"] == 0.0)
    assert 350 <= train and 80 <= len(committed_rows) - train


def test_scale_and_head_box_follow_the_mpii_relations(committed_rows):
    """Real MPII: s = 6 x head segment / 200, head box centred on it, 0.6 x diag = 0.75 seg."""
    boxes = _load_json(COMMITTED, demo.HEAD_BOX_FILE)
    for row in committed_rows:
        j = np.array(row["joint_self"])[:, :2]
        segment = float(np.hypot(*(j[HEAD_TOP] - j[UPPER_NECK])))
        assert abs(row["scale_provided"] - 6.0 * segment / 200.0) <= 0.0006
        x1, y1, x2, y2 = boxes["%d,%d" % (row["annolist_index"], row["people_index"])]
        assert x1 < x2 and y1 < y2
        assert np.allclose([(x1 + x2) / 2, (y1 + y2) / 2], (j[HEAD_TOP] + j[UPPER_NECK]) / 2,
                           atol=0.002)
        assert abs(0.6 * math.hypot(x2 - x1, y2 - y1) - 0.75 * segment) < 0.005


def test_hourglass_crop_frames_the_person(committed_rows):
    """Centre + 15*s down, box of 1.25*s*200 px: every annotated joint inside, as in MPII."""
    inside = total = 0
    heights = []
    for row in committed_rows:
        s = row["scale_provided"]
        cx, cy = row["objpos"][0], row["objpos"][1] + 15.0 * s
        half = 1.25 * s * 200.0 / 2.0
        joints = np.array(row["joint_self"])
        annotated = joints[np.any(joints != 0, axis=1)]
        inside += int(np.sum((np.abs(annotated[:, 0] - cx) <= half) &
                             (np.abs(annotated[:, 1] - cy) <= half)))
        total += len(annotated)
        if len(annotated) == NUM_JOINTS:
            heights.append(np.ptp(annotated[:, 1]) / (200.0 * s))
    assert inside / float(total) > 0.995
    # real MPII, all 16 joints annotated: median joint-span height / (200 s) = 0.85
    assert 0.7 < np.median(heights) < 1.05


# ------------------------------------------------------------ labels on the figures
def _scenes(count=24):
    return [demo.render_scene(3, index) for index in range(count)]


def test_visible_joints_lie_on_their_own_figure():
    changed = checked = 0
    for scene in _scenes():
        height, width = scene.part_map.shape
        diff = np.abs(scene.image.astype(np.int16) - scene.background.astype(np.int16)).max(2)
        for person in scene.persons:
            for j in np.flatnonzero(person.annotated):
                x, y = person.joints[j]
                assert 0 <= x <= width - 1 and 0 <= y <= height - 1
                px, py = int(round(x)), int(round(y))
                owner = int(scene.part_map[py, px])
                if person.visible[j]:
                    assert owner // demo.PARTS_PER_PERSON == person.slot
                    assert owner % demo.PARTS_PER_PERSON in demo.JOINT_PARTS[j]
                    checked += 1
                    changed += int(diff[py, px] > 20)
                else:  # occluded: something else covers the joint
                    assert owner == demo.OCCLUDER or owner // demo.PARTS_PER_PERSON != \
                        person.slot or owner % demo.PARTS_PER_PERSON not in demo.JOINT_PARTS[j]
    assert checked > 300
    # the figure is drawn over the joint in a colour that stands out from the background
    assert changed / float(checked) > 0.97


def test_joints_on_disk_sit_on_the_drawn_figure(small):
    """From the JPEG files alone: a visible joint's pixel differs from the plain background."""
    out, _ = small
    rows = _load_json(out, demo.ANNOTATION_FILE)
    names = sorted({row["img_paths"] for row in rows})
    changed = checked = 0
    for index, name in enumerate(names):
        scene = demo.render_scene(7, index)
        image = cv2.imread(os.path.join(out, "images", name)).astype(np.int16)
        diff = np.abs(image - scene.background.astype(np.int16)).max(2)
        for row in rows:
            if row["img_paths"] != name:
                continue
            for x, y, vis in row["joint_self"]:
                if vis == 1.0:
                    checked += 1
                    changed += int(diff[int(round(y - 1)), int(round(x - 1))] > 20)
    assert checked > 80 and changed / float(checked) > 0.95


def test_annotations_are_one_based_pixel_centres(small):
    """A drawn shin is symmetric about its knee-ankle axis, so the centroid of its pixels
    lies on the line through the 0-based joints, i.e. the JSON coordinates minus one."""
    out, _ = small
    rows = _load_json(out, demo.ANNOTATION_FILE)
    names = sorted({row["img_paths"] for row in rows})
    offsets = {0.0: [], 1.0: []}
    for index, name in enumerate(names):
        scene = demo.render_scene(7, index)
        people = [row for row in rows if row["img_paths"] == name]
        for row, person in zip(people, scene.persons):
            joints = np.array(row["joint_self"])
            for knee, ankle, part in ((1, 0, demo.R_SHIN), (4, 5, demo.L_SHIN)):
                if not (joints[knee, 0] > 0 and joints[ankle, 0] > 0):
                    continue
                ys, xs = np.nonzero(scene.part_map == demo.PARTS_PER_PERSON * person.slot + part)
                centroid = np.array([xs.mean(), ys.mean()])
                axis = joints[ankle, :2] - joints[knee, :2]
                normal = np.array([-axis[1], axis[0]]) / np.hypot(*axis)
                for shift in offsets:
                    offsets[shift].append(abs(np.dot(centroid - (joints[knee, :2] - shift),
                                                     normal)))
    assert len(offsets[1.0]) >= 10
    assert np.median(offsets[1.0]) < 0.25          # JSON - 1 = drawn 0-based position
    assert np.median(offsets[0.0]) > 0.5           # ... and the test can tell the difference


def test_right_joints_are_on_the_persons_right():
    """Facing the camera, r_* joints are on the image's left; seen from behind, the right."""
    seen = set()
    for scene in _scenes(40):
        for p in scene.persons:
            if not (p.annotated[[R_SHOULDER, L_SHOULDER, R_HIP, L_HIP]].all()):
                continue
            j = p.joints
            order = [j[R_SHOULDER, 0] < j[L_SHOULDER, 0], j[R_HIP, 0] < j[L_HIP, 0]]
            assert order == [not p.back_view] * 2
            seen.add(p.back_view)
    assert seen == {False, True}


def test_joints_are_float_positions_with_three_decimals(small):
    out, _ = small
    coords = np.array([row["joint_self"] for row in _load_json(out, demo.ANNOTATION_FILE)])
    xy = coords[:, :, :2][np.any(coords != 0, axis=2)]
    assert np.mean(xy != np.round(xy)) > 0.9                      # sub-pixel, not integers
    assert np.allclose(xy * 1000.0, np.round(xy * 1000.0), atol=1e-6)


# ----------------------------------------------------------- against the real MPII file
def test_structure_matches_real_mpii_json(shared_mpii, committed_rows):
    with gzip.open(os.path.join(shared_mpii, "annotations", "mpii_annotations.json.gz"),
                   "rt") as f:
        real = json.load(f)

    def shape(value):  # nesting pattern: dict / list depth / number
        if isinstance(value, dict):
            return "dict:" + ",".join(sorted(value))
        if isinstance(value, list):
            return "list(%s)" % shape(value[0])
        return type(value).__name__

    real_shapes = {}
    for row in real:
        key = min(int(row["numOtherPeople"]), 2)
        real_shapes.setdefault(key, {k: shape(v) for k, v in row.items()})
    assert set(real[0]) == MPII_JSON_KEYS
    for row in committed_rows:
        key = min(int(row["numOtherPeople"]), 2)
        assert {k: shape(v) for k, v in row.items()} == real_shapes[key]
    real_heads = [row for row in real[:2000] if all(row["joint_self"][j][0] > 0
                                                   for j in (UPPER_NECK, HEAD_TOP))]
    ratios = [6.0 * math.hypot(*np.subtract(r["joint_self"][HEAD_TOP][:2],
                                            r["joint_self"][UPPER_NECK][:2])) / 200.0 /
              r["scale_provided"] for r in real_heads]
    assert abs(np.median(ratios) - 1.0) < 0.001   # the relation the demo relies on


# ------------------------------------------------------------------------------- cli
def test_command_line_writes_a_dataset(tmp_path, capsys):
    out = str(tmp_path / "cli")
    assert demo.main([out, "--train-images", "2", "--val-images", "1", "--seed", "4"]) == 0
    assert "3 images" in capsys.readouterr().out
    assert sorted(os.listdir(os.path.join(out, "images"))) == [
        "demo_100001.jpg", "demo_100002.jpg", "demo_100003.jpg"]


def test_bad_arguments_give_a_clear_error(tmp_path, capsys):
    with pytest.raises(ValueError, match="at least one train and one val image"):
        demo.generate_demo_dataset(str(tmp_path / "x"), n_train_images=0)
    with pytest.raises(ValueError, match="image_size"):
        demo.generate_demo_dataset(str(tmp_path / "y"), image_size=((20, 20), (10, 10)))
    with pytest.raises(SystemExit):
        demo.main([str(tmp_path / "z"), "--val-images", "0"])
    assert "at least one train and one val image" in capsys.readouterr().err


# ------------------------------------------------------------------ reading it back
def test_project_reader_and_head_boxes_give_complete_records(committed_rows):
    """The JSON reader keeps the demo's own split (its keys are not official MPII ones),
    and head_boxes.json completes every person for PCKh."""
    from hgpipe.data import split as val_split
    from hgpipe.data.readers import read_mpii_json


    records = read_mpii_json(os.path.join(COMMITTED, demo.ANNOTATION_FILE))
    assert len(records) == len(committed_rows)
    assert all(val_split.val_person(r.annolist_index, r.person_index) is None for r in records)
    assert [r.is_validation for r in records] == [row["isValidation"] == 1.0
                                                  for row in committed_rows]
    boxes = read_head_boxes(os.path.join(COMMITTED, demo.HEAD_BOX_FILE))
    assert len(boxes) == len(records)
    assert all(r.head_box is not None and r.problem() is None for r in records)
    norms = np.array([r.head_normalizer() for r in records])
    segments = np.array([np.hypot(*(r.joints[HEAD_TOP] - r.joints[UPPER_NECK]))
                         for r in records])
    assert np.allclose(norms, 0.75 * segments, atol=0.005)


def test_malformed_head_boxes_are_rejected(tmp_path):
    path = str(tmp_path / "boxes.json")
    for bad in ('{"1,1": [3, 4, 1, 2]}', '{"1": [0, 0, 1, 1]}', '{"1,1": [0, 0, 1]}', "[1]",
                "{not json"):
        with open(path, "w") as f:
            f.write(bad)
        with pytest.raises(ValueError, match="boxes.json"):
            read_head_boxes(path)
