"""Graph building blocks of the Stacked Hourglass, written on raw ``tf.compat.v1`` ops.

Why not ``tf.layers`` / Keras / ``tf.contrib``: ``tf.contrib`` is gone in TF 2.x and
``tf.compat.v1.layers`` breaks under Keras 3 (TF 2.16+), while the Ascend TF 1.15 images
want plain graph ops.  So every variable is made with ``tf.get_variable`` (names stay
stable for checkpoints, ``tf.variable_scope(reuse=...)`` shares them) and every op is one
that exists in ``compat.v1`` of both TF 1.15 and TF 2.x.

All tensors are NHWC.  ``is_training`` is either a Python bool (the branch is chosen while
building the graph) or a scalar ``tf.bool`` tensor (the branch is chosen per ``run`` with
``tf.cond``); batch norm and dropout honour it.  Variables are float32; a float16 input
computes in float16 (weights are cast on read, batch-norm statistics stay float32).  A
float64 input makes every variable float64 too (:func:`variable_dtype`): the float64
verification mode of the training graph (``build_train_graph(..., dtype="float64")``),
which matches a float64 reference run to rounding instead of float32 noise.
"""
import numpy as np

from hgpipe.tf_compat import import_tf

tf = import_tf(lazy=True)  # TensorFlow is imported when a graph is built

# Torch's SpatialConvolution default init (the reference hg.lua trains with it):
# U(-1/sqrt(fan_in), 1/sqrt(fan_in)) == variance scaling with scale 1/3, uniform.
_TORCH_CONV_INIT_SCALE = 1.0 / 3.0

# Torch/PyTorch BatchNorm defaults: running = 0.9 * running + 0.1 * batch, eps 1e-5.
BN_DECAY = 0.9
BN_EPSILON = 1e-5


def check_is_training(is_training):
    """Return ``is_training`` as a Python bool or a scalar bool tensor; reject anything else.

    A silently truthy non-bool (``1``, ``"no"``, a float tensor) would pick the wrong
    batch-norm mode, so this is strict.
    """
    if isinstance(is_training, (bool, np.bool_)):
        return bool(is_training)
    if (isinstance(is_training, (tf.Tensor, tf.Variable))
            and is_training.dtype.base_dtype == tf.bool):
        if is_training.shape.ndims not in (None, 0):
            raise ValueError("is_training must be a scalar bool tensor, got shape %s"
                             % (is_training.shape,))
        return is_training
    raise ValueError("is_training must be a Python bool or a tf.bool tensor, got %r"
                     % (is_training,))


def switch(is_training, train_fn, infer_fn):
    """Call ``train_fn`` or ``infer_fn``: statically for a Python bool, via tf.cond otherwise."""
    is_training = check_is_training(is_training)
    if isinstance(is_training, bool):
        return train_fn() if is_training else infer_fn()
    return tf.cond(is_training, train_fn, infer_fn)


def _channels(x):
    channels = x.shape[-1]
    channels = getattr(channels, "value", channels)  # TF 1.15 Dimension vs TF 2 int
    if channels is None:
        raise ValueError("layer input %s needs a static channel count" % (x.name,))
    return int(channels)


def variable_dtype(x):
    """The dtype of the variables a layer on ``x`` makes: float64 for a float64 input,
    float32 otherwise (a float16 input reads float32 weights cast to float16)."""
    return tf.float64 if x.dtype.base_dtype == tf.float64 else tf.float32


def xavier_normal_initializer(shape, dtype=None, partition_info=None):
    """``tf.contrib.layers.xavier_initializer(uniform=False)``, the seed's conv init
    (wbenbihi hourglass_tiny.py:501, :521), written out because tf.contrib is gone in
    TF 2.x: truncated normal of stddev sqrt(1.3 / n), n = (fan_in + fan_out) / 2
    (contrib's variance_scaling_initializer, factor 1, mode FAN_AVG)."""
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    fan_avg = (int(shape[-2]) + int(shape[-1])) * receptive / 2.0
    return tf.truncated_normal(shape, 0.0, np.sqrt(1.3 / fan_avg), dtype=dtype or tf.float32)


def conv2d(x, n_out, kernel_size=1, stride=1, use_bias=True, name="conv", pad=None,
           initializer=None):
    """2-D convolution with Torch-style symmetric zero padding ``(kernel_size - 1) // 2``.

    Stride 1 uses 'SAME' (symmetric for odd kernels); larger strides pad explicitly and run
    'VALID', because TF's 'SAME' would pad 2 before / 3 after for the 7x7/2 stem and shift
    every heatmap by a fraction of a pixel relative to the reference model.  ``pad`` sets
    the symmetric zero padding explicitly (then any kernel size is allowed: the seed's
    6x6/2 stem pads 2); ``initializer`` replaces Torch's default init of the weights.
    """
    if pad is None and kernel_size % 2 != 1:
        raise ValueError("conv2d %s: kernel_size must be odd, got %d" % (name, kernel_size))
    n_in = _channels(x)
    with tf.variable_scope(name):
        weights = tf.get_variable(
            "weights", [kernel_size, kernel_size, n_in, n_out], dtype=variable_dtype(x),
            initializer=initializer or tf.variance_scaling_initializer(
                scale=_TORCH_CONV_INIT_SCALE, mode="fan_in", distribution="uniform"))
        if pad is not None:
            x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]]) if pad else x
            padding = "VALID"
        elif stride == 1 or kernel_size == 1:
            padding = "SAME"
        else:
            pad = (kernel_size - 1) // 2
            x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
            padding = "VALID"
        y = tf.nn.conv2d(x, tf.cast(weights, x.dtype), [1, stride, stride, 1], padding)
        if use_bias:
            biases = tf.get_variable("biases", [n_out], dtype=variable_dtype(x),
                                     initializer=tf.zeros_initializer())
            y = tf.nn.bias_add(y, tf.cast(biases, y.dtype))
        return y


def batch_norm(x, is_training, decay=BN_DECAY, epsilon=BN_EPSILON, name="bn", scale=True):
    """Batch normalisation with moving statistics and a real inference mode.

    Training normalises with the batch statistics and registers, in
    ``tf.GraphKeys.UPDATE_OPS``, ops that move ``moving_mean``/``moving_variance`` towards
    them (run them with the train op: ``tf.control_dependencies(tf.get_collection(
    tf.GraphKeys.UPDATE_OPS))``).  Inference normalises with the moving statistics, so a
    sample's output does not depend on the rest of its batch.  With a Python ``False`` no
    update ops are created at all (an eval graph sharing the variables cannot disturb them);
    with a bool tensor the updates are no-ops whenever it is fed ``False``.
    ``scale=False`` has no gamma (a fixed 1): ``tf.contrib.layers.batch_norm``'s default,
    which the seed uses (wbenbihi hourglass_tiny.py:523, :540-554).

    float32 and float16 inputs run ``tf.nn.fused_batch_norm``.  TF has no float64 kernel
    of it, so a float64 input computes the same thing from ``tf.nn.moments``
    (:func:`_moments_batch_norm`).  The epsilon: TF 1.15's ``fused_batch_norm`` raises any
    epsilon below 1.001e-5 to 1.001e-5 (``nn_impl.py``: ``min_epsilon``), so a float32
    graph on TF 1.15 normalises with 1.001e-5 where the references (and TF 2.x) use 1e-5;
    the float64 path uses ``epsilon`` as given on both.
    """
    n_channels = _channels(x)
    dtype = variable_dtype(x)
    with tf.variable_scope(name):
        if scale:
            gamma = tf.get_variable("gamma", [n_channels], dtype=dtype,
                                    initializer=tf.ones_initializer())
        else:
            gamma = tf.ones([n_channels], dtype, name="no_gamma")
        beta = tf.get_variable("beta", [n_channels], dtype=dtype,
                               initializer=tf.zeros_initializer())
        moving_mean = tf.get_variable("moving_mean", [n_channels], dtype=dtype,
                                      initializer=tf.zeros_initializer(), trainable=False)
        moving_variance = tf.get_variable("moving_variance", [n_channels], dtype=dtype,
                                          initializer=tf.ones_initializer(), trainable=False)
        fused = dtype != tf.float64

        def train_branch():
            if not fused:
                return _moments_batch_norm(x, gamma, beta, epsilon)
            y, mean, variance = tf.nn.fused_batch_norm(
                x, gamma, beta, epsilon=epsilon, is_training=True)
            return y, mean, variance

        def infer_branch():
            if not fused:
                y = tf.nn.batch_normalization(x, moving_mean, moving_variance, beta, gamma,
                                              epsilon)
            else:
                y, _, _ = tf.nn.fused_batch_norm(
                    x, gamma, beta, mean=moving_mean, variance=moving_variance,
                    epsilon=epsilon, is_training=False)
            return y, tf.identity(moving_mean), tf.identity(moving_variance)

        is_training = check_is_training(is_training)
        if is_training is False:
            return infer_branch()[0]
        y, mean, variance = switch(is_training, train_branch, infer_branch)
        momentum = 1.0 - decay
        tf.add_to_collection(tf.GraphKeys.UPDATE_OPS, tf.assign_sub(
            moving_mean, (moving_mean - mean) * momentum, name="update_moving_mean"))
        tf.add_to_collection(tf.GraphKeys.UPDATE_OPS, tf.assign_sub(
            moving_variance, (moving_variance - variance) * momentum,
            name="update_moving_variance"))
        return y


def _moments_batch_norm(x, gamma, beta, epsilon):
    """Train-mode batch norm from ``tf.nn.moments``: what ``fused_batch_norm(...,
    is_training=True)`` returns, for dtypes it has no kernel for (float64).

    The output is normalised with the biased batch variance (mean of squared deviations);
    the variance returned for the moving average is the unbiased one (times n / (n - 1),
    n the values per channel), as the fused op returns it (TF's CPU kernel
    ``fused_batch_norm_op.cc``: ``rest_size_adjust``) and as torch's ``batch_norm`` feeds
    its ``running_var`` (``torch.nn.functional.batch_norm``, documented on
    ``torch.nn.BatchNorm2d``: "the running variance is computed with the unbiased
    estimator", the normalisation with the biased one).
    """
    mean, variance = tf.nn.moments(x, [0, 1, 2])
    y = tf.nn.batch_normalization(x, mean, variance, beta, gamma, epsilon)
    count = tf.cast(tf.size(x) // tf.shape(x)[-1], x.dtype)
    return y, mean, variance * (count / (count - 1.0))


def relu(x, name="relu"):
    """Rectified linear unit."""
    return tf.nn.relu(x, name=name)


def bn_relu(x, is_training, name="bn", scale=True):
    """Batch norm then ReLU: the pre-activation used throughout Newell's residual module."""
    return relu(batch_norm(x, is_training, name=name, scale=scale))


def linear(x, n_out, is_training, name="linear"):
    """Newell's ``lin``: 1x1 conv, batch norm, ReLU (the layer before each heatmap head)."""
    with tf.variable_scope(name):
        return relu(batch_norm(conv2d(x, n_out, 1, name="conv"), is_training, name="bn"))


def residual(x, n_out, is_training, tiny=False, name="residual"):
    """Residual module: conv block plus skip (identity, or 1x1 conv when widths differ).

    Full block (Newell's Torch ``Residual``, bearpaw's ``Bottleneck``):
    BN-ReLU-conv1x1(n/2) - BN-ReLU-conv3x3(n/2) - BN-ReLU-conv1x1(n).

    ``tiny`` block (wbenbihi's ``hourglass_tiny.py`` ``_conv_block`` with tiny=True):
    BN-ReLU-conv3x3(n).  One conv instead of three: fewer layers and kernel launches (lower
    latency), but at equal width it holds *more* weights (9n^2 against 3.25n^2), so a tiny
    model is only light when ``n_feats`` is also reduced.
    """
    n_in = _channels(x)
    if not tiny and n_out % 2:
        raise ValueError("residual %s: n_out must be even for the bottleneck, got %d"
                         % (name, n_out))
    with tf.variable_scope(name):
        if tiny:
            block = conv2d(bn_relu(x, is_training, name="bn1"), n_out, 3, name="conv1")
        else:
            half = n_out // 2
            block = conv2d(bn_relu(x, is_training, name="bn1"), half, 1, name="conv1")
            block = conv2d(bn_relu(block, is_training, name="bn2"), half, 3, name="conv2")
            block = conv2d(bn_relu(block, is_training, name="bn3"), n_out, 1, name="conv3")
        skip = x if n_in == n_out else conv2d(x, n_out, 1, name="skip")
        return block + skip


def max_pool(x, size=2, name="pool"):
    """Non-overlapping ``size`` x ``size`` max pooling (halves H and W for size 2)."""
    return tf.nn.max_pool(x, [1, size, size, 1], [1, size, size, 1], "VALID", name=name)


def upsample_nearest(x, factor=2, name="upsample"):
    """Nearest-neighbour upsampling: each pixel becomes a ``factor`` x ``factor`` block.

    ``resize_nearest_neighbor`` with align_corners=False and half_pixel_centers=False
    copies pixel ``floor(i / factor)``, i.e. exact replication (Torch's
    SpatialUpSamplingNearest); it exists in compat.v1 of TF 1.15 and 2.x alike.
    """
    height, width = x.shape[1], x.shape[2]
    height = getattr(height, "value", height)
    width = getattr(width, "value", width)
    if height is not None and width is not None:
        size = [int(height) * factor, int(width) * factor]
    else:
        size = tf.shape(x)[1:3] * factor
    return tf.image.resize_nearest_neighbor(x, size, align_corners=False,
                                            half_pixel_centers=False, name=name)


def dropout(x, rate, is_training, name="dropout"):
    """Inverted dropout active only in training; ``rate`` is the fraction of units dropped.

    ``tf.nn.dropout`` changed from ``keep_prob`` (1.x) to ``rate`` (2.x); the ``compat.v1``
    function of both 1.15 and 2.x accepts the keyword ``rate=``, so it is always passed by
    keyword.  A rate of 0 builds no op.
    """
    rate = float(rate)
    if not 0.0 <= rate < 1.0:
        raise ValueError("dropout %s: rate must be in [0, 1), got %r" % (name, rate))
    if rate == 0.0:
        return x
    with tf.name_scope(name):
        return switch(is_training,
                      lambda: tf.nn.dropout(x, rate=rate),
                      lambda: tf.identity(x))
