"""The Python API as a notebook user calls it, end to end, against the commands: prepare,
train, evaluate and predict from ``import hgpipe`` give what the CLI gives.

Tiny on purpose: 6 synthetic images, configs/tiny.cfg shrunk to batch 2, 3 steps; on one
machine two runs of the same steps are bit-identical (docs/reproducibility.md).
"""
import json
import re
import os

import cv2
import h5py
import numpy as np
import pytest

from conftest import REPO_ROOT, cli_runner, make_synthetic_mpii

TINY_CFG = os.path.join(REPO_ROOT, "configs", "tiny.cfg")
SETTINGS = ["Network.nFeats=16", "Prepare.variants=1", "Train.batch_size=2",
            "Validation.validate_every=0", "Train.log_every=1",
            "Saver.saver_step=1000"]


def cli(*args):
    from hgpipe.cli import main
    extra = []
    for item in SETTINGS if args[0] in ("prepare", "train") else ():
        extra += ["--set", item]
    result = cli_runner().invoke(main, [str(a) for a in args] + extra)
    assert result.exit_code == 0, result.output + result.stderr
    return result


@pytest.fixture(scope="module")
def notebook(tmp_path_factory):
    """What a notebook does, and the same through the commands."""
    import hgpipe
    root, _ = make_synthetic_mpii(str(tmp_path_factory.mktemp("data")), n_images=6, seed=3)
    work = tmp_path_factory.mktemp("work")
    runs = {"root": root, "work": work, "lines": []}
    echo = runs["lines"].append
    runs["manifest"] = hgpipe.prepare(root, str(work / "api_shards"), config=TINY_CFG,
                                      overrides=SETTINGS, workers=1, echo=echo)
    cli("prepare", "--mpii", root, "--out", work / "cli_shards", "--workers", 1,
        "--config", TINY_CFG)
    runs["summary"] = hgpipe.train_model(str(work / "api_shards"), str(work / "api_run"),
                                   config=TINY_CFG, overrides=SETTINGS, steps=3, echo=echo)
    cli("train", "--data", work / "cli_shards", "--logdir", work / "cli_run", "--config",
        TINY_CFG, "--steps", 3)
    return runs


def test_prepare_from_python_writes_the_commands_shards(notebook):
    work = notebook["work"]
    manifest = notebook["manifest"]
    assert manifest["counts"]["train"] > 0 and manifest["counts"]["val"] > 0
    for entry in manifest["shards"]:
        with h5py.File(str(work / "api_shards" / entry["file"]), "r") as a, \
                h5py.File(str(work / "cli_shards" / entry["file"]), "r") as b:
            np.testing.assert_array_equal(a["images"][:], b["images"][:])
            np.testing.assert_array_equal(a["heatmaps"][:], b["heatmaps"][:])


def test_train_from_python_is_the_command(notebook):
    work = notebook["work"]
    summary = notebook["summary"]
    assert summary["status"] == "completed" and summary["global_step"] == 3
    with open(str(work / "cli_run" / "train_summary.json")) as handle:
        from_cli = json.load(handle)
    assert summary["first_loss"] == from_cli["first_loss"]
    assert summary["final_loss"] == from_cli["final_loss"]


def test_train_needs_a_config():
    import hgpipe
    with pytest.raises(ValueError, match="train needs a config"):
        hgpipe.train_model("shards", "run", config=None)


def test_evaluate_from_python_is_pck(notebook):
    import hgpipe
    work = notebook["work"]
    lines = []
    results = hgpipe.evaluate(str(work / "api_run"), str(work / "api_shards"),
                              out=str(work / "api_preds.h5"), echo=lines.append)
    output = cli("pck", "--checkpoint", work / "api_run", "--data", work / "api_shards",
                 "--out", work / "cli_preds.h5").output
    with h5py.File(str(work / "api_preds.h5"), "r") as a, \
            h5py.File(str(work / "cli_preds.h5"), "r") as b:
        np.testing.assert_array_equal(a["preds"][:], b["preds"][:])
    mean = results[0].columns["Mean"]
    assert results[0].convention.name == "tompson" and 0 <= mean <= 100
    table = [line for line in output.splitlines() if "| tompson | PCKh@0.5 |" in line]
    assert table and table[0].rstrip(" |").endswith("%.2f" % mean)
    assert [line for line in "\n".join(lines).splitlines()
            if "| tompson | PCKh@0.5 |" in line] == table


def test_predict_from_python_is_the_command(notebook, tmp_path):
    import hgpipe
    work = notebook["work"]
    images_dir = os.path.join(notebook["root"], "images")
    paths = sorted(os.path.join(images_dir, n) for n in os.listdir(images_dir))[:3]
    out = tmp_path / "pred"
    cli("predict", *(paths + ["--checkpoint", work / "api_run", "--out", out]))
    with open(str(out / "predictions.jsonl")) as handle:
        lines = [json.loads(line) for line in handle]
    assert [line["image"] for line in lines] == paths

    with hgpipe.load(str(work / "api_run")) as model:
        bgr = [cv2.imread(p) for p in paths]
        poses = model.predict_many(bgr, color="bgr")
        for pose, line in zip(poses, lines):
            np.testing.assert_array_equal(
                pose.joints, [[j["x"], j["y"]] for j in line["joints"]])
            np.testing.assert_array_equal(pose.scores, [j["score"] for j in line["joints"]])
            assert pose.to_dict()["box"] == line["box"]
        # the colour order is an argument: RGB said to be RGB is the same prediction;
        # said to be BGR (the silent mistake) it is not
        rgb = bgr[0][..., ::-1]
        same = model.predict(rgb, color="RGB")
        np.testing.assert_array_equal(same.joints, poses[0].joints)
        wrong = model.predict(rgb, color="bgr")
        assert not np.array_equal(wrong.scores, poses[0].scores)
        with pytest.raises(TypeError):
            model.predict(rgb)  # no default
        with pytest.raises(ValueError, match="color must be 'rgb' or 'bgr'"):
            model.predict(rgb, color="hsv")
        # a box, and one batch for several persons of one image
        box = (20, 10, 200, 230)
        boxed, whole = model.predict_many([bgr[0], bgr[0]], color="bgr", boxes=[box, None])
        np.testing.assert_array_equal(whole.joints, poses[0].joints)
        assert boxed.box.source == "bbox" and boxed.to_dict()["box"]["source"] == "bbox"


def test_the_train_command_runs_the_api_function(monkeypatch, tmp_path):
    """One code path: ``hgpipe train`` is :func:`hgpipe.train_model` with the command's
    options (the config object it built, a bar on a terminal, its notes)."""
    import hgpipe.api
    from hgpipe.cli import main
    calls = []

    def recorded(data_dir, logdir, config, **options):
        calls.append((data_dir, logdir, config, options))
        return {"status": "completed"}

    monkeypatch.setattr(hgpipe.api, "train_model", recorded)
    result = cli_runner().invoke(main, ["train", "--data", str(tmp_path / "s"), "--logdir",
                                        str(tmp_path / "r"), "--config", TINY_CFG,
                                        "--steps", "7", "--device", "CUDA"])
    assert result.exit_code == 0, result.output
    [(data_dir, logdir, config, options)] = calls
    assert (data_dir, logdir) == (str(tmp_path / "s"), str(tmp_path / "r"))
    assert config.sources and options["steps"] == 7 and options["device"] == "gpu"
    assert options["progress"] is True and options["notes"] == []


def _readme_files(command):
    """The paths README's *Files each command writes* table names for ``command``."""
    with open(os.path.join(REPO_ROOT, "README.md")) as handle:
        text = handle.read()
    section = text[text.index("## Files each command writes"):]
    section = section[:section.index("\n## ")]
    row = [line for line in section.splitlines() if line.startswith("| `%s " % command)][0]
    written = row.split("|")[2]
    return re.findall(r"`([A-Z]+/[^`]+)`", written)


@pytest.mark.parametrize("command,folder", [("prepare", "cli_shards"), ("train", "cli_run")])
def test_readme_files_table_names_what_the_command_wrote(notebook, command, folder):
    import glob
    paths = _readme_files(command)
    assert len(paths) >= 4
    missing = []
    for path in paths:
        _, rest = path.split("/", 1)
        rest = re.sub(r"N+", "*", rest)   # train-NNNNN.h5, model.ckpt-N.index
        if not glob.glob(os.path.join(str(notebook["work"] / folder), rest)):
            missing.append(path)
    assert not missing, (missing, sorted(os.listdir(str(notebook["work"] / folder))))
