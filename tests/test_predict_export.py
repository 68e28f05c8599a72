"""``hgpipe predict`` on real MPII test images and ``hgpipe export`` (frozen graph,
SavedModel), including frozen graphs moving between TF 1.15 and TF 2.x.

The checkpoint is an untrained tiny network (random weights, random batch-norm
statistics) saved from the inference graph, with the config.ini the trainer would write.
The cross-runtime test runs the interpreter named by ``HGPIPE_OTHER_PYTHON`` on this
file as a worker script (see tests/test_pck_checkpoint.py); without it, it is skipped.
"""
import json
import os
import sys

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:  # when run as the other runtime's worker script
    sys.path.insert(0, REPO_ROOT)

from hgpipe.config import load_config  # noqa: E402
from hgpipe.data import transforms  # noqa: E402
from hgpipe.eval import predict  # noqa: E402
from hgpipe.eval.checkpoint import load_model  # noqa: E402
from hgpipe.eval.export import ExportError, load_frozen_graph  # noqa: E402
from hgpipe.joints import JOINT_NAMES  # noqa: E402
from hgpipe.tf_compat import import_tf  # noqa: E402
from cross_runtime import randomized_initial_values, run_worker, worker_main  # noqa: E402

TINY = ["DataSetHG.img_size=64", "DataSetHG.hm_size=16", "Network.nStacks=2",
        "Network.nFeats=16", "Network.nLow=2", "Network.dropout_rate=0.0"]
SIZE = 64


def write_inference_checkpoint(logdir, seed=0):
    """Untrained inference network + config.ini; returns the checkpoint prefix."""
    tf = import_tf()
    from hgpipe.model.inference import build_inference_graph, model_kwargs
    cfg = load_config(None, TINY)
    os.makedirs(logdir)
    rng = np.random.RandomState(seed)
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(seed)
        build_inference_graph(model_kwargs(cfg), SIZE, "uint8", None)
        values = randomized_initial_values(tf, rng)
        with tf.Session(graph=graph) as sess:
            sess.run(tf.global_variables_initializer(), values)
            prefix = tf.train.Saver().save(sess, os.path.join(logdir, "model.ckpt"),
                                           global_step=3, write_meta_graph=False)
    with open(os.path.join(logdir, "config.ini"), "w") as out:
        out.write(cfg.to_ini())
    return prefix


def sample_images(n=3, seed=4):
    return np.random.RandomState(seed).randint(0, 256, (n, SIZE, SIZE, 3)).astype(np.uint8)


def frozen_heatmaps(path, images):
    with load_frozen_graph(path) as model:
        return model.run(images)


def invoke(command, *args):
    return CliRunner().invoke(command, [str(a) for a in args])


def one_error_line(result, code=1):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("Error: ")
    return lines[-1]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_inference_checkpoint(str(tmp_path_factory.mktemp("ckpt") / "run"))


@pytest.fixture(scope="module")
def checkpoint_heatmaps(checkpoint):
    """images -> heatmaps of the checkpoint (dynamic batch), one model for the module."""
    model = load_model(checkpoint, load_config(None, TINY))
    yield model.run
    model.close()


@pytest.fixture(scope="module")
def val_entries(shared_mpii):
    with open(os.path.join(shared_mpii, "images", "val", "test_mpii.json")) as f:
        return json.load(f)


# --------------------------------------------------------------------------- person box

def test_whole_image_box_covers_the_longer_side_centred():
    for width, height in ((1280, 720), (480, 640)):
        box = predict.box_from_image(width, height)
        to_crop = transforms.image_to_crop_affine(*box.crop(), input_size=SIZE)
        # outer pixel edges of the longer side land on the crop's outer edges
        long_axis = 0 if width >= height else 1
        lo, hi = np.full(2, 0.5), np.array([width + 0.5, height + 0.5])
        ends = transforms.apply_affine(to_crop, np.stack([lo, hi]))
        np.testing.assert_allclose(ends[:, long_axis], [-0.5, SIZE - 0.5], atol=1e-9)
        centre = transforms.apply_affine(to_crop, [(width + 1) / 2.0, (height + 1) / 2.0])
        np.testing.assert_allclose(centre, [(SIZE - 1) / 2.0] * 2, atol=1e-9)
        assert box.source == "image" and box.crop_side() == pytest.approx(max(width, height))


def test_bbox_box_is_centred_with_the_papers_margin():
    box = predict.box_from_bbox(100, 200, 300, 600)  # 200 x 400 person
    assert box.scale == pytest.approx(2.0)  # height / 200, as MPII's scale
    np.testing.assert_allclose(box.objpos, [200, 400 - 15 * 2.0])  # raw objpos above
    to_crop = transforms.image_to_crop_affine(*box.crop(), input_size=SIZE)
    corners = transforms.apply_affine(to_crop, [[100, 200], [300, 600]])
    mid = (SIZE - 1) / 2.0
    # the longer side fills 1/1.25 of the crop, centred; the shorter half of that
    np.testing.assert_allclose(corners[:, 1], [mid - 0.4 * SIZE, mid + 0.4 * SIZE])
    np.testing.assert_allclose(corners[:, 0], [mid - 0.2 * SIZE, mid + 0.2 * SIZE])
    with pytest.raises(ValueError, match="x2 > x1"):
        predict.box_from_bbox(10, 10, 5, 20)
    with pytest.raises(ValueError, match="scale must be a positive number"):
        predict.box_from_center_scale((5, 5), 0)


def test_center_scale_crop_is_the_training_crop(shared_mpii, val_entries):
    """--center/--scale take raw MPII values and crop exactly as prepare does."""
    from hgpipe.data.images import decode_image
    from hgpipe.data.records import make_record
    entry = val_entries[0]
    image = decode_image(os.path.join(shared_mpii, "images", "val", entry["image"]))
    record = make_record(entry["image"], entry["joints"], entry["joints_vis"],
                         center=entry["center"], scale=entry["scale"])
    sample = transforms.make_sample(image, record, transforms.PLAIN, SIZE, SIZE // 4, 1.0)
    crop, crop_to_image = predict.crop_person(
        image, predict.box_from_center_scale(entry["center"], entry["scale"]), SIZE)
    np.testing.assert_array_equal(crop, sample["images"])
    np.testing.assert_allclose(crop_to_image, sample["crop_to_image"], atol=1e-9)


# --------------------------------------------------------------------------- predict

def _predict(*args):
    from hgpipe.cli.predict_cmd import predict_command
    return invoke(predict_command, *(args + ("--draw", "--min-score", -1e9)))  # draw all


def _read_result(out_dir, image_path):
    """The JSON line of ``image_path`` in OUT/predictions.jsonl and its drawing."""
    with open(os.path.join(out_dir, "predictions.jsonl")) as f:
        lines = [json.loads(line) for line in f]
    result, = [line for line in lines if line["image"] == image_path]
    png_path = os.path.join(out_dir, os.path.splitext(os.path.basename(image_path))[0]
                            + ".pose.png")
    drawn = cv2.imread(png_path)
    assert drawn is not None, png_path
    return result, drawn


def test_predict_whole_images(shared_mpii, checkpoint, tmp_path):
    folder = os.path.join(shared_mpii, "images", "test")
    images = sorted(os.path.join(folder, n) for n in os.listdir(folder))[:3]
    out = str(tmp_path / "out")
    result = _predict(*(images + ["--checkpoint", os.path.dirname(checkpoint),
                                  "--out", out]))
    assert result.exit_code == 0, result.output
    for path in images:
        pose, drawn = _read_result(out, path)
        original = cv2.imread(path)
        height, width = original.shape[:2]
        assert (pose["width"], pose["height"]) == (width, height)
        assert drawn.shape == original.shape
        assert pose["box"]["source"] == "image" and not pose["flip_test"]
        assert [j["name"] for j in pose["joints"]] == list(JOINT_NAMES)
        assert [j["id"] for j in pose["joints"]] == list(range(16))
        xy = np.array([[j["x"], j["y"]] for j in pose["joints"]])
        # inside the crop: the square of the longer side centred on the image
        half = max(width, height) / 2.0
        centre = np.array([(width + 1) / 2.0, (height + 1) / 2.0])
        assert np.all(np.abs(xy - centre) <= half + 1e-6)
        assert np.all(np.isfinite([j["score"] for j in pose["joints"]]))
        # the skeleton is drawn where the joints are (1-based -> 0-based pixels)
        inside = [p for p in xy if 1 <= p[0] <= width and 1 <= p[1] <= height]
        assert inside, "an untrained net still predicts some joints inside the image"
        changed = np.any(drawn != original, axis=-1)
        for x, y in inside:
            assert changed[int(round(y - 1)), int(round(x - 1))]


def test_predict_center_scale_matches_the_checkpoint_on_the_training_crop(
        shared_mpii, val_entries, checkpoint, checkpoint_heatmaps, tmp_path):
    """Independent path: prepare's crop -> model -> decode -> crop_to_image."""
    from hgpipe.data.images import decode_image
    from hgpipe.data.records import make_record
    from hgpipe.codec import decode_heatmaps, heatmap_to_crop
    entry = val_entries[1]
    path = os.path.join(shared_mpii, "images", "val", entry["image"])
    out = str(tmp_path / "out")
    result = _predict(path, "--checkpoint", checkpoint, "--out", out, "--center",
                      entry["center"][0], entry["center"][1], "--scale", entry["scale"])
    assert result.exit_code == 0, result.output
    pose, _ = _read_result(out, path)
    assert pose["box"]["source"] == "center"
    assert "wrote 1 person from 1 frame to " in result.output
    np.testing.assert_allclose(pose["box"]["objpos"], entry["center"])

    record = make_record(entry["image"], entry["joints"], entry["joints_vis"],
                         center=entry["center"], scale=entry["scale"])
    sample = transforms.make_sample(decode_image(path), record, transforms.PLAIN, SIZE,
                                    SIZE // 4, 1.0)
    heatmaps = checkpoint_heatmaps(sample["images"][None])
    coords, peaks = decode_heatmaps(heatmaps)
    expected = transforms.apply_affine(sample["crop_to_image"],
                                       heatmap_to_crop(coords[0], SIZE, SIZE // 4))
    got = np.array([[j["x"], j["y"]] for j in pose["joints"]])
    np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_allclose([j["score"] for j in pose["joints"]], peaks[0],
                               rtol=1e-5)


def test_predict_bbox_with_flip(shared_mpii, checkpoint, tmp_path):
    path = os.path.join(shared_mpii, "images", "test", "025508722.jpg")
    out = str(tmp_path / "out")
    result = _predict(path, "--checkpoint", checkpoint, "--out", out, "--flip",
                      "--bbox", 300, 50, 700, 600)
    assert result.exit_code == 0, result.output
    pose, _ = _read_result(out, path)
    assert pose["flip_test"] and pose["box"]["source"] == "bbox"
    xy = np.array([[j["x"], j["y"]] for j in pose["joints"]])
    # inside the crop: 1.25 x 550 px square centred on the box
    assert np.all(np.abs(xy - [500, 325]) <= 1.25 * 550 / 2 + 1e-6)


def test_predict_errors_are_one_line(checkpoint, tmp_path):
    out = str(tmp_path / "out")
    missing = str(tmp_path / "missing.jpg")
    line = one_error_line(_predict(missing, "--checkpoint", checkpoint, "--out", out))
    assert line == "Error: %s: no such image, video or folder" % missing
    assert not os.path.exists(out)  # nothing written, the model not even loaded
    broken = str(tmp_path / "broken.jpg")
    with open(broken, "w") as f:
        f.write("not an image")
    result = _predict(broken, "--checkpoint", checkpoint, "--out", out)
    assert "skipped %s: not a " % broken in result.output  # decode's reason
    assert one_error_line(result) == "Error: 1 image or frame skipped (listed above); " \
        "nothing written"
    assert os.listdir(out) == []
    line = one_error_line(_predict(broken, "--checkpoint", checkpoint, "--out", out,
                                   "--bbox", 1, 2, 3, 4, "--scale", 2), code=2)
    assert "either --bbox or --center/--scale" in line
    line = one_error_line(_predict(broken, "--checkpoint", str(tmp_path / "none"),
                                   "--out", out))
    assert "none: no such checkpoint" in line


# --------------------------------------------------------------------------- export

def _export(*args):
    from hgpipe.cli.export_cmd import export_command
    return invoke(export_command, *args)


def test_export_frozen_graph_and_saved_model_match_the_checkpoint(checkpoint,
                                                                  checkpoint_heatmaps,
                                                                  tmp_path):
    tf = import_tf()
    pb, saved = str(tmp_path / "model.pb"), str(tmp_path / "saved")
    result = _export("--checkpoint", checkpoint, "--out", pb, "--saved-model", saved)
    assert result.exit_code == 0, result.output
    assert "input  node input     uint8    (1, 64, 64, 3)" in result.output
    assert "output node heatmaps  float32  (1, 16, 16, 16)" in result.output

    graph_def = tf.GraphDef()
    with open(pb, "rb") as f:
        graph_def.ParseFromString(f.read())
    ops = {node.op for node in graph_def.node}
    assert "Const" in ops and not any("Variable" in op for op in ops)
    assert not any(node.device for node in graph_def.node)
    # default-valued attributes are gone (what lets TF 1.15 read a TF 2.x graph)
    convs = [n for n in graph_def.node if n.op == "Conv2D"]
    norms = [n for n in graph_def.node if n.op.startswith("FusedBatchNorm")]
    assert convs and norms
    assert not any("dilations" in n.attr or "data_format" in n.attr for n in convs)
    assert not any("data_format" in n.attr for n in norms)

    images = sample_images(1)
    expected = checkpoint_heatmaps(images)
    np.testing.assert_allclose(frozen_heatmaps(pb, images), expected, rtol=1e-5, atol=1e-5)

    graph = tf.Graph()
    with tf.Session(graph=graph) as sess:
        meta = tf.saved_model.loader.load(sess, ["serve"], saved)
        signature = meta.signature_def["serving_default"]
        served = sess.run(signature.outputs["heatmaps"].name,
                          {signature.inputs["images"].name: images})
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-5)


def test_export_float32_dynamic_batch(checkpoint, checkpoint_heatmaps, tmp_path):
    """The float32 input takes 0-1 values and gives what uint8 0-255 gives."""
    pb = str(tmp_path / "float.pb")
    result = _export("--checkpoint", checkpoint, "--out", pb, "--input-dtype", "float32",
                     "--batch-size", 0)
    assert result.exit_code == 0, result.output
    assert "input  node input     float32  (?, 64, 64, 3)" in result.output
    images = sample_images(3)
    np.testing.assert_allclose(frozen_heatmaps(pb, images.astype(np.float32) / 255.0),
                               checkpoint_heatmaps(images),
                               rtol=1e-5, atol=1e-5)


def test_export_errors(checkpoint, tmp_path):
    tf = import_tf()
    line = one_error_line(_export("--checkpoint", str(tmp_path / "nope"), "--out",
                                  str(tmp_path / "m.pb")))
    assert "nope: no such checkpoint" in line
    existing = str(tmp_path / "exists")
    os.makedirs(existing)
    line = one_error_line(_export("--checkpoint", checkpoint, "--out",
                                  str(tmp_path / "m.pb"), "--saved-model", existing))
    assert "exists: already exists" in line
    assert not os.path.exists(str(tmp_path / "m.pb"))

    empty = str(tmp_path / "empty.pb")
    with open(empty, "wb") as f:
        f.write(tf.GraphDef().SerializeToString())
    with pytest.raises(ExportError, match="no 'input' and 'heatmaps' nodes"):
        load_frozen_graph(empty)
    with pytest.raises(ExportError, match="no such frozen graph"):
        load_frozen_graph(str(tmp_path / "absent.pb"))


def test_frozen_graphs_cross_runtimes(other_runtime, checkpoint, checkpoint_heatmaps,
                                      tmp_path):
    """A graph frozen here loads and runs in the other runtime and the other way round,
    from the same checkpoint, with the checkpoint's heatmaps (to 1e-4)."""
    tf = import_tf()
    ours = str(tmp_path / "ours.pb")
    result = _export("--checkpoint", checkpoint, "--out", ours, "--batch-size", 0)
    assert result.exit_code == 0, result.output
    images = sample_images(2, seed=9)
    np.save(str(tmp_path / "images.npy"), images)
    info = run_worker(other_runtime, os.path.abspath(__file__), "cross-export", tmp_path,
                      checkpoint)
    if info["tensorflow"] == tf.__version__:
        pytest.skip("HGPIPE_OTHER_PYTHON runs the same TensorFlow (%s)" % tf.__version__)
    expected = checkpoint_heatmaps(images)
    outputs = {
        "ours here": frozen_heatmaps(ours, images),
        "theirs here": frozen_heatmaps(info["frozen"], images),
        "ours there": np.load(str(tmp_path / "ours_in_other.npy")),
        "theirs there": np.load(str(tmp_path / "theirs_in_other.npy")),
    }
    for name, heatmaps in outputs.items():
        assert heatmaps.shape == expected.shape, name
        np.testing.assert_allclose(heatmaps, expected, rtol=1e-4, atol=1e-4, err_msg=name)


def _worker_cross_export(folder, checkpoint):
    """Other-runtime side: freeze the same checkpoint, run both frozen graphs."""
    tf = import_tf()
    from hgpipe.cli.export_cmd import export_command
    theirs = os.path.join(folder, "theirs.pb")
    export_command.main(["--checkpoint", checkpoint, "--out", theirs, "--batch-size", "0"],
                        standalone_mode=False)
    images = np.load(os.path.join(folder, "images.npy"))
    np.save(os.path.join(folder, "ours_in_other.npy"),
            frozen_heatmaps(os.path.join(folder, "ours.pb"), images))
    np.save(os.path.join(folder, "theirs_in_other.npy"), frozen_heatmaps(theirs, images))
    return {"tensorflow": tf.__version__, "frozen": theirs}


if __name__ == "__main__":
    # worker mode for the cross-runtime test: python tests/test_predict_export.py CMD ARGS
    worker_main({"cross-export": _worker_cross_export})
