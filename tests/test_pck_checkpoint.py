"""Checkpoints as models: finding them, restoring a training checkpoint into the inference
network, ``hgpipe pck --checkpoint`` on real MPII val shards, and restoring a checkpoint
written by the other TensorFlow runtime.

The cross-runtime test runs the interpreter named by ``HGPIPE_OTHER_PYTHON`` (bin/test
sets it to the other lane's venv python) on this very file as a worker script; without
it the test is skipped.
"""
import json
import os
import shutil
import sys

import h5py
import numpy as np
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:  # when run as the other runtime's worker script
    sys.path.insert(0, REPO_ROOT)

from cross_runtime import randomized_initial_values, run_worker, worker_main  # noqa: E402
from hgpipe.config import load_config  # noqa: E402
from hgpipe.eval.checkpoint import (  # noqa: E402
    CheckpointError, find_config, load_model, resolve_checkpoint)
from hgpipe.tf_compat import import_tf  # noqa: E402

# A tiny network on 64 px crops (16 px heatmaps): two stacks so that the inter-stack
# remaps are restored too, one pooling level per hourglass to keep graph building
# (the training graph's gradients above all) quick.
TINY = ["DataSetHG.img_size=64", "DataSetHG.hm_size=16", "Network.nStacks=2",
        "Network.nFeats=16", "Network.nLow=1", "Network.dropout_rate=0.0",
        "Train.batch_size=2"]


# --------------------------------------------------------------------------- helpers

def write_training_checkpoint(logdir, steps=(7,), seed=0, overrides=TINY):
    """Save the *training* graph (optimizer slots, global step, data position and all)
    as the trainer would, once per global step in ``steps``, with non-trivial batch-norm
    statistics, plus config.ini. Returns the last checkpoint prefix."""
    tf = import_tf()
    from hgpipe.train.graph import FeedInput, build_train_graph
    cfg = load_config(None, overrides)
    size, hm = cfg["DataSetHG"]["img_size"], cfg["DataSetHG"]["hm_size"]
    if not os.path.isdir(logdir):
        os.makedirs(logdir)
    rng = np.random.RandomState(seed)
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(seed)
        g = build_train_graph(cfg, FeedInput(cfg["Train"]["batch_size"], size, hm))
        values = randomized_initial_values(tf, rng)
        step = tf.placeholder(tf.int64, ())
        set_step = tf.assign(g.global_step, step)
        with tf.Session(graph=graph) as sess:
            sess.run(tf.global_variables_initializer(), values)
            for value in steps:
                sess.run(set_step, {step: value})
                prefix = g.saver.save(sess, os.path.join(logdir, "model.ckpt"),
                                      global_step=g.global_step, write_meta_graph=False)
    with open(os.path.join(logdir, "config.ini"), "w") as out:
        out.write(cfg.to_ini())
    return prefix


def sample_images(n=3, size=64, seed=1):
    return np.random.RandomState(seed).randint(0, 256, (n, size, size, 3)).astype(np.uint8)


def checkpoint_outputs(prefix, images):
    """Heatmaps of ``images`` from the checkpoint, with the config beside it."""
    cfg = load_config(find_config(prefix))
    with load_model(prefix, cfg) as model:
        return model.run(images)


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("run"))
    write_training_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def val_shards(tmp_path_factory, shared_mpii):
    """Real MPII val shards (the 5 val persons whose images are in ../shared) at 64 px."""
    from click.testing import CliRunner
    from hgpipe.cli.prepare_cmd import prepare_command
    out = str(tmp_path_factory.mktemp("shards"))
    result = CliRunner().invoke(prepare_command, [
        "--mpii", shared_mpii, "--out", out, "--workers", "1",
        "--annotations", os.path.join(shared_mpii, "annotations",
                                      "mpii_annotations.json.gz"),
        "--set", "DataSetHG.img_size=64", "--set", "DataSetHG.hm_size=16",
        "--set", "Prepare.variants=1"])
    assert result.exit_code == 0, result.output
    return out


def _pck(*args):
    from click.testing import CliRunner
    from hgpipe.cli.pck_cmd import pck_command
    return CliRunner().invoke(pck_command, [str(a) for a in args])


# --------------------------------------------------------------------------- finding

def test_resolve_checkpoint_forms(logdir, tmp_path):
    tf = import_tf()
    folder = str(tmp_path / "copy")
    os.makedirs(folder)
    source = resolve_checkpoint(logdir)
    for step in (3, 12):  # the same checkpoint under two step numbers
        for suffix in (".index", ".data-00000-of-00001"):
            shutil.copy(source + suffix, os.path.join(folder, "model.ckpt-%d%s" % (step,
                                                                                  suffix)))
    latest = os.path.join(folder, "model.ckpt-12")
    # without TensorFlow's state file the highest step wins (12 > 3, not "3" > "12")
    assert resolve_checkpoint(folder) == latest
    assert resolve_checkpoint(latest + ".index") == latest
    assert resolve_checkpoint(latest + ".data-00000-of-00001") == latest
    # with a state file, TensorFlow's own notion of "latest" is followed
    older = os.path.join(folder, "model.ckpt-3")
    tf.train.update_checkpoint_state(folder, older)
    assert resolve_checkpoint(folder) == older
    # ... unless it points at files that are gone (a copied logdir)
    tf.train.update_checkpoint_state(folder, os.path.join(folder, "model.ckpt-99"))
    assert resolve_checkpoint(folder) == latest

    with pytest.raises(CheckpointError, match=r"model.ckpt-5: no such checkpoint .*"
                                              r"latest there: model.ckpt-12"):
        resolve_checkpoint(os.path.join(folder, "model.ckpt-5"))
    empty = str(tmp_path / "empty")
    os.makedirs(empty)
    with pytest.raises(CheckpointError, match="no checkpoint in this directory"):
        resolve_checkpoint(empty)
    with pytest.raises(CheckpointError, match="no config.ini beside the checkpoint"):
        find_config(os.path.join(empty, "model.ckpt-1"))


# --------------------------------------------------------------------------- restoring

def test_training_checkpoint_restores_into_inference_network(logdir):
    """Only the network's variables are read, batch-norm statistics included, and the
    model checks what it is fed. (Static against dynamic batches: the pck test.)"""
    tf = import_tf()
    prefix = resolve_checkpoint(logdir)
    cfg = load_config(find_config(prefix))
    images = sample_images(4)
    with load_model(prefix, cfg, batch_size=2) as model:
        assert (model.input_size, model.heatmap_size, model.batch_size) == (64, 16, 2)
        heatmaps = np.concatenate([model.run(images[:2]), model.run(images[2:])])
        names = [v.op.name for v in model.graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES)]
        moving = [v for v in model.graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES)
                  if v.op.name.endswith("moving_variance")]
        restored = model.session.run(moving[0])
        with pytest.raises(ValueError, match="batches of 2"):
            model.run(images[:3])
        with pytest.raises(ValueError, match="uint8"):
            model.run(images[:2].astype(np.float32))
    reader = tf.train.load_checkpoint(prefix)
    np.testing.assert_array_equal(restored, reader.get_tensor(moving[0].op.name))
    assert not np.allclose(restored, 1.0)  # not the initial value
    # the checkpoint holds more than the network (optimizer slots, step, data position)
    stored = set(reader.get_variable_to_shape_map())
    assert set(names) < stored and any("RMSProp" in name for name in stored - set(names))
    assert all(name.startswith("hourglass/") for name in names)
    assert heatmaps.shape == (4, 16, 16, 16) and heatmaps.dtype == np.float32
    # different inputs, different heatmaps: the network is not a constant
    assert np.abs(heatmaps[0] - heatmaps[1]).max() > 1e-3


def test_other_network_config_is_refused_in_one_line(logdir, tmp_path):
    other = str(tmp_path / "other.ini")
    with open(other, "w") as out:
        out.write(load_config(None, TINY + ["Network.nFeats=32"]).to_ini())
    with pytest.raises(CheckpointError) as info:
        load_model(logdir, load_config(other))
    message = str(info.value)
    assert "does not match the config's network (nStacks=2, nFeats=32" in message
    assert "other shapes" in message and "\n" not in message
    deeper = load_config(None, TINY + ["Network.nStacks=3"])
    with pytest.raises(CheckpointError,
                       match=r"variables missing \(first: hourglass/stack1/remap"):
        load_model(logdir, deeper)


# --------------------------------------------------------------------------- pck --checkpoint

class EquivariantOracle(object):
    """A perfect model over the val shards: returns each crop's target heatmaps, and for
    a mirrored crop the mirrored, left/right-swapped targets (what an ideal network
    would output)."""

    def __init__(self, shards_dir, batch_size):
        from hgpipe.data import shards
        from hgpipe.codec import flip_heatmaps
        self.lookup = {}
        for path in shards.shard_paths(shards_dir, "val"):
            with h5py.File(path, "r") as shard:
                for image, target in zip(shard["images"][()], shard["heatmaps"][()]):
                    target = target.astype(np.float32) / 255.0
                    self.lookup[image.tobytes()] = target
                    self.lookup[np.ascontiguousarray(image[:, ::-1]).tobytes()] = \
                        flip_heatmaps(target)
        self.input_size = 64
        self.batch_size = batch_size

    def run(self, images):
        assert len(images) == self.batch_size
        return np.stack([self.lookup[image.tobytes()] for image in images])


def test_predict_shards_maps_heatmap_peaks_back_to_image_pixels(val_shards):
    """With the ideal heatmaps, every annotated joint inside its crop comes back within
    half a heatmap pixel (in image pixels) of its ground truth, with and without the
    flip test."""
    from hgpipe.eval.pred_files import read_ground_truth
    from hgpipe.eval.predict import predict_shards
    oracle = EquivariantOracle(val_shards, batch_size=2)  # 5 persons: last batch padded
    plain, confidence = predict_shards(oracle, val_shards, flip=False)
    flipped, _ = predict_shards(oracle, val_shards, flip=True)
    np.testing.assert_allclose(flipped, plain, atol=1e-9)

    gt = read_ground_truth(val_shards)
    weights, affines = [], []
    from hgpipe.data import shards
    for path in shards.shard_paths(val_shards, "val"):
        with h5py.File(path, "r") as shard:
            weights.append(shard["weights"][()])
            affines.append(shard["crop_to_image"][()])
    weights, affines = np.concatenate(weights) > 0, np.concatenate(affines)
    assert plain.shape == gt.joints.shape == (5, 16, 2) and weights.sum() > 50
    # half a heatmap pixel = 2 crop pixels (stride 4); image pixels per crop pixel from
    # the affine's linear part
    bound = 0.5 * 4 * np.abs(affines[:, :, :2]).sum(axis=2)  # (N, 2) per axis
    error = np.abs(plain - gt.joints)
    assert np.all(error[weights] <= np.repeat(bound[:, None], 16, 1)[weights] + 1e-6)
    assert np.all(confidence[weights] > 0.5)


def test_pck_checkpoint_writes_predictions_and_scores(val_shards, logdir, tmp_path):
    from hgpipe.codec import decode_heatmaps, flip_heatmaps, heatmap_to_crop
    from hgpipe.data.transforms import apply_affine
    from hgpipe.eval.inference import read_val_inputs
    from hgpipe.eval.pred_files import load_predictions, read_ground_truth
    json_a = str(tmp_path / "a.json")
    result = _pck("--checkpoint", logdir, "--data", val_shards, "--batch-size", 2,
                  "--flip", "--json", json_a)
    assert result.exit_code == 0, result.output
    assert "batch 2, flip test on" in result.output
    written = os.path.join(logdir, "predictions-val.h5")  # the default: beside it
    assert "predictions: %s (5 persons)" % written in result.output
    assert "| model.ckpt-7 | tompson | PCKh@0.5 |" in result.output

    preds = load_predictions(written)
    gt = read_ground_truth(val_shards)
    np.testing.assert_array_equal(preds.annolist_index, gt.annolist_index)
    np.testing.assert_array_equal(preds.person_index, gt.person_index)
    with h5py.File(written, "r") as f:
        assert f.attrs["checkpoint"].endswith("model.ckpt-7") and f.attrs["flip_test"]

    # the same numbers by hand: all 5 crops in one dynamic batch (the command ran
    # static batches of 2, the last one padded), flip test, decode, map each crop back
    # with its affine
    images, affines = read_val_inputs(val_shards)
    both = checkpoint_outputs(resolve_checkpoint(logdir),
                              np.concatenate([images, images[:, :, ::-1]]))
    heatmaps = 0.5 * (both[:5] + flip_heatmaps(both[5:]))
    coords, _ = decode_heatmaps(heatmaps)
    crop = heatmap_to_crop(coords, 64, 16)
    expected = np.stack([apply_affine(a, c) for a, c in zip(affines, crop)])
    np.testing.assert_allclose(preds.coords, expected, atol=1e-6)

    # scoring the written file gives the same numbers as the checkpoint mode did
    json_b = str(tmp_path / "b.json")
    result = _pck("--predictions", written, "--gt", val_shards, "--json", json_b)
    assert result.exit_code == 0, result.output
    with open(json_a) as a, open(json_b) as b:
        assert json.load(a)["results"] == json.load(b)["results"]


def test_pck_checkpoint_errors_are_one_line(val_shards, logdir, tmp_path):
    def error_line(result, code=1):
        assert result.exit_code == code, result.output
        assert "Traceback" not in result.output
        return result.output.strip().splitlines()[-1]

    assert "--checkpoint needs --data" in error_line(_pck("--checkpoint", logdir), 2)
    assert "not both" in error_line(_pck("--checkpoint", logdir, "--predictions", "x.h5"), 2)
    assert "--flip only apply with --checkpoint" in error_line(
        _pck("--predictions", "x.h5", "--gt", val_shards, "--flip"), 2)
    missing = str(tmp_path / "nothing" / "model.ckpt-1")
    assert "model.ckpt-1: no such checkpoint" in error_line(
        _pck("--checkpoint", missing, "--data", val_shards))
    wrong = str(tmp_path / "wrong.ini")
    with open(wrong, "w") as out:
        out.write(load_config(None, TINY + ["Network.nLow=2"]).to_ini())
    assert "does not match the config's network" in error_line(
        _pck("--checkpoint", logdir, "--data", val_shards, "--config", wrong))
    # same network on 128 px crops: the weights load, the 64 px shards do not fit
    bigger = str(tmp_path / "bigger.ini")
    with open(bigger, "w") as out:
        out.write(load_config(None, TINY + ["DataSetHG.img_size=128",
                                            "DataSetHG.hm_size=32"]).to_ini())
    assert "val crops are 64 px but the model takes 128 px" in error_line(
        _pck("--checkpoint", logdir, "--data", val_shards, "--config", bigger,
             "--out", str(tmp_path / "never.h5")))
    assert "not a shards directory" in error_line(
        _pck("--checkpoint", logdir, "--data", str(tmp_path)))
    assert not os.path.exists(str(tmp_path / "never.h5"))


# --------------------------------------------------------------------------- cross-runtime

def test_checkpoint_restores_across_runtimes(other_runtime, logdir, tmp_path):
    """A checkpoint saved by this runtime restores in the other one and vice versa, with
    the same heatmaps (to 1e-4) in both."""
    tf = import_tf()
    ours = resolve_checkpoint(logdir)
    images = sample_images(3, seed=5)
    np.save(str(tmp_path / "images.npy"), images)
    info = run_worker(other_runtime, os.path.abspath(__file__), "cross-checkpoint", tmp_path,
                      ours)
    if info["tensorflow"] == tf.__version__:
        pytest.skip("HGPIPE_OTHER_PYTHON runs the same TensorFlow (%s)" % tf.__version__)
    theirs = info["checkpoint"]
    assert os.path.isfile(theirs + ".index") and theirs != ours

    ours_here = checkpoint_outputs(ours, images)
    ours_there = np.load(str(tmp_path / "ours_in_other.npy"))
    np.testing.assert_allclose(ours_there, ours_here, rtol=1e-4, atol=1e-4)
    theirs_there = np.load(str(tmp_path / "theirs_in_other.npy"))
    theirs_here = checkpoint_outputs(theirs, images)
    np.testing.assert_allclose(theirs_here, theirs_there, rtol=1e-4, atol=1e-4)
    # the two checkpoints hold different weights: the comparison is not vacuous
    assert np.abs(ours_here - theirs_here).max() > 1e-2


def _worker_cross_checkpoint(folder, ours):
    """Other-runtime side: restore ``ours``, write a checkpoint of its own, run both."""
    tf = import_tf()
    images = np.load(os.path.join(folder, "images.npy"))
    np.save(os.path.join(folder, "ours_in_other.npy"), checkpoint_outputs(ours, images))
    # another, smaller network (quicker to build), trained-checkpoint layout all the same
    theirs = write_training_checkpoint(os.path.join(folder, "theirs"), steps=(9,), seed=23,
                                       overrides=TINY + ["Network.nStacks=1"])
    np.save(os.path.join(folder, "theirs_in_other.npy"), checkpoint_outputs(theirs, images))
    return {"tensorflow": tf.__version__, "checkpoint": theirs}


if __name__ == "__main__":
    # worker mode for the cross-runtime test: python tests/test_pck_checkpoint.py CMD ARGS
    worker_main({"cross-checkpoint": _worker_cross_checkpoint})


def test_pck_scores_every_predictions_file_given(val_shards, logdir, tmp_path):
    """`--predictions A --predictions B` scores both, each under its own name, with its
    own numbers (it once scored only the last file)."""
    from hgpipe.eval.pred_files import load_predictions, write_predictions
    good = str(tmp_path / "good.h5")
    assert _pck("--checkpoint", logdir, "--data", val_shards, "--out", good).exit_code == 0
    preds = load_predictions(good)
    off = str(tmp_path / "off.h5")  # every joint 1000 px away: PCKh 0
    write_predictions(off, preds.coords + 1000.0, preds.annolist_index, preds.person_index)
    single = _pck("--predictions", good, "--gt", val_shards, "--plain")
    result = _pck("--predictions", good, "--predictions", off, "--gt", val_shards, "--plain")
    assert result.exit_code == 0, result.output
    assert "predictions: %s" % good in result.output
    assert "predictions: %s" % off in result.output
    first, second = result.output.split("predictions: %s" % off)
    assert single.output.strip() in first  # the first file's report, unchanged
    assert "0.00" in second and second.strip() != first.split("predictions: %s" % good)[1].strip()
