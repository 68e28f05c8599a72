"""Hostile dataset files (made by tests/fixtures/make_hostile_inputs.py): size bombs are
refused before anything is allocated, image names never reach outside images/, and one
odd person or image is skipped with a typed reason while the rest are prepared."""
import json
import os
import resource
import subprocess
import sys

import h5py
import pytest

from conftest import REPO_ROOT
from hgpipe.data.images import ImageError, decode_image
from hgpipe.data.readers import AnnotationError, read_annotations
from hgpipe.limits import MAX_ANNOTATION_BYTES

sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "fixtures"))
import make_hostile_inputs as hostile  # noqa: E402


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


BOUNDED = ("import resource, sys\n"
           "resource.setrlimit(resource.RLIMIT_AS, (%d, %d))\n"
           "from hgpipe.data.images import ImageError, decode_image\n"
           "from hgpipe.data.readers import AnnotationError, read_annotations\n"
           "try:\n"
           "    %s(sys.argv[1])\n"
           "except (ImageError, AnnotationError) as exc:\n"
           "    print(str(exc))\n")


def run_bounded(call, path, limit=1536 * 1024 ** 2):
    """``call(path)`` in a process whose address space is capped: a decode or unpack
    of what the file declares would fail there with MemoryError (a traceback)."""
    proc = subprocess.run([sys.executable, "-c", BOUNDED % (limit, limit, call), path],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120,
                          env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr.decode()[-2000:]
    return proc.stdout.decode().strip()


@pytest.mark.parametrize("make, problem", [
    (hostile.png_bomb, "declares 60000 x 60000 pixels"),
    (hostile.jpeg_bomb, "declares 60000 x 60000 pixels"),
    (hostile.sparse_image, "larger than the 128 MiB an image may be"),
])
def test_image_bombs_are_refused_before_decoding(tmp_path, make, problem):
    path = make(str(tmp_path / "bomb.img"))
    line = run_bounded("decode_image", path)
    assert line.startswith(path) and problem in line and len(line.splitlines()) == 1


def test_a_file_that_is_no_image_format_we_can_size_is_refused(tmp_path):
    path = str(tmp_path / "x.ppm")
    with open(path, "wb") as handle:
        handle.write(b"P6\n60000 60000\n255\n" + b"\0" * 100)
    with pytest.raises(ImageError) as info:
        decode_image(path)
    assert "not a JPEG, PNG or BMP image" in str(info.value)


def test_gzip_bomb_annotation_is_cut_at_the_bound(tmp_path):
    path = hostile.gzip_bomb(str(tmp_path / "mpii_annotations.json.gz"),
                             MAX_ANNOTATION_BYTES + 8 * 1024 ** 2)
    assert os.path.getsize(path) < 4 * 1024 ** 2
    line = run_bounded("read_annotations", path)
    assert line == "%s: unpacks to more than the 256 MiB an annotation file may be" % path


def test_deep_json_is_one_line(tmp_path):
    path = hostile.deep_json(str(tmp_path / "deep.json"))
    with pytest.raises(AnnotationError) as info:
        read_annotations(path)
    assert str(info.value) == "%s: JSON nested too deeply (an annotation file nests a few " \
                              "levels)" % path


def test_sparse_annotation_file_is_refused_unread(tmp_path):
    path = str(tmp_path / "dataset.txt")
    with open(path, "wb") as handle:
        handle.truncate(6 * 1024 ** 3)
    before = _peak_rss_mb()
    with pytest.raises(AnnotationError) as info:
        read_annotations(path)
    assert "6442450944 bytes, larger than the 256 MiB" in str(info.value)
    assert _peak_rss_mb() - before < 50


def test_prepare_skips_hostile_persons_reads_nothing_outside_and_goes_on(tmp_path):
    root = str(tmp_path / "mpii")
    names = hostile.hostile_dataset(root)
    out = str(tmp_path / "shards")
    proc = subprocess.run(
        [sys.executable, "-m", "hgpipe", "prepare", "--mpii", root, "--out", out,
         "--workers", "1", "--set", "Prepare.variants=1", "--set", "DataSetHG.img_size=64",
         "--set", "DataSetHG.hm_size=16"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=REPO_ROOT), timeout=300)
    stdout, stderr = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "4 persons skipped: their image name or symlink leads outside" in stderr
    # only the good images were read into the shards; the canary outside never
    written = set()
    for name in os.listdir(out):
        if name.endswith(".h5"):
            with h5py.File(os.path.join(out, name), "r") as shard:
                written.update(n.decode() for n in shard["image_name"][()])
    assert written == set(names["good"])
    skipped = json.load(open(os.path.join(out, "skipped.json")))
    kinds = {}
    for entry in skipped:
        kinds[entry["kind"]] = kinds.get(entry["kind"], 0) + 1
    assert kinds == {"image outside the images folder": 4, "image name invalid": 2,
                     "image unreadable": 3}
    assert "skipped 9 persons" in stdout
    assert "4  image outside the images folder" in stdout
    assert "2  declares 60000 x 60000 pixels, more than the 50 megapixels" in stdout


MAT_BOMB_LINE = ("%s: unpacks to more than the 1 GiB a .mat file may hold (a compressed "
                 "variable inflates past it)")


def test_the_mat_bomb_is_a_real_mat_that_scipy_would_inflate(tmp_path):
    """The generator's stream is valid: a small one loads in scipy, whole, and passes
    the bound; so the big one below is refused for its size, not for being broken."""
    import scipy.io
    from hgpipe.data.readers.mat_size import unpacked_size_problem
    path = hostile.mat_bomb(str(tmp_path / "small.mat"), 3 * 1024 ** 2)
    assert os.path.getsize(path) < 8192
    assert scipy.io.loadmat(path)["RELEASE"].shape == (3 * 1024 ** 2 // 8, 1)
    assert unpacked_size_problem(path) is None


def test_mat_bomb_is_refused_before_scipy_inflates_it(tmp_path):
    """1.06 GiB from 1.1 MB: refused by annotation readers in a process whose whole
    address space (1 GiB) could not hold the inflated variable, and by pck's readers of
    predictions and ground truth without memory growth."""
    from hgpipe.eval.pred_files import EvalFileError, load_predictions, read_ground_truth
    path = hostile.mat_bomb(str(tmp_path / "mpii_human_pose_v1_u12_1.mat"))
    assert os.path.getsize(path) < 2 * 1024 ** 2
    assert run_bounded("read_annotations", path, limit=1024 ** 3) == MAT_BOMB_LINE % path
    before = _peak_rss_mb()
    for read in (load_predictions, read_ground_truth):
        with pytest.raises(EvalFileError) as info:
            read(path)
        assert str(info.value) == MAT_BOMB_LINE % path
    assert _peak_rss_mb() - before < 50
