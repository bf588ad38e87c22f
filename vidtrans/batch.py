"""Translate a folder of clips: discovery, resumable runs, isolated failures, several clips in flight.

    from vidtrans.batch import translate_folder
    report = translate_folder("clips/", "out/", "pose2person", workers=2, smoothing="flow")  # RunOptions/BatchOptions fields
    report.totals(), [c.error for c in report.failed], report.save("report.json", overwrite=True)

The output tree mirrors the input tree. A manifest in the output folder (`.vidtrans-batch.jsonl`,
a log with a line appended and synced per update) records what was done with what, so a rerun
skips finished clips whose input, options and model are unchanged, and redoes the rest. Whole files
go to a pool of worker threads; the model is loaded once per device (`vidtrans.load_model`) and
shared by that device's workers, so one clip's decoding and encoding overlap another clip's model
work. With `ray` (an address), whole files go to Ray actors across machines instead, each holding
one model, while this process keeps the manifest, the lock and the listener as before: only where
a clip is translated changes. How a batch looks on a terminal is the CLI's
(`vidtrans.cli_batch_ui`); here it only reports to a `BatchListener`.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import csv
import dataclasses
import datetime
import errno
import fcntl
import fnmatch
import io
import json
import logging
import os
import signal
import socket
import stat
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from vidtrans.atomic import (LOCK_SUFFIX, TEMPORARY_PATTERN, cannot_write, check_destination, discard,
                             remove_if_unheld, same_file, special_file_kind, temp_path, write_atomically)
from vidtrans.errors import STOP_SIGNALS, ContainerError, UsageError, VidtransError, first_line, one_line
from vidtrans.options import (BatchOptions, EncodeOptions, RunOptions, check_path_text, option_names, output_settings,
                              plain, refuse_misspelt, shown, spell, spell_setting, spelled, spellings)
from vidtrans.pipeline import check_pose_settings, given_options, no_person_shows, translate_video
from vidtrans.video import check_output_settings, file_identity
from vidtrans.video.reader import COMMON_VIDEO_SUFFIXES, OTHER_VIDEO_SUFFIXES

if TYPE_CHECKING:  # torch is imported where a model is loaded, not by a batch that is refused before
    import torch

DEFAULT_PATTERNS = tuple("*" + suffix for suffix in COMMON_VIDEO_SUFFIXES)
# The others (outputs named as the clip could not always hold the codec: .mxf, .dv) a default batch
# names as left out (`_left_out`) rather than passing over them in silence.
MANIFEST_NAME = ".vidtrans-batch.jsonl"
LEGACY_MANIFEST_NAME = ".vidtrans-batch.json"  # before version 2: one JSON document, rewritten per update
MANIFEST_FORMAT, MANIFEST_VERSION = "vidtrans-batch-manifest", 2
# A manifest is rewritten with one line per clip when opened with more than two lines per clip
# (what a run that translates every clip leaves: running, then done or failed) plus this many.
COMPACT_SLACK = 64
REPORT_KEYS = {"input_dir", "output_dir", "model", "clips", "totals"}  # what tells an earlier report
# How often a thread waiting for a clip on Ray asks its actor how far it got (for the display).
RAY_PROGRESS_SECONDS = 0.5
# Ray retries an address that does not answer for minutes; a HOST:PORT is first tried here for this long,
# and ray.init is given this long too.
RAY_CONNECT_SECONDS = 5.0
RAY_INIT_SECONDS = 60.0
# How long a lost Ray worker may take to come back (Ray restarts its actor, which loads the model again)
# before the batch goes on without it.
RAY_RESTART_SECONDS = 120.0
# How often a batch waiting for its clips or workers asks its listener whether to stop.
STOP_POLL_SECONDS = 0.2

log = logging.getLogger(__name__)


class BatchUsageError(UsageError):
    """The folders or batch options make no sense (the CLI exits with 2 for these)."""


class ReportNotWritten(VidtransError):
    """The batch ran, but its report could not be written at the end (its folder removed or made
    read-only meanwhile, a full disk): `report` is the BatchReport it would have held, and the
    manifest records every clip as usual (the CLI prints the summary, then this, and exits with 1)."""

    def __init__(self, message: str, report: BatchReport):
        super().__init__(message)
        self.report = report


@dataclass
class ClipResult:
    input: str
    output: str
    status: str  # "done", "skipped" or "failed"
    frames: int = 0
    seconds: float = 0.0
    error: str | None = None
    # Pose models: frames in which nobody was found (None where nobody looked: RGB models, pose-map
    # input), and, when that is most of them, what `run` would warn about (see `Summary.no_person_warning`).
    frames_without_person: int | None = None
    warning: str | None = None
    corrupt_frames: int = 0  # replaced by the frame before (see the README's "Corrupt frames")
    # Pose models: how the clip's poses were had, as `run` says it ("input is pose maps": a pose-map
    # video, translated without detection); None for RGB models.
    pose: str | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"input": self.input, "output": self.output, "status": self.status, "frames": self.frames,
                "seconds": round(self.seconds, 3), "fps": round(self.fps, 3), "error": self.error,
                "frames_without_person": self.frames_without_person, "warning": self.warning,
                "corrupt_frames": self.corrupt_frames, "pose": self.pose}


# A CSV report's columns (its header row tells an earlier report): a clip's fields in the JSON report.
REPORT_COLUMNS = tuple(ClipResult("", "", "").to_dict())


@dataclass
class BatchReport:
    input_dir: str
    output_dir: str
    model: str
    clips: list[ClipResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[ClipResult]:
        return [c for c in self.clips if c.status == "failed"]

    def totals(self) -> dict[str, Any]:
        """Counts per status; frames and fps are those translated in this run, over its wall time, and
        frames_skipped those an earlier run translated for the skipped clips (their rows' frames), so
        the rows' frames add up to frames + frames_skipped."""
        frames = sum(c.frames for c in self.clips if c.status == "done")
        counts = {s: sum(c.status == s for c in self.clips) for s in ("done", "skipped", "failed")}
        return {"clips": len(self.clips), **counts, "frames": frames,
                "frames_skipped": sum(c.frames for c in self.clips if c.status == "skipped"),
                "seconds": round(self.seconds, 3), "fps": round(frames / self.seconds, 3) if self.seconds > 0 else 0.0}

    def to_dict(self) -> dict[str, Any]:
        return {"input_dir": self.input_dir, "output_dir": self.output_dir, "model": self.model,
                "clips": [c.to_dict() for c in self.clips], "totals": self.totals()}

    def to_csv(self) -> str:
        """One row per clip, the columns of a clip in `to_dict` (an empty cell for null), under a
        header row: what a spreadsheet opens (the totals are its sums)."""
        text = io.StringIO()
        rows = csv.DictWriter(text, REPORT_COLUMNS)
        rows.writeheader()
        rows.writerows({k: "" if v is None else v for k, v in c.to_dict().items()} for c in self.clips)
        return text.getvalue()

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> None:
        """Write the report, complete or not at all: as CSV where its name ends in .csv (`to_csv`),
        else as JSON (`to_dict`). Refused (BatchUsageError): one of the batch's clips, its manifest,
        a folder, or an existing file other than an earlier batch report (a rerun replaces its
        report) unless `overwrite`."""
        _check_report_path(path, Path(self.output_dir), [c.input for c in self.clips], [c.output for c in self.clips],
                           overwrite)
        path = Path(path)
        text = self.to_csv() if _is_csv(path) else json.dumps(self.to_dict(), indent=1) + "\n"
        # A clip's name that is no UTF-8 (bytes of another encoding) is written back as its bytes; JSON escapes it.
        write_atomically(path, lambda f: f.write(text.encode("utf-8", "surrogateescape")),
                         overwrite=overwrite or path.exists(), what="report")


class BatchListener:
    """What a batch reports while it runs; called from worker threads. Override what you need."""

    def begin(self, clips: int, to_do: int) -> None: ...

    def clip_started(self, worker: str, clip: str) -> None: ...

    def clip_progress(self, worker: str, clip: str, done: int, total: int, phase: str) -> None: ...

    def clip_finished(self, worker: str, result: ClipResult) -> None: ...

    def notice(self, text: str, worker: str = "") -> None:
        """Something the user should know while the batch runs (workers waiting for the Ray cluster's
        resources, a lost worker), one line; `worker` when it concerns one."""
        log.warning("%s", text)

    def stop_asked(self) -> bool:
        """Whether the batch should stop as Ctrl-C stops it (a Cancel button; the CLI's stop signals,
        whose KeyboardInterrupt may be lost on its way): asked from the batch's own thread every
        `STOP_POLL_SECONDS` while it waits for clips or workers."""
        return False


# --- discovery -------------------------------------------------------------------------------------


def find_clips(input_dir: str | os.PathLike, patterns: Sequence[str] = DEFAULT_PATTERNS, recursive: bool = True,
               exclude: Sequence[str | os.PathLike] = ()) -> list[Path]:
    """Files under `input_dir` whose name matches a pattern (case-insensitive), sorted.

    Hidden files and folders (names starting with '.') are left out (temporary files, macOS `._`
    files, .git), and so are the `exclude` folders (the output folder when it sits inside the
    input folder). Symlinked folders are followed, except one that leads to a folder already
    searched (a loop, or a second name for one folder): each folder is searched once, under its own
    name where it is in the tree, else under the first link to it found breadth first in name order
    (links are followed after the tree itself), so the names do not depend on the order the file
    system lists them in, and links that branch cannot multiply them. A subfolder holding a batch
    manifest is left out too, with a warning: another batch's outputs (an earlier output folder
    inside the input folder), which would be translated again, and again by every later batch.
    """
    return _discover(Path(input_dir), patterns, recursive, exclude)[0]


def _discover(root: Path, patterns: Sequence[str], recursive: bool, exclude: Sequence[str | os.PathLike]
              ) -> tuple[list[Path], list[Path], collections.Counter[str]]:
    """(find_clips's clips, the `exclude` folders met on the way, how many files of each of
    OTHER_VIDEO_SUFFIXES the patterns left out)."""
    skip = {_real(p) for p in exclude}
    lowered = [p.lower() for p in patterns]
    found: list[Path] = []
    met: list[Path] = []
    others: collections.Counter[str] = collections.Counter()
    searched = {_real(root): root}  # each folder searched, by its real path: the name it is searched under
    pending = collections.deque([root])
    links: collections.deque[Path] = collections.deque()  # linked folders, followed once the tree is searched
    while pending or links:
        if pending:
            folder = pending.popleft()
        else:
            folder = links.popleft()
            real = _real(folder)
            if real in searched:
                log.warning("%s is a link to %s, already searched; its clips are taken once, under that name",
                            folder, searched[real])
                continue
            searched[real] = folder
        if folder != root and (manifest := _manifest_in(folder)) is not None:
            log.warning("%s: is the output folder of a vidtrans batch (it holds %s); its clips are left out", folder,
                        manifest)
            continue
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as e:
            if folder == root:
                raise BatchUsageError(f"{root}: cannot list the folder ({e.strerror or e}); check its "
                                      "permissions") from e
            log.warning("%s: cannot list this folder (%s); its clips are left out", folder, e.strerror or e)
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(folder, entry.name)
            if _is_folder(entry):
                if not recursive:
                    continue
                real = _real(path)
                if real in skip:
                    met.append(path)
                elif entry.is_symlink():
                    links.append(path)
                elif real in searched:  # inside a linked folder, a folder the tree holds too
                    log.warning("%s is %s, already searched; its clips are taken once, under that name", path,
                                searched[real])
                else:
                    searched[real] = path
                    pending.append(path)
            elif any(fnmatch.fnmatchcase(entry.name.lower(), p) for p in lowered):
                found.append(path)
            elif (suffix := os.path.splitext(entry.name)[1].lower()) in OTHER_VIDEO_SUFFIXES:
                others[suffix] += 1
    return sorted(found, key=lambda p: p.relative_to(root).parts), met, others


def _left_out(others: collections.Counter[str], clips: list[Path]) -> str:
    """The files of other video formats a batch with the default patterns leaves out, and how to
    take them (with the kinds of `clips` it found too: patterns given replace the defaults)."""
    kinds = sorted(others, key=lambda suffix: (-others[suffix], suffix))
    found = sorted({clip.suffix.lower() for clip in clips})
    wanted = [f"*{suffix}" for suffix in found + kinds[:3]]
    example = (f"{spell('patterns')}={wanted!r}" if spell("patterns") == "patterns" else
               " ".join(f"{spell('patterns')} '{pattern}'" for pattern in wanted))
    return (f"{_counted(sum(others.values()), 'file')} of video formats the default patterns do not take "
            f"({', '.join(f'{others[s]} {s}' for s in kinds)}) left out; to translate them, name every pattern "
            f"wanted, e.g. {example}")


def _manifest_in(folder: Path) -> str | None:
    """The name of the batch manifest `folder` holds (this version's or an earlier one's), or None."""
    return next((name for name in (MANIFEST_NAME, LEGACY_MANIFEST_NAME) if os.path.isfile(folder / name)), None)


def _real(path: str | os.PathLike) -> Path:
    """The path with its links resolved, as Path.resolve() gives it, but never an error: a link
    that leads back to itself (`ln -s a.mp4 a.mp4`), among the clips or in the output tree, makes
    Path.resolve() raise RuntimeError; here it stays where the loop is, and fails its clip in one
    line when the clip is read."""
    return Path(os.path.realpath(path))


def _is_loop(path: str | os.PathLike) -> bool:
    """Whether `path` is a link that leads back to itself (directly or through other links)."""
    try:
        os.stat(path)
    except OSError as e:
        return e.errno == errno.ELOOP
    return False


def _is_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # through a link too
    except OSError:  # a link the file system refuses to follow: a file, which then fails in one line
        return False


def remove_leftovers(output_dir: str | os.PathLike, keep: Sequence[str | os.PathLike] = ()) -> list[Path]:
    """Delete the temporary and lock files killed runs left in the output tree (not under `keep`);
    returns them.

    Only what no live process is using: other vidtrans processes may be writing into the tree (a
    `run` with an output there, a batch into a subfolder). A lock file goes when no process holds
    it. A temporary file's name does not reliably say which output it is for, so a folder's
    temporary files go only when no lock there is held (else they stay for a later run). A
    subfolder another batch is writing into is that batch's to clean.
    """
    skip = {_real(p) for p in keep}
    removed = []
    for folder, dirs, files in os.walk(output_dir):
        here = Path(folder)
        dirs[:] = [d for d in dirs if _real(here / d) not in skip and not _batch_writing(here / d)]
        temporaries = [here / n for n in files if fnmatch.fnmatchcase(n, TEMPORARY_PATTERN)]
        # Listed again after the temporary files: a writer locks its output before it makes its
        # temporary file, so the lock of any temporary file listed above is listed here.
        try:
            locks = [here / name for name in os.listdir(here) if name.endswith(LOCK_SUFFIX)]
        except OSError:
            continue
        for lock in locks:
            remove_if_unheld(lock)
        held = [lock for lock in locks if os.path.lexists(lock)]
        removed += [lock for lock in locks if lock not in held]
        if held:
            continue
        for path in temporaries:
            with contextlib.suppress(OSError):  # gone already (published, discarded), or not ours to fight over
                path.unlink()
                removed.append(path)
    return removed


def _batch_writing(folder: Path) -> bool:
    """Whether another batch holds `folder` as its output folder (see `_exclusive`)."""
    try:
        fd = _lock_folder(folder)
    except OSError:  # cannot be opened: nothing to clean in it either
        return False
    if fd is not None:
        os.close(fd)
    return fd is None


def readable_fingerprint(path: Path) -> dict[str, Any]:
    """`fingerprint`, with a file that cannot be read a VidtransError saying so."""
    try:
        return fingerprint(path)
    except OSError as e:
        if (broken := _broken_link(path)) is not None:
            raise VidtransError(f"{path}: {broken}; remove it or point it at a clip") from e
        raise VidtransError(f"{path}: cannot read ({e.strerror or e})") from e


def _broken_link(path: Path) -> str | None:
    """What is wrong with `path` where it is a link that leads nowhere (back to itself, or to
    nothing), else None."""
    if _is_loop(path):
        return "is a link that leads back to itself"
    if os.path.islink(path):
        try:
            os.stat(path)
        except FileNotFoundError:  # not a target that cannot be reached (EACCES): that is said as such
            with contextlib.suppress(OSError):
                return f"is a link to {os.readlink(path)}, which does not exist"
        except OSError:
            pass
    return None


def fingerprint(path: Path) -> dict[str, Any]:
    """Size, modification time and a hash of the first MiB: cheap, and catches rewritten files.
    VidtransError for a FIFO, socket or device, which are not opened: a FIFO would wait for a writer
    forever, and the others are no clips either."""
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise VidtransError(f"{path}: not a regular file ({special_file_kind(info.st_mode)}); move it out of the "
                            f"input folder or narrow {spell('patterns')}")
    return {**file_identity(path), "mtime_ns": info.st_mtime_ns}


# --- manifest --------------------------------------------------------------------------------------


def _check_report_path(path: str | os.PathLike, output_dir: Path, inputs: Sequence[str | os.PathLike],
                       outputs: Sequence[str | os.PathLike], overwrite: bool) -> None:
    """Refuse a report path before any work: an empty one, the batch's manifest, one of its clips
    (outputs or inputs), a folder (also one the batch is yet to make for its outputs), a missing
    folder, or an existing file that is not an earlier report, unless `overwrite`."""
    if not os.fspath(path).strip():  # Path("") would be the current folder
        raise BatchUsageError(f"{spell('report')} is empty ({os.fspath(path)!r}); give a report file name such as "
                              "report.json")
    path = Path(path)
    if _is_loop(path):
        raise BatchUsageError(f"{spell('report')} {path}: is a link that leads back to itself; give a report file name "
                              "such as report.json")
    # A link among the clips that leads back to itself names no file, so the report cannot be it (and
    # same_file's Path.resolve() raises RuntimeError on it); that clip fails on its own, in one line.
    inputs, outputs = ([p for p in paths if not _is_loop(p)] for paths in (inputs, outputs))
    if same_file(path, output_dir / MANIFEST_NAME):
        raise BatchUsageError(f"{spell('report')} {path}: is the batch's own manifest; choose another report path")
    if any(same_file(path, out) for out in outputs):
        raise BatchUsageError(f"{spell('report')} {path}: is one of the batch's output clips; choose another report "
                              "path")
    made = {output_dir / parent for out in outputs for parent in Path(out).relative_to(output_dir).parents}
    if any(same_file(path, folder) for folder in made):
        raise BatchUsageError(f"{spell('report')} {path}: is a folder of the batch's outputs; give a report file name "
                              "such as report.json")
    # A report in the output folder the batch is yet to make has nothing in its way there.
    yet_to_make = not output_dir.exists() and os.path.abspath(path.parent) == os.path.abspath(output_dir)
    try:
        if not yet_to_make:
            check_destination(path, [*inputs, *outputs], overwrite=True)
            # Tried for real, as outputs are: the report is written last, and a folder that takes no
            # file (/proc, a read-only disk) would refuse it only after every clip was translated.
            discard(temp_path(path))
    except VidtransError as e:
        raise BatchUsageError(f"{spell('report')} {e}") from None
    # A link to nowhere too: it is a file in the way of the report (`check_destination`), not nothing.
    if os.path.lexists(path) and not overwrite and not _is_report(path):
        raise BatchUsageError(f"{spell('report')} {path}: already exists and is not a batch report; choose another "
                              f"path or pass {spell('overwrite=True')}")


def _is_csv(path: Path) -> bool:
    return path.suffix.lower() == ".csv"


def _is_report(path: Path) -> bool:
    """Whether `path` holds a batch report, JSON or CSV (`BatchReport.save`), whatever its name."""
    if not path.is_file():  # reading a FIFO would wait for a writer forever
        return False
    header = ",".join(REPORT_COLUMNS).encode()
    try:
        with open(path, "rb") as f:
            first = f.read(len(header) + 2)
            if first.rstrip(b"\r\n") == header:
                return True
            if first[:1] != b"{":  # not a JSON object (a video, say): not worth parsing
                return False
            f.seek(0)
            data = json.load(f)
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and REPORT_KEYS <= data.keys()


class Manifest:
    """OUTPUT_DIR/.vidtrans-batch.jsonl: what was done to each clip, as an append-only log.

    The first line is {"format", "version"}; each further line is one update, {"clip": input path
    relative to INPUT_DIR (posix), **record}, and the last line of a clip wins. A record has status
    ("running", "done" or "failed"), output (relative to OUTPUT_DIR), owned (whether a file at
    output is ours to replace), input (fingerprint), options, model_sha256, and frames, seconds,
    frames_without_person, warning, corrupt_frames, pose and output_size, or error, and finished (UTC ISO
    time). A new attempt's records keep the size of the output an earlier one wrote, which stays in
    place until the attempt succeeds: an output of another size was changed by someone else since.

    An update appends and syncs one line, so the bytes written grow with the number of updates
    (rewriting a whole JSON file per update grew with their square: 0.7 GB for 1,000 clips). On
    opening, a log of mostly replaced lines is rewritten with one line per clip, so it stays
    proportional to the clips however often a batch is rerun. The manifest of earlier versions
    (.vidtrans-batch.json, rewritten whole) is read once and replaced by the log.
    """

    def __init__(self, output_dir: Path, fresh: bool = False):
        """fresh: for a run that redoes every clip (--overwrite). A manifest that cannot be read is
        then started anew rather than refused; a readable one keeps each clip's record until the
        clip is redone, so a run stopped early leaves the clips it did not reach as recorded."""
        self.path = output_dir / MANIFEST_NAME
        self._lock = threading.Lock()
        try:
            self.clips, rewrite = _read_records(output_dir)
        except VidtransError:
            # Something that is no file there (a folder, a FIFO) cannot be replaced by a new manifest:
            # refused alike with or without --overwrite.
            if not fresh or (self.path.exists() and not self.path.is_file()):
                raise
            self.clips, rewrite = {}, True
        if rewrite:
            text = _header() + b"".join(_line(clip, record) for clip, record in self.clips.items())
            write_atomically(self.path, lambda f: f.write(text), overwrite=True, what="batch manifest")
            legacy = output_dir / LEGACY_MANIFEST_NAME
            if legacy.is_file():  # only an earlier manifest (see _read_records), never a user's folder or FIFO
                legacy.unlink(missing_ok=True)
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        except OSError as e:  # a read-only folder (or manifest) that was written before
            raise BatchUsageError(f"{self.path}: cannot write to {output_dir} ({e.strerror or e}); choose a writable "
                                  "output folder") from None

    def record(self, clip: str, **record: Any) -> None:
        line = _line(clip, record)
        with self._lock:
            if self._fd is None:
                # Closed: a stopped batch does not wait for clips inside a forward pass, and what they
                # tell afterwards is dropped; such a clip keeps its last record and is redone next time.
                return
            self.clips[clip] = record
            try:
                # One write per line and a sync: a killed process leaves whole lines behind.
                if os.write(self._fd, line) != len(line):
                    raise OSError("short write")
                os.fsync(self._fd)
            except OSError as e:
                raise cannot_write(self.path, "batch manifest", e) from e

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_manifest(output_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The last record of each clip in a batch output folder's manifest (also while a batch runs)."""
    return _read_log(Path(output_dir) / MANIFEST_NAME)[0]


def _read_records(output_dir: Path) -> tuple[dict[str, dict[str, Any]], bool]:
    """(the last record of each clip in the folder's manifest, whether to rewrite it: missing,
    damaged, mostly outdated or of an earlier version). VidtransError for one that cannot be read."""
    path, legacy = output_dir / MANIFEST_NAME, output_dir / LEGACY_MANIFEST_NAME
    if path.exists():
        clips, lines, damaged = _read_log(path)
        # Damaged lines are rewritten away, or the next record would be glued to a torn last one.
        return clips, damaged or lines > 2 * len(clips) + COMPACT_SLACK
    # Only a file: a FIFO of that name would be waited on forever, and no earlier vidtrans left a folder.
    if legacy.is_file():
        return _read_legacy(legacy), True
    return {}, True


def _header() -> bytes:
    return json.dumps({"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION}).encode() + b"\n"


def _line(clip: str, record: dict[str, Any]) -> bytes:
    return json.dumps({"clip": clip, **record}, separators=(",", ":")).encode() + b"\n"


def _read_log(path: Path) -> tuple[dict[str, dict[str, Any]], int, bool]:
    """(the last record of each clip, lines after the header, whether any line is damaged).

    A damaged line is skipped, the header too (an empty file records nothing): a write cut short
    (a full disk, the machine going down) leaves a torn line, and forgetting an update only makes
    the next run redo that clip, or refuse its output as someone else's file. A header of another
    format or version is refused, not rewritten: what it records would be lost.
    """
    if path.exists() and not path.is_file():  # reading a FIFO would wait for a writer forever
        raise VidtransError(f"{path}: not a file, where the batch keeps its manifest; move it away")
    try:
        lines = path.read_bytes().split(b"\n")
    except OSError as e:
        raise VidtransError(f"{path}: cannot read the batch manifest ({e.strerror or e}); check its permissions") from e
    damaged = lines.pop() != b""  # a whole log ends with a newline
    header = _parse_line(lines[0]) if lines else None
    if isinstance(header, dict) and "format" in header and "clip" not in header:
        if header != {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION}:
            # Another format (a newer vidtrans's, say): rewriting it here would lose what it records.
            raise _unreadable(path, ValueError(f"unknown format {header.get('format')!r} version "
                                               f"{header.get('version')!r}"))
        lines = lines[1:]
    else:
        # No header (an empty file) or a damaged one: a damaged line like any other, rewritten away.
        damaged = True
    clips: dict[str, dict[str, Any]] = {}
    for line in lines:
        try:
            record = json.loads(line)
            clip = record.pop("clip")
            if not (isinstance(clip, str) and _well_formed(record)):
                raise ValueError("not a record of this format")
            clips[clip] = record
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            damaged = True
    return clips, len(lines), damaged


# What each field a batch reads back from its manifest may hold; a line with another value (written
# by hand, or by something else) is damaged like a torn one, rather than an error where it is used.
_RECORD_FIELDS = {"status": str, "output": str, "owned": bool, "input": dict, "options": dict, "model_sha256": str,
                  "frames": int, "frames_without_person": (int, type(None)), "warning": (str, type(None)),
                  "corrupt_frames": int, "pose": (str, type(None)), "output_size": int, "owned_before": list}


def _well_formed(record: dict[str, Any]) -> bool:
    return (all(isinstance(record[k], t) and not (t is int and isinstance(record[k], bool))
                for k, t in _RECORD_FIELDS.items() if k in record)
            and all(isinstance(o, str) for o in record.get("owned_before", ())))


def _parse_line(line: bytes) -> Any:
    try:
        return json.loads(line)
    except (ValueError, RecursionError):
        return None


def _read_legacy(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
        if data.get("format") != MANIFEST_FORMAT or data.get("version") != 1:
            raise ValueError("unknown format")
        return {clip: record for clip, record in dict(data["clips"]).items()
                if isinstance(clip, str) and isinstance(record, dict) and _well_formed(record)}
    except (ValueError, KeyError, TypeError, AttributeError, OSError, RecursionError) as e:
        raise _unreadable(path, e) from e


def _unreadable(path: Path, error: Exception) -> VidtransError:
    return VidtransError(f"{path}: unreadable batch manifest ({error}); delete it or pass {spell('overwrite=True')}")


@contextlib.contextmanager
def _exclusive(output_dir: Path) -> Iterator[None]:
    """One batch per output folder: a second one would delete the first one's temporary files.
    The lock is on the folder itself, so nothing is left behind, and the kernel drops it when a
    killed run dies."""
    try:
        fd = _lock_folder(output_dir)
    except OSError as e:  # a folder one may write into but not list (chmod 733: a drop box)
        raise BatchUsageError(f"{output_dir}: cannot open the output folder ({e.strerror or e}); choose an output "
                              "folder you can read and write") from None
    if fd is None:
        raise VidtransError(f"{output_dir}: another vidtrans batch is writing there; wait for it or "
                            "choose another output folder")
    try:
        yield
    finally:
        os.close(fd)


def _lock_folder(folder: Path) -> int | None:
    """A descriptor holding the batch lock on `folder` (until it is closed), or None when another
    batch holds it. OSError when the folder cannot be opened."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


# --- models ----------------------------------------------------------------------------------------


class SharedModel:
    """One Translator per device, shared by that device's workers, which translate at once.

    On a CPU the pipeline's two translation threads per clip (`pipeline.TranslateStage.for_model`)
    then overlap across clips as well: measured on a quiet 2-core Xeon (benchmarks/README.md, batch),
    1.18x faster than taking turns with ngf 16 (twice) and 1.04x with ngf 64. On a GPU the
    translator itself bounds the batches in flight (`Translator.in_flight`, each on its own stream).
    """

    def __init__(self, translator):
        self._translator = translator
        self._lock = threading.Lock()
        self._compiled = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._translator, name)

    def compile(self) -> None:
        # Every clip of a long batch asks; the model is compiled once.
        with self._lock:
            if not self._compiled:
                self._translator.compile()
                self._compiled = True


# --- the batch -------------------------------------------------------------------------------------


@dataclass
class _Job:
    rel: str
    src: Path
    dst: Path
    out_rel: str
    fingerprint: dict[str, Any]
    overwrite: bool


class _Cancelled(Exception):
    pass


def translate_folder(
    input_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    model: str | os.PathLike,
    options: RunOptions | None = None,
    *,
    batch: BatchOptions | None = None,
    precision: str = "auto",
    model_size: int | None = None,
    listener: BatchListener | None = None,
    **changes: Any,
) -> BatchReport:
    """Translate every clip under `input_dir` into the same relative path under `output_dir`.

    model: name, checkpoint folder or pix2pix .pth, loaded once per device with `precision` and
    working size `model_size` (see `vidtrans.load_model`). options: how each clip is translated
    (a `RunOptions`, as for `translate_video`); batch: which clips, how many at once, on which
    devices, the report (a `BatchOptions`); `changes`: fields of either, by name, e.g.
    `translate_folder("clips/", "out/", "pose2person", workers=2, smoothing="flow")`.

    Failures do not stop the batch: a clip that cannot be translated gets status "failed" and a
    one-line error in the report. A clip with nobody in most of its frames is translated, and its
    row gets the `warning` `vidtrans run` gives. Raises BatchUsageError for bad folders or options,
    and ReportNotWritten (with the results as its `report`) when the report cannot be written at the end.

    listener: told of progress; its `stop_asked()` answering True stops the batch as Ctrl-C does,
    within a fraction of a second: KeyboardInterrupt, clips in flight keep their "running" record
    (redone by the next run) and their unfinished files are removed.
    """
    from vidtrans.models.checkpoint import check_size, model_files, resolve, weights_sha256
    from vidtrans.models.translator import backend_for_compile, check_precision

    batch_fields = {f.name for f in dataclasses.fields(BatchOptions)}
    try:
        refuse_misspelt(translate_folder, changes, option_names(BatchOptions) + option_names(RunOptions))
        batch = given_options(batch, BatchOptions(), "batch").replace(
            **{k: v for k, v in changes.items() if k in batch_fields})
        options = given_options(options, RunOptions(), "options").replace(
            **{k: v for k, v in changes.items() if k not in batch_fields})
        batch = batch.replace(backend=backend_for_compile(batch.backend, options.compile))
    except VidtransError as e:
        raise BatchUsageError(str(e)) from None
    started = time.perf_counter()
    for name, folder in (("input_dir", input_dir), ("output_dir", output_dir)):
        if not isinstance(folder, (str, os.PathLike)):
            raise BatchUsageError(f"{name} must be a folder path (a str or os.PathLike), not {shown(folder)}")
    if not isinstance(model, (str, os.PathLike)):
        # Each worker loads the model for its own device, so a loaded one cannot be shared.
        raise BatchUsageError(f"model must be a model name, checkpoint folder or .pth file, which each worker loads "
                              f"for its device (with precision= and model_size=), not {shown(model)}")
    if listener is not None and not isinstance(listener, BatchListener):
        raise BatchUsageError(f"listener must be a BatchListener (override the calls you need), not {shown(listener)}")
    for name, path in (("input_dir", input_dir), ("output_dir", output_dir), ("model", model)):
        try:
            check_path_text(path, name)
        except UsageError as e:
            raise BatchUsageError(str(e)) from None
    # Path("") would be the current folder: every clip below it translated, or outputs among them.
    if not os.fspath(input_dir):
        raise BatchUsageError("the input folder is empty (''); give the folder of clips to translate")
    if not os.fspath(output_dir):
        raise BatchUsageError("the output folder is empty (''); give a folder for the outputs, such as out/")
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    patterns = tuple(batch.patterns or DEFAULT_PATTERNS)
    recursive, overwrite, report = batch.recursive, batch.overwrite, batch.report
    _check_folders(input_dir, output_dir)
    suffix = _suffix(batch.ext, options.encode)
    clips, output_folders_met, others = _discover(input_dir, patterns, recursive, exclude=[output_dir])
    # Patterns the caller chose leave out what they leave out; the defaults must not do so in silence.
    left_out = _left_out(others, clips) if others and not batch.patterns else None
    if not clips and left_out:
        raise BatchUsageError(f"{input_dir}: no clips matching the default patterns; {left_out}")
    if not clips:
        skipped = ["hidden files and folders, named .*, are skipped"]
        if not recursive:
            skipped.append(f"subfolders are not searched ({spell('recursive=False')})")
        raise BatchUsageError(f"{input_dir}: no clips matching {plain(' '.join(patterns))} ({'; '.join(skipped)}); "
                              f"check the folder or pass {spell('patterns')}")
    if left_out:
        log.warning("%s: %s", input_dir, left_out)
    _check_no_inputs_in(output_dir, output_folders_met, clips, input_dir, patterns, suffix)
    outputs = [_output_path(c, input_dir, output_dir, suffix) for c in clips]
    refused_containers = _check_encoding(outputs, options.encode)
    if report is not None:
        # The model's files are inputs too: a report must not replace them.
        _check_report_path(report, output_dir, [*clips, *model_files(resolve(model))], outputs, overwrite)
    try:
        check_precision(precision)  # each worker loads the model with it: refused once, before any work
        if model_size is not None:
            model_size = check_size(model_size, "model_size")
    except VidtransError as e:
        raise BatchUsageError(str(e)) from None
    _check_for_model(model, options)
    listener = listener or BatchListener()

    # The folder is locked before any model is loaded or cluster asked: a second batch into it is
    # refused at once, not after waiting for workers the first one holds.
    open_workers = _local_workers if batch.ray is None else _ray_workers
    with (_claimed(output_dir),
          open_workers(model, batch, options, precision, model_size, listener) as workers):
        precisions = {w.precision for w in workers}
        settings = {**output_settings(options), "precision": precisions.pop() if len(precisions) == 1 else precision}
        if model_size is not None:
            settings["model_size"] = model_size
        # ONNX Runtime's frames may differ from torch's by a grey level: a clip finished with the other
        # backend is redone. Recorded only then, so manifests from before backends existed stay valid.
        if any(w.backend == "onnxruntime" for w in workers):
            settings["backend"] = "onnxruntime"
        weights = weights_sha256(model)
        batch_report = BatchReport(str(input_dir), str(output_dir), workers[0].model_name)
        remove_leftovers(output_dir, keep=[input_dir])
        with Manifest(output_dir, fresh=overwrite) as manifest:
            results, jobs = _plan(clips, input_dir, output_dir, suffix, manifest, settings, weights, overwrite)
            results.update({job.rel: ClipResult(str(job.src), str(job.dst), "failed",
                                                error=one_line(f"{job.dst}: {why}"))
                            for job in jobs if (why := refused_containers.get(job.dst.suffix.lower()))})
            jobs = [job for job in jobs if job.rel not in results]
            listener.begin(len(clips), len(jobs))
            for result in results.values():
                listener.clip_finished("", result)
            new_folders = _missing_folders([job.dst.parent for job in jobs], output_dir)
            try:
                results.update(_Runner(workers, manifest, listener, settings, weights).run(jobs))
            finally:
                # Those of failed clips' outputs, made for nothing.
                _remove_if_empty(new_folders)
    batch_report.clips = [results[_rel(c, input_dir)] for c in clips]
    batch_report.seconds = time.perf_counter() - started
    if report is not None:
        try:
            batch_report.save(report, overwrite)
        except VidtransError as e:  # checked before any work, so something changed since: the work stands
            totals = batch_report.totals()
            ran = ", ".join(f"{totals[s]} {s}" for s in ("done", "skipped", "failed") if totals[s])
            reason = str(e) if str(e).startswith(f"{spell('report')} ") else f"{spell('report')} {e}"
            raise ReportNotWritten(f"{reason}; the batch itself ran ({ran}), as {output_dir / MANIFEST_NAME} records",
                                   batch_report) from None
    return batch_report


def _missing_folders(folders: list[Path], root: Path) -> list[Path]:
    """The folders in `folders`, and their parents up to `root`, that do not exist yet."""
    missing = set()
    for folder in folders:
        while folder != root and root in folder.parents and not folder.exists():
            missing.add(folder)
            folder = folder.parent
    return sorted(missing)


def _remove_if_empty(folders: list[Path]) -> None:
    """Remove each of `folders` that is empty, the deepest first (so an emptied parent goes too)."""
    for folder in sorted(folders, key=lambda f: len(f.parts), reverse=True):
        with contextlib.suppress(OSError):
            folder.rmdir()


def _check_for_model(model: str | os.PathLike, options: RunOptions) -> None:
    """Settings that would do nothing with the model (a smoothing strength, a pose source, normalization
    off), refused once before any clip from the model's card (as `run` refuses them), not by every
    clip alike; a model that cannot be found or read is left to loading to report."""
    from types import SimpleNamespace

    from vidtrans.models.checkpoint import checkpoint_path, read_card
    from vidtrans.temporal import smoothing_for

    try:
        path = checkpoint_path(model)
        card = read_card(path) if path.is_dir() else None
    except VidtransError:
        return
    # A file without a card is an upstream pix2pix generator, which loads as a model of RGB frames.
    seen = SimpleNamespace(card=card, name=path.name if path.is_dir() else path.stem,
                           input_kind="rgb" if card is None else card.input_kind)
    try:
        if options.smoothing_strength is not None:
            smoothing_for(seen, options.smoothing, options.smoothing_strength)
        check_pose_settings(seen, options)
    except VidtransError as e:
        raise BatchUsageError(str(e)) from None


def _check_folders(input_dir: Path, output_dir: Path) -> None:
    # Said as such: the file system would call them missing (the input) or existing (the output).
    if (broken := _broken_link(input_dir)) is not None:
        raise BatchUsageError(f"{input_dir}: {broken}; give the folder of clips to translate")
    if (broken := _broken_link(output_dir)) is not None:
        raise BatchUsageError(f"{output_dir}: {broken}; remove it or choose another output folder")
    if not input_dir.exists():
        raise BatchUsageError(f"{input_dir}: no such folder; give the folder of clips to translate")
    if not input_dir.is_dir():
        raise BatchUsageError(f"{input_dir}: not a folder; translate a single clip on its own (vidtrans run, or "
                              "translate_video from Python)")
    if same_file(output_dir, input_dir):  # also one folder mounted at two paths (docker -v DIR:/in -v DIR:/out)
        raise BatchUsageError(f"{output_dir}: the output folder is the input folder; choose another one "
                              "(outputs keep the input's names)")
    if output_dir.exists() and not output_dir.is_dir():
        raise BatchUsageError(f"{output_dir}: exists and is not a folder; choose an output folder")


def _check_no_inputs_in(output_dir: Path, folders: list[Path], clips: list[Path], input_dir: Path,
                        patterns: Sequence[str], suffix: str | None) -> None:
    """Refuse an output folder met inside the input folder (as `folders`, under the names it was
    met by) that holds clips other than this batch's outputs: those are inputs the batch would
    leave out (it never looks for clips among its outputs), and mix its outputs with."""
    if not folders:
        return
    # A clip already where an output would go is the batch's only if its manifest says so: a
    # user's clip of that name is an input, which --overwrite would otherwise replace.
    planned = {_output_path(c, input_dir, output_dir, suffix) for c in clips}
    ours = {_real(path) for path in planned if not os.path.lexists(path)}
    # Also outputs of clips gone from the input since, and those a run with another --ext wrote
    # (`owned_before`); an unreadable manifest is told (or, with --overwrite, replaced) when the
    # batch opens it.
    with contextlib.suppress(VidtransError):
        records = _read_records(output_dir)[0].values()
        ours |= {_real(output_dir / written) for r in records
                 for written in ([r["output"]] if "output" in r else []) + r.get("owned_before", [])}
    inputs = [c for folder in folders for c in find_clips(folder, patterns) if _real(c) not in ours]
    if inputs:
        such_as = f"{inputs[0]}, ..." if len(inputs) > 1 else str(inputs[0])
        raise BatchUsageError(f"{output_dir}: the output folder is inside the input folder and holds {len(inputs)} "
                              f"clip(s) that are not this batch's outputs ({such_as}), which the batch would leave "
                              "out; choose an output folder outside the input folder")


def _suffix(ext: str | None, encode: EncodeOptions) -> str | None:
    """The outputs' extension from --ext, checked up front: every clip would fail alike."""
    if ext is None:
        return None
    given, ext = ext, ext.lstrip(".")
    if not ext or not ext.isalnum():
        raise BatchUsageError(f"{spell('ext')} must be a file extension such as mp4 or mkv, got {shown(given)}")
    try:
        check_output_settings(f"clip.{ext}", encode)
    except VidtransError as e:
        raise BatchUsageError(f"{spell('ext')} {ext}: {str(e).removeprefix(f'clip.{ext}: ')}") from None
    return "." + ext


def _check_encoding(outputs: list[Path], encode: EncodeOptions) -> dict[str, str]:
    """Refuse before any work the encoder settings every clip would fail with (a codec that is no
    video encoder; a CRF, preset or pixel format it does not take; a container that cannot hold it),
    as `run` does: tried for the first output of each extension. A container only some outputs have
    fails those clips alone, before any work on them: returned are the extensions refused, each
    with the reason (to follow the output's name) and the batch's fix."""
    first_of_each = {}
    for dst in outputs:
        first_of_each.setdefault(dst.suffix.lower(), dst)
    refusals = {}
    for suffix, dst in first_of_each.items():
        try:
            check_output_settings(dst, encode)
        except ContainerError as e:
            # Outputs are named as their clips, so the extension a batch can change is --ext's (for every clip),
            # not the name the writer's message suggests changing: the container it names.
            refusals[suffix] = f"{str(e).removeprefix(f'{dst}: ')} (for batch: {spell_setting('ext', e.extension)})"
        except VidtransError as e:  # a setting, refused alike whatever the container
            raise BatchUsageError(str(e)) from None
    if len(refusals) == len(first_of_each):
        suffix, reason = next(iter(refusals.items()))
        raise BatchUsageError(f"{first_of_each[suffix]}: {reason}")
    return refusals


@contextlib.contextmanager
def _claimed(output_dir: Path) -> Iterator[None]:
    """The output folder, made when missing and locked for this batch (`_exclusive`). Folders made
    here go again when the batch stops before writing into them (a model that cannot be loaded, a
    refused Ray cluster): a refused batch leaves no output folder behind."""
    made = [folder for folder in (output_dir, *output_dir.parents) if not folder.exists()]  # deepest first
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BatchUsageError(f"{output_dir}: cannot create the output folder ({e.strerror or e}); "
                              "choose a writable place for it") from e
    with _exclusive(output_dir):
        try:
            yield
        except BaseException:
            for folder in made:
                with contextlib.suppress(OSError):  # not empty: the batch wrote there, which stays
                    folder.rmdir()
            raise


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _output_path(src: Path, input_dir: Path, output_dir: Path, suffix: str | None) -> Path:
    rel = src.relative_to(input_dir)
    return output_dir / (rel.with_suffix(suffix) if suffix else rel)


def _plan(clips: list[Path], input_dir: Path, output_dir: Path, suffix: str | None, manifest: Manifest,
          settings: dict[str, Any], weights: str, overwrite: bool) -> tuple[dict[str, ClipResult], list[_Job]]:
    """Results for clips that need no work (skipped, or refused before starting), and the jobs."""
    results: dict[str, ClipResult] = {}
    jobs: list[_Job] = []
    # By real path: two clips' outputs are also one file where a link in the output tree leads one to
    # the other (OUT/sub -> OUT), or where case does not count (A.mp4, a.mp4), and would replace each
    # other's output on every rerun.
    fold_case = _case_insensitive(output_dir)
    dsts = {_rel(src, input_dir): _output_path(src, input_dir, output_dir, suffix) for src in clips}
    key = (lambda path: Path(str(_real(path)).casefold())) if fold_case else _real
    keys = {rel: (key(dst), [key(output_dir / f) for f in dst.relative_to(output_dir).parents[:-1]])
            for rel, dst in dsts.items()}
    prints: dict[str, dict[str, Any] | VidtransError] = {}
    for rel, src in zip(dsts, clips):
        try:
            prints[rel] = readable_fingerprint(src)
        except VidtransError as e:
            prints[rel] = e
    losers = _output_losers(keys, prints, manifest, {rel: _rel(dst, output_dir) for rel, dst in dsts.items()})
    # What the manifest records of clips gone from the input folder (a.mp4 renamed a.mov, whose output
    # with --ext is a.mp4's): the outputs they wrote are the batch's own all the same. Not those of
    # clips only left out this time (--pattern), which are still theirs.
    gone_records = [r for clip, r in manifest.clips.items()
                    if clip not in dsts and not os.path.lexists(input_dir / clip)]
    gone = {r["output"]: r for r in gone_records if r.get("owned") and "output" in r}
    gone_before = {o for r in gone_records for o in r.get("owned_before", ())}  # as `earlier` below
    inputs = {_real(c) for c in clips}
    real_in, real_out = _real(input_dir), _real(output_dir)
    for rel, src in zip(dsts, clips):
        dst = dsts[rel]
        out_rel, record, real_dst, print_ = _rel(dst, output_dir), manifest.clips.get(rel), _real(dst), prints[rel]
        refused = ClipResult(str(src), str(dst), "failed")
        blocking = _file_in_the_way(dst, output_dir)
        other = losers.get(rel)
        if isinstance(print_, VidtransError):  # what is wrong with the clip itself comes first
            refused.error = str(print_)
        elif other is not None:
            other_dst, rename = dsts[other], "rename one of the two clips" + (f", or leave out {spell('ext')}"
                                                                               if suffix else "")
            if other_dst == dst:  # the same name but for the extension, in the same folder: --ext made them one
                refused.error = f"{src}: same output as {Path(other).name} beside it ({dst}); {rename}"
            elif keys[rel][0] in keys[other][1]:  # x.mov's output x.mp4 is where x.mp4/a.mp4's goes
                refused.error = (f"{src}: its output {dst} would be the folder of {other_dst}, the output of {other}; "
                                 f"{rename}")
            elif keys[other][0] in keys[rel][1]:
                refused.error = (f"{src}: its output {dst} would be inside {other_dst}, the output of {other}; "
                                 f"{rename}")
            elif fold_case and str(other_dst).casefold() == str(dst).casefold():
                refused.error = (f"{dst}: is {other_dst}, the output of {other}, in an output folder that does not "
                                 "tell capitals from small letters; rename one of the clips")
            else:
                refused.error = (f"{dst}: is {other_dst}, the output of {other}, through a link in the output "
                                 "folder; remove the link or rename one of the clips")
        elif real_dst in inputs:
            refused.error = f"{dst}: the output would replace an input clip; choose an output folder outside the inputs"
        elif blocking is not None:
            refused.error = f"{blocking}: is a file where the output folder of this clip belongs; move it away"
        elif _is_loop(dst):
            refused.error = f"{dst}: is a link that leads back to itself, where the clip's output belongs; remove it"
        elif (unusable := _lookup_error(dst)) is not None:
            too_long = unusable.errno == errno.ENAMETOOLONG
            refused.error = (f"{dst}: cannot be the clip's output ({unusable.strerror or unusable}); "
                             + (f"rename the clip or pass a shorter {spell('ext')}" if too_long else
                                "check the output folder"))
        elif _searched_for_clips(real_dst, real_in, real_out):
            refused.error = (f"{dst}: the output would go into the input folder {input_dir}, where the next run would "
                             "take it for a clip; choose an output folder that does not hold the input folder")
        # Files the manifest says we wrote, as we wrote them, may be replaced; anyone else's (an
        # output edited since, too) need --overwrite.
        wrote = record if record and record.get("output") == out_rel and record.get("owned") else gone.get(out_rel)
        changed = wrote is not None and not _as_written(wrote, dst)
        # Another --ext's run wrote it (of this clip, or of one gone since).
        earlier = bool(record and out_rel in record.get("owned_before", ())) or out_rel in gone_before
        ours = overwrite or earlier or (wrote is not None and not changed)
        if refused.error:
            refused.error = one_line(refused.error)  # a name in it spelled as `failure_line` spells it
            results[rel] = refused
        elif not overwrite and record and _finished(record, print_, settings, weights, out_rel, dst):
            results[rel] = ClipResult(str(src), str(dst), "skipped", frames=record.get("frames", 0),
                                      frames_without_person=record.get("frames_without_person"),
                                      warning=record.get("warning"), corrupt_frames=record.get("corrupt_frames", 0),
                                      pose=record.get("pose"))
        elif not ours and dst.is_file():
            # Also every output of a batch whose manifest was deleted: say how to go on.
            why = ("has changed since this batch wrote it" if changed else
                   "already exists and the batch manifest does not record it as this batch's output")
            refused.error = one_line(f"{dst}: {why}; pass {spell('overwrite=True')} to translate the clip again, "
                                     "replacing it")
            results[rel] = refused
        else:
            jobs.append(_Job(rel, src, dst, out_rel, print_, ours))
    return results, jobs


def _output_losers(keys: dict[str, tuple[Path, list[Path]]], prints: dict[str, Any], manifest: Manifest,
                   out_rels: dict[str, str]) -> dict[str, str]:
    """The clips whose output would be another clip's (by the real paths `keys` gives each clip's
    output and the folders it makes for it), each with that clip: where two outputs are one file
    (--ext: a.mp4 and a.mov), or one is where the other's folder goes (--ext mp4: x.mov, and a folder
    x.mp4 of clips). It goes to the clip whose output the manifest records it wrote, so that a clip
    added later never takes an output from the clip that made it; else to the first in the batch's
    order (sorted by path, never the file system's listing order or the workers'). A clip that cannot
    be read comes last: it writes nothing, and would leave a clip that can be read without an output."""
    def rank(rel: str) -> tuple[bool, bool]:
        record, out_rel = manifest.clips.get(rel) or {}, out_rels[rel]
        # Its size is recorded once an attempt wrote the output (and kept by later attempts); or a run
        # with another --ext wrote it.
        wrote_it = (record.get("output") == out_rel and bool(record.get("owned")) and "output_size" in record
                    or out_rel in record.get("owned_before", ()))
        return isinstance(prints[rel], VidtransError), not wrote_it

    files: dict[Path, str] = {}
    folders: dict[Path, str] = {}  # many clips' outputs share a folder
    losers = {}
    for rel in sorted(keys, key=rank):  # stable: equals keep the clips' order
        file, its_folders = keys[rel]
        other = files.get(file) or folders.get(file) or next((files[f] for f in its_folders if f in files), None)
        if other is not None:
            losers[rel] = other
            continue
        files[file] = rel
        for folder in its_folders:
            folders.setdefault(folder, rel)
    return losers


def _case_insensitive(output_dir: Path) -> bool:
    """Whether the output folder's file system takes names that differ in case alone for one file
    (macOS, exFAT, a Windows share): its manifest, there by the time clips are planned, is found
    under its name in capitals too."""
    try:
        return os.path.samefile(output_dir / MANIFEST_NAME, output_dir / MANIFEST_NAME.upper())
    except OSError:
        return False


def _lookup_error(path: Path) -> OSError | None:
    """Why the file system refuses to even look `path` up (a name too long: --ext longer than the
    clip's extension on a name near the 255-byte limit), or None where it can say what is there."""
    try:
        os.lstat(path)
    except OSError as e:
        return None if e.errno in (errno.ENOENT, errno.ENOTDIR) else e
    return None


def _searched_for_clips(real_dst: Path, real_in: Path, real_out: Path) -> bool:
    """Whether an output at `real_dst` would be among the clips a batch of the input folder `real_in`
    finds (all three with links resolved, `_real`): inside the input folder (an input folder inside
    the output folder `real_out`, or reached through a link in it) but not inside the output folder
    where that sits in the input folder (never searched)."""
    return real_in in real_dst.parents and not (real_in in real_out.parents and real_out in real_dst.parents)


def _earlier_outputs(record: dict[str, Any] | None, out_rel: str) -> dict[str, list[str]]:
    """The outputs other than `out_rel` that the clip's earlier runs wrote (another --ext): still
    this batch's files, which a later run may replace, as the manifest records them."""
    record = record or {}
    earlier = [o for o in record.get("owned_before", ()) if o != out_rel]
    if record.get("owned") and record.get("output") not in (None, out_rel, *earlier):
        earlier.append(record["output"])
    return {"owned_before": earlier} if earlier else {}


def _as_written(record: dict[str, Any], dst: Path) -> bool:
    """Whether the clip's output is as this batch wrote it (of the size recorded), or not there:
    one of another size was edited or replaced since, and is no longer the batch's to replace. An
    attempt stopped while running may have published its own output before recording it, and a
    record without a size wrote no file there: both leave the file to the batch, as before sizes
    were compared."""
    size = record.get("output_size")
    if record.get("status") == "running" or size is None:
        return True
    try:
        return dst.stat().st_size == size
    except FileNotFoundError:
        return True
    except OSError:
        return False


def _kept_size(record: dict[str, Any] | None, out_rel: str) -> dict[str, int]:
    """The recorded size of the output an earlier run of the clip wrote at `out_rel`, carried into
    the records of a new attempt: until it succeeds, that file is still the one there."""
    record = record or {}
    return {"output_size": record["output_size"]} if record.get("output") == out_rel and "output_size" in record else {}


def _file_in_the_way(dst: Path, output_dir: Path) -> Path | None:
    """The first folder between `output_dir` and `dst` that exists as something else (a file, a
    link to nowhere), where the output's folder would have to be made."""
    for parent in reversed(dst.relative_to(output_dir).parents[:-1]):
        folder = output_dir / parent
        if os.path.lexists(folder) and not folder.is_dir():
            return folder
    return None


def _finished(record: dict[str, Any], print_: dict[str, Any], settings: dict[str, Any], weights: str,
              out_rel: str, dst: Path) -> bool:
    return (record.get("status") == "done" and record.get("input") == print_ and record.get("options") == settings
            and record.get("model_sha256") == weights and record.get("output") == out_rel and dst.is_file()
            and dst.stat().st_size == record.get("output_size"))


def failure_line(error: BaseException) -> str:
    """A failure as one report line, control characters written as escapes (`errors.one_line`), so a
    clip's name in it is spelled as the display spells it, its white space kept ('a  b.mp4' is not
    'a b.mp4'): our messages as they are, anything else with its type and its line breaks (a
    library's layout) as spaces."""
    if isinstance(error, VidtransError):
        return one_line(str(error).strip()) or type(error).__name__
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return one_line(f"{type(error).__name__}: {text}" if text else type(error).__name__)


class _Runner:
    """Clips to workers, one thread each (local or Ray), and what happens to each clip into the
    manifest and the listener, here in this process whichever worker translates it.

    The clips wait in one queue that each worker takes from when it is free. A Ray worker can be
    lost (its actor's process killed, its node gone): the clip it had goes back to the queue for
    another worker, once, and the lost worker takes no clip until Ray has restarted it, so the
    others are not failed by a worker that is not there."""

    def __init__(self, workers: list[_LocalWorker] | list[_RayWorker], manifest: Manifest, listener: BatchListener,
                 settings: dict[str, Any], weights: str):
        self.workers, self.manifest, self.listener = workers, manifest, listener
        self.settings, self.weights = settings, weights
        self.cancel = threading.Event()
        self._changed = threading.Condition()  # guards the queue, the count in hand and the retried clips
        self._queue: collections.deque[_Job] = collections.deque()
        self._in_hand = 0  # clips being translated, which a lost worker may put back
        self._retried: set[str] = set()

    def run(self, jobs: list[_Job]) -> dict[str, ClipResult]:
        if self.listener.stop_asked():  # asked while the model loaded or the clips were planned
            raise KeyboardInterrupt("stop asked")
        self._queue.extend(jobs)
        results: dict[str, ClipResult] = {}
        pool = ThreadPoolExecutor(max_workers=len(self.workers), thread_name_prefix="vidtrans-batch")
        # Each worker runs in a copy of this thread's context, so that its messages spell settings as
        # the caller does (the CLI's flags: options.spell), as they would on this thread.
        futures = [pool.submit(contextvars.copy_context().run, self._work, worker) for worker in self.workers]
        try:
            pending = set(futures)
            while pending:
                # Not only Ctrl-C's KeyboardInterrupt here: a stop signal's may have been lost on its way
                # (raised inside code that drops it), after which the CLI ignores further signals and
                # only its listener tells; the batch must not run on to its end then.
                if self.listener.stop_asked():
                    raise KeyboardInterrupt("stop asked")
                finished, pending = wait(pending, timeout=STOP_POLL_SECONDS, return_when=FIRST_COMPLETED)
                for future in finished:
                    results.update(future.result())
        except BaseException:
            # Ctrl-C: clips in flight stop at their next batch and delete their temporary files. The
            # stop does not wait for this process's own: a forward pass cannot be cut short (tens of
            # seconds at a large --model-size, past docker stop's grace); the CLI exits at once,
            # removing what is unfinished, as `run` does.
            self._stop()
            pool.shutdown(wait=not all(w.in_this_process for w in self.workers), cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        for job in self._queue:  # left when every worker was lost and none came back
            results[job.rel] = ClipResult(str(job.src), str(job.dst), "failed", error=(
                "not translated: every Ray worker was lost and none came back; the next run translates it"))
            self.listener.clip_finished("", results[job.rel])
        return results

    def _stop(self) -> None:
        self.cancel.set()
        with self._changed:
            self._changed.notify_all()

    def _work(self, worker: _LocalWorker | _RayWorker) -> dict[str, ClipResult]:
        """Clips from the queue until there are none (or the batch stops): their results."""
        results = {}
        try:
            while (job := self._next()) is not None:
                try:
                    results[job.rel] = self._translate(worker, job)
                except _WorkerLost as lost:
                    self.listener.notice(f"{worker.name} was lost while translating {job.src} ({lost.reason}); "
                                         "the clip goes to another worker", worker.name)
                    self._put_back(lost.retry)
                else:
                    self._done_with()
                if worker.lost and not self._recovered(worker):
                    break
        except _Cancelled:  # the batch is stopping: a clip not begun keeps its record as it was
            pass
        return results

    def _next(self) -> _Job | None:
        """The next clip to translate; None when there is none left and none can come back."""
        with self._changed:
            while not self._queue and self._in_hand and not self.cancel.is_set():
                self._changed.wait()
            if self.cancel.is_set() or not self._queue:
                return None
            self._in_hand += 1
            return self._queue.popleft()

    def _done_with(self) -> None:
        with self._changed:
            self._in_hand -= 1
            self._changed.notify_all()

    def _put_back(self, job: _Job) -> None:
        with self._changed:
            self._queue.appendleft(job)
            self._in_hand -= 1
            self._changed.notify_all()

    def _may_retry(self, job: _Job) -> bool:
        """Whether a clip whose worker was lost goes to another one: the first time only, since a
        clip may itself be what kills its worker (out of memory)."""
        with self._changed:
            first = job.rel not in self._retried
            self._retried.add(job.rel)
            return first

    def _clips_may_come(self) -> bool:
        with self._changed:
            return bool(self._queue or self._in_hand) and not self.cancel.is_set()

    def _recovered(self, worker: _RayWorker) -> bool:
        """Wait for a lost worker to come back, while there may be clips for it: whether it did."""
        deadline = time.monotonic() + RAY_RESTART_SECONDS
        while self._clips_may_come():
            try:
                if worker.back(RAY_PROGRESS_SECONDS):
                    return True
            except VidtransError as e:  # restarted, but it cannot load the model there
                self.listener.notice(f"{worker.name} came back but cannot work ({e}); the batch goes on without it",
                                     worker.name)
                return False
            if time.monotonic() > deadline:
                self.listener.notice(f"{worker.name} did not come back within {RAY_RESTART_SECONDS:.0f} s; the "
                                     "batch goes on without it", worker.name)
                return False
        return False

    def _translate(self, worker: _LocalWorker | _RayWorker, job: _Job) -> ClipResult:
        if self.cancel.is_set():  # the batch is stopping: a clip not begun keeps its record as it was
            raise _Cancelled()
        result = ClipResult(str(job.src), str(job.dst), "failed")
        self.listener.clip_started(worker.name, job.rel)

        def progress(done: int, total: int, phase: str) -> None:
            if self.cancel.is_set():
                raise _Cancelled()
            self.listener.clip_progress(worker.name, job.rel, done, total, phase)

        # Whatever appears at dst from now on is ours, unless someone else's file was there before
        # (a link to nowhere too: it is not replaced without --overwrite either).
        owned = job.overwrite or not os.path.lexists(job.dst)
        previous = self.manifest.clips.get(job.rel)
        base = {"output": job.out_rel, "owned": owned, "input": job.fingerprint, "options": self.settings,
                "model_sha256": self.weights, **_earlier_outputs(previous, job.out_rel),
                **_kept_size(previous, job.out_rel)}
        try:
            # The file as the clip starts: one changed since the batch was planned (a copy finished)
            # is translated as it is now, and only a change from now on spoils the output.
            job = dataclasses.replace(job, fingerprint=readable_fingerprint(job.src))
            base["input"] = job.fingerprint
            self.manifest.record(job.rel, status="running", **base)
            outcome = worker.translate(job, progress)
            _check_unchanged(job)
            result = dataclasses.replace(result, status="done", **outcome)
            written = {"owned": True, "output_size": job.dst.stat().st_size}
            self.manifest.record(job.rel, status="done", **{**base, **written},
                                 **{**outcome, "seconds": round(result.seconds, 3)}, finished=_now())
        except _Cancelled:
            raise
        except Exception as e:  # noqa: BLE001 - one broken clip must not stop the batch
            if self.cancel.is_set():  # an error of a clip being stopped (a Ray worker hit by the same Ctrl-C)
                raise _Cancelled() from e
            if isinstance(e, _WorkerLost) and self._may_retry(job):
                # For another worker (see _work). The lost one may have published the output before
                # its answer was lost: a file this attempt owned, which the retry may replace.
                e.retry = dataclasses.replace(job, overwrite=owned)
                raise
            result.error = failure_line(e)
            with contextlib.suppress(VidtransError):
                self.manifest.record(job.rel, status="failed", **base, error=result.error, finished=_now())
        except BaseException:
            # A stop raised in this thread (a listener's KeyboardInterrupt) stops the batch, as one in
            # the main thread does: this worker must not go on to the next clip.
            self._stop()
            raise
        self.listener.clip_finished(worker.name, result)
        return result


def _check_unchanged(job: _Job) -> None:
    """The input must still be the file the clip was planned (and its manifest record made) with.
    One that changed meanwhile (still being copied in, rewritten) gave an output of neither
    version: removed, and the clip fails, so the next run translates what is there then."""
    try:
        now = fingerprint(job.src)
    except (OSError, VidtransError):  # removed, or replaced by something that is no file
        now = None
    if now != job.fingerprint:
        job.dst.unlink(missing_ok=True)
        raise VidtransError(f"{job.src}: changed while it was being translated, so its output was removed; run "
                            "the batch again once the file is complete")


# --- workers: where a clip is translated -----------------------------------------------------------


def _translate_clip(job: _Job, model: SharedModel, options: RunOptions, progress) -> dict[str, Any]:
    """The work on one clip, wherever it runs: what its ClipResult gets (frames written, seconds,
    frames_without_person, warning, corrupt_frames, pose)."""
    try:
        job.dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VidtransError(f"{job.dst.parent}: cannot create the output folder ({e.strerror or e}); check that "
                            "the output folder is writable") from e
    summary = translate_video(job.src, job.dst, model, options, overwrite=job.overwrite, progress=progress)
    return {"frames": summary.frames, "seconds": summary.seconds,
            "frames_without_person": summary.frames_without_person,
            "warning": summary.no_person_warning(no_person_shows(model)), "corrupt_frames": summary.corrupt_frames,
            "pose": summary.pose}


class _LocalWorker:
    """A thread of this process translating with its device's shared model."""

    lost = None  # a thread of this process is never lost (see _RayWorker)
    # Its files are this process's: a stopped batch need not wait for it (see _Runner.run).
    in_this_process = True

    def __init__(self, index: int, model: SharedModel, options: RunOptions):
        self.name = f"worker {index + 1} ({model.device})"
        self.model_name, self.precision, self.backend = model.name, model.precision, model.backend
        self._model, self._options = model, options

    def translate(self, job: _Job, progress) -> dict[str, Any]:
        return _translate_clip(job, self._model, self._options, progress)


@contextlib.contextmanager
def _local_workers(model: str | os.PathLike, batch: BatchOptions, options: RunOptions, precision: str,
                   model_size: int | None, listener: BatchListener) -> Iterator[list[_LocalWorker]]:
    """`workers` threads (default 2 per device); worker i runs on devices[i % len(devices)], and
    each distinct device gets one model."""
    from vidtrans import load_model
    from vidtrans.models.translator import device_for_backend, resolve_device

    devices = batch.device_list
    count = batch.workers if batch.workers is not None else 2 * len(devices)
    worker_devices = [_indexed(resolve_device(device_for_backend(devices[i % len(devices)], batch.backend),
                                              setting="devices")) for i in range(count)]
    models = {device: SharedModel(load_model(model, device=device, precision=precision, size=model_size,
                                             backend=batch.backend))
              for device in dict.fromkeys(worker_devices)}
    yield [_LocalWorker(i, models[device], options) for i, device in enumerate(worker_devices)]


def _indexed(device: torch.device) -> torch.device:
    """A CUDA device with its index (`cuda` and `auto` mean the current one): cuda and cuda:0 are one
    GPU, which gets one model, as any device does, not one per spelling."""
    import torch

    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


_MODEL_NAME_FIX = ("a model name is looked up on each Ray node: set VIDTRANS_MODELS in the environment ray start "
                   "runs in on every node, or pass a checkpoint folder every node reaches at the same path")
_MODEL_PATH_FIX = "every Ray node must reach the model at the same path (a shared file system)"


class _ClipActor:
    """A Ray actor (made one by `_ray_workers`): one model, whole clips one at a time.

    It runs with two threads, so that `progress` and `stop` are answered while `translate` runs.
    Outcomes are returned as values, errors as their one line: a clip's failure is the batch's
    business, not Ray's (whose errors carry remote tracebacks). It works in the driver's folder
    where the node has it (the shared file system), so that relative paths, and the messages
    naming them, are the driver's; and spells settings as the driver's caller does.
    """

    def __init__(self, model: str, device: str, precision: str, size: int | None, backend: str,
                 options: RunOptions, workdir: str, names: dict[str, str]):
        import ray

        from vidtrans.models.checkpoint import resolve

        self._options, self._names = options, names
        self._progress: tuple[str, int, int, str] | None = None
        self._stop = threading.Event()
        self._node = f"{ray.util.get_node_ip_address()} node {ray.get_runtime_context().get_node_id()[:6]}"
        try:
            os.chdir(workdir)
            self._workdir = None
        except OSError:  # not on this node: paths relative to it are made absolute
            self._workdir = Path(workdir)
        try:
            from vidtrans import load_model

            with spelled(names):
                # Looked up here, on this node, which the driver's environment (VIDTRANS_MODELS) does not reach.
                path = resolve(model, fix=_MODEL_NAME_FIX if Path(model).name == model else _MODEL_PATH_FIX)
                self._model = SharedModel(load_model(path, device=device, precision=precision, size=size,
                                                     backend=backend))
            self._error = None
        except Exception as e:  # noqa: BLE001 - told to the driver by `ready`, which stops the batch there
            self._model, self._error = None, f"on Ray {self._node}: {failure_line(e)}"

    def ready(self) -> dict[str, Any]:
        if self._model is None:
            return {"error": self._error}
        return {"error": None, "name": self._model.name, "precision": self._model.precision,
                "backend": self._model.backend, "where": f"{self._model.device} on {self._node}"}

    def translate(self, job: _Job) -> tuple:
        """("done", what `_translate_clip` gives), ("failed", one line) or ("stopped",)."""
        def progress(done: int, total: int, phase: str) -> None:
            if self._stop.is_set():
                raise _Cancelled()
            self._progress = (job.rel, done, total, phase)

        if self._workdir is not None:
            job = dataclasses.replace(job, src=self._workdir / job.src, dst=self._workdir / job.dst)
        try:
            with spelled(self._names):
                if not job.src.exists():
                    raise VidtransError(f"{job.src}: not found on Ray {self._node}; every node must reach the "
                                        "input folder at the same path")
                return ("done", _translate_clip(job, self._model, self._options, progress))
        except _Cancelled:
            return ("stopped",)
        except Exception as e:  # noqa: BLE001 - one broken clip must not stop the batch
            return ("failed", failure_line(e))

    def progress(self) -> tuple[str, int, int, str] | None:
        """(clip, done, total, phase) of the clip in hand, as its last progress report said."""
        return self._progress

    def stop(self) -> None:
        self._stop.set()


class _WorkerLost(VidtransError):
    """A Ray worker's actor died (its process killed, out of memory, its node lost) with a clip in hand."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason
        self.retry: _Job | None = None  # the clip as it goes to another worker (`_Runner._translate`)


class _RayWorker:
    """A thread of this process handing clips to one Ray actor and passing on its progress.

    `lost` (why) once its actor died: Ray restarts it (`back` says when it answers again)."""

    # Its clip's files are the actor's, in another process: a stopped batch waits until the actor
    # has stopped the clip and deleted them.
    in_this_process = False

    def __init__(self, index: int, actor, facts: dict[str, Any]):
        self._index, self._actor = index, actor
        self._name_from(facts)
        self.lost: str | None = None
        self._ready = None  # the `ready` call waiting for the restarted actor

    def _name_from(self, facts: dict[str, Any]) -> None:
        self.name = f"worker {self._index + 1} ({facts['where']})"
        self.model_name, self.precision, self.backend = facts["name"], facts["precision"], facts["backend"]

    def translate(self, job: _Job, progress) -> dict[str, Any]:
        import ray

        outcome = self._actor.translate.remote(job)
        try:
            finished = False
            while not finished:
                finished = bool(ray.wait([outcome], timeout=RAY_PROGRESS_SECONDS)[0])
                # Asked once more when finished, so the display counts the clip's last frames too.
                state = ray.get(self._actor.progress.remote())
                if state is not None and state[0] == job.rel:  # not the end of the actor's previous clip
                    progress(*state[1:])
            result = ray.get(outcome)
        except _Cancelled:
            self._actor.stop.remote()
            with contextlib.suppress(ray.exceptions.RayError):
                ray.get(outcome)  # the clip deletes its temporary file before it returns
            raise
        except ray.exceptions.RayActorError as e:  # its process died (out of memory, a crash, a lost node)
            self.lost = first_line(e)
            raise _WorkerLost(f"{self.name} died while translating the clip ({self.lost}); the next run retries it",
                              self.lost) from None
        if result[0] == "stopped":
            raise _Cancelled()
        if result[0] == "failed":
            raise VidtransError(result[1])  # already the one line the worker made of its error
        if not job.dst.is_file():
            raise VidtransError(f"{job.dst}: written by {self.name} but not found here; every Ray node must "
                                "reach the output folder at the same path")
        return result[1]

    def back(self, timeout: float) -> bool:
        """Whether the lost actor, restarted by Ray, answers again (waiting up to `timeout`);
        VidtransError when it cannot load the model where it was restarted."""
        import ray

        # Asked again while refused (the actor is restarting), rather than retried by Ray, which
        # would print each refusal on this process's output.
        if self._ready is None:
            self._ready = self._actor.ready.remote()
        if not ray.wait([self._ready], timeout=timeout)[0]:
            return False
        ready, self._ready = self._ready, None
        try:
            facts = ray.get(ready)
        except ray.exceptions.RayError:
            time.sleep(timeout)
            return False
        if facts["error"]:
            raise VidtransError(facts["error"])
        self._name_from(facts)  # perhaps on another node now
        self.lost = None
        return True


# Ray's log lines with nothing for a vidtrans user, by logger: that token authentication is on (every
# driver of such a cluster says so), and that ray.init, run on a thread of its own (`_connect_ray`),
# left the SIGTERM handler alone, which is what this process wants.
_RAY_CHATTER = {"ray._private.authentication.authentication_token_setup":
                "Token authentication is enabled for this Ray cluster",
                "ray._private.worker": "SIGTERM handler is not set"}


class _DropStartingWith(logging.Filter):
    """Leaves out the records whose message starts with `prefix`."""

    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


_RAY_FILTERS = {name: _DropStartingWith(prefix) for name, prefix in _RAY_CHATTER.items()}


def _import_ray():
    """Ray, or one line when an installed Ray cannot be imported (a broken or mismatched install)."""
    try:
        import ray
    except ImportError as e:
        raise VidtransError(f"{spell('ray')}: Ray is installed but cannot be imported ({failure_line(e)}); reinstall "
                            "it: pip install --force-reinstall 'vidtrans[ray]'") from None
    return ray


_HEAD_PORT = "the head's HOST:PORT, port 6379 unless ray start --head --port said otherwise"


def _cannot_use(batch: BatchOptions, why: str, fix: str = "start one with ray start --head, or give its address"
                ) -> VidtransError:
    return VidtransError(f"{spell('ray')} {batch.ray}: cannot use this Ray cluster ({why}); {fix}")


def _check_reachable(batch: BatchOptions) -> None:
    """A HOST:PORT address is first tried here, for RAY_CONNECT_SECONDS a step: Ray would retry one
    that does not answer for minutes, and its native client, once started, goes on printing about
    it after vidtrans has given up. A Ray head speaks gRPC, so the address must take a connection and
    then complete gRPC's handshake (something else listening there does not). In a thread, since a
    name lookup has no timeout of its own, and this one must stay interruptible."""
    endpoint = batch.ray_endpoint
    if endpoint is None:
        return
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection(endpoint, timeout=RAY_CONNECT_SECONDS).close()
        except OSError as e:
            outcome.append(f"{batch.ray}: {e.strerror or str(e) or type(e).__name__}")
            return
        if not _speaks_grpc(endpoint, RAY_CONNECT_SECONDS):
            outcome.append(f"something answers at {batch.ray}, but not as a Ray head does (no gRPC handshake within "
                           f"{RAY_CONNECT_SECONDS:g} s)")
            return
        outcome.append(None)

    thread = threading.Thread(target=connect, name="vidtrans-ray-check", daemon=True)
    thread.start()
    thread.join(2 * RAY_CONNECT_SECONDS + 1)  # the connection's and the handshake's timeouts end it by then
    why = outcome[0] if outcome else f"no answer from {batch.ray} within {RAY_CONNECT_SECONDS:g} s"
    if why is not None:
        raise _cannot_use(batch, why, f"give {_HEAD_PORT}, or start a cluster with ray start --head")


def _speaks_grpc(endpoint: tuple[str, int], seconds: float) -> bool:
    """Whether gRPC's handshake with `endpoint` completes within `seconds`. True where it cannot be
    tried here: without grpc, or with Ray's TLS (RAY_USE_TLS), whose certificates Ray itself reads."""
    try:
        import grpc  # a dependency of Ray's
    except ImportError:
        return True
    if os.environ.get("RAY_USE_TLS", "0").strip().lower() not in ("", "0", "false"):
        return True
    host, port = endpoint
    channel = grpc.insecure_channel(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=max(seconds, 0.1))
        return True
    except grpc.FutureTimeoutError:
        return False
    finally:
        channel.close()


def _connect_ray(ray, batch: BatchOptions) -> None:
    """ray.init(batch.ray), or VidtransError in one line, within RAY_INIT_SECONDS.

    An address is connected to on a thread of its own: ray.init can wait in Ray's native code for
    long stretches (an address where something else answers), and the main thread must meanwhile
    take Ctrl-C and SIGTERM as any command does. Ray's native code, once connected, installs
    handlers that end the process at once on SIGTERM, skipping the clean-up a stopped batch does:
    this process's are put back."""
    _check_reachable(batch)
    for name, chatter in _RAY_FILTERS.items():
        logging.getLogger(name).addFilter(chatter)
    handlers = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS
                if threading.current_thread() is threading.main_thread()}
    outcome: list[Exception | None] = []

    def connect() -> None:
        try:
            ray.init(address=batch.ray, logging_level=logging.WARNING, log_to_driver=False)
            outcome.append(None)
        except Exception as e:  # noqa: BLE001 - told below, in one line
            outcome.append(e)

    try:
        if batch.ray == "local":
            # A new instance here: no address to wait for, and its processes must be started by a
            # thread that lives on (Ray has the kernel end them with the thread that started them).
            connect()
        else:
            thread = threading.Thread(target=connect, name="vidtrans-ray-init", daemon=True)
            thread.start()
            thread.join(RAY_INIT_SECONDS)
    finally:
        for signum, handler in handlers.items():
            if handler is not None:  # None: set outside Python, nothing to put back
                signal.signal(signum, handler)
    if not outcome:
        raise _cannot_use(batch, f"no Ray cluster answered at {batch.ray} within {RAY_INIT_SECONDS:g} s",
                          f"give {_HEAD_PORT}")
    error = outcome[0]
    if error is None:
        return
    if batch.ray == "auto" and isinstance(error, ConnectionError):
        # Ray's own words tell of an `--address` flag, which is not vidtrans's.
        raise _cannot_use(batch, "no Ray cluster is running on this machine", "start one with ray start --head, "
                          f"or give {_HEAD_PORT}") from None
    if "InvalidAuthToken" in _causes(error):
        raise _cannot_use(batch, "it uses token authentication, and this machine has no token for it",
                          "set RAY_AUTH_MODE=token here, with the head's ~/.ray/auth_token copied here or "
                          "RAY_AUTH_TOKEN set") from None
    raise _cannot_use(batch, first_line(error)) from None


def _causes(error: BaseException) -> str:
    """The text of an error and of the errors it came from."""
    texts = []
    while error is not None and len(texts) < 10:
        texts.append(f"{type(error).__name__}: {error}")
        error = error.__cause__ or error.__context__
    return "\n".join(texts)


@contextlib.contextmanager
def _ray_workers(model: str | os.PathLike, batch: BatchOptions, options: RunOptions, precision: str,
                 model_size: int | None, listener: BatchListener) -> Iterator[list[_RayWorker]]:
    """One actor per GPU of the Ray cluster, or per CPU when it has none or `devices` is cpu
    (`workers` of them when given), each loading the model itself; killed at the end, and Ray
    disconnected when connected here."""
    from vidtrans.models.translator import device_for_backend

    ray = _import_ray()
    connected_here = not ray.is_initialized()  # a Python caller may have connected already
    if connected_here:
        _connect_ray(ray, batch)
    actors = []
    try:
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
        # ONNX Runtime runs on CPUs only: "auto" then means CPU slots.
        wanted = [str(device_for_backend(device, batch.backend)) for device in batch.device_list]
        use_gpus = wanted == ["cuda"] or (wanted == ["auto"] and gpus > 0)
        slots, kind = (gpus, "GPU") if use_gpus else (cpus, "CPU")
        count = batch.workers if batch.workers is not None else slots
        if slots == 0:
            raise BatchUsageError(f"{spell('ray')} {batch.ray}: the Ray cluster has no {kind} for the workers"
                                  + (f"; pass {spell_setting('devices', 'cpu')}" if use_gpus else ""))
        if count > slots:
            # More actors than slots would wait for resources that never come, with their clips.
            raise BatchUsageError(f"{spell('workers')} {count}: the Ray cluster has {_counted(slots, kind)}, and each "
                                  "worker takes one; ask for fewer or add nodes")
        free = int(ray.available_resources().get(kind, 0))
        if free < count:
            listener.notice(f"waiting for {_counted(count, kind)} of the Ray cluster for the workers ({free} free now; "
                            "other jobs hold the rest)")
        actor_type = ray.remote(_ClipActor).options(max_concurrency=2, max_restarts=-1,
                                                    **({"num_gpus": 1} if use_gpus else {"num_cpus": 1}))
        # A path is made absolute for the nodes; a name is looked up on each.
        model = str(Path(model).absolute()) if Path(model).exists() else str(model)
        actors = [actor_type.remote(model, "cuda" if use_gpus else "cpu", precision, model_size, batch.backend,
                                    options, os.getcwd(), spellings()) for _ in range(count)]
        readies = [actor.ready.remote() for actor in actors]
        # Waited for in steps: the cluster's CPUs or GPUs may be held by other jobs for long, and a stop
        # whose KeyboardInterrupt was lost (`listener.stop_asked`) must end the wait as Ctrl-C does.
        while len(ray.wait(readies, num_returns=len(readies), timeout=STOP_POLL_SECONDS)[0]) < len(readies):
            if listener.stop_asked():
                raise KeyboardInterrupt("stop asked")
        facts = ray.get(readies)
        for fact in facts:
            if fact["error"]:
                raise VidtransError(fact["error"])
        yield [_RayWorker(i, actor, fact) for i, (actor, fact) in enumerate(zip(actors, facts))]
    finally:
        for actor in actors:
            with contextlib.suppress(ray.exceptions.RayError):  # gone with its node already
                ray.kill(actor)
        if connected_here:
            ray.shutdown()


def _counted(count: int, thing: str) -> str:
    return f"{count} {thing}{'' if count == 1 else 's'}"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
