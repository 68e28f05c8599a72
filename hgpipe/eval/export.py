"""Frozen inference graphs (``.pb``) and SavedModels for deployment.

A frozen graph is the inference network with every variable turned into a constant: one
file that TensorFlow, Ascend's ATC converter or TF-TRT load without hgpipe. Its nodes are
the documented ones of :mod:`hgpipe.model.inference`: ``input`` (N, S, S, 3) uint8 0-255
or float32 0-1, and ``heatmaps`` (N, S/4, S/4, K) float32, the last stack's heatmaps in
the joint order of the logdir's keypoint set (MPII's 16 unless it trained on another;
:func:`hgpipe.eval.checkpoint.checkpoint_keypoints`). The graph holds numbers only: for
a set other than MPII, :func:`write_keypoints_beside` writes the set's JSON (joint
names, flip pairs, skeleton) next to the exported file, ``NAME.keypoints.json``.

Portability between TensorFlow versions: newer TensorFlow adds attributes to existing
ops (``FusedBatchNormV3.exponential_avg_factor`` in 2.2, for instance) and writes them
into every NodeDef with their default values; TF 1.15 refuses a NodeDef with an
attribute it does not know. So attributes that hold their op's default value are
removed before writing (``tf.train.export_meta_graph(strip_default_attrs=True)``, which
uses the running TensorFlow's op registry), and the importer fills them back in from its
own registry. A graph frozen on TF 2.x therefore loads on TF 1.15 and the other way
round; ``tests/test_predict_export.py`` checks both directions.
"""
import os

import numpy as np

from hgpipe import atomic
from hgpipe.eval.checkpoint import SessionModel
from hgpipe.eval.checkpoint_damage import failed_write
from hgpipe.joints import MPII
from hgpipe.staging import staging_folder
from hgpipe.model.inference import INPUT_NODE, OUTPUT_NODE
from hgpipe.tf_compat import import_tf

SIGNATURE_INPUT = "images"
SIGNATURE_OUTPUT = "heatmaps"
STAGING_PREFIX = ".tmp-savedmodel-"


class ExportError(ValueError):
    """A frozen graph or SavedModel cannot be written or read; the message names it."""


def strip_default_attrs(graph_def):
    """A copy of ``graph_def`` without attributes equal to their op's registered default
    and without device assignments (so that the graph loads in older TensorFlow and on
    any device)."""
    tf = import_tf()
    with tf.Graph().as_default():
        meta_graph = tf.train.export_meta_graph(graph_def=graph_def, clear_devices=True,
                                                strip_default_attrs=True)
    stripped = tf.GraphDef()
    stripped.CopyFrom(meta_graph.graph_def)
    for node in stripped.node:
        node.device = ""
    return stripped


def freeze(model):
    """The restored :class:`~hgpipe.eval.checkpoint.LoadedModel` as a frozen GraphDef.

    Variables become constants, nodes not needed for ``heatmaps`` are dropped, and
    pass-through Identity nodes are removed (``input`` and ``heatmaps`` are kept by name).
    """
    tf = import_tf()
    graph_def = model.graph.as_graph_def()
    frozen = tf.graph_util.convert_variables_to_constants(model.session, graph_def,
                                                          [OUTPUT_NODE])
    frozen = tf.graph_util.remove_training_nodes(frozen,
                                                 protected_nodes=[INPUT_NODE, OUTPUT_NODE])
    frozen = tf.graph_util.extract_sub_graph(frozen, [OUTPUT_NODE])
    return strip_default_attrs(frozen)


def write_frozen_graph(model, path):
    """Freeze ``model`` and write it to ``path`` atomically; returns the GraphDef."""
    frozen = freeze(model)
    atomic.write_bytes(path, frozen.SerializeToString())
    return frozen


def _shape_text(shape):
    return "(%s)" % ", ".join("?" if d is None else str(d) for d in shape)


def describe_io(model):
    """Lines documenting the graph's input and output nodes: name, dtype, shape, meaning."""
    in_shape = model.images.shape.as_list()
    out_shape = model.heatmaps.shape.as_list()
    scale = "0-255" if model.input_dtype == "uint8" else "0-1"
    keypoints = getattr(model, "keypoints", None) or MPII
    lines = [
        "input  node %-9s %-8s %-20s RGB crops, %s" % (
            INPUT_NODE, model.input_dtype, _shape_text(in_shape), scale),
        "output node %-9s %-8s %-20s final-stack heatmaps, %s joint order" % (
            OUTPUT_NODE, model.heatmaps.dtype.name, _shape_text(out_shape),
            "MPII" if keypoints == MPII else keypoints.name),
    ]
    if keypoints != MPII:
        lines.append("joints (%d): %s" % (keypoints.num_joints,
                                           ", ".join(keypoints.joint_names)))
    return lines


def keypoints_path_beside(path):
    """``model.pb`` -> ``model.keypoints.json``."""
    return os.path.splitext(path)[0] + ".keypoints.json"


def write_keypoints_beside(model, path):
    """For a model of a set other than MPII, its set's JSON next to the exported
    ``path`` (:func:`keypoints_path_beside`); returns that path, or None for MPII."""
    keypoints = getattr(model, "keypoints", None) or MPII
    if keypoints == MPII:
        return None
    target = keypoints_path_beside(path)
    atomic.write_text(target, keypoints.to_json() + "\n")
    return target


def write_saved_model(model, export_dir, on_removed=None):
    """Write ``model`` as a SavedModel (tag ``serve``) with a predict signature.

    Signature ``serving_default``: input ``images`` -> output ``heatmaps`` (the tensors
    of the frozen graph's ``input`` and ``heatmaps`` nodes). Written into a staging
    folder beside ``export_dir`` (:mod:`hgpipe.staging`, which first removes those of
    interrupted exports, passing their names to ``on_removed``) and renamed, never
    over an existing folder. A failed write (a full disk) is one ExportError naming
    ``export_dir``; nothing of it is left.
    """
    tf = import_tf()
    if os.path.exists(export_dir):
        raise ExportError("%s: already exists; give a new SavedModel folder" % export_dir)
    parent = os.path.dirname(os.path.abspath(export_dir))
    with staging_folder(parent, STAGING_PREFIX, on_removed) as staging:
        target = os.path.join(staging, "model")
        try:
            with model.graph.as_default():
                signature = tf.saved_model.signature_def_utils.predict_signature_def(
                    inputs={SIGNATURE_INPUT: model.images},
                    outputs={SIGNATURE_OUTPUT: model.heatmaps})
                builder = tf.saved_model.builder.SavedModelBuilder(target)
                builder.add_meta_graph_and_variables(
                    model.session, [tf.saved_model.tag_constants.SERVING],
                    signature_def_map={
                        tf.saved_model.signature_constants.DEFAULT_SERVING_SIGNATURE_DEF_KEY:
                            signature},
                    clear_devices=True, strip_default_attrs=True)
                builder.save()
        except (tf.errors.OpError, EnvironmentError) as exc:
            path, reason = failed_write(exc)
            if path:  # named as it would have been in export_dir, not in the staging
                reason = "%s: %s" % (os.path.relpath(path, target)
                                     if path.startswith(target) else path, reason)
            raise ExportError("%s: cannot write the SavedModel (%s); nothing of it was "
                              "kept" % (export_dir, reason))
        os.rename(target, export_dir)


class FrozenModel(SessionModel):
    """A frozen graph loaded for running: ``run(images) -> heatmaps``, like LoadedModel."""

    def __init__(self, path, graph, session, images, heatmaps):
        self.path = path
        self.graph = graph
        self.session = session
        self.images = images
        self.heatmaps = heatmaps
        self.input_dtype = images.dtype.name

    def run(self, images):
        images = np.asarray(images).astype(self.input_dtype, copy=False)
        return self.session.run(self.heatmaps, {self.images: images})


def load_frozen_graph(path):
    """Load a frozen ``.pb`` with hgpipe's node names into its own graph and session."""
    tf = import_tf()
    if not os.path.isfile(path):
        raise ExportError("%s: no such frozen graph" % path)
    graph_def = tf.GraphDef()
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        graph_def.ParseFromString(data)
    except Exception as exc:  # protobuf's DecodeError has no stable import path
        raise ExportError("%s: not a GraphDef (%s)" % (path, exc))
    graph = tf.Graph()
    with graph.as_default():
        try:
            tf.import_graph_def(graph_def, name="")
        except (ValueError, tf.errors.OpError) as exc:
            raise ExportError("%s: this TensorFlow (%s) cannot load it: %s" % (
                path, tf.__version__, str(exc).strip().splitlines()[0]))
        try:
            images = graph.get_tensor_by_name(INPUT_NODE + ":0")
            heatmaps = graph.get_tensor_by_name(OUTPUT_NODE + ":0")
        except KeyError:
            raise ExportError("%s: no '%s' and '%s' nodes (not an hgpipe export?)"
                              % (path, INPUT_NODE, OUTPUT_NODE))
    return FrozenModel(path, graph, tf.Session(graph=graph), images, heatmaps)
