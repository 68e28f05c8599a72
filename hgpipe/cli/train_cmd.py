"""``hgpipe train``: train a Stacked Hourglass on prepared shards."""
import sys

import click

from hgpipe.cli.options import config_options, user_errors
from hgpipe.data.shards import load_manifest


@click.command("train")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False),
              help="Shards directory written by `hgpipe prepare`.")
@click.option("--logdir", required=True, type=click.Path(file_okay=False),
              help="Checkpoints, TensorBoard summaries, config.ini and train_summary.json.")
@click.option("--device", type=click.Choice(["cpu", "gpu", "npu"]), default=None,
              help="Where to run [default: [Train] device, cpu].")
@click.option("--steps", type=click.IntRange(1), default=None,
              help="Train up to this global step [default: nEpochs x epoch_size].")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Continue from the latest checkpoint in --logdir.")
@click.option("--resume-from", "resume_from", metavar="CHECKPOINT", default=None,
              help="Continue from this checkpoint of --logdir (e.g. model.ckpt-2) instead "
                   "of the latest, when the latest is damaged; the run saves the later "
                   "steps again.")
@click.option("--input", "input_mode", type=click.Choice(["feed", "dataset"]),
              default="feed", show_default=True,
              help="feed: prefetch thread + feed_dict; dataset: tf.data over the same reader.")
@click.option("--distributed", "distributed_backend",
              type=click.Choice(["none", "horovod", "hccl"]), default=None,
              help="Data parallel over ranks: horovod (launch with horovodrun, gpu/cpu) or "
                   "hccl (Ascend, one process per NPU: bin/train_*_8p.sh) "
                   "[default: [Train] distributed, none].")
@config_options
def train_command(cfg, data_dir, logdir, device, steps, resume, resume_from, input_mode,
                  distributed_backend):
    """Train with [Train] optimizer and lr_schedule (default: TF's RMSProp, 2.5e-4 x0.96
    every 2000 steps).

    A background thread reads shuffled shard batches ahead of the device; each step's
    wall time and input wait are measured. Checkpoints every [Saver] saver_step steps,
    at the end and on Ctrl-C/SIGTERM; rerunning the same command resumes. Ends with
    the ModelZoo lines `Final Performance images/sec` and `E2E Training Duration sec`.
    """
    if resume_from and not resume:
        raise click.UsageError("--resume-from and --no-resume ask for opposite things")
    with user_errors():
        load_manifest(data_dir)  # a wrong --data fails here, before TensorFlow loads
        if cfg["Train"]["deterministic"]:
            from hgpipe.train.determinism import request_op_determinism
            request_op_determinism()  # TensorFlow reads it once, at import
        from hgpipe.train.trainer import Trainer, TrainingError
        try:
            summary = Trainer(cfg, data_dir, logdir, device=device, steps=steps,
                              resume=resume, input_mode=input_mode, echo=click.echo,
                              distributed_backend=distributed_backend,
                              resume_from=resume_from).run()
        except TrainingError as exc:
            raise click.ClickException(str(exc))
    if summary["status"] == "interrupted":
        sys.exit(130)
