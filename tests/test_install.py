"""README's install lines, resolved by pip against PyPI on this lane's Python.

Every ``pip install`` line of README's Install section is run as
``pip install --dry-run --ignore-installed --report``: pip resolves the whole dependency
tree as on a clean virtualenv (installed packages are ignored) and reports what it would
install, without installing (seconds of CPU, but a minute or more of network round trips:
the lines run in parallel, in the background from the end of collection on, see
conftest.py). The project is copied first (setup.py, README.md,
hgpipe/__init__.py: all that its metadata needs), so the work tree gets no egg-info.

Each line's comment says which Python it is for and which TensorFlow it installs; on that
Python the resolve must succeed with that TensorFlow, elsewhere it must fail naming the
TensorFlow requirement. Skips without PyPI (the tests must pass on a plane).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

from conftest import REPO_ROOT

README = os.path.join(REPO_ROOT, "README.md")
LANE_37 = os.path.join(REPO_ROOT, "requirements", "py37-tf115.txt")
ONNX_PACKAGES = ("tf2onnx", "onnx", "onnxruntime")  # the [onnx] extra (export --onnx)
COCO_PACKAGES = ("pycocotools",)  # the [coco] extra (COCO-format files, OKS AP)
OFFLINE = ("NewConnectionError", "Temporary failure in name resolution",
           "Network is unreachable", "Failed to establish a new connection")


def readme_install_lines():
    """(extra or '', comment) for each ``pip install`` line of README's Install section."""
    text = open(README).read()
    section = text.split("\n## Install\n", 1)[1].split("\n## ", 1)[0]
    lines = []
    for line in section.splitlines():
        match = re.match(r"pip install -e (?:'\.\[(\w+)\]'|\.)\s+# (.*)$", line)
        if line.startswith("pip install"):
            assert match, "README install line not understood: %r" % line
            lines.append((match.group(1) or "", match.group(2)))
    return lines


def python_matches(comment):
    """Does the comment's 'Python 3.7:' / 'Python 3.8+:' include this interpreter?"""
    match = re.match(r"Python (\d+)\.(\d+)(\+?):", comment)
    if match is None:
        return True  # no Python named: meant for every supported one
    wanted = (int(match.group(1)), int(match.group(2)))
    return sys.version_info[:2] >= wanted if match.group(3) else sys.version_info[:2] == wanted


def claimed_tensorflow(comment):
    """(distribution, version text) the comment says the line installs, or None."""
    if comment.startswith("no TensorFlow"):
        return None
    match = re.search(r"\b(tensorflow(?:-cpu)?) (\d[\w.]*)", comment)
    assert match, "README install comment names no TensorFlow: %r" % comment
    return match.group(1), match.group(2)


def version_tuple(text):
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def _minimal_project(dest):
    """What setup.py needs to produce the metadata, copied to ``dest``."""
    os.makedirs(os.path.join(dest, "hgpipe"))
    for name in ("setup.py", "README.md", os.path.join("hgpipe", "__init__.py")):
        shutil.copy(os.path.join(REPO_ROOT, name), os.path.join(dest, name))
    return dest


_STARTED = {}


def start_resolves():
    """Launch one pip resolve per README install line, in the background.

    Called by conftest.py as soon as collection selects this module, so that the minute
    of network round trips overlaps the other tests instead of adding to the run.
    """
    if _STARTED:
        return _STARTED
    workdir = tempfile.mkdtemp(prefix="hgpipe-install-")
    project = _minimal_project(os.path.join(workdir, "hgpipe"))
    _STARTED["workdir"] = workdir
    for extra, _comment in readme_install_lines():
        target = "%s[%s]" % (project, extra) if extra else project
        report = os.path.join(workdir, (extra or "base") + ".json")
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
               "--no-build-isolation", "--quiet", "--report", report, "-e", target]
        _STARTED[extra] = (report, subprocess.Popen(
            cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    return _STARTED


def pip_can_report():
    pip_version = subprocess.check_output([sys.executable, "-m", "pip", "--version"])
    return version_tuple(pip_version.split()[1].decode()) >= (22, 2)


@pytest.fixture(scope="module")
def resolved():
    """{extra: (returncode, report or None, output)} for every README install line."""
    if not pip_can_report():
        pytest.skip("this pip has no --dry-run --report (22.2+)")
    started = start_resolves()
    results = {}
    try:
        for extra, _comment in readme_install_lines():
            report, proc = started[extra]
            output = proc.communicate(timeout=900)[0].decode("utf-8", "replace")
            if proc.returncode != 0 and any(word in output for word in OFFLINE):
                pytest.skip("PyPI is not reachable: %s" % output.strip().splitlines()[-1])
            data = json.load(open(report)) if proc.returncode == 0 else None
            results[extra] = (proc.returncode, data, output)
    finally:
        for extra, (report, proc) in [(k, v) for k, v in started.items() if k != "workdir"]:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        shutil.rmtree(started["workdir"], ignore_errors=True)
    return results


def _installs(report):
    return {item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"]
            for item in report["install"]}


def test_readme_names_the_extras_setup_py_defines():
    setup_text = open(os.path.join(REPO_ROOT, "setup.py")).read()
    extras = [extra for extra, _ in readme_install_lines()]
    assert "" in extras and {"tf115", "cpu", "gpu"} <= set(extras)
    for extra in extras:
        if extra:
            assert '"%s":' % extra in setup_text


def test_each_readme_install_line_resolves_as_its_comment_says(resolved):
    for extra, comment in readme_install_lines():
        code, report, output = resolved[extra]
        claim = claimed_tensorflow(comment)
        label = "pip install -e .%s on Python %d.%d" % (
            "[%s]" % extra if extra else "", sys.version_info[0], sys.version_info[1])
        if not python_matches(comment):
            assert code != 0, "%s resolved, but README says it is for %s" % (label, comment)
            assert claim[0] in output, output  # pip names what has no release here
            continue
        assert code == 0, "%s failed:\n%s" % (label, output)
        installs = _installs(report)
        assert "hgpipe" in installs
        tensorflows = {name for name in installs
                       if name in ("tensorflow", "tensorflow-cpu", "tensorflow-gpu")}
        if claim is None:
            assert not tensorflows, "%s would install %s" % (label, tensorflows)
            continue
        name, version = claim
        assert tensorflows == {name}, (label, tensorflows)
        if version.endswith(".x"):  # "2.x, the newest release (2.12 or later)"
            floor = re.search(r"\((\d+\.\d+) or later", comment).group(1)
            assert version_tuple(installs[name])[0] == version_tuple(version)[0], installs[name]
            assert version_tuple(installs[name]) >= version_tuple(floor), installs[name]
        else:
            assert installs[name] == version, (label, installs[name])


def test_tf115_extra_installs_what_the_py37_lane_pins(resolved):
    if sys.version_info[:2] != (3, 7):
        pytest.skip("the tf115 extra is for Python 3.7")
    code, report, output = resolved["tf115"]
    assert code == 0, output
    installs = _installs(report)
    for line in open(LANE_37):
        match = re.match(r"([\w.-]+)==([\w.]+)", line.strip())
        if match:
            name = match.group(1).lower().replace("_", "-")
            if name == "pytest":
                continue  # the lane's test runner, not a dependency of hgpipe
            if name in ONNX_PACKAGES + COCO_PACKAGES:
                continue  # optional, pinned by the [onnx] / [coco] extra: see below
            assert installs.get(name) == match.group(2), (name, installs.get(name))


def test_onnx_extra_pins_the_py37_lane_versions_on_python_37():
    """``export --onnx``'s packages are no part of [tf115]; on Python 3.7 the [onnx] extra
    pins the versions the py37 lane installs and tests (read from setup.py's text: no
    network needed)."""
    setup_text = open(os.path.join(REPO_ROOT, "setup.py")).read()
    pinned = {}
    for line in open(LANE_37):
        match = re.match(r"([\w.-]+)==([\w.]+)", line.strip())
        if match and match.group(1).lower() in ONNX_PACKAGES:
            pinned[match.group(1).lower()] = match.group(2)
    assert sorted(pinned) == sorted(ONNX_PACKAGES)
    for name, version in pinned.items():
        assert "\"%s==%s; python_version < '3.8'\"" % (name, version) in setup_text, name


def test_coco_extra_pins_the_py37_lane_version_on_python_37():
    """pycocotools is no part of [tf115] either: the [coco] extra pins, on Python 3.7,
    the version the py37 lane installs and tests (setup.py's text: no network needed)."""
    setup_text = open(os.path.join(REPO_ROOT, "setup.py")).read()
    pinned = [re.match(r"([\w.-]+)==([\w.]+)", line.strip()) for line in open(LANE_37)]
    pinned = dict(m.groups() for m in pinned if m and m.group(1).lower() in COCO_PACKAGES)
    assert sorted(pinned) == sorted(COCO_PACKAGES)
    for name, version in pinned.items():
        assert "\"%s==%s; python_version < '3.8'\"" % (name, version) in setup_text, name
