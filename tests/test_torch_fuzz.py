"""Fuzzing the torch readers: seeded mutations of the real fixture files (made by torch,
tests/fixtures/make_torch_hourglass_fixtures.py) -- bit flips, truncations, byte
insertions and deletions, swapped spans, size fields overwritten with extreme values; for
the zip format also mutations of data.pkl inside a valid archive (a raw mutation mostly
fails the CRC). Every case must end in a result or one TorchFileError line naming the
file, within 10 s, in a process limited to 2 GiB of address space (RLIMIT_AS); a
MemoryError is a failure too, even converted to one line.

The counts printed (pytest -s) are docs/bad-input.md's figures.
"""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TORCH = os.path.join(ROOT, "tests", "fixtures", "torch")
MEMORY_LIMIT = 2 * 2 ** 30
CASE_SECONDS = 10

CHILD = r'''
import json, os, random, resource, signal, struct, sys, traceback, zipfile, io
resource.setrlimit(resource.RLIMIT_AS, (%(limit)d, %(limit)d))
from hgpipe.interop.torch_file import TorchFileError, read_torch_file

source, cases, seed, inner, work = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    sys.argv[4] == "inner", sys.argv[5]
EXTREMES = [0, 1, 0x7f, 0xff, 0x7fff, 0xffff, 0x7fffffff, 0xffffffff, 2 ** 62, 2 ** 64 - 1]

def mutate(data, rng):
    data = bytearray(data)
    kind = rng.choice(["flip", "truncate", "insert", "delete", "swap", "extreme"])
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            at = rng.randrange(len(data))
            data[at] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        del data[rng.randrange(len(data)):]
    elif kind == "insert":
        at = rng.randrange(len(data) + 1)
        data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif kind == "delete":
        at = rng.randrange(len(data))
        del data[at:at + rng.randint(1, 16)]
    elif kind == "swap":
        n = rng.randint(1, 32)
        a, b = sorted(rng.randrange(max(1, len(data) - n)) for _ in range(2))
        if b >= a + n:
            data[a:a + n], data[b:b + n] = data[b:b + n], data[a:a + n]
    else:
        width = rng.choice([1, 2, 4, 8])
        at = rng.randrange(max(1, len(data) - width))
        value = rng.choice(EXTREMES) %% (2 ** (8 * width))
        data[at:at + width] = value.to_bytes(width, "little")
    return kind, bytes(data)

def alarm(*args):
    raise RuntimeError("HANG")
signal.signal(signal.SIGALRM, alarm)

original = open(source, "rb").read()
members = None
if inner:
    with zipfile.ZipFile(source) as archive:
        members = [(n, archive.read(n)) for n in archive.namelist()]
rng = random.Random(seed)
counts = {"read": 0, "refused": 0}
failures = []
path = os.path.join(work, "case" + os.path.basename(source)[-8:])
for case in range(cases):
    if inner:
        kind, pkl = mutate([d for n, d in members if n.endswith("data.pkl")][0], rng)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as archive:
            for name, data in members:
                archive.writestr(name, pkl if name.endswith("data.pkl") else data)
        data = buf.getvalue()
    else:
        kind, data = mutate(original, rng)
    with open(path, "wb") as out:
        out.write(data)
    signal.alarm(%(seconds)d)
    try:
        read_torch_file(path)
        counts["read"] += 1
    except TorchFileError as exc:
        text = str(exc)
        if not text.startswith(path + ": ") or "\n" in text or "MemoryError" in text:
            failures.append([case, kind, text[:300]])
        else:
            counts["refused"] += 1
    except BaseException as exc:
        failures.append([case, kind, traceback.format_exc()[-600:]])
    finally:
        signal.alarm(0)
maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"counts": counts, "failures": failures, "maxrss_kib": maxrss}))
''' % {"limit": MEMORY_LIMIT, "seconds": CASE_SECONDS}


def fuzz(tmp_path, name, cases, seed, inner=False):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.check_output(
        [sys.executable, "-c", CHILD, os.path.join(TORCH, name), str(cases), str(seed),
         "inner" if inner else "raw", str(tmp_path)], env=env, cwd=ROOT)
    report = json.loads(out.decode().strip().splitlines()[-1])
    print("fuzz %s%s: %d cases, %d read, %d refused in one line, max RSS %.0f MiB" % (
        name, " (data.pkl)" if inner else "", cases, report["counts"]["read"],
        report["counts"]["refused"], report["maxrss_kib"] / 1024.0))
    assert report["failures"] == []
    assert sum(report["counts"].values()) == cases
    assert report["counts"]["refused"] > 0  # the mutations reached the checks
    assert report["maxrss_kib"] * 1024 < MEMORY_LIMIT
    return report["counts"]


@pytest.mark.parametrize("name, cases, inner", [
    ("tensors.legacy.pt", 400, False), ("bearpaw_s2.legacy.pth.tar", 40, False)])
def test_fuzz_legacy_reader(tmp_path, name, cases, inner):
    fuzz(tmp_path, name, cases, seed=19, inner=inner)


@pytest.mark.parametrize("name, cases, inner", [
    ("tensors.zip.pt", 200, False), ("tensors.zip.pt", 300, True),
    ("bearpaw_s8.zip.pth.tar", 40, True)])
def test_fuzz_zip_reader(tmp_path, name, cases, inner):
    fuzz(tmp_path, name, cases, seed=19, inner=inner)
