"""``hgpipe bench``: online loader vs prepare vs feed vs train, in one table."""
import click

from hgpipe.cli.options import echo_err, user_errors


@click.command("bench", short_help="Measure input pipeline and training speed, in one table.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False),
              help="Shards directory to feed from [default: the shards the bench prepares].")
@click.option("--mpii", "mpii_dir", type=click.Path(file_okay=False),
              help="Dataset folder (images/ + annotations) for the online and prepare rows "
                   "[default: ../shared/mpii beside the checkout, else data/demo].")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Config for prepare/feed (crop size, heatmap storage) [default: "
                   "built-in defaults: 256 px, heatmaps uncompressed; the other storage "
                   "is measured beside it]. Variants are always 8.")
@click.option("--train-config", "train_configs", multiple=True,
              type=click.Path(dir_okay=False),
              help="Config(s) to train a few steps [default: configs/tiny.cfg and "
                   "configs/hg2.cfg of the checkout] (repeatable).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              help="Also write the rows (+ versions, load average) as JSON here.")
@click.option("--quick", is_flag=True,
              help="About a minute: fewer samples and steps (numbers are rougher).")
@click.option("--skip", multiple=True,
              type=click.Choice(["online", "prepare", "feed", "train", "distributed",
                                 "predict"]),
              help="Leave out a phase (repeatable), e.g. --skip train (which also "
                   "leaves out distributed, 2 Horovod processes vs 1 when Horovod is "
                   "installed, and predict, a folder run vs a process per image, which "
                   "time the train phase's model).")
@click.option("--workdir", type=click.Path(file_okay=False, exists=True),
              help="Where the scratch shards go [default: the system temp dir]; its "
                   "filesystem is the one the cold-cache rows read.")
@click.option("--keep", is_flag=True, help="Keep the scratch directory.")
def bench_command(data_dir, mpii_dir, config_path, train_configs, json_path, quick, skip,
                  workdir, keep):
    """Measure each stage of the input pipeline and training against its target.

    Rows: the peers' online loader (JPEG decode + augment + heatmaps per sample, 1
    core); `prepare` samples/s per core at 8 variants, 1 worker and all cores, bytes
    on disk, heatmaps gzip vs none; the shard feed (ShardBatches + Prefetcher, no model)
    warm and cold at batch 4 and 16 next to the memory-copy limit and the old block
    reader; how freshly batches mix from epoch to epoch; a few training steps
    of each train config with input wait and GFLOP/s; with Horovod installed, the first
    train config on 2 Horovod/Gloo processes vs 1 (scaling efficiency) and its gradient
    all-reduce time against the step time; `hgpipe predict` over a folder in one
    process against one process per image (the shell loop it replaces), on the
    trained model. Progress goes to stderr, the Markdown table to stdout. The machine's load is part of the numbers: run it twice.

    \b
    Examples:
      hgpipe bench --quick
      hgpipe bench --data shards --skip online --skip prepare --json bench.json
    """
    from hgpipe.bench.report import markdown_table, write_json
    from hgpipe.bench.runner import DEFAULT_SIZES, QUICK_SIZES, Bench
    from hgpipe.config import load_config
    with user_errors():
        cfg = load_config(config_path)
        bench = Bench(cfg, mpii_dir=mpii_dir, data_dir=data_dir,
                      train_configs=list(train_configs) or None,
                      sizes=QUICK_SIZES if quick else DEFAULT_SIZES, skip=skip,
                      work_dir=workdir, keep=keep, log=echo_err)
        rows, meta, notes = bench.run()
        meta["command"] = "hgpipe bench" + (" --quick" if quick else "")
        click.echo(markdown_table(rows))
        click.echo("")
        for note in notes:
            click.echo("- %s" % note)
        if json_path:
            write_json(json_path, rows, meta, notes)
            echo_err("wrote %s" % json_path)
