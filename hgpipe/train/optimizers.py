"""Update rules: TensorFlow's own RMSProp/Adam, and the same two with torch's semantics.

``[Train] optimizer`` chooses one of four rules (:func:`make_optimizer`):

- ``rmsprop_tf``: ``tf.train.RMSPropOptimizer`` (decay ``rmsprop_decay``, epsilon
  ``rmsprop_epsilon``, momentum ``momentum``), the seed's rule. Its mean-square slot starts
  at **1** and epsilon is added **inside** the root: ``lr * g / sqrt(ms + eps)``.
- ``rmsprop_torch``: :class:`TorchRMSProp`, ``torch.optim.RMSprop`` (bearpaw, and with
  momentum and weight decay 0 also Torch7's ``optim.rmsprop`` used by Newell's
  pose-hg-train): the slot starts at **0** and epsilon is added **outside** the root.
- ``adam_tf``: ``tf.train.AdamOptimizer`` (``adam_beta1/2``, ``adam_epsilon``): TF adds
  epsilon to the *uncorrected* root (``lr_t * m / (sqrt(v) + eps_hat)``).
- ``adam_torch``: :class:`TorchAdam`, ``torch.optim.Adam`` (pytorch_stacked_hourglass):
  epsilon is added to the bias-corrected root.

Both torch rules add ``weight_decay * param`` to the gradient first (L2, torch's
``weight_decay``; Adam's is not AdamW's decoupled decay), for every trainable variable, as
torch does for every parameter it is given. They are ``tf.train.Optimizer`` subclasses
built from plain ops (assign, sqrt, expm1), so ``minimize``, ``compute_gradients`` /
``apply_gradients``, TF's GPU mixed-precision graph rewrite and npu_bridge's
``NPULossScaleOptimizer`` wrap them like TF's own optimizers; their slots are ordinary
variables saved in checkpoints.

The rules, from the references' own code:

- torch 2.13 ``torch/optim/rmsprop.py`` ``_single_tensor_rmsprop`` (lines 301-339):
  ``g += wd * p`` (307-308); ``square_avg = alpha * square_avg + (1 - alpha) * g^2`` (316)
  from zeros (123, ``_init_group``); ``avg = sqrt(square_avg) + eps`` (325-330);
  with momentum ``buf = momentum * buf + g / avg; p -= lr * buf`` (332-337), else
  ``p -= lr * g / avg`` (339).
- Torch7 ``optim/rmsprop.lua`` (torch/optim): ``state.m`` starts at zero (line 36),
  ``m = alpha * m + (1 - alpha) * dfdx^2`` (41-42), ``tmp = sqrt(m) + epsilon`` (45),
  ``x -= lr * dfdx / tmp`` (46); defaults alpha 0.99, epsilon 1e-8 (28-29).
- torch 2.13 ``torch/optim/adam.py`` ``_single_tensor_adam`` (lines 414-546): ``m`` and
  ``v`` start at zeros (178-182); ``step += 1`` (414); ``g += wd * p`` (416-428);
  ``m = lerp(m, g, 1 - beta1)`` (456); ``v = beta2 * v + (1 - beta2) * g^2`` (475);
  ``bias_correction1/2 = 1 - beta1/2^step`` (530-531);
  ``denom = sqrt(v) / sqrt(bias_correction2) + eps`` (535, 544);
  ``p -= lr / bias_correction1 * m / denom`` (533, 546).

Adam's step count is its own non-slot variable (saved in checkpoints), not
``global_step``: a resumed run continues the bias correction exactly, and a step skipped
by loss scaling (overflow) is not counted, as torch's ``GradScaler`` skips ``step()``.
It is a float32 count, exact up to 2^24 (16.7 million) steps. The bias corrections are
computed as ``-expm1(t * log(beta))`` so that ``1 - beta2^t`` keeps float32 precision
(``1 - 0.999`` in float32 is off by 1.3e-5 relative).
"""
import math

from hgpipe.config import ConfigError
from hgpipe.tf_compat import import_tf

tf = import_tf()

OPTIMIZERS = ("rmsprop_tf", "rmsprop_torch", "adam_tf", "adam_torch")


class _TorchRule(tf.train.Optimizer):
    """Shared plumbing: a learning-rate tensor and dense-only updates on either variable kind."""

    def __init__(self, learning_rate, weight_decay, use_locking, name):
        super(_TorchRule, self).__init__(use_locking, name)
        self._lr = learning_rate
        self._weight_decay = float(weight_decay)
        self._lr_t = None

    def _prepare(self):
        lr = self._lr() if callable(self._lr) else self._lr
        self._lr_t = tf.convert_to_tensor(lr, name="learning_rate")

    def _decayed(self, grad, var):
        if self._weight_decay:
            return grad + tf.constant(self._weight_decay, grad.dtype) * var
        return grad

    def _assign(self, ref, value):
        return tf.assign(ref, value, use_locking=self._use_locking)

    def _resource_apply_dense(self, grad, var):
        return self._apply_dense(grad, var)

    def _apply_sparse(self, grad, var):
        # the hourglass has no sparse gradients; densify rather than approximate
        return self._apply_dense(tf.convert_to_tensor(grad), var)


class TorchRMSProp(_TorchRule):
    """``torch.optim.RMSprop`` (not centered) from tf.compat.v1 ops; see the module doc."""

    def __init__(self, learning_rate, alpha=0.99, epsilon=1e-8, momentum=0.0,
                 weight_decay=0.0, use_locking=False, name="RMSPropTorch"):
        super(TorchRMSProp, self).__init__(learning_rate, weight_decay, use_locking, name)
        self._alpha = float(alpha)
        self._epsilon = float(epsilon)
        self._momentum = float(momentum)

    def _create_slots(self, var_list):
        for var in var_list:
            self._zeros_slot(var, "square_avg", self._name)
            if self._momentum > 0:
                self._zeros_slot(var, "momentum_buffer", self._name)

    def _apply_dense(self, grad, var):
        dtype = var.dtype.base_dtype
        grad = self._decayed(grad, var)
        lr = tf.cast(self._lr_t, dtype)
        square_avg = self.get_slot(var, "square_avg")
        square_avg_t = self._assign(square_avg, self._alpha * square_avg +
                                    (1.0 - self._alpha) * tf.square(grad))
        avg = tf.sqrt(square_avg_t) + tf.constant(self._epsilon, dtype)
        if self._momentum > 0:
            buf = self.get_slot(var, "momentum_buffer")
            buf_t = self._assign(buf, self._momentum * buf + grad / avg)
            return tf.assign_sub(var, lr * buf_t, use_locking=self._use_locking)
        return tf.assign_sub(var, lr * grad / avg, use_locking=self._use_locking)


class TorchAdam(_TorchRule):
    """``torch.optim.Adam`` (L2 weight decay, no amsgrad) from tf.compat.v1 ops."""

    def __init__(self, learning_rate, beta1=0.9, beta2=0.999, epsilon=1e-8,
                 weight_decay=0.0, use_locking=False, name="AdamTorch"):
        super(TorchAdam, self).__init__(learning_rate, weight_decay, use_locking, name)
        self._beta1 = float(beta1)
        self._beta2 = float(beta2)
        self._epsilon = float(epsilon)
        self._step_name = name + "_step"  # a top-level variable, as TF's beta1_power

    def _create_slots(self, var_list):
        first = min(var_list, key=lambda v: v.name)
        self._create_non_slot_variable(initial_value=0.0, name=self._step_name,
                                       colocate_with=first)
        for var in var_list:
            self._zeros_slot(var, "exp_avg", self._name)
            self._zeros_slot(var, "exp_avg_sq", self._name)

    def _step_count(self):
        return self._get_non_slot_variable(self._step_name, graph=tf.get_default_graph())

    @staticmethod
    def _one_minus_power(beta, t):
        """1 - beta^t without float32 cancellation: -expm1(t log beta)."""
        return -tf.math.expm1(t * tf.constant(math.log(beta), t.dtype))

    def _apply_dense(self, grad, var):
        dtype = var.dtype.base_dtype
        grad = self._decayed(grad, var)
        lr = tf.cast(self._lr_t, dtype)
        t = tf.cast(self._step_count(), dtype) + 1.0  # this update's number, from 1
        exp_avg = self.get_slot(var, "exp_avg")
        exp_avg_sq = self.get_slot(var, "exp_avg_sq")
        exp_avg_t = self._assign(exp_avg, self._beta1 * exp_avg + (1.0 - self._beta1) * grad)
        exp_avg_sq_t = self._assign(exp_avg_sq, self._beta2 * exp_avg_sq +
                                    (1.0 - self._beta2) * tf.square(grad))
        denom = (tf.sqrt(exp_avg_sq_t) / tf.sqrt(self._one_minus_power(self._beta2, t)) +
                 tf.constant(self._epsilon, dtype))
        step_size = lr / self._one_minus_power(self._beta1, t)
        return tf.assign_sub(var, step_size * exp_avg_t / denom, use_locking=self._use_locking)

    def _finish(self, update_ops, name_scope):
        with tf.control_dependencies(update_ops):
            count = self._step_count()
            with tf.colocate_with(count):
                counted = tf.assign_add(count, 1.0, use_locking=self._use_locking)
        return tf.group(*(list(update_ops) + [counted]), name=name_scope)


def make_optimizer(train, learning_rate):
    """The optimizer ``[Train] optimizer`` names, with that section's constants."""
    name = train["optimizer"]
    if name.endswith("_tf") and train["weight_decay"]:
        raise ConfigError("[Train] weight_decay = %s needs optimizer rmsprop_torch or "
                          "adam_torch (TF's %s has no weight decay)"
                          % (train["weight_decay"], name))
    if name.startswith("adam") and train["momentum"]:
        raise ConfigError("[Train] momentum = %s is RMSProp's; optimizer %s has none"
                          % (train["momentum"], name))
    if name == "rmsprop_tf":
        return tf.train.RMSPropOptimizer(learning_rate, decay=train["rmsprop_decay"],
                                         momentum=train["momentum"],
                                         epsilon=train["rmsprop_epsilon"])
    if name == "rmsprop_torch":
        return TorchRMSProp(learning_rate, alpha=train["rmsprop_decay"],
                            epsilon=train["rmsprop_epsilon"], momentum=train["momentum"],
                            weight_decay=train["weight_decay"])
    if name == "adam_tf":
        return tf.train.AdamOptimizer(learning_rate, beta1=train["adam_beta1"],
                                      beta2=train["adam_beta2"], epsilon=train["adam_epsilon"])
    if name == "adam_torch":
        return TorchAdam(learning_rate, beta1=train["adam_beta1"], beta2=train["adam_beta2"],
                         epsilon=train["adam_epsilon"], weight_decay=train["weight_decay"])
    raise ConfigError("[Train] optimizer = %r: choose one of %s" % (name, ", ".join(OPTIMIZERS)))


def optimizer_state(train):
    """The setting a checkpoint's optimizer slots depend on, as ``key=value`` text.

    Resuming under another one would leave slots missing from the checkpoint (or restore
    TF's mean square as torch's), so the trainer refuses it; constants such as epsilon
    or the learning rate may change.
    """
    name = train["optimizer"]
    if name == "rmsprop_torch":  # its momentum buffer exists only when momentum > 0
        return "optimizer=%s, momentum%s" % (name, ">0" if train["momentum"] > 0 else "=0")
    return "optimizer=%s" % name
