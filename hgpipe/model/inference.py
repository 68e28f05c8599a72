"""The inference graph: what ``pck --checkpoint``, ``predict`` and ``export`` run.

It is the training network rebuilt with ``is_training=False`` (batch norm on its moving
statistics, no dropout) under the same variable scope, so a training checkpoint restores
into it by name. Node names are fixed and documented, because Ascend's ATC converter and
other consumers of the frozen graph address them by name:

* ``INPUT_NODE`` = ``"input"``: (N, S, S, 3) RGB crops, uint8 0-255 or float32 0-1;
* ``OUTPUT_NODE`` = ``"heatmaps"``: (N, S/4, S/4, 16) float32, the final stack's heatmaps.
"""
from hgpipe.model.hourglass import build_hourglass, input_from_uint8
from hgpipe.tf_compat import import_tf

INPUT_NODE = "input"
OUTPUT_NODE = "heatmaps"
INPUT_DTYPES = ("uint8", "float32")


def model_kwargs(cfg):
    """build_hourglass keyword arguments from an hgpipe Config's [Network] section."""
    net = cfg["Network"]
    return {"n_stacks": net["nStacks"], "n_feats": net["nFeats"],
            "n_modules": net["nModules"], "n_low": net["nLow"], "tiny": net["tiny"],
            "dropout_rate": net["dropout_rate"], "stem": net["stem"],
            "input_mean": net["input_mean"], "architecture": net["architecture"]}


def build_inference_graph(model_kw, input_size, input_dtype="uint8", batch_size=None):
    """Build input placeholder -> final heatmaps in the default graph; returns both tensors."""
    if input_dtype not in INPUT_DTYPES:
        raise ValueError("input dtype must be one of %s, got %r" % (INPUT_DTYPES, input_dtype))
    tf = import_tf()
    images = tf.placeholder(getattr(tf, input_dtype), (batch_size, input_size, input_size, 3),
                            name=INPUT_NODE)
    unit = input_from_uint8(images) if input_dtype == "uint8" else images
    stacks = build_hourglass(unit, is_training=False, **model_kw)
    heatmaps = tf.identity(tf.cast(stacks[-1], tf.float32), name=OUTPUT_NODE)
    return images, heatmaps
