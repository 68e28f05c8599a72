"""Seeded fuzzing of the readers of a user's shards folder, config files and keypoint
annotation files (COCO-format JSON, LSP's joints.mat), run by tests/test_fuzz_inputs.py
in a subprocess whose address space is capped (``resource.setrlimit(RLIMIT_AS)``), so a
case that allocates past the bound fails with MemoryError instead of taking the machine.

Every case must end in success or in hgpipe's one-line error (a ShardError,
EvalFileError, ConfigError or AnnotationError, or an OSError that names its file);
anything else is reported with its traceback. Prints one JSON line: counts, failures,
peak RSS.

    python tests/fuzz_worker.py shards GOOD_SHARDS_DIR CASES SEED LIMIT_MB
    python tests/fuzz_worker.py configs CONFIGS_DIR CASES SEED LIMIT_MB
    python tests/fuzz_worker.py coco COCO_JSON CASES SEED LIMIT_MB
    python tests/fuzz_worker.py lsp WORK_DIR CASES SEED LIMIT_MB   (its seed files made here)
"""
import json
import os
import random
import resource
import shutil
import sys
import tempfile
import traceback


def _mutate_bytes(data, rng):
    data = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        kind = rng.random()
        position = rng.randrange(len(data)) if data else 0
        if kind < 0.5 and data:
            data[position] = rng.randrange(256)
        elif kind < 0.7:
            data[position:position] = bytes(rng.randrange(256)
                                            for _ in range(rng.randint(1, 16)))
        elif kind < 0.9 and data:
            del data[position:position + rng.randint(1, 64)]
        else:
            data = data[:position]
    return bytes(data)


_ODD_VALUES = [None, True, -1, 0, 10 ** 12, 1.5, float("inf"), float("nan"), "x", "",
               [], {}, [1, 2], {"a": 1}, "../../etc/passwd", "/abs.h5", "val-00000.h5",
               "train-99999.h5", 2 ** 63, -2 ** 63, "\u00e9"]


def _mutate_json(value, rng, depth=0):
    """A copy of parsed JSON with a few values replaced, keys dropped or types changed."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            roll = rng.random()
            if roll < 0.04:
                continue
            out[key] = rng.choice(_ODD_VALUES) if roll < 0.1 else \
                _mutate_json(item, rng, depth + 1)
        return out
    if isinstance(value, list):
        out = [_mutate_json(item, rng, depth + 1) for item in value if rng.random() > 0.04]
        if out and rng.random() < 0.05:
            out.append(out[0])
        return out
    return rng.choice(_ODD_VALUES) if rng.random() < 0.05 else value


def _allowed(exc):
    from hgpipe.config import ConfigError
    from hgpipe.data.readers import AnnotationError
    from hgpipe.data.shards import ShardError
    from hgpipe.eval.pred_files import EvalFileError
    if isinstance(exc, (ShardError, EvalFileError, ConfigError, AnnotationError)):
        return "\n" not in str(exc).strip()
    return isinstance(exc, (OSError, IOError)) and bool(getattr(exc, "filename", None))


def _use_shards(folder):
    """What inspect --verify, train's reader and pck's ground truth do with a folder."""
    from hgpipe.data import inspect, shards
    from hgpipe.eval.inference import read_val_inputs
    from hgpipe.eval.pred_files import read_ground_truth
    from hgpipe.train.feeder import ShardBatches
    damaged = shards.damaged_shards(folder)
    inspect.report(folder, damaged)
    reader = ShardBatches(folder, "train", 2)
    try:
        for batch in range(reader.batches_per_epoch):
            reader.read_batch(0, batch)
    finally:
        reader.close()
    read_val_inputs(folder)
    read_ground_truth(folder)


def _shard_case(good, work, rng):
    folder = os.path.join(work, "case")
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(good, folder)
    names = sorted(n for n in os.listdir(folder) if n.endswith(".h5"))
    if rng.random() < 0.4:
        path = os.path.join(folder, "manifest.json")
        with open(path) as handle:
            manifest = json.load(handle)
        with open(path, "w") as out:
            json.dump(_mutate_json(manifest, rng), out)
    else:
        path = os.path.join(folder, rng.choice(names))
        with open(path, "rb") as handle:
            data = handle.read()
        roll = rng.random()
        if roll < 0.8:   # bytes replaced in place (the size kept, so HDF5 parses on)
            data = bytearray(data)
            head = len(data) if roll < 0.4 else min(len(data), 4096)   # or the metadata
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(head)] = rng.randrange(256)
            data = bytes(data)
        else:
            data = _mutate_bytes(data, rng)
        with open(path, "wb") as out:
            out.write(data)
    return lambda: _use_shards(folder)


def _config_case(configs, work, rng):
    from hgpipe.config import load_config
    names = sorted(n for n in os.listdir(configs) if n.endswith(".cfg"))
    with open(os.path.join(configs, rng.choice(names)), "rb") as handle:
        data = handle.read()
    lines = data.split(b"\n")
    roll = rng.random()
    if roll < 0.5:   # a value replaced by something odd
        values = [i for i, line in enumerate(lines) if b"=" in line or b":" in line]
        i = rng.choice(values)
        key = lines[i].replace(b":", b"=").split(b"=", 1)[0]
        odd = rng.choice([b"inf", b"-inf", b"nan", b"1e308", b"-1", b"0", b"10**9",
                          b"99999999999999999999", b"[" * 3000, b"'", b"None", b"True",
                          b"\xff\xfe", b"", b"[1, 2]", b"(1,)", b"{}", b"1.5", b"2.0",
                          b"0.999999", b"1e-320", b"\x00"])
        lines[i] = key + b"= " + odd
        data = b"\n".join(lines)
    elif roll < 0.7:   # a line duplicated or dropped
        i = rng.randrange(len(lines))
        lines[i:i + 1] = [lines[i]] * rng.choice([0, 2])
        data = b"\n".join(lines)
    else:
        data = _mutate_bytes(data, rng)
    path = os.path.join(work, "fuzz.cfg")
    with open(path, "wb") as out:
        out.write(data)
    return lambda: load_config(path)


def _read(path):
    from hgpipe.data.readers import read_annotations
    read_annotations(path)


def _slots(value, found):
    """Every (container, key) of a parsed JSON tree."""
    items = value.items() if isinstance(value, dict) else enumerate(value) \
        if isinstance(value, list) else ()
    for key, item in items:
        found.append((value, key))
        _slots(item, found)
    return found


def _mutate_few(tree, rng):
    """1-3 values of a large tree replaced by odd ones or removed (a mutation per value
    of _mutate_json would leave no file of hundreds of persons readable)."""
    slots = _slots(tree, [])
    for _ in range(rng.randint(1, 3)):
        container, key = rng.choice(slots)
        if rng.random() < 0.2 and isinstance(container, dict):
            container.pop(key, None)
        elif not isinstance(container, list) or key < len(container):
            container[key] = rng.choice(_ODD_VALUES)
    return tree


def _coco_case(source, work, rng):
    """The demo's COCO-format file: a few values of its tree mutated (60%), or bytes."""
    with open(source, "rb") as handle:
        data = handle.read()
    if rng.random() < 0.6:
        data = json.dumps(_mutate_few(json.loads(data.decode("utf-8")), rng)).encode("utf-8")
    else:
        data = _mutate_bytes(data, rng)
    path = os.path.join(work, rng.choice(["person_keypoints_val.json", "train.json"]))
    with open(path, "wb") as out:
        out.write(data)
    return lambda: _read(path)


def _lsp_seeds(work):
    """joints.mat of both LSP layouts (uncompressed, so byte mutations reach the
    variable's header and data), with occluded and unlabelled joints."""
    import numpy as np
    import scipy.io
    rng = np.random.RandomState(3)
    xy = rng.uniform(5, 150, size=(4, 14, 2))
    seeds = []
    for name, layout in (("lsp", (2, 1, 0)), ("lspet", (1, 2, 0))):
        joints = np.concatenate([xy, (rng.rand(4, 14, 1) < 0.3).astype(float)], axis=2)
        path = os.path.join(work, "%s_joints.mat" % name)
        scipy.io.savemat(path, {"joints": joints.transpose(layout)})
        with open(path, "rb") as handle:
            seeds.append(handle.read())
    return seeds


def _lsp_case(seeds, work, rng):
    data = rng.choice(seeds)
    if rng.random() < 0.5:   # bytes replaced in place: the layout parses on
        data = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        data = bytes(data)
    else:
        data = _mutate_bytes(data, rng)
    path = os.path.join(work, "joints.mat")
    with open(path, "wb") as out:
        out.write(data)
    return lambda: _read(path)


def main(argv):
    kind, source, cases, seed, limit_mb = argv[1], argv[2], int(argv[3]), int(argv[4]), \
        int(argv[5])
    limit = limit_mb << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    rng = random.Random(seed)
    make = {"shards": _shard_case, "configs": _config_case, "coco": _coco_case,
            "lsp": _lsp_case}[kind]
    counts = {"cases": 0, "ok": 0, "refused": 0}
    failures = []
    work = tempfile.mkdtemp(prefix="hgpipe-fuzz-")
    if kind == "lsp":
        source = _lsp_seeds(work)
    try:
        for number in range(cases):
            run = make(source, work, rng)
            counts["cases"] += 1
            try:
                run()
                counts["ok"] += 1
            except Exception as exc:  # every other type is a failure of the test
                if _allowed(exc):
                    counts["refused"] += 1
                else:
                    failures.append("case %d: %s" % (number, traceback.format_exc()[-1500:]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    counts["failures"] = failures
    counts["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(json.dumps(counts))


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
    main(sys.argv)
