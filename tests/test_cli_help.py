"""What a newcomer reads first: `--help` of each command (an example each, a top-level
list that is not cut mid-sentence), `--device` spellings, and train without --config."""
import os

import click
import pytest

from conftest import REPO_ROOT, cli_runner
from hgpipe.cli import main
from hgpipe.cli.options import DEVICE

COMMANDS = ("prepare", "inspect", "train", "pck", "predict", "export", "import-weights",
            "bench")


def test_top_level_list_is_whole_sentences():
    result = cli_runner().invoke(main, ["--help"])
    assert result.exit_code == 0
    listed = result.output.split("Commands:")[1].strip().splitlines()
    assert sorted(line.split()[0] for line in listed) == sorted(COMMANDS)
    for line in listed:
        assert not line.endswith("..."), line  # click cut the docstring's first line
        assert line.endswith("."), line


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_has_an_example(command):
    result = cli_runner().invoke(main, [command, "--help"])
    assert result.exit_code == 0
    examples = result.output.split("Examples:")[1].split("Options:")[0]
    assert "hgpipe %s " % command in examples


@pytest.mark.parametrize("spelling,device", [("GPU", "gpu"), ("cuda", "gpu"),
                                             ("CUDA", "gpu"), ("Cpu", "cpu"),
                                             ("NPU", "npu"), ("ascend", "npu"),
                                             ("Ascend", "npu")])
def test_device_spellings(spelling, device):
    assert DEVICE.convert(spelling, None, None) == device


def test_unknown_device_names_the_choices(tmp_path):
    with pytest.raises(click.BadParameter) as info:
        DEVICE.convert("tpu", None, None)
    assert "use cpu, gpu (or cuda) or npu (or ascend)" in str(info.value)
    result = cli_runner().invoke(main, ["train", "--device", "tpu", "--data", str(tmp_path),
                                        "--logdir", str(tmp_path / "run")])
    assert result.exit_code == 2 and "'tpu' is not a device" in result.stderr
    # an accepted spelling gets past the option: the next complaint is the data's
    result = cli_runner().invoke(main, ["train", "--device", "CUDA", "--data",
                                        str(tmp_path / "none"), "--logdir", str(tmp_path)])
    assert result.exit_code == 1 and "shards directory not found" in result.stderr


def test_train_without_config_says_what_it_trains(tmp_path):
    args = ["train", "--data", str(tmp_path / "none"), "--logdir", str(tmp_path / "run")]
    result = cli_runner().invoke(main, args)
    assert result.output.splitlines()[0] == (
        "no --config: training nStacks=4, nFeats=256, nModules=1, nLow=4, tiny=False, "
        "stem=newell, input_mean=None, architecture=newell for 200,000 steps, from the "
        "built-in defaults and any --set (pick a recipe in configs/, e.g. --config "
        "configs/hg2.cfg)")
    result = cli_runner().invoke(main, args + ["--steps", "5", "--set", "Network.nStacks=2"])
    assert "training nStacks=2, " in result.output and " for 5 steps," in result.output
    result = cli_runner().invoke(main, args + ["--config", os.path.join(REPO_ROOT, "configs", "tiny.cfg")])
    assert "no --config" not in result.output
