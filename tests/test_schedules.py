"""Learning-rate schedules: the Python rule against each reference's formula written out,
and the graph's tensor against the Python rule at the same steps."""
import math

import numpy as np
import pytest

from hgpipe.config import Config
from hgpipe.train.schedules import learning_rate_at, learning_rate_tensor


def train_section(**values):
    return Config({"Train": values})["Train"]


def seed_exponential(step):
    # the seed's tf.train.exponential_decay(2.5e-4, step, 2000, 0.96, staircase=True):
    # decayed = lr * decay ^ floor(step / decay_steps)
    return 2.5e-4 * 0.96 ** math.floor(step / 2000.0)


def bearpaw_multistep(step, steps_per_epoch):
    # bearpaw/pytorch-pose example/main.py 138-140 + pose/utils/misc.py 49-52: lr starts at
    # args.lr and, at the start of each 0-based epoch listed in schedule, is multiplied by
    # gamma (the drops accumulate in the loop variable)
    lr = 2.5e-4
    for epoch in range(step // steps_per_epoch + 1):
        if epoch in [60, 90]:
            lr *= 0.1
    return lr


def psh_like_step_drop(step):
    # lr 1e-3, then 2e-4 once 100,001 updates have been made (milestone in steps)
    return 1e-3 if step < 100001 else 2e-4


CASES = [
    ("exponential", dict(learning_rate=2.5e-4, learning_rate_decay=0.96, decay_step=2000),
     seed_exponential, [0, 1, 1999, 2000, 2001, 3999, 4000, 199999, 200000, 10 ** 6]),
    ("constant", dict(learning_rate=2.5e-4, lr_schedule="constant"),
     lambda step: 2.5e-4, [0, 1, 10 ** 6]),
    ("multistep_epoch", dict(learning_rate=2.5e-4, lr_schedule="multistep", epoch_size=3704,
                             lr_milestones=[60, 90], lr_gamma=0.1, lr_milestone_unit="epoch"),
     lambda step: bearpaw_multistep(step, 3704),
     [0, 3703, 3704, 59 * 3704 + 3703, 60 * 3704 - 1, 60 * 3704, 60 * 3704 + 1,
      90 * 3704 - 1, 90 * 3704, 100 * 3704 - 1]),
    ("multistep_step", dict(learning_rate=1e-3, lr_schedule="multistep", lr_milestones=[100001],
                            lr_gamma=0.2, lr_milestone_unit="step"),
     psh_like_step_drop, [0, 99999, 100000, 100001, 100002, 250000]),
]


@pytest.mark.parametrize("name,values,reference,steps", CASES, ids=[c[0] for c in CASES])
def test_python_rule_equals_reference_formula(name, values, reference, steps):
    train = train_section(**values)
    for step in steps:
        assert learning_rate_at(train, step) == pytest.approx(reference(step), rel=1e-12), step


def test_drops_happen_exactly_at_the_boundaries():
    train = train_section(learning_rate=1.0, lr_schedule="multistep", epoch_size=10,
                          lr_milestones=[2, 3], lr_gamma=0.5)
    assert [learning_rate_at(train, s) for s in (0, 19, 20, 29, 30, 1000)] == \
        [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    train = train_section(learning_rate=1.0, learning_rate_decay=0.5, decay_step=3)
    assert [learning_rate_at(train, s) for s in range(7)] == [1, 1, 1, .5, .5, .5, .25]
    # no milestones: multistep stays at the initial rate
    train = train_section(learning_rate=0.1, lr_schedule="multistep")
    assert learning_rate_at(train, 10 ** 7) == 0.1


@pytest.mark.parametrize("name,values,reference,steps", CASES, ids=[c[0] for c in CASES])
def test_graph_tensor_equals_python_rule(name, values, reference, steps):
    from hgpipe.tf_compat import import_tf
    tf = import_tf()
    train = train_section(**values)
    graph = tf.Graph()
    with graph.as_default():
        step = tf.placeholder(tf.int64, ())
        lr = learning_rate_tensor(train, step)
        assert lr.dtype == tf.float32
        with tf.Session() as sess:
            got = [sess.run(lr, {step: s}) for s in steps]
    want = [learning_rate_at(train, s) for s in steps]
    np.testing.assert_allclose(got, want, rtol=1e-6)
