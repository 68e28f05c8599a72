"""A trained checkpoint as a callable model: find it, find its config, restore it.

``pck --checkpoint``, ``predict`` and ``export`` all start from a training checkpoint
(``LOGDIR/model.ckpt-STEP``, written by :mod:`hgpipe.train.trainer`) and the config
the run was trained with (``LOGDIR/config.ini``). The network is rebuilt for inference
(:func:`hgpipe.model.inference.build_inference_graph`) in a graph of its own, so several
models, or a model next to a training graph, never share variables by accident, and only
the network's variables are restored: optimizer slots, the global step and the data
position in a training checkpoint are simply not read.

Every problem a user can cause (no checkpoint there, no config, a config describing
another network than the checkpoint holds, a truncated, damaged or missing checkpoint
file) is a :class:`CheckpointError`, a ``ValueError`` whose one-line message names the
file. A damaged checkpoint is told apart from another network by reading it whole
(:mod:`hgpipe.eval.checkpoint_damage`), and the message names the newest whole
checkpoint beside it.

The keypoint set a run trained on (:class:`hgpipe.joints.KeypointSet`) is recorded
beside ``config.ini`` as ``LOGDIR/keypoints.json`` (:data:`KEYPOINTS_FILE`, the set's
JSON); a logdir without it (every MPII run, every imported one) predicts MPII's 16
joints. The network is rebuilt with the set's joint count, and the model carries the
set, so predict, draw and export name and draw its joints.
"""
import glob
import os
import re

import numpy as np

from hgpipe.config import KEYPOINTS_FILE, RUN_CONFIG_FILE, describe_network, load_config
from hgpipe.eval.checkpoint_damage import find_damage, first_line, newest_whole
from hgpipe.joints import MPII, KeypointSet
from hgpipe.model.inference import INPUT_DTYPES, build_inference_graph, model_kwargs
from hgpipe.tf_compat import import_tf

_CHECKPOINT_SUFFIXES = (".index", ".meta")
_DATA_SUFFIX = re.compile(r"\.data-\d+-of-\d+$")
_STEP = re.compile(r"-(\d+)$")


class CheckpointError(ValueError):
    """A checkpoint or its config is missing, unreadable or does not fit the network."""


# --------------------------------------------------------------------------- finding

def _strip_file_suffix(path):
    """``model.ckpt-5.index`` / ``.data-00000-of-00001`` / ``.meta`` -> the prefix."""
    for suffix in _CHECKPOINT_SUFFIXES:
        if path.endswith(suffix):
            return path[:-len(suffix)]
    return _DATA_SUFFIX.sub("", path)


def _step_of(prefix):
    match = _STEP.search(prefix)
    return int(match.group(1)) if match else -1


def _latest_in_directory(directory):
    """The newest checkpoint prefix in ``directory``, or None.

    TensorFlow's ``checkpoint`` state file is asked first; when it is missing or points
    at files that are gone (a logdir copied elsewhere keeps absolute paths in it), the
    ``*.index`` files are used, highest step first.
    """
    tf = import_tf()
    latest = tf.train.latest_checkpoint(directory)
    if latest and os.path.isfile(latest + ".index"):
        return latest
    indexes = glob.glob(os.path.join(directory, "*.index"))
    prefixes = [path[:-len(".index")] for path in indexes]
    if not prefixes:
        return None
    return max(prefixes, key=lambda p: (_step_of(p), os.path.getmtime(p + ".index")))


def resolve_checkpoint(path):
    """A checkpoint prefix (``LOGDIR/model.ckpt-30``) from what a user typed.

    Accepts the prefix itself, any of its files (``.index``, ``.data-*``, ``.meta``) or a
    directory, which means its latest checkpoint.
    """
    if not path:
        raise CheckpointError("no checkpoint given")
    if os.path.isdir(path):
        latest = _latest_in_directory(path)
        if latest is None:
            raise CheckpointError("%s: no checkpoint in this directory (no *.index files)"
                                  % path)
        return latest
    prefix = _strip_file_suffix(path)
    if not os.path.isfile(prefix + ".index"):
        folder = os.path.dirname(prefix) or "."
        hint = ""
        if os.path.isdir(folder):
            latest = _latest_in_directory(folder)
            if latest is not None:
                hint = " (latest there: %s)" % os.path.basename(latest)
        raise CheckpointError("%s: no such checkpoint (expected %s.index)%s"
                              % (path, prefix, hint))
    return prefix


def find_config(checkpoint_prefix, config_path=None):
    """The config file of a checkpoint: ``config_path`` if given, else the trainer's
    ``config.ini`` in the checkpoint's folder."""
    if config_path:
        if not os.path.isfile(config_path):
            raise CheckpointError("%s: config file not found" % config_path)
        return config_path
    beside = os.path.join(os.path.dirname(checkpoint_prefix) or ".", RUN_CONFIG_FILE)
    if not os.path.isfile(beside):
        raise CheckpointError("%s: no %s beside the checkpoint; pass --config with the "
                              "config it was trained with"
                              % (checkpoint_prefix, RUN_CONFIG_FILE))
    return beside


def load_checkpoint_config(checkpoint_prefix, config_path=None, overrides=()):
    """Read the config that belongs to a checkpoint (see :func:`find_config`)."""
    return load_config(find_config(checkpoint_prefix, config_path), overrides)


def keypoints_path(logdir):
    return os.path.join(logdir, KEYPOINTS_FILE)


def read_logdir_keypoints(logdir, default=MPII):
    """The keypoint set ``logdir`` recorded (``keypoints.json``), ``default`` when it
    records none; CheckpointError naming the file when it is not a valid set."""
    path = keypoints_path(logdir)
    if not os.path.isfile(path):
        return default
    try:
        with open(path, "rb") as handle:
            text = handle.read(1 << 20).decode("utf-8")
        return KeypointSet.from_json(text)
    except (OSError, IOError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError("%s: %s" % (path, first_line(exc)))


def checkpoint_keypoints(checkpoint_prefix):
    """The keypoint set of a checkpoint: its logdir's (:func:`read_logdir_keypoints`)."""
    return read_logdir_keypoints(os.path.dirname(checkpoint_prefix) or ".")


# --------------------------------------------------------------------------- restoring

def check_variables_in_checkpoint(checkpoint_prefix, variables, cfg):
    """Raise CheckpointError unless every variable exists in the checkpoint with its shape.

    Checked before restoring so that the message can say which variable differs and
    which network the config describes, rather than TensorFlow's multi-line error.
    """
    tf = import_tf()
    try:
        stored = dict(tf.train.list_variables(checkpoint_prefix))
    except Exception as exc:  # DataLossError, NotFoundError, ValueError, ...
        raise damage_error(checkpoint_prefix) or CheckpointError(
            "%s: cannot read checkpoint: %s" % (checkpoint_prefix, first_line(exc)))
    missing, different = [], []
    for variable in variables:
        name = variable.op.name
        shape = variable.shape.as_list()
        if name not in stored:
            missing.append(name)
        elif list(stored[name]) != shape:
            different.append("%s is %s in the checkpoint, %s in the network"
                             % (name, list(stored[name]), shape))
    if missing or different:
        damaged = damage_error(checkpoint_prefix)  # a damaged index can look like this
        if damaged is not None:
            raise damaged
        problems = []
        if missing:
            problems.append("%d variables missing (first: %s)" % (len(missing), missing[0]))
        if different:
            problems.append("%d with other shapes (first: %s)" % (len(different),
                                                                  different[0]))
        raise CheckpointError(
            "%s: does not match the config's network (%s): %s; pass the --config it was "
            "trained with" % (checkpoint_prefix, describe_network(cfg), "; ".join(problems)))


def damage_error(prefix):
    """A CheckpointError naming the damaged file of ``prefix`` and the newest whole
    checkpoint beside it, or None when ``prefix`` reads back whole."""
    problem = find_damage(prefix)
    if problem is None:
        return None
    other = newest_whole(os.path.dirname(prefix) or ".", [prefix])
    advice = ("%s is whole: pass --checkpoint %s" % (os.path.basename(other), other)
              if other else "no other checkpoint beside it is whole")
    return CheckpointError("%s; checkpoint %s cannot be restored; %s"
                           % (problem, os.path.basename(prefix), advice))


class SessionModel(object):
    """Owns a tf Session: ``close()`` it, or use it as a context manager."""

    session = None

    def close(self):
        if self.session is not None:
            self.session.close()
            self.session = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class LoadedModel(SessionModel):
    """A restored inference network in its own graph and session.

    ``run(images)`` maps an (N, S, S, 3) batch (uint8 0-255, or float32 0-1 when built
    with ``input_dtype="float32"``) to the final stack's (N, S/4, S/4, K) float32
    heatmaps, K the joints of ``keypoints`` (MPII: 16). With a fixed ``batch_size``, N must equal it (see
    :func:`hgpipe.eval.inference.run_batched`, which pads the last batch).
    """

    def __init__(self, checkpoint, cfg, graph, session, images, heatmaps, keypoints=MPII):
        self.checkpoint = checkpoint
        self.keypoints = keypoints      # whose joints the heatmap channels are
        self.cfg = cfg
        self.graph = graph
        self.session = session
        self.images = images
        self.heatmaps = heatmaps
        self.input_size = int(images.shape[1])
        self.heatmap_size = int(heatmaps.shape[1])
        self.input_dtype = images.dtype.name
        batch = images.shape.as_list()[0]
        self.batch_size = None if batch is None else int(batch)

    def run(self, images):
        images = np.asarray(images)
        expected = (self.input_size, self.input_size, 3)
        if images.ndim != 4 or images.shape[1:] != expected:
            raise ValueError("model input must be (N, %d, %d, 3), got %s"
                             % (self.input_size, self.input_size, images.shape))
        if self.batch_size is not None and images.shape[0] != self.batch_size:
            raise ValueError("this model was built for batches of %d, got %d"
                             % (self.batch_size, images.shape[0]))
        if self.input_dtype == "uint8" and images.dtype != np.uint8:
            raise ValueError("this model takes uint8 images (0-255), got %s" % images.dtype)
        images = images.astype(self.input_dtype, copy=False)
        return self.session.run(self.heatmaps, {self.images: images})


def load_model(checkpoint, cfg, batch_size=None, input_dtype="uint8", keypoints=None):
    """Build the inference network of ``cfg`` and restore ``checkpoint`` into it.

    ``checkpoint`` is a prefix, one of its files or a logdir (its latest checkpoint).
    ``batch_size`` None makes the batch axis dynamic. ``keypoints``: the set whose
    joints the network predicts; None: the one the checkpoint's logdir recorded
    (:func:`checkpoint_keypoints`). Returns a :class:`LoadedModel`; close it (or use it
    in a ``with`` block) to free the session.
    """
    if input_dtype not in INPUT_DTYPES:
        raise ValueError("input dtype must be one of %s, got %r" % (INPUT_DTYPES, input_dtype))
    if batch_size is not None and int(batch_size) < 1:
        raise ValueError("batch size must be >= 1 (or None for dynamic), got %r"
                         % (batch_size,))
    tf = import_tf()
    prefix = resolve_checkpoint(checkpoint)
    if keypoints is None:
        keypoints = checkpoint_keypoints(prefix)
    model_kw = model_kwargs(cfg)
    model_kw["n_joints"] = keypoints.num_joints
    graph = tf.Graph()
    with graph.as_default():
        images, heatmaps = build_inference_graph(
            model_kw, cfg["DataSetHG"]["img_size"], input_dtype, batch_size)
        variables = tf.global_variables()
        check_variables_in_checkpoint(prefix, variables, cfg)
        saver = tf.train.Saver(variables)
    session = tf.Session(graph=graph)
    try:
        restore_network(session, saver, prefix, cfg)
    except BaseException:
        session.close()
        raise
    return LoadedModel(prefix, cfg, graph, session, images, heatmaps, keypoints)


def restore_network(session, saver, prefix, cfg):
    """``saver.restore`` of ``prefix``; a failure is one CheckpointError: the damaged file
    when the checkpoint does not read back whole, else TensorFlow's reason."""
    tf = import_tf()
    try:
        saver.restore(session, prefix)
    except tf.errors.OpError as exc:
        damaged = damage_error(prefix)
        if damaged is not None:
            raise damaged
        if isinstance(exc, tf.errors.NotFoundError):
            raise CheckpointError("%s: does not match the config's network (%s): %s"
                                  % (prefix, describe_network(cfg), first_line(exc)))
        raise CheckpointError("%s: cannot restore: %s" % (prefix, first_line(exc)))


def open_checkpoint(checkpoint, config_path=None, batch_size=None, input_dtype="uint8"):
    """Convenience for the commands: resolve, read the config, load; returns the model."""
    prefix = resolve_checkpoint(checkpoint)
    cfg = load_checkpoint_config(prefix, config_path)
    return load_model(prefix, cfg, batch_size, input_dtype)
