"""Hostile torch files (tests/fixtures/make_hostile_torch_files.py, written at test time):
no payload runs, no size bomb allocates, and reader and CLI refuse each in one line.

The payloads are proven live first: a plain ``pickle`` unpickler reading them creates the
canary, so the refusals below are refusals of working exploits.
"""
import os
import subprocess
import sys

import pytest

from conftest import cli_runner
from hgpipe.cli import main
from hgpipe.interop.torch_file import TorchFileError, read_torch_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))
import make_hostile_torch_files as hostile  # noqa: E402


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    os.mkdir(str(root / "files"))
    canary = str(root / "canary")
    return canary, hostile.make_corpus(str(root / "files"), canary)


def test_the_payloads_run_under_a_plain_unpickler(tmp_path):
    live = {}
    for family in sorted(hostile.payloads("x")):
        canary = str(tmp_path / ("canary-" + family))
        ops, is_live = hostile.payloads(canary)[family]
        if is_live:
            live[family] = canary
            with open(str(tmp_path / (family + ".pkl")), "wb") as out:
                out.write(b"\x80\x02" + ops + b".")
    assert len(live) == 13
    script = ("import glob, pickle, sys\n"
              "for path in sorted(glob.glob(sys.argv[1] + '/*.pkl')):\n"
              "    try:\n"
              "        pickle.load(open(path, 'rb'))\n"
              "    except Exception:\n"
              "        pass\n")
    subprocess.check_call([sys.executable, "-c", script, str(tmp_path)])
    assert sorted(f for f, canary in live.items() if not os.path.exists(canary)) == []


def test_the_reader_refuses_every_hostile_file_unrun(corpus):
    canary, files = corpus
    assert len(files) == 166  # docs/bad-input.md's count
    for path, says in files:
        with pytest.raises(TorchFileError) as info:
            read_torch_file(path)
        message = str(info.value)
        assert message.startswith(path + ": ") and "\n" not in message, message
        if says:
            assert says in message, message
        else:  # a payload: refused by the opcode scan or the unpickler, or a bad CRC
            assert any(k in message for k in ("refused unrun", "codec", "CRC")), message
    assert not os.path.exists(canary)


def test_import_weights_refuses_every_hostile_file_in_one_line(corpus, tmp_path):
    canary, files = corpus
    for index, (path, _says) in enumerate(files):
        out = tmp_path / ("out%d" % index)
        result = cli_runner().invoke(main, ["import-weights", path, "--from", "bearpaw",
                                            "--out", str(out)])
        assert result.exit_code == 1, (path, result.output)
        assert "Traceback" not in result.output + result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: %s: " % path), lines
        assert not out.exists()
    assert os.listdir(str(tmp_path)) == []  # no logdir, no staging folder left
    assert not os.path.exists(canary)
