"""``hgpipe train``: the Session loop, fed by a prefetch thread, measured at every step.

Per step it records the wall time and the time spent waiting for input; the ratio of
the two is the input-wait fraction, the number that says whether the device starved.
Checkpoints carry the global step (hence the learning rate) and the data position, so an
interrupted run - Ctrl-C, SIGTERM from a scheduler, a crash - resumes exactly. A NaN/Inf
loss stops the run before anything is saved, leaving the last good checkpoint intact.

The shards' keypoint set (:func:`hgpipe.data.schema.keypoints_of`) sizes the network's
output and the device flip's pairs; a run on a set other than MPII records it in
``LOGDIR/keypoints.json`` (:data:`hgpipe.config.KEYPOINTS_FILE`) for pck,
predict and export, and validates with the set's metric.
"""
import math
import os
import signal
import sys
import time

import numpy as np
from tqdm import tqdm

from hgpipe import __version__, atomic, draw
from hgpipe.codec import HeatmapCodec
from hgpipe.config import (NETWORK_KEYS, RUN_CONFIG_FILE, ConfigError, check_num_joints,
                           describe_network, load_config)
from hgpipe.data import schema, shards
from hgpipe.data.integrity import ShardVerifier
from hgpipe.eval.checkpoint import keypoints_path, read_logdir_keypoints
from hgpipe.eval.evaluate import score_predictions
from hgpipe.eval.inference import predict_image_coords, read_val_inputs, run_batched
from hgpipe.eval.pckh import score_pckh
from hgpipe.eval.pred_files import EvalFileError, read_ground_truth, read_keypoint_ground_truth
from hgpipe.joints import MPII
from hgpipe.lock import folder_lock
from hgpipe.tf_compat import import_tf
from hgpipe.train import distributed, resume, warm_start
from hgpipe.train.determinism import make_deterministic
from hgpipe.train.devices import check_device, session_config
from hgpipe.train.feeder import TRAIN_FIELDS, Prefetcher, ShardBatches
from hgpipe.train.graph import (ContextFeedInput, DatasetInput, FeedInput, Geometry,
                                build_train_graph)
from hgpipe.train.plain_log import StepPrinter, TrainLog, bar_shown

SUMMARY_FILE = "train_summary.json"


class TrainingError(RuntimeError):
    """Training cannot start or had to stop (diverged, incompatible logdir)."""


class _StopSignal(object):
    """Turns SIGINT/SIGTERM into a flag the loop checks after each step."""

    def __init__(self):
        self.received = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, _frame):
        self.received = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _check_logdir_keypoints(logdir, keypoints):
    """A logdir belongs to one keypoint set: the one its ``keypoints.json`` records, MPII
    when a used logdir (with config.ini) records none; refuse shards of another."""
    used = os.path.isfile(os.path.join(logdir, RUN_CONFIG_FILE))
    try:
        previous = read_logdir_keypoints(logdir, MPII if used else None)
    except ValueError as exc:
        raise TrainingError(str(exc))
    if previous is not None and previous != keypoints:
        raise TrainingError(
            "%s: this logdir trained on the %s keypoint set (%d joints), the shards hold %s "
            "(%d joints); use another --logdir" % (
                keypoints_path(logdir) if os.path.isfile(keypoints_path(logdir))
                else os.path.join(logdir, RUN_CONFIG_FILE), previous.name,
                previous.num_joints, keypoints.name, keypoints.num_joints))


def _check_logdir_config(cfg, logdir, keypoints=MPII):
    """A logdir belongs to one network, optimizer, input size and keypoint set: refuse
    another."""
    from hgpipe.train.optimizers import optimizer_state  # imports TensorFlow (see graph.py)
    _check_logdir_keypoints(logdir, keypoints)
    path = os.path.join(logdir, RUN_CONFIG_FILE)
    if os.path.isfile(path):
        previous = load_config(path)
        keys = [("Network", key) for key in NETWORK_KEYS] + \
            [("DataSetHG", "img_size"), ("DataSetHG", "hm_size")]
        for section, key in keys:
            if previous[section][key] != cfg[section][key]:
                raise TrainingError(
                    "%s: this logdir trained with %s=%r, the config (or the shards) ask for "
                    "%r; use another --logdir" % (path, key, previous[section][key],
                                                 cfg[section][key]))
        before, after = optimizer_state(previous["Train"]), optimizer_state(cfg["Train"])
        if before != after:
            raise TrainingError("%s: this logdir trained with %s, the config asks for %s; "
                                "use another --logdir" % (path, before, after))


def _scalar_summary(tf, values):
    return tf.Summary(value=[tf.Summary.Value(tag=k, simple_value=float(v))
                             for k, v in values.items()])


def _image_summary(tf, tag, image_rgb):
    import cv2
    ok, png = cv2.imencode(".png", image_rgb[..., ::-1])
    image = tf.Summary.Image(height=image_rgb.shape[0], width=image_rgb.shape[1],
                             colorspace=3, encoded_image_string=png.tobytes())
    return tf.Summary(value=[tf.Summary.Value(tag=tag, image=image)])


class _NoVerifier(object):
    """Ranks other than 0 leave the shard check to rank 0, which alone saves."""

    def check(self, wait=False):
        pass

    def close(self):
        pass


class _NoWriter(object):
    """The summary writer of ranks other than 0: they write nothing."""

    def add_summary(self, *args):
        pass

    def close(self):
        pass


class _RunState(object):
    """What one ``Trainer.run`` carries from step to step: where it is, the last step's
    results, and the timings and losses the report is made of."""

    def __init__(self, step, start_position, restored, writer, bar, batches):
        self.step = self.first_step = step
        self.start_position = start_position  # data (pass, batch) at the start
        self.position = start_position        # data position after the last step's batch
        self.restored = restored              # checkpoint resumed from, or None
        self.last_checkpoint = restored
        self.status = "completed"
        self.writer, self.bar, self.batches = writer, bar, batches
        self.loss = self.learning_rate = self.stack_losses = self.step_seconds = None
        self.any_stop = False                 # some rank got a stop signal this step
        self.step_times, self.step_waits, self.losses, self.history = [], [], [], []


class Trainer(object):
    """One training run in ``logdir``; ``run()`` returns the summary dict."""

    def __init__(self, cfg, data_dir, logdir, device=None, steps=None, resume=True,
                 input_mode="feed", echo=print, progress=True, distributed_backend=None,
                 resume_from=None, notes=()):
        self.cfg = cfg
        self.data_dir = data_dir
        self.logdir = logdir
        self.device = device or cfg["Train"]["device"]
        self.resume = resume
        self.resume_from = resume_from  # a checkpoint of logdir instead of its latest
        self.input_mode = input_mode
        self.echo = echo
        self.progress = progress
        # tqdm draws on stderr only when it is a terminal; otherwise (nohup, SLURM, a
        # pipe) the run prints plain step lines and keeps train.log (train/plain_log.py)
        self.bar_on = bar_shown(progress, sys.stderr)
        self.train_log = self.step_printer = None
        # printed before train.log is open (the caller's notes: already printed); the
        # log gets them too
        self._early_lines = list(notes)
        train = cfg["Train"]
        # none | horovod | hccl; the backend itself is made in run() (it imports Horovod)
        self.distributed_name = distributed_backend or train["distributed"]
        self.dist = distributed.SingleProcess()
        self.batch_size = train["batch_size"]
        self.total_steps = steps if steps is not None else train["nEpochs"] * train["epoch_size"]
        self.manifest = shards.load_manifest(data_dir)
        # whose joints the shards hold: the network's outputs, the flip's pairs
        self.keypoints = schema.keypoints_of(self.manifest)
        try:
            check_num_joints(cfg, self.keypoints, "%s with %s" % (
                (cfg.sources or ["config"])[0], os.path.join(data_dir, shards.MANIFEST)))
        except ConfigError as exc:
            raise TrainingError(str(exc))
        self.input_size = self.manifest["input_size"]
        self.heatmap_size = self.manifest["heatmap_size"]
        for key, value in (("img_size", self.input_size), ("hm_size", self.heatmap_size)):
            if cfg["DataSetHG"][key] != value:
                self._early_lines.append(
                    "note: shards were made with %s=%d; using it (config says %d)"
                    % (key, value, cfg["DataSetHG"][key]))
                echo(self._early_lines[-1])
                cfg.set("DataSetHG", key, value)

    # ------------------------------------------------------------------ set-up
    def _build(self, tf):
        train = self.cfg["Train"]
        tf.set_random_seed(train["seed"])
        # device geometry: the shards hold context crops (their manifest says so)
        geometry = Geometry.from_manifest(self.manifest)
        fields = ContextFeedInput.fields if geometry else TRAIN_FIELDS
        self.reader = ShardBatches(self.data_dir, "train", self.batch_size, seed=train["seed"],
                                   capacity=train["prefetch_batches"],
                                   rank=self.dist.rank, num_ranks=self.dist.size,
                                   fields=fields)
        k = self.keypoints.num_joints
        if self.input_mode == "feed":
            inputs = ContextFeedInput(self.batch_size, geometry.side, k) if geometry else \
                FeedInput(self.batch_size, self.input_size, self.heatmap_size, k)
        elif self.input_mode == "dataset":
            inputs = DatasetInput(lambda: (b for _e, _b, b in self._batches()),
                                  self.batch_size, self.input_size, self.heatmap_size,
                                  geometry.side if geometry else None, k)
        else:
            raise ValueError("input mode must be feed or dataset, got %r" % self.input_mode)
        self.inputs = inputs
        self.graph = build_train_graph(self.cfg, inputs, self.device, self.dist, geometry,
                                       self.keypoints)
        self.rank_ops = distributed.RankOps(tf, self.dist)
        self._weights_finite = tf.reduce_all(tf.stack(
            [tf.reduce_all(tf.is_finite(v)) for v in tf.trainable_variables()]))

    def _batches(self):
        for item in iter(self.prefetcher.get, None):
            self._last_position = item[:2]
            self._last_batch = item[2]
            yield item

    def _restore_or_init(self, tf, sess):
        """Restore the logdir's checkpoint (see :mod:`hgpipe.train.resume`) or initialise;
        config.ini is written once the logdir is known to fit: on a fresh start, or
        when it has none."""
        chief = self.dist.is_chief
        if self.resume_from:
            latest, kept = resume.chosen_checkpoint(self.logdir, self.resume_from)
        elif self.resume:
            latest, kept = resume.find_checkpoint(tf, self.logdir, rewrite=chief)
        else:
            latest, kept = None, []
        if latest:
            resume.check_readable(tf, latest)
        if latest and warm_start.is_weights_only(latest):  # import-weights: a new run
            sess.run(tf.global_variables_initializer())
            try:
                count = warm_start.load_weights(sess, latest, warm_start.network_variables(
                    tf.get_default_graph()))
            except (tf.errors.OpError, IndexError, warm_start.WarmStartError) as exc:
                raise resume.damaged_error(latest) or \
                    (exc if isinstance(exc, ValueError) else resume.ResumeError(
                        "%s: cannot read the weights: %s" % (latest, exc)))
            self.echo("started from the weights in %s (%d variables; step 0, new optimizer "
                      "state)" % (latest, count))
            latest = None
        elif latest:
            missing = resume.check_checkpoint(tf, latest, tf.global_variables(),
                                              describe_network(self.cfg))
            resume.restore(tf, sess, self.graph.saver, latest, missing, self.echo)
            # a new Saver forgets the previous run's checkpoints: hand them over, so that
            # keep_checkpoints holds across resumes instead of per process
            self.graph.saver.recover_last_checkpoints(kept)
            self.echo("resumed from %s" % latest)
        else:
            sess.run(tf.global_variables_initializer())
        sess.run(self.rank_ops.broadcast)  # every rank starts from rank 0's weights
        config_path = os.path.join(self.logdir, RUN_CONFIG_FILE)
        if chief and (not latest or not os.path.isfile(config_path)):
            # the set first: a logdir with config.ini and no keypoints.json is MPII's
            if self.keypoints != MPII:
                atomic.write_text(keypoints_path(self.logdir), self.keypoints.to_json() + "\n")
            atomic.write_text(config_path, self.cfg.to_ini())
        return latest

    def _load_validation(self):
        val = self.cfg["Validation"]
        if val["validate_every"] == 0 or self.manifest["counts"].get("val", 0) == 0:
            return None
        # the whole val split unless [Validation] val_persons asks for fewer (the seed's
        # valid_iteration no longer limits it: 10 x batch 4 made a 40-person score)
        limit = val["val_persons"] or None
        if self.keypoints != MPII:
            return self._load_keypoint_validation(limit)
        try:
            gt = read_ground_truth(self.data_dir)
        except EvalFileError as exc:
            self.echo("validation off: %s" % exc)
            return None
        for note in gt.notes:   # persons left out of the score, repeated persons
            self.echo("validation note: %s" % note)
        images, affines = read_val_inputs(self.data_dir, limit)
        n = len(images)
        gt = gt._replace(joints=gt.joints[:n], annotated=gt.annotated[:n],
                         normalizer=gt.normalizer[:n],
                         annolist_index=None if gt.annolist_index is None else gt.annolist_index[:n],
                         person_index=None if gt.person_index is None else gt.person_index[:n])
        return images, affines, gt

    def _load_keypoint_validation(self, limit):
        """Validation of a set other than MPII: its val persons, scored by its metric."""
        if self.keypoints.metric == "pckh":
            self.echo("validation off: the %s set is scored by pckh, which needs MPII's "
                      "joints and head boxes" % self.keypoints.name)
            return None
        try:
            gt = read_keypoint_ground_truth(self.data_dir)
        except EvalFileError as exc:
            self.echo("validation off: %s" % exc)
            return None
        images, affines = read_val_inputs(self.data_dir, limit)
        return images, affines, gt.first(len(images))

    # ------------------------------------------------------------------ pieces
    def _check_savable(self, sess, step, last_checkpoint):
        """Nothing broken is saved: every shard verified, and the weights about to be
        saved are finite and give a finite loss on the last batch (a step's own loss is
        computed before its update, so it cannot tell that the update blew them up)."""
        self.verifier.check(wait=True)
        g = self.graph
        finite = bool(sess.run(self._weights_finite))
        batch = self._last_batch
        if finite and batch is not None:
            # the input tensors themselves are fed (tf.data's too): this batch, not the next
            feed = {tensor: batch[name] for name in ("images", "heatmaps", "joints", "weights")
                    for tensor in [getattr(self.inputs, name, None)]
                    if tensor is not None and name in batch}
            loss = sess.run(g.loss, feed)
            finite = math.isfinite(float(loss))
        if not finite:
            raise TrainingError(
                "the weights after step %d are not finite or give a loss that is not finite "
                "(the update blew them up); stopped without saving - the last good "
                "checkpoint is %s" % (step, last_checkpoint or "none"))

    def _save(self, tf, sess, epoch, batch, last_checkpoint):
        """Write the next checkpoint; a failed write (a full disk) is one TrainingError.

        TensorFlow writes a checkpoint under temporary names and renames it whole, and
        updates the ``checkpoint`` state file and rotates old checkpoints away only
        after that: a failed save leaves the older checkpoints and the state file as
        they were. Its leftovers are removed at once, to give the space back.
        """
        g = self.graph
        sess.run(g.set_position, {g.position_epoch: epoch, g.position_batch: batch})
        try:
            return g.saver.save(sess, os.path.join(self.logdir, "model.ckpt"),
                                global_step=g.global_step, write_meta_graph=False)
        except (tf.errors.OpError, OSError, IOError) as exc:
            resume.remove_temporary_files(self.logdir)
            raise TrainingError(resume.save_failed_message(
                self.logdir, int(sess.run(g.global_step)), exc, last_checkpoint))

    def _run_model(self, sess):
        g = self.graph
        return lambda batch: sess.run(g.eval_heatmaps, {g.eval_images: batch})

    def validate(self, sess):
        images, affines, gt = self.validation
        preds, scores = predict_image_coords(self._run_model(sess), images, affines,
                                             self.batch_size, keypoints=self.keypoints)
        if self.keypoints != MPII:   # a KeypointScore of the set's metric
            return score_predictions(preds, scores, gt)
        result = score_pckh(preds, gt, "tompson", self.cfg["Validation"]["pck_threshold"])
        return result

    def _prediction_montage(self, sess, count=6):
        """Val crops with the joints the model predicts, for TensorBoard."""
        images = self.validation[0][:count]
        heatmaps = run_batched(self._run_model(sess), images, self.batch_size)
        coords, _ = HeatmapCodec(self.input_size, self.heatmap_size).decode_to_crop(heatmaps)
        tiles = [draw.draw_skeleton(img, c, keypoints=self.keypoints)
                 for img, c in zip(images, coords)]
        return draw.montage(tiles, columns=min(len(tiles), 3))

    # ------------------------------------------------------------------ the loop
    def run(self):
        tf = import_tf()
        check_device(self.device)
        self.dist = distributed.backend(self.distributed_name, self.device)
        if self.dist.size > 1:
            self.echo("%s: batch %d per device, global batch %d"
                      % (self.dist.describe(), self.batch_size, self.batch_size * self.dist.size))
        self.validation = None
        self.verifier = _NoVerifier()
        if not self.dist.is_chief:  # the other ranks only read the logdir
            return self._run_locked(tf)
        with folder_lock(self.logdir):  # one writer per logdir, for the whole run
            echo = self._plain_echo = self.echo
            if not self.bar_on:
                self._open_train_log()
            try:
                for name in resume.remove_temporary_files(self.logdir):
                    self.echo("removed %s (left by an interrupted save)" % name)
                _check_logdir_config(self.cfg, self.logdir, self.keypoints)
                self.verifier = ShardVerifier(self.data_dir, self.manifest)
                self.validation = self._load_validation()
                return self._run_locked(tf)
            except Exception as exc:
                if self.train_log is not None:  # why the run stopped, for the log's reader
                    self.train_log.write("stopped: %s" % (
                        str(exc).strip().splitlines() or [type(exc).__name__])[0])
                raise
            finally:
                self.verifier.close()
                self.echo = echo
                if self.train_log is not None:
                    self.train_log.close()
                    self.train_log = None

    def _open_train_log(self):
        """Append to train.log from here on: a header line for this run, the notes
        printed before the logdir was ours, then every line the run prints."""
        self.train_log = TrainLog(self.logdir)
        self.train_log.write("# %s UTC: hgpipe %s train to step %d, %s" % (
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), __version__,
            self.total_steps, describe_network(self.cfg)))
        for line in self._early_lines:
            self.train_log.write(line)
        self.echo = self._echo_and_log

    def _echo_and_log(self, line):
        """Print ``line`` and append it to train.log (only while the bar is off)."""
        self._plain_echo(line)
        self.train_log.write(line)

    def _run_locked(self, tf):
        started = time.time()
        graph = tf.Graph()
        with graph.as_default():
            self._build(tf)
            train = self.cfg["Train"]
            config = session_config(self.device, train["mixed_precision"],
                                    train["precision_mode"])
            if train["deterministic"]:
                make_deterministic(config)
            sess = tf.Session(config=self.dist.session_config(config, self.device))
            try:
                return self._loop(tf, sess, started)
            finally:
                sess.close()
                self.reader.close()

    def _loop(self, tf, sess, started):
        """Steps until ``total_steps`` or a stop signal, then the final checkpoint and the
        report. Each part is one method: :meth:`_start`, :meth:`_step`,
        :meth:`_periodic` (log, save, validate), :meth:`_save_final`, :meth:`_report`."""
        # the handler is in place before the summary writer creates the run's files, so
        # a signal that arrives once they exist is always a clean stop
        with _StopSignal() as stop:
            run = self._start(tf, sess)
            if run is None:
                return self._finished_already()
            try:
                while run.step < self.total_steps:
                    if stop.received and self.dist.size == 1:
                        run.status = "interrupted"
                        break
                    self._step(tf, sess, run, stop)
                    self._periodic(tf, sess, run)
                    if run.any_stop:  # some rank got a signal: all stop after this step
                        run.status = "interrupted"
                        break
                self._save_final(tf, sess, run)
            finally:
                run.bar.close()
                self.prefetcher.close()
        return self._report(tf, sess, run, time.time() - started)

    def _start(self, tf, sess):
        """Restore (or initialise), read the step and data position, open the summary
        writer (rank 0 only), the prefetcher and the progress bar."""
        g = self.graph
        restored = self._restore_or_init(tf, sess)
        # the data position: a data pass (the feeder's "epoch") and a batch within it
        step, data_pass, batch = (int(v) for v in sess.run([g.global_step, g.epoch, g.batch]))
        if restored and step >= self.total_steps and \
                os.path.isfile(os.path.join(self.logdir, SUMMARY_FILE)):
            self._finished_step = step
            return None  # a rerun of a finished run (see _finished_already)
        self._last_batch = None
        writer = tf.summary.FileWriter(os.path.join(self.logdir, "train"),
                                       graph=None if restored else tf.get_default_graph()) \
            if self.dist.is_chief else _NoWriter()
        self.prefetcher = Prefetcher(self.reader.forever(data_pass, batch),
                                     capacity=self.cfg["Train"]["prefetch_batches"])
        self._last_position = (data_pass, batch)
        bar = tqdm(total=self.total_steps, initial=step, unit="step", desc="train",
                   dynamic_ncols=True, disable=not self.bar_on)
        self.step_printer = None
        if not self.bar_on and self.dist.is_chief:
            train = self.cfg["Train"]
            self.step_printer = StepPrinter(step, self.total_steps, self.batch_size,
                                            train["log_every"], train["print_seconds"])
        batches = self._batches() if self.input_mode == "feed" else None
        return _RunState(step, (data_pass, batch), restored, writer, bar, batches)

    def _step(self, tf, sess, run, stop):
        """One training step, timed from asking for its batch to the end of its
        ``Session.run``; a non-finite loss stops the run before anything is saved. A
        stop signal on this rank is passed to every rank with the step."""
        g = self.graph
        t0 = time.perf_counter()
        waited_before = self.prefetcher.wait_seconds
        feed = self.inputs.feed(next(run.batches)[2]) if run.batches is not None else {}
        if stop.received:
            feed[self.rank_ops.stop_flag] = [1.0]
        _, loss, run.stack_losses, run.learning_rate, step, any_stop = self._run_step(
            tf, sess, [g.train_op, g.loss, g.stack_losses, g.learning_rate, g.global_step,
                       self.rank_ops.any_stop], feed, run.last_checkpoint)
        run.step, run.loss, run.any_stop = int(step), float(loss), any_stop[0] > 0
        run.position = self._position_after_last_batch()
        run.step_seconds = time.perf_counter() - t0
        if not math.isfinite(run.loss):
            raise TrainingError(
                "loss became %s at step %d; stopped without saving - the last good "
                "checkpoint is %s" % (run.loss, run.step, run.last_checkpoint or "none"))
        run.step_times.append(run.step_seconds)
        run.step_waits.append(self.prefetcher.wait_seconds - waited_before)
        run.losses.append(run.loss)
        run.bar.update(1)

    def _run_step(self, tf, sess, fetches, feed, last_checkpoint):
        """``sess.run`` of one training step; with several ranks, a failed collective (a
        rank died or stopped) becomes one clear error instead of a traceback."""
        if self.dist.size == 1:
            return sess.run(fetches, feed)
        try:
            return sess.run(fetches, feed)
        except tf.errors.OpError as exc:
            raise TrainingError(
                "%s: a training step failed, most likely because another rank died or "
                "stopped (%s: %s); stopped. The last checkpoint is %s; rerun the same "
                "command to resume every rank from it"
                % (self.dist.describe(), type(exc).__name__,
                   str(exc.message).strip().splitlines()[0] if exc.message else "",
                   last_checkpoint or "none"))

    def _periodic(self, tf, sess, run):
        """What happens every so many steps: log, checkpoint (rank 0), validate."""
        if run.step % self.cfg["Train"]["log_every"] == 0 or run.step == self.total_steps:
            self._log_step(tf, run)
        if self.step_printer is not None and self.step_printer.due(run.step):
            self.echo(self.step_printer.line(run.step, run.loss, run.learning_rate,
                                             run.step_times, run.step_waits))
        self.verifier.check()
        if run.step % self.cfg["Saver"]["saver_step"] == 0 and self.dist.is_chief:
            self._check_savable(sess, run.step, run.last_checkpoint)
            run.last_checkpoint = self._save(tf, sess, run.position[0], run.position[1],
                                             run.last_checkpoint)
        if self.validation and run.step % self.cfg["Validation"]["validate_every"] == 0:
            run.history.append(self._log_validation(tf, sess, run.writer, run.step, run.bar))

    def _log_step(self, tf, run):
        rate, wait = self._rates(run.step_times, run.step_waits)
        run.bar.set_postfix(loss="%.5f" % run.loss, img_s="%.1f" % rate,
                            wait="%.1f%%" % (100 * wait))
        values = {"loss/total": run.loss, "learning_rate": run.learning_rate,
                  "perf/images_per_sec": rate, "perf/input_wait_fraction": wait,
                  "perf/step_time_ms": 1000 * run.step_seconds}
        values.update(("loss/stack%d" % i, v) for i, v in enumerate(run.stack_losses))
        run.writer.add_summary(_scalar_summary(tf, values), run.step)

    def _save_final(self, tf, sess, run):
        """The end-of-run checkpoint (rank 0; also after a stop signal), unless nothing
        changed since the one restored."""
        if (run.step > run.first_step or not run.restored) and self.dist.is_chief:
            position = self._position_after_last_batch() if run.step > run.first_step \
                else run.start_position
            self._check_savable(sess, run.step, run.last_checkpoint)
            run.last_checkpoint = self._save(tf, sess, position[0], position[1],
                                             run.last_checkpoint)

    def _position_after_last_batch(self):
        """Data (pass, batch) after the last batch taken: where a checkpoint resumes."""
        return self._last_position[0], self._last_position[1] + 1

    def _report(self, tf, sess, run, duration):
        """After the loop: the final validation and montage, the ranks' throughput,
        ``train_summary.json`` and the ModelZoo lines (rank 0); returns the summary."""
        if run.status == "interrupted" and self.dist.is_chief:
            self.echo("stopped by signal at step %d; checkpoint saved: %s (rerun the same "
                      "command to resume)" % (run.step, run.last_checkpoint))
        if self.validation and run.status == "completed" and (
                not run.history or run.history[-1]["step"] != run.step):
            run.history.append(self._log_validation(tf, sess, run.writer, run.step, None))
        if self.validation:
            run.writer.add_summary(
                _image_summary(tf, "val/predictions", self._prediction_montage(sess)),
                run.step)
        run.writer.close()
        summary = self._summary(tf, sess, run, duration)
        if self.dist.is_chief:  # rank 0 alone writes and prints the ModelZoo lines
            atomic.write_json(os.path.join(self.logdir, SUMMARY_FILE), summary)
            self.echo("Final Performance images/sec : %.2f" % summary["images_per_sec"])
            self.echo("E2E Training Duration sec : %d" % round(duration))
        return summary

    def _finished_already(self):
        """A rerun of a finished run: nothing to train, its summary stays as it was."""
        import json
        with open(os.path.join(self.logdir, SUMMARY_FILE)) as handle:
            summary = json.load(handle)
        if self.dist.is_chief:
            self.echo("%s: already at step %d of %d; nothing to train (%s kept)"
                      % (self.logdir, self._finished_step, self.total_steps, SUMMARY_FILE))
            self.echo("Final Performance images/sec : %.2f"
                      % (summary.get("images_per_sec") or 0))
            self.echo("E2E Training Duration sec : %d" % round(summary.get("e2e_seconds") or 0))
        return summary

    def _summary(self, tf, sess, run, duration):
        """The summary dict; gathering the ranks' figures is a collective (every rank)."""
        rate, wait = self._rates(run.step_times, run.step_waits)
        per_rank = self._gather_rank_stats(sess, rate, wait, run.step_times)
        rate, wait = distributed.global_throughput(per_rank, self.batch_size)
        if self.dist.size > 1:
            self.echo("%s: %.2f images/sec on this rank, input wait %.1f%%"
                      % (self.dist.describe(), per_rank[self.dist.rank]["images_per_sec"],
                         100 * per_rank[self.dist.rank]["input_wait_fraction"]))
        times, losses = run.step_times, run.losses
        return {
            "status": run.status, "steps_run": len(times), "global_step": run.step,
            "total_steps": self.total_steps, "batch_size": self.batch_size,
            "ranks": self.dist.size, "distributed": self.dist.name,
            "global_batch_size": self.batch_size * self.dist.size, "per_rank": per_rank,
            "images_per_sec": rate, "input_wait_fraction": wait,
            "step_time_ms_median": 1000 * float(np.median(times)) if times else None,
            "first_loss": losses[0] if losses else None,
            "final_loss": float(np.mean(losses[-10:])) if losses else None,
            "validation": run.history, "checkpoint": run.last_checkpoint,
            "e2e_seconds": duration, "device": self.device, "input_mode": self.input_mode,
            "tensorflow": tf.__version__, "hgpipe": __version__,
            "python": "%d.%d.%d" % sys.version_info[:3],
        }

    def _gather_rank_stats(self, sess, rate, wait, step_times):
        """Every rank's throughput figures (a list of dicts, by rank), via the backend."""
        timed = step_times[1:]
        mine = [rate, wait, float(np.sum(timed)) if timed else 0.0, float(len(timed))]
        rows = sess.run(self.rank_ops.gathered, {self.rank_ops.stats: mine})
        return [dict(zip(distributed.RANK_STATS, (float(v) for v in row))) for row in rows]

    def _rates(self, step_times, step_waits):
        """images/s and input-wait fraction over the training steps only.

        A step's time runs from asking for its batch to the end of its ``Session.run``;
        the first step (graph warm-up) is left out, and so are validations and
        checkpoints, which are not the input pipeline's business.
        """
        if len(step_times) < 2:
            return 0.0, 0.0
        elapsed = float(np.sum(step_times[1:]))
        return ((len(step_times) - 1) * self.batch_size / elapsed,
                float(np.sum(step_waits[1:])) / elapsed)

    def _log_validation(self, tf, sess, writer, step, bar):
        result = self.validate(sess)
        if self.keypoints != MPII:
            return self._log_keypoint_validation(tf, result, writer, step, bar)
        mean = float(result.columns[result.summary_name])
        values = {"val/PCKh_mean": mean}
        values.update(("val/PCKh_%s" % name, v) for name, v in result.columns.items())
        writer.add_summary(_scalar_summary(tf, values), step)
        scored, total = len(self.validation[0]), self.manifest["counts"]["val"]
        line = "step %d: val PCKh@%.1f %.2f (%s)" % (
            step, result.threshold, mean, "%d persons" % scored if scored == total
            else "%d of %d persons, subset" % (scored, total))
        (bar.write if bar is not None and self.bar_on else self.echo)(line)
        return {"step": step, "pckh": mean,
                "columns": {k: float(v) for k, v in result.columns.items()}}

    def _log_keypoint_validation(self, tf, result, writer, step, bar):
        """A set other than MPII: its metric's total (PCK@0.2 of the torso, OKS AP)."""
        name = {"pck_torso": "PCK_torso", "oks": "OKS_AP"}[result.metric]
        values = {"val/%s" % name: result.total}
        if result.metric == "oks":
            values.update(("val/OKS_%s" % k, v) for k, v in result.details.items())
        writer.add_summary(_scalar_summary(tf, values), step)
        scored, total = len(self.validation[0]), self.manifest["counts"]["val"]
        line = "step %d: val %s %.2f (%s)" % (
            step, "PCK@%g torso" % result.details["threshold"] if result.metric == "pck_torso"
            else "OKS AP", result.total, "%d persons" % scored if scored == total
            else "%d of %d persons, subset" % (scored, total))
        (bar.write if bar is not None and self.bar_on else self.echo)(line)
        return {"step": step, "metric": result.metric, "score": result.total,
                "details": {k: float(v) for k, v in result.details.items()}}
