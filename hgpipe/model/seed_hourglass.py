"""The seed's network, as it is: wbenbihi/hourglasstensorlfow ``hourglass_tiny.py`` (356e063).

hgpipe descends from this code (through Huawei's Ascend port); ``[Network] architecture
= seed`` builds it, quirks included, so that a run can be compared with the system its
users came from. Line numbers are those of ``hourglass_tiny.py`` at 356e063, built as
``train_launcher.py:45`` does (``tiny=False``, ``modif=False``, ``attention=False``):

* stem (:389-401): zero padding 2, 6x6/2 conv(64) + BN + ReLU (:389-391), residual(128),
  2x2 max pool, residual(nFeat / 2), residual(nFeat);
* residual (:574-587, :529-556): BN-ReLU-conv1x1(n/2), BN-ReLU-pad 1-conv3x3(n/2),
  BN-ReLU-conv1x1(n), plus the input (or a 1x1 conv of it when widths differ, :558-572);
  no ReLU after the sum (``modif`` False);
* hourglass (:589-615): up = residual; low = pool -> residual -> (hourglass(n - 1) while
  ``n > 0``, :604, else a residual) -> residual -> nearest 2x upsample; up + low.  The
  recursion stops at ``n == 0``, not 1, so ``nLow`` 4 pools **5** times (64 -> 2 px at
  256 px input, hence inputs are multiples of 4 * 2^(nLow + 1));
* per stack (:448-480): hourglass -> dropout (:451) -> 1x1 conv + BN + ReLU (``ll``,
  :452; **no residual after the hourglass**) -> 1x1 conv to the heatmaps (``out``, :458);
  between stacks ``ll_`` = 1x1 conv(ll) and ``out_`` = 1x1 conv(out); the next input is
  ``out_ + previous input + ll_[0]`` (:460, :472): every stack after the first adds the
  *first* stack's ``ll_``, so ``ll_`` of stacks 1..nStack-2 are built (their weights
  exist and are counted) but unused;
* every conv has no bias (``_conv`` / ``_conv_bn_relu``, :501, :521) and Xavier normal
  weights (contrib's truncated normal, :501); every batch norm is
  ``tf.contrib.layers.batch_norm(x, 0.9, epsilon=1e-5)``: decay 0.9, centre (beta) but
  **no gamma** (contrib's ``scale=False`` default, :523).

At nStack 4, nFeat 256, 16 joints: 14,500,480 trainable parameters (tests/test_model.py
counts them from the layer list above, independently of this builder).
"""
from hgpipe.model import layers
from hgpipe.tf_compat import import_tf

tf = import_tf(lazy=True)  # TensorFlow is imported when a graph is built

SEED_STEM_PAD = 2      # hourglass_tiny.py:389 tf.pad(inputs, [[0,0],[2,2],[2,2],[0,0]])
SEED_STEM_KERNEL = 6   # hourglass_tiny.py:391 kernel_size = 6, strides = 2


def _conv(x, n_out, kernel_size=1, name="conv"):
    """The seed's ``_conv``: no bias, Xavier normal weights, stride 1 (pad 1 for 3x3)."""
    return layers.conv2d(x, n_out, kernel_size, use_bias=False, name=name,
                         initializer=layers.xavier_normal_initializer)


def _bn_relu(x, is_training, name):
    return layers.bn_relu(x, is_training, name=name, scale=False)


def _conv_bn_relu(x, n_out, is_training, name):
    """The seed's ``_conv_bn_relu`` (1x1): conv without bias, BN without gamma, ReLU."""
    with tf.variable_scope(name):
        return _bn_relu(_conv(x, n_out, 1), is_training, "bn")


def residual(x, n_out, is_training, name):
    """``_residual`` with ``_conv_block`` and ``_skip_layer`` (hourglass_tiny.py:529-587)."""
    with tf.variable_scope(name):
        half = n_out // 2
        block = _conv(_bn_relu(x, is_training, "bn1"), half, 1, name="conv1")
        block = _conv(_bn_relu(block, is_training, "bn2"), half, 3, name="conv2")
        block = _conv(_bn_relu(block, is_training, "bn3"), n_out, 1, name="conv3")
        skip = x if layers._channels(x) == n_out else _conv(x, n_out, 1, name="skip")
        return block + skip


def hourglass(x, n, n_feats, is_training, name="hourglass"):
    """``_hourglass(inputs, n, ...)``: recurses while ``n > 0`` (hourglass_tiny.py:604)."""
    with tf.variable_scope(name):
        up = residual(x, n_feats, is_training, "up_1")
        low = residual(layers.max_pool(x), n_feats, is_training, "low_1")
        if n > 0:
            low = hourglass(low, n - 1, n_feats, is_training, "low_2")
        else:
            low = residual(low, n_feats, is_training, "low_2")
        low = residual(low, n_feats, is_training, "low_3")
        return layers.upsample_nearest(low) + up


def build_seed_hourglass(x, n_stacks, n_feats, n_low, n_joints, is_training, dropout_rate):
    """The seed's ``_graph_hourglass`` (non-tiny) on ``x`` (already in the compute dtype);
    returns the per-stack heatmap logits (``out``)."""
    with tf.variable_scope("stem"):
        x = layers.conv2d(x, 64, SEED_STEM_KERNEL, stride=2, use_bias=False,
                          pad=SEED_STEM_PAD, name="conv6x6",
                          initializer=layers.xavier_normal_initializer)
        x = _bn_relu(x, is_training, "bn")
        x = residual(x, 128, is_training, "r1")
        x = layers.max_pool(x)
        x = residual(x, n_feats // 2, is_training, "r2")
        x = residual(x, n_feats, is_training, "r3")

    heatmaps = []
    stack_input, first_ll_remap = x, None
    for stack in range(n_stacks):
        with tf.variable_scope("stack%d" % stack):
            features = hourglass(stack_input, n_low, n_feats, is_training)
            features = layers.dropout(features, dropout_rate, is_training)
            features = _conv_bn_relu(features, n_feats, is_training, "ll")
            logits = _conv(features, n_joints, 1, name="heatmaps")
            heatmaps.append(tf.identity(logits, name="heatmaps"))
            if stack + 1 < n_stacks:
                ll_remap = _conv(features, n_feats, 1, name="remap_features")
                if first_ll_remap is None:
                    first_ll_remap = ll_remap   # the seed adds ll_[0] in every stack (:472)
                remapped_heatmaps = _conv(logits, n_feats, 1, name="remap_heatmaps")
                stack_input = tf.add_n([remapped_heatmaps, stack_input, first_ll_remap],
                                       name="next_input")
    return heatmaps
