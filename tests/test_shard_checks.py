"""Shards and manifests are checked against the schema before they are read: every
hostile case of tests/fixtures/make_hostile_shards.py ends in one line naming the file
and the field, from `inspect --verify`, the training reader and the ground-truth reader
(issue 19, items 5 and 2)."""
import os
import sys

import numpy as np
import pytest

from conftest import cli_runner, make_synthetic_mpii
from hgpipe.cli import main
from hgpipe.data.shards import ShardError, load_manifest
from hgpipe.train.feeder import ShardBatches

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "fixtures"))
import make_hostile_shards as hostile  # noqa: E402


PREPARE_SETTINGS = ["--workers", "1", "--set", "DataSetHG.img_size=64", "--set",
                    "DataSetHG.hm_size=16", "--set", "Prepare.variants=2", "--set",
                    "Prepare.shard_size=8"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """(the synthetic MPII folder, the shards prepare made from it)."""
    root, _ = make_synthetic_mpii(str(tmp_path_factory.mktemp("data")), n_images=6, seed=5)
    out = str(tmp_path_factory.mktemp("shards") / "good")
    result = cli_runner().invoke(main, ["prepare", "--mpii", root, "--out", out]
                                 + PREPARE_SETTINGS)
    assert result.exit_code == 0, result.output
    return root, out


@pytest.fixture(scope="module")
def pristine(dataset):
    return dataset[1]


def _one_line(result):
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output + result.stderr and len(lines) == 1, lines
    return lines[0]


def test_the_good_folder_passes(pristine):
    result = cli_runner().invoke(main, ["inspect", pristine, "--verify"])
    assert result.exit_code == 0 and "checksums: all" in result.output
    assert sum(e["split"] == "train" for e in load_manifest(pristine)["shards"]) >= 2
    reader = ShardBatches(pristine, "train", 2)
    assert reader.read_batch(0, 0)[0]["images"].dtype == np.uint8
    reader.close()


@pytest.mark.parametrize("case", sorted(hostile.CASES))
def test_inspect_verify_names_file_and_field(pristine, tmp_path, case):
    folder, words = hostile.make_case(pristine, str(tmp_path / case), case)
    line = _one_line(cli_runner().invoke(main, ["inspect", folder, "--verify"]))
    assert words in line
    if case.startswith("manifest") and case != "manifest_count":
        assert os.path.join(folder, "manifest.json") in line
    elif case == "other_config":   # the odd shard is blamed, not the first one
        assert hostile.first_train_shard(folder, 1) in line
    else:
        assert hostile.first_train_shard(folder) in line


@pytest.mark.parametrize("case", hostile.SHARD_CASES)
def test_the_training_reader_refuses_before_reading(pristine, tmp_path, case):
    folder, words = hostile.make_case(pristine, str(tmp_path / case), case)
    with pytest.raises(ShardError) as caught:
        ShardBatches(folder, "train", 2)
    message = str(caught.value)
    blamed = hostile.first_train_shard(folder, 1 if case == "other_config" else 0)
    assert message.startswith(blamed + ": ") and words in message and "\n" not in message


@pytest.mark.parametrize("case", ["manifest_list", "manifest_deep", "manifest_escape"])
def test_train_and_the_prepare_rerun_survive_a_bad_manifest(dataset, tmp_path, case):
    root, pristine = dataset
    folder, words = hostile.make_case(pristine, str(tmp_path / case), case)
    line = _one_line(cli_runner().invoke(main, ["train", "--data", folder, "--logdir",
                                                str(tmp_path / "run")]))
    assert words in line and "manifest.json" in line
    # the same prepare command again: the bad manifest is replaced, the shards kept
    rerun = cli_runner().invoke(main, ["prepare", "--mpii", root, "--out", folder]
                                + PREPARE_SETTINGS)
    assert rerun.exit_code == 0, rerun.output + rerun.stderr
    assert load_manifest(folder)["shards"] == load_manifest(pristine)["shards"]


def test_ground_truth_reader_checks_its_fields(pristine, tmp_path):
    from hgpipe.eval.pred_files import EvalFileError, read_ground_truth
    folder = str(tmp_path / "gt")
    import shutil
    import h5py
    shutil.copytree(pristine, folder)
    val = [os.path.join(folder, e["file"]) for e in load_manifest(folder)["shards"]
           if e["split"] == "val"][0]
    assert read_ground_truth(folder).num_persons > 0
    with h5py.File(val, "r+") as shard:
        del shard["gt_joints"]
        shard.create_dataset("gt_joints", shape=(10 ** 9, 16, 2), dtype=np.float32,
                             chunks=(1, 16, 2))
    with pytest.raises(EvalFileError, match=r"val-00000.h5: dataset gt_joints declares "
                                            r"1000000000 samples"):
        read_ground_truth(folder)
