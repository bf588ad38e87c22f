"""The live loop: capture, process, hand each picture to the sinks, count what happened.

Everything runs at batch 1 on the newest frame, so latency (capture to shown) stays bounded when
the model is slower than the camera: frames that arrive while one is being processed are dropped
and counted, never queued (`vidtrans.video.camera.Camera`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vidtrans.atomic import OutputClaim, discard, same_file, temp_path, write_atomically
from vidtrans.errors import UsageError, VidtransError, count
from vidtrans.live.process import FrameProcessor, LiveFrame, compose, cpu_threads
from vidtrans.live.sinks import (MjpegServer, Shown, Sink, check_display, check_recording_name, listening, open_sinks,
                                 virtual_camera_module)
from vidtrans.models.checkpoint import checkpoint_path, model_files
from vidtrans.options import LiveOptions, View, option_names, rounded, shown, spell, spelled, spellings
from vidtrans.pipeline import given_options, loaded_model
from vidtrans.pose.normalize import check_normalize_off
from vidtrans.runner import stop_signals_deferred
from vidtrans.video import check_destination
from vidtrans.video.camera import Camera

# A camera that delivers nothing for this long is treated as gone (some drivers block instead of failing).
STALL_S = 5.0
# How long the HUD tells where the last snapshot went (or that it failed): long enough to read a file name.
SNAPSHOT_TOLD_S = 4.0

log = logging.getLogger(__name__)


@dataclass
class LiveStats:
    frames: int = 0
    # The session's wall-clock length: from `run_live`'s start (after the model loaded: sinks opened, the
    # camera, the model's warm-up translation) to its end, its recording finished.
    seconds: float = 0.0
    dropped: int = 0
    captured: int = 0
    corrupt_frames: int = 0  # of a file camera: damaged, shown as the last good frame (or as decoded)
    camera_fps: float | None = None  # measured over its last frames; None until it captured two
    device: str = "cpu"
    precision: str = "fp32"  # what the model ran in ("auto" resolved: bf16 on some CPUs, fp16 on CUDA)
    backend: str = "torch"
    model: str = ""
    pose: str | None = None  # how poses were mapped (pose models only)
    ended: str = ""  # why the run stopped
    latencies_ms: list[float] = field(default_factory=list)  # capture to shown, per shown frame
    _first_captured: float | None = None  # of the frames shown
    _last_captured: float | None = None

    def add(self, captured_at: float, shown_at: float) -> None:
        self.frames += 1
        self.latencies_ms.append((shown_at - captured_at) * 1000.0)
        if self._first_captured is None:
            self._first_captured = captured_at
        self._last_captured = captured_at

    @property
    def fps(self) -> float | None:
        """Frames shown per second of the camera's time, from the capture of the first one shown to
        the last one's; not of the times they were shown at, whose span the first frame's extra
        latency (a recording's encoder opening) shortens: a session of a few frames would show them
        faster than its camera delivered them. None before two frames were shown: one frame has no
        rate, which 0 fps would present as a camera that stalled."""
        if self.frames < 2 or self._last_captured <= self._first_captured:
            return None
        return (self.frames - 1) / (self._last_captured - self._first_captured)

    def latency(self, percentile: float) -> float | None:
        """Capture-to-shown latency in ms at `percentile` of the frames shown; None when none was
        shown (nothing was measured, which 0 ms would present as instant)."""
        return float(np.percentile(self.latencies_ms, percentile)) if self.latencies_ms else None

    def to_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "fps": rounded(self.fps, 2),
                "latency_ms_p50": rounded(self.latency(50), 1), "latency_ms_p95": rounded(self.latency(95), 1),
                "dropped": self.dropped, "device": self.device, "precision": self.precision,
                "backend": self.backend, "captured": self.captured, "corrupt_frames": self.corrupt_frames,
                "camera_fps": rounded(self.camera_fps, 2), "seconds": round(self.seconds, 3), "model": self.model,
                "pose": self.pose, "ended": self.ended}

    def summary(self) -> str:
        latency = ("latency n/a" if not self.latencies_ms else
                   f"latency p50 {self.latency(50):.0f} ms / p95 {self.latency(95):.0f} ms")
        corrupt = f", {count(self.corrupt_frames, 'corrupt frame')} in the camera's file" if self.corrupt_frames else ""
        rate = (f" at {self.fps:.1f} fps" if self.fps is not None else
                ", fps n/a" + (" (one frame)" if self.frames == 1 else ""))
        return f"{count(self.frames, 'frame')}{rate}, {latency}, {self.dropped} dropped{corrupt} ({self.device})"


@dataclass
class Hooks:
    """How a caller follows and ends a run (see `run_live`)."""

    on_start: Callable[[dict[str, Any]], None] = lambda info: None
    on_frame: Callable[[LiveFrame, LiveStats], None] = lambda frame, stats: None
    stop: threading.Event = field(default_factory=threading.Event)


def run_live(
    model,
    source: int | str | os.PathLike = 0,
    options: LiveOptions | None = None,
    *,
    on_frame: Callable[[LiveFrame, LiveStats], None] | None = None,
    on_start: Callable[[dict[str, Any]], None] | None = None,
    stop: threading.Event | None = None,
    **changes: Any,
) -> LiveStats:
    """Translate `source` (a camera index, a video file or a URL, or a `Camera` of one, opened
    already or not) live with `model` (a `vidtrans.load_model` result, or a model's name or path,
    loaded once the settings are checked) until it ends,
    `max_frames` frames were shown, the window is closed (q, Esc) or Ctrl-C; returns the statistics.
    A camera that fails rather than ends (a damaged file, a frame too large to resize) raises its
    VidtransError.

    `options` (a `LiveOptions`; default settings when None), changed by any `changes` given by
    field name, e.g. `run_live(model, "clip.mp4", window=False, record="out.mp4")`.
    Ctrl-C (under the CLI also SIGTERM and SIGHUP), or setting `stop` from another thread, ends the
    run normally (recording finished, stats written); a Ctrl-C before the first frame is shown
    interrupts the start-up instead (KeyboardInterrupt, as during model loading). A run that showed
    no frame writes neither `record` nor `stats` (an existing file stays as it was): there is
    nothing to record or describe. `record` and `stats` are refused (UsageError) when they name
    the camera's file, each other, or an existing file (unless `overwrite`), and `record` unless it
    is a .mp4, .mkv or .mov file; so are `window` without a display and a `serve` host that is not
    this machine's (`check_live`). `on_start` gets a description of the session (camera, size, fps, url) when the
    first frame arrives; `on_frame` gets every shown frame with the statistics so far.
    """
    options = given_options(options, LiveOptions(), "options").replace(**changes)
    _check_hooks(on_frame, on_start, stop)
    camera = source if isinstance(source, Camera) else Camera(source, size=options.capture_size, loop=options.loop)
    started = time.perf_counter()
    # Closes the sinks and the processor in reverse order, also on errors; a recording is kept
    # only when the block completes (also when the camera failed: what it showed until then).
    # The recording's writer names settings to change: those of live, also from Python (there it
    # would name translate_video's: codec, side_by_side).
    with spelled(spellings() or {name: name for name in option_names(LiveOptions)}), contextlib.ExitStack() as stack:
        stack.callback(camera.close)  # also one opened already (by the CLI) that the checks refuse
        check_live(options, camera, model)  # a model's name or path too: before it loads (seconds)
        model = loaded_model(model)
        check_normalize_off(options.normalize, model)  # which needs the model loaded
        stats = LiveStats(device=str(model.device), precision=model.precision,
                          backend=getattr(model, "backend", "torch"), model=model.name)
        camera.open()  # a camera that is not there fails now, not after the model's warm-up
        sinks = open_sinks(options, stack)
        processor = FrameProcessor(model, options.smoothing, options.smoothing_strength, options.normalize)
        stack.callback(processor.close)
        url = next((sink.url for sink in sinks if isinstance(sink, MjpegServer)), None)
        hooks = Hooks(stop=stop or threading.Event())
        if on_frame is not None:
            hooks.on_frame = on_frame
        if on_start is not None:
            hooks.on_start = lambda info: on_start({**info, "url": url})
        with cpu_threads(model):
            processor.warm_up()
            try:
                with camera:
                    stats.ended = _loop(camera, processor, sinks, options, stats, hooks)
                    _count_capture(stats, camera)
            except KeyboardInterrupt as e:
                # Once frames were shown a signal ends the session normally, also one that comes
                # while the camera closes (a capture thread stuck in its driver is waited for up
                # to 5 s, after a camera that fell silent) or as the loop returns (before its
                # capture was counted): the recording and stats are still finished, not thrown away.
                if not stats.frames:
                    raise
                stats.ended = stats.ended or f"interrupted ({e.args[0] if e.args else 'Ctrl-C'})"
                _count_capture(stats, camera)
        stats.pose = processor.pose_how
        _finish(stack, options, stats, started)  # the session ended normally
    # The camera's error only where it ended the session: one that came once the session had ended
    # otherwise (the file's last frame was the last one asked for) changes nothing shown.
    if camera.error is not None and stats.ended == _failed(camera):
        raise camera.error
    return stats


def _check_hooks(on_frame: Any, on_start: Any, stop: Any) -> None:
    """UsageError for hooks that are not what `run_live` calls: found before the session starts,
    not as an AttributeError or TypeError at its first frame."""
    for name, hook in (("on_frame", on_frame), ("on_start", on_start)):
        if hook is not None and not callable(hook):
            raise UsageError(f"{name} must be None or a function, not {shown(hook)}")
    if stop is not None and not callable(getattr(stop, "is_set", None)):
        raise UsageError(f"stop must be None or a threading.Event, not {shown(stop)}")


def _count_capture(stats: LiveStats, camera: Camera) -> None:
    """What `camera` captured, once the session ended, into `stats`."""
    stats.captured, stats.camera_fps = camera.captured, camera.fps or None
    stats.corrupt_frames = camera.corrupt_frames
    # Every frame captured and not shown was dropped: besides those a newer one replaced
    # (`camera.dropped`), those taken while paused, one being processed when a signal
    # came, and one left waiting when the session ended.
    stats.dropped = stats.captured - stats.frames


def _finish(stack: contextlib.ExitStack, options: LiveOptions, stats: LiveStats, started: float) -> None:
    """Close what `stack` holds (camera, processor, sinks: the recording moves into place) and write
    the stats. Once frames were shown, a stop signal arriving meanwhile (an encoder's flush takes a
    while after a long session) waits for the end and then changes nothing: it ended the session
    like one a moment earlier, not by throwing away the recording of what was shown."""
    failure = None
    try:
        with stop_signals_deferred() if stats.frames else contextlib.nullcontext():
            stack.pop_all().close()
            stats.seconds = time.perf_counter() - started
            # The stats describe what was shown, and so the recording: with no frame shown there is
            # no recording, and new stats would describe one that is not there (or replace the
            # description of an existing recording, which stays as it was).
            if options.stats is not None and stats.frames:
                text = json.dumps(stats.to_dict(), indent=2) + "\n"
                try:
                    write_atomically(options.stats, lambda f: f.write(text.encode()), overwrite=options.overwrite,
                                     what="stats")
                except UsageError as e:
                    # The path was fine when the session started (check_live): what changed since (its
                    # folder removed, a file made there) is the session's failure, not the options'.
                    raise VidtransError(str(e)) from e
    except KeyboardInterrupt as stop:
        if not stats.frames:
            raise
        failure = stop.__context__  # the deferred signal came on top of a failure, which is told
    if isinstance(failure, Exception):
        raise failure  # outside the handler: an error of its own, not the stop (`vidtrans.cli._the_stop`)


def check_live(options: LiveOptions, camera: Camera, model=None) -> None:
    """Refuse what the session would fail on later, before any work (a model loads for seconds):
    `record` and `stats` naming the camera's file, the model's files (`model`: a loaded model, or
    the name or path it will be loaded from), each other, an existing file (unless `overwrite`) or
    a folder that cannot be written, a recording into a kind of file live cannot record or that
    another process is writing, a `serve` address that cannot be listened on, the window without
    a display, the virtual camera without pyvirtualcam; and, once `model` is loaded, `normalize`
    off for a model that gets no pose maps (a flag that would do nothing, as `run` refuses it)."""
    if options.loop and camera.kind != "file":
        what = (f"{camera.source} is a device, which has no end" if camera.kind == "device" else
                f"{camera.name} is a stream, which live cannot play again")
        raise UsageError(f"{spell('loop')} plays a video file camera again from its start, and {spell('camera')} "
                         f"{what}; drop {spell('loop')}")
    if hasattr(model, "input_kind"):  # loaded (not a name or path yet)
        check_normalize_off(options.normalize, model)
    inputs = ([camera.file] if camera.file is not None else []) + _model_files(model)
    outputs = [path for path in (options.record, options.stats) if path is not None]
    if len(outputs) == 2 and same_file(*outputs):
        raise UsageError(f"{spell('record')} and {spell('stats')} both name {options.record}; "
                         "give them different files")
    for path in outputs:
        check_destination(path, inputs, options.overwrite)
        # A file can be made beside it: found now, not when the session ends and its stats are lost.
        discard(temp_path(path))
    if options.record is not None:
        check_recording_name(Path(options.record))
        OutputClaim(options.record).release()  # another session recording into it now
    if options.serve is not None:
        listening(*options.serve_address).server_close()
    if options.virtual_cam:
        virtual_camera_module()
    if options.window:
        check_display()


def _model_files(model) -> list[Path]:
    """The files `model` (loaded, or a name or path) is read from; none where a name stands for no
    model (loading it says so)."""
    if hasattr(model, "files"):
        return list(model.files)
    if isinstance(model, (str, os.PathLike)):
        try:
            return model_files(checkpoint_path(model))
        except VidtransError:
            return []
    return []


def _loop(camera: Camera, processor: FrameProcessor, sinks: list[Sink], options: LiveOptions, stats: LiveStats,
          hooks: Hooks) -> str:
    """Capture, process, show, until something ends the run; returns why it ended."""
    views = list(View)
    view, paused, shown, last_frame_at = options.view, False, None, time.perf_counter()
    told = ("", 0.0)  # what the HUD tells of the last snapshot, and until when
    try:
        while options.max_frames is None or stats.frames < options.max_frames:
            if hooks.stop.is_set():
                return "stopped"
            captured = camera.get(timeout=0.05)
            now = time.perf_counter()
            if captured is None and camera.ended:
                # A failed camera ends the loop like a finished one, so that what was shown is kept
                # (recording, stats); `run_live` raises its error after that.
                return camera.end_reason if camera.error is None else _failed(camera)
            if captured is None and now - last_frame_at > STALL_S:
                # A device or stream gone silent has failed; a file only pauses (its own frame times).
                reason = f"{camera.name} delivered no frame for {STALL_S:g} s"
                if camera.kind == "file":
                    return reason
                camera.fail(f"{reason}; check its connection")
                return _failed(camera)
            if captured is not None:
                last_frame_at = now
                # Every frame captured before this one and not shown was dropped (replaced by a newer
                # one, or taken while paused), and this one too while paused: the HUD and `on_frame`
                # count as the summary does (which adds the frames left when the session ended).
                stats.dropped = captured.index - stats.frames + (1 if paused else 0)
            if captured is None or paused:
                # Nothing new to show (a paused run keeps the camera drained): the window still
                # redraws the last picture, to read its keys.
                repeat = shown.again(_hud(stats, view, paused, told)) if shown is not None else None
                actions = [sink.show(repeat) for sink in sinks] if repeat is not None else []
            else:
                if stats.frames == 0:
                    height, width = captured.image.shape[:2]
                    hooks.on_start({"camera": camera.name, "size": f"{width}x{height}", "fps": camera.nominal_fps})
                frame = processor(captured)
                shown = Shown(compose(frame, view), captured.time, camera.nominal_fps,
                              _hud(stats, view, paused, told))
                # Recorded and counted as one step: a stop between them left a recording of a frame
                # more than its stats said were shown. Not the first frame: a stop before it counts
                # ends the start-up, leaving earlier --record and --stats files as they were.
                with stop_signals_deferred() if stats.frames else contextlib.nullcontext():
                    actions = [sink.show(shown) for sink in sinks]
                    stats.add(captured.time, time.perf_counter())
                hooks.on_frame(frame, stats)
            for action in filter(None, actions):
                if action == "quit":
                    return "closed by the user"
                if action == "pause":
                    paused = not paused
                elif action == "view":
                    view = views[(views.index(view) + 1) % len(views)]
                elif action == "snapshot" and shown is not None:
                    saved = _snapshot(shown.image)
                    told = (f"saved {saved}" if saved else "snapshot not saved (see the warning)",
                            time.perf_counter() + SNAPSHOT_TOLD_S)
    except KeyboardInterrupt as e:
        if stats.frames == 0:
            # No session to finish yet: the signal interrupts the start-up, as it does any command
            # (the CLI exits 128+N, and existing --record and --stats files stay as they were).
            raise
        # The CLI raises KeyboardInterrupt for SIGTERM and SIGHUP too, naming the signal.
        return f"interrupted ({e.args[0] if e.args else 'Ctrl-C'})"
    return f"{count(options.max_frames, 'frame')} shown ({spell('max_frames')})"


def _failed(camera: Camera) -> str:
    """Why a session that the camera's failure ended ended."""
    return f"camera failed: {camera.error}"


def _hud(stats: LiveStats, view: View, paused: bool, told: tuple[str, float]) -> tuple[str, ...]:
    """The HUD's lines; `told`: a line and the time.perf_counter() until which it is shown."""
    recent = stats.latencies_ms[-30:]
    # The first picture's HUD comes before any latency was measured (as in the summary: n/a, not nan).
    latency = f"{np.median(recent):.0f} ms" if recent else "latency n/a"
    note, until = told
    fps = "fps n/a" if stats.fps is None else f"{stats.fps:.1f} fps"
    return (f"{fps}  {latency}  dropped {stats.dropped}",
            f"view {view.value}  [v]iew [s]napshot [space] pause [q]uit" + ("  PAUSED" if paused else ""),
            *([note] if note and time.perf_counter() < until else []))


def _snapshot(image: np.ndarray) -> Path | None:
    """Write `image` as vidtrans-live-DATE-TIME.png in the current folder; the path, or None when it
    could not be written (told in one warning line: the session goes on)."""
    path = Path(f"vidtrans-live-{datetime.now():%Y%m%d-%H%M%S-%f}.png")
    # Encoded here and written by `write_atomically`: cv2.imwrite tells a failure only by returning
    # False (why, it does not say), and writes in place (a partial file on a full disk).
    _, png = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    try:
        write_atomically(path, lambda f: f.write(png.tobytes()), overwrite=False, what="snapshot")
    except VidtransError as e:
        log.warning("snapshot not saved: %s", e)
        return None
    return path
