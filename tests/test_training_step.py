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

What float32 can prove, and the tolerances (measured, README "One training step"):

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


def _one_step(fixture):
    """hgpipe's step 1 from the fixture's start: (data, loss, start, after, network names
    -> torch keys)."""
    from hgpipe.train.graph import FeedInput, build_train_graph
    recipe, family, _ = CASES[fixture]
    data = np.load(os.path.join(FIXTURES, fixture + ".npz"))
    cfg = load_config(os.path.join(CONFIGS, recipe + ".cfg"), SMALL)
    model_kw = model_kwargs(cfg)
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(0)
        inputs = FeedInput(BATCH, INPUT, HEATMAP)
        train = build_train_graph(cfg, inputs, device="cpu")
        network = [v for v in tf.global_variables() if v in tf.trainable_variables()
                   or v.op.name.endswith(("moving_mean", "moving_variance"))]
        named = dict((v.op.name, v) for v in network)
        net_kw = dict((k, model_kw[k]) for k in ("n_stacks", "n_feats", "n_modules",
                                                 "n_low", "stem"))
        shapes = [(v.op.name, v.shape.as_list()) for v in network]
        start = map_state_dict(_state(data, "init/"), family, net_kw, shapes)
        want = map_state_dict(_state(data, "step1/"), family, net_kw, shapes)
        assert len(start) == len(network) > 50
        with tf.Session(graph=graph, config=_session_config()) as sess:
            # the start weights as initial values: one run (a load per variable would
            # build one executor each)
            sess.run(tf.global_variables_initializer(),
                     dict((named[name].initial_value, value) for name, value in start.items()))
            batch = {"images": data["images"][0], "heatmaps": data["heatmaps"][0],
                     "weights": data["weights"][0]}
            loss, _ = sess.run([train.loss, train.train_op], inputs.feed(batch))
            after = sess.run(named)
    return data, float(loss), start, want, after


@pytest.mark.parametrize("fixture", sorted(CASES))
def test_step_one_equals_the_references_training_code(fixture):
    data, loss, start, want, got = _one_step(fixture)
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
