"""What fixed geometric variants cost: offline ``variants`` K against fresh device geometry.

One table, one command (``bin/variants_cost``): on the demo data with the tiny network
(``configs/tiny.cfg``), shards are prepared once per setting - offline ``variants`` 1,
4, 8, 32 and ``[Prepare] geometry = device`` - and the same training (same steps, batch,
schedule, device flip and colour for every row, so that only the geometry differs) runs
with several seeds on each; the table gives val PCKh (mean and spread over the seeds),
the median step time and the train bytes per person. Each run is an ordinary
``hgpipe train`` (:class:`hgpipe.train.trainer.Trainer`), validated once at its end.
"""
import argparse
import copy
import json
import os
import sys

import numpy as np

from hgpipe import atomic
from hgpipe.config import load_config

DEFAULT_VARIANTS = (1, 4, 8, 32)


def _settings(cfg, geometry, variants, steps, seed):
    cfg = copy.deepcopy(cfg)
    # geometry is the only difference: flip and colour are drawn on the device everywhere
    for key, value in (("Prepare.flip", False), ("Prepare.color_jitter", 0.0),
                       ("Train.device_flip", True), ("Train.device_color", 0.2),
                       ("Prepare.geometry", geometry), ("Prepare.variants", variants),
                       ("Train.seed", seed), ("Validation.validate_every", steps),
                       ("Saver.saver_step", 10 ** 9)):
        section, name = key.split(".")
        cfg.set(section, name, value)
    return cfg


def bytes_per_person(shards_dir):
    """Train shard bytes / train persons of a prepared folder."""
    with open(os.path.join(shards_dir, "manifest.json")) as handle:
        manifest = json.load(handle)
    train = [s for s in manifest["shards"] if s["split"] == "train"]
    per_person = 1 if manifest.get("geometry") == "device" else \
        manifest["config"]["Prepare"]["variants"]
    persons = manifest["counts"]["train"] / per_person
    return sum(s["bytes"] for s in train) / persons


def run_table(config, mpii, out, steps, seeds, variants, echo=print):
    from hgpipe.data.prepare import prepare_dataset
    from hgpipe.train.trainer import Trainer
    base = load_config(config)
    rows = []
    settings = [("offline", v) for v in variants] + [("device", 1)]
    for geometry, k in settings:
        name = "device" if geometry == "device" else "variants_%d" % k
        shards_dir = os.path.join(out, "shards_" + name)
        cfg = _settings(base, geometry, k, steps, 0)
        prepare_dataset(cfg, mpii, shards_dir, workers=1, echo=lambda *a, **k: None)
        scores, step_ms = [], []
        for seed in seeds:
            cfg = _settings(base, geometry, k, steps, seed)
            logdir = os.path.join(out, "runs", "%s_seed%d" % (name, seed))
            summary = Trainer(cfg, shards_dir, logdir, steps=steps, resume=False,
                              echo=lambda *a: None, progress=False).run()
            scores.append(summary["validation"][-1]["pckh"])
            step_ms.append(summary["step_time_ms_median"])
            echo("%s seed %d: PCKh %.2f, step %.0f ms" % (name, seed, scores[-1], step_ms[-1]))
        rows.append({"geometry": "fresh (device)" if geometry == "device"
                     else "offline, variants %d" % k,
                     "pckh": scores, "pckh_mean": float(np.mean(scores)),
                     "pckh_std": float(np.std(scores, ddof=1)) if len(scores) > 1 else 0.0,
                     "step_ms": float(np.median(step_ms)),
                     "bytes_per_person": bytes_per_person(shards_dir)})
    return rows


def markdown(rows, steps, seeds):
    lines = ["| geometry | val PCKh mean | spread (sd, %d seeds) | per seed | step time "
             "| train bytes/person |" % len(seeds), "| --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        lines.append("| %s | %.2f | %.2f | %s | %.0f ms | %s |" % (
            row["geometry"], row["pckh_mean"], row["pckh_std"],
            " / ".join("%.2f" % v for v in row["pckh"]), row["step_ms"],
            "{:,.0f}".format(row["bytes_per_person"])))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/tiny.cfg")
    parser.add_argument("--mpii", default="data/demo")
    parser.add_argument("--out", default="runs/variants_cost")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--variants", type=int, nargs="+", default=list(DEFAULT_VARIANTS))
    args = parser.parse_args(argv)
    seeds = list(range(args.seeds))
    rows = run_table(args.config, args.mpii, args.out, args.steps, seeds, args.variants,
                     echo=lambda line: print(line, flush=True))
    atomic.write_json(os.path.join(args.out, "variants_cost.json"),
                      {"steps": args.steps, "seeds": seeds, "rows": rows})
    print(markdown(rows, args.steps, seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
