"""The Stacked Hourglass graph, its layers and its loss, on tiny graphs (2 shared CPU cores).

Full-size networks are only built (never run) to check parameter counts.
"""
import sys

import numpy as np
import pytest

from hgpipe import tf_compat
from hgpipe.tf_compat import import_tf

tf = import_tf()

from hgpipe.model import layers  # noqa: E402  (after import_tf, like the package)
from hgpipe.model.hourglass import (  # noqa: E402
    MODEL_CONFIG_DEFAULTS, build_hourglass, count_parameters, heatmaps_from_uint8,
    input_from_uint8, model_config)
from hgpipe.model.loss import heatmap_loss  # noqa: E402


def session(graph):
    config = tf.ConfigProto(intra_op_parallelism_threads=2, inter_op_parallelism_threads=1)
    return tf.Session(graph=graph, config=config)


def gaussian_targets(rng, batch, size, n_joints):
    """Target maps with one Gaussian blob per joint at a random place."""
    yy, xx = np.mgrid[0:size, 0:size]
    maps = np.zeros((batch, size, size, n_joints), np.float32)
    for n in range(batch):
        for j in range(n_joints):
            cy, cx = rng.randint(0, size, 2)
            maps[n, :, :, j] = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 2.0)
    return maps


# ----------------------------------------------------------------------------- tf_compat

def test_import_tf_gives_graph_mode_compat_v1():
    assert import_tf() is tf
    assert not tf.executing_eagerly()
    graph = tf.Graph()
    with graph.as_default():
        variable = tf.get_variable("v", [2], initializer=tf.zeros_initializer())
    # TF1 variable semantics (ref variables in the global collection of the graph)
    assert graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES) == [variable]


def test_import_tf_without_tensorflow_explains_how_to_install(monkeypatch):
    monkeypatch.setattr(tf_compat, "_TF_V1", None)
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # makes `import tensorflow` fail
    with pytest.raises(tf_compat.TensorFlowNotInstalledError) as info:
        tf_compat.import_tf()
    assert isinstance(info.value, ImportError)
    assert "pip install 'hgpipe[cpu]'" in str(info.value)
    assert "Ascend" in str(info.value)


def expected_parameter_count(n_stacks, n_feats, n_modules=1, n_low=4, n_joints=16, tiny=False,
                             stem="newell"):
    """Count from the layer lists of Newell's hg.lua (= PSH's PoseNet without its unused
    skip layers) and, with ``stem="bearpaw"``, of bearpaw's HourglassNet, whose second
    stem residual is 128 -> 256 (``_make_residual(block, self.inplanes, 1)`` after
    inplanes became 128): conv weight + bias, BN gamma + beta, written independently of
    the TF code."""
    def conv(c_in, c_out, k):
        return k * k * c_in * c_out + c_out

    def bn(c):
        return 2 * c

    def residual(c_in, c_out):
        if tiny:
            block = bn(c_in) + conv(c_in, c_out, 3)
        else:
            h = c_out // 2
            block = bn(c_in) + conv(c_in, h, 1) + bn(h) + conv(h, h, 3) + bn(h) + conv(h, c_out, 1)
        return block + (0 if c_in == c_out else conv(c_in, c_out, 1))

    wide = 256 if stem == "bearpaw" else 128
    stem = (conv(3, 64, 7) + bn(64) + residual(64, 128)
            + (0 if tiny else residual(128, wide)) + residual(wide, n_feats))
    module = residual(n_feats, n_feats)
    hourglass = (3 * n_low + 1) * n_modules * module  # 3 chains per level + the bottom one
    stack = (hourglass + n_modules * module + conv(n_feats, n_feats, 1) + bn(n_feats)
             + conv(n_feats, n_joints, 1))
    between = conv(n_joints, n_feats, 1) + (0 if tiny else conv(n_feats, n_feats, 1))
    return stem + n_stacks * stack + (n_stacks - 1) * between


def build_for_count(input_size=256, **config):
    graph = tf.Graph()
    with graph.as_default():
        images = tf.placeholder(tf.float32, (None, input_size, input_size, 3))
        heatmaps = build_hourglass(images, is_training=False, **config)
    return graph, heatmaps


@pytest.mark.parametrize("stem, expected_2, expected_8", [
    # newell stem: Newell's hg.lua = pytorch_stacked_hourglass PoseNet(2|8, 256, 16) minus
    # its unused skip_layers (../shared/interop/README.md)
    ("newell", 6570400, 25434112),
    # bearpaw stem: parameters() of bearpaw's HourglassNet(Bottleneck, 2|8, 1, 16)
    ("bearpaw", 6730912, 25594624),
])
def test_parameter_count_matches_reference_designs(stem, expected_2, expected_8):
    """The 2-stack network is built (an 8-stack build takes ~40 s per lane, so its count
    comes from the same independent layer list, checked here against the built 2-stack)."""
    graph, heatmaps = build_for_count(n_stacks=2, n_feats=256, n_modules=1, n_low=4,
                                      stem=stem)
    assert len(heatmaps) == 2
    assert heatmaps[-1].shape.as_list() == [None, 64, 64, 16]
    count = count_parameters(graph)
    assert count == expected_2 == expected_parameter_count(2, 256, stem=stem)
    assert expected_parameter_count(8, 256, stem=stem) == expected_8
    variables = graph.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES)
    assert count_parameters(variables) == count
    # non-trainable = the BN moving mean/variance, as many as the BN gammas and betas
    bn_affine = count_parameters([v for v in variables
                                  if v.op.name.endswith(("/gamma", "/beta"))])
    assert count_parameters(graph, trainable_only=False) - count == bn_affine


def test_bearpaw_stem_widens_only_the_second_residual():
    shapes = {}
    for stem in ("newell", "bearpaw"):
        graph, _ = build_for_count(input_size=16, n_stacks=1, n_feats=64, n_modules=1,
                                   n_low=1, stem=stem)
        shapes[stem] = {v.op.name: v.shape.as_list()
                        for v in graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES)}
    different = sorted(name for name in set(shapes["newell"]) | set(shapes["bearpaw"])
                       if shapes["newell"].get(name) != shapes["bearpaw"].get(name))
    assert different and all(name.startswith(("hourglass/stem/res2/", "hourglass/stem/res3/"))
                             for name in different)
    assert shapes["bearpaw"]["hourglass/stem/res2/conv2/weights"] == [3, 3, 128, 128]
    assert shapes["bearpaw"]["hourglass/stem/res2/skip/weights"] == [1, 1, 128, 256]
    assert shapes["bearpaw"]["hourglass/stem/res3/skip/weights"] == [1, 1, 256, 64]
    assert "hourglass/stem/res2/skip/weights" not in shapes["newell"]


def test_input_mean_is_subtracted_in_the_graph():
    """A network with input_mean m on image x computes what the same weights compute
    without it on x - m (both from uint8, as the trainer and exports feed)."""
    mean = (0.4404, 0.4440, 0.4327)
    rng = np.random.RandomState(3)
    raw = rng.randint(0, 256, (2, 16, 16, 3)).astype(np.uint8)
    graph = tf.Graph()
    with graph.as_default():
        images = tf.placeholder(tf.uint8, (None, 16, 16, 3))
        centred = tf.placeholder(tf.float32, (None, 16, 16, 3))
        config = dict(n_stacks=1, n_feats=16, n_modules=1, n_low=1, is_training=False)
        with_mean = build_hourglass(input_from_uint8(images), input_mean=mean, **config)[-1]
        plain = build_hourglass(centred, reuse=True, **config)[-1]
        # non-zero biases so the result depends on the offset everywhere
        randomise = [tf.assign(v, tf.random_uniform(tf.shape(v), 0.5, 1.5, seed=1))
                     for v in tf.global_variables()]
        with session(graph) as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(randomise)
            got = sess.run(with_mean, {images: raw})
            expected = sess.run(plain, {centred: raw / np.float32(255) - np.float32(mean)})
            uncentred = sess.run(plain, {centred: raw / np.float32(255)})
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    assert np.abs(got - uncentred).max() > 1e-3 * np.abs(expected).max()


def test_model_config_checks_stem_and_input_mean():
    assert model_config(stem="bearpaw", input_mean=[0.5, 0.4, 0.3])["input_mean"] == \
        (0.5, 0.4, 0.3)
    with pytest.raises(ValueError, match="stem must be one of"):
        model_config(stem="resnet")
    with pytest.raises(ValueError, match="stem must be newell"):
        model_config(stem="bearpaw", tiny=True)
    with pytest.raises(ValueError, match="input_mean"):
        model_config(input_mean=(0.5, 0.5))


def test_parameter_count_with_more_modules_and_joints():
    config = dict(n_stacks=1, n_feats=16, n_modules=2, n_low=1, n_joints=5)
    graph, heatmaps = build_for_count(input_size=16, **config)
    assert heatmaps[0].shape.as_list() == [None, 4, 4, 5]
    assert count_parameters(graph) == expected_parameter_count(**config)


# ----------------------------------------------------------------------------- outputs

@pytest.mark.parametrize("tiny", [False, True])
def test_output_shapes_on_small_input(tiny):
    graph = tf.Graph()
    with graph.as_default():
        images = tf.placeholder(tf.float32, (None, 64, 64, 3))
        heatmaps = build_hourglass(images, n_stacks=2, n_feats=32, n_modules=1, n_low=2,
                                   is_training=False, tiny=tiny)
        init = tf.global_variables_initializer()
    assert count_parameters(graph) == expected_parameter_count(2, 32, 1, 2, 16, tiny=tiny)
    batch = np.random.RandomState(1).rand(3, 64, 64, 3).astype(np.float32)
    with session(graph) as sess:
        sess.run(init)
        values = sess.run(heatmaps, {images: batch})
    assert [v.shape for v in values] == [(3, 16, 16, 16)] * 2
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in values)
    # the second stack is not a copy of the first
    assert not np.allclose(values[0], values[1])


def test_float16_compute_with_float32_loss():
    graph = tf.Graph()
    with graph.as_default():
        images_u8 = tf.placeholder(tf.uint8, (2, 16, 16, 3))
        targets_u8 = tf.placeholder(tf.uint8, (2, 4, 4, 16))
        heatmaps = build_hourglass(input_from_uint8(images_u8, dtype="float16"), 2, 16, 1, 1,
                                   is_training=True, dtype="float16")
        loss, per_stack = heatmap_loss(heatmaps, heatmaps_from_uint8(targets_u8),
                                       tf.ones((2, 16)), weighted=True)
        init = tf.global_variables_initializer()
    assert heatmaps[0].dtype == tf.float16
    assert loss.dtype == tf.float32 and all(s.dtype == tf.float32 for s in per_stack)
    # variables stay float32 (for the optimizer and checkpoints)
    assert {v.dtype.base_dtype for v in graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES)} \
        == {tf.float32}
    rng = np.random.RandomState(2)
    feed = {images_u8: rng.randint(0, 256, (2, 16, 16, 3)).astype(np.uint8),
            targets_u8: rng.randint(0, 256, (2, 4, 4, 16)).astype(np.uint8)}
    with session(graph) as sess:
        sess.run(init)
        total, stacks = sess.run([loss, per_stack], feed)
    assert np.isfinite(total) and total > 0
    assert total == pytest.approx(sum(stacks), rel=1e-6)


def test_uint8_conversions():
    graph = tf.Graph()
    with graph.as_default():
        raw = tf.constant(np.array([0, 51, 128, 255], np.uint8))
        images = input_from_uint8(raw)
        maps = heatmaps_from_uint8(raw)
        with pytest.raises(ValueError, match="uint8"):
            input_from_uint8(tf.zeros([2], tf.float32))
    with session(graph) as sess:
        got_images, got_maps = sess.run([images, maps])
    expected = np.array([0.0, 0.2, 128.0 / 255.0, 1.0], np.float32)
    np.testing.assert_allclose(got_images, expected, rtol=1e-6)
    np.testing.assert_allclose(got_maps, expected, rtol=1e-6)
    assert got_images.dtype == np.float32 and got_maps.dtype == np.float32


def test_model_config_defaults_overrides_and_errors():
    assert model_config() == MODEL_CONFIG_DEFAULTS
    config = model_config({"n_stacks": 8, "tiny": True}, dropout_rate=0.2)
    assert (config["n_stacks"], config["tiny"], config["dropout_rate"]) == (8, True, 0.2)
    assert set(config) == {"n_stacks", "n_feats", "n_modules", "n_low", "tiny",
                           "dropout_rate", "n_joints", "stem", "input_mean", "architecture"}
    with pytest.raises(ValueError, match="n_stack"):
        model_config({"n_stack": 8})
    with pytest.raises(ValueError, match="dropout_rate"):
        model_config(dropout_rate=1.0)
    with pytest.raises(ValueError, match="n_feats"):
        model_config(n_feats=0)
    with pytest.raises(ValueError, match="n_feats must be even"):
        model_config(n_feats=33)


def test_build_rejects_bad_inputs():
    graph = tf.Graph()
    with graph.as_default():
        config = model_config(n_stacks=1, n_feats=16, n_low=2)
        with pytest.raises(ValueError, match="multiple of 16"):
            build_hourglass(tf.placeholder(tf.float32, (1, 40, 64, 3)), is_training=False,
                            **config)
        with pytest.raises(ValueError, match="input_from_uint8"):
            build_hourglass(tf.placeholder(tf.uint8, (1, 64, 64, 3)), is_training=False,
                            **config)
        with pytest.raises(ValueError, match="is_training"):
            build_hourglass(tf.placeholder(tf.float32, (1, 64, 64, 3)), is_training=1,
                            **config)


def test_reuse_shares_weights_for_an_eval_branch():
    graph = tf.Graph()
    with graph.as_default():
        config = model_config(n_stacks=1, n_feats=16, n_low=1)
        images = tf.placeholder(tf.float32, (None, 16, 16, 3))
        train_maps = build_hourglass(images, is_training=True, **config)
        count = count_parameters(graph)
        updates = len(graph.get_collection(tf.GraphKeys.UPDATE_OPS))
        eval_maps = build_hourglass(images, is_training=False, reuse=True, **config)
        init = tf.global_variables_initializer()
    assert count_parameters(graph) == count
    # the inference branch adds no moving-statistics updates
    assert len(graph.get_collection(tf.GraphKeys.UPDATE_OPS)) == updates > 0
    with session(graph) as sess:
        sess.run(init)
        out = sess.run(eval_maps[0], {images: np.ones((1, 16, 16, 3), np.float32)})
    assert train_maps[0].shape.as_list() == [None, 4, 4, 16]
    assert out.shape == (1, 4, 4, 16) and np.isfinite(out).all()


# ----------------------------------------------------------------------------- layers

def test_upsample_and_pool_against_numpy():
    data = np.random.RandomState(3).rand(2, 3, 5, 4).astype(np.float32)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, (None, None, None, 4))
        up = layers.upsample_nearest(x)
        pooled = layers.max_pool(up)
    with session(graph) as sess:
        got_up, got_pooled = sess.run([up, pooled], {x: data})
    np.testing.assert_array_equal(got_up, data.repeat(2, axis=1).repeat(2, axis=2))
    np.testing.assert_array_equal(got_pooled, data)


def test_strided_conv_pads_symmetrically_like_torch():
    """7x7/2 on ones with ones weights: Torch pads 3 on each side, so the top-left output
    sees 4x4 inputs and the bottom-right 5x5 (TF 'SAME' would give 5x5 and 4x4)."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf.ones((1, 8, 8, 1))
        y = layers.conv2d(x, 1, 7, stride=2, use_bias=False, name="c")
        kernel = graph.get_tensor_by_name("c/weights:0")
        set_ones = tf.assign(kernel, tf.ones_like(kernel))
    with session(graph) as sess:
        sess.run(set_ones)
        out = sess.run(y)[0, :, :, 0]
    assert out.shape == (4, 4)
    assert out[0, 0] == 16 and out[-1, -1] == 25


def test_conv_init_matches_torch_default_bound():
    graph = tf.Graph()
    with graph.as_default():
        layers.conv2d(tf.zeros((1, 8, 8, 32)), 64, 3, name="c")
        init = tf.global_variables_initializer()
    with session(graph) as sess:
        sess.run(init)
        weights = sess.run(graph.get_tensor_by_name("c/weights:0"))
    bound = 1.0 / np.sqrt(3 * 3 * 32)
    assert np.abs(weights).max() <= bound
    assert np.abs(weights).max() > 0.95 * bound  # uniform over the whole range


def test_dropout_train_and_inference():
    graph = tf.Graph()
    with graph.as_default():
        flag = tf.placeholder(tf.bool, ())
        x = tf.ones((1, 100, 100, 1))
        dropped = layers.dropout(x, 0.25, flag)
        static_off = layers.dropout(x, 0.25, False)
    with session(graph) as sess:
        train = sess.run(dropped, {flag: True})
        infer, off = sess.run([dropped, static_off], {flag: False})
    kept = train[train > 0]
    assert 0.70 < kept.size / train.size < 0.80
    np.testing.assert_allclose(kept, 1.0 / 0.75, rtol=1e-6)
    np.testing.assert_array_equal(infer, 1.0)
    np.testing.assert_array_equal(off, 1.0)
    assert layers.dropout(x, 0.0, True) is x


# ----------------------------------------------------------------------------- batch norm

def bn_graph():
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, (None, 4, 4, 3))
        flag = tf.placeholder(tf.bool, ())
        y = layers.batch_norm(x, flag, name="bn")
        updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
        init = tf.global_variables_initializer()
    return graph, x, flag, y, updates, init


def test_batch_norm_moving_statistics_update():
    graph, x, flag, y, updates, init = bn_graph()
    assert len(updates) == 2
    data = np.random.RandomState(4).normal(3.0, 2.0, (5, 4, 4, 3)).astype(np.float32)
    mean = graph.get_tensor_by_name("bn/moving_mean:0")
    variance = graph.get_tensor_by_name("bn/moving_variance:0")
    with session(graph) as sess:
        sess.run(init)
        sess.run(updates, {x: data, flag: False})  # inference: nothing moves
        np.testing.assert_array_equal(sess.run(mean), 0.0)
        np.testing.assert_array_equal(sess.run(variance), 1.0)
        out, _ = sess.run([y, updates], {x: data, flag: True})
        got_mean, got_variance = sess.run([mean, variance])
    pixels = data.reshape(-1, 3)
    np.testing.assert_allclose(got_mean, 0.1 * pixels.mean(0), rtol=1e-4)
    np.testing.assert_allclose(got_variance, 0.9 + 0.1 * pixels.var(0, ddof=1), rtol=1e-4)
    # training output is normalised with the batch's own statistics
    np.testing.assert_allclose(out.reshape(-1, 3).mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(out.reshape(-1, 3).std(0), 1.0, atol=1e-3)


def test_batch_norm_inference_is_per_sample():
    graph, x, flag, y, updates, init = bn_graph()
    rng = np.random.RandomState(5)
    sample = rng.normal(0.0, 1.0, (1, 4, 4, 3)).astype(np.float32)
    batch_a = np.concatenate([sample, rng.normal(5.0, 3.0, (3, 4, 4, 3))]).astype(np.float32)
    batch_b = np.concatenate([sample, rng.normal(-4.0, 0.5, (3, 4, 4, 3))]).astype(np.float32)
    with session(graph) as sess:
        sess.run(init)
        sess.run(updates, {x: batch_a, flag: True})
        moving_mean, moving_var = sess.run(["bn/moving_mean:0", "bn/moving_variance:0"])
        infer_a = sess.run(y, {x: batch_a, flag: False})[0]
        infer_b = sess.run(y, {x: batch_b, flag: False})[0]
        train_a = sess.run(y, {x: batch_a, flag: True})[0]
        train_b = sess.run(y, {x: batch_b, flag: True})[0]
    np.testing.assert_allclose(infer_a, infer_b, rtol=1e-6)
    np.testing.assert_allclose(infer_a, (sample[0] - moving_mean) / np.sqrt(moving_var + 1e-5),
                               rtol=1e-3, atol=1e-4)
    assert not np.allclose(train_a, train_b, atol=1e-2)  # training mode does depend on it


def test_network_inference_output_does_not_depend_on_batch():
    graph = tf.Graph()
    with graph.as_default():
        images = tf.placeholder(tf.float32, (None, 16, 16, 3))
        flag = tf.placeholder(tf.bool, ())
        heatmaps = build_hourglass(images, 1, 16, 1, 1, is_training=flag)
        updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
        moving = [v for v in graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES)
                  if v.op.name.endswith("moving_mean")]
        init = tf.global_variables_initializer()
    rng = np.random.RandomState(6)
    first = rng.rand(1, 16, 16, 3).astype(np.float32)
    batch_a = np.concatenate([first, rng.rand(3, 16, 16, 3)]).astype(np.float32)
    batch_b = np.concatenate([first, 4.0 * rng.rand(2, 16, 16, 3)]).astype(np.float32)
    with session(graph) as sess:
        sess.run(init)
        before = sess.run(moving)
        sess.run(updates, {images: batch_a, flag: True})
        after = sess.run(moving)
        out_a = sess.run(heatmaps[-1], {images: batch_a, flag: False})[0]
        out_b = sess.run(heatmaps[-1], {images: batch_b, flag: False})[0]
        train_a = sess.run(heatmaps[-1], {images: batch_a, flag: True})[0]
        train_b = sess.run(heatmaps[-1], {images: batch_b, flag: True})[0]
    assert all(not np.allclose(b, a) for b, a in zip(before, after))
    np.testing.assert_allclose(out_a, out_b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(train_a, train_b, atol=1e-4)


# ----------------------------------------------------------------------------- loss

def loss_graph(weighted, n_stacks=2, dtype=tf.float32):
    graph = tf.Graph()
    with graph.as_default():
        preds = [tf.placeholder(dtype, (None, 8, 8, 16)) for _ in range(n_stacks)]
        targets = tf.placeholder(tf.float32, (None, 8, 8, 16))
        weights = tf.placeholder(tf.float32, (None, 16))
        total, per_stack = heatmap_loss(preds, targets, weights, weighted=weighted)
    return graph, preds, targets, weights, total, per_stack


def loss_data(seed=7):
    rng = np.random.RandomState(seed)
    preds = [rng.rand(3, 8, 8, 16).astype(np.float32) for _ in range(2)]
    targets = gaussian_targets(rng, 3, 8, 16)
    weights = np.ones((3, 16), np.float32)
    weights[0, [2, 9]] = 0.0
    weights[2, 15] = 0.0
    return preds, targets, weights


def run_loss(graph_parts, preds, targets, weights):
    graph, pred_ph, target_ph, weight_ph, total, per_stack = graph_parts
    feed = dict(zip(pred_ph, preds))
    feed.update({target_ph: targets, weight_ph: weights})
    with session(graph) as sess:
        return sess.run([total, per_stack], feed)


def test_weighted_loss_equals_hand_computation():
    preds, targets, weights = loss_data()
    total, per_stack = run_loss(loss_graph(True), preds, targets, weights)
    expected = []
    for pred in preds:
        squared = (pred - targets) ** 2 * weights[:, None, None, :]
        expected.append(squared.sum() / (weights.sum() * 8 * 8))
    np.testing.assert_allclose(per_stack, expected, rtol=1e-5)
    assert total == pytest.approx(sum(expected), rel=1e-5)


def test_weighted_loss_ignores_weight_zero_joints():
    preds, targets, weights = loss_data()
    parts = loss_graph(True)
    base = run_loss(parts, preds, targets, weights)[0]
    ignored = targets.copy()
    ignored[0, :, :, 9] = 1.0  # weight 0: an unannotated joint's (garbage) map
    assert run_loss(parts, preds, ignored, weights)[0] == pytest.approx(base, rel=1e-6)
    counted = targets.copy()
    counted[1, :, :, 9] = 1.0  # the same joint where it is annotated
    increase = sum(((pred[1, :, :, 9] - 1.0) ** 2 - (pred[1, :, :, 9] - targets[1, :, :, 9]) ** 2)
                   .sum() for pred in preds) / (weights.sum() * 8 * 8)
    assert abs(increase) > 1e-4
    assert run_loss(parts, preds, counted, weights)[0] == pytest.approx(base + increase, rel=1e-5)


def test_unweighted_loss_is_plain_mse_and_weighted_with_ones_agrees():
    preds, targets, weights = loss_data()
    plain, per_stack = run_loss(loss_graph(False), preds, targets, weights)
    expected = [((pred - targets) ** 2).mean() for pred in preds]
    np.testing.assert_allclose(per_stack, expected, rtol=1e-5)
    ones = run_loss(loss_graph(True), preds, targets, np.ones_like(weights))[0]
    assert ones == pytest.approx(plain, rel=1e-5)
    # the unweighted loss does see the weight-0 joints
    changed = targets.copy()
    changed[0, :, :, 9] = 1.0
    assert run_loss(loss_graph(False), preds, changed, weights)[0] != pytest.approx(plain)


def test_loss_with_all_weights_zero_is_zero_not_nan():
    preds, targets, weights = loss_data()
    total, per_stack = run_loss(loss_graph(True), preds, targets, np.zeros_like(weights))
    assert total == 0.0 and per_stack == [0.0, 0.0]


def test_loss_computes_in_float32_for_float16_heatmaps():
    preds, targets, weights = loss_data()
    parts = loss_graph(True, dtype=tf.float16)
    assert parts[4].dtype == tf.float32
    total = run_loss(parts, [p.astype(np.float16) for p in preds], targets, weights)[0]
    reference = run_loss(loss_graph(True), [p.astype(np.float16).astype(np.float32)
                                            for p in preds], targets, weights)[0]
    assert total == pytest.approx(reference, rel=1e-6)


def test_loss_rejects_bad_arguments():
    graph = tf.Graph()
    with graph.as_default():
        preds = [tf.zeros((2, 8, 8, 16))]
        with pytest.raises(ValueError, match="weights"):
            heatmap_loss(preds, tf.zeros((2, 8, 8, 16)), None, weighted=True)
        with pytest.raises(ValueError, match="do not match"):
            heatmap_loss(preds, tf.zeros((2, 4, 4, 16)), tf.ones((2, 16)))
        with pytest.raises(ValueError, match=r"\(N, J\)"):
            heatmap_loss(preds, tf.zeros((2, 8, 8, 16)), tf.ones((2, 15)))
        with pytest.raises(ValueError, match="empty"):
            heatmap_loss([], tf.zeros((2, 8, 8, 16)), tf.ones((2, 16)))


# ----------------------------------------------------------------------------- training

def test_rmsprop_steps_reduce_the_loss_on_a_fixed_batch():
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(0)
        images = tf.placeholder(tf.float32, (4, 16, 16, 3))
        targets = tf.placeholder(tf.float32, (4, 4, 4, 16))
        weights = tf.placeholder(tf.float32, (4, 16))
        heatmaps = build_hourglass(images, 1, 16, 1, 1, is_training=True)
        loss, _ = heatmap_loss(heatmaps, targets, weights, weighted=True)
        with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)):
            train = tf.train.RMSPropOptimizer(2.5e-3).minimize(loss)
        init = tf.global_variables_initializer()
    rng = np.random.RandomState(8)
    weights_value = np.ones((4, 16), np.float32)
    weights_value[0, 3] = 0.0
    feed = {images: rng.rand(4, 16, 16, 3).astype(np.float32),
            targets: gaussian_targets(rng, 4, 4, 16), weights: weights_value}
    with session(graph) as sess:
        sess.run(init)
        losses = [sess.run([loss, train], feed)[0] for _ in range(8)]
        final = sess.run(loss, feed)
    assert np.isfinite(losses).all()
    assert final < 0.9 * losses[0]
