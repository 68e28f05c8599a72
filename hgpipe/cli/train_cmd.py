"""``hgpipe train``: train a Stacked Hourglass on prepared shards."""
import sys

import click

from hgpipe.cli.options import DEVICE, config_options, user_errors
from hgpipe.config import describe_network


@click.command("train", short_help="Train a Stacked Hourglass on prepared shards.")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False),
              help="Shards directory written by `hgpipe prepare`.")
@click.option("--logdir", required=True, type=click.Path(file_okay=False),
              help="Checkpoints, TensorBoard summaries, config.ini and train_summary.json.")
@click.option("--device", type=DEVICE, default=None,
              help="Where to run: cpu, gpu (or cuda), npu (or ascend; Ascend via "
                   "npu_bridge), any case [default: [Train] device, cpu].")
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
    Without a terminal (nohup, SLURM) it prints plain step lines and keeps
    LOGDIR/train.log.

    Without --config the built-in defaults apply (4 stacks x 256 features,
    200 x 1000 steps); the command's first line says so (and train.log keeps it).
    Pick a recipe from configs/ instead.

    \b
    Examples:
      hgpipe train --config configs/tiny.cfg --data runs/demo/shards \\
          --logdir runs/demo/train --steps 100
      hgpipe train --config configs/hg2.cfg --data shards --logdir runs/hg2 --device gpu
      nohup hgpipe train --config configs/newell_hg8.cfg --data shards --logdir runs/hg8 &
    """
    if resume_from and not resume:
        raise click.UsageError("--resume-from and --no-resume ask for opposite things")
    notes = [] if cfg.sources else [no_config_note(cfg, steps)]
    for note in notes:  # before anything loads, so a long import does not hide it
        click.echo(note)
    with user_errors():
        from hgpipe import api
        try:  # the function hgpipe.train_model is: one code path for both
            summary = api.train_model(data_dir, logdir, cfg, steps=steps, device=device,
                                      resume=resume, input_mode=input_mode,
                                      distributed=distributed_backend, echo=click.echo,
                                      progress=True, resume_from=resume_from, notes=notes)
        except Exception as exc:
            # TrainingError lives with the trainer, which loads TensorFlow: looked up only
            # once the trainer was imported, so a wrong --data still fails before TF loads
            trainer = sys.modules.get("hgpipe.train.trainer")
            if trainer is not None and isinstance(exc, trainer.TrainingError):
                raise click.ClickException(str(exc))
            raise
    if summary["status"] == "interrupted":
        sys.exit(130)


def no_config_note(cfg, steps):
    """The one line a run without --config prints: which network and how long."""
    train = cfg["Train"]
    total = steps if steps is not None else train["nEpochs"] * train["epoch_size"]
    return ("no --config: training %s for %s steps, from the built-in defaults and any "
            "--set (pick a recipe in configs/, e.g. --config configs/hg2.cfg)"
            % (describe_network(cfg), format(total, ",")))
