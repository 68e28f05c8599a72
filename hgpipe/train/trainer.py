"""``hgpipe train``: the Session loop, fed by a prefetch thread, measured at every step.

Per step it records the wall time and the time spent waiting for input; the ratio of
the two is the input-wait fraction, the number that says whether the device starved.
Checkpoints carry the global step (hence the learning rate) and the data position, so an
interrupted run - Ctrl-C, SIGTERM from a scheduler, a crash - resumes exactly. A NaN/Inf
loss stops the run before anything is saved, leaving the last good checkpoint intact.
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
from hgpipe.data import shards
from hgpipe.eval.inference import predict_image_coords, read_val_inputs, run_batched
from hgpipe.eval.pckh import score_pckh
from hgpipe.eval.pred_files import EvalFileError, read_ground_truth
from hgpipe.tf_compat import import_tf
from hgpipe.train import distributed, warm_start
from hgpipe.train.determinism import make_deterministic
from hgpipe.train.devices import check_device, session_config
from hgpipe.train.feeder import Prefetcher, ShardBatches
from hgpipe.train.graph import DatasetInput, FeedInput, build_train_graph
from hgpipe.train.optimizers import optimizer_state

CONFIG_FILE = "config.ini"
SUMMARY_FILE = "train_summary.json"
_NETWORK_KEYS = ("nStacks", "nFeats", "nModules", "nLow", "tiny", "stem", "input_mean")


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


def _check_logdir_config(cfg, logdir):
    """A logdir belongs to one network and optimizer: refuse to resume another."""
    from hgpipe.config import load_config
    path = os.path.join(logdir, CONFIG_FILE)
    if os.path.isfile(path):
        previous = load_config(path)
        for key in _NETWORK_KEYS:
            if previous["Network"][key] != cfg["Network"][key]:
                raise TrainingError(
                    "%s: this logdir trained a network with %s=%r, the config asks for %r; "
                    "use another --logdir" % (path, key, previous["Network"][key],
                                              cfg["Network"][key]))
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


class _NoWriter(object):
    """The summary writer of ranks other than 0: they write nothing."""

    def add_summary(self, *args):
        pass

    def close(self):
        pass


class Trainer(object):
    """One training run in ``logdir``; ``run()`` returns the summary dict."""

    def __init__(self, cfg, data_dir, logdir, device=None, steps=None, resume=True,
                 input_mode="feed", echo=print, progress=True, distributed_backend=None):
        self.cfg = cfg
        self.data_dir = data_dir
        self.logdir = logdir
        self.device = device or cfg["Train"]["device"]
        self.resume = resume
        self.input_mode = input_mode
        self.echo = echo
        self.progress = progress
        train = cfg["Train"]
        # none | horovod | hccl; the backend itself is made in run() (it imports Horovod)
        self.distributed_name = distributed_backend or train["distributed"]
        self.dist = distributed.SingleProcess()
        self.batch_size = train["batch_size"]
        self.total_steps = steps if steps is not None else train["nEpochs"] * train["epoch_size"]
        self.manifest = shards.load_manifest(data_dir)
        self.input_size = self.manifest["input_size"]
        self.heatmap_size = self.manifest["heatmap_size"]
        for key, value in (("img_size", self.input_size), ("hm_size", self.heatmap_size)):
            if cfg["DataSetHG"][key] != value:
                echo("note: shards were made with %s=%d; using it (config says %d)"
                     % (key, value, cfg["DataSetHG"][key]))
                cfg.set("DataSetHG", key, value)

    # ------------------------------------------------------------------ set-up
    def _build(self, tf):
        train = self.cfg["Train"]
        tf.set_random_seed(train["seed"])
        self.reader = ShardBatches(self.data_dir, "train", self.batch_size, seed=train["seed"],
                                   capacity=train["prefetch_batches"],
                                   rank=self.dist.rank, num_ranks=self.dist.size)
        if self.input_mode == "feed":
            inputs = FeedInput(self.batch_size, self.input_size, self.heatmap_size)
        elif self.input_mode == "dataset":
            inputs = DatasetInput(lambda: (b for _e, _b, b in self._batches()),
                                  self.batch_size, self.input_size, self.heatmap_size)
        else:
            raise ValueError("input mode must be feed or dataset, got %r" % self.input_mode)
        self.inputs = inputs
        self.graph = build_train_graph(self.cfg, inputs, self.device, self.dist)
        self.rank_ops = distributed.RankOps(tf, self.dist)

    def _batches(self):
        for item in iter(self.prefetcher.get, None):
            self._last_position = item[:2]
            yield item

    def _restore_or_init(self, tf, sess):
        latest = tf.train.latest_checkpoint(self.logdir) if self.resume else None
        if latest and warm_start.is_weights_only(latest):  # import-weights: a new run
            sess.run(tf.global_variables_initializer())
            count = warm_start.load_weights(sess, latest, warm_start.network_variables(
                tf.get_default_graph()))
            self.echo("started from the weights in %s (%d variables; step 0, new optimizer "
                      "state)" % (latest, count))
            latest = None
        elif latest:
            self.graph.saver.restore(sess, latest)
            # a new Saver forgets the previous run's checkpoints: hand them over, so that
            # keep_checkpoints holds across resumes instead of per process
            state = tf.train.get_checkpoint_state(self.logdir)
            if state is not None:
                self.graph.saver.recover_last_checkpoints(
                    list(state.all_model_checkpoint_paths))
            self.echo("resumed from %s" % latest)
        else:
            sess.run(tf.global_variables_initializer())
        sess.run(self.rank_ops.broadcast)  # every rank starts from rank 0's weights
        return latest

    def _load_validation(self):
        val = self.cfg["Validation"]
        if val["validate_every"] == 0 or self.manifest["counts"].get("val", 0) == 0:
            return None
        # the whole val split unless [Validation] val_persons asks for fewer (the seed's
        # valid_iteration no longer limits it: 10 x batch 4 made a 40-person score)
        limit = val["val_persons"] or None
        try:
            gt = read_ground_truth(self.data_dir)
        except EvalFileError as exc:
            self.echo("validation off: %s" % exc)
            return None
        images, affines = read_val_inputs(self.data_dir, limit)
        n = len(images)
        gt = gt._replace(joints=gt.joints[:n], annotated=gt.annotated[:n],
                         normalizer=gt.normalizer[:n],
                         annolist_index=None if gt.annolist_index is None else gt.annolist_index[:n],
                         person_index=None if gt.person_index is None else gt.person_index[:n])
        return images, affines, gt

    # ------------------------------------------------------------------ pieces
    def _save(self, sess, epoch, batch):
        g = self.graph
        sess.run(g.set_position, {g.position_epoch: epoch, g.position_batch: batch})
        return g.saver.save(sess, os.path.join(self.logdir, "model.ckpt"),
                            global_step=g.global_step, write_meta_graph=False)

    def _run_model(self, sess):
        g = self.graph
        return lambda batch: sess.run(g.eval_heatmaps, {g.eval_images: batch})

    def validate(self, sess):
        images, affines, gt = self.validation
        preds, _ = predict_image_coords(self._run_model(sess), images, affines,
                                        self.batch_size)
        result = score_pckh(preds, gt, "tompson", self.cfg["Validation"]["pck_threshold"])
        return result

    def _prediction_montage(self, sess, count=6):
        """Val crops with the joints the model predicts, for TensorBoard."""
        images = self.validation[0][:count]
        heatmaps = run_batched(self._run_model(sess), images, self.batch_size)
        coords, _ = HeatmapCodec(self.input_size, self.heatmap_size).decode_to_crop(heatmaps)
        tiles = [draw.draw_skeleton(img, c) for img, c in zip(images, coords)]
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
        if self.dist.is_chief:  # the other ranks only read the logdir
            if not os.path.isdir(self.logdir):
                os.makedirs(self.logdir)
            _check_logdir_config(self.cfg, self.logdir)
            atomic.write_text(os.path.join(self.logdir, CONFIG_FILE), self.cfg.to_ini())
            self.validation = self._load_validation()
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
        g = self.graph
        restored = self._restore_or_init(tf, sess)
        step, epoch, batch = (int(v) for v in sess.run([g.global_step, g.epoch, g.batch]))
        first_step = step
        writer = tf.summary.FileWriter(os.path.join(self.logdir, "train"),
                                       graph=None if restored else tf.get_default_graph()) \
            if self.dist.is_chief else _NoWriter()
        self.prefetcher = Prefetcher(self.reader.forever(epoch, batch),
                                     capacity=self.cfg["Train"]["prefetch_batches"])
        self._last_position = (epoch, batch)
        batches = self._batches() if self.input_mode == "feed" else None
        train_cfg, val_cfg, saver_cfg = self.cfg["Train"], self.cfg["Validation"], self.cfg["Saver"]
        fetches = [g.train_op, g.loss, g.stack_losses, g.learning_rate, g.global_step,
                   self.rank_ops.any_stop]
        step_times, step_waits, losses, history = [], [], [], []
        last_checkpoint = restored
        status = "completed"
        bar = tqdm(total=self.total_steps, initial=step, unit="step", desc="train",
                   dynamic_ncols=True, disable=not self.progress or None)
        try:
            with _StopSignal() as stop:
                while step < self.total_steps:
                    if stop.received and self.dist.size == 1:
                        status = "interrupted"
                        break
                    t0 = time.perf_counter()
                    waited_before = self.prefetcher.wait_seconds
                    if batches is not None:
                        data_epoch, data_batch, data = next(batches)
                        feed = self.inputs.feed(data)
                    else:
                        feed = {}
                    if stop.received:
                        feed[self.rank_ops.stop_flag] = [1.0]
                    _, loss, stack_losses, lr, step, any_stop = self._step(
                        tf, sess, fetches, feed, last_checkpoint)
                    step, loss = int(step), float(loss)
                    position = (self._last_position[0], self._last_position[1] + 1)
                    dt = time.perf_counter() - t0
                    if not math.isfinite(loss):
                        raise TrainingError(
                            "loss became %s at step %d; stopped without saving - the last "
                            "good checkpoint is %s" % (loss, step, last_checkpoint or "none"))
                    step_times.append(dt)
                    step_waits.append(self.prefetcher.wait_seconds - waited_before)
                    losses.append(float(loss))
                    bar.update(1)
                    if step % train_cfg["log_every"] == 0 or step == self.total_steps:
                        rate, wait = self._rates(step_times, step_waits)
                        bar.set_postfix(loss="%.5f" % loss, img_s="%.1f" % rate,
                                        wait="%.1f%%" % (100 * wait))
                        values = {"loss/total": loss, "learning_rate": lr,
                                  "perf/images_per_sec": rate, "perf/input_wait_fraction": wait,
                                  "perf/step_time_ms": 1000 * dt}
                        values.update(("loss/stack%d" % i, v) for i, v in enumerate(stack_losses))
                        writer.add_summary(_scalar_summary(tf, values), step)
                    if step % saver_cfg["saver_step"] == 0 and self.dist.is_chief:
                        last_checkpoint = self._save(sess, *position)
                    if self.validation and step % val_cfg["validate_every"] == 0:
                        history.append(self._log_validation(tf, sess, writer, step, bar))
                    if any_stop[0] > 0:  # some rank got a signal: all stop after this step
                        status = "interrupted"
                        break
            final_position = (self._last_position[0], self._last_position[1] + 1) \
                if step > first_step else (epoch, batch)
            if (step > first_step or not restored) and self.dist.is_chief:
                last_checkpoint = self._save(sess, *final_position)
        finally:
            bar.close()
            self.prefetcher.close()
        duration = time.time() - started
        if status == "interrupted" and self.dist.is_chief:
            self.echo("stopped by signal at step %d; checkpoint saved: %s (rerun the same "
                      "command to resume)" % (step, last_checkpoint))
        if self.validation and status == "completed" and (
                not history or history[-1]["step"] != step):
            history.append(self._log_validation(tf, sess, writer, step, None))
        montage = self._prediction_montage(sess) if self.validation else None
        if montage is not None:
            writer.add_summary(_image_summary(tf, "val/predictions", montage), step)
        writer.close()
        rate, wait = self._rates(step_times, step_waits)
        per_rank = self._gather_rank_stats(sess, rate, wait, step_times)
        rate, wait = distributed.global_throughput(per_rank, self.batch_size)
        if self.dist.size > 1:
            self.echo("%s: %.2f images/sec on this rank, input wait %.1f%%"
                      % (self.dist.describe(), per_rank[self.dist.rank]["images_per_sec"],
                         100 * per_rank[self.dist.rank]["input_wait_fraction"]))
        summary = {
            "status": status, "steps_run": len(step_times), "global_step": step,
            "total_steps": self.total_steps, "batch_size": self.batch_size,
            "ranks": self.dist.size, "distributed": self.dist.name,
            "global_batch_size": self.batch_size * self.dist.size, "per_rank": per_rank,
            "images_per_sec": rate, "input_wait_fraction": wait,
            "step_time_ms_median": 1000 * float(np.median(step_times)) if step_times else None,
            "first_loss": losses[0] if losses else None,
            "final_loss": float(np.mean(losses[-10:])) if losses else None,
            "validation": history, "checkpoint": last_checkpoint,
            "e2e_seconds": duration, "device": self.device, "input_mode": self.input_mode,
            "tensorflow": tf.__version__, "hgpipe": __version__,
            "python": "%d.%d.%d" % sys.version_info[:3],
        }
        if self.dist.is_chief:  # rank 0 alone writes and prints the ModelZoo lines
            atomic.write_json(os.path.join(self.logdir, SUMMARY_FILE), summary)
            self.echo("Final Performance images/sec : %.2f" % rate)
            self.echo("E2E Training Duration sec : %d" % round(duration))
        return summary

    def _step(self, tf, sess, fetches, feed, last_checkpoint):
        """One training step; with several ranks, a failed collective (a rank died or
        stopped) becomes one clear error instead of a traceback."""
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
        mean = float(result.columns[result.summary_name])
        values = {"val/PCKh_mean": mean}
        values.update(("val/PCKh_%s" % name, v) for name, v in result.columns.items())
        writer.add_summary(_scalar_summary(tf, values), step)
        scored, total = len(self.validation[0]), self.manifest["counts"]["val"]
        line = "step %d: val PCKh@%.1f %.2f (%s)" % (
            step, result.threshold, mean, "%d persons" % scored if scored == total
            else "%d of %d persons, subset" % (scored, total))
        (bar.write if bar is not None else self.echo)(line)
        return {"step": step, "pckh": mean,
                "columns": {k: float(v) for k, v in result.columns.items()}}
