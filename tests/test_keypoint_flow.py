"""Keypoint sets after prepare: train, pck, predict and export follow the shards' set.

A tiny network (64 px crops, 16 px heatmaps, 1 stack of 16 features) trains a few steps
on synthetic LSP (14 joints, PCK@0.2 of the torso) and on a 5-joint COCO-format set
(OKS AP) shards, with the device flip on; the logdir records the set, and evaluation,
prediction and export use it: K output channels, the set's names and skeleton. Scores
are checked against numpy (PCK) and against pycocotools' COCOeval run directly (OKS).
"""
import json
import os

import h5py
import numpy as np
import pytest

from conftest import cli_runner, make_synthetic_keypoint_records
from hgpipe import api, codec, joints
from hgpipe.cli import main
from hgpipe.config import load_config
from hgpipe.data.prepare import prepare_records
from hgpipe.data.shards import shard_paths

PREPARE = ["DataSetHG.img_size=64", "DataSetHG.hm_size=16", "Prepare.variants=2",
           "Prepare.shard_size=64"]
TRAIN = ["--set", "Network.nStacks=1", "--set", "Network.nFeats=16",
         "--set", "Network.nLow=2", "--set", "Train.batch_size=4",
         "--set", "Train.device_flip=True", "--set", "Train.log_every=1",
         "--set", "Validation.validate_every=3", "--set", "Saver.saver_step=3"]

# a COCO-format set of its own (OKS): two pairs found from the names, one midline joint
FIVE = joints.from_coco_category({
    "name": "five", "keypoints": ["head", "left_hand", "right_hand", "left_foot",
                                  "right_foot"],
    "skeleton": [[1, 2], [1, 3], [1, 4], [1, 5]]}, sigmas=[0.05, 0.07, 0.07, 0.09, 0.09])


def _val(shards):
    arrays = {}
    for path in shard_paths(shards, "val"):
        with h5py.File(path, "r") as shard:
            for name in shard:
                arrays.setdefault(name, []).append(shard[name][...])
    return {k: np.concatenate(v) for k, v in arrays.items()}


def _trained(tmp_path_factory, keypoints, n_images=9):
    root = str(tmp_path_factory.mktemp("kp-" + keypoints.name))
    records = make_synthetic_keypoint_records(os.path.join(root, "data"), keypoints,
                                              n_images)
    shards = os.path.join(root, "shards")
    prepare_records(load_config(None, PREPARE), records, os.path.join(root, "data"), shards,
                    echo=lambda *a, **k: None)
    logdir = os.path.join(root, "train")
    result = cli_runner().invoke(main, ["train", "--data", shards, "--logdir", logdir,
                                        "--config", _config_path(), "--steps", "3"] + TRAIN,
                                 catch_exceptions=False)
    assert result.exit_code == 0, result.output + result.stderr
    return root, shards, logdir, result.output


def _config_path():
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "configs", "tiny.cfg")


@pytest.fixture(scope="module")
def lsp_run(tmp_path_factory):
    return _trained(tmp_path_factory, joints.LSP)


@pytest.fixture(scope="module")
def five_run(tmp_path_factory):
    return _trained(tmp_path_factory, FIVE)


# ------------------------------------------------------------------------ device flip

def test_device_flip_swaps_the_sets_own_pairs_on_shard_batches(lsp_run):
    """augment_on_device on real LSP shard samples: a flipped sample's heatmaps are
    mirrored with LSP's pairs swapped (codec.flip_heatmaps, the host's numpy flip)."""
    from hgpipe.tf_compat import import_tf
    from hgpipe.train.augment import augment_on_device
    tf = import_tf()
    _root, shards, _logdir, _out = lsp_run
    with h5py.File(shard_paths(shards, "train")[0], "r") as shard:
        images = shard["images"][:8].astype(np.float32) / 255.0
        heatmaps = shard["heatmaps"][:8].astype(np.float32) / codec.HEATMAP_SCALE
        weights = shard["weights"][:8]
    with tf.Graph().as_default(), tf.Session() as sess:
        out = augment_on_device(tf.constant(images), tf.constant(heatmaps),
                                tf.constant(weights), True, 0.0, seed=3, step=0,
                                keypoints=joints.LSP)
        flipped, hm, w, im = sess.run([out.flipped, out.heatmaps, out.weights, out.images])
    assert flipped.any() and not flipped.all()
    perm = list(joints.LSP.flip_permutation)
    assert perm[:6] == [5, 4, 3, 2, 1, 0] and perm[12:] == [12, 13]
    for i in range(len(images)):
        if flipped[i]:
            np.testing.assert_array_equal(hm[i], codec.flip_heatmaps(heatmaps[i],
                                                                     joints.LSP))
            np.testing.assert_array_equal(w[i], weights[i][perm])
            np.testing.assert_array_equal(im[i], images[i][:, ::-1])
        else:
            np.testing.assert_array_equal(hm[i], heatmaps[i])
    # the swap really moved joints: some sample has a paired joint's peak elsewhere
    assert any(not np.array_equal(hm[i], heatmaps[i][:, ::-1]) for i in np.flatnonzero(flipped))


def test_device_geometry_flip_swaps_the_sets_own_pairs():
    """apply_draws (device geometry) with a forced flip: the crop joints of a mirrored
    sample are the mirrored joints with FIVE's pairs swapped, and the heatmap channels
    follow them."""
    from hgpipe.tf_compat import import_tf
    from hgpipe.train.draws import Draws
    from hgpipe.train.geometry import apply_draws
    tf = import_tf()
    rng = np.random.RandomState(0)
    side, size, hm_size = 48, 32, 8
    context = rng.randint(0, 255, (2, side, side, 3)).astype(np.uint8)
    points = rng.uniform(14, 34, (2, 5, 2)).astype(np.float32)
    annotated = np.ones((2, 5), np.float32)
    annotated[:, 1] = 0.0   # left_hand unannotated: its flag must move to right_hand
    with tf.Graph().as_default(), tf.Session() as sess:
        draws = Draws(tf.zeros(2), tf.ones(2), tf.constant([True, False]), None)
        out = apply_draws(tf.constant(context), tf.constant(points), tf.constant(annotated),
                          draws, 1.0, size, hm_size, 1.0, keypoints=FIVE)
        crop_joints, weights = sess.run([out.joints, out.weights])
    mid, mid_context = (size - 1) / 2.0, (side - 1) / 2.0
    plain = points[1] - mid_context + mid
    np.testing.assert_allclose(crop_joints[1], plain, atol=1e-4)
    mirrored = points[0] - mid_context
    mirrored[:, 0] *= -1
    perm = list(FIVE.flip_permutation)
    assert perm == [0, 2, 1, 4, 3]
    np.testing.assert_allclose(crop_joints[0], (mirrored + mid)[perm], atol=1e-4)
    assert weights[0, 2] == 0 and weights[0, 1] == 1 and weights[1, 1] == 0


# ------------------------------------------------------------------------ train

@pytest.mark.parametrize("run", ["lsp_run", "five_run"])
def test_training_records_the_set_and_validates_with_its_metric(run, request):
    root, shards, logdir, output = request.getfixturevalue(run)
    keypoints = joints.LSP if run == "lsp_run" else FIVE
    with open(os.path.join(logdir, "keypoints.json")) as handle:
        assert joints.KeypointSet.from_json(handle.read()) == keypoints
    summary = json.load(open(os.path.join(logdir, "train_summary.json")))
    assert summary["global_step"] == 3
    (entry,) = summary["validation"]
    assert entry["metric"] == keypoints.metric and entry["step"] == 3
    assert ("val PCK@0.2 torso" if keypoints.metric == "pck_torso" else "val OKS AP") \
        in output
    from hgpipe.tf_compat import import_tf
    tf = import_tf()
    shapes = dict(tf.train.list_variables(logdir))
    heads = [shape for name, shape in shapes.items()
             if name.endswith("heatmaps/kernel") or name.endswith("heatmaps/weights")]
    assert heads and all(shape[-1] == keypoints.num_joints for shape in heads), shapes


def test_a_logdir_refuses_shards_of_another_set(lsp_run, five_run):
    _root, _shards, lsp_logdir, _out = lsp_run
    _root, five_shards, _logdir, _out = five_run
    result = cli_runner().invoke(main, ["train", "--data", five_shards, "--logdir",
                                        lsp_logdir, "--config", _config_path(),
                                        "--steps", "4"] + TRAIN)
    assert result.exit_code != 0
    text = result.output + result.stderr
    assert "trained on the lsp keypoint set (14 joints)" in text and "five" in text
    assert "Traceback" not in text


# ------------------------------------------------------------------------ evaluate

def _numpy_pck_torso(pred, gt, annotated, torso=(9, 2), threshold=0.2):
    """eval_pck.m's PCK written out again: distance <= 0.2 x ||gt[a] - gt[b]||."""
    per_joint, hits_all, counted_all = [], 0, 0
    for j in range(gt.shape[1]):
        hits = counted = 0
        for n in range(gt.shape[0]):
            if not annotated[n, j]:
                continue
            counted += 1
            norm = np.sqrt(((gt[n, torso[0]] - gt[n, torso[1]]) ** 2).sum())
            ok = annotated[n, torso[0]] and annotated[n, torso[1]] and norm > 0
            if ok and np.sqrt(((pred[n, j] - gt[n, j]) ** 2).sum()) <= threshold * norm:
                hits += 1
        per_joint.append(100.0 * hits / counted if counted else float("nan"))
        hits_all, counted_all = hits_all + hits, counted_all + counted
    return per_joint, 100.0 * hits_all / counted_all


def test_pck_on_lsp_is_pck_torso_of_the_written_predictions(lsp_run):
    root, shards, logdir, _out = lsp_run
    out = os.path.join(root, "preds.h5")
    json_path = os.path.join(root, "pck.json")
    lines = []
    (result,) = api.evaluate(logdir, shards, out=out, json_path=json_path,
                             echo=lines.append)
    assert result.metric == "pck_torso" and len(result.per_joint) == 14
    with h5py.File(out, "r") as f:
        preds, scores = f["preds"][()], f["scores"][()]
        assert joints.KeypointSet.from_json(f.attrs["keypoints"]) == joints.LSP
    val = _val(shards)
    assert preds.shape == val["gt_joints"].shape == (3, 14, 2) and scores.shape == (3, 14)
    per_joint, total = _numpy_pck_torso(preds, val["gt_joints"], val["gt_annotated"] > 0)
    assert result.total == pytest.approx(total)
    np.testing.assert_allclose(result.per_joint, per_joint)
    text = "\n".join(lines)
    assert "PCK@0.2 of the torso" in text and "| r_ankle |" in text and "| Total |" in text
    saved = json.load(open(json_path))
    assert saved["keypoints"] == "lsp" and saved["results"][0]["total"] == pytest.approx(total)

    # the same file through `pck --predictions ... --gt SHARDS`, and near-perfect
    # predictions (the ground truth moved by 1 px) score what numpy says
    result = cli_runner().invoke(main, ["pck", "--predictions", out, "--gt", shards])
    assert result.exit_code == 0, result.output + result.stderr
    assert "| Total | %.2f |" % total in result.output
    near = os.path.join(root, "near.h5")
    moved = val["gt_joints"] + np.array([1.0, 0.0])
    moved[1, 3] += 40.0   # one joint far off
    from hgpipe.eval.pred_files import write_predictions
    write_predictions(near, moved, keypoints=joints.LSP, scores=np.ones((3, 14)))
    result = cli_runner().invoke(main, ["pck", "--predictions", near, "--gt", shards])
    assert result.exit_code == 0, result.output + result.stderr
    _per, near_total = _numpy_pck_torso(moved, val["gt_joints"], val["gt_annotated"] > 0)
    assert 50 < near_total < 100
    assert "| Total | %.2f |" % near_total in result.output


def test_pck_refuses_mpii_ground_truth_and_plots_for_other_sets(lsp_run, tmp_path):
    root, shards, logdir, _out = lsp_run
    mpii_gt = str(tmp_path / "detections_our_format.mat")
    open(mpii_gt, "wb").close()
    for extra, words in ((["--gt", mpii_gt], "is MPII ground truth"),
                         (["--plot", str(tmp_path / "p.png")], "--plot draws PCKh curves")):
        result = cli_runner().invoke(main, ["pck", "--checkpoint", logdir, "--data",
                                            shards, "--out", str(tmp_path / "x.h5")] + extra)
        assert result.exit_code != 0
        text = result.output + result.stderr
        assert words in text and "lsp" in text and "Traceback" not in text
        # one line (click 8.2's output holds stderr as well: the same line twice)
        assert len({line for line in text.splitlines() if line.startswith("Error")}) == 1
    # an MPII predictions file against LSP shards: one line too
    from hgpipe.eval.pred_files import write_predictions
    mpii_preds = str(tmp_path / "mpii.h5")
    write_predictions(mpii_preds, np.ones((3, 16, 2)))
    result = cli_runner().invoke(main, ["pck", "--predictions", mpii_preds, "--gt", shards])
    assert result.exit_code != 0 and "Traceback" not in result.output + result.stderr
    assert "(N, 14, 2)" in result.output + result.stderr


def _direct_cocoeval(tmp_path, val, preds, scores, sigmas, names):
    """COCOeval as a user runs it on files: COCO(gt file), loadRes(results file),
    the set's sigmas; hgpipe's 1-based pixels are COCO's 0-based + 1."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    n = len(preds)
    annotations, results = [], []
    for i in range(n):
        seen = val["gt_annotated"][i] > 0
        xy = val["gt_joints"][i] - 1.0
        kps = np.concatenate([np.where(seen[:, None], xy, 0), 2.0 * seen[:, None]], 1)
        low, high = xy[seen].min(0), xy[seen].max(0)
        annotations.append({"id": int(val["annotation_id"][i]),
                            "image_id": int(val["image_id"][i]), "category_id": 1,
                            "iscrowd": 0, "num_keypoints": int(seen.sum()),
                            "area": float(val["area"][i]),
                            "keypoints": kps.ravel().tolist(),
                            "bbox": [float(low[0]), float(low[1]),
                                     float(high[0] - low[0]), float(high[1] - low[1])]})
        above = scores[i] > 0.2   # MMPose's rescoring (keypoint_metrics.person_scores)
        score = float(scores[i][above].mean()) if above.any() else 0.0
        triples = np.concatenate([preds[i] - 1.0, scores[i][:, None]], 1)
        results.append({"image_id": int(val["image_id"][i]), "category_id": 1,
                        "keypoints": triples.ravel().tolist(), "score": score})
    gt_file, res_file = str(tmp_path / "gt.json"), str(tmp_path / "res.json")
    json.dump({"images": [{"id": int(i)} for i in sorted(set(val["image_id"].tolist()))],
               "annotations": annotations,
               "categories": [{"id": 1, "name": "x", "keypoints": list(names)}]},
              open(gt_file, "w"))
    json.dump(results, open(res_file, "w"))
    coco = COCO(gt_file)
    evaluator = COCOeval(coco, coco.loadRes(res_file), "keypoints")
    evaluator.params.kpt_oks_sigmas = np.array(sigmas)
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return [100.0 * v if v >= 0 else float("nan") for v in evaluator.stats]


def test_pck_on_an_oks_set_is_cocoeval_of_the_written_predictions(five_run, tmp_path):
    root, shards, logdir, _out = five_run
    out = str(tmp_path / "preds.h5")
    lines = []
    (result,) = api.evaluate(logdir, shards, out=out, echo=lines.append)
    assert result.metric == "oks"
    with h5py.File(out, "r") as f:
        preds, scores = f["preds"][()], f["scores"][()]
    val = _val(shards)
    assert preds.shape == (3, 5, 2) and scores.shape == (3, 5)
    want = _direct_cocoeval(tmp_path, val, preds, scores, FIVE.oks_sigmas, FIVE.joint_names)
    got = [result.details[k] for k in ("AP", "AP50", "AP75", "AP_M", "AP_L", "AR", "AR50",
                                       "AR75", "AR_M", "AR_L")]
    np.testing.assert_allclose(got, want, equal_nan=True)
    assert "OKS AP" in "\n".join(lines) and "| AP50 |" in "\n".join(lines)

    # near-perfect predictions (one joint off) through the predictions-file path: a
    # score well above zero, still COCOeval's
    from hgpipe.eval.pred_files import write_predictions
    moved = val["gt_joints"] + 0.5
    moved[0, 0] += 30.0
    near_scores = np.linspace(0.5, 0.9, 15).reshape(3, 5)
    near = str(tmp_path / "near.h5")
    write_predictions(near, moved, keypoints=FIVE, scores=near_scores)
    json_path = str(tmp_path / "near.json")
    result = cli_runner().invoke(main, ["pck", "--predictions", near, "--gt", shards,
                                        "--json", json_path])
    assert result.exit_code == 0, result.output + result.stderr
    want = _direct_cocoeval(tmp_path, val, moved, near_scores, FIVE.oks_sigmas,
                            FIVE.joint_names)
    assert want[0] > 30
    saved = json.load(open(json_path))["results"][0]
    assert saved["total"] == pytest.approx(want[0])
    assert saved["details"]["AP75"] == pytest.approx(want[2])


# ------------------------------------------------------------------------ predict, export

def test_predict_writes_the_sets_joints_names_and_skeleton(lsp_run, tmp_path):
    root, _shards, logdir, _out = lsp_run
    image = os.path.join(root, "data", "images", "kp_000.jpg")
    out = str(tmp_path / "pred")
    result = cli_runner().invoke(main, ["predict", image, "--checkpoint", logdir, "--out",
                                        out, "--draw"])
    assert result.exit_code == 0, result.output + result.stderr
    (line,) = open(os.path.join(out, "predictions.jsonl")).read().splitlines()
    record = json.loads(line)
    assert [j["name"] for j in record["joints"]] == list(joints.LSP.joint_names)
    assert record["keypoints"] == "lsp"
    assert [tuple(limb) for limb in record["skeleton"]] == list(joints.LSP.skeleton)
    assert os.path.isfile(os.path.join(out, "kp_000.pose.png"))
    with api.load(logdir, batch_size=2) as model:
        poses = model.predict_many([np.zeros((90, 120, 3), np.uint8)] * 3, color="rgb")
    assert all(p.joints.shape == (14, 2) and p.scores.shape == (14,) for p in poses)


def test_export_has_the_sets_channels_and_names_them(five_run, tmp_path):
    from hgpipe.eval.export import load_frozen_graph
    _root, _shards, logdir, _out = five_run
    pb = str(tmp_path / "model.pb")
    result = cli_runner().invoke(main, ["export", "--checkpoint", logdir, "--out", pb,
                                        "--batch-size", "2"])
    assert result.exit_code == 0, result.output + result.stderr
    assert "five joint order" in result.output
    with load_frozen_graph(pb) as frozen:
        heatmaps = frozen.run(np.zeros((2, 64, 64, 3), np.uint8))
    assert heatmaps.shape == (2, 16, 16, 5)
    with open(str(tmp_path / "model.keypoints.json")) as handle:
        assert joints.KeypointSet.from_json(handle.read()) == FIVE
