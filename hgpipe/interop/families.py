"""The PyTorch Stacked Hourglass families hgpipe imports, tensor by tensor.

Both are hgpipe's network (Newell's design: pre-activation bottleneck residuals, 7x7/2
stem, recursive hourglass, 1x1 "linear" = conv -> BN -> ReLU, heatmap head, remaps
between stacks), every conv with a bias and BatchNorm2d's eps 1e-5 (hgpipe's
``layers.BN_EPSILON``), so weights map one to one; only the names and layouts differ:

* ``bearpaw``: bearpaw/pytorch-pose ``HourglassNet(Bottleneck, num_stacks, num_blocks)``
  (``pose/models/hourglass.py``), saved by ``example/mpii.py`` through
  ``torch.nn.DataParallel`` (keys ``module.*``). Its stem's ``layer2`` is 128 -> 256
  wide: hgpipe ``stem = bearpaw``. Input: the [0, 1] image minus the MPII mean of its
  ``data/mpii/mean.pth.tar`` (``color_normalize``: no division by the std).
* ``psh``: princeton-vl/pytorch_stacked_hourglass ``PoseNet(nstack, 256, 16)``
  (``models/posenet.py``, ``models/layers.py``), saved by ``train.py`` from
  ``Trainer(DataParallel(net))`` (keys ``model.module.*``); stem as Newell's. Every
  ``Residual`` holds a ``skip_layer`` conv, used only when its input and output widths
  differ; the others are ignored. Input: the plain [0, 1] image (``data/MPII/dp.py``).

Names are translated from hgpipe's variable names (the graph is the authority on which
variables exist) to the torch keys; conv kernels go OIHW -> HWIO.
"""
import re

# bearpaw's mean.pth.tar is not distributed with its code; these are its values as
# ported with bearpaw's code into anibali/pytorch-stacked-hourglass
# (stacked_hourglass/datasets/mpii.py: Mpii.RGB_MEAN) and used by
# yuanyuanli85/Stacked_Hourglass_Network_Keras for bearpaw-trained weights.
BEARPAW_MPII_MEAN = (0.4404, 0.4440, 0.4327)

FAMILIES = {
    "bearpaw": {"prefixes": ("module.",), "stem": "bearpaw", "mean": BEARPAW_MPII_MEAN,
                "network": "bearpaw/pytorch-pose HourglassNet"},
    "psh": {"prefixes": ("model.module.", "module."), "stem": "newell", "mean": None,
            "network": "pytorch_stacked_hourglass PoseNet"},
}

_PARAM = {"weights": "weight", "biases": "bias", "gamma": "weight", "beta": "bias",
          "moving_mean": "running_mean", "moving_variance": "running_var"}
_BEARPAW_RESIDUAL = {"bn1": "bn1", "conv1": "conv1", "bn2": "bn2", "conv2": "conv2",
                     "bn3": "bn3", "conv3": "conv3", "skip": "downsample.0"}
_PSH_RESIDUAL = {"bn1": "bn1", "conv1": "conv1.conv", "bn2": "bn2", "conv2": "conv2.conv",
                 "bn3": "bn3", "conv3": "conv3.conv", "skip": "skip_layer.conv"}
# hgpipe hourglass chain -> bearpaw's index in hg[level] / PSH's attribute
_BEARPAW_CHAIN = {"upper": 0, "lower_in": 1, "lower_out": 2, "bottom": 3}
_PSH_CHAIN = {"upper": "up1", "lower_in": "low1", "lower_out": "low3", "bottom": "low2"}
_BEARPAW_STACK = {"linear/conv": "fc.%d.0", "linear/bn": "fc.%d.1", "heatmaps": "score.%d",
                  "remap_features": "fc_.%d", "remap_heatmaps": "score_.%d"}
_PSH_STACK = {"linear/conv": "features.%d.1.conv", "linear/bn": "features.%d.1.bn",
              "heatmaps": "outs.%d.conv", "remap_features": "merge_features.%d.conv.conv",
              "remap_heatmaps": "merge_preds.%d.conv.conv"}
_PSH_STEM_RESIDUAL = {"res1": "pre.1", "res2": "pre.3", "res3": "pre.4"}


class ArchitectureError(ValueError):
    """The checkpoint is not the family's network (or not one hgpipe can build)."""


def strip_prefix(state, family):
    """Keys without the wrapper prefix the family's training script adds (if present)."""
    for prefix in FAMILIES[family]["prefixes"]:
        if state and all(key.startswith(prefix) for key in state):
            return {key[len(prefix):]: value for key, value in state.items()}
    return dict(state)


def _count(state, pattern):
    """How many consecutive indices i from 0 make ``pattern % i`` a key."""
    n = 0
    while pattern % n in state:
        n += 1
    return n


def _require(state, key, family):
    if key not in state:
        sample = ", ".join(sorted(state)[:3]) or "none"
        raise ArchitectureError("not a %s checkpoint: no tensor %s (its %d tensors start: "
                                "%s)" % (FAMILIES[family]["network"], key, len(state),
                                         sample))
    return state[key]


def infer_network(state, family):
    """hgpipe model settings (build_hourglass keywords) read off a stripped state dict."""
    if family == "bearpaw":
        score = _require(state, "score.0.weight", family)
        _require(state, "res.0.0.bn1.weight", family)
        _require(state, "hg.0.hg.0.0.0.bn1.weight", family)
        n_stacks = _count(state, "score.%d.weight")
        n_modules = _count(state, "res.0.%d.bn1.weight")
        n_low = _count(state, "hg.0.hg.%d.0.0.bn1.weight")
    elif family == "psh":
        score = _require(state, "outs.0.conv.weight", family)
        _require(state, "hgs.0.0.up1.bn1.weight", family)
        n_stacks = _count(state, "outs.%d.conv.weight")
        n_modules = 1
        n_low = 0
        while "hgs.0.0." + "low2." * n_low + "up1.bn1.weight" in state:
            n_low += 1
    else:
        raise ValueError("unknown family %r (expected one of %s)"
                         % (family, ", ".join(sorted(FAMILIES))))
    shape = getattr(score, "shape", ())
    if len(shape) != 4:
        raise ArchitectureError("not a %s checkpoint: its heatmap conv has shape %s"
                                % (FAMILIES[family]["network"], list(shape)))
    return {"n_stacks": n_stacks, "n_feats": int(shape[1]), "n_modules": n_modules,
            "n_low": n_low, "n_joints": int(shape[0]), "stem": FAMILIES[family]["stem"]}


def _parse_residual(rest, table):
    """``res0/conv2/weights`` -> (block index, torch layer, param) or None."""
    match = re.match(r"res(\d+)/(\w+)/(\w+)$", rest)
    if not match or match.group(2) not in table:
        return None
    return int(match.group(1)), table[match.group(2)], _PARAM[match.group(3)]


def torch_key(tf_name, family, n_low):
    """The torch state_dict key (prefix stripped) of an hgpipe variable name, or None."""
    bearpaw = family == "bearpaw"
    residual_table = _BEARPAW_RESIDUAL if bearpaw else _PSH_RESIDUAL
    parts = tf_name.split("/")
    if parts[0] != "hourglass" or len(parts) < 4:
        return None
    param = _PARAM.get(parts[-1])
    if parts[1] == "stem":
        if parts[2] in ("conv7x7", "bn"):
            layer = {"conv7x7": "conv1", "bn": "bn1"}[parts[2]] if bearpaw else \
                {"conv7x7": "pre.0.conv", "bn": "pre.0.bn"}[parts[2]]
            return "%s.%s" % (layer, param)
        parsed = _parse_residual("/".join(["res0"] + parts[3:]), residual_table)
        if parsed is None or not re.match(r"res[123]$", parts[2]):
            return None
        block = ("layer%s.0" % parts[2][-1]) if bearpaw else _PSH_STEM_RESIDUAL[parts[2]]
        return "%s.%s.%s" % (block, parsed[1], parsed[2])
    match = re.match(r"stack(\d+)$", parts[1])
    if not match:
        return None
    stack = int(match.group(1))
    inside = "/".join(parts[2:-1])
    table = _BEARPAW_STACK if bearpaw else _PSH_STACK
    if inside in table:
        return "%s.%s" % (table[inside] % stack, param)
    if parts[2] == "head":
        parsed = _parse_residual("/".join(parts[3:]), residual_table)
        if parsed is None:
            return None
        if bearpaw:
            return "res.%d.%d.%s.%s" % (stack, parsed[0], parsed[1], parsed[2])
        return "features.%d.0.%s.%s" % (stack, parsed[1], parsed[2]) if parsed[0] == 0 \
            else None
    if parts[2] != "hourglass":
        return None
    depth = 0
    index = 3
    while index < len(parts) and parts[index] == "inner":
        depth += 1
        index += 1
    if index >= len(parts) or parts[index] not in _BEARPAW_CHAIN:
        return None
    chain = parts[index]
    parsed = _parse_residual("/".join(parts[index + 1:]), residual_table)
    if parsed is None:
        return None
    if bearpaw:
        return "hg.%d.hg.%d.%d.%d.%s.%s" % (stack, n_low - 1 - depth, _BEARPAW_CHAIN[chain],
                                            parsed[0], parsed[1], parsed[2])
    if parsed[0] != 0:
        return None
    return "hgs.%d.0.%s%s.%s.%s" % (stack, "low2." * depth, _PSH_CHAIN[chain], parsed[1],
                                    parsed[2])


def ignorable(key, mapped, family):
    """Tensors the forward pass never reads: BN's batch counter, and PSH's skip_layer of
    a residual whose input and output widths match (its ``need_skip`` is False)."""
    if key.endswith(".num_batches_tracked"):
        return True
    if family == "psh":
        match = re.match(r"(.*)\.skip_layer\.conv\.(weight|bias)$", key)
        if match and match.group(1) + ".bn1.weight" in mapped \
                and match.group(1) + ".skip_layer.conv.weight" not in mapped:
            return True
    return False


def torch_shape(tf_shape, tf_name):
    """The torch layout of an hgpipe variable's shape (conv kernels HWIO -> OIHW)."""
    if tf_name.endswith("/weights") and len(tf_shape) == 4:
        height, width, n_in, n_out = tf_shape
        return [n_out, n_in, height, width]
    return list(tf_shape)


def to_tf_layout(array, tf_name):
    """A torch tensor in hgpipe's layout (conv kernels OIHW -> HWIO)."""
    if tf_name.endswith("/weights") and array.ndim == 4:
        return array.transpose(2, 3, 1, 0)
    return array
