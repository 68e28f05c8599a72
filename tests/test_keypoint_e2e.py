"""The COCO-format demo end to end, as a user runs it: `hgpipe prepare` on
data/demo_coco's train and val files, a tiny `hgpipe train`, `hgpipe pck` (OKS AP) and
`hgpipe predict`. The APs are compared with pycocotools' COCOeval run directly on the
demo's own val file and the predictions, with no hgpipe code in between: the
checkpoint's (a 2-step model: AP 0, but the persons, their order and ids are checked)
and near-ground-truth predictions whose AP is well inside (0, 100), scored through
`pck --predictions FILE --gt SHARDS`. They equal COCOeval's on the whole file, whose
crowd regions COCOeval uses to ignore predictions: prepare keeps them beside the val
shards (crowd.json, named and checksummed in the manifest)."""
import contextlib
import io
import json
import os

import h5py
import numpy as np
import pytest

from conftest import cli_runner
from hgpipe.cli import main
from hgpipe.joints import COCO

pytest.importorskip("pycocotools")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(REPO_ROOT, "data", "demo_coco")
TRAIN_FILE = os.path.join(DEMO, "annotations", "person_keypoints_train.json")
VAL_FILE = os.path.join(DEMO, "annotations", "person_keypoints_val.json")
SMALL = ["--set", "DataSetHG.img_size=64", "--set", "DataSetHG.hm_size=16"]
TINY = ["--set", "Network.nStacks=1", "--set", "Network.nFeats=16", "--set",
        "Network.nLow=2", "--set", "Train.batch_size=8", "--set", "Train.log_every=5",
        "--set", "Validation.validate_every=1000", "--set", "Saver.saver_step=1000"]
STATS = ("AP", "AP50", "AP75", "AP_M", "AP_L", "AR", "AR50", "AR75", "AR_M", "AR_L")


def _run(args):
    result = cli_runner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output + result.stderr
    return result


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("coco-e2e"))
    shards, logdir = os.path.join(root, "shards"), os.path.join(root, "train")
    config = os.path.join(REPO_ROOT, "configs", "tiny.cfg")
    _run(["prepare", "--mpii", DEMO, "--out", shards, "--annotations", TRAIN_FILE,
          "--annotations", VAL_FILE, "--workers", "1", "--config", config,
          "--set", "Prepare.variants=1"] + SMALL)
    _run(["train", "--data", shards, "--logdir", logdir, "--config", config,
          "--steps", "2"] + SMALL + TINY)
    preds, report = os.path.join(root, "preds.h5"), os.path.join(root, "pck.json")
    _run(["pck", "--checkpoint", logdir, "--data", shards, "--out", preds,
          "--json", report])
    return root, shards, logdir, preds, report


def _direct_cocoeval(preds, scores, image_ids, crowd=True):
    """COCOeval as a user runs it: COCO(the demo's val file), loadRes(results written
    from the predictions file: COCO's 0-based pixels, the person score MMPose's rescoring
    -- the mean of the joint scores above 0.2). ``crowd=False``: the file without its
    crowd annotations (what hgpipe's val shards hold)."""
    from pycocotools.coco import COCO as Index
    from pycocotools.cocoeval import COCOeval
    results = []
    for xy, joint_scores, image_id in zip(preds, scores, image_ids):
        above = joint_scores > 0.2
        results.append({"image_id": int(image_id), "category_id": 1,
                        "keypoints": np.concatenate([xy - 1.0, joint_scores[:, None]], 1)
                        .ravel().tolist(),
                        "score": float(joint_scores[above].mean()) if above.any() else 0.0})
    with contextlib.redirect_stdout(io.StringIO()):
        if crowd:
            gt = Index(VAL_FILE)
        else:
            with open(VAL_FILE) as handle:
                document = json.load(handle)
            document["annotations"] = [a for a in document["annotations"]
                                       if not a["iscrowd"]]
            gt = Index()
            gt.dataset = document
            gt.createIndex()
        evaluation = COCOeval(gt, gt.loadRes(results), "keypoints")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return [100.0 * v if v >= 0 else float("nan") for v in evaluation.stats]


def _val_ids(shards):
    ids = {"image_id": [], "annotation_id": []}
    for name in sorted(os.listdir(shards)):
        if name.startswith("val-"):
            with h5py.File(os.path.join(shards, name), "r") as shard:
                for key in ids:
                    ids[key].append(shard[key][()])
    return {key: np.concatenate(value) for key, value in ids.items()}


def _val_people():
    with open(VAL_FILE) as handle:
        return [a for a in json.load(handle)["annotations"] if not a["iscrowd"]]


def _saved(report):
    with open(report) as handle:
        saved = json.load(handle)["results"][0]
    assert saved["metric"] == "oks"
    return saved


def test_checkpoint_oks_ap_is_cocoeval_on_the_demo_val_file(run):
    _root, shards, logdir, preds_path, report = run
    with open(os.path.join(logdir, "keypoints.json")) as handle:
        assert json.load(handle)["name"] == "coco"
    with h5py.File(preds_path, "r") as f:
        preds, scores = f["preds"][()], f["scores"][()]
    ids = _val_ids(shards)
    people = _val_people()
    # the val persons are the file's own, in its order (images, then annotations)
    assert ids["annotation_id"].tolist() == [a["id"] for a in people]
    assert preds.shape == (len(people), 17, 2) and scores.shape == (len(people), 17)
    want = _direct_cocoeval(preds, scores, ids["image_id"])
    saved = _saved(report)
    np.testing.assert_allclose([saved["details"][k] for k in STATS], want, equal_nan=True)


@pytest.fixture(scope="module")
def near(run, tmp_path_factory):
    """The file's keypoints moved by seeded noise of a few pixels (a joint per person
    further), scores that rank the persons, scored by `pck --predictions FILE --gt
    SHARDS`: (predictions, scores, image ids, the saved report)."""
    from hgpipe.eval.pred_files import write_predictions
    _root, shards, _logdir, _preds, _report = run
    ids = _val_ids(shards)
    by_id = {a["id"]: a for a in _val_people()}
    rng = np.random.RandomState(22)
    preds, scores = [], []
    for annotation_id in ids["annotation_id"]:
        kps = np.reshape(by_id[int(annotation_id)]["keypoints"], (17, 3)).astype(float)
        xy = kps[:, :2] + 1.0 + rng.normal(0.0, 2.0, (17, 2))   # hgpipe's 1-based pixels
        xy[rng.randint(17)] += rng.uniform(-25, 25, 2)
        preds.append(xy)
        scores.append(rng.uniform(0.1, 1.0, 17))
    preds, scores = np.array(preds), np.array(scores)
    folder = str(tmp_path_factory.mktemp("near"))
    path, report = os.path.join(folder, "near.h5"), os.path.join(folder, "near.json")
    write_predictions(path, preds, keypoints=COCO, scores=scores)
    _run(["pck", "--predictions", path, "--gt", shards, "--json", report])
    return preds, scores, ids["image_id"], _saved(report)


def test_near_ground_truth_oks_ap_is_cocoeval_on_the_whole_val_file(near):
    """An AP neither 0 nor 100, equal to COCOeval's on the demo's val file itself, crowd
    regions included; without them COCOeval gives another AP (the demo's predictions
    do fall in crowd regions, so the crowd file is what makes the two agree)."""
    preds, scores, image_ids, saved = near
    want = _direct_cocoeval(preds, scores, image_ids, crowd=True)
    assert 10.0 < want[0] < 95.0, want
    np.testing.assert_allclose([saved["details"][k] for k in STATS], want, equal_nan=True)
    assert saved["total"] == pytest.approx(want[0])
    without = _direct_cocoeval(preds, scores, image_ids, crowd=False)
    assert abs(without[0] - want[0]) > 0.1, (without, want)


def test_shards_keep_the_val_files_crowd_regions(run):
    """crowd.json holds every crowd annotation of the val file as the file has it
    (segmentation aside), and the manifest names it with its size and CRC-32."""
    import zlib
    _root, shards, _logdir, _preds, _report = run
    with open(VAL_FILE) as handle:
        want = [{k: v for k, v in a.items() if k != "segmentation"}
                for a in json.load(handle)["annotations"] if a["iscrowd"]]
    with open(os.path.join(shards, "crowd.json"), "rb") as handle:
        raw = handle.read()
    kept = json.loads(raw.decode("utf-8"))["annotations"]
    assert want and sorted(kept, key=lambda a: a["id"]) == sorted(want, key=lambda a: a["id"])
    with open(os.path.join(shards, "manifest.json")) as handle:
        entry = json.load(handle)["crowd"]
    assert entry == {"file": "crowd.json", "count": len(want), "bytes": len(raw),
                     "crc32": "%08x" % (zlib.crc32(raw) & 0xFFFFFFFF)}


@pytest.mark.parametrize("damage", ["flip", "not-json", "bad-box"])
def test_a_damaged_crowd_file_is_one_line_naming_it(near, run, tmp_path, damage):
    import shutil
    import zlib
    _root, shards, _logdir, _preds, _report = run
    copy = str(tmp_path / "shards")
    shutil.copytree(shards, copy)
    path = os.path.join(copy, "crowd.json")
    with open(path, "rb") as handle:
        raw = handle.read()
    if damage == "flip":
        raw = raw.replace(b"10049", b"10048", 1)
    else:
        raw = b"{not json" if damage == "not-json" else raw.replace(
            b'"bbox": [', b'"bbox": ["x", ', 1)
        manifest_path = os.path.join(copy, "manifest.json")
        with open(manifest_path) as handle:
            manifest = json.load(handle)
        manifest["crowd"].update(bytes=len(raw), crc32="%08x" % (zlib.crc32(raw) & 0xFFFFFFFF))
        with open(manifest_path, "w") as handle:
            json.dump(manifest, handle)
    with open(path, "wb") as handle:
        handle.write(raw)
    from hgpipe.eval.pred_files import write_predictions
    preds_path = str(tmp_path / "near.h5")
    write_predictions(preds_path, near[0], keypoints=COCO, scores=near[1])
    result = cli_runner().invoke(main, ["pck", "--predictions", preds_path, "--gt", copy],
                                 catch_exceptions=False)
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: %s: crowd regions: " % path) \
        and "Traceback" not in lines[0], lines


def test_predict_names_cocos_joints(run, tmp_path):
    _root, _shards, logdir, _preds, _report = run
    image = os.path.join(DEMO, "images", "coco_demo_001001.jpg")
    out = str(tmp_path / "pred")
    _run(["predict", image, "--checkpoint", logdir, "--out", out])
    with open(os.path.join(out, "predictions.jsonl")) as handle:
        (line,) = handle.read().splitlines()
    pose = json.loads(line)
    assert pose["keypoints"] == "coco"
    assert [j["name"] for j in pose["joints"]] == list(COCO.joint_names)
    assert pose["skeleton"] == [list(limb) for limb in COCO.skeleton]
