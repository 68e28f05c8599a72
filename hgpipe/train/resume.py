"""Resuming a run folder safely: wherever it was moved, and only into the same network.

A logdir is self-describing and portable. TensorFlow's ``checkpoint`` index file may
hold absolute paths (an older hgpipe, or a folder moved or copied elsewhere): every path
in it is resolved by its file name inside the logdir, never outside it (a copied folder
must not restore, or rotate away, the original's checkpoints), and the index is rewritten
with relative names. When checkpoint files exist but the index names none of them, the
run is refused in one line rather than started again from step 0.

Before restoring, the checkpoint's variable shapes are compared with the graph's, so a
different architecture is refused in one line (also when ``config.ini`` is missing)
instead of TensorFlow's long traceback. Variables the checkpoint lacks that are not
part of the network (the loss-scale state that mixed precision on gpu/npu adds to a
logdir trained in fp32 on the cpu) start from their initial values.
"""
import glob
import os
import re

from hgpipe import atomic

STATE_FILE = "checkpoint"  # TensorFlow's index of the checkpoints in a folder
_STEP = re.compile(r"-(\d+)$")
# left behind when TensorFlow is killed inside a save: "<file>.tempstate<digits>",
# "checkpoint.tmp<hex>", "<prefix>_temp/" (or "_temp_<hex>/") folders of sharded saves
_TEMPORARY = re.compile(r"(\.tempstate\d+|^checkpoint\.tmp[0-9a-f]+|-\d+_temp(_[0-9a-f]+)?)$")


class ResumeError(ValueError):
    """The logdir cannot be resumed as asked; the message names the file and the fix."""


def _step(prefix):
    match = _STEP.search(prefix)
    return int(match.group(1)) if match else -1


def checkpoint_prefixes(logdir):
    """Checkpoint prefixes with an ``.index`` file in ``logdir``, oldest step first."""
    prefixes = [p[:-len(".index")] for p in glob.glob(os.path.join(logdir, "*.index"))]
    return sorted(prefixes, key=_step)


def remove_temporary_files(logdir):
    """Delete TensorFlow's leftovers of interrupted saves; returns their names.

    Only called by the run holding the logdir's lock, so no save is in flight.
    """
    import shutil
    removed = []
    for name in sorted(os.listdir(logdir)):
        if not _TEMPORARY.search(name):
            continue
        path = os.path.join(logdir, name)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.remove(path)
        removed.append(name)
    return removed


def _read_state(tf, logdir):
    path = os.path.join(logdir, STATE_FILE)
    if not os.path.isfile(path):
        return None
    try:
        return tf.train.get_checkpoint_state(logdir)
    except Exception as exc:  # text_format.ParseError and friends
        raise ResumeError("%s: unreadable (%s); delete it to resume from the newest "
                          "checkpoint file" % (path, str(exc).splitlines()[0]))


def _inside(logdir, path):
    """The checkpoint named ``path`` as it is in ``logdir`` (by file name), or None."""
    candidate = os.path.join(logdir, os.path.basename(path))
    return candidate if os.path.isfile(candidate + ".index") else None


def write_state(logdir, latest, all_prefixes):
    """TensorFlow's ``checkpoint`` index with names relative to the logdir."""
    names = [os.path.basename(p) for p in all_prefixes]
    if os.path.basename(latest) not in names:
        names.append(os.path.basename(latest))
    lines = ['model_checkpoint_path: "%s"' % os.path.basename(latest)]
    lines += ['all_model_checkpoint_paths: "%s"' % name for name in names]
    atomic.write_text(os.path.join(logdir, STATE_FILE), "\n".join(lines) + "\n")


def find_checkpoint(tf, logdir, rewrite=True):
    """(latest prefix, all prefixes to keep rotating) in ``logdir``, or (None, []).

    Raises ResumeError when checkpoint files are there but cannot be matched. The index
    is rewritten with relative names when needed, unless ``rewrite`` is False (ranks
    other than 0 only read the logdir).
    """
    present = checkpoint_prefixes(logdir)
    state = _read_state(tf, logdir)
    if state is None or not state.model_checkpoint_path:
        if not present:
            return None, []
        latest = present[-1]  # no index at all: the newest file is the run's state
        if rewrite:
            write_state(logdir, latest, present)
        return latest, present
    latest = _inside(logdir, state.model_checkpoint_path)
    if latest is None:
        if present:
            raise ResumeError(
                "%s: names %s, which is not in this folder, but %s is; delete %s to resume "
                "from %s, or use another --logdir" % (
                    os.path.join(logdir, STATE_FILE), state.model_checkpoint_path,
                    os.path.basename(present[-1]), os.path.join(logdir, STATE_FILE),
                    os.path.basename(present[-1])))
        return None, []
    kept = [p for p in (_inside(logdir, q) for q in state.all_model_checkpoint_paths) if p]
    # get_checkpoint_state has joined relative names to the folder: read the file itself
    with open(os.path.join(logdir, STATE_FILE)) as handle:
        written = re.findall(r'"([^"]*)"', handle.read())
    if rewrite and any(os.path.isabs(p) or "/" in p or os.sep in p for p in written):
        write_state(logdir, latest, kept)
    return latest, kept or [latest]


def _is_network_variable(variable, trainable_names):
    name = variable.op.name
    return name in trainable_names or name.endswith(("moving_mean", "moving_variance"))


def check_checkpoint(tf, prefix, variables, describe_network):
    """Variables of the graph that ``prefix`` lacks and are not the network's.

    Raises ResumeError when the network itself differs (a variable of another shape, or
    a network variable missing): another architecture than the one trained there.
    """
    try:
        stored = dict(tf.train.list_variables(prefix))
    except (tf.errors.OpError, ValueError) as exc:
        raise ResumeError("%s: cannot read checkpoint: %s" % (
            prefix, str(exc).strip().splitlines()[0]))
    trainable = set(v.op.name for v in tf.trainable_variables())
    different, missing_network, missing_other = [], [], []
    for variable in variables:
        name, shape = variable.op.name, variable.shape.as_list()
        if name in stored and list(stored[name]) != shape:
            different.append("%s is %s there, %s here" % (name, list(stored[name]), shape))
        elif name not in stored:
            (missing_network if _is_network_variable(variable, trainable)
             else missing_other).append(variable)
    if different or missing_network:
        first = different[0] if different else "%s is not there" % missing_network[0].op.name
        raise ResumeError(
            "%s: holds another network than the config's (%s): %d variables differ (first: "
            "%s); resume with the config it was trained with, or use another --logdir"
            % (prefix, describe_network, len(different) + len(missing_network), first))
    return missing_other


def restore(tf, sess, saver, prefix, missing, echo):
    """Restore ``prefix``; variables it lacks (``missing``) are initialised instead."""
    if not missing:
        saver.restore(sess, prefix)
        return
    missing_names = set(v.op.name for v in missing)
    present = [v for v in tf.global_variables() if v.op.name not in missing_names]
    tf.train.Saver(var_list=present).restore(sess, prefix)
    sess.run(tf.variables_initializer(missing))
    echo("note: %s lacks %d variables of this graph (first: %s; e.g. loss scaling added "
         "by mixed precision); they start from their initial values"
         % (os.path.basename(prefix), len(missing), missing[0].op.name))
