"""`prepare --annotations A --annotations B` (MMPose ships train and val separately):
both files are read, and a person listed in both is kept once, from the first."""
import json
import os

from conftest import cli_runner, make_synthetic_mpii
from hgpipe.cli import main

SMALL = ["--workers", "1", "--set", "DataSetHG.img_size=64", "--set", "DataSetHG.hm_size=16",
         "--set", "Prepare.variants=1"]


def _prepare(root, out, *annotations):
    args = ["prepare", "--mpii", root, "--out", out] + SMALL
    for path in annotations:
        args += ["--annotations", path]
    return cli_runner().invoke(main, args, catch_exceptions=False)


def test_several_annotation_files_are_merged_first_file_wins(tmp_path):
    root, entries = make_synthetic_mpii(str(tmp_path / "data"), n_images=5, seed=2)
    assert len(entries) >= 4
    whole = os.path.join(root, "annotations", "mpii_annotations.json")
    first, second = str(tmp_path / "train.json"), str(tmp_path / "valid.json")
    half = len(entries) // 2
    with open(first, "w") as out:
        json.dump(entries[:half + 1], out)   # one person also in the second file...
    moved = dict(entries[half], joints=[[1.0, 1.0]] * 16)  # ...with other joints there
    with open(second, "w") as out:
        json.dump([moved] + entries[half + 1:], out)

    merged = _prepare(root, str(tmp_path / "merged"), first, second)
    assert merged.exit_code == 0, merged.output + merged.stderr
    assert "%s: 1 persons already read from an earlier --annotations file; the first " \
           "file's record kept" % second in merged.output
    assert "read %d persons from %s + %s" % (len(entries), first, second) in merged.output
    single = _prepare(root, str(tmp_path / "single"), whole)
    assert single.exit_code == 0, single.output + single.stderr

    def manifest(name):
        with open(str(tmp_path / name / "manifest.json")) as handle:
            return json.load(handle)
    a, b = manifest("merged"), manifest("single")
    assert a["counts"] == b["counts"]
    assert a["annotation_file"] == "train.json + valid.json"
    # the kept record is the first file's: the shards equal those of the whole file
    assert [s["crc32"] for s in a["shards"]] == [s["crc32"] for s in b["shards"]]


def test_the_same_annotation_file_twice_is_one_line(tmp_path):
    root, _ = make_synthetic_mpii(str(tmp_path / "data"), n_images=2, seed=3)
    whole = os.path.join(root, "annotations", "mpii_annotations.json")
    result = _prepare(root, str(tmp_path / "out"), whole, whole)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "Error: %s: the same --annotations file is given twice" % whole]
