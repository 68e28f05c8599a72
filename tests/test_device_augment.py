"""Device-side flip and colour (hgpipe.train.augment) against the prepare-time codec."""
import os

import numpy as np

from hgpipe.codec import crop_to_heatmap, render_heatmaps
from hgpipe.config import load_config
from hgpipe.data.records import make_record
from hgpipe.data.transforms import PLAIN, Augmentation, make_sample
from hgpipe.joints import FLIP_PERMUTATION
from hgpipe.tf_compat import import_tf

tf = import_tf()

from hgpipe.train.augment import augment_on_device  # noqa: E402

PERM = list(FLIP_PERMUTATION)
TINY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs",
                    "tiny.cfg")


def _session(graph):
    return tf.Session(graph=graph, config=tf.ConfigProto(intra_op_parallelism_threads=2,
                                                         inter_op_parallelism_threads=1))


def _run(images, heatmaps, weights, flip, color, seed=5):
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(0)
        out = augment_on_device(tf.constant(images), tf.constant(heatmaps),
                                tf.constant(weights), flip, color, seed=seed)
        fetches = [t for t in out if t is not None]
        with _session(graph) as sess:
            values = iter(sess.run(fetches))
    return [next(values) if t is not None else None for t in out]


def _batch(rng, batch, size=64, hm=16, sigma=1.0):
    joints = rng.uniform(1.0, hm - 2.0, size=(batch, 16, 2))
    weights = (rng.uniform(size=(batch, 16)) > 0.2).astype(np.float32)
    heatmaps = np.stack([render_heatmaps(j, w, hm, sigma) for j, w in zip(joints, weights)])
    images = rng.uniform(0, 1, size=(batch, size, size, 3)).astype(np.float32)
    return images, heatmaps.astype(np.float32), weights, joints


def test_flip_mirrors_into_the_heatmaps_of_the_mirrored_joints():
    rng = np.random.RandomState(0)
    images, heatmaps, weights, joints = _batch(rng, 16)
    out_images, out_heatmaps, out_weights, flipped, gains = _run(
        images, heatmaps, weights, flip=True, color=0.0)
    assert gains is None
    assert 0 < flipped.sum() < len(flipped)
    for n in range(len(flipped)):
        if not flipped[n]:   # untouched, bit for bit
            assert np.array_equal(out_images[n], images[n])
            assert np.array_equal(out_heatmaps[n], heatmaps[n])
            assert np.array_equal(out_weights[n], weights[n])
            continue
        mirrored = joints[n].copy()
        mirrored[:, 0] = 16 - 1 - mirrored[:, 0]          # heatmap x -> (H-1) - x
        mirrored, expected_weights = mirrored[PERM], weights[n][PERM]
        expected = render_heatmaps(mirrored, expected_weights, 16, 1.0)
        assert np.abs(out_heatmaps[n] - expected).max() < 1e-5
        assert np.array_equal(out_weights[n], expected_weights)
        assert np.array_equal(out_images[n], images[n][:, ::-1])


def test_crop_mirror_and_heatmap_mirror_agree_with_the_codec():
    """S-1-x in the crop is (H-1)-h in the heatmap when S = 4H, and a device flip of a
    plain sample equals prepare's own flipped sample (heatmaps, joints, weights)."""
    x = np.array([[0.0, 3.0], [100.5, 17.25], [255.0, 128.0]])
    mirrored = x.copy()
    mirrored[:, 0] = 256 - 1 - x[:, 0]
    assert np.allclose(crop_to_heatmap(mirrored, 256, 64)[:, 0],
                       63 - crop_to_heatmap(x, 256, 64)[:, 0], atol=1e-12)
    rng = np.random.RandomState(4)
    record = make_record("x.jpg", rng.uniform(120, 280, size=(16, 2)),
                         rng.uniform(size=16) > 0.2, center=(200, 200), scale=1.3)
    image = rng.randint(0, 255, size=(400, 400, 3)).astype(np.uint8)
    plain = make_sample(image, record, PLAIN, 256, 64, 1.0)
    flipped = make_sample(image, record, Augmentation(flip=True), 256, 64, 1.0)
    graph = tf.Graph()
    with graph.as_default():
        step = tf.placeholder(tf.int64, ())
        out = augment_on_device(tf.constant(plain["images"][None].astype(np.float32) / 255),
                                tf.constant(plain["heatmaps"][None]),
                                tf.constant(plain["weights"][None]), True, 0.0, step=step)
        with _session(graph) as sess:
            for n in range(64):   # a new draw each step: stop at the first flipped one
                was_flipped, hm, w = sess.run([out.flipped, out.heatmaps, out.weights],
                                              {step: n})
                if was_flipped[0]:
                    break
    assert was_flipped[0]
    assert np.array_equal(w[0], flipped["weights"])
    assert np.abs(hm[0] - flipped["heatmaps"]).max() < 1e-5


def test_colour_gains_per_sample_and_channel_in_range_then_clamped():
    rng = np.random.RandomState(1)
    images, heatmaps, weights, _ = _batch(rng, 64, size=8)
    out_images, out_heatmaps, out_weights, flipped, gains = _run(
        images, heatmaps, weights, flip=False, color=0.4)
    assert flipped is None
    assert gains.shape == (64, 1, 1, 3)
    assert gains.min() >= 0.6 and gains.max() <= 1.4
    assert gains.min() < 0.7 and gains.max() > 1.3
    assert len(np.unique(gains)) == gains.size          # per sample and per channel
    assert np.allclose(out_images, np.clip(images * gains, 0, 1), atol=1e-6)
    assert out_images.max() <= 1.0 and (out_images == 1.0).any()
    assert np.array_equal(out_heatmaps, heatmaps) and np.array_equal(out_weights, weights)


def test_flip_rate_is_one_half():
    n = 4000
    images = np.zeros((n, 2, 2, 3), np.float32)
    heatmaps = np.zeros((n, 2, 2, 16), np.float32)
    _, _, _, flipped, _ = _run(images, heatmaps, np.ones((n, 16), np.float32), True, 0.0)
    assert abs(flipped.mean() - 0.5) < 5 * np.sqrt(0.25 / n)


def test_training_graph_uses_it_only_when_asked():
    from hgpipe.train.graph import FeedInput, build_train_graph
    for flip, color, expected in [(False, 0.0, False), (True, 0.2, True)]:
        cfg = load_config(TINY, [
            "Train.device_flip=%s" % flip, "Train.device_color=%s" % color,
            "Network.nStacks=1", "Network.nFeats=16", "Network.nLow=1",
            "DataSetHG.img_size=16", "DataSetHG.hm_size=4", "Train.batch_size=2"])
        graph = tf.Graph()
        with graph.as_default():
            build_train_graph(cfg, FeedInput(2, 16, 4))
            names = [op.name for op in graph.get_operations()]
        assert any(name.startswith("device_augment/") for name in names) == expected
