"""One training step equal to the reference's: hgpipe's training graph (train-mode batch
norm, the recipe's loss, gradients, the optimizer update, moving statistics), built from
the recipe's config, against the reference's own training code in torch, from the same
weights on the same batch.

The fixtures (tests/fixtures/training_steps, made once by real torch with
tests/fixtures/make_training_step_fixtures.py) hold the start weights, three batches, and
the reference's losses and states after steps 1 and 3 of its float64 run (the exact
reference), with how far torch's own float32 run is from it. The recipe's config decides
the loss and the optimizer; only the sizes (128 px, 16 features, 2 stacks, batch 4) and
the per-step random augmentation (which no two programs draw alike) are overridden.

Two graphs per recipe: the float32 graph training runs, and the same builders with
``build_train_graph(..., dtype="float64")`` (float64 inputs, variables, batch norm from
moments, loss, optimizer and learning rate). Measured figures: docs/recipes.md "One
training step against the references' code".

What float64 proves: all three steps, not one. The losses of steps 1-3 equal the
reference's float64 losses to 1e-6 relative (measured 5.4e-9 or closer), every moving
statistic after steps 1 and 3 and every weight after step 1 equal the reference's to 1e-5
(measured 3.6e-7 or closer: the fixtures store the states as float32), and after step 3
all weights but 0.1% do (measured: all for bearpaw2017_hg2 and psh_hg2; for bearpaw_hg2 on TF 2.21 59
of 333,744 are up to 2.2e-4 apart, most likely RMSProp's normalised step lr g /
(sqrt(mean g^2) + eps) of gradients within rounding of 0; not checked weight by weight). A float32 run, anyone's, fails this from step 2 on
(80-97% of the weights further than 1e-5, below), so what float32 leaves of the
differences is rounding.

What float32 can prove, and the tolerances:

* step 1: the loss to 1e-4 relative (measured 6.9e-6 to 1.4e-5 on TF 2.21, 2.9e-6 to
  5.2e-5 on TF 1.15; torch's own float32 run: 7e-8 to 1.3e-5), every moving statistic to
  5e-4 of max(1, its largest value) (measured up to 2.2e-4; torch float32: up to 1e-4),
  and the weights: all within two first steps of each other, at most 5% of them further
  than 1e-5 apart (measured 1.6-3.4%; torch float32: 0.6-2.9%). The first update of both optimizers is
  lr * g / (|g| + eps) per weight (RMSProp: 10 lr), a sign, so a weight whose gradient is
  within float32 noise of 0 moves by a whole step either way; torch's own float32 run has
  0.6-2.9% of its weights further than 1e-5 from its float64 run after step 1.
* steps 2 and 3 are not comparable in float32 by anyone: torch's own float32 losses leave
  its float64 losses by 0.4-3% at step 2 and 80-97% of its weights are then further than
  1e-5 apart (the fixtures record it). The test asserts that these numbers are what the
  fixture says, so the claim stays measured.
"""
import os

import numpy as np
import pytest

from hgpipe.config import load_config
from hgpipe.interop.import_weights import map_state_dict
from hgpipe.model.inference import model_kwargs
from hgpipe.tf_compat import import_tf

tf = import_tf()

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures", "training_steps")
CONFIGS = os.path.join(os.path.dirname(HERE), "configs")
BATCH, INPUT, HEATMAP = 4, 128, 32

# fixture -> (recipe config, torch family, the recipe's first step per weight)
CASES = {
    "bearpaw_hg2": ("bearpaw_hg2", "bearpaw", 10 * 2.5e-4),
    "bearpaw2017_hg2": ("bearpaw2017_hg2", "bearpaw", 10 * 2.5e-4),
    "psh_hg2": ("psh_hg8", "psh", 1e-3),
}
SMALL = ["DataSetHG.img_size=%d" % INPUT, "DataSetHG.hm_size=%d" % HEATMAP,
         "Network.nFeats=16", "Network.nStacks=2", "Train.batch_size=%d" % BATCH,
         "Train.device_flip=False", "Train.device_color=0", "Train.device=cpu"]
LOSS_RTOL = 1e-4
STAT_RTOL = 5e-4  # of max(1, the statistic's largest value)
FAR_FRACTION = 0.05


def _state(data, prefix):
    return {k[len(prefix):]: data[k] for k in data.files if k.startswith(prefix)}


def _session_config():
    """No graph rewrites: Grappler's first-run optimisation of this graph costs more than
    the three steps (and rewrites nothing the comparison is about)."""
    from tensorflow.core.protobuf import rewriter_config_pb2
    config = tf.ConfigProto()
    config.graph_options.rewrite_options.disable_meta_optimizer = True
    config.graph_options.rewrite_options.constant_folding = \
        rewriter_config_pb2.RewriterConfig.OFF
    return config


def _stored_steps(data):
    """The steps after which the fixture stores the reference's state (1 and 3)."""
    return sorted(set(int(k.split("/")[0][len("step"):]) for k in data.files
                      if k.startswith("step")))


def _steps(fixture, steps, dtype="float32"):
    """``steps`` steps (None: one per stored batch) of hgpipe's training graph (in
    ``dtype``) from the fixture's start:
    (data, losses, start, {step: reference state}, {step: hgpipe's state}, graph), the
    states of the stored steps only, keyed by hgpipe's variable names."""
    from hgpipe.train.graph import FeedInput, build_train_graph
    recipe, family, _ = CASES[fixture]
    data = np.load(os.path.join(FIXTURES, fixture + ".npz"))
    steps = len(data["images"]) if steps is None else steps
    cfg = load_config(os.path.join(CONFIGS, recipe + ".cfg"), SMALL)
    model_kw = model_kwargs(cfg)
    stored = [s for s in _stored_steps(data) if s <= steps]
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(0)
        inputs = FeedInput(BATCH, INPUT, HEATMAP)
        train = build_train_graph(cfg, inputs, device="cpu", dtype=dtype)
        network = [v for v in tf.global_variables() if v in tf.trainable_variables()
                   or v.op.name.endswith(("moving_mean", "moving_variance"))]
        named = dict((v.op.name, v) for v in network)
        net_kw = dict((k, model_kw[k]) for k in ("n_stacks", "n_feats", "n_modules",
                                                 "n_low", "stem"))
        shapes = [(v.op.name, v.shape.as_list()) for v in network]
        start = map_state_dict(_state(data, "init/"), family, net_kw, shapes)
        want = dict((s, map_state_dict(_state(data, "step%d/" % s), family, net_kw, shapes))
                    for s in stored)
        assert len(start) == len(network) > 50
        losses, got = [], {}
        with tf.Session(graph=graph, config=_session_config()) as sess:
            # the start weights as initial values: one run (a load per variable would
            # build one executor each)
            sess.run(tf.global_variables_initializer(),
                     dict((named[name].initial_value, value) for name, value in start.items()))
            for step in range(1, steps + 1):
                batch = {"images": data["images"][step - 1],
                         "heatmaps": data["heatmaps"][step - 1],
                         "weights": data["weights"][step - 1]}
                loss, _ = sess.run([train.loss, train.train_op], inputs.feed(batch))
                losses.append(float(loss))
                if step in stored:
                    got[step] = sess.run(named)
    return data, losses, start, want, got, graph


@pytest.mark.parametrize("fixture", sorted(CASES))
def test_step_one_equals_the_references_training_code(fixture):
    data, losses, start, want, got, _ = _steps(fixture, 1)
    loss, want, got = losses[0], want[1], got[1]
    step = CASES[fixture][2]
    reference = data["losses64"][0]
    assert abs(loss - reference) <= LOSS_RTOL * reference, (loss, reference)
    stats = [n for n in want if n.endswith(("moving_mean", "moving_variance"))]
    weights = [n for n in want if n not in stats]
    assert len(stats) > 40 and len(weights) > 100
    moved_stats = 0
    for name in stats:
        error = np.abs(got[name] - want[name]).max()
        limit = STAT_RTOL * max(1.0, np.abs(want[name]).max())
        assert error <= limit, "%s: %.3g from the reference (%.3g allowed)" % (
            name, error, limit)
        moved_stats += np.abs(want[name] - start[name]).max() > 20 * limit
    # train-mode statistics moved them: a comparison that could fail
    assert moved_stats > 0.9 * len(stats), (moved_stats, len(stats))
    far = total = moved = 0
    for name in weights:
        error = np.abs(got[name] - want[name])
        assert error.max() <= 2 * step * 1.001, "%s: %.3g apart" % (name, error.max())
        far += int((error > 1e-5).sum())
        total += error.size
        moved += int((np.abs(want[name] - start[name]) > 0.5 * step).sum())
    # most weights took a whole first step in the reference (not the conv biases before a
    # train-mode batch norm: their gradient is 0): a comparison that could fail
    assert moved > 0.5 * total, (moved, total)
    torch_far = data["torch32_far_fraction"][0]
    print("%s step 1: loss %.3g relative, statistics %.3g, weights > 1e-5 apart %.4f "
          "(torch float32: %.4f)" % (fixture, abs(loss - reference) / reference, max(
              np.abs(got[n] - want[n]).max() / max(1.0, np.abs(want[n]).max())
              for n in stats), far / float(total), torch_far))
    assert far / float(total) <= FAR_FRACTION, (far / float(total), torch_far)


def test_later_steps_are_float32_chaos_in_the_reference_itself():
    """The fixtures' own record: torch's float32 run against its float64 run. Step 1
    agrees (so the step-1 test above is meaningful); from step 2 on torch disagrees with
    itself by far more than any tolerance a step test could use."""
    for fixture in CASES:
        data = np.load(os.path.join(FIXTURES, fixture + ".npz"))
        rel = np.abs(data["losses32"] - data["losses64"]) / data["losses64"]
        assert rel[0] < LOSS_RTOL, (fixture, rel)
        assert rel[1:].min() > 1e-3, (fixture, rel)
        assert data["torch32_far_fraction"][0] < 0.05, fixture
        assert data["torch32_far_fraction"][1:].min() > 0.5, fixture


LOSS64_RTOL = 1e-6
STATE64_TOL = 1e-5  # weights and moving statistics, absolute
# after step 3, RMSProp's weights whose gradients were within rounding of 0 (lr g /
# (sqrt(mean g^2) + eps) of a g at noise level) may part by up to a step: measured 59 of
# 333,744 (0.018%, up to 2.2e-4) for bearpaw_hg2 on TF 2.21, none otherwise
FAR64_FRACTION = 1e-3


@pytest.mark.parametrize("fixture", sorted(CASES))
def test_float64_steps_equal_the_references_float64_run(fixture):
    """hgpipe's training graph built with ``dtype="float64"``: the fixture's three steps
    equal the reference's float64 run -- every loss to 1e-6 relative, every moving
    statistic after steps 1 and 3 and every weight after step 1 to 1e-5, and after step 3
    all but FAR64_FRACTION of the weights (none further than two first steps) -- where
    float32 (anyone's) drifts apart by 0.4-3% in loss from step 2 on, with 80-97% of the
    weights further than 1e-5 (the test below)."""
    data, losses, start, want, got, graph = _steps(fixture, None, "float64")
    step_size = CASES[fixture][2]
    with graph.as_default():
        floats = [v for v in tf.global_variables() if v.dtype.base_dtype.is_floating]
        # weights, statistics and optimizer slots in float64 (Adam's step count is a
        # float32 counter, exact to 2**24); no fused batch norm (it has no float64 kernel)
        assert all(v.dtype.base_dtype == tf.float64 for v in floats
                   if not v.op.name.endswith("_step")), sorted(
            v.op.name for v in floats if v.dtype.base_dtype != tf.float64)
        assert not [op for op in graph.get_operations() if op.type.startswith("FusedBatch")]
    reference = data["losses64"]
    rel = np.abs(np.array(losses) - reference) / reference
    assert len(losses) == len(reference) == 3 and sorted(got) == [1, 3]
    assert (rel <= LOSS64_RTOL).all(), (losses, reference, rel)
    for step in sorted(got):
        errors = dict((name, np.abs(got[step][name] - want[step][name]))
                      for name in want[step])
        stats = [n for n in errors if n.endswith(("moving_mean", "moving_variance"))]
        weights = [n for n in errors if n not in stats]
        for name in stats + (weights if step == 1 else []):
            assert errors[name].max() <= STATE64_TOL, "step %d: %s %.3g from the reference" \
                % (step, name, errors[name].max())
        far = sum(int((errors[n] > STATE64_TOL).sum()) for n in weights)
        total = sum(errors[n].size for n in weights)
        worst = max(errors[n].max() for n in weights)
        assert far <= FAR64_FRACTION * total and worst <= 2 * step_size * 1.001, (
            step, far, total, worst)
        # the reference moved nearly every value by far more than the tolerance: a
        # comparison that could fail
        moved = sum(int((np.abs(want[step][n] - start[n]) > 10 * STATE64_TOL).sum())
                    for n in want[step])
        assert moved > 0.5 * sum(start[n].size for n in want[step]), (step, moved)
        print("%s float64 step %d: loss %.2g relative, weights %.2g (%d of %d further than "
              "1e-5), moving statistics %.2g (largest differences)" % (
                  fixture, step, rel[step - 1], worst, far, total,
                  max(errors[n].max() for n in stats)))
    print("%s float64 losses relative to the reference: %s" % (fixture, " ".join(
        "%.2g" % r for r in rel)))
