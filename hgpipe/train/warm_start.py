"""Start training from a *weights-only* checkpoint (``hgpipe import-weights`` writes one).

A training checkpoint holds the whole training state: the network, the global step, the
optimizer's slots, the data position. Imported weights hold the network only, and which
optimizer variables a run needs depends on its own [Train] settings and device (loss
scaling on GPU/NPU), so they cannot be written in advance. The trainer therefore treats
a checkpoint without a global step as weights to start from: every variable is
initialised as for a new run (step 0, fresh optimizer state, first epoch), then the
network's variables are loaded from the checkpoint. The next checkpoint the trainer
writes is a full one, and later runs resume from it as usual.
"""
from hgpipe.tf_compat import import_tf

GLOBAL_STEP = "global_step"


class WarmStartError(ValueError):
    """The weights-only checkpoint does not fit the training graph's network."""


def is_weights_only(prefix):
    """True when the checkpoint at ``prefix`` has no global step (not a training run's)."""
    tf = import_tf()
    return GLOBAL_STEP not in dict(tf.train.list_variables(prefix))


def load_weights(sess, prefix, variables):
    """Load every variable of ``variables`` from the checkpoint, by name and shape.

    Feeds the variables' initializers (what ``Variable.load`` does, in one run), so it
    adds no op to a finalized graph. The checkpoint must supply each of ``variables``: a
    weights-only checkpoint for another network is refused in one line naming the first
    difference.
    """
    tf = import_tf()
    reader = tf.train.NewCheckpointReader(prefix)
    stored = reader.get_variable_to_shape_map()
    feeds = {}
    for variable in variables:
        name = variable.op.name
        shape = variable.shape.as_list()
        if name not in stored:
            raise WarmStartError("%s: weights-only checkpoint lacks %s; it was written for "
                                 "another network" % (prefix, name))
        if list(stored[name]) != shape:
            raise WarmStartError("%s: %s is %s there, %s in this network"
                                 % (prefix, name, list(stored[name]), shape))
        feeds[variable.initializer.inputs[1]] = reader.get_tensor(name)
    sess.run([v.initializer for v in variables], feeds)
    return len(variables)


def network_variables(graph, scope="hourglass"):
    """The network's own variables in a training graph: its trainable weights and its
    batch-norm moving statistics (not the optimizer slots kept under the same names)."""
    tf = import_tf()
    prefix = scope + "/"
    trainable = set(v.op.name for v in
                    graph.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES, scope=prefix))
    return [v for v in graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES, scope=prefix)
            if v.op.name in trainable
            or v.op.name.endswith(("/moving_mean", "/moving_variance"))]
