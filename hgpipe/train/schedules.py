"""Learning-rate schedules: one rule, written twice (a graph tensor and a Python float).

``lr_schedule`` in ``[Train]`` picks the rule; ``step`` is the number of updates already
made (``global_step`` before the update that uses the rate, counted from 0):

- ``constant``: ``learning_rate`` throughout (Newell's pose-hg-train keeps it fixed).
- ``exponential``: ``learning_rate * learning_rate_decay ** floor(step / decay_step)``,
  the seed's ``tf.train.exponential_decay(..., staircase=True)``.
- ``multistep``: ``learning_rate * lr_gamma ** (number of milestones <= step)``, with
  ``lr_milestones`` in steps, or in epochs multiplied by ``epoch_size``
  (``lr_milestone_unit = epoch``). This is bearpaw/pytorch-pose's rule:
  ``example/main.py`` line 139-140 calls ``adjust_learning_rate(optimizer, epoch, lr,
  args.schedule, args.gamma)`` at the start of each 0-based ``epoch`` and
  ``pose/utils/misc.py`` line 49-52 multiplies by ``gamma`` ``if epoch in schedule``: the
  first step of epoch index 60 already uses the lower rate. (bearpaw restarts from
  ``args.lr`` when resumed, forgetting earlier drops; hgpipe gives the uninterrupted
  run's rate after a resume too.)

:func:`learning_rate_at` is the Python form used by the tests and to document recipes;
:func:`learning_rate_tensor` builds the same values from integer ops on ``global_step``
(no float rounding of ``step / decay_step``), so the two agree to float32 precision
(to float64 precision with ``dtype="float64"``, the training graph's float64 mode: a
float32 2.5e-4 is off by 2e-8).
"""
import math

from hgpipe.tf_compat import import_tf


def milestone_steps(train):
    """The steps (0-based) from which each multistep drop applies."""
    unit = train["epoch_size"] if train["lr_milestone_unit"] == "epoch" else 1
    return [int(m) * unit for m in train["lr_milestones"]]


def learning_rate_at(train, step):
    """The learning rate used by update number ``step`` (0-based) under ``train``'s rule."""
    lr = float(train["learning_rate"])
    schedule = train["lr_schedule"]
    if schedule == "constant":
        return lr
    if schedule == "exponential":
        return lr * float(train["learning_rate_decay"]) ** (int(step) // train["decay_step"])
    if schedule == "multistep":
        drops = sum(1 for m in milestone_steps(train) if int(step) >= m)
        return lr * float(train["lr_gamma"]) ** drops
    raise ValueError("unknown lr_schedule %r" % (schedule,))


def learning_rate_tensor(train, global_step, name="learning_rate", dtype="float32"):
    """A ``dtype`` (float32 or float64) scalar tensor equal to ``learning_rate_at(train,
    global_step)``."""
    tf = import_tf()
    dtype = tf.as_dtype(dtype)
    schedule = train["lr_schedule"]
    lr = float(train["learning_rate"])
    with tf.name_scope(name):
        step = tf.cast(global_step, tf.int64)
        if schedule == "constant":
            value = tf.constant(lr, dtype)
        elif schedule == "exponential":
            drops = tf.math.floordiv(step, tf.constant(train["decay_step"], tf.int64))
            # exp(k * log(decay)) with log taken in float64 here: float32 pow of a rounded
            # base would drift by k x its rounding error (6e-6 after 100 drops)
            log_decay = tf.constant(math.log(float(train["learning_rate_decay"])), dtype)
            value = lr * tf.exp(tf.cast(drops, dtype) * log_decay)
        elif schedule == "multistep":
            milestones = milestone_steps(train)
            if milestones:
                passed = tf.greater_equal(step, tf.constant(milestones, tf.int64))
                drops = tf.reduce_sum(tf.cast(passed, tf.int32))
            else:
                drops = tf.constant(0, tf.int32)
            gamma = float(train["lr_gamma"])
            values = tf.constant([lr * gamma ** k for k in range(len(milestones) + 1)],
                                 dtype)
            value = tf.gather(values, drops)
        else:
            raise ValueError("unknown lr_schedule %r" % (schedule,))
        return tf.identity(value, name="value")
