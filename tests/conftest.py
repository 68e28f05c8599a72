"""Shared fixtures. Real MPII files live in ../shared/mpii beside the checkout; tests that
need them skip cleanly where that folder is absent (a user's machine)."""
import os

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_MPII = os.path.join(os.path.dirname(REPO_ROOT), "shared", "mpii")


def pytest_configure(config):
    # slow tests run in CI like the others; `-m "not slow"` leaves them out while iterating
    config.addinivalue_line("markers", "slow: takes more than a few seconds (still run in CI)")


@pytest.fixture(scope="session")
def shared_mpii():
    """Path of ../shared/mpii, or skip the test."""
    if not os.path.isdir(SHARED_MPII):
        pytest.skip("../shared/mpii is not available")
    return SHARED_MPII


def make_synthetic_mpii(root, n_images=6, persons_per_image=(1, 2), seed=0, size=(240, 320)):
    """A small dataset folder in the MPII JSON format: textured JPEGs with 1-2 persons.

    Person keys use annolist indices far beyond MPII's, so the file's own isValidation
    decides the split. Returns (root, list of entry dicts).
    """
    import json

    import cv2
    import numpy as np

    rng = np.random.RandomState(seed)
    images = os.path.join(root, "images")
    os.makedirs(images)
    entries = []
    for i in range(n_images):
        h, w = size
        image = cv2.GaussianBlur(rng.randint(0, 255, (h, w, 3)).astype(np.uint8), (0, 0), 3)
        name = "synth_%03d.jpg" % i
        cv2.imwrite(os.path.join(images, name), image)
        count = persons_per_image[i % len(persons_per_image)]
        for p in range(count):
            center = np.array([w * (p + 1) / (count + 1.0), h * 0.45])
            scale = 0.8 + 0.1 * p
            joints = center + rng.uniform(-60, 60, size=(16, 2)) * scale
            vis = np.ones(16)
            joint_self = [[float(x), float(y), float(v)] for (x, y), v in zip(joints, vis)]
            joint_self[9 - p] = [0.0, 0.0, 0.0]  # one unannotated joint
            entries.append({
                "dataset": "synthetic", "img_paths": name, "img_width": float(w),
                "img_height": float(h), "objpos": [float(center[0]), float(center[1])],
                "scale_provided": float(scale), "joint_self": joint_self,
                "isValidation": float(i % 3 == 2), "annolist_index": float(900000 + i),
                "people_index": float(p + 1), "numOtherPeople": 0.0,
                "joint_others": [], "objpos_other": [], "scale_provided_other": [],
                "head_box": [float(center[0] - 12), float(center[1] - 40),
                             float(center[0] + 12), float(center[1] - 10)],
            })
    annotations = os.path.join(root, "annotations")
    os.makedirs(annotations)
    with open(os.path.join(annotations, "mpii_annotations.json"), "w") as out:
        json.dump(entries, out)
    return root, entries


def cli_runner():
    """A click CliRunner with stderr kept apart (click 8.1 needs mix_stderr=False, 8.2+
    always separates and no longer takes the argument)."""
    from click.testing import CliRunner
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:
        return CliRunner()


@pytest.fixture(scope="module")
def other_runtime():
    """The other runtime's Python (HGPIPE_OTHER_PYTHON), checked before a module's costly
    fixtures are built; skips where it is not set."""
    from cross_runtime import other_python
    return other_python()


def prepare_synthetic_shards(tmp_path_factory, n_images, seed, *settings):
    """A small synthetic dataset prepared into 64 px shards; returns the shards dir.
    ``settings`` are extra ``Section.key=value`` config overrides."""
    from click.testing import CliRunner
    from hgpipe.cli import main

    root, _ = make_synthetic_mpii(str(tmp_path_factory.mktemp("data")), n_images=n_images,
                                  seed=seed)
    out = str(tmp_path_factory.mktemp("shards"))
    args = ["prepare", "--mpii", root, "--out", out, "--workers", "1",
            "--set", "DataSetHG.img_size=64", "--set", "DataSetHG.hm_size=16"]
    for item in settings:
        args += ["--set", item]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return out


def pytest_collection_finish(session):
    """Start test_install's pip resolves (network-bound, about a minute) in the background
    when that module's tests are selected, so the wait overlaps the other tests."""
    if any(item.module.__name__ == "test_install" for item in session.items
           if getattr(item, "module", None) is not None):
        import test_install
        if test_install.pip_can_report():
            test_install.start_resolves()


def make_synthetic_keypoint_records(root, keypoints, n_images=6, seed=0, size=(160, 200),
                                    val_every=3):
    """Textured JPEGs in ``root/images`` and one person record of ``keypoints`` per image
    (built with make_record, as a reader of that dataset would): every ``val_every``-th
    person is a validation one, one joint per person unannotated, COCO-style area and ids
    set. Returns the records."""
    import cv2
    import numpy as np

    from hgpipe.data.records import make_record

    rng = np.random.RandomState(seed)
    images = os.path.join(root, "images")
    os.makedirs(images)
    k, (h, w) = keypoints.num_joints, size
    records = []
    for i in range(n_images):
        image = cv2.GaussianBlur(rng.randint(0, 255, (h, w, 3)).astype(np.uint8), (0, 0), 3)
        name = "kp_%03d.jpg" % i
        cv2.imwrite(os.path.join(images, name), image)
        center = np.array([w / 2.0, h / 2.0])
        joints = center + rng.uniform(-50, 50, size=(k, 2))
        annotated = np.ones(k, bool)
        annotated[i % k] = False
        joints[~annotated] = 0.0
        records.append(make_record(
            name, joints, annotated, center=center, scale=0.6, keypoints=keypoints,
            annolist_index=i + 1, person_index=1, is_validation=(i % val_every == val_every - 1),
            source="synthetic:%d" % i, area=float(900 + 10 * i), image_id=100 + i,
            annotation_id=5000 + i))
    return records
