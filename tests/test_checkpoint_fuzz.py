"""Fuzzing the checkpoint reader: seeded mutations of a tiny model's ``.index`` and
``.data`` files, restored the way ``pck``/``predict``/``export`` restore
(:func:`hgpipe.eval.checkpoint.restore_network`) and the way ``train`` resumes
(:mod:`hgpipe.train.resume`). Every case must end in a restore or one CheckpointError /
ResumeError line naming a file of the case, never another exception, a crash, a hang
or memory growth past a bound.

The cases run in a subprocess (this file is its script), so a crash in TensorFlow's
native reader fails the test with the seed instead of killing pytest, and a hang is a
timeout. The counts are in docs/bad-input.md.
"""
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:  # when run as the worker script
    sys.path.insert(0, REPO_ROOT)

CASES = 300
SEED = 19
MEMORY_BOUND_MB = 200  # growth of the worker's peak RSS over all cases
TINY = ["DataSetHG.img_size=64", "DataSetHG.hm_size=16", "Network.nStacks=1",
        "Network.nFeats=8", "Network.nLow=1"]


def mutate(data, rng):
    """One seeded mutation of ``data`` (bytes): bit flips, overwritten runs, a cut,
    garbage appended, a run deleted or duplicated."""
    data = bytearray(data)
    kind = rng.choice(["flip", "flip", "overwrite", "extreme", "truncate", "append",
                       "delete", "duplicate"])
    if not data:
        kind = "append"
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    elif kind in ("overwrite", "extreme"):
        start = rng.randrange(len(data))
        run = rng.randint(1, 16)
        for i in range(start, min(len(data), start + run)):
            data[i] = rng.randrange(256) if kind == "overwrite" else rng.choice([0, 0x7f,
                                                                                0xff])
    elif kind == "truncate":
        del data[rng.randrange(len(data)):]
    elif kind == "append":
        data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    else:
        start = rng.randrange(len(data))
        run = data[start:start + rng.randint(1, 256)]
        if kind == "delete":
            del data[start:start + len(run)]
        else:
            data[start:start] = run
    return bytes(data), kind


def _peak_rss_mb():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024.0


def run_cases(workdir, seed, cases):
    """The worker: make the model, mutate, restore; returns the summary dict."""
    from hgpipe.config import describe_network, load_config
    from hgpipe.eval.checkpoint import (CheckpointError, check_variables_in_checkpoint,
                                        restore_network)
    from hgpipe.model.inference import build_inference_graph, model_kwargs
    from hgpipe.tf_compat import import_tf
    from hgpipe.train import resume
    tf = import_tf()
    cfg = load_config(None, TINY)
    graph = tf.Graph()
    with graph.as_default():
        build_inference_graph(model_kwargs(cfg), 64, "uint8", None)
        variables = tf.global_variables()
        saver = tf.train.Saver(variables)
        session = tf.Session(graph=graph)
        session.run(tf.global_variables_initializer())
        base = saver.save(session, os.path.join(workdir, "base", "model.ckpt"),
                          global_step=1, write_meta_graph=False)
        originals = {suffix: open(base + suffix, "rb").read()
                     for suffix in (".index", ".data-00000-of-00001")}
        case_dir = os.path.join(workdir, "case")
        os.makedirs(case_dir)
        prefix = os.path.join(case_dir, "model.ckpt-1")
        rng = random.Random(seed)
        counts = {"cases": 0, "restored": 0, "refused": 0, "index": 0, "data": 0,
                  "both": 0}
        kinds = {}
        slowest = 0.0
        rss_start = _peak_rss_mb()
        for case in range(cases):
            target = rng.choice(["index", "index", "data", "data", "both"])
            for suffix, data in originals.items():
                if target == "both" or suffix.startswith("." + target):
                    data, kind = mutate(data, rng)
                    kinds[kind] = kinds.get(kind, 0) + 1
                with open(prefix + suffix, "wb") as out:
                    out.write(data)
            counts[target] += 1
            started = time.time()
            for path in ("eval", "train"):
                try:
                    if path == "eval":
                        check_variables_in_checkpoint(prefix, variables, cfg)
                        restore_network(session, saver, prefix, cfg)
                    else:
                        resume.check_readable(tf, prefix)
                        missing = resume.check_checkpoint(tf, prefix, variables,
                                                          describe_network(cfg))
                        resume.restore(tf, session, saver, prefix, missing, lambda _: None)
                    counts["restored"] += 1
                except (CheckpointError, resume.ResumeError) as exc:
                    message = str(exc)
                    if "\n" in message or not message.startswith(case_dir):
                        raise AssertionError("case %d (seed %d, %s): not one line naming "
                                             "a file: %r" % (case, seed, path, message))
                    counts["refused"] += 1
            slowest = max(slowest, time.time() - started)
            counts["cases"] += 1
        session.close()
    counts.update(kinds=kinds, slowest_case_seconds=round(slowest, 3),
                  rss_growth_mb=round(_peak_rss_mb() - rss_start, 1))
    return counts


def test_mutated_checkpoints_restore_or_fail_in_one_line(tmp_path):
    workdir = str(tmp_path)
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), workdir, str(SEED),
                           str(CASES)], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=600)
    stderr = proc.stderr.decode()
    assert proc.returncode == 0, stderr[-3000:]
    summary = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    assert summary["cases"] == CASES
    assert summary["restored"] + summary["refused"] == 2 * CASES
    # the mutations reach both files and both outcomes
    assert summary["index"] > 50 and summary["data"] > 50 and summary["both"] > 20
    assert summary["refused"] > CASES // 2 and summary["restored"] > 0
    assert summary["rss_growth_mb"] < MEMORY_BOUND_MB, summary


if __name__ == "__main__":
    work, seed_arg, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    shutil.rmtree(os.path.join(work, "case"), ignore_errors=True)
    print(json.dumps(run_cases(work, seed_arg, count), sort_keys=True))
