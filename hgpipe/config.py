"""The one home of configuration: INI files compatible with the seed's ``config.cfg``.

The seed (wbenbihi/hourglasstensorlfow and its Ascend port) reads ``[DataSetHG]``,
``[Network]``, ``[Train]``, ``[Validation]`` and ``[Saver]`` with Python-literal values
(``nStacks: 4``, ``name: 'hg'``, ``remove_joints: None``). hgpipe reads those files as
they are and adds ``[Prepare]`` and more keys; every key is typed, has a default and a
one-line meaning here, and an unknown key or a bad value is an error that names it.

Two words the seed's keys fix: ``[Train] nEpochs`` counts *step epochs* of
``epoch_size`` steps each (the seed's "epoch", whatever the data size); a pass over the
training samples is a *data pass* (the feeder's ``epoch``, :mod:`hgpipe.train.feeder`).
``[Network] dropout_rate`` defaults to the seed's 0.2 here (a seed config.cfg trains as
it did); the network builder's own default, for library callers, is Newell's 0.0
(:data:`hgpipe.model.hourglass.MODEL_CONFIG_DEFAULTS`), and every recipe in configs/
sets it explicitly.
"""
import ast
import configparser
import math
import os
from collections import OrderedDict

from hgpipe.joints import NUM_JOINTS


# What a training run writes beside its checkpoints (``LOGDIR/config.ini``), and what
# ``pck --checkpoint``, ``predict`` and ``export`` read to rebuild its network.
RUN_CONFIG_FILE = "config.ini"
# ... and the keypoint set it predicts (absent: MPII), written by train and import-weights.
KEYPOINTS_FILE = "keypoints.json"
# The [Network] keys that decide the network (its variables, and input_mean its input):
# a logdir or a checkpoint belongs to one set of values.
NETWORK_KEYS = ("nStacks", "nFeats", "nModules", "nLow", "tiny", "stem", "input_mean",
                "architecture")


def describe_network(cfg):
    """``nStacks=2, nFeats=64, ...``: the network a config describes, for messages."""
    return ", ".join("%s=%s" % (key, cfg["Network"][key]) for key in NETWORK_KEYS)


STEM_STRIDE = 4  # input pixels per heatmap pixel (the stem's 7x7/2 conv then 2x2 pool)


def input_size_multiple(n_low, architecture="newell"):
    """Input sides must be a multiple of this: the stem's stride 4 (7x7/2 conv, 2x2 pool)
    times a 2x2 pooling per hourglass level, or the skips do not line up. The network
    builder checks the same rule with this function (``hgpipe.model.hourglass``); the
    config checks it so that a bad size fails at load, not in train's graph. The seed's
    hourglass pools once more than ``n_low`` (wbenbihi hourglass_tiny.py:604)."""
    return STEM_STRIDE * 2 ** (int(n_low) + (1 if architecture == "seed" else 0))


def sample_bytes(img_size, hm_size, num_joints=None):
    """Bytes of one training sample in the feed's batch buffers (uint8 image and
    heatmaps, float32 weights: :data:`hgpipe.train.feeder.TRAIN_FIELDS`); ``num_joints``
    the shards' (MPII's 16 if None: a config alone does not know its shards)."""
    j = NUM_JOINTS if num_joints is None else int(num_joints)
    return 3 * img_size ** 2 + j * hm_size ** 2 + 4 * j


# The feed holds prefetch_batches + 3 batches in memory (hgpipe/train/feeder.py); a
# config that asks for more than this is refused before any buffer is allocated.
FEED_MEMORY_LIMIT = 4 * 2 ** 30


class ConfigError(ValueError):
    """A config file or override names an unknown key or holds a bad value."""


def _bool(value):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true/false")


def _optional_positive_int(value):
    if value in (None, "", "None"):
        return None
    return _positive(int)(value)


_optional_positive_int.__name__ = "positive int or None"


def check_num_joints(cfg, keypoints, origin):
    """The shards' keypoint set decides the joints; a config naming another count is
    refused in one line (a config that names none follows the shards)."""
    wanted = cfg["DataSetHG"]["num_joints"]
    if wanted is not None and wanted != keypoints.num_joints:
        raise ConfigError("%s: [DataSetHG] num_joints = %d, but the shards hold %d %s "
                          "joints (remove num_joints or prepare %d-joint shards)" % (
                              origin, wanted, keypoints.num_joints, keypoints.name, wanted))
    return keypoints.num_joints


def _optional_str(value):
    return None if value in (None, "", "None") else str(value)


def _int(value):
    """An integer; a float is accepted only when whole (2.0), never truncated (1.5)."""
    if isinstance(value, bool):
        raise ValueError("expected an integer, got %r" % value)
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("expected an integer, got %r" % value)
    return int(value)


_int.__name__ = "int"


def _float(value):
    """A finite float: inf and nan pass every ``> 0`` test and then poison what they
    touch (``sigma=inf`` gave all-zero heatmaps, ``rotation=1e308`` garbage crops)."""
    if isinstance(value, bool):
        raise ValueError("expected a number, got %r" % value)
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("must be a finite number")
    return number


_float.__name__ = "float"

# The largest value any integer key may take (the ones with their own sane bound go
# lower): above it numpy seeds, TF's int32 attributes and steps counters overflow.
INT_LIMIT = 2 ** 31 - 1


def _number(kind):
    return _int if kind is int else _float


def _bounded(number, maximum):
    if maximum is not None and number > maximum:
        raise ValueError("must be <= %s" % maximum)
    return number


def _positive(kind, maximum=None):
    kind = _number(kind)
    if maximum is None and kind is _int:
        maximum = INT_LIMIT

    def convert(value):
        number = kind(value)
        if not number > 0:
            raise ValueError("must be > 0")
        return _bounded(number, maximum)
    convert.__name__ = "positive " + kind.__name__
    return convert


def _non_negative(kind, maximum=None):
    kind = _number(kind)
    if maximum is None and kind is _int:
        maximum = INT_LIMIT

    def convert(value):
        number = kind(value)
        if number < 0:
            raise ValueError("must be >= 0")
        return _bounded(number, maximum)
    convert.__name__ = "non-negative " + kind.__name__
    return convert


def _seed(value):
    """A seed numpy's RandomState takes: an integer in [0, 2**32)."""
    number = _int(value)
    if not 0 <= number < 2 ** 32:
        raise ValueError("must be in [0, 2**32)")
    return number


_seed.__name__ = "seed"


def _fraction(value):
    number = _float(value)
    if not 0.0 <= number < 1.0:
        raise ValueError("must be in [0, 1)")
    return number


def _odd_or_zero(value):
    number = _int(value)
    if number < 0 or (number and number % 2 == 0):
        raise ValueError("must be 0 or an odd number of pixels")
    return number


_odd_or_zero.__name__ = "0 or odd int"


def _any(value):
    return value


def _int_list(value):
    """A list of non-negative integers: [60, 90], '60 90' or '60, 90'; empty -> []."""
    if value in (None, "", "None"):
        return []
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if isinstance(value, (int, float)):
        value = [value]
    numbers = [_int(v) for v in value]
    if any(not 0 <= n <= INT_LIMIT for n in numbers) or numbers != sorted(numbers):
        raise ValueError("expected increasing non-negative integers")
    return numbers


def _optional_rgb(value):
    """None, or three per-channel numbers (a list/tuple, or text '0.46 0.44 0.40')."""
    if value in (None, "", "None"):
        return None
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    numbers = tuple(_float(v) for v in value)
    if len(numbers) != 3:
        raise ValueError("expected three numbers (R G B), got %d" % len(numbers))
    return numbers


def _choice(*options):
    def convert(value):
        text = str(value).lower()
        if text not in options:
            raise ValueError("must be one of %s" % ", ".join(options))
        return text
    convert.__name__ = "one of " + "/".join(options)
    return convert


# section -> key -> (converter, default, meaning). Keys are matched case-insensitively,
# as configparser does; the spelling here is the seed's where the seed has the key.
SCHEMA = OrderedDict([
    ("DataSetHG", OrderedDict([
        ("img_size", (_positive(int, 1024), 256, "network input side in pixels")),
        ("hm_size", (_positive(int, 256), 64, "heatmap side in pixels (img_size / 4)")),
        ("num_joints", (_optional_positive_int, None,
                        "joints per person; None: the shards' keypoint set's (MPII: 16)")),
        ("training_txt_file", (_optional_str, None, "seed: annotations (use --annotations)")),
        ("img_directory", (_optional_str, None, "seed: image folder (use --mpii)")),
        ("remove_joints", (_any, None, "seed: accepted, must be None")),
        ("joint_list", (_any, None, "seed: joint names (hgpipe uses MPII order, joints.py)")),
    ])),
    ("Prepare", OrderedDict([
        ("variants", (_positive(int, 1000), 8, "augmented crops per training person")),
        ("sigma", (_positive(float), 1.0, "Gaussian sigma in heatmap pixels")),
        ("gaussian_fwhm", (_non_negative(float), 0.0,
                           "if > 0: sigma = fwhm / (2 sqrt(2 ln 2)), the seed's 3 px "
                           "(datagen.py:229, 243); 0: sigma as set")),
        ("crop", (_choice("hourglass", "seed_box"), "hourglass",
                  "hourglass: the papers' centre/scale box; seed_box: the annotated joints' "
                  "box + 20%, squared (datagen.py:249-298, transforms.seed_box)")),
        ("gaussian_centre", (_choice("float", "pixel"), "float",
                             "Gaussian at the joint's float position, or at its nearest "
                             "heatmap pixel (the references' integer centres; codec.py)")),
        ("joint_weight", (_choice("supervised", "visible"), "supervised",
                          "a joint's loss weight: annotated and inside the map; visible: "
                          "also MPII's is_visible (bearpaw HEAD, mpii.py:115)")),
        ("gaussian_window", (_odd_or_zero, 0,
                             "cut each Gaussian to this many pixels square (odd; 0: "
                             "not cut; pose-hg-train and bearpaw 7, PSH 9)")),
        ("seed", (_seed, 0, "augmentation seed (same seed -> identical shards)")),
        ("rotation", (_non_negative(float, 180.0), 30.0, "rotation: N(0, r) degrees clamped at 2r")),
        ("rotation_prob", (_fraction, 0.6, "chance that a variant is rotated at all")),
        ("scale_factor", (_fraction, 0.25, "scale: 1 + N(0, f) clamped to [1-f, 1+f]")),
        ("flip", (_bool, True, "mirror half the variants (left/right joints swapped)")),
        ("color_jitter", (_fraction, 0.2, "per-channel gain uniform in [1-c, 1+c]")),
        ("first_variant_plain", (_bool, False, "variant 0 of each person unaugmented")),
        ("augmentation", (_choice("custom", "newell", "bearpaw", "psh", "seed"), "custom",
                          "preset of the ranges above: newell (pose.lua), bearpaw (mpii.py), "
                          "psh (dp.py), seed (datagen.py:331-338); custom: the keys as set "
                          "(hgpipe/data/augment.py)")),
        ("geometry", (_choice("offline", "device"), "offline",
                      "offline: `variants` fixed crops per person; device: one context "
                      "crop per person, fresh rotation/scale every step (train/geometry.py)")),
        ("shard_size", (_positive(int, 65536), 1024, "samples per shard file (about)")),
        # measured by `hgpipe bench`: gzip saves 24% of disk, the feed halves (warm)
        ("heatmap_compression", (_choice("none", "gzip"), "none", "heatmaps on disk")),
        ("image_compression", (_choice("none", "gzip"), "none", "crops on disk")),
    ])),
    ("Network", OrderedDict([
        ("name", (str, "hourglass", "seed: model name (checkpoints are model.ckpt-STEP)")),
        ("nFeats", (_positive(int, 4096), 256, "features inside the hourglass")),
        ("nStacks", (_positive(int, 64), 4, "stacked hourglasses")),
        ("nModules", (_positive(int, 16), 1, "residual modules at each resolution")),
        ("nLow", (_positive(int, 8), 4, "downsamplings in each hourglass")),
        ("tiny", (_bool, False, "seed's light variant (fewer, cheaper residuals)")),
        ("dropout_rate", (_fraction, 0.2, "dropout before each stack's heatmap head")),
        ("mcam", (_bool, False, "seed: multi-context attention, not supported")),
        ("stem", (_choice("newell", "bearpaw"), "newell",
                  "stem residual 2: newell 128->128 (hg.lua), bearpaw 128->256 (wider)")),
        ("architecture", (_choice("newell", "seed"), "newell",
                          "newell: Newell's hg.lua network (bearpaw, PSH); seed: wbenbihi's "
                          "hourglass_tiny.py as it is (hgpipe/model/seed_hourglass.py)")),
        ("input_mean", (_optional_rgb, None,
                        "R G B mean subtracted from the [0,1] input (bearpaw); None: none")),
    ])),
    ("Train", OrderedDict([
        ("batch_size", (_positive(int, 4096), 4, "samples per step on each device (global batch: "
                                           "batch_size x ranks)")),
        ("nEpochs", (_positive(int), 200,
                     "step epochs: total steps = nEpochs x epoch_size (not data passes)")),
        ("epoch_size", (_positive(int), 1000, "steps per step epoch (seed's 'epoch')")),
        ("learning_rate", (_positive(float), 2.5e-4,
                           "initial learning rate (then lr_schedule)")),
        ("learning_rate_decay", (_positive(float), 0.96, "lr factor every decay_step")),
        ("decay_step", (_positive(int), 2000, "steps between lr decays (staircase)")),
        ("weighted_loss", (_bool, False, "mask unannotated/out-of-crop joints in the loss")),
        ("weighted_loss_mode", (_choice("masked", "bearpaw"), "masked",
                                "masked: / total weight; bearpaw: JointsMSELoss, 0.5 x mean "
                                "over every map of weight x error (hgpipe/model/loss.py)")),
        ("stack_loss", (_choice("sum", "mean"), "sum",
                        "per-stack losses summed (Newell, bearpaw) or averaged (PSH, seed)")),
        ("loss", (_choice("mse", "sigmoid_cross_entropy"), "mse",
                  "per-map loss: mse, or the seed's sigmoid cross-entropy of the logits "
                  "(hourglass_tiny.py:160; hgpipe/model/loss.py)")),
        ("optimizer", (_choice("rmsprop_tf", "rmsprop_torch", "adam_tf", "adam_torch"),
                       "rmsprop_tf", "update rule: TF's or torch.optim's semantics")),
        ("rmsprop_decay", (_fraction, 0.9, "RMSProp moving-average decay (torch: alpha)")),
        ("rmsprop_epsilon", (_positive(float), 1e-8, "RMSProp epsilon")),
        ("momentum", (_fraction, 0.0, "RMSProp momentum")),
        ("weight_decay", (_non_negative(float), 0.0, "L2 weight decay added to the gradient")),
        ("adam_beta1", (_fraction, 0.9, "Adam beta1")),
        ("adam_beta2", (_fraction, 0.999, "Adam beta2")),
        ("adam_epsilon", (_positive(float), 1e-8, "Adam epsilon")),
        ("lr_schedule", (_choice("exponential", "constant", "multistep"), "exponential",
                         "exponential: x learning_rate_decay every decay_step (staircase); "
                         "multistep: x lr_gamma at each of lr_milestones")),
        ("lr_milestones", (_int_list, [], "multistep: epochs (or steps) where lr drops")),
        ("lr_milestone_unit", (_choice("epoch", "step"), "epoch",
                               "multistep: milestones in step epochs (x epoch_size) or steps")),
        ("lr_gamma", (_positive(float), 0.1, "multistep: lr factor at each milestone")),
        ("device_flip", (_bool, False, "random horizontal flip per sample in the graph")),
        ("device_color", (_fraction, 0.0, "per-channel gain U(1-c, 1+c) in the graph; 0 off")),
        ("device", (_choice("cpu", "gpu", "npu"), "cpu", "cpu, gpu or npu (Ascend)")),
        ("distributed", (_choice("none", "horovod", "hccl"), "none",
                         "data parallel over ranks: horovod (gpu/cpu), hccl (Ascend)")),
        ("lr_scaling", (_choice("none", "linear"), "none",
                        "linear: learning_rate x ranks (off: references used 1 device)")),
        ("lr_warmup_steps", (_non_negative(int), 0, "linear scaling: steps to reach it")),
        ("mixed_precision", (_bool, True, "fp16 on gpu/npu with loss scaling")),
        ("precision_mode", (_optional_str, None, "npu: explicit Ascend precision_mode")),
        ("prefetch_batches", (_positive(int, 1024), 8, "batches the feed thread reads ahead")),
        ("seed", (_seed, 0, "shuffling / initialisation seed")),
        ("deterministic", (_bool, False, "same seed -> bit-identical weights: one thread, "
                                         "deterministic kernels (hgpipe/train/determinism.py)")),
        ("log_every", (_positive(int), 20, "steps between TensorBoard summaries")),
        ("print_seconds", (_non_negative(float), 30.0,
                           "no terminal (no progress bar): a plain step line every "
                           "log_every steps, at most one per this many seconds")),
    ])),
    ("Validation", OrderedDict([
        ("valid_iteration", (_non_negative(int), 10,
                             "seed: accepted, no longer limits validation (val_persons does)")),
        ("val_persons", (_non_negative(int), 0,
                         "val persons per validation; 0: the whole val split")),
        ("validate_every", (_non_negative(int), 1000, "steps between validations; 0 off")),
        ("pck_threshold", (_positive(float), 0.5, "PCKh threshold for validation")),
    ])),
    ("Saver", OrderedDict([
        ("log_dir_train", (_optional_str, None, "seed: train summaries (use --logdir)")),
        ("log_dir_test", (_optional_str, None, "seed: test summaries (use --logdir)")),
        ("saver_step", (_positive(int), 500, "steps between checkpoints")),
        ("saver_directory", (_optional_str, None, "seed: checkpoints (use --logdir)")),
        ("keep_checkpoints", (_positive(int, 10000), 5, "checkpoints kept (the oldest go)")),
    ])),
])

_SECTION_BY_LOWER = {name.lower(): name for name in SCHEMA}

# kept only so that the seed's config.cfg files load; a value set for them changes nothing
SEED_ONLY_KEYS = (("DataSetHG", "training_txt_file"), ("DataSetHG", "img_directory"),
                  ("DataSetHG", "joint_list"), ("Network", "name"),
                  ("Saver", "log_dir_train"), ("Saver", "log_dir_test"),
                  ("Saver", "saver_directory"))


def _canonical_key(section, key):
    for name in SCHEMA[section]:
        if name.lower() == key.lower():
            return name
    raise KeyError(key)


MAX_VALUE_CHARS = 1000   # no key needs more; a longer value is refused, not parsed


def _literal(text):
    """Seed files hold Python literals ('hg', None, [..]); plain words are kept as text.

    A value longer than :data:`MAX_VALUE_CHARS` is refused before the parser sees it: a
    deeply nested literal ('[[[[...') makes Python's parser recurse until it fails with
    a RecursionError or MemoryError."""
    text = text.strip()
    if len(text) > MAX_VALUE_CHARS:
        raise ValueError("value of %d characters, at most %d" % (len(text), MAX_VALUE_CHARS))
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


class Config(object):
    """Typed values by section: ``cfg["Train"]["batch_size"]`` or ``cfg.get(...)``."""

    def __init__(self, values=None, sources=()):
        self._values = OrderedDict(
            (section, OrderedDict((k, spec[1]) for k, spec in keys.items()))
            for section, keys in SCHEMA.items())
        self.sources = list(sources)
        for section, items in (values or {}).items():
            for key, value in items.items():
                self.set(section, key, value)

    def __getitem__(self, section):
        return self._values[_SECTION_BY_LOWER[section.lower()]]

    def get(self, section, key):
        section = _SECTION_BY_LOWER[section.lower()]
        return self._values[section][_canonical_key(section, key)]

    def set(self, section, key, value, origin="override"):
        """Set one value, converting and checking it; errors name the key and origin."""
        canonical_section = _SECTION_BY_LOWER.get(str(section).lower())
        if canonical_section is None:
            raise ConfigError("%s: unknown section [%s] (known: %s)" % (
                origin, _short(section), ", ".join(SCHEMA)))
        try:
            canonical_key = _canonical_key(canonical_section, key)
        except KeyError:
            raise ConfigError("%s: unknown key '%s' in [%s] (known: %s)" % (
                origin, _short(key), canonical_section, ", ".join(SCHEMA[canonical_section])))
        convert = SCHEMA[canonical_section][canonical_key][0]
        try:
            converted = convert(_literal(value) if isinstance(value, str) else value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ConfigError("%s: bad value for [%s] %s = %s: %s" % (
                origin, canonical_section, canonical_key, _short(repr(value)), exc))
        self._values[canonical_section][canonical_key] = converted
        _check_consistency(self, origin)

    def ignored_keys(self):
        """``Section.key`` of the seed-only keys set to something other than the default."""
        return ["%s.%s" % (section, key) for section, key in SEED_ONLY_KEYS
                if self._values[section][key] != SCHEMA[section][key][1]]

    def check(self, origin):
        """Checks that involve several keys, once all values are in."""
        data = self._values["DataSetHG"]
        if data["img_size"] != 4 * data["hm_size"]:
            raise ConfigError("%s: hm_size must be img_size / 4 (the hourglass outputs "
                              "heatmaps at a quarter of its input), got img_size=%d, "
                              "hm_size=%d" % (origin, data["img_size"], data["hm_size"]))
        n_low = self._values["Network"]["nLow"]
        multiple = input_size_multiple(n_low, self._values["Network"]["architecture"])
        if data["img_size"] % multiple:
            raise ConfigError("%s: img_size must be a multiple of %d for nLow=%d (the "
                              "stem's stride 4 times one 2x2 pooling per hourglass level: "
                              "4 * 2**nLow), got img_size=%d" % (
                                  origin, multiple, n_low, data["img_size"]))
        prepare = self._values["Prepare"]
        if prepare["gaussian_fwhm"] > 0:   # one home of the FWHM -> sigma conversion
            prepare["sigma"] = prepare["gaussian_fwhm"] / (2.0 * math.sqrt(2.0 * math.log(2.0)))
        if prepare["crop"] != "hourglass" and prepare["geometry"] != "offline":
            raise ConfigError("%s: [Prepare] crop = %s needs geometry = offline (device "
                              "geometry cuts the hourglass box)" % (origin, prepare["crop"]))
        sigma = self._values["Prepare"]["sigma"]
        if sigma > data["hm_size"]:
            raise ConfigError("%s: [Prepare] sigma must be at most hm_size (%d heatmap "
                              "pixels), got %g" % (origin, data["hm_size"], sigma))
        train = self._values["Train"]
        feed_bytes = ((train["prefetch_batches"] + 3) * train["batch_size"]
                      * sample_bytes(data["img_size"], data["hm_size"], data["num_joints"]))
        if feed_bytes > FEED_MEMORY_LIMIT:
            raise ConfigError("%s: [Train] prefetch_batches=%d with batch_size=%d needs "
                              "%.1f GiB of batch buffers (limit %d GiB); lower them" % (
                                  origin, train["prefetch_batches"], train["batch_size"],
                                  feed_bytes / 2.0 ** 30, FEED_MEMORY_LIMIT // 2 ** 30))

    def as_dict(self):
        return OrderedDict((s, OrderedDict(v)) for s, v in self._values.items())

    def to_ini(self):
        """The full configuration as INI text (every key, defaults included)."""
        lines = []
        for section, items in self._values.items():
            lines.append("[%s]" % section)
            for key, value in items.items():
                lines.append("%s = %r" % (key, value) if isinstance(value, str)
                             else "%s = %s" % (key, value))
            lines.append("")
        return "\n".join(lines)


def _check_consistency(cfg, origin):
    data = cfg._values["DataSetHG"]
    # num_joints is checked against the shards' keypoint set when training starts
    # (check_num_joints): a config alone does not know which set it will train on
    if data["remove_joints"] not in (None, [], ()):
        raise ConfigError("%s: remove_joints is not supported (hgpipe trains every joint "
                          "of the shards' keypoint set)" % origin)
    if cfg._values["Network"]["mcam"]:
        raise ConfigError("%s: mcam (multi-context attention) is not supported" % origin)


MAX_CONFIG_BYTES = 1 << 20   # the recipes are ~2 KB; a bigger file is not a config


def _read_text(path):
    """The file's text, decoded as UTF-8 (never the locale's guess); errors name the file."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError("%s: larger than %d KiB, not a config file"
                          % (path, MAX_CONFIG_BYTES >> 10))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError("%s: not UTF-8 text (byte 0x%02x at offset %d); save the config "
                          "as UTF-8" % (path, bytearray(data)[exc.start], exc.start))


def _short(text, limit=60):
    text = str(text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def load_config(path=None, overrides=()):
    """Read an INI file (seed format accepted) and apply ``Section.key=value`` overrides."""
    cfg = Config(sources=[path] if path else [])
    if path is not None:
        if not os.path.isfile(path):
            raise ConfigError("%s: config file not found" % path)
        # "key = value  # comment": the recipes cite their reference next to each value
        parser = configparser.ConfigParser(interpolation=None,
                                           inline_comment_prefixes=("#",))
        parser.optionxform = str
        try:
            parser.read_string(_read_text(path), source=path)
        except configparser.Error as exc:
            raise ConfigError("%s: not a valid INI file: %s" % (
                path, (str(exc).splitlines() or [type(exc).__name__])[0][:200]))
        for section in parser.sections():
            for key, value in parser.items(section):
                cfg.set(section, key, value, origin=path)
    for item in overrides:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError("override %r: expected Section.key=value" % (item,))
        name, value = item.split("=", 1)
        section, key = name.split(".", 1)
        cfg.set(section.strip(), key.strip(), value, origin="override %s" % name.strip())
    cfg.check("%s%s" % (path or "config", " with --set" if overrides else ""))
    return cfg
