"""`hgpipe prepare` end to end: schema, geometry on real MPII images, skips, determinism,
resume after a kill."""
import glob
import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import REPO_ROOT, cli_runner, make_synthetic_mpii
from hgpipe.cli import main
from hgpipe.codec import (HEATMAP_SCALE, heatmap_to_crop, quantize_heatmaps,
                          render_heatmaps)
from hgpipe.data import schema
from hgpipe.data.shards import (RowWriter, ShardError, file_crc32, file_sha256,
                                load_manifest, shard_paths, verify_checksums)
from hgpipe.data.transforms import apply_affine
from hgpipe.joints import FLIP_PERMUTATION

SMALL = ["--set", "Prepare.variants=3", "--set", "Prepare.shard_size=8",
         "--set", "DataSetHG.img_size=64", "--set", "DataSetHG.hm_size=16"]


def run_cli(*args):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


def read_split(out, split):
    arrays = {}
    for path in shard_paths(out, split):
        with h5py.File(path, "r") as shard:
            for name in shard:
                arrays.setdefault(name, []).append(shard[name][...])
    return {k: np.concatenate(v) for k, v in arrays.items()}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("synthetic"))
    return make_synthetic_mpii(root, n_images=9)


def test_schema_manifest_and_geometry(synthetic, tmp_path):
    root, entries = synthetic
    out = str(tmp_path / "shards")
    result = run_cli("prepare", "--mpii", root, "--out", out, "--workers", "1", *SMALL)
    assert result.exit_code == 0, result.output
    manifest = load_manifest(out)
    n_train = sum(1 for e in entries if not e["isValidation"])
    n_val = len(entries) - n_train
    assert manifest["counts"] == {"train": 3 * n_train, "val": n_val}
    assert manifest["schema_version"] == schema.SCHEMA_VERSION
    for entry in manifest["shards"]:
        assert file_crc32(os.path.join(out, entry["file"])) == entry["crc32"]
    for split in ("train", "val"):
        spec = schema.datasets(64, 16, split)
        for path in shard_paths(out, split):
            with h5py.File(path, "r") as shard:
                assert set(shard) == set(spec)
                for name, (shape, dtype, _) in spec.items():
                    assert shard[name].shape[1:] == tuple(shape)
                    assert shard[name].dtype == np.dtype(dtype)
    train = read_split(out, "train")
    # every training sample's joints map back through crop_to_image to its annotation
    by_key = {(e["img_paths"], int(e["people_index"])): np.array(e["joint_self"]) for e in entries}
    for i in range(len(train["images"])):
        ann = by_key[(train["image_name"][i].decode(), int(train["person_index"][i]))]
        expected = ann[:, :2][list(FLIP_PERMUTATION)] if train["flipped"][i] else ann[:, :2]
        back = apply_affine(train["crop_to_image"][i],
                            heatmap_to_crop(train["joints"][i].astype(np.float64), 64, 16))
        seen = train["weights"][i] > 0
        assert np.abs(back - expected)[seen].max() < 0.01
    assert 0 < train["flipped"].mean() < 1 and np.any(train["rotation"] != 0)
    # stored heatmaps: the full Gaussians of the stored joints, quantised (the windowed
    # renderer prepare uses must not change a byte)
    sigma = manifest["config"]["Prepare"]["sigma"]
    for i in range(len(train["images"])):
        full = render_heatmaps(train["joints"][i], train["weights"][i], 16, sigma)
        assert np.array_equal(train["heatmaps"][i],
                              quantize_heatmaps(full, HEATMAP_SCALE))
    assert train["heatmaps"].any()
    val = read_split(out, "val")
    assert not val["flipped"].any() and not val["rotation"].any()


def test_skips_are_reported_and_nothing_usable_fails(tmp_path):
    root, entries = make_synthetic_mpii(str(tmp_path / "data"), n_images=6, seed=1)
    with open(os.path.join(root, "images", "synth_001.jpg"), "wb") as out:
        out.write(b"\xff\xd8 this is not a jpeg")
    os.remove(os.path.join(root, "images", "synth_003.jpg"))
    entries[0]["scale_provided"] = -1.0
    entries[-1]["joint_self"][0] = [float("nan"), 5.0, 1.0]
    with open(os.path.join(root, "annotations", "mpii_annotations.json"), "w") as out:
        json.dump(entries, out)
    out = str(tmp_path / "shards")
    result = cli_runner().invoke(
        main, ["prepare", "--mpii", root, "--out", out, "--workers", "1"] + SMALL)
    assert result.exit_code == 0, result.output
    assert "synth_001.jpg" in result.stderr and "not a decodable image" in result.stderr
    skipped = json.load(open(os.path.join(out, "skipped.json")))
    reasons = " | ".join(s["reason"] for s in skipped)
    assert "image not found" in reasons and "scale must be a positive" in reasons
    assert "not finite" in reasons and "not a decodable image" in reasons
    kinds = {}
    for s in skipped:
        kinds.setdefault(s["kind"], []).append(s["reason"])
    assert set(kinds) == {"image not found", "invalid annotation", "image unreadable"}
    assert all("synth_001.jpg: not a decodable image" in r for r in kinds["image unreadable"])
    assert all("synth_003.jpg" in s["person"] for s in skipped if s["kind"] == "image not found")
    manifest = load_manifest(out)
    assert manifest["skipped_count"] == len(skipped) >= 4
    assert manifest["skipped_by_reason"]["image not found"] == len(kinds["image not found"])
    # nothing usable: exit 1 with one line naming the problem
    for name in os.listdir(os.path.join(root, "images")):
        os.remove(os.path.join(root, "images", name))
    result = cli_runner().invoke(
        main, ["prepare", "--mpii", root, "--out", str(tmp_path / "none"), "--workers", "1"])
    assert result.exit_code == 1
    assert "no usable person" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_missing_annotation_file_is_one_clear_line(tmp_path):
    os.makedirs(str(tmp_path / "images"))
    result = cli_runner().invoke(
        main, ["prepare", "--mpii", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "no annotation file found in" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_same_arrays_whatever_workers(synthetic, tmp_path):
    root, _ = synthetic
    digests = []
    for workers in ("1", "2"):
        out = str(tmp_path / ("w" + workers))
        assert run_cli("prepare", "--mpii", root, "--out", out, "--workers", workers,
                       *SMALL).exit_code == 0
        digests.append({e["file"]: e["crc32"] for e in load_manifest(out)["shards"]})
    assert digests[0] == digests[1] and len(digests[0]) > 2
    for name in digests[0]:   # byte for byte, not only the same checksum
        with open(str(tmp_path / "w1" / name), "rb") as one, \
                open(str(tmp_path / "w2" / name), "rb") as two:
            assert one.read() == two.read(), name


def test_streamed_shards_hold_what_gathered_shards_hold(tmp_path):
    """Uncompressed shards are written row by row into the file (RowWriter); gzip ones
    are gathered in memory first. Both paths must store the same samples, every field
    of a sample in the same row, also in shards that end short (an unreadable image, an
    implausible box). The storage is part of the shard plan's fingerprint, which seeds
    the slot order, so samples are matched by who they are and how they were augmented."""
    root, entries = make_synthetic_mpii(str(tmp_path / "data"), n_images=12, seed=5)
    with open(os.path.join(root, "images", "synth_004.jpg"), "wb") as out:
        out.write(b"not a jpeg")
    entries[0]["scale_provided"] = 1e6   # implausible box: skipped after the decode
    with open(os.path.join(root, "annotations", "mpii_annotations.json"), "w") as out:
        json.dump(entries, out)
    outs = {}
    for storage in ("none", "gzip"):
        outs[storage] = str(tmp_path / storage)
        assert run_cli("prepare", "--mpii", root, "--out", outs[storage], "--workers", "1",
                       "--set", "Prepare.heatmap_compression=" + storage,
                       "--set", "Prepare.image_compression=" + storage,
                       *SMALL).exit_code == 0
    manifest = load_manifest(outs["none"])
    assert manifest["skipped_by_reason"]["implausible person box"] == 1
    short = [e for e in manifest["shards"] if e["count"] < 8 and e["split"] == "train"]
    assert short, "no shard ended short: the compaction path went untested"
    for split in ("train", "val"):
        streamed, gathered = read_split(outs["none"], split), read_split(outs["gzip"], split)
        assert set(streamed) == set(gathered)
        # last key first: image, person, then the augmentation (colour only shows in
        # the pixels: variants may share a clamped scale and no rotation)
        orders = [np.lexsort((arrays["images"].reshape(len(arrays["images"]), -1).sum(1),
                              arrays["flipped"], arrays["scale"], arrays["rotation"],
                              arrays["person_index"], arrays["image_name"]))
                  for arrays in (streamed, gathered)]
        for name in streamed:
            assert np.array_equal(streamed[name][orders[0]], gathered[name][orders[1]]), \
                (split, name)
    with h5py.File(shard_paths(outs["none"], "train")[0], "r") as shard:
        assert shard["images"].chunks is None and shard["heatmaps"].chunks is None
    # the training reader reads both kinds of uncompressed file (streamed, and gathered
    # as the short shards and every shard before streaming were) by their offsets
    from hgpipe.train.feeder import TRAIN_FIELDS, ShardBatches
    truth = read_split(outs["none"], "train")
    reader = ShardBatches(outs["none"], "train", 1, shuffle=False)
    try:
        assert set(reader._files[0].offsets) == {"images", "heatmaps"}
        for i, batch in enumerate(reader.epoch(0)):
            for name in TRAIN_FIELDS:
                assert np.array_equal(batch[name][0], truth[name][i]), (i, name)
        assert i + 1 == len(truth["images"])
    finally:
        reader.close()


def test_unfinished_row_writer_leaves_no_file(tmp_path):
    path = str(tmp_path / "train-00000.h5")
    row = np.ones((64, 64, 3), np.uint8)
    with pytest.raises(RuntimeError):
        with RowWriter(path, "train", 64, 16, 4) as writer:
            writer.write_row("images", 2, row)
            raise RuntimeError("interrupted")
    with RowWriter(path, "train", 64, 16, 4) as writer:
        writer.write_row("images", 1, row)          # and never finished
    with pytest.raises(ShardError, match="row of 12 bytes"):
        with RowWriter(path, "train", 64, 16, 4) as writer:
            writer.write_row("images", 0, np.ones(12, np.uint8))
    assert os.listdir(str(tmp_path)) == []


def test_killed_run_resumes_to_identical_shards(tmp_path):
    root, _ = make_synthetic_mpii(str(tmp_path / "data"), n_images=30, seed=2)
    reference = str(tmp_path / "reference")
    assert run_cli("prepare", "--mpii", root, "--out", reference, "--workers", "1",
                   *SMALL).exit_code == 0
    expected = {e["file"]: e["crc32"] for e in load_manifest(reference)["shards"]}
    assert len(expected) >= 6

    out = str(tmp_path / "killed")
    cmd = [sys.executable, "-m", "hgpipe", "prepare", "--mpii", root, "--out", out,
           "--workers", "1"] + SMALL
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and len(glob.glob(os.path.join(out, "*.h5"))) < 2:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = sorted(os.path.basename(p) for p in glob.glob(os.path.join(out, "*.h5")))
    assert 2 <= len(done) < len(expected), "kill did not land midway"
    assert not os.path.exists(os.path.join(out, "manifest.json"))
    for name in done:  # whatever has a final name is complete and right
        assert file_crc32(os.path.join(out, name)) == expected[name]

    result = run_cli("prepare", "--mpii", root, "--out", out, "--workers", "1", *SMALL)
    assert result.exit_code == 0
    assert "resuming: %d of %d shards already complete" % (len(done), len(expected)) \
        in result.output
    assert {e["file"]: e["crc32"] for e in load_manifest(out)["shards"]} == expected
    leftovers = [n for n in os.listdir(out) if n.endswith(".tmp")]
    assert len(leftovers) <= 1  # at most the killed shard's temporary file


def test_verify_checks_crc32_and_older_sha256_manifests(synthetic, tmp_path):
    root, _ = synthetic
    out = str(tmp_path / "shards")
    assert run_cli("prepare", "--mpii", root, "--out", out, "--workers", "1",
                   *SMALL).exit_code == 0
    assert "all" in run_cli("inspect", out, "--verify").output
    manifest_path = os.path.join(out, "manifest.json")
    with open(manifest_path) as handle:
        manifest = json.load(handle)
    for entry in manifest["shards"]:   # a manifest as written before CRC-32
        del entry["crc32"]
        entry["sha256"] = file_sha256(os.path.join(out, entry["file"]))
    with open(manifest_path, "w") as handle:
        json.dump(manifest, handle)
    assert verify_checksums(out) == []
    damaged = os.path.join(out, manifest["shards"][0]["file"])
    with open(damaged, "r+b") as handle:
        handle.seek(4000)
        byte = handle.read(1)
        handle.seek(4000)
        handle.write(bytes([byte[0] ^ 1]))
    assert verify_checksums(out) == [damaged]
    assert "MISMATCH" in run_cli("inspect", out, "--verify").output


def test_other_config_in_same_out_dir_is_refused(synthetic, tmp_path):
    root, _ = synthetic
    out = str(tmp_path / "shards")
    assert run_cli("prepare", "--mpii", root, "--out", out, "--workers", "1",
                   *SMALL).exit_code == 0
    before = {e["file"]: e["crc32"] for e in load_manifest(out)["shards"]}
    result = cli_runner().invoke(
        main, ["prepare", "--mpii", root, "--out", out, "--workers", "1"] + SMALL +
        ["--set", "Prepare.sigma=2"])
    assert result.exit_code == 1 and "different dataset or config" in result.stderr
    assert {e["file"]: e["crc32"] for e in load_manifest(out)["shards"]} == before


def test_real_mpii_val_images(shared_mpii, tmp_path):
    """The real JSON with the few real images: thousands skipped cleanly, and the 5 real
    val crops map back to the original annotations exactly."""
    out = str(tmp_path / "real")
    result = run_cli("prepare", "--mpii", shared_mpii, "--annotations",
                     os.path.join(shared_mpii, "annotations", "mpii_annotations.json.gz"),
                     "--out", out, "--workers", "2")
    assert result.exit_code == 0, result.output
    manifest = load_manifest(out)
    assert manifest["counts"]["val"] == 5
    assert manifest["skipped_by_reason"]["image not found"] == 25204 - 5 - 2
    val = read_split(out, "val")
    for i in range(5):
        mask = val["weights"][i] > 0
        assert mask.sum() >= 8
        mapped = apply_affine(val["crop_to_image"][i],
                              heatmap_to_crop(val["joints"][i].astype(np.float64), 256, 64))
        assert np.abs(mapped - val["gt_joints"][i])[mask].max() < 0.01
        # heatmap argmax within 1 px of the float joint
        hm = val["heatmaps"][i].reshape(-1, 16)
        peak = np.stack(np.unravel_index(hm.argmax(0), (64, 64)), 1)[:, ::-1]
        assert np.abs(peak - val["joints"][i])[mask].max() <= 1.0
        assert np.isfinite(val["head_normalizer"][i]) and val["head_normalizer"][i] > 0


def test_skips_are_typed_and_old_shards_pairs_still_read():
    """Skip kinds are data, not wording; a shard written before kinds existed holds
    [person, reason] pairs, which resume still reads (classified once, on load)."""
    from hgpipe.data.prepare import Skip, SkipKind, _stored_skip, summarize_skipped
    unreadable = Skip("a.jpg p1", SkipKind.IMAGE_UNREADABLE, "/x/a.jpg: empty file",
                      "empty file")
    implausible = Skip("b.jpg p2", SkipKind.IMPLAUSIBLE_BOX,
                       "implausible person box: centre outside", "centre outside")
    missing = Skip("c.jpg p1", SkipKind.IMAGE_NOT_FOUND, "image not found in /x", "/x")
    assert _stored_skip(json.loads(json.dumps(unreadable))) == unreadable
    assert _stored_skip(["a.jpg p1", "/x/a.jpg: empty file"]) == unreadable
    assert _stored_skip(["b.jpg p2", "implausible person box: centre outside"]) == implausible
    assert summarize_skipped([unreadable, implausible, missing, missing]) == {
        "empty file": 1, "implausible person box": 1, "image not found": 2}
