"""Fresh geometry on the device (hgpipe.train.geometry, hgpipe.train.draws) against the
offline path: cv2 crops, the codec's heatmaps, the presets' laws, resumed draws."""
import os

import cv2
import numpy as np
import pytest
from scipy import stats

from conftest import make_synthetic_mpii
from hgpipe.codec import heatmap_to_crop, render_heatmaps
from hgpipe.data.augment import PRESETS, preset_of, sample_preset
from hgpipe.data.context import MAX_SIDE_FACTOR, context_geometry, make_context
from hgpipe.data.records import make_record
from hgpipe.data.transforms import Augmentation, make_sample
from hgpipe.tf_compat import import_tf

tf = import_tf()

from hgpipe.train import geometry  # noqa: E402
from hgpipe.train.draws import COLUMNS, Draws, preset_draws, uniform_draws  # noqa: E402

S, H, SIGMA = 64, 16, 1.0


def _session(graph):
    return tf.Session(graph=graph, config=tf.ConfigProto(intra_op_parallelism_threads=2,
                                                         inter_op_parallelism_threads=1))


def _person(seed=0):
    """A smooth image (cv2's 1/32-pixel fixed-point taps stay within a grey level) and a
    person in it, some joints outside any crop, one unannotated."""
    rng = np.random.RandomState(seed)
    image = cv2.GaussianBlur(rng.randint(0, 255, (300, 320, 3)).astype(np.uint8), (0, 0), 3)
    image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX)
    joints = np.array([160.0, 162.0]) + rng.uniform(-50, 50, size=(16, 2))
    annotated = np.ones(16, bool)
    annotated[9] = False
    return image, make_record("x.jpg", joints, annotated, center=(160, 150), scale=0.32)


def _warp(context, joints, annotated, augs, density):
    """The device's crop, crop joints (identities swapped after a flip), heatmaps,
    weights and context map for fixed transforms (one sample per Augmentation)."""
    graph = tf.Graph()
    with graph.as_default():
        draws = Draws(tf.constant([a.rotation for a in augs], tf.float32),
                      tf.constant([a.scale for a in augs], tf.float32),
                      tf.constant([a.flip for a in augs]), None)
        n = len(augs)
        out = geometry.apply_draws(
            tf.constant(np.repeat(context[None], n, 0)), tf.constant(np.repeat(joints[None], n, 0)),
            tf.constant(np.repeat(annotated[None], n, 0)), draws, density, S, H, SIGMA)
        to_context, _ = geometry._matrices(tf, draws, density)
        with _session(graph) as sess:
            return sess.run([out.images, out.joints, out.heatmaps, out.weights, to_context])


AUGS = [Augmentation(0.0, 1.0, False), Augmentation(0.0, 1.0, True),
        Augmentation(27.0, 1.2, True), Augmentation(-55.0, 0.8, False),
        Augmentation(60.0, 1.41, False)]


@pytest.mark.parametrize("preset", ["newell", "bearpaw", "psh"])
def test_device_crop_equals_cv2_crop_of_the_context_and_heatmaps_the_codec(preset):
    """For fixed transforms: the bilinear gather warp is cv2.warpAffine (INTER_LINEAR,
    black border) of the stored crop to one grey level, and the heatmaps rendered from
    the device-transformed joints are the offline sample's (codec.render_heatmaps of
    make_sample's joints, same weights) to 1e-5."""
    image, record = _person()
    geo = context_geometry(PRESETS[preset], S)
    ctx = make_context(image, record, S, geo)
    crops, joints, heatmaps, weights, to_context = _warp(
        ctx["images"], ctx["joints"], ctx["weights"], AUGS, geo.density)
    mid, mid_context = (S - 1) / 2.0, (geo.side - 1) / 2.0
    for n, aug in enumerate(AUGS):
        inverse = np.zeros((2, 3))
        inverse[:, :2] = to_context[n]
        inverse[:, 2] = mid_context - to_context[n].dot([mid, mid])
        expected = cv2.warpAffine(ctx["images"], inverse, (S, S),
                                  flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        # inside the stored crop: every bilinear tap reads a stored pixel (at the edge
        # OpenCV versions blend the black border differently)
        inside = cv2.warpAffine(np.full(ctx["images"].shape[:2], 255, np.uint8), inverse,
                                (S, S), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP) == 255
        assert inside.mean() > 0.5
        got = np.round(crops[n] * 255)
        assert np.abs(got - expected)[inside].max() <= 1, (preset, aug)

        offline = make_sample(image, record, aug, S, H, SIGMA)
        crop_joints = joints[n]   # identities swapped after a mirror, as prepare does
        assert np.abs(crop_joints - heatmap_to_crop(offline["joints"], S, H)).max() < 1e-4
        assert np.array_equal(weights[n], offline["weights"]), (preset, aug)
        reference = render_heatmaps(offline["joints"], offline["weights"], H, SIGMA)
        assert np.abs(heatmaps[n] - reference).max() < 1e-5, (preset, aug)
        assert weights[n].sum() >= 4   # the check covers drawn Gaussians, not only zeros


@pytest.mark.parametrize("preset", ["newell", "psh"])
def test_host_view_of_a_context_crop_equals_the_device_warp(preset):
    """context_view (what inspect draws for context shards) is the device's crop to one
    grey level inside the stored crop, and its joints and flags are the device's."""
    from hgpipe.data.context import context_view
    image, record = _person(2)
    geo = context_geometry(PRESETS[preset], S)
    ctx = make_context(image, record, S, geo)
    crops, joints, _heat, weights, _ = _warp(ctx["images"], ctx["joints"], ctx["weights"],
                                            AUGS, geo.density)
    for n, aug in enumerate(AUGS):
        crop, crop_joints, annotated = context_view(ctx["images"], ctx["joints"],
                                                    ctx["weights"], aug, geo.density, S)
        inside = context_view(np.full(ctx["images"].shape, 255, np.uint8), ctx["joints"],
                              ctx["weights"], aug, geo.density, S)[0][..., 0] == 255
        assert inside.mean() > 0.5
        assert np.abs(np.round(crops[n] * 255) - crop)[inside].max() <= 1, (preset, aug)
        assert np.abs(crop_joints - joints[n]).max() < 1e-3, (preset, aug)
        # device weights are the flags of joints inside the map: a subset of these flags
        assert np.all(annotated[weights[n] > 0]), (preset, aug)


@pytest.mark.parametrize("flip", [False, True])
def test_unscaled_unrotated_device_crop_equals_the_offline_crop(flip):
    """At the crop's own density (bearpaw, psh: context density 1) a plain transform is an
    integer shift of the context: the device crop is prepare's cv2 crop of the image to
    one grey level inside the image."""
    image, record = _person(1)
    geo = context_geometry(PRESETS["bearpaw"], S)
    assert geo.density == 1.0
    ctx = make_context(image, record, S, geo)
    aug = Augmentation(0.0, 1.0, flip)
    crops = _warp(ctx["images"], ctx["joints"], ctx["weights"], [aug], geo.density)[0]
    offline = make_sample(image, record, aug, S, H, SIGMA)["images"]
    inside = cv2.warpAffine(np.full(image.shape[:2], 255, np.uint8),
                            offline_affine(record, aug), (S, S)) == 255
    assert inside.mean() > 0.5
    diff = np.abs(np.round(crops[0] * 255) - offline)[inside]
    assert diff.max() <= 1


def offline_affine(record, aug):
    from hgpipe.codec import cv2_affine
    from hgpipe.data.transforms import hourglass_box, image_to_crop_affine
    center, scale = hourglass_box(record.center, record.scale)
    return cv2_affine(image_to_crop_affine(center, scale, S, aug))


def _device_draws(preset, n, seed=3, step=11, color=0.0):
    graph = tf.Graph()
    with graph.as_default():
        draws = preset_draws(uniform_draws(seed, step, n), preset, flip=True, color=color)
        with _session(graph) as sess:
            return sess.run([t for t in draws if t is not None])


@pytest.mark.parametrize("name", ["newell", "bearpaw", "psh"])
def test_ten_thousand_draws_follow_the_preset(name):
    """10,000 device draws against 10,000 of the host's sample_preset (the presets' one
    law, checked against the references in test_augment_presets): a two-sample KS test
    per parameter, the rotation's point mass at 0 and the flip rate."""
    preset, n = PRESETS[name], 10000
    color = (preset.color_high - preset.color_low) / 2.0
    rotation, scale, flipped = _device_draws(preset, n, color=color)[:3]
    rng = np.random.RandomState(0)
    host = [sample_preset(rng, name) for _ in range(n)]
    host_rotation = np.array([h[0] for h in host])
    host_scale = np.array([h[1] for h in host])
    assert stats.ks_2samp(scale, host_scale).pvalue > 1e-3
    assert stats.ks_2samp(rotation, host_rotation).pvalue > 1e-3
    assert stats.ks_2samp(rotation[rotation != 0], host_rotation[host_rotation != 0]
                          ).pvalue > 1e-3
    zero = 1.0 - preset.rotation_prob
    assert abs((rotation == 0).mean() - zero) < 4 * np.sqrt(zero * (1 - zero) / n) + 1e-9
    assert abs(flipped.mean() - 0.5) < 4 * np.sqrt(0.25 / n)
    lo, hi = {"exp2": (2 ** -0.5, 2 ** 0.5), "linear": (0.75, 1.25),
              "uniform": (0.75, 1.25)}[preset.scale_law]
    assert scale.min() >= lo - 1e-6 and scale.max() <= hi + 1e-6


def test_colour_gains_follow_the_uniform_law():
    gains = _device_draws(PRESETS["newell"], 10000, color=0.4)[3].reshape(-1, 3)
    for channel in range(3):
        assert stats.kstest(gains[:, channel], "uniform", args=(0.6, 0.8)).pvalue > 1e-3


def test_resumed_draws_equal_the_uninterrupted_runs():
    """Draws are a function of (seed, step, sample): a new graph and session (a resumed
    process) started at step 3 draws what one running from step 0 drew at steps 3-5;
    other steps and other seeds draw otherwise; rank r of 2 draws the global batch's
    rows r*B..(r+1)*B."""
    def run(first, last, seed=0, batch=4, rank=0, ranks=1):
        graph = tf.Graph()
        with graph.as_default():
            step = tf.Variable(first, dtype=tf.int64)
            u = uniform_draws(seed, step, batch, rank, ranks)
            advance = tf.assign_add(step, 1)
            with _session(graph) as sess:
                sess.run(tf.global_variables_initializer())
                out = []
                for _ in range(first, last):
                    out.append(sess.run(u))
                    sess.run(advance)
        return np.array(out)
    uninterrupted = run(0, 6)
    assert uninterrupted.shape == (6, 4, len(COLUMNS))
    assert np.array_equal(run(3, 6), uninterrupted[3:])
    assert not np.allclose(uninterrupted[0], uninterrupted[1])
    assert not np.allclose(run(0, 1, seed=1)[0], uninterrupted[0])
    two = run(2, 3, batch=2, ranks=2, rank=1)[0]
    assert np.array_equal(two, run(2, 3, batch=4)[0][2:])


def test_context_bytes_are_at_most_a_third_of_eight_variants():
    """Issue 20: 262,513 B per offline sample x 8 variants / 3 at 256 px; every preset's
    context crop (and its joints) fits, and a preset that needs more is stored denser."""
    budget = 262513 * 8 / 3.0
    for name, preset in PRESETS.items():
        geo = context_geometry(preset, 256)
        assert geo.side ** 2 * 3 + 16 * 2 * 4 + 16 * 4 + 6 * 8 + 12 < budget, name
        assert geo.side <= MAX_SIDE_FACTOR * 256
    assert context_geometry(PRESETS["newell"], 256).density < 1.0
    assert context_geometry(PRESETS["psh"], 256).density == 1.0


def test_prepare_writes_context_shards_and_training_reads_them(tmp_path):
    """prepare with [Prepare] geometry = device: one context crop per train person with
    joints and annotated flags (no heatmaps), the manifest names the side; the feeder
    reads them and a training graph on them steps."""
    from click.testing import CliRunner
    from hgpipe.cli import main
    from hgpipe.config import load_config
    from hgpipe.data.shards import load_manifest, shard_paths
    from hgpipe.train.feeder import ShardBatches
    from hgpipe.train.graph import ContextFeedInput, Geometry, build_train_graph
    import h5py
    root, entries = make_synthetic_mpii(str(tmp_path / "data"), n_images=6)
    out = str(tmp_path / "shards")
    result = CliRunner().invoke(main, [
        "prepare", "--mpii", root, "--out", out, "--workers", "1",
        "--set", "DataSetHG.img_size=64", "--set", "DataSetHG.hm_size=16",
        "--set", "Prepare.geometry=device", "--set", "Prepare.augmentation=psh",
        "--set", "Prepare.variants=8"])
    assert result.exit_code == 0, result.output
    manifest = load_manifest(out)
    train_persons = sum(1 for e in entries if not e["isValidation"])
    assert manifest["counts"]["train"] == train_persons       # not x variants
    geo = context_geometry(PRESETS["psh"], 64)
    assert manifest["context_side"] == geo.side
    with h5py.File(shard_paths(out, "train")[0], "r") as shard:
        assert shard["images"].shape[1:] == (geo.side, geo.side, 3)
        assert "heatmaps" not in shard and shard["joints"].shape[1:] == (16, 2)
    with h5py.File(shard_paths(out, "val")[0], "r") as shard:
        assert shard["images"].shape[1:] == (64, 64, 3) and "heatmaps" in shard
    reader = ShardBatches(out, "train", 2, fields=ContextFeedInput.fields)
    batch, _ = reader.read_batch(0, 0)
    reader.close()
    cfg = load_config(None, ["DataSetHG.img_size=64", "DataSetHG.hm_size=16",
                             "Network.nStacks=1", "Network.nFeats=16", "Network.nLow=1",
                             "Train.batch_size=2", "Train.device_flip=True"])
    geometry_spec = Geometry.from_manifest(manifest)
    assert geometry_spec.preset == preset_of(manifest["config"]["Prepare"])
    graph = tf.Graph()
    with graph.as_default():
        inputs = ContextFeedInput(2, geometry_spec.side)
        g = build_train_graph(cfg, inputs, geometry=geometry_spec)
        with _session(graph) as sess:
            sess.run(tf.global_variables_initializer())
            losses = [sess.run([g.train_op, g.loss], inputs.feed(batch))[1] for _ in range(2)]
    assert all(np.isfinite(losses))
    # inspect draws context shards as training sees them: one drawn view per sample
    from hgpipe.data.inspect import sample_tiles
    tiles = sample_tiles(out, "train", count=3, seed=1)
    assert len(tiles) == 6 and all(t.ndim == 3 and t.shape[2] == 3 for t in tiles)
    assert sample_tiles(out, "train", count=3, seed=1)[0].tolist() == tiles[0].tolist()
    result = CliRunner().invoke(main, ["inspect", out, "--png", str(tmp_path / "m.png")])
    assert result.exit_code == 0, result.output
    assert os.path.getsize(str(tmp_path / "m.png")) > 1000


def test_bench_reports_bytes_per_person_of_both_storages():
    """The bench's storage rows: 8 offline variants and one context crop per person, from
    the shard schema's per-sample sizes, and their ratio against the issue's third."""
    from hgpipe.bench.train import bytes_per_person_rows, with_device_geometry
    from hgpipe.config import load_config
    from hgpipe.data import schema
    for preset in ("newell", "bearpaw", "psh"):
        cfg = with_device_geometry(load_config(None, ["Prepare.augmentation=" + preset]))
        rows = {row.key.split(".")[-1]: row for row in bytes_per_person_rows(cfg, "x")}
        one = sum(int(np.prod(shape)) * np.dtype(dtype).itemsize
                  for shape, dtype, _ in schema.datasets(256, 64, "train").values())
        assert rows["offline_bytes_per_person"].value == 8 * one
        side = context_geometry(PRESETS[preset], 256).side
        assert rows["context_bytes_per_person"].value > side * side * 3
        assert rows["context_fraction"].met, rows["context_fraction"]


def test_bench_times_the_geometry_ops_and_divides_by_the_step():
    from hgpipe.bench.train import (TrainResult, device_geometry_rows,
                                    time_device_geometry_op, with_device_geometry)
    from hgpipe.config import load_config
    cfg = with_device_geometry(load_config(None, ["DataSetHG.img_size=64",
                                                  "DataSetHG.hm_size=16", "Network.nLow=1"]))
    op_ms = time_device_geometry_op(cfg, 2, runs=3)
    assert op_ms >= 0.0
    plain = TrainResult("small", 2, 64, 3, 10.0, 200.0, 0.0, 1.0, 3.0, 5.0)
    geometry = plain._replace(step_ms=210.0)
    rows = {row.key.split(".")[-1]: row for row in device_geometry_rows(plain, geometry, op_ms)}
    assert rows["ratio"].value == pytest.approx(1.05)
    assert rows["op_fraction"].value == pytest.approx(100 * op_ms / 200.0)
    assert rows["op_fraction"].target == "< 3"


@pytest.mark.parametrize("centre,window", [("pixel", 7), ("float", 5), ("pixel", 0)])
def test_device_heatmaps_follow_the_target_settings_as_the_codec(centre, window):
    """[Prepare] gaussian_centre and gaussian_window (Newell's 7x7 window at integer
    centres) apply to device-rendered heatmaps as to offline ones: the same maps as
    codec.render_heatmaps of codec.gaussian_centres, to 1e-5."""
    from hgpipe.codec import crop_to_heatmap, gaussian_centres
    rng = np.random.RandomState(4)
    joints = rng.uniform(-4, S + 4, size=(3, 16, 2)).astype(np.float32)
    annotated = (rng.uniform(size=(3, 16)) > 0.2).astype(np.float32)
    graph = tf.Graph()
    with graph.as_default():
        maps, weights = geometry.render_heatmaps(tf.constant(joints), tf.constant(annotated),
                                                 S, H, 1.75, centre, window)
        with _session(graph) as sess:
            maps, weights = sess.run([maps, weights])
    cut = 0
    for n in range(3):
        hm = crop_to_heatmap(joints[n], S, H)
        reference = render_heatmaps(gaussian_centres(hm, centre), weights[n], H, 1.75,
                                    window)
        assert np.abs(maps[n] - reference).max() < 1e-5, (centre, window)
        full = render_heatmaps(gaussian_centres(hm, centre), weights[n], H, 1.75, 0)
        cut += int(np.abs(full - reference).max() > 1e-3)
    assert weights.sum() > 20
    assert (cut > 0) == bool(window)   # the window really cuts something


def test_context_weights_follow_joint_weight_visible(tmp_path):
    """bearpaw HEAD's target_weight (mpii.py:115, 122) with device geometry: a context
    shard gives an occluded joint weight 0, as the offline path does, so the device's
    weights (and a weighted loss) leave it out; `supervised` keeps it."""
    from click.testing import CliRunner
    from hgpipe.cli import main
    from hgpipe.data.readers import find_annotation_file, read_annotations
    from hgpipe.data.shards import shard_paths
    import h5py
    import json
    root, entries = make_synthetic_mpii(str(tmp_path / "data"), n_images=6)
    for entry in entries:                 # ankles annotated but flagged occluded
        for joint in (0, 5):
            entry["joint_self"][joint][2] = 0.0
    with open(os.path.join(root, "annotations", "mpii_annotations.json"), "w") as out:
        json.dump(entries, out)
    records = {(r.image_name, r.person_index): r
               for r in read_annotations(find_annotation_file(root))}
    stored = {}
    for weight in ("visible", "supervised"):
        out = str(tmp_path / weight)
        result = CliRunner().invoke(main, [
            "prepare", "--mpii", root, "--out", out, "--workers", "1",
            "--set", "DataSetHG.img_size=64", "--set", "DataSetHG.hm_size=16",
            "--set", "Prepare.geometry=device", "--set", "Prepare.joint_weight=" + weight])
        assert result.exit_code == 0, result.output
        for path in shard_paths(out, "train"):
            with h5py.File(path, "r") as shard:
                for name, person, w in zip(shard["image_name"][:], shard["person_index"][:],
                                           shard["weights"][:]):
                    stored[weight, name.decode(), int(person)] = w
    occluded = 0
    for (weight, name, person), w in stored.items():
        record = records[name, person]
        expected = record.annotated & ((np.asarray(record.visible) != 0)
                                       if weight == "visible" else True)
        np.testing.assert_array_equal(w, expected.astype(np.float32))
        occluded += int(weight == "visible" and (record.annotated & (record.visible == 0)).sum())
    assert occluded > 0   # the synthetic persons have occluded joints to leave out
