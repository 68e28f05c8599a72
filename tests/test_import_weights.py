"""``hgpipe import-weights``: PyTorch Stacked Hourglass checkpoints computed by hgpipe.

The fixtures (tests/fixtures/torch, made once by real torch with
tests/fixtures/make_torch_hourglass_fixtures.py) hold bearpaw/pytorch-pose and
pytorch_stacked_hourglass networks at 2 and 8 stacks with random weights and random
batch-norm statistics, saved as their training scripts save them (2 stacks: the legacy
format, 8 stacks: the zip format), and the torch model's final-stack heatmaps (eval mode)
on a random input. Fewer features than the released 256 keep the files small.
"""
import json
import os
import shutil

import numpy as np
import pytest

from conftest import cli_runner, prepare_synthetic_shards
from hgpipe.cli import main
from hgpipe.config import load_config
from hgpipe.interop import families
from hgpipe.interop.import_weights import map_state_dict, read_state_dict
from hgpipe.tf_compat import import_tf

tf = import_tf()

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "torch")
SMALL = ["--set", "DataSetHG.img_size=64", "--set", "DataSetHG.hm_size=16"]


def fixture(name):
    """(checkpoint path, family, npz with images / heatmaps / stacks / feats)."""
    stem = name.split(".")[0]
    return (os.path.join(FIXTURES, name + ".pth.tar"), stem.split("_")[0],
            np.load(os.path.join(FIXTURES, stem + ".npz")))


def assert_close_to_torch(got, torch_heatmaps):
    """The issue's bar: within 1e-4 of the output's largest magnitude."""
    assert got.shape == torch_heatmaps.shape
    scale = np.abs(torch_heatmaps).max()
    assert scale > 0.1  # a meaningful output, not all zeros
    assert np.abs(got - torch_heatmaps).max() <= 1e-4 * scale


def invoke(*args):
    return cli_runner().invoke(main, [str(a) for a in args])


def error_line(result):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# ------------------------------------------------------------------------ equivalence

def _variables(model_kw):
    from hgpipe.model.hourglass import build_hourglass
    graph = tf.Graph()
    with graph.as_default():
        build_hourglass(tf.placeholder(tf.float32, (1, 64, 64, 3)), is_training=False,
                        **model_kw)
        return [(v.op.name, v.shape.as_list()) for v in tf.global_variables()]


@pytest.mark.parametrize("name", ["bearpaw_s2.legacy", "bearpaw_s8.zip", "psh_s2.legacy",
                                  "psh_s8.zip"])
def test_final_stack_equals_torch(name):
    """Mapping, layouts, stem, input mean and BN statistics: hgpipe's inference network
    with the imported values gives torch's final-stack heatmaps (one graph per case)."""
    from hgpipe.model.hourglass import build_hourglass, input_from_uint8
    path, family, data = fixture(name)
    state = read_state_dict(path, family)
    inferred = families.infer_network(state, family)
    assert inferred == {"n_stacks": int(data["stacks"]), "n_feats": int(data["feats"]),
                        "n_modules": 1, "n_low": 4, "n_joints": 16,
                        "stem": "bearpaw" if family == "bearpaw" else "newell"}
    model_kw = dict(inferred, input_mean=families.FAMILIES[family]["mean"])
    del model_kw["n_joints"]
    graph = tf.Graph()
    with graph.as_default():
        images = tf.placeholder(tf.uint8, (None, 64, 64, 3))
        heatmaps = build_hourglass(input_from_uint8(images), is_training=False,
                                   **model_kw)[-1]
        variables = tf.global_variables()
        values = map_state_dict(state, family, model_kw,
                                [(v.op.name, v.shape.as_list()) for v in variables])
        with tf.Session(graph=graph) as sess:
            sess.run(tf.global_variables_initializer(),
                     {v.initial_value: values[v.op.name] for v in variables})
            got = sess.run(heatmaps, {images: data["images"]})
    assert_close_to_torch(got, data["heatmaps"])


def test_another_architecture_is_refused_naming_the_tensors():
    path, family, _ = fixture("bearpaw_s2.legacy")
    state = read_state_dict(path, family)
    model_kw = dict(families.infer_network(state, family), input_mean=None)
    del model_kw["n_joints"]
    variables = _variables(model_kw)
    map_state_dict(state, family, model_kw, variables)  # the genuine one maps

    changed = dict(state)
    del changed["layer2.0.downsample.0.weight"]
    changed["layer2.0.extra.weight"] = np.zeros(3, np.float32)
    changed["score.1.weight"] = np.zeros((16, 32, 3, 3), np.float32)
    with pytest.raises(families.ArchitectureError) as info:
        map_state_dict(changed, family, model_kw, variables)
    message = str(info.value)
    assert "\n" not in message
    assert "1 missing (first: layer2.0.downsample.0.weight)" in message
    assert "1 unexpected (first: layer2.0.extra.weight)" in message
    assert "score.1.weight is 16x32x3x3, expected 16x32x1x1" in message

    # the newell stem's second residual has no downsample conv: a bearpaw file read with
    # the newell stem would miss nothing but have unexpected and differently shaped ones
    newell = dict(model_kw, stem="newell")
    with pytest.raises(families.ArchitectureError, match="unexpected.*other shapes"):
        map_state_dict(state, family, newell, _variables(newell))


def test_cli_refuses_the_other_family_in_one_line(tmp_path):
    path, _, _ = fixture("psh_s2.legacy")
    out = tmp_path / "logdir"
    line = error_line(invoke("import-weights", path, "--from", "bearpaw", "--out", out))
    assert line.startswith("Error: %s: not a bearpaw/pytorch-pose HourglassNet checkpoint: "
                           "no tensor score.0.weight" % path)
    assert not out.exists() and os.listdir(str(tmp_path)) == []


# ------------------------------------------------------------------ the imported logdir

@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """bearpaw_s2 imported through the command line, at 64 px."""
    path, _, data = fixture("bearpaw_s2.legacy")
    logdir = str(tmp_path_factory.mktemp("imported") / "hg2")
    result = invoke("import-weights", path, "--from", "bearpaw", "--out", logdir, *SMALL)
    assert result.exit_code == 0, result.output + result.stderr
    assert "2 stacks, 32 features, 1 modules, 4 levels, stem bearpaw" in result.output
    assert "input mean: 0.4404 0.4440 0.4327" in result.output
    return logdir, data


def test_imported_logdir_restores_and_exports_torchs_network(imported, tmp_path):
    from hgpipe.eval.checkpoint import open_checkpoint
    from hgpipe.eval.export import load_frozen_graph
    logdir, data = imported
    assert sorted(os.listdir(logdir)) == [
        "checkpoint", "config.ini", "model.ckpt-0.data-00000-of-00001", "model.ckpt-0.index"]
    net = load_config(os.path.join(logdir, "config.ini"))["Network"]
    assert (net["nStacks"], net["nFeats"], net["stem"], net["input_mean"],
            net["dropout_rate"]) == (2, 32, "bearpaw", (0.4404, 0.4440, 0.4327), 0.0)
    with open_checkpoint(logdir) as model:
        assert_close_to_torch(model.run(data["images"]), data["heatmaps"])

    frozen = str(tmp_path / "model.pb")
    result = invoke("export", "--checkpoint", logdir, "--out", frozen, "--batch-size", 0)
    assert result.exit_code == 0, result.output + result.stderr
    with load_frozen_graph(frozen) as model:
        assert_close_to_torch(model.run(data["images"]), data["heatmaps"])

    # a second import into the same logdir is refused and leaves it as it was
    before = sorted(os.listdir(logdir))
    line = error_line(invoke("import-weights", fixture("bearpaw_s2.legacy")[0], "--from",
                             "bearpaw", "--out", logdir))
    assert "already exists and is not empty" in line and sorted(os.listdir(logdir)) == before


def test_imported_logdir_predicts_and_fine_tunes(imported, tmp_path_factory, tmp_path):
    import cv2
    logdir, data = imported
    image = str(tmp_path / "person.png")
    cv2.imwrite(image, np.random.RandomState(0).randint(0, 256, (120, 90, 3), np.uint8))
    result = invoke("predict", image, "--checkpoint", logdir, "--out", tmp_path / "pred")
    assert result.exit_code == 0, result.output + result.stderr
    with open(str(tmp_path / "pred" / "predictions.jsonl")) as handle:
        assert len(json.loads(handle.readline())["joints"]) == 16

    # fine-tuning: the imported weights are the start (step 0, weights only), the run
    # ends at step 1 with a full training checkpoint (later runs resume from it as usual)
    shards = prepare_synthetic_shards(tmp_path_factory, 3, 5, "Prepare.variants=1")
    run = str(tmp_path / "finetune")
    shutil.copytree(logdir, run)
    args = ["train", "--data", shards, "--logdir", run, "--config",
            os.path.join(run, "config.ini"), "--set", "Train.batch_size=2",
            "--set", "Validation.validate_every=0", "--set", "Train.log_every=1"]
    result = invoke(*(args + ["--steps", 1]))
    assert result.exit_code == 0, result.output + result.stderr
    assert "started from the weights in %s" % os.path.join(run, "model.ckpt-0") \
        in result.output
    assert os.path.exists(os.path.join(run, "model.ckpt-1.index"))
    assert "global_step" in dict(tf.train.list_variables(os.path.join(run, "model.ckpt-1")))


def test_pck_checkpoint_on_the_imported_logdir(imported, shared_mpii, tmp_path):
    from hgpipe.cli.prepare_cmd import prepare_command
    logdir, _ = imported
    shards = str(tmp_path / "val")
    result = cli_runner().invoke(prepare_command, [
        "--mpii", shared_mpii, "--out", shards, "--workers", "1",
        "--annotations", os.path.join(shared_mpii, "annotations", "mpii_annotations.json.gz"),
        "--set", "DataSetHG.img_size=64", "--set", "DataSetHG.hm_size=16",
        "--set", "Prepare.variants=1"])
    assert result.exit_code == 0, result.output
    out = str(tmp_path / "preds.h5")
    result = invoke("pck", "--checkpoint", logdir, "--data", shards, "--out", out)
    assert result.exit_code == 0, result.output + result.stderr
    assert "| model.ckpt-0 | tompson | PCKh@0.5 |" in result.output
    assert os.path.exists(out)


def test_imported_logdir_has_ordinary_permissions(imported):
    logdir, _ = imported
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(logdir).st_mode & 0o777 == 0o777 & ~mask  # not mkdtemp's 0700


def test_a_killed_imports_staging_folder_is_removed_by_the_next(tmp_path):
    stale = tmp_path / ".tmp-import-killed"  # what an import killed by SIGKILL left
    stale.mkdir()
    (stale / "model.ckpt-0.index").write_bytes(b"half")
    path, _, _ = fixture("psh_s2.legacy")
    line = error_line(invoke("import-weights", path, "--from", "bearpaw", "--out",
                             tmp_path / "logdir"))
    assert "not a bearpaw" in line and stale.exists()  # refused before staging: kept
    result = invoke("import-weights", path, "--from", "psh", "--out", tmp_path / "logdir",
                    *SMALL)
    assert result.exit_code == 0, result.output + result.stderr
    assert os.listdir(str(tmp_path)) == ["logdir"]


def test_a_checkpoint_of_another_keypoint_set_imports_with_its_set(tmp_path):
    """bearpaw/PSH networks trained on LSP or COCO predict that set's joints: --keypoints
    names the set, the logdir records it (keypoints.json, as train does), and predict
    names its joints; a file whose joint count is not the set's is one line."""
    import cv2
    from hgpipe.interop.import_weights import import_state_dict
    from hgpipe.joints import LSP, KeypointSet
    path, family, _ = fixture("bearpaw_s2.legacy")
    refused = tmp_path / "refused"
    line = error_line(invoke("import-weights", path, "--from", "bearpaw", "--keypoints",
                             "lsp", "--out", refused))
    assert "it predicts 16 joints; the lsp keypoint set has 14" in line
    assert not refused.exists()

    # the fixture's network cut to LSP's 14 heatmaps: a 14-joint bearpaw checkpoint
    k = LSP.num_joints
    state = read_state_dict(path, family)
    sliced = {name: (value[:k] if name.startswith("score.") else
                     value[:, :k] if name.startswith("score_.") and value.ndim == 4 else
                     value) for name, value in state.items()}
    logdir = str(tmp_path / "lsp")
    summary = import_state_dict(sliced, family, logdir, keypoints=LSP, source="sliced",
                                cfg=load_config(None, ["DataSetHG.img_size=64",
                                                       "DataSetHG.hm_size=16"]))
    with open(os.path.join(logdir, "keypoints.json")) as handle:
        assert KeypointSet.from_json(handle.read()) == LSP
    # the last stack's score conv holds torch's (14, C, 1, 1) weights as (1, 1, C, 14)
    reader = tf.train.load_checkpoint(summary["checkpoint"])
    heads = [reader.get_tensor(name) for name, shape in
             tf.train.list_variables(summary["checkpoint"]) if shape[-1:] == [k]
             and len(shape) == 4]
    expected = sliced["score.1.weight"].transpose(2, 3, 1, 0)
    assert any(np.array_equal(head, expected) for head in heads)

    image = str(tmp_path / "person.png")
    cv2.imwrite(image, np.random.RandomState(0).randint(0, 256, (120, 90, 3), np.uint8))
    result = invoke("predict", image, "--checkpoint", logdir, "--out", tmp_path / "pred")
    assert result.exit_code == 0, result.output + result.stderr
    with open(str(tmp_path / "pred" / "predictions.jsonl")) as handle:
        line = json.loads(handle.readline())
    assert [j["name"] for j in line["joints"]] == list(LSP.joint_names)
