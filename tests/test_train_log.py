"""`hgpipe train` without a terminal (nohup, SLURM, a pipe): plain step lines on stdout
and the same lines in the logdir's train.log, appended on resume."""
import io
import os
import re

import pytest

from conftest import cli_runner, prepare_synthetic_shards
from hgpipe.cli import main
from hgpipe.train.plain_log import LOG_FILE, StepPrinter, TrainLog, bar_shown

TINY = ["--set", "Network.nStacks=1", "--set", "Network.nFeats=16", "--set", "Network.nLow=1",
        "--set", "Train.batch_size=4", "--set", "Validation.validate_every=3",
        "--set", "Saver.saver_step=100"]
STEP_LINE = re.compile(r"^step (\d+)/(\d+) loss (\d+\.\d{6}) lr (\d\.\d\de[-+]\d\d) "
                       r"img/s (\d+\.\d) wait (\d+\.\d)% eta (\d+:\d\d:\d\d)$")


@pytest.fixture(scope="module")
def shards_dir(tmp_path_factory):
    return prepare_synthetic_shards(tmp_path_factory, 6, 4, "Prepare.variants=2")


def _train(shards_dir, logdir, *extra):
    # CliRunner's stdout/stderr are not terminals: the bar is off, as under nohup
    result = cli_runner().invoke(main, ["train", "--data", shards_dir, "--logdir", logdir]
                                 + TINY + list(extra), catch_exceptions=False)
    assert result.exit_code == 0, result.output + result.stderr
    return result


def test_no_terminal_prints_step_lines_and_keeps_train_log(shards_dir, tmp_path):
    logdir = str(tmp_path / "run")
    result = _train(shards_dir, logdir, "--steps", "4", "--set", "Train.log_every=2",
                    "--set", "Train.print_seconds=0")
    printed = [m.groups() for m in map(STEP_LINE.match, result.output.splitlines()) if m]
    # the first step, then every log_every steps; the last step always
    assert [int(g[0]) for g in printed] == [1, 2, 4]
    assert all(int(g[1]) == 4 for g in printed)
    assert float(printed[0][3]) == pytest.approx(2.5e-4, rel=1e-2)  # the default lr
    assert all(float(g[4]) > 0 for g in printed[1:])  # img/s measured after warm-up
    assert printed[-1][6] == "0:00:00"  # nothing left at the last step

    log = open(os.path.join(logdir, LOG_FILE)).read().splitlines()
    assert log[0].startswith("# ") and " UTC: hgpipe " in log[0]
    assert "train to step 4, nStacks=1, nFeats=16" in log[0]
    # every line the run printed is in the log, in order
    assert [line for line in log if not line.startswith("#")] == \
        [line for line in result.output.splitlines() if line]
    assert any(line.startswith("step 3: val PCKh@0.5") for line in log)
    assert any(line.startswith("Final Performance images/sec :") for line in log)

    # resume appends, after a header naming the step; a torn last line is ended first
    with open(os.path.join(logdir, LOG_FILE), "a") as out:
        out.write("step 5/9 loss 0.0")  # what a run killed mid-write could leave
    result = _train(shards_dir, logdir, "--steps", "6", "--set", "Train.log_every=2",
                    "--set", "Train.print_seconds=0")
    log2 = open(os.path.join(logdir, LOG_FILE)).read().splitlines()
    assert log2[:len(log)] == log
    assert log2[len(log)] == "step 5/9 loss 0.0"
    assert "train to step 6" in log2[len(log) + 1]
    assert any(line.startswith("resumed from") and "model.ckpt-4" in line
               for line in log2[len(log):])
    assert [int(m.group(1)) for m in map(STEP_LINE.match, log2[len(log):]) if m] == [5, 6]


def test_a_refused_run_says_why_in_train_log(shards_dir, tmp_path):
    logdir = str(tmp_path / "run")
    _train(shards_dir, logdir, "--steps", "1")
    result = cli_runner().invoke(main, ["train", "--data", shards_dir, "--logdir", logdir,
                                        "--steps", "2"] + TINY + ["--set", "Network.nFeats=32"])
    assert result.exit_code == 1 and "nFeats" in result.stderr
    last = open(os.path.join(logdir, LOG_FILE)).read().splitlines()[-1]
    assert last.startswith("stopped: ") and "nFeats" in last


def test_print_seconds_thins_the_lines(shards_dir, tmp_path):
    logdir = str(tmp_path / "run")
    result = _train(shards_dir, logdir, "--steps", "5", "--set", "Train.log_every=1",
                    "--set", "Train.print_seconds=3600")
    steps = [int(m.group(1)) for m in map(STEP_LINE.match, result.output.splitlines()) if m]
    assert steps == [1, 5]  # first and last only: an hour has not passed in between


def test_step_printer_interval_rates_and_eta():
    now = [100.0]
    printer = StepPrinter(first_step=10, total_steps=50, batch_size=4, log_every=5,
                          print_seconds=30, clock=lambda: now[0])
    assert printer.due(11)               # the run's first step
    assert not printer.due(12)           # not a multiple of log_every
    assert printer.due(15)               # nothing printed yet
    now[0] = 120.0                       # 10 steps in 20 s
    times, waits = [1.0] + [2.0] * 9 + [1.0] * 0, [0.5] + [0.5] * 9
    line = printer.line(20, 0.5, 1e-3, times, waits)
    # 9 steps after warm-up in 18 s: 2 img/s, 4.5 s waited of 18 = 25%; 30 steps at 2 s
    assert line == "step 20/50 loss 0.500000 lr 1.00e-03 img/s 2.0 wait 25.0% eta 0:01:00"
    now[0] = 140.0
    assert not printer.due(25)           # 20 s since the last line < 30
    now[0] = 150.0
    assert printer.due(25) and printer.due(50)
    line = printer.line(25, 0.25, 1e-3, times + [1.0] * 5, waits + [0.0] * 5)
    assert " img/s 4.0 wait 0.0% " in line  # only the 5 steps since the last line


def test_bar_shown_only_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            if self.closed:  # as a real file does
                raise ValueError("I/O operation on closed file")
            return True
    assert bar_shown(True, Terminal())
    assert not bar_shown(False, Terminal())
    assert not bar_shown(True, io.StringIO())
    closed = Terminal()
    closed.close()
    assert not bar_shown(True, closed)


def test_train_log_appends_whole_lines(tmp_path):
    log = TrainLog(str(tmp_path))
    log.write("one\n")
    log.write("two")
    log.close()
    log.write("after close is ignored")
    assert open(str(tmp_path / LOG_FILE)).read() == "one\ntwo\n"
