"""Plain progress lines for a run without a terminal, and the logdir's ``train.log``.

Under nohup, SLURM or ``> out.txt`` tqdm's bar turns itself off (it draws only on a
terminal), and before this module such a run printed nothing between validations: a
user could not tell a slow run from a stuck one. When the bar is off, the trainer
prints one plain line every ``[Train] log_every`` steps, at most one per
``[Train] print_seconds`` (so a fast GPU run does not fill a SLURM file), plus the
run's first and last steps::

    step 120/600 loss 0.001234 lr 2.50e-03 img/s 41.3 wait 2.1% eta 0:00:12

img/s and wait (the share of step time spent waiting for input) are measured over the
steps since the previous line; eta is the remaining steps at the run's wall-clock pace
so far (validations and checkpoints included, as they will be again).

The same lines, and every other line the trainer prints while the bar is off (resume,
validation, the ModelZoo lines), go to ``train.log`` in the logdir. The file is only
ever appended to - a resumed run adds to it after a header line naming the step it
starts from - with each line one ``write`` on an ``O_APPEND`` descriptor, flushed to
disk, so a killed run leaves every whole line it printed; a torn last line is ended
before the next run appends.
"""
import os
import time

LOG_FILE = "train.log"


def bar_shown(progress, stream):
    """Whether tqdm draws a bar: asked for and ``stream`` (its output) is a terminal."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(progress and isatty is not None and isatty())
    except ValueError:  # a closed stream
        return False


def format_duration(seconds):
    seconds = int(round(max(0.0, seconds)))
    return "%d:%02d:%02d" % (seconds // 3600, seconds % 3600 // 60, seconds % 60)


class TrainLog(object):
    """``train.log`` in a logdir, opened for appending for one run."""

    def __init__(self, logdir):
        self.path = os.path.join(logdir, LOG_FILE)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        if os.fstat(self._fd).st_size and not self._ends_with_newline():
            os.write(self._fd, b"\n")  # a line torn by a killed run is ended, not joined

    def _ends_with_newline(self):
        with open(self.path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"

    def write(self, line):
        if self._fd is None:
            return
        os.write(self._fd, (line.rstrip("\n") + "\n").encode("utf-8"))
        os.fsync(self._fd)

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class StepPrinter(object):
    """Decides when a plain step line is due and words it."""

    def __init__(self, first_step, total_steps, batch_size, log_every, print_seconds,
                 clock=time.time):
        self.first_step, self.total_steps = first_step, total_steps
        self.batch_size, self.log_every, self.print_seconds = (batch_size, log_every,
                                                               print_seconds)
        self.clock = clock
        self.started = clock()
        self.last_printed = None   # clock time of the last line
        self.last_index = 0        # index into the run's step lists at the last line

    def due(self, step):
        if step == self.first_step + 1 or step >= self.total_steps:
            return True
        if step % self.log_every:
            return False
        return self.last_printed is None or \
            self.clock() - self.last_printed >= self.print_seconds

    def line(self, step, loss, learning_rate, step_times, step_waits):
        """The line for ``step``; rates over the steps since the previous line (the
        run's first step, graph warm-up, is never counted)."""
        start = max(1, self.last_index)
        elapsed = float(sum(step_times[start:]))
        rate = (len(step_times) - start) * self.batch_size / elapsed if elapsed > 0 else 0.0
        wait = float(sum(step_waits[start:])) / elapsed if elapsed > 0 else 0.0
        now = self.clock()
        done = step - self.first_step
        eta = (now - self.started) / done * (self.total_steps - step) if done > 0 else 0.0
        self.last_printed, self.last_index = now, len(step_times)
        return "step %d/%d loss %.6f lr %.2e img/s %.1f wait %.1f%% eta %s" % (
            step, self.total_steps, loss, learning_rate, rate, 100 * wait,
            format_duration(eta))
