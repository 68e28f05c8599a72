"""hgpipe's torch-semantics RMSProp and Adam against real torch and against the rules
written out; TF's RMSProp kept as the seed's rule.

tests/fixtures/optimizer_fixtures.npz was written once by real torch with
tests/fixtures/make_optimizer_fixtures.py (torch is not needed here): 25 steps of a fixed
gradient sequence on two tensors, parameters after every step, in float64 and float32.
The gradients are fed through a loss whose gradient is the fed tensor.
"""
import json
import os

import numpy as np
import pytest

from hgpipe.config import Config, ConfigError

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures",
                        "optimizer_fixtures.npz")


@pytest.fixture(scope="module")
def fixtures():
    with np.load(FIXTURES) as data:
        arrays = {key: data[key] for key in data.files}
    arrays["meta"] = json.loads(str(arrays["meta"]))
    return arrays


def case_names():
    with np.load(FIXTURES) as data:
        return sorted(json.loads(str(data["meta"]))["cases"])


def train_section(case):
    """hgpipe's [Train] settings equal to a fixture case's torch arguments."""
    kwargs = case["kwargs"]
    values = {"weight_decay": kwargs.get("weight_decay", 0.0)}
    if case["optimizer"] == "RMSprop":
        values.update(optimizer="rmsprop_torch", rmsprop_decay=kwargs["alpha"],
                      rmsprop_epsilon=kwargs["eps"], momentum=kwargs.get("momentum", 0.0))
    else:
        values.update(optimizer="adam_torch", adam_beta1=kwargs["betas"][0],
                      adam_beta2=kwargs["betas"][1], adam_epsilon=kwargs["eps"])
    return Config({"Train": values})["Train"]


# ------------------------------------------------------------ the rules written out

def numpy_rmsprop(params, grads, lr, alpha, eps, momentum=0.0, weight_decay=0.0):
    """torch.optim.RMSprop, torch 2.13 torch/optim/rmsprop.py _single_tensor_rmsprop
    lines 307-339 (square_avg from zeros, line 123); Torch7 optim/rmsprop.lua 36-46."""
    p = params.copy()
    square_avg = np.zeros_like(p)
    buf = np.zeros_like(p)
    trace = []
    for t in range(len(grads)):
        g = grads[t] + weight_decay * p
        square_avg = alpha * square_avg + (1 - alpha) * g * g
        avg = np.sqrt(square_avg) + eps
        if momentum > 0:
            buf = momentum * buf + g / avg
            p = p - lr[t] * buf
        else:
            p = p - lr[t] * g / avg
        trace.append(p)
    return np.stack(trace)


def numpy_adam(params, grads, lr, betas, eps, weight_decay=0.0):
    """torch.optim.Adam, torch 2.13 torch/optim/adam.py _single_tensor_adam lines 414-546."""
    beta1, beta2 = betas
    p = params.copy()
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    trace = []
    for t in range(len(grads)):
        step = t + 1
        g = grads[t] + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        denom = np.sqrt(v) / np.sqrt(1 - beta2 ** step) + eps
        p = p - lr[t] / (1 - beta1 ** step) * m / denom
        trace.append(p)
    return np.stack(trace)


def numpy_tf_rmsprop(params, grads, lr, decay, eps, momentum=0.0):
    """tf.train.RMSPropOptimizer: "ms" slot initialised to ones (tensorflow
    python/training/rmsprop.py _create_slots), ApplyRMSProp (core/kernels/training_ops.cc):
    ms = decay*ms + (1-decay)*g^2; mom = momentum*mom + lr*g/sqrt(ms+eps); var -= mom."""
    p = params.copy()
    ms = np.ones_like(p)
    mom = np.zeros_like(p)
    trace = []
    for t in range(len(grads)):
        g = grads[t]
        ms = decay * ms + (1 - decay) * g * g
        mom = momentum * mom + lr[t] * g / np.sqrt(ms + eps)
        p = p - mom
        trace.append(p)
    return np.stack(trace)


def f32(value):
    """A constant as TF holds it after converting a Python float to a float32 tensor."""
    return float(np.float32(value))


def numpy_rule(case, params, grads, lr):
    kwargs = dict(case["kwargs"])
    if case["optimizer"] == "RMSprop":
        return numpy_rmsprop(params, grads, lr, **kwargs)
    return numpy_adam(params, grads, lr, **kwargs)


# ------------------------------------------------------------ running hgpipe's optimizers

def run_tf(train, fixtures, dtype, lr, steps=None, wrap=None, checkpoint_at=None,
           tmp_path=None):
    """Apply the fixture's gradients with make_optimizer(train); parameters after each step.

    ``checkpoint_at``: save after that many steps, rebuild the graph, restore, continue.
    """
    from hgpipe.tf_compat import import_tf
    from hgpipe.train.optimizers import make_optimizer
    tf = import_tf()
    steps = int(fixtures["steps"]) if steps is None else steps
    n = len([k for k in fixtures if k.startswith("init_")])
    trace = [[] for _ in range(n)]
    counts = []
    stops = [checkpoint_at, steps] if checkpoint_at else [steps]
    start = 0
    for stop in stops:
        graph = tf.Graph()
        with graph.as_default():
            variables, grads = [], []
            for i in range(n):
                init = fixtures["init_%d" % i].astype(dtype)
                variables.append(tf.get_variable("param_%d" % i, initializer=init))
                grads.append(tf.placeholder(dtype, init.shape))
            lr_feed = tf.placeholder(tf.float32 if dtype == np.float32 else tf.float64, ())
            loss = tf.add_n([tf.reduce_sum(v * g) for v, g in zip(variables, grads)])
            optimizer = make_optimizer(train, lr_feed)
            if wrap is not None:
                optimizer = wrap(optimizer)
            train_op = optimizer.minimize(loss)
            saver = tf.train.Saver()
            with tf.Session() as sess:
                if start:
                    saver.restore(sess, str(tmp_path / "ckpt"))
                else:
                    sess.run(tf.global_variables_initializer())
                for step in range(start, stop):
                    feed = {g: fixtures["grads_%d" % i][step].astype(dtype)
                            for i, g in enumerate(grads)}
                    feed[lr_feed] = lr[step]
                    sess.run(train_op, feed)
                    for i, value in enumerate(sess.run(variables)):
                        trace[i].append(value)
                if stop != steps:
                    saver.save(sess, str(tmp_path / "ckpt"))
                counts.extend(sess.run(v) for v in tf.global_variables()
                              if v.op.name == "AdamTorch_step")
        start = stop
    return [np.stack(t) for t in trace], counts


# ------------------------------------------------------------ tests

@pytest.mark.parametrize("name", case_names())
def test_numpy_rule_equals_torch(fixtures, name):
    """The rule as written out above is what torch computed (float64)."""
    case = fixtures["meta"]["cases"][name]
    lr = fixtures[name + "__lr"]
    for i in range(2):
        want = fixtures["%s__float64__param_%d" % (name, i)]
        got = numpy_rule(case, fixtures["init_%d" % i], fixtures["grads_%d" % i], lr)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-10), (np.float32, 1e-6)],
                         ids=["float64", "float32"])
@pytest.mark.parametrize("name", case_names())
def test_torch_semantics_equal_torch(fixtures, name, dtype, rtol):
    """Every parameter after each of 25 steps equals real torch's (same dtype) and the
    written-out rule, to 1e-6 relative in float32 (1e-10 in float64)."""
    case = fixtures["meta"]["cases"][name]
    lr = fixtures[name + "__lr"]
    got, _ = run_tf(train_section(case), fixtures, dtype, lr)
    tag = "float64" if dtype == np.float64 else "float32"
    for i in range(2):
        want = fixtures["%s__%s__param_%d" % (name, tag, i)]
        assert got[i].dtype == dtype and got[i].shape == want.shape
        np.testing.assert_allclose(got[i], want, rtol=rtol, atol=0)
        rule = numpy_rule(case, fixtures["init_%d" % i], fixtures["grads_%d" % i], lr)
        np.testing.assert_allclose(got[i], rule, rtol=rtol, atol=0)


def test_rmsprop_tf_keeps_tensorflow_semantics(fixtures):
    """rmsprop_tf is still tf.train.RMSPropOptimizer (slot from 1, eps inside the root),
    which the seed recipe relies on, and it is measurably not torch's rule."""
    lr = np.full(int(fixtures["steps"]), 1e-3)
    for momentum in (0.0, 0.9):
        train = Config({"Train": {"optimizer": "rmsprop_tf", "rmsprop_decay": 0.9,
                                  "rmsprop_epsilon": 1e-10, "momentum": momentum}})["Train"]
        got, _ = run_tf(train, fixtures, np.float64, lr)
        for i in range(2):
            init, grads = fixtures["init_%d" % i], fixtures["grads_%d" % i]
            # TF converts decay/epsilon/momentum to float32 tensors, then casts (rmsprop.py
            # _prepare, _apply_dense): the rule sees their float32 roundings
            want = numpy_tf_rmsprop(init, grads, lr, f32(0.9), f32(1e-10), f32(momentum))
            np.testing.assert_allclose(got[i], want, rtol=1e-10)
            torch_rule = numpy_rmsprop(init, grads, lr, 0.9, 1e-10, momentum)
            moved_tf, moved_torch = got[i][-1] - init, torch_rule[-1] - init
            assert np.max(np.abs(moved_tf - moved_torch) / np.abs(moved_torch)) > 0.5


def test_adam_step_count_is_exact_across_a_resume(fixtures, tmp_path):
    """10 steps, checkpoint, a new graph restores and makes 15 more: equal to 25 at once
    (bias corrections use the saved step count, not global_step, which is absent here)."""
    name = "adam_weight_decay_lr_drop"
    case = fixtures["meta"]["cases"][name]
    lr = fixtures[name + "__lr"]
    got, counts = run_tf(train_section(case), fixtures, np.float64, lr, checkpoint_at=10,
                         tmp_path=tmp_path)
    assert counts == [10.0, 25.0]
    for i in range(2):
        np.testing.assert_allclose(got[i], fixtures["%s__float64__param_%d" % (name, i)],
                                   rtol=1e-10)


def test_loss_scale_wrapper_leaves_the_rule_unchanged(fixtures):
    """The loss-scale optimizer TF's GPU mixed-precision rewrite uses (npu_bridge's
    NPULossScaleOptimizer follows the same compute/apply_gradients contract) wraps the
    torch rules without changing a step."""
    from hgpipe.tf_compat import import_tf
    tf = import_tf()
    for name in ("rmsprop_momentum_weight_decay", "adam_weight_decay_lr_drop"):
        case = fixtures["meta"]["cases"][name]
        lr = fixtures[name + "__lr"]
        got, _ = run_tf(train_section(case), fixtures, np.float32, lr,
                        wrap=lambda opt: tf.train.experimental.MixedPrecisionLossScaleOptimizer(
                            opt, loss_scale="dynamic"))
        for i in range(2):
            np.testing.assert_allclose(got[i], fixtures["%s__float32__param_%d" % (name, i)],
                                       rtol=1e-6)


@pytest.mark.parametrize("values,words", [
    ({"optimizer": "rmsprop_tf", "weight_decay": 1e-4}, ["weight_decay", "rmsprop_tf"]),
    ({"optimizer": "adam_tf", "weight_decay": 1e-4}, ["weight_decay", "adam_tf"]),
    ({"optimizer": "adam_torch", "momentum": 0.9}, ["momentum", "adam_torch"]),
])
def test_settings_an_optimizer_cannot_honour_are_refused(values, words):
    from hgpipe.train.optimizers import make_optimizer
    with pytest.raises(ConfigError) as err:
        make_optimizer(Config({"Train": values})["Train"], 1e-3)
    assert all(word in str(err.value) for word in words)
    assert len(str(err.value).splitlines()) == 1


def test_trainer_resumes_adam_step_and_refuses_another_optimizer(tmp_path_factory, tmp_path):
    """`hgpipe train` with adam_torch: the step count is checkpointed and continued on
    resume; resuming the logdir with another optimizer is refused in one line naming
    both settings, and nothing in the logdir changes."""
    from conftest import cli_runner, prepare_synthetic_shards
    from hgpipe.cli import main
    from hgpipe.tf_compat import import_tf
    tf = import_tf()
    shards = prepare_synthetic_shards(tmp_path_factory, 3, 5, "Prepare.variants=2")
    logdir = str(tmp_path / "run")
    settings = ["Network.nStacks=1", "Network.nFeats=16", "Network.nLow=1",
                "Train.batch_size=2", "Validation.validate_every=0", "Saver.saver_step=100"]

    def train(steps, optimizer):
        args = ["train", "--data", shards, "--logdir", logdir, "--steps", str(steps),
                "--set", "Train.optimizer=" + optimizer]
        for item in settings:
            args += ["--set", item]
        return cli_runner().invoke(main, args, catch_exceptions=False)

    def adam_steps(step):
        reader = tf.train.load_checkpoint(os.path.join(logdir, "model.ckpt-%d" % step))
        return reader.get_tensor("AdamTorch_step")

    assert train(2, "adam_torch").exit_code == 0
    assert adam_steps(2) == 2.0
    result = train(3, "adam_torch")
    assert result.exit_code == 0 and "resumed from" in result.output
    assert adam_steps(3) == 3.0
    config_before = open(os.path.join(logdir, "config.ini")).read()
    result = train(4, "rmsprop_torch")
    assert result.exit_code == 1
    message = result.stderr.strip().splitlines()
    assert len(message) == 1
    assert "optimizer=adam_torch" in message[0] and "optimizer=rmsprop_torch" in message[0]
    assert "config.ini" in message[0]
    assert not os.path.exists(os.path.join(logdir, "model.ckpt-4.index"))
    assert open(os.path.join(logdir, "config.ini")).read() == config_before
