"""Keep TensorFlow's start-up chatter off the user's terminal without losing real errors.

Importing TensorFlow 2.x prints, from C++ straight to file descriptor 2 and before any
Python logging setting can act, ``WARNING: All log messages before absl::InitializeLog()
is called are written to STDERR`` and an ``I0000 ... oneDNN custom operations are on``
line, twice: ``libtensorflow_framework.so.2`` and the profiler's
``_pywrap_profiler_plugin.so`` each carry a copy of that start-up code and each runs it
when loaded (seen with ``LD_DEBUG=files`` on TF 2.21).
``TF_CPP_MIN_LOG_LEVEL`` cannot silence them: they are written before absl's logging
reads it. A newcomer reads them as errors.

:func:`quiet_native_stderr` points descriptor 2 at a temporary file while the block runs
and afterwards writes back every line that is not known noise, so warnings from Python,
tracebacks and TensorFlow's E (error) and F (fatal) lines still reach the user. With
``HGPIPE_DEBUG=1`` nothing is captured. (A process killed inside the block, e.g. by a
fatal C++ check, loses what was captured: rerun with ``HGPIPE_DEBUG=1`` to see it.)

:func:`captured_decoder_lines` does the same around one image decode, for the lines
libpng and libjpeg print on their own about a damaged file ("libpng error: IDAT: CRC
error", "Corrupt JPEG data: premature end of data segment"): the decoder turns them into
hgpipe's one line naming the file (:func:`hgpipe.data.images.decode_image`).
"""
import contextlib
import os
import re
import sys
import tempfile
import threading

# Lines that only say TensorFlow started: absl's pre-initialisation notice, and glog-style
# lines of severity I (info) or W (warning) in TF 2.x ("I0000 00:00:1796045295.372316 6160
# port.cc:153] ...") and TF 1.x ("2026-11-30 13:28:26.936757: I tensorflow/core/...") form,
# with the one continuation line TF 2.x writes under its CPU-feature notice.
NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^ ]+:\d+\]"
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IW] "
    r"|To enable the following instructions: .*rebuild TensorFlow)")


def is_noise(line):
    """True for a start-up line that says nothing the user must act on."""
    return NOISE.match(line) is not None


def debug_requested():
    return bool(os.environ.get("HGPIPE_DEBUG"))


@contextlib.contextmanager
def _descriptor2_captured(handle_text):
    """Point descriptor 2 at a temporary file during the block; once it is restored
    (also when the block raises), hand what was written to ``handle_text``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            handle_text(captured.read().decode("utf-8", "replace"))


def _write_back(lines):
    if lines:
        sys.stderr.write("".join(lines))
        sys.stderr.flush()


def _replay_all_but_noise(text):
    _write_back([line for line in text.splitlines(True) if not is_noise(line)])


@contextlib.contextmanager
def quiet_native_stderr():
    """Capture descriptor 2 during the block; replay all but :func:`is_noise` lines."""
    if debug_requested():
        yield
        return
    with _descriptor2_captured(_replay_all_but_noise):
        yield


# What the image libraries inside OpenCV print on their own while decoding a damaged
# file: libpng's "libpng warning: ..." / "libpng error: ...", libjpeg's messages
# (jerror.h: "Corrupt JPEG data: ...", "Premature end of JPEG file", "Invalid SOS
# parameters for sequential JPEG", "Bogus marker length", "Unsupported marker type
# 0x..", "Huffman table 0x.. was not defined", "Warning: unknown JFIF revision
# number ..."), and OpenCV's own imgcodecs warnings ("[ WARN:0@0.1] global
# grfmt_png.cpp:...", and "imdecode_(''): can't read data: OpenCV(4.8.1) ... error:
# (-2:Unspecified error) Unexpected end of input stream ..." followed by an empty
# line, for a decoder's exception OpenCV caught). tests/test_image_damage.py and the images
# fuzz of tests/test_fuzz_readers.py check that no other line leaks out of a decode.
DECODER_LINE = re.compile(
    r"^(libpng (warning|error)|libjpeg|JPEG|Corrupt JPEG|Premature end of JPEG"
    r"|Invalid (JPEG|SOS|component|progression|scan|color|crop|memory pool)"
    r"|Inconsistent progression|Not a JPEG|Bogus |Unsupported (marker|JPEG|color)"
    r"|Huffman table|Quantization table|Unknown (APP|Adobe)|Improper call|Empty input"
    r"|Wrong JPEG|Sampling factors|Maximum supported image dimension"
    r"|Warning: (unknown JFIF|thumbnail)|Application transferred|imdecode_\("
    r"|\[ ?(WARN|ERROR)[^\]]*\].*(imgcodecs|grfmt|imdecode|bitstrm|exif))")

_redirect_lock = threading.Lock()


def _new_lock_in_child():
    global _redirect_lock
    _redirect_lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # Python 3.7+: a fork waits for a capture to end
    os.register_at_fork(before=lambda: _redirect_lock.acquire(),
                        after_in_parent=lambda: _redirect_lock.release(),
                        after_in_child=_new_lock_in_child)


@contextlib.contextmanager
def captured_decoder_lines():
    """Capture descriptor 2 while an image is decoded; yields a list that receives the
    image libraries' lines (:data:`DECODER_LINE`), so that the caller can turn them into
    its own one line naming the file. Any other line (another thread's, Python's) is
    written back at the end of the block, which lasts one decode.

    One capture at a time per process (a lock), and a fork waits for it to end, so a
    forked prepare worker never starts with its descriptor 2 pointing at a capture.
    With ``HGPIPE_DEBUG=1`` the library's lines are written back as well.
    """
    lines = []
    with _redirect_lock, _descriptor2_captured(lambda text: _sort_lines(text, lines)):
        yield lines


_OPENCV_CAUGHT = re.compile(r"^imdecode_\(.*?\): (.*?): OpenCV\(.*? error: \(.*?\) (.*)$")


def _readable(line):
    """OpenCV's report of a decoder exception without its build path and error code:
    "can't read data: Unexpected end of input stream in function 'readBlock'"."""
    caught = _OPENCV_CAUGHT.match(line)
    return "%s: %s" % caught.groups() if caught else line


def _sort_lines(text, decoder_lines):
    """Collect the image libraries' lines; write every other line back to stderr."""
    kept = []
    for line in text.splitlines(True):
        if not line.strip():  # OpenCV's empty line after its own; nothing to lose
            continue
        ours = DECODER_LINE.match(line) is not None
        if ours:
            decoder_lines.append(_readable(line.strip()))
        if debug_requested() or not ours:
            kept.append(line)
    _write_back(kept)
