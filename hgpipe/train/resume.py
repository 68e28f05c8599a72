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

A checkpoint that does not read back whole (truncated, a flipped bit, a file missing)
is refused in one line naming the damaged file and the newest whole checkpoint of the
logdir, which ``train --resume-from`` resumes from (:func:`chosen_checkpoint`); nothing
is deleted, the damaged files stay for the user to inspect or replace.
"""
import glob
import os
import re

from hgpipe import atomic
from hgpipe.eval.checkpoint_damage import (failed_write, find_damage, first_line,
                                           newest_whole)

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
    """TensorFlow's CheckpointState of ``logdir``, or None when it has no state file.

    ``get_checkpoint_state`` logs a warning and returns None for a file it cannot parse,
    which would quietly resume from whatever checkpoint is newest; a state file that
    names no checkpoint is refused here instead, with the newest whole one offered.
    """
    path = os.path.join(logdir, STATE_FILE)
    if not os.path.isfile(path):
        return None
    try:
        state = tf.train.get_checkpoint_state(logdir)
        problem = None if state is not None and state.model_checkpoint_path else \
            "not a checkpoint state file, or it names no checkpoint"
    except Exception as exc:  # text_format.ParseError, UnicodeDecodeError and friends
        problem = "unreadable (%s)" % first_line(exc)
    if problem is None:
        return state
    whole = newest_whole(logdir)
    advice = ("resume from %s, the newest whole checkpoint, with --resume-from %s"
              % (os.path.basename(whole), whole) if whole else
              "no checkpoint in %s is whole" % logdir)
    raise ResumeError("%s: %s; %s" % (path, problem, advice))


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
    if state is None:
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
                "%s: names %s, which is not in this folder, but %s is; resume from it "
                "with --resume-from %s, or use another --logdir" % (
                    os.path.join(logdir, STATE_FILE), state.model_checkpoint_path,
                    os.path.basename(present[-1]), present[-1]))
        return None, []
    kept = [p for p in (_inside(logdir, q) for q in state.all_model_checkpoint_paths) if p]
    # get_checkpoint_state has joined relative names to the folder: read the file itself
    with open(os.path.join(logdir, STATE_FILE)) as handle:
        written = re.findall(r'"([^"]*)"', handle.read())
    if rewrite and any(os.path.isabs(p) or "/" in p or os.sep in p for p in written):
        write_state(logdir, latest, kept)
    return latest, kept or [latest]


def chosen_checkpoint(logdir, path):
    """(prefix, prefixes to keep rotating) for ``train --resume-from PATH``.

    ``PATH`` is a checkpoint of ``logdir`` (its prefix or one of its files, given with
    or without the folder): a run resumes only its own checkpoints, never another
    folder's. The checkpoints after it are left out of the rotation: the run writes
    their steps again.
    """
    name = os.path.basename(re.sub(r"(\.index|\.meta|\.data-\d+-of-\d+)$", "", path))
    prefix = os.path.join(logdir, name)
    present = checkpoint_prefixes(logdir)
    if os.path.dirname(path) and os.path.abspath(os.path.dirname(path)) != \
            os.path.abspath(logdir):
        raise ResumeError("%s: --resume-from takes a checkpoint of --logdir %s, not of "
                          "another folder" % (path, logdir))
    if prefix not in present:
        raise ResumeError("%s: no such checkpoint in %s (there: %s)" % (
            path, logdir, ", ".join(os.path.basename(p) for p in present) or "none"))
    return prefix, [p for p in present if _step(p) <= _step(prefix)]


def damaged_error(prefix):
    """A ResumeError naming the damaged file of ``prefix`` and the way to resume from
    the newest whole checkpoint of its logdir, or None when ``prefix`` reads back whole."""
    problem = find_damage(prefix)
    if problem is None:
        return None
    logdir = os.path.dirname(prefix) or "."
    other = newest_whole(logdir, [prefix])
    if other:
        advice = ("%s is whole: resume from it with --resume-from %s (the damaged files "
                  "stay as they are until the run saves that step again)"
                  % (os.path.basename(other), other))
    else:
        advice = ("no checkpoint in %s is whole: restore the files from a copy, or train "
                  "in another --logdir" % logdir)
    return ResumeError("%s; checkpoint %s cannot be resumed; %s"
                       % (problem, os.path.basename(prefix), advice))


def check_readable(tf, prefix):
    """Raise ResumeError unless the index of ``prefix`` can be listed."""
    try:
        tf.train.list_variables(prefix)
    except Exception as exc:  # DataLossError, NotFoundError, ValueError, ...
        raise damaged_error(prefix) or ResumeError(
            "%s: cannot read checkpoint: %s" % (prefix, first_line(exc)))


def save_failed_message(logdir, step, exc, last_checkpoint):
    """The one line for a checkpoint save that failed (a full disk, a file size limit):
    the file TensorFlow could not write, why, and the checkpoint a rerun resumes from."""
    prefix = os.path.join(logdir, "model.ckpt-%d" % step)
    path, reason = failed_write(exc)
    if not path or not os.path.basename(path).startswith(os.path.basename(prefix)):
        path = prefix  # the state file or a temporary name: name the checkpoint instead
    if last_checkpoint:
        after = ("the older checkpoints are intact; free some space and rerun the same "
                 "command to resume from %s" % last_checkpoint)
    else:
        after = "no earlier checkpoint; free some space and rerun the same command"
    return "%s: cannot write the checkpoint of step %d (%s); %s" % (
        path, step, reason, after)


def _is_network_variable(variable, trainable_names):
    name = variable.op.name
    return name in trainable_names or name.endswith(("moving_mean", "moving_variance"))


def check_checkpoint(tf, prefix, variables, describe_network):
    """Variables of the graph that ``prefix`` lacks and are not the network's.

    Raises ResumeError when the network itself differs (a variable of another shape, or
    a network variable missing): another architecture than the one trained there.
    """
    check_readable(tf, prefix)
    stored = dict(tf.train.list_variables(prefix))
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
        damaged = damaged_error(prefix)  # a damaged index can look like this
        if damaged is not None:
            raise damaged
        first = different[0] if different else "%s is not there" % missing_network[0].op.name
        raise ResumeError(
            "%s: holds another network than the config's (%s): %d variables differ (first: "
            "%s); resume with the config it was trained with, or use another --logdir"
            % (prefix, describe_network, len(different) + len(missing_network), first))
    return missing_other


def restore(tf, sess, saver, prefix, missing, echo):
    """Restore ``prefix``; variables it lacks (``missing``) are initialised instead.
    A checkpoint that fails to restore is one ResumeError naming the damaged file."""
    if missing:
        missing_names = set(v.op.name for v in missing)
        present = [v for v in tf.global_variables() if v.op.name not in missing_names]
        saver = tf.train.Saver(var_list=present)
    try:
        saver.restore(sess, prefix)
    except tf.errors.OpError as exc:
        raise damaged_error(prefix) or ResumeError(
            "%s: cannot restore: %s" % (prefix, first_line(exc)))
    if not missing:
        return
    sess.run(tf.variables_initializer(missing))
    echo("note: %s lacks %d variables of this graph (first: %s; e.g. loss scaling added "
         "by mixed precision); they start from their initial values"
         % (os.path.basename(prefix), len(missing), missing[0].op.name))
