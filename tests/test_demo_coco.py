"""The generated COCO-format demo dataset: determinism, COCO format fidelity (pycocotools
reads it, COCOeval scores its own ground truth 1.0), labels on the figures, and
`hgpipe prepare` on its train and val files writing shards of the COCO set."""
import contextlib
import hashlib
import io
import json
import os

import h5py
import numpy as np
import pytest

from conftest import cli_runner
from hgpipe.cli import main
from hgpipe.data import demo, demo_coco
from hgpipe.joints import COCO

pytest.importorskip("pycocotools")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMITTED = os.path.join(REPO_ROOT, "data", "demo_coco")
TRAIN = os.path.join(COMMITTED, demo_coco.TRAIN_FILE)
VAL = os.path.join(COMMITTED, demo_coco.VAL_FILE)


def _files(root):
    found = {}
    for base, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(base, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, root).replace(os.sep, "/")] = handle.read()
    return found


def _load(path):
    with open(path) as handle:
        return json.load(handle)


def test_regenerating_gives_the_committed_bytes(tmp_path):
    out = str(tmp_path / "demo_coco")
    summary = demo_coco.generate_demo_coco(out)
    committed, fresh = _files(COMMITTED), _files(out)
    assert sorted(committed) == sorted(fresh)
    assert [name for name in committed if committed[name] != fresh[name]] == []
    assert summary["images"] == demo_coco.DEFAULT_TRAIN_IMAGES + demo_coco.DEFAULT_VAL_IMAGES
    assert sum(len(data) for data in committed.values()) < 2 * 1024 * 1024
    for line in committed["SHA256SUMS"].decode("ascii").splitlines():
        digest, name = line.split("  ")
        assert hashlib.sha256(committed[name]).hexdigest() == digest, name


def test_other_seed_gives_other_images(tmp_path):
    out = str(tmp_path / "seed2")
    demo_coco.generate_demo_coco(out, n_train_images=2, n_val_images=1, seed=2)
    with open(os.path.join(out, "images", "coco_demo_000001.jpg"), "rb") as handle:
        assert handle.read() != _files(COMMITTED)["images/coco_demo_000001.jpg"]


def _quiet():
    return contextlib.redirect_stdout(io.StringIO())


def test_pycocotools_reads_it_and_scores_its_ground_truth_one():
    from pycocotools.coco import COCO as Index
    from pycocotools.cocoeval import COCOeval
    with _quiet():
        gt = Index(VAL)
    assert gt.loadCats(1)[0]["keypoints"] == list(COCO.joint_names)
    people = [a for a in gt.loadAnns(gt.getAnnIds(iscrowd=False)) if a["num_keypoints"]]
    assert len(people) > 10 and len(gt.getAnnIds(iscrowd=True)) >= 1
    results = [{"image_id": a["image_id"], "category_id": 1, "score": 1.0,
                "keypoints": a["keypoints"]} for a in people]
    with _quiet():
        evaluation = COCOeval(gt, gt.loadRes(results), "keypoints")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)


def test_labels_sit_on_the_drawn_figures():
    """Every visible (v = 2) keypoint of the first images is on a pixel of its own
    figure in the re-rendered part map, inside its box; v = 0 has x = y = 0."""
    document = _load(TRAIN)
    checked = 0
    for index, image in enumerate(document["images"][:6]):
        scene = demo.render_scene(demo_coco.DEFAULT_SEED, index, demo_coco.IMAGE_SIZE)
        anns = [a for a in document["annotations"]
                if a["image_id"] == image["id"] and not a["iscrowd"]]
        assert len(anns) == len(scene.persons)
        for ann, person in zip(anns, scene.persons):
            x0, y0, w, h = ann["bbox"]
            for x, y, v in np.reshape(ann["keypoints"], (-1, 3)):
                if v == 0:
                    assert x == y == 0
                    continue
                if v == 2:
                    value = int(scene.part_map[int(round(y)), int(round(x))])
                    assert value // demo.PARTS_PER_PERSON == person.slot
                    assert x0 <= x <= x0 + w and y0 <= y <= y0 + h
                    checked += 1
            assert ann["num_keypoints"] == int(np.count_nonzero(ann["keypoints"][2::3]))
    assert checked > 50


def test_prepare_writes_shards_of_the_coco_set(tmp_path):
    out = str(tmp_path / "shards")
    result = cli_runner().invoke(main, [
        "prepare", "--mpii", COMMITTED, "--out", out, "--annotations", TRAIN,
        "--annotations", VAL, "--workers", "1", "--set", "DataSetHG.img_size=64",
        "--set", "DataSetHG.hm_size=16", "--set", "Prepare.variants=1"],
        catch_exceptions=False)
    assert result.exit_code == 0, result.output + result.stderr
    crowd = {name: sum(1 for a in _load(path)["annotations"] if a["iscrowd"])
             for name, path in (("train", TRAIN), ("val", VAL))}
    assert "person_keypoints_val.json: %d coco persons (val); %d annotations left out: " \
           "%d iscrowd (%d kept as crowd regions for OKS AP)" % (
               len([a for a in _load(VAL)["annotations"] if not a["iscrowd"]]),
               crowd["val"], crowd["val"], crowd["val"]) in result.output
    assert "person_keypoints_train.json: %d coco persons (train); %d annotations left " \
           "out: %d iscrowd\n" % (
               len([a for a in _load(TRAIN)["annotations"] if not a["iscrowd"]]),
               crowd["train"], crowd["train"]) in result.output
    with open(os.path.join(out, "manifest.json")) as handle:
        manifest = json.load(handle)
    assert manifest["keypoints"]["name"] == "coco"
    assert manifest["keypoints"]["joint_names"] == list(COCO.joint_names)
    people = {name: [a for a in _load(path)["annotations"] if not a["iscrowd"]]
              for name, path in (("train", TRAIN), ("val", VAL))}
    assert manifest["counts"] == {"train": len(people["train"]), "val": len(people["val"])}
    (val_shard,) = [s["file"] for s in manifest["shards"] if s["split"] == "val"]
    with h5py.File(os.path.join(out, val_shard), "r") as shard:
        assert shard["heatmaps"].shape[1:] == (16, 16, 17)
        assert shard["annotation_id"][:].tolist() == [a["id"] for a in people["val"]]
        assert shard["image_id"][:].tolist() == [a["image_id"] for a in people["val"]]
        assert shard["area"][:].tolist() == [a["area"] for a in people["val"]]
        first = np.reshape(people["val"][0]["keypoints"], (17, 3))
        labelled = first[:, 2] > 0
        np.testing.assert_allclose(shard["gt_joints"][0][labelled], first[labelled, :2] + 1,
                                   atol=1e-4)
        assert shard["gt_annotated"][0].tolist() == labelled.tolist()
