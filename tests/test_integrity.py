"""Shard integrity: `inspect --verify` fails on a damaged, truncated or missing shard."""
import os

import pytest

from conftest import cli_runner, prepare_synthetic_shards
from hgpipe.cli import main
from hgpipe.data.shards import load_manifest


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return prepare_synthetic_shards(tmp_path_factory, 6, 5, "Prepare.variants=2",
                                    "Prepare.shard_size=8")


def copy_of(pristine, tmp_path):
    import shutil
    out = str(tmp_path / "shards")
    shutil.copytree(pristine, out)
    return out


def flip_a_byte(path, offset=-100):
    with open(path, "r+b") as handle:
        handle.seek(offset, os.SEEK_END)
        value = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([value[0] ^ 0xFF]))


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_inspect_verify_exits_1_on_a_damaged_shard(pristine, tmp_path, damage):
    out = copy_of(pristine, tmp_path)
    ok = cli_runner().invoke(main, ["inspect", out, "--verify"])
    assert ok.exit_code == 0 and "checksums: all" in ok.output
    victim = os.path.join(out, load_manifest(out)["shards"][1]["file"])
    if damage == "flip":
        flip_a_byte(victim)
    elif damage == "truncate":
        with open(victim, "r+b") as handle:
            handle.truncate(os.path.getsize(victim) // 2)
    else:
        os.remove(victim)
    result = cli_runner().invoke(main, ["inspect", out, "--verify"])
    assert result.exit_code == 1
    assert "checksums: MISMATCH" in result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert victim in result.stderr and "hgpipe prepare" in result.stderr
