"""``hgpipe import-weights``: a PyTorch Stacked Hourglass checkpoint as an hgpipe logdir.

The logdir holds ``model.ckpt-0`` (the network's variables only, no global step or
optimizer slots: a *weights-only* checkpoint, see :mod:`hgpipe.train.warm_start`) and
the ``config.ini`` describing that network (stacks, features, stem, input mean, no
dropout), so ``pck --checkpoint``, ``predict``, ``export`` and ``train`` take it as any
other logdir. It is written into a staging folder beside ``out_dir`` and renamed, so an
interrupted import leaves nothing half-written; a killed one's staging folder is removed
by the next import into that parent (:mod:`hgpipe.staging`).
"""
import collections
import os

import numpy as np

from hgpipe.config import KEYPOINTS_FILE, RUN_CONFIG_FILE, load_config
from hgpipe.interop import families
from hgpipe.interop.torch_file import read_torch_file
from hgpipe.joints import MPII
from hgpipe.model.hourglass import build_hourglass
from hgpipe.staging import staging_folder
from hgpipe.tf_compat import import_tf

CHECKPOINT_NAME = "model.ckpt"
IMPORT_STEP = 0
STAGING_PREFIX = ".tmp-import-"  # hgpipe/staging.py: stale ones are removed on the next run


class WeightImportError(ValueError):
    """Import refused; the one-line message names the file and the reason."""


def read_state_dict(path, family):
    """The checkpoint's ``state_dict`` (a dict checkpoint's ``state_dict`` entry, or the
    file's own dict of tensors), wrapper prefix stripped, values numpy arrays."""
    obj = read_torch_file(path)
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else obj
    if not isinstance(state, dict) or not state:
        raise WeightImportError("%s: holds no state_dict (a dict of tensors)" % path)
    arrays = {str(k): v for k, v in state.items() if isinstance(v, np.ndarray)}
    if len(arrays) != len(state):
        odd = sorted(str(k) for k, v in state.items() if not isinstance(v, np.ndarray))
        raise WeightImportError("%s: state_dict entry %s is not a tensor" % (path, odd[0]))
    return families.strip_prefix(arrays, family)


def _build_network(tf, model_kw):
    """hgpipe's network with these settings in the default graph; its variables."""
    size = 4 * 2 ** model_kw["n_low"]
    build_hourglass(tf.placeholder(tf.float32, (1, size, size, 3)), is_training=False,
                    **model_kw)
    return tf.global_variables()


def _first(items):
    return items[0] if items else None


def map_state_dict(state, family, model_kw, variables):
    """hgpipe variable name -> array in hgpipe's layout, for ``variables`` ((name, shape)
    pairs of the network built with ``model_kw``); refuses (ArchitectureError) a state
    dict that is not exactly the family's network with these settings."""
    mapping = collections.OrderedDict()
    missing, different, compared = [], [], []
    for name, shape in variables:
        key = families.torch_key(name, family, model_kw["n_low"])
        if key is None:
            raise families.ArchitectureError(
                "hgpipe variable %s has no %s counterpart" % (name, family))
        expected = families.torch_shape(shape, name)
        if key not in state:
            missing.append(key)
        elif list(state[key].shape) != expected:
            compared.append(key)
            different.append("%s is %s, expected %s" % (
                key, "x".join(map(str, state[key].shape)) or "scalar",
                "x".join(map(str, expected))))
        else:
            mapping[name] = (key, families.to_tf_layout(state[key], name))
    used = set(key for key, _ in mapping.values()) | set(missing) | set(compared)
    extra = sorted(key for key in state
                   if key not in used and not families.ignorable(key, used, family))
    if missing or extra or different:
        problems = []
        for label, items in (("missing", missing), ("unexpected", extra),
                             ("with other shapes", different)):
            if items:
                problems.append("%d %s (first: %s)" % (len(items), label, _first(items)))
        raise families.ArchitectureError(
            "not a %s with %s: %s" % (families.FAMILIES[family]["network"],
                                      describe(model_kw), "; ".join(problems)))
    return collections.OrderedDict((name, value.astype(np.float32))
                                   for name, (_key, value) in mapping.items())


def describe(model_kw):
    return "%d stacks, %d features, %d modules, %d levels, stem %s" % (
        model_kw["n_stacks"], model_kw["n_feats"], model_kw["n_modules"],
        model_kw["n_low"], model_kw["stem"])


def imported_config(model_kw, mean, cfg=None):
    """``cfg`` (default: hgpipe's defaults) with [Network] set to the imported network."""
    cfg = cfg if cfg is not None else load_config(None)
    for key, value in (("nStacks", model_kw["n_stacks"]), ("nFeats", model_kw["n_feats"]),
                       ("nModules", model_kw["n_modules"]), ("nLow", model_kw["n_low"]),
                       ("tiny", False), ("dropout_rate", 0.0), ("stem", model_kw["stem"]),
                       ("input_mean", None if mean is None else tuple(mean))):
        cfg.set("Network", key, value, origin="import-weights")
    return cfg


def convert(state, family, model_kw, prefix):
    """Map ``state`` onto hgpipe's network and save it at ``prefix`` (step 0, network
    variables only); returns (checkpoint path, hgpipe name -> array)."""
    tf = import_tf()
    graph = tf.Graph()
    with graph.as_default():
        variables = _build_network(tf, model_kw)
        values = map_state_dict(state, family, model_kw,
                                [(v.op.name, v.shape.as_list()) for v in variables])
        # the imported values are fed to the initializers: one run, no extra ops
        feeds = {v.initial_value: values[v.op.name] for v in variables}
        saver = tf.train.Saver(variables)
        with tf.Session(graph=graph) as sess:
            sess.run(tf.variables_initializer(variables), feeds)
            path = saver.save(sess, prefix, global_step=IMPORT_STEP, write_meta_graph=False,
                              write_state=False)
    tf.train.update_checkpoint_state(os.path.dirname(prefix), os.path.basename(path))
    return path, values


def _check_target(out_dir):
    if os.path.isdir(out_dir):
        if os.listdir(out_dir):
            raise WeightImportError("%s: already exists and is not empty; give a new --out "
                               "folder" % out_dir)
    elif os.path.exists(out_dir):
        raise WeightImportError("%s: exists and is not a folder" % out_dir)


def import_weights(checkpoint, family, out_dir, mean="default", cfg=None, keypoints=MPII):
    """Read ``checkpoint`` of ``family`` and write an hgpipe logdir at ``out_dir``.

    ``mean``: the (R, G, B) input mean to record, ``"default"`` for the family's (bearpaw:
    :data:`~hgpipe.interop.families.BEARPAW_MPII_MEAN`, psh: none) or None for none.
    ``cfg``: a Config to start from (its [Network] is replaced). ``keypoints``: the
    :class:`~hgpipe.joints.KeypointSet` the checkpoint predicts (MPII's 16 by default; a
    bearpaw or PSH network trained on LSP or COCO predicts that set's joints, in its
    order); other sets are recorded in ``LOGDIR/keypoints.json``, as train records them.
    Returns a summary dict.
    """
    if family not in families.FAMILIES:
        raise WeightImportError("unknown family %r (expected one of %s)"
                           % (family, ", ".join(sorted(families.FAMILIES))))
    _check_target(out_dir)
    return import_state_dict(read_state_dict(checkpoint, family), family, out_dir, mean,
                             cfg, keypoints, checkpoint)


def import_state_dict(state, family, out_dir, mean="default", cfg=None, keypoints=MPII,
                      source="state_dict"):
    """:func:`import_weights` of a ``state_dict`` already read (``source`` names it in
    errors and in config.ini's header)."""
    checkpoint = source
    _check_target(out_dir)
    try:
        inferred = families.infer_network(state, family)
        if inferred["n_joints"] != keypoints.num_joints:
            raise families.ArchitectureError(
                "it predicts %d joints; the %s keypoint set has %d (give the set it was "
                "trained on: --keypoints mpii|lsp|coco|FILE.json)"
                % (inferred["n_joints"], keypoints.name, keypoints.num_joints))
        if min(inferred["n_stacks"], inferred["n_low"], inferred["n_modules"]) < 1:
            raise families.ArchitectureError("its stacks, hourglass levels or modules "
                                             "cannot be counted")
        # n_joints stays: the network is built with the set's heatmap count
        model_kw = dict(inferred, tiny=False, dropout_rate=0.0, input_mean=None)
    except families.ArchitectureError as exc:
        raise WeightImportError("%s: %s" % (checkpoint, exc))
    if mean == "default":
        mean = families.FAMILIES[family]["mean"]
    cfg = imported_config(model_kw, mean, cfg)
    parent = os.path.dirname(os.path.abspath(out_dir))
    with staging_folder(parent, STAGING_PREFIX) as staging:
        try:
            path, values = convert(state, family, model_kw,
                                   os.path.join(staging, CHECKPOINT_NAME))
        except families.ArchitectureError as exc:
            raise WeightImportError("%s: %s" % (checkpoint, exc))
        header = "# written by hgpipe import-weights --from %s from %s\n" % (
            family, os.path.basename(checkpoint))
        with open(os.path.join(staging, RUN_CONFIG_FILE), "w") as handle:
            handle.write(header + cfg.to_ini())
        if keypoints != MPII:   # no file: MPII, as for a logdir train wrote
            with open(os.path.join(staging, KEYPOINTS_FILE), "w") as handle:
                handle.write(keypoints.to_json() + "\n")
        _check_target(out_dir)
        if os.path.isdir(out_dir):
            os.rmdir(out_dir)
        os.rename(staging, out_dir)
    return {"checkpoint": os.path.join(out_dir, os.path.basename(path)),
            "config": os.path.join(out_dir, RUN_CONFIG_FILE), "network": describe(model_kw),
            "tensors": len(values), "ignored": len(state) - len(values),
            "numbers": int(sum(v.size for v in values.values())),
            "input_mean": mean, "keypoints": keypoints}
