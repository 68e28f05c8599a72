"""Seeded mutation fuzzing of the readers of a user's annotation and image files.

Run by tests/test_fuzz_readers.py as ``python tests/fuzz_readers.py READER SEED CASES
WORKDIR`` in a child process whose address space is capped (RLIMIT_AS), each case under
an alarm: a case ends in success or in hgpipe's one-line error for that file
(AnnotationError, ImageError); anything else -- another exception type, a hang, a
MemoryError past the cap -- prints the case and its traceback and exits 1. On success
it prints one JSON line of counts.

Seeds are real files: ../shared/mpii when present (a slice of the MPII JSON, a slice of
val/detections.mat re-saved uncompressed so that byte mutations reach its structure,
test_mpii.json, real JPEGs), else files made here in the same formats; head_boxes.json
comes from the committed demo data (data/demo/annotations). Mutations: bit
flips, random bytes (half of them near the start, where headers are), truncation,
deleted/duplicated/inserted runs, "interesting" bytes and numbers; for JSON also value
substitutions in the parsed tree (wrong types, NaN, 1e308, deep lists, huge strings).
"""
import gzip
import json
import os
import random
import resource
import signal
import sys
import traceback

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(REPO_ROOT), "shared", "mpii")
CASE_SECONDS = 20
INTERESTING = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\xff\xff\xff\xff", b"\x00\x00\x00\x00",
               b"\x7f\xff\xff\xff", b"\xff\xd8", b"\xff\xc0", b"\xff\xda", b"[", b"{", b"\"",
               b"-1", b"1e308", b"NaN", b"Infinity", b"\\u0000", b"\xe9", b"\n", b"/../"]


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang("case took more than %d s" % CASE_SECONDS)


def mutate_bytes(data, rng, head=1024):
    data = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if not data:
            data = bytearray(rng.choice(INTERESTING))
        n = len(data)
        where = rng.randrange(min(n, head)) if rng.random() < 0.5 else rng.randrange(n)
        op = rng.randrange(7)
        if op == 0:
            data[where] ^= 1 << rng.randrange(8)
        elif op == 1:
            data[where] = rng.randrange(256)
        elif op == 2:
            del data[rng.randrange(n):]
        elif op == 3:
            del data[where:where + rng.randint(1, 64)]
        elif op == 4:
            data[where:where] = data[where:where + rng.randint(1, 256)] * rng.randint(1, 8)
        elif op == 5:
            data[where:where] = rng.choice(INTERESTING)
        else:
            token = rng.choice(INTERESTING)
            data[where:where + len(token)] = token
    return bytes(data)


ODD_VALUES = [None, True, "", "x", -1, 0, 1e308, -1e308, float("nan"), 2 ** 70, [], {},
              [[[[]]]], "a" * 5000, [None] * 16, [[1e308, 1e308, 1]] * 16, {"x": 1},
              "../../etc/passwd", u"\udcff.jpg", "\0.jpg", -2 ** 63, 3.5]


def mutate_tree(tree, rng):
    """Replace one random value (or key) of a parsed JSON tree with an odd one."""
    tree = json.loads(json.dumps(tree))
    for _ in range(rng.randint(1, 3)):
        node, path = tree, []
        while isinstance(node, (list, dict)) and node and rng.random() < 0.8:
            key = rng.randrange(len(node)) if isinstance(node, list) else \
                rng.choice(sorted(node))
            path.append((node, key))
            node = node[key]
        if not path:
            return rng.choice(ODD_VALUES)
        parent, key = path[-1]
        if isinstance(parent, dict) and rng.random() < 0.2:
            parent.pop(key)
        else:
            parent[key] = rng.choice(ODD_VALUES)
    return tree


# ------------------------------------------------------------------ seeds
def _json_entries(work):
    path = os.path.join(SHARED, "annotations", "mpii_annotations.json.gz")
    if os.path.isfile(path):
        entries = json.loads(gzip.open(path).read().decode("utf-8"))
        val = [e for e in entries if e["isValidation"]][:12]
        return [e for e in entries if not e["isValidation"]][:12] + val
    sys.path.insert(0, os.path.join(REPO_ROOT, "tests"))
    from conftest import make_synthetic_mpii
    return make_synthetic_mpii(os.path.join(work, "synth"), n_images=8)[1]


def seeds_mpii_json(work):
    entries = _json_entries(work)
    return {"mpii_annotations.json": json.dumps(entries).encode("utf-8"),
            "mpii_annotations.json.gz": gzip.compress(json.dumps(entries).encode("utf-8"))}, \
        entries


def seeds_hrnet_json(work):
    path = os.path.join(SHARED, "images", "val", "test_mpii.json")
    if os.path.isfile(path):
        items = json.load(open(path))
    else:
        items = [{"image": "a%d.jpg" % k, "center": [100.0 + k, 120.0], "scale": 1.2,
                  "joints": [[50.0 + j, 60.0 + j] for j in range(16)],
                  "joints_vis": [1] * 16} for k in range(5)]
    return {"valid.json": json.dumps(items).encode("utf-8")}, items


def seeds_dataset_txt(work):
    from hgpipe.data.readers import read_mpii_json, write_dataset_txt
    entries = _json_entries(work)
    src = os.path.join(work, "seed.json")
    with open(src, "w") as handle:
        json.dump(entries, handle)
    path = os.path.join(work, "seed.txt")
    write_dataset_txt([r for r in read_mpii_json(src) if r.problem() is None], path)
    return {"dataset.txt": open(path, "rb").read()}, None


def seeds_mat(work):
    import numpy as np
    import scipy.io
    path = os.path.join(SHARED, "val", "detections.mat")
    seeds = {}
    if os.path.isfile(path):
        mat = scipy.io.loadmat(path)
        keep = {k: mat[k][:, :16] for k in ("annolist", "RELEASE_img_index",
                                            "RELEASE_person_index")}
        out = os.path.join(work, "detections.mat")
        scipy.io.savemat(out, keep, do_compression=False)
        seeds["detections.mat"] = open(out, "rb").read()
        scipy.io.savemat(out, keep, do_compression=True)
        seeds["detections_z.mat"] = open(out, "rb").read()
    else:  # an official-layout RELEASE with two annotated persons
        point = np.zeros((1, 16), dtype=[("id", "O"), ("x", "O"), ("y", "O"),
                                         ("is_visible", "O")])
        for j in range(16):
            point[0, j] = (np.array([[j]]), np.array([[100.0 + j]]), np.array([[90.0 + j]]),
                           np.array(["1"]))
        rect = np.zeros((1, 2), dtype=[("x1", "O"), ("y1", "O"), ("x2", "O"), ("y2", "O"),
                                       ("scale", "O"), ("objpos", "O"), ("annopoints", "O")])
        objpos = np.zeros((1, 1), dtype=[("x", "O"), ("y", "O")])
        objpos[0, 0] = (np.array([[110.0]]), np.array([[100.0]]))
        annopoints = np.zeros((1, 1), dtype=[("point", "O")])
        annopoints[0, 0] = (point,)
        for r in range(2):
            rect[0, r] = (np.array([[1.0]]), np.array([[2.0]]), np.array([[30.0]]),
                          np.array([[40.0]]), np.array([[1.5]]), objpos, annopoints)
        image = np.zeros((1, 1), dtype=[("name", "O")])
        image[0, 0] = (np.array(["x.jpg"]),)
        annolist = np.zeros((1, 1), dtype=[("image", "O"), ("annorect", "O")])
        annolist[0, 0] = (image, rect)
        release = np.zeros((1, 1), dtype=[("annolist", "O"), ("img_train", "O")])
        release[0, 0] = (annolist, np.array([[1]]))
        out = os.path.join(work, "release.mat")
        scipy.io.savemat(out, {"RELEASE": release}, do_compression=False)
        seeds["release.mat"] = open(out, "rb").read()
    return seeds, None


def seeds_images(work):
    import cv2
    import numpy as np
    names = []
    for folder in ("val", "train"):
        full = os.path.join(SHARED, "images", folder)
        if os.path.isdir(full):
            names += [os.path.join(full, n) for n in sorted(os.listdir(full))
                      if n.endswith(".jpg") and os.path.getsize(os.path.join(full, n)) < 120000]
    if names:
        seeds = {os.path.basename(n): open(n, "rb").read() for n in names[:3]}
        small = cv2.resize(cv2.imread(names[0]), (96, 64))
    else:
        small = np.random.RandomState(0).randint(0, 255, (64, 96, 3)).astype(np.uint8)
        seeds = {"a.jpg": cv2.imencode(".jpg", small)[1].tobytes()}
    seeds["small.png"] = cv2.imencode(".png", small)[1].tobytes()
    seeds["small.bmp"] = cv2.imencode(".bmp", small)[1].tobytes()
    seeds["progressive.jpg"] = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_PROGRESSIVE,
                                                            1])[1].tobytes()
    return seeds, None


def seeds_head_boxes(work):
    """The committed demo's head_boxes.json (its first 40 persons), fuzzed beside the
    demo annotation rows of those persons, read as prepare reads them: through
    read_annotations, which looks up head_boxes.json beside a non-MPII JSON file."""
    demo = os.path.join(REPO_ROOT, "data", "demo", "annotations")
    boxes = json.load(open(os.path.join(demo, "head_boxes.json")))
    keep = dict((key, boxes[key]) for key in sorted(boxes)[:40])
    rows = [row for row in json.load(open(os.path.join(demo, "mpii_annotations.json")))
            if "%d,%d" % (row["annolist_index"], row["people_index"]) in keep]
    case = os.path.join(work, "case")
    os.makedirs(case)
    with open(os.path.join(case, "mpii_annotations.json"), "w") as handle:
        json.dump(rows, handle)
    return {"head_boxes.json": json.dumps(keep, indent=0).encode("utf-8")}, keep


SEEDS = {"mpii_json": seeds_mpii_json, "head_boxes": seeds_head_boxes, "hrnet_json": seeds_hrnet_json,
         "dataset_txt": seeds_dataset_txt, "mat": seeds_mat, "images": seeds_images}


def main(reader, seed, cases, work):
    from hgpipe.data.images import ImageError, decode_image
    from hgpipe.data.readers import AnnotationError, read_annotations
    seeds, tree = SEEDS[reader](work)
    rng = random.Random(seed)
    signal.signal(signal.SIGALRM, _alarm)
    counts = {"cases": 0, "read": 0, "refused": 0}
    names = sorted(seeds)
    for case in range(cases):
        name = names[case % len(names)]
        if tree is not None and rng.random() < 0.4:
            text = json.dumps(mutate_tree(tree, rng)).encode("utf-8")
            data = gzip.compress(text) if name.endswith(".gz") else text
        else:
            data = mutate_bytes(seeds[name], rng)
        path = os.path.join(work, "case", name)
        if not os.path.isdir(os.path.dirname(path)):
            os.makedirs(os.path.dirname(path))
        with open(path, "wb") as handle:
            handle.write(data)
        signal.alarm(CASE_SECONDS)
        try:
            if reader == "images":
                decode_image(path, rng.choice([1, 2, 4, 8]))
            elif reader == "head_boxes":
                read_annotations(os.path.join(os.path.dirname(path),
                                              "mpii_annotations.json"))
            else:
                read_annotations(path)
            counts["read"] += 1
        except (AnnotationError, ImageError) as exc:
            message = str(exc)
            if len(message.splitlines()) != 1 or path not in message and \
                    os.path.basename(path) not in message:
                print("case %d (%s): not one line naming the file: %r" % (case, name,
                                                                         message[:500]))
                return 1
            counts["refused"] += 1
        except BaseException:
            print("case %d (%s, seed %d): %s" % (case, name, seed,
                                                traceback.format_exc()[-3000:]))
            keep = os.path.join(work, "failing-case-%d-%s" % (case, name))
            os.rename(path, keep)
            print("kept as %s" % keep)
            return 1
        finally:
            signal.alarm(0)
        counts["cases"] += 1
    counts["max_rss_mb"] = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    limit = int(os.environ.get("HGPIPE_FUZZ_AS_BYTES", 2 * 1024 ** 3))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    sys.exit(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
