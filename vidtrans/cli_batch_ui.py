"""The terminal display of `vidtrans batch`: progress while it runs, tables at the end.

The batch itself (`vidtrans.batch`) only reports events to a `BatchListener`; how they look on a
terminal, or in a log file when stderr is not one, is the command line's business.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from vidtrans.batch import BatchListener, BatchReport, ClipResult
from vidtrans.errors import count, one_line
from vidtrans.video.reader import corrupt_frames_note


class RichDisplay(BatchListener):
    """Overall bars (clips, frames) and one line per worker saying what it does; on a console that is
    not a terminal (a log file), one line per translated or failed clip instead. A clip translated
    with nobody in most frames gets a warning line either way, worded as `vidtrans run` words it."""

    def __init__(self, console, stop: threading.Event | None = None):
        self.console = console
        self._stop = stop or threading.Event()  # set when the batch should stop (the CLI's stop signals)
        # Plain text, never markup or emoji codes: "take [a].mp4" and ":x: take.mp4" are shown as named.
        self.bar = Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[info]}", markup=False), console=console,
                            disable=not console.is_terminal)
        self._lock = threading.Lock()
        self._workers: dict[str, Any] = {}
        self._counted: dict[str, int] = {}
        self._frames = 0
        self._started = time.perf_counter()

    def __enter__(self) -> "RichDisplay":
        self.bar.start()
        self._clips = self.bar.add_task("clips", total=None, info="")
        self._frames_task = self.bar.add_task("frames", total=None, info="")
        return self

    def __exit__(self, *exc) -> None:
        self.bar.stop()

    def begin(self, clips: int, to_do: int) -> None:
        self._started = time.perf_counter()
        self.bar.update(self._clips, total=clips, info=f"{clips - to_do} already done or refused")

    def clip_started(self, worker: str, clip: str) -> None:
        with self._lock:
            self._counted[worker] = 0
            if worker not in self._workers:
                self._workers[worker] = self.bar.add_task(worker, total=None, info="")
        self.bar.update(self._workers[worker], completed=0, total=None, info=f"{one_line(clip)}: opening")

    def clip_progress(self, worker: str, clip: str, done: int, total: int, phase: str) -> None:
        with self._lock:
            if phase == "translating":
                self._frames += done - self._counted.get(worker, 0)
                self._counted[worker] = done
            fps = self._frames / max(time.perf_counter() - self._started, 1e-9)
        self.bar.update(self._workers[worker], completed=done, total=max(total, done) or None,
                        info=f"{one_line(clip)}: {phase}")
        self.bar.update(self._frames_task, completed=self._frames, info=f"{fps:.1f} fps")

    def clip_finished(self, worker: str, result: ClipResult) -> None:
        self.bar.advance(self._clips)
        if worker:
            self.bar.update(self._workers[worker], info="idle")
        if not self.console.is_terminal and result.status != "skipped":
            how = f"{count(result.frames, 'frame')} in {result.seconds:.1f} s" if result.status == "done" else \
                _reason(result)
            if result.status == "done" and result.frames_without_person:
                how += f"; no person in {result.frames_without_person} of {result.frames} frames"
            if result.status == "done" and result.corrupt_frames:
                how += f"; {corrupt_frames_note(result.corrupt_frames)}"
            if result.status == "done" and result.pose:  # as `run` says it: also where the input was pose maps
                how += f"; pose: {result.pose}"
            # One line per clip whatever its name holds: a newline as the two characters \n, as errors have it.
            self._say(f"{result.status} {result.input}: {how}")
        # Skipped clips were warned about when they were translated (their report rows keep it).
        if result.status == "done" and result.warning:
            self._say(f"vidtrans: warning: {result.input}: {result.warning}")

    def stop_asked(self) -> bool:
        return self._stop.is_set()

    def notice(self, text: str, worker: str = "") -> None:
        self._say(f"vidtrans: warning: {text}")
        if worker in self._workers:
            self.bar.update(self._workers[worker], info="lost")

    def _say(self, line: str) -> None:
        """One line through the console, which prints above the bars on a terminal; as a Text, so
        that whatever console it is, names are never read as markup or emoji codes."""
        self.console.print(Text(one_line(line)), highlight=False, soft_wrap=True)


def summary_tables(report: BatchReport) -> list:
    """Rich tables for the end of a batch: clips, frames, seconds and fps per status; the failures."""
    # The model's name is its folder's, which may hold a newline as clip names may. Names go in as
    # Text: a str would be read by the console as markup or emoji codes (":x: take.mp4" as a picture).
    title = Text(f"vidtrans batch: {one_line(report.model)}", style="table.title")  # the style a str title gets
    table = Table("status", "clips", "frames", "seconds", "fps", title=title)
    for status in ("done", "skipped", "failed"):
        clips = [c for c in report.clips if c.status == status]
        frames, seconds = sum(c.frames for c in clips), sum(c.seconds for c in clips)
        table.add_row(status, str(len(clips)), str(frames) if status == "done" else "",
                      f"{seconds:.1f}" if status == "done" else "", _fps(frames, seconds))
    totals = report.totals()
    table.add_row("all (wall clock)", str(totals["clips"]), str(totals["frames"]), f"{report.seconds:.1f}",
                  _fps(totals["frames"], report.seconds), style="bold")
    if not report.failed:
        return [table]
    failures = Table("failed clip", "reason", title="failures")
    # A long path is folded, not cut short: on a terminal this table alone names the failed clips.
    for column in failures.columns:
        column.overflow = "fold"
    for clip in report.failed:
        failures.add_row(Text(one_line(clip.input)), Text(one_line(_reason(clip))))
    return [table, failures]


def _fps(frames: int, seconds: float) -> str:
    """Frames per second in a summary row; nothing where no frame was translated (every clip
    skipped or failed), as there is no speed to give."""
    return f"{frames / seconds:.1f}" if frames and seconds else ""


def _reason(clip: ClipResult) -> str:
    """Why `clip` failed, without its name where the error starts with it (shown beside it already):
    as a batch's errors name it (control characters escaped, `batch.failure_line`), as it is, or with
    any run of white space as one space (as earlier versions did, which a caller's results may keep)."""
    error = clip.error or ""
    for name in (one_line(clip.input), clip.input, " ".join(clip.input.split())):
        if error.startswith(f"{name}: "):
            return error[len(name) + 2:]
    return error
