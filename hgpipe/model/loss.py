"""Heatmap regression loss with intermediate supervision and per-joint masking.

Every stack's heatmaps are compared with the same target maps (mean squared error, as in
Newell's Torch code) and the per-stack losses are summed.

``weighted=True`` is the masked MSE the old ``weighted_loss`` was meant to be: each
(sample, joint) map is multiplied by its weight and the sum is divided by the total weight
(times H*W), so a joint with weight 0 -- unannotated, or outside the crop -- contributes
nothing, neither to the numerator nor to the mean, and with all weights 1 the value equals
plain MSE.  A batch whose weights are all 0 gives a loss of 0 (not NaN).

``weighted_mode="bearpaw"`` is bearpaw/pytorch-pose HEAD's ``JointsMSELoss``
(``pose/losses/jointsmseloss.py``): per joint ``0.5 * MSELoss(pred * w, target * w)``,
summed over joints and divided by their number, i.e. ``0.5 * sum(w^2 (pred - target)^2)
/ (N * J * H * W)``: a weight-0 map still counts in the mean (it adds 0 to the sum).

``stacks="mean"`` averages the per-stack losses instead of summing them: PSH's
``task/pose.py:125`` takes ``torch.mean`` of the (batch, stack) losses of
``models/posenet.py:62-67`` (``calc_loss``), each the mean over the maps
(``task/loss.py:11-12``).

``kind="sigmoid_cross_entropy"`` is the seed's loss (wbenbihi/hourglasstensorlfow 356e063
``hourglass_tiny.py:160``: ``tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
logits=self.output, labels=self.gtMaps))``): each element's sigmoid cross-entropy of the
network's raw output (logits: train_launcher.py:45 builds the model with ``modif=False``, so
no sigmoid is applied, :446/:484) against the target map.  The seed takes one mean over its
(N, nStack, 64, 64, J) tensor, which equals the mean over stacks of each stack's mean
(``stacks="mean"``; every stack has the same shape).  Its weighted variant
(``weighted_bce_loss``, :330-338) is not used by the seed's config (``weighted_loss:
False``), so ``weighted`` keeps hgpipe's meaning for this kind too.

The loss is computed in float32 whatever the network's dtype (``dtype="float32"``): float16
squares of heatmap errors (~1e-3..1e-6) underflow and sums over 64x64x16 maps lose
precision. ``dtype="float64"`` computes it in float64, for the float64 verification mode of
the training graph (:func:`hgpipe.train.graph.build_train_graph`).
"""
import numpy as np

from hgpipe.tf_compat import import_tf

tf = import_tf(lazy=True)  # TensorFlow is imported when a graph is built


def _check_compatible(heatmaps, targets, weights):
    """Reject mismatched shapes while building the graph (dimensions unknown until run
    time are let through)."""
    if not targets.shape.is_compatible_with(tf.TensorShape([None] * 4)):
        raise ValueError("heatmap_loss: targets must be (N, H, W, J), got shape %s"
                         % (targets.shape,))
    for index, stack in enumerate(heatmaps):
        if not stack.shape.is_compatible_with(targets.shape):
            raise ValueError("heatmap_loss: stack %d heatmaps %s do not match targets %s"
                             % (index, stack.shape, targets.shape))
    if weights is not None:
        if targets.shape.ndims is None:
            expected = tf.TensorShape([None, None])
        else:
            expected = tf.TensorShape([targets.shape[0], targets.shape[3]])
        if not weights.shape.is_compatible_with(expected):
            raise ValueError("heatmap_loss: weights must be (N, J) = %s to match targets %s, "
                             "got shape %s" % (expected, targets.shape, weights.shape))


WEIGHTED_MODES = ("masked", "bearpaw")
STACK_REDUCTIONS = ("sum", "mean")
LOSS_KINDS = ("mse", "sigmoid_cross_entropy")
LOSS_DTYPES = ("float32", "float64")


def heatmap_loss(heatmaps, targets, weights=None, weighted=True, name="heatmap_loss",
                 weighted_mode="masked", stacks="sum", kind="mse", dtype="float32"):
    """Sum (or mean) over stacks of the (optionally joint-weighted) heatmap MSE (or the
    seed's sigmoid cross-entropy).

    heatmaps: list of per-stack predictions (N, H, W, J), any float dtype (a single tensor
        is treated as one stack).
    targets: (N, H, W, J) target maps in [0, 1] (see ``heatmaps_from_uint8``).
    weights: (N, J) per-joint weights (1 = supervise, 0 = ignore); required when
        ``weighted`` is True, ignored otherwise.
    weighted: True for the joint-weighted MSE described in the module docstring, False
        for plain MSE over every map.
    weighted_mode: "masked" (divide by the total weight) or "bearpaw" (JointsMSELoss).
    stacks: "sum" (Newell, bearpaw) or "mean" (PSH, the seed) of the per-stack losses.
    kind: "mse" or "sigmoid_cross_entropy" (the seed's, heatmaps are logits).
    dtype: "float32" (any network dtype) or "float64" (the float64 verification mode).

    Returns ``(total_loss, per_stack_losses)``: a ``dtype`` scalar and a list of ``dtype``
    scalars (one per stack, for TensorBoard), ``total_loss`` their sum or mean.
    """
    if weighted_mode not in WEIGHTED_MODES:
        raise ValueError("heatmap_loss: weighted_mode must be one of %s, got %r"
                         % (", ".join(WEIGHTED_MODES), weighted_mode))
    if kind not in LOSS_KINDS:
        raise ValueError("heatmap_loss: kind must be one of %s, got %r"
                         % (", ".join(LOSS_KINDS), kind))
    if stacks not in STACK_REDUCTIONS:
        raise ValueError("heatmap_loss: stacks must be one of %s, got %r"
                         % (", ".join(STACK_REDUCTIONS), stacks))
    if dtype not in LOSS_DTYPES:
        raise ValueError("heatmap_loss: dtype must be one of %s, got %r"
                         % (", ".join(LOSS_DTYPES), dtype))
    compute = tf.as_dtype(dtype)
    if not isinstance(heatmaps, (list, tuple)):
        heatmaps = [heatmaps]
    if not heatmaps:
        raise ValueError("heatmap_loss: heatmaps is an empty list")
    if weighted and weights is None:
        raise ValueError("heatmap_loss: weighted=True needs per-joint weights of shape (N, J)")
    with tf.name_scope(name):
        targets = tf.cast(targets, compute)
        if weighted:
            weights = tf.cast(weights, compute)
        _check_compatible(heatmaps, targets, weights if weighted else None)

        if weighted:
            map_weights = weights[:, tf.newaxis, tf.newaxis, :]  # (N, 1, 1, J)
            map_size = tf.cast(tf.shape(targets)[1] * tf.shape(targets)[2], compute)
            if weighted_mode == "bearpaw":
                map_weights = tf.square(map_weights)
                normaliser = 2.0 * tf.cast(tf.size(targets), compute)
            else:
                normaliser = tf.reduce_sum(weights) * map_size

        per_stack = []
        for index, stack in enumerate(heatmaps):
            if kind == "mse":
                per_element = tf.squared_difference(tf.cast(stack, compute), targets)
            else:
                per_element = tf.nn.sigmoid_cross_entropy_with_logits(
                    labels=targets, logits=tf.cast(stack, compute))
            if weighted:
                stack_loss = tf.div_no_nan(tf.reduce_sum(per_element * map_weights),
                                           normaliser)
            else:
                stack_loss = tf.reduce_mean(per_element)
            per_stack.append(tf.identity(stack_loss, name="stack%d" % index))
        if stacks == "mean":
            # a numpy scalar of the loss dtype: TF 1.15's divide makes a Python float a
            # float32 tensor whatever the numerator's dtype
            total = tf.divide(tf.add_n(per_stack), np.asarray(len(per_stack),
                                                                compute.as_numpy_dtype),
                              name="total")
        else:
            total = tf.add_n(per_stack, name="total")
        return total, per_stack
