"""Damaged images in ``prepare`` and ``predict``: a truncated JPEG, a bit-flipped PNG
(libpng prints "libpng error: IDAT: ...") and a JPEG whose scan is cut
short before its end marker, which still decodes (libjpeg prints "Corrupt JPEG data:
premature end of data segment"). Each is skipped with
hgpipe's own line naming the file; none of the libraries' lines reaches the process's
stderr, read at the descriptor (prepare runs as a subprocess, its forked workers
included; predict in this process under pytest's capfd)."""
import json
import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import REPO_ROOT, cli_runner, make_synthetic_mpii

# what libpng, libjpeg and OpenCV print on their own (hgpipe/native_stderr.py)
# (a line of its own; hgpipe's lines quote them inside parentheses)
LIBRARY_LINE = re.compile(r"^(libpng|Corrupt JPEG|Premature end|imdecode_|JPEG|\[ ?WARN)")
PROBLEMS = {
    "truncated": "truncated JPEG (the file ends before its end-of-image marker)",
    "flipped_png": "not a decodable image (libpng error: IDAT: ",  # CRC, or what inflates
    "corrupt_scan": "damaged image data (Corrupt JPEG data: premature end of data segment)",
}


def _damaged(kind, image):
    """The bytes of ``image`` damaged as ``kind`` says (checked to do what it says)."""
    if kind == "flipped_png":
        data = bytearray(cv2.imencode(".png", image)[1].tobytes())
        idat = data.index(b"IDAT")
        data[idat + 4 + 40] ^= 0x10           # a bit of the compressed pixels
        return bytes(data)
    data = bytearray(cv2.imencode(".jpg", image)[1].tobytes())
    if kind == "truncated":
        return bytes(data[:len(data) * 2 // 3])
    scan = data.index(b"\xff\xda")
    # the scan cut in the middle, then the end-of-image marker: libjpeg says "Corrupt
    # JPEG data: premature end of data segment" and fills the rest with grey
    return bytes(data[:(scan + len(data)) // 2]) + b"\xff\xd9"


def _run(args):
    proc = subprocess.run([sys.executable, "-m", "hgpipe"] + [str(a) for a in args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300,
                          env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def test_the_damage_is_real_and_the_libraries_do_print(tmp_path):
    """Without hgpipe's capture, libpng and libjpeg write to descriptor 2 for these
    files, and the corrupt-scan JPEG decodes: so the tests below can fail."""
    image = np.random.RandomState(3).randint(0, 256, (48, 64, 3)).astype(np.uint8)
    script = ("import sys, cv2, numpy as np\n"
              "for p in sys.argv[1:]:\n"
              "    d = np.fromfile(p, np.uint8)\n"
              "    print(p, cv2.imdecode(d, cv2.IMREAD_COLOR) is not None)\n")
    paths = []
    for kind in ("flipped_png", "corrupt_scan"):
        paths.append(str(tmp_path / kind))
        with open(paths[-1], "wb") as handle:
            handle.write(_damaged(kind, image))
    proc = subprocess.run([sys.executable, "-c", script] + paths, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=60)
    err = proc.stderr.decode()
    assert "libpng error: IDAT: " in err
    assert "Corrupt JPEG data: premature end of data segment" in err
    assert proc.stdout.decode().split() == [paths[0], "False", paths[1], "True"]


def test_prepare_skips_damaged_images_with_its_own_lines_only(tmp_path):
    root, entries = make_synthetic_mpii(str(tmp_path / "mpii"), n_images=6, seed=2)
    names = sorted(set(e["img_paths"] for e in entries))
    damaged = dict(zip(names[:3], sorted(PROBLEMS)))
    for name, kind in damaged.items():
        path = os.path.join(root, "images", name)
        data = _damaged(kind, cv2.imread(path))
        with open(path, "wb") as handle:
            handle.write(data)
    out = tmp_path / "shards"
    code, stdout, stderr = _run(["prepare", "--mpii", root, "--out", out, "--workers", 2,
                                 "--set", "Prepare.variants=1",
                                 "--set", "DataSetHG.img_size=64",
                                 "--set", "DataSetHG.hm_size=16"])
    assert code == 0, stderr
    assert not [line for line in (stdout + stderr).splitlines() if LIBRARY_LINE.search(line)], \
        stderr
    assert "Traceback" not in stderr
    skipped = json.load(open(str(out / "skipped.json")))
    reasons = {}
    for entry in skipped:
        assert entry["kind"] == "image unreadable"
        reasons.setdefault(entry["person"].split()[0], set()).add(entry["reason"])
    assert sorted(reasons) == sorted(damaged)
    for name, kind in damaged.items():
        (reason,) = reasons[name]
        assert PROBLEMS[kind] in reason, (name, reason)
    persons = sum(1 for e in entries if e["img_paths"] in damaged)
    assert "skipped %d persons" % persons in stdout


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from test_predict_export import write_inference_checkpoint
    return write_inference_checkpoint(str(tmp_path_factory.mktemp("ckpt") / "run"))


def test_predict_skips_damaged_images_in_one_line_each(checkpoint, tmp_path, capfd):
    """In this process (the model's TensorFlow is loaded already), descriptor 2 read by
    pytest's capfd: the libraries' lines would land there, hgpipe's in click's stderr."""
    from hgpipe.cli import main
    folder = tmp_path / "photos"
    folder.mkdir()
    image = np.random.RandomState(5).randint(0, 256, (70, 90, 3)).astype(np.uint8)
    cv2.imwrite(str(folder / "good.png"), image)
    names = {"truncated": "a.jpg", "flipped_png": "b.png", "corrupt_scan": "c.jpg"}
    for kind, name in names.items():
        (folder / name).write_bytes(_damaged(kind, image))
    capfd.readouterr()
    result = cli_runner().invoke(main, ["predict", str(folder), "--checkpoint", checkpoint,
                                        "--out", str(tmp_path / "out")])
    native = capfd.readouterr()
    assert not native.err.strip() and not native.out.strip(), native
    assert result.exit_code == 1, result.output + result.stderr
    lines = result.stderr.strip().splitlines()
    expected = ["skipped %s: %s" % (folder / names[kind], PROBLEMS[kind])
                for kind in sorted(names, key=names.get)]
    assert len(lines) == 4, result.stderr
    for line, want in zip(lines, expected):
        assert line.startswith(want), (line, want)
    assert lines[-1] == "Error: 3 images or frames skipped (listed above)"
    written = [json.loads(line)["image"] for line in open(str(tmp_path / "out" /
                                                              "predictions.jsonl"))]
    assert written == [str(folder / "good.png")]
