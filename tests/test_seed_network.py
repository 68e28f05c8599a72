"""The seed's own network (``[Network] architecture = seed``): wbenbihi/hourglasstensorlfow
``hourglass_tiny.py`` at 356e063, counted from its layer definitions and run on tiny graphs."""
import numpy as np
import pytest

from hgpipe.tf_compat import import_tf

tf = import_tf()

from hgpipe.model.hourglass import build_hourglass, count_parameters, model_config  # noqa: E402


def seed_parameter_count(n_stack, n_feat, n_low, out_dim=16):
    """Trainable parameters of wbenbihi's HourglassModel(tiny=False, modif=False), written
    from its code (hourglass_tiny.py at 356e063), independently of hgpipe's builder:

    * ``_conv`` (:487-506): one kernel k*k*in*out, no bias;
    * ``_conv_bn_relu`` (:508-527): a kernel and ``tf.contrib.layers.batch_norm`` with its
      defaults center=True, scale=False: beta only (out);
    * ``_conv_block`` (:544-556): BN(in) conv1x1(in, n/2) BN(n/2) conv3x3(n/2, n/2)
      BN(n/2) conv1x1(n/2, n); ``_skip_layer`` (:558-572): conv1x1 when in != n;
    * ``_hourglass`` (:589-615): up_1, low_1, low_3 and, while n > 0 (:604), an inner
      hourglass(n - 1), else low_2 = a residual;
    * ``_graph_hourglass`` (:386-401, :448-480): pad 2 + conv_bn_relu 6x6 3->64, r1 (64 ->
      128), pool, r2 (128 -> nFeat/2), r3 (-> nFeat); stages 0..nStack-2: hourglass,
      conv_bn_relu 1x1 ``conv``, ``ll`` conv 1x1, ``out`` conv 1x1 to outDim, ``out_`` conv
      1x1 back to nFeat; the last stage: hourglass, ``conv`` and ``out`` only.
    """
    def conv(c_in, c_out, k=1):
        return k * k * c_in * c_out

    def conv_bn_relu(c_in, c_out, k=1):
        return conv(c_in, c_out, k) + c_out

    def residual(c_in, n):
        h = n // 2
        block = c_in + conv(c_in, h) + h + conv(h, h, 3) + h + conv(h, n)
        return block + (0 if c_in == n else conv(c_in, n))

    def hourglass(n):
        inner = hourglass(n - 1) if n > 0 else residual(n_feat, n_feat)
        return 3 * residual(n_feat, n_feat) + inner

    stem = (conv_bn_relu(3, 64, 6) + residual(64, 128) + residual(128, n_feat // 2)
            + residual(n_feat // 2, n_feat))
    head = hourglass(n_low) + conv_bn_relu(n_feat, n_feat) + conv(n_feat, out_dim)
    between = conv(n_feat, n_feat) + conv(out_dim, n_feat)   # ll, out_
    return stem + n_stack * head + (n_stack - 1) * between


def _build(input_size, is_training=False, **config):
    graph = tf.Graph()
    with graph.as_default():
        images = tf.placeholder(tf.float32, (None, input_size, input_size, 3))
        heatmaps = build_hourglass(images, is_training=is_training, architecture="seed",
                                   **config)
    return graph, images, heatmaps


def test_seed_count_from_its_code_is_14500480():
    assert seed_parameter_count(4, 256, 4) == 14500480


def test_seed_network_builds_with_the_seeds_parameter_count():
    """4 stacks x 256, nLow 4, built at 128 px (the variables do not depend on the input
    size; 128 = 4 * 2^5 is the smallest the seed's five poolings allow)."""
    graph, _, heatmaps = _build(128, n_stacks=4, n_feats=256, n_modules=1, n_low=4)
    assert count_parameters(graph) == 14500480
    assert len(heatmaps) == 4 and heatmaps[-1].shape.as_list() == [None, 32, 32, 16]
    names = [v.op.name for v in graph.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES)]
    assert not [n for n in names if n.endswith(("/biases", "/gamma"))]
    assert graph.get_tensor_by_name("hourglass/stem/conv6x6/weights:0").shape.as_list() == \
        [6, 6, 3, 64]
    # five poolings per hourglass: the innermost residual (n == 0) runs at 128/4/32 = 1 px
    deepest = "hourglass/stack0/hourglass" + "/low_2" * 4 + "/low_2/conv1/weights:0"
    assert graph.get_tensor_by_name(deepest).shape.as_list() == [1, 1, 256, 128]


@pytest.mark.parametrize("stacks, feats, low", [(1, 16, 1), (3, 32, 2), (5, 8, 1)])
def test_seed_count_matches_built_graphs(stacks, feats, low):
    graph, _, _ = _build(4 * 2 ** (low + 1), n_stacks=stacks, n_feats=feats, n_modules=1,
                         n_low=low, n_joints=16)
    assert count_parameters(graph) == seed_parameter_count(stacks, feats, low)


def test_seed_merge_adds_the_first_stacks_ll_remap():
    """hourglass_tiny.py:472: sum_[i] = out_[i] + sum_[i-1] + ll_[0]. Zeroing stack 1's
    own remap changes nothing (it is unused); zeroing stack 0's changes stack 2's input."""
    graph, images, heatmaps = _build(16, n_stacks=3, n_feats=8, n_modules=1, n_low=1)
    batch = np.random.RandomState(0).rand(2, 16, 16, 3).astype(np.float32)
    with graph.as_default():
        init = tf.global_variables_initializer()
        weights = {name: graph.get_tensor_by_name(
            "hourglass/stack%s/remap_features/weights:0" % name) for name in "01"}
        zero = {name: tf.assign(v, tf.zeros_like(v)) for name, v in weights.items()}
    with tf.Session(graph=graph) as sess:
        sess.run(init)
        before = sess.run(heatmaps[-1], {images: batch})
        sess.run(zero["1"])
        np.testing.assert_array_equal(sess.run(heatmaps[-1], {images: batch}), before)
        sess.run(zero["0"])
        assert np.abs(sess.run(heatmaps[-1], {images: batch}) - before).max() > 1e-4


def test_seed_tiny_network_trains_one_step():
    """One forward/backward in training mode: finite loss, every used weight gets a
    gradient, the unused ``ll_`` of the middle stack gets none, BN moving stats move."""
    graph, images, heatmaps = _build(16, is_training=True, n_stacks=3, n_feats=8,
                                     n_modules=1, n_low=1, dropout_rate=0.2)
    with graph.as_default():
        loss = tf.add_n([tf.reduce_mean(tf.square(h)) for h in heatmaps])
        variables = tf.trainable_variables()
        grads = tf.gradients(loss, variables)
        unused = [v.op.name for v, g in zip(variables, grads) if g is None]
        with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)):
            step = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
        moving = graph.get_tensor_by_name("hourglass/stem/bn/moving_mean:0")
        init = tf.global_variables_initializer()
    assert unused == ["hourglass/stack1/remap_features/weights"]
    batch = np.random.RandomState(1).rand(2, 16, 16, 3).astype(np.float32)
    with tf.Session(graph=graph) as sess:
        sess.run(init)
        first = sess.run(loss, {images: batch})
        sess.run(step, {images: batch})
        assert np.isfinite(first) and np.abs(sess.run(moving)).max() > 0


def test_seed_rejects_what_it_does_not_have():
    for bad in ({"tiny": True}, {"stem": "bearpaw"}, {"n_modules": 2}):
        with pytest.raises(ValueError, match="architecture seed"):
            model_config(architecture="seed", **bad)
    with pytest.raises(ValueError, match="architecture must be one of"):
        model_config(architecture="hg")
    graph = tf.Graph()
    with graph.as_default(), pytest.raises(ValueError, match=r"multiple of 128"):
        build_hourglass(tf.zeros((1, 64, 64, 3)), 1, 16, 1, 4, is_training=False,
                        architecture="seed")


def test_sigmoid_cross_entropy_loss_against_numpy():
    """The seed's loss (hourglass_tiny.py:160): one reduce_mean over all stacks of
    sigmoid_cross_entropy_with_logits, against the formula written here in numpy."""
    from hgpipe.model.loss import heatmap_loss
    rng = np.random.RandomState(2)
    logits = [rng.randn(2, 4, 4, 16).astype(np.float32) * 3 for _ in range(3)]
    targets = rng.rand(2, 4, 4, 16).astype(np.float32)
    graph = tf.Graph()
    with graph.as_default():
        total, per_stack = heatmap_loss([tf.constant(x) for x in logits], tf.constant(targets),
                                        weighted=False, stacks="mean",
                                        kind="sigmoid_cross_entropy")
        summed, _ = heatmap_loss([tf.constant(x) for x in logits], tf.constant(targets),
                                 weighted=False, kind="sigmoid_cross_entropy")
        with tf.Session() as sess:
            got_total, got_stacks, got_summed = sess.run([total, per_stack, summed])
    x = np.stack(logits).astype(np.float64)          # (stack, N, H, W, J)
    z = targets.astype(np.float64)
    p = 1 / (1 + np.exp(-x))
    elementwise = -(z * np.log(p) + (1 - z) * np.log(1 - p))
    np.testing.assert_allclose(got_total, elementwise.mean(), rtol=1e-6)
    np.testing.assert_allclose(got_stacks, elementwise.mean(axis=(1, 2, 3, 4)), rtol=1e-6)
    np.testing.assert_allclose(got_summed, elementwise.mean(axis=(1, 2, 3, 4)).sum(),
                               rtol=1e-6)
    with pytest.raises(ValueError, match="kind must be one of"):
        heatmap_loss([tf.constant(logits[0])], tf.constant(targets), weighted=False, kind="l1")
