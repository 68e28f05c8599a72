"""``hgpipe predict`` over a folder and a generated video, with one model load: the JSON
Lines file, the annotated video, a bad file skipped, detector boxes (COCO results)."""
import json
import os

import cv2
import numpy as np
import pytest

from conftest import cli_runner

FRAMES, WIDTH, HEIGHT = 5, 96, 80


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from test_predict_export import write_inference_checkpoint
    return write_inference_checkpoint(str(tmp_path_factory.mktemp("ckpt") / "run"))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A folder of 3 images (one of them broken) and a 5-frame video."""
    root = tmp_path_factory.mktemp("inputs")
    rng = np.random.RandomState(1)
    folder = root / "photos"
    folder.mkdir()
    for k, (h, w) in enumerate(((120, 90), (70, 100))):
        cv2.imwrite(str(folder / ("p%d.png" % k)), rng.randint(0, 256, (h, w, 3), np.uint8))
    (folder / "broken.jpg").write_bytes(b"not an image")
    video = str(root / "clip.avi")
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"MJPG"), 10, (WIDTH, HEIGHT))
    assert writer.isOpened()
    for k in range(FRAMES):
        frame = np.full((HEIGHT, WIDTH, 3), 40 * k, np.uint8)
        cv2.circle(frame, (20 + 10 * k, 40), 12, (255, 200, 0), -1)
        writer.write(frame)
    writer.release()
    return str(folder), video


def predict(*args):
    from hgpipe.cli import main
    return cli_runner().invoke(main, ["predict"] + [str(a) for a in args])


def read_jsonl(path):
    with open(path) as handle:
        return [json.loads(line) for line in handle]


def decoded_frames(video):
    capture = cv2.VideoCapture(video)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def test_folder_and_video_in_one_run(checkpoint, inputs, tmp_path):
    import hgpipe
    folder, video = inputs
    out = tmp_path / "out"
    result = predict(folder, video, "--checkpoint", checkpoint, "--out", out, "--draw",
                     "--batch-size", 4)
    # the broken image is skipped with its reason, the rest predicted, exit status 1
    assert result.exit_code == 1, result.output + result.stderr
    assert "skipped %s: not a " % os.path.join(folder, "broken.jpg") \
        in result.stderr
    assert result.stderr.strip().splitlines()[-1] == \
        "Error: 1 image or frame skipped (listed above)"
    assert result.output.count("model: ") == 1  # one model for every input
    lines = read_jsonl(str(out / "predictions.jsonl"))
    images = [os.path.join(folder, "p0.png"), os.path.join(folder, "p1.png")]
    assert [line["image"] for line in lines] == \
        images + ["%s#%d" % (video, k) for k in range(FRAMES)]
    # each line says how much of its box the pose spans (the too-small criterion's figure)
    for line in lines:
        fraction = line["person_fraction"]
        assert fraction is None or 0 <= fraction <= 2
        assert (fraction is None or fraction < 0.25) == ("box holds more than the model saw"
                                                          in line.get("note", "")
                                                          or "no two joints" in
                                                          line.get("note", ""))
    assert [line["frame"] for line in lines] == [None, None] + list(range(FRAMES))
    assert all(len(line["joints"]) == 16 and line["box"]["source"] == "image"
               for line in lines)
    assert "wrote %d persons from %d frames" % (2 + FRAMES, 2 + FRAMES) in result.output

    # the annotated video: every frame, the input's size
    drawn = decoded_frames(str(out / "clip.pose.avi"))
    assert len(drawn) == FRAMES and drawn[0].shape == (HEIGHT, WIDTH, 3)
    assert sorted(os.listdir(str(out))) == ["clip.pose.avi", "p0.pose.png", "p1.pose.png",
                                           "predictions.jsonl"]

    # the same numbers as the API on the same decoded frames
    with hgpipe.load(os.path.dirname(checkpoint), batch_size=4) as model:
        poses = model.predict_many([cv2.imread(p) for p in images] + decoded_frames(video),
                                   color="bgr")
    for pose, line in zip(poses, lines):
        np.testing.assert_array_equal(pose.joints, [[j["x"], j["y"]] for j in line["joints"]])
        np.testing.assert_array_equal(pose.scores, [j["score"] for j in line["joints"]])


def test_detections_in_coco_results_format(checkpoint, inputs, tmp_path):
    folder, video = inputs
    detections = str(tmp_path / "dets.json")
    with open(detections, "w") as handle:
        json.dump([
            # p0.png: two persons, the second inside the first
            {"image_id": "p0", "category_id": 1, "bbox": [0, 0, 89, 119], "score": 0.9},
            {"image_id": "p0.png", "category_id": 1, "bbox": [10, 10, 40, 50], "score": 0.8},
            {"image_id": "p0", "category_id": 3, "bbox": [5, 5, 20, 20], "score": 0.9},  # car
            {"image_id": "p0", "category_id": 1, "bbox": [5, 5, 20, 20], "score": 0.1},
            {"image_id": 2, "category_id": 1, "bbox": [30, 10, 40, 60], "score": 0.7},
        ], handle)
    out = tmp_path / "out"
    result = predict(os.path.join(folder, "p0.png"), os.path.join(folder, "p1.png"), video,
                     "--detections", detections, "--min-detection-score", 0.5,
                     "--checkpoint", checkpoint, "--out", out)
    assert result.exit_code == 0, result.output + result.stderr
    lines = read_jsonl(str(out / "predictions.jsonl"))
    assert [(line["image"], line["person"]) for line in lines] == [
        (os.path.join(folder, "p0.png"), 0), (os.path.join(folder, "p0.png"), 1),
        ("%s#2" % video, 0)]
    assert [line["detection_score"] for line in lines] == [0.9, 0.8, 0.7]
    assert all(line["box"]["source"] == "bbox" for line in lines)
    # COCO's [x, y, w, h] from pixel edges -> 1-based centres: the box centre moves +0.5
    assert lines[2]["box"]["crop_center"] == [30 + 20 + 0.5, 10 + 30 + 0.5]
    assert "holds 1 other detected person" in lines[0]["note"]
    assert "note" not in lines[1] and "note" not in lines[2]
    assert "note: 1 box holds other detected persons" in result.output
    assert "note: %d frames had no detection" % (1 + FRAMES - 1) in result.output


def test_bad_detections_file_is_one_line_before_the_model(checkpoint, inputs, tmp_path):
    folder, _ = inputs
    detections = str(tmp_path / "dets.json")
    with open(detections, "w") as handle:
        json.dump({"annotations": []}, handle)
    result = predict(folder, "--detections", detections, "--checkpoint", checkpoint,
                     "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert "expected a JSON list of detections" in result.stderr
    assert "model: " not in result.output and not os.path.exists(str(tmp_path / "out"))


def test_a_pose_much_smaller_than_its_box_gets_a_note():
    """The documented criterion (batch_predict.SMALL_PERSON_FRACTION): confident joints
    spanning under a quarter of the crop side say the box holds more than the model saw."""
    import numpy as np
    from hgpipe.eval.batch_predict import Pose, person_fraction, scale_note
    from hgpipe.eval.predict import box_from_center_scale
    box = box_from_center_scale((200, 200), 1.0)  # crop side 250 px (1.25 x 200)
    assert box.crop_side() == pytest.approx(250.0)
    joints = np.full((16, 2), 200.0)
    joints[0] = (200, 300)                        # ankle 100 px below the rest: 40%
    scores = np.full(16, 0.9)
    fraction = person_fraction(Pose(joints, scores, box, 400, 400), 0.3)
    assert fraction == pytest.approx(0.4) and scale_note(fraction) is None
    joints[0] = (200, 250)                        # 50 px: 20% < 25%
    fraction = person_fraction(Pose(joints, scores, box, 400, 400), 0.3)
    assert fraction == pytest.approx(0.2)
    assert "span 20% of the box side" in scale_note(fraction)
    # a low-scoring joint does not count: --min-score is the same threshold as drawing's
    joints[0] = (200, 300)
    scores[0] = 0.1
    assert person_fraction(Pose(joints, scores, box, 400, 400), 0.3) == pytest.approx(0.0)
    scores[:] = 0.1
    assert person_fraction(Pose(joints, scores, box, 400, 400), 0.3) is None
    assert "no two joints reach --min-score" in scale_note(None)
