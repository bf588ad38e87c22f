"""Live mode: translate a camera (or a file/URL standing in for one) frame by frame as it is captured.

    capture thread (latest frame wins) -> [detect pose -> One Euro filter -> map -> draw] -> translate
        -> [smooth] -> preview window / recording / MJPEG stream / virtual camera

Everything runs at batch 1 on the newest frame, so latency (capture to shown) stays bounded when
the model is slower than the camera: frames that arrive while one is being processed are dropped
and counted, never queued.

Pose mapping: offline runs fit the source dancer to the target's body with statistics of the whole
clip; live there is no whole clip. So for the first WARMUP_S seconds the pose is only scaled into
the model's frame (`fit_to_frame`), while keypoints are collected; then the source statistics are
estimated from them and, when that works (enough frames showed a whole body), poses are normalized
to the target's body from then on. Failed estimates are retried every second, with all keypoints
collected so far, up to GIVE_UP_S; after that the pose stays fitted to the frame.

Recording: the file gets the view without the HUD, at the size of the first frame shown (later
views are letterboxed into it), with pts = milliseconds from the first capture (time base 1/1000),
so pauses and dropped frames show as longer frame durations rather than speeding the video up.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from vidtrans.atomic import same_file, write_atomically
from vidtrans.errors import VidtransError
from vidtrans.pipeline import side_by_side
from vidtrans.temporal import SMOOTHING, Smoother, smoothing_for
from vidtrans.video import VideoWriter, check_destination
from vidtrans.video.camera import Camera, CapturedFrame

VIEWS = ("side", "output", "pose")
WARMUP_S = 2.0
GIVE_UP_S = 10.0
# A camera that delivers nothing for this long is treated as gone (some drivers block instead of failing).
STALL_S = 5.0
WINDOW_TITLE = "vidtrans live"
_JPEG_QUALITY = 80


@dataclass
class LiveStats:
    frames: int = 0
    seconds: float = 0.0
    dropped: int = 0
    captured: int = 0
    camera_fps: float = 0.0
    device: str = "cpu"
    model: str = ""
    pose: str | None = None  # how poses were mapped (pose models only)
    ended: str = ""  # why the run stopped
    latencies_ms: list[float] = field(default_factory=list)  # capture to shown, per shown frame
    _first_shown: float | None = None
    _last_shown: float | None = None

    def add(self, captured_at: float, shown_at: float) -> None:
        self.frames += 1
        self.latencies_ms.append((shown_at - captured_at) * 1000.0)
        if self._first_shown is None:
            self._first_shown = shown_at
        self._last_shown = shown_at

    @property
    def fps(self) -> float:
        """Frames shown per second, between the first and the last one shown."""
        if self.frames < 2 or self._last_shown <= self._first_shown:
            return 0.0
        return (self.frames - 1) / (self._last_shown - self._first_shown)

    def latency(self, percentile: float) -> float:
        return float(np.percentile(self.latencies_ms, percentile)) if self.latencies_ms else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "fps": round(self.fps, 2),
                "latency_ms_p50": round(self.latency(50), 1), "latency_ms_p95": round(self.latency(95), 1),
                "dropped": self.dropped, "device": self.device, "captured": self.captured,
                "camera_fps": round(self.camera_fps, 2), "seconds": round(self.seconds, 3), "model": self.model,
                "pose": self.pose, "ended": self.ended}

    def summary(self) -> str:
        return (f"{self.frames} frames at {self.fps:.1f} fps, latency p50 {self.latency(50):.0f} ms / "
                f"p95 {self.latency(95):.0f} ms, {self.dropped} dropped ({self.device})")


@dataclass
class LiveFrame:
    """One processed frame: what the camera saw, the pose map the model got (pose models), the output."""

    input: np.ndarray
    pose: np.ndarray | None
    output: np.ndarray
    captured_at: float


# --- processing ----------------------------------------------------------------------------------

class LivePoseMapper:
    """Camera-pixel keypoints -> the model's frame; see the module docstring for the warm-up."""

    def __init__(self, source_size: tuple[int, int], model_size: tuple[int, int], target_stats: dict | None,
                 normalize: bool = True):
        from vidtrans.pose import PoseStats
        from vidtrans.pose.stages import fit_to_frame

        self.source_size = source_size  # (height, width)
        self.fit = fit_to_frame(source_size, model_size)
        self.target = PoseStats.from_dict(target_stats) if normalize and target_stats else None
        self.transform: Callable[[np.ndarray], np.ndarray] = self.fit
        self.collected: list[np.ndarray] = []
        self.start: float | None = None
        self.next_try = WARMUP_S
        if not normalize:
            self.how = "fitted to the frame (normalization off)"
        elif self.target is None:
            self.how = "fitted to the frame (the model card has no target pose statistics)"
        else:
            self.how = f"fitted to the frame for the first {WARMUP_S:g} s, then normalized"

    def __call__(self, keypoints: np.ndarray, t: float) -> np.ndarray:
        if self.target is not None and self.transform is self.fit:
            self._learn(keypoints, t)
        return self.transform(keypoints)

    def _learn(self, keypoints: np.ndarray, t: float) -> None:
        from vidtrans.pose import PoseNormalizer, estimate_pose_stats

        self.start = t if self.start is None else self.start
        self.collected.append(keypoints)
        elapsed = t - self.start
        if elapsed < self.next_try:
            return
        try:
            source = estimate_pose_stats(np.stack(self.collected), *self.source_size)
        except VidtransError as e:
            self.next_try += 1.0
            if self.next_try > GIVE_UP_S:
                self.how = f"fitted to the frame (not normalized: {e})"
                self.target = None
                self.collected = []
            return
        self.transform = PoseNormalizer(source, self.target)
        self.how = f"normalized to the target's body (source measured over the first {elapsed:.1f} s)"
        self.collected = []


class FrameProcessor:
    """Turns one camera frame into a `LiveFrame` with `model`, at batch 1.

    Pose models: tracked detection, causal One Euro filter, mapping into the model's frame, drawing
    in the card's pose style at the native size. RGB models translate the camera frame itself.
    """

    def __init__(self, model, smoothing: str = "none", smoothing_strength: float = 0.5, normalize: bool = True):
        self.model = model
        self.smoother = Smoother(*smoothing_for(model, smoothing, smoothing_strength))
        self.normalize = normalize
        self.is_pose = model.input_kind == "pose"
        self.detector = self.filter = self.mapper = self.style = None
        if self.is_pose:
            from vidtrans.pose import OneEuroFilter, PoseDetector, PoseStyle

            card = model.card
            self.detector = PoseDetector(video_mode=True)
            self.filter = OneEuroFilter()
            self.style = PoseStyle.from_dict(card.pose_style) if card.pose_style else PoseStyle()

    @property
    def pose_how(self) -> str | None:
        if not self.is_pose:
            return None
        return self.mapper.how if self.mapper is not None else "not started"

    def warm_up(self) -> None:
        """One throw-away translation, so the first live frame does not pay for lazy initialisation."""
        height, width = self.model.native_size
        self.model.translate(np.zeros((1, height, width, 3), np.uint8))

    def __call__(self, frame: CapturedFrame) -> LiveFrame:
        image = frame.image
        if not self.is_pose:
            output = self.model.translate(image[None])[0]
            return LiveFrame(image, None, self.smoother(output, image), frame.time)
        from vidtrans.pose import render_pose

        height, width = self.model.native_size
        if self.mapper is None:
            self.mapper = LivePoseMapper(image.shape[:2], (height, width), self.model.card.target_pose_stats,
                                         self.normalize)
        keypoints = self.filter(self.detector.detect(image), frame.time)
        pose_map = render_pose(self.mapper(keypoints, frame.time), height, width, self.style)
        output = self.model.translate(pose_map[None])[0]
        return LiveFrame(image, pose_map, self.smoother(output, pose_map), frame.time)

    def close(self) -> None:
        if self.detector is not None:
            self.detector.close()


def compose(frame: LiveFrame, view: str) -> np.ndarray:
    """The picture for a view: side (input | pose | output), output, or pose (the input for RGB models)."""
    if view == "output":
        return frame.output
    if view == "pose":
        return frame.pose if frame.pose is not None else frame.input
    return side_by_side([frame.input] + ([frame.pose] if frame.pose is not None else []) + [frame.output])


def letterbox(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """`image` scaled to fit width x height, centred on black (aspect ratio kept)."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    scale = min(width / w, height / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    out = np.zeros((height, width, 3), np.uint8)
    x, y = (width - new_w) // 2, (height - new_h) // 2
    out[y:y + new_h, x:x + new_w] = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    return out


def draw_hud(image: np.ndarray, lines: list[str]) -> np.ndarray:
    out = image.copy()
    scale = max(0.4, image.shape[0] / 720)
    for i, text in enumerate(lines):
        origin = (8, round((i + 1) * 22 * scale + 4))
        cv2.putText(out, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(out, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


# --- outputs ---------------------------------------------------------------------------------------

class PreviewWindow:
    """An OpenCV window; `show` returns the action of the key pressed: quit, pause, view, snapshot or None."""

    _KEYS = {ord("q"): "quit", 27: "quit", ord(" "): "pause", ord("v"): "view", ord("s"): "snapshot"}

    def __init__(self) -> None:
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            # Without a display Qt aborts the whole process rather than raising.
            raise VidtransError("no display for the preview window (DISPLAY is not set); pass --no-window")
        try:
            cv2.namedWindow(WINDOW_TITLE, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)
        except cv2.error as e:
            raise VidtransError("this OpenCV has no window support (opencv-python-headless?); "
                                "pass --no-window or install opencv-python") from e
        self.opened = False

    def show(self, image: np.ndarray) -> str | None:
        cv2.imshow(WINDOW_TITLE, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        if not self.opened:
            cv2.resizeWindow(WINDOW_TITLE, image.shape[1], image.shape[0])
            self.opened = True
        key = cv2.waitKey(1) & 0xFF
        if cv2.getWindowProperty(WINDOW_TITLE, cv2.WND_PROP_VISIBLE) < 1:
            return "quit"  # closed with the mouse
        return self._KEYS.get(key)

    def close(self) -> None:
        cv2.destroyWindow(WINDOW_TITLE)
        cv2.waitKey(1)


class Recorder:
    """The shown view as a video; pts in milliseconds from the first capture, strictly increasing."""

    def __init__(self, path: Path, overwrite: bool, inputs: Iterable[str | os.PathLike] = ()):
        check_destination(path, inputs, overwrite)
        self.path, self.overwrite = path, overwrite
        self.writer: VideoWriter | None = None
        self.origin = 0.0
        self.last_pts = -1

    def write(self, image: np.ndarray, captured_at: float, fps: float) -> None:
        if self.writer is None:
            height, width = image.shape[:2]
            # ultrafast: encoding shares the CPU with the model and must not cost frames.
            self.writer = VideoWriter(self.path, width, height, time_base=Fraction(1, 1000), fps=fps,
                                      preset="ultrafast", crf=20, overwrite=self.overwrite)
            self.origin = captured_at
        image = letterbox(image, self.writer.width, self.writer.height)
        pts = max(round((captured_at - self.origin) * 1000), self.last_pts + 1)
        self.writer.write(image, pts)
        self.last_pts = pts

    @property
    def frames(self) -> int:
        return self.writer.frames_written if self.writer is not None else 0

    def finish(self, keep: bool) -> None:
        """Move the recording into place when `keep` and it has frames; else delete it, and also when
        finishing it fails or is interrupted (Ctrl-C, SIGTERM), so no partial file is left."""
        if self.writer is None:
            return
        if not (keep and self.frames):
            self.writer.abort()
            return
        try:
            self.writer.close()
        except BaseException:
            self.writer.abort()
            raise


class VirtualCamera:
    """The view as a virtual webcam (pyvirtualcam: v4l2loopback, OBS, Unity Capture), at the first frame's size."""

    def __init__(self) -> None:
        try:
            import pyvirtualcam
        except ImportError as e:
            raise VidtransError("--virtual-cam needs pyvirtualcam: pip install 'vidtrans[live]'") from e
        self.module = pyvirtualcam
        self.camera = None

    def send(self, image: np.ndarray, fps: float) -> None:
        if self.camera is None:
            height, width = image.shape[:2]
            try:
                self.camera = self.module.Camera(width=width, height=height, fps=max(1.0, fps),
                                                 fmt=self.module.PixelFormat.RGB)
            except Exception as e:  # pyvirtualcam raises RuntimeError or backend-specific errors
                reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise VidtransError(f"--virtual-cam: no virtual camera available ({reason}); on Linux load "
                                    "v4l2loopback (modprobe v4l2loopback), elsewhere install OBS") from e
        self.camera.send(np.ascontiguousarray(letterbox(image, self.camera.width, self.camera.height)))

    def close(self) -> None:
        if self.camera is not None:
            self.camera.close()


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>vidtrans live</title>
<style>body{margin:0;background:#111;color:#ccc;font:14px sans-serif;text-align:center}
img{max-width:100vw;max-height:92vh}</style></head>
<body><img id="view" src="/stream.mjpg" alt="live view"><div id="status">connecting</div>
<canvas id="probe" width="32" height="24" hidden></canvas>
<script>
// Counts the distinct pictures received, so a stalled stream shows in the page and its title.
const img = document.getElementById("view"), probe = document.getElementById("probe").getContext("2d");
let last = null, distinct = 0;
setInterval(() => {
  if (!img.naturalWidth) return;
  probe.drawImage(img, 0, 0, 32, 24);
  const px = probe.getImageData(0, 0, 32, 24).data;
  let h = 0;
  for (let i = 0; i < px.length; i++) h = (h * 31 + px[i]) | 0;
  if (h !== last) { last = h; distinct++; }
  document.getElementById("status").textContent = distinct + " frames received";
  document.title = "vidtrans live: " + distinct + " frames";
}, 100);
</script></body></html>
"""


class MjpegServer:
    """Serves a page at / and the view as an MJPEG stream at /stream.mjpg, from a thread."""

    def __init__(self, host: str, port: int):
        self._cond = threading.Condition()
        self._jpeg: bytes | None = None
        self._seq = 0
        self._closed = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path in ("/", "/index.html"):
                    body = _PAGE.encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                elif self.path == "/stream.mjpg":
                    server._stream(self)
                else:
                    self.send_error(404)

            def log_message(self, *args) -> None:
                pass  # the terminal belongs to the live statistics

        try:
            self.httpd = ThreadingHTTPServer((host, port), Handler)
        except OSError as e:
            raise VidtransError(f"--serve {host}:{port}: cannot listen there ({e.strerror}); "
                                "choose another port") from e
        self.httpd.daemon_threads = True
        self.host, self.port = host, self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="vidtrans-serve", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def publish(self, image: np.ndarray) -> None:
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
        if ok:
            with self._cond:
                self._jpeg, self._seq = jpeg.tobytes(), self._seq + 1
                self._cond.notify_all()

    def _stream(self, handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        handler.send_header("Cache-Control", "no-cache, no-store")
        handler.end_headers()
        seen = 0
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._closed or self._seq != seen, timeout=1.0)
                    if self._closed:
                        return
                    if self._seq == seen:
                        continue
                    jpeg, seen = self._jpeg, self._seq
                handler.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                    + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
                handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the viewer went away

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()


def parse_serve(text: str) -> tuple[str, int]:
    """"8000" -> ("127.0.0.1", 8000); "HOST:PORT" as given."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise VidtransError(f"--serve {text!r}: give PORT or HOST:PORT, e.g. --serve 8000")
    return host, int(port)


def parse_size(text: str | None) -> tuple[int, int] | None:
    """"640x480" -> (640, 480)."""
    if text is None:
        return None
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit()) or int(width) < 16 or int(height) < 16:
        raise VidtransError(f"--size {text!r}: give WIDTHxHEIGHT, e.g. --size 640x480")
    return int(width), int(height)


# --- the live loop ------------------------------------------------------------------------------------

def run_live(
    model,
    source: int | str | os.PathLike = 0,
    *,
    size: tuple[int, int] | None = None,
    view: str = "side",
    window: bool = True,
    record: str | os.PathLike | None = None,
    serve: str | None = None,
    virtual_cam: bool = False,
    max_frames: int | None = None,
    stats_path: str | os.PathLike | None = None,
    smoothing: str = "none",
    smoothing_strength: float = 0.5,
    normalize: bool = True,
    loop: bool = False,
    overwrite: bool = False,
    on_frame: Callable[[LiveFrame, LiveStats], None] | None = None,
    on_start: Callable[[dict[str, Any]], None] | None = None,
    stop: threading.Event | None = None,
) -> LiveStats:
    """Translate `source` (a camera index, a video file or a URL) live with `model` until it ends,
    `max_frames` frames were shown, the window is closed (q, Esc) or Ctrl-C; returns the statistics.

    Ctrl-C (under the CLI also SIGTERM and SIGHUP), or setting `stop` from another thread, ends the
    run normally (recording finished, stats written). `record` and `stats_path` are refused when
    they name the camera's file, each other, or an existing file (unless `overwrite`). `on_start`
    gets a description of the session (camera, size, fps, url) when the first frame arrives;
    `on_frame` gets every shown frame with the statistics so far.
    """
    if view not in VIEWS:
        raise VidtransError(f"--view must be one of {', '.join(VIEWS)}, not {view!r}")
    if smoothing not in SMOOTHING + ("auto",):
        raise VidtransError(f"--smooth must be one of {', '.join(SMOOTHING)}, not {smoothing!r}")
    if max_frames is not None and max_frames < 1:
        raise VidtransError(f"--max-frames must be at least 1, got {max_frames}")
    camera = Camera(source, size=size, loop=loop)
    # A file standing in for the camera is an input: no output may replace it.
    inputs = [source] if camera.kind == "file" else []
    if record is not None and stats_path is not None and same_file(record, stats_path):
        raise VidtransError(f"--record and --stats both name {record}; give them different files")
    if stats_path is not None:
        check_destination(stats_path, inputs, overwrite)
    stats = LiveStats(device=str(model.device), model=model.name)
    started = time.perf_counter()
    processor = preview = recorder = server = vcam = None
    finished = False
    try:
        recorder = Recorder(Path(record), overwrite, inputs) if record is not None else None
        vcam = VirtualCamera() if virtual_cam else None
        preview = PreviewWindow() if window else None
        processor = FrameProcessor(model, smoothing, smoothing_strength, normalize)
        server = MjpegServer(*parse_serve(serve)) if serve is not None else None
        with _cpu_threads(model):
            processor.warm_up()
            with camera:
                stats.ended = _loop(camera, processor, view, preview, recorder, server, vcam, max_frames, stats,
                                    on_frame, on_start, stop or threading.Event())
                stats.dropped, stats.captured, stats.camera_fps = camera.dropped, camera.captured, camera.fps
        stats.pose = processor.pose_how
        finished = True
    finally:
        try:
            for output in (preview, server, vcam, processor):
                if output is not None:
                    output.close()
        finally:
            if recorder is not None:
                recorder.finish(keep=finished)
    stats.seconds = time.perf_counter() - started
    if stats_path is not None:
        text = json.dumps(stats.to_dict(), indent=2) + "\n"
        write_atomically(stats_path, lambda f: f.write(text.encode()), overwrite=overwrite, inputs=inputs,
                         what="stats")
    return stats


@contextlib.contextmanager
def _cpu_threads(model) -> Iterator[None]:
    """On a CPU, leave half the cores to capture, pose detection and encoding while live.

    At batch 1 a network gains little from many threads, and when its threads outnumber the free
    cores (capture thread, MediaPipe, the encoder, other programs) every layer waits for the one
    thread that was descheduled: on 2 busy cores 2 threads were ~100x slower than 1.
    """
    if getattr(model.device, "type", "cpu") != "cpu":
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, min(before, (os.cpu_count() or 2) // 2)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _loop(camera: Camera, processor: FrameProcessor, view: str, preview: PreviewWindow | None,
          recorder: Recorder | None, server: MjpegServer | None, vcam: VirtualCamera | None,
          max_frames: int | None, stats: LiveStats, on_frame, on_start, stop: threading.Event) -> str:
    """Capture, process, show, until something ends the run; returns why it ended."""
    paused, shown, last_frame_at = False, None, time.perf_counter()
    try:
        while max_frames is None or stats.frames < max_frames:
            if stop.is_set():
                return "stopped"
            captured = camera.get(timeout=0.05)
            now = time.perf_counter()
            if captured is None:
                if camera.ended:
                    return camera.end_reason
                if now - last_frame_at > STALL_S:
                    return f"{camera.name} delivered no frame for {STALL_S:g} s"
                action = preview.show(_hud(shown, stats, camera, view, paused)) if preview and shown is not None else None
            elif paused:
                last_frame_at = now  # a paused run keeps the camera drained, but shows nothing new
                action = preview.show(_hud(shown, stats, camera, view, paused))
            else:
                last_frame_at = now
                if on_start is not None and stats.frames == 0:
                    height, width = captured.image.shape[:2]
                    on_start({"camera": camera.name, "size": f"{width}x{height}", "fps": camera.nominal_fps,
                              "url": server.url if server else None})
                frame = processor(captured)
                shown = compose(frame, view)
                action = preview.show(_hud(shown, stats, camera, view, paused)) if preview else None
                if recorder is not None:
                    recorder.write(shown, captured.time, camera.nominal_fps)
                if server is not None:
                    server.publish(shown)
                if vcam is not None:
                    vcam.send(shown, camera.nominal_fps)
                stats.add(captured.time, time.perf_counter())
                stats.dropped = camera.dropped
                if on_frame is not None:
                    on_frame(frame, stats)
            if action == "quit":
                return "closed by the user"
            if action == "pause":
                paused = not paused
            elif action == "view":
                view = VIEWS[(VIEWS.index(view) + 1) % len(VIEWS)]
            elif action == "snapshot" and shown is not None:
                _snapshot(shown)
    except KeyboardInterrupt as e:
        # The CLI raises KeyboardInterrupt for SIGTERM and SIGHUP too, naming the signal.
        return f"interrupted ({e.args[0] if e.args else 'Ctrl-C'})"
    return f"{max_frames} frames shown (--max-frames)"


def _hud(image: np.ndarray, stats: LiveStats, camera: Camera, view: str, paused: bool) -> np.ndarray:
    recent = stats.latencies_ms[-30:]
    latency = float(np.median(recent)) if recent else math.nan
    lines = [f"{stats.fps:.1f} fps  {latency:.0f} ms  dropped {camera.dropped}",
             f"view {view}  [v]iew [s]napshot [space] pause [q]uit" + ("  PAUSED" if paused else "")]
    return draw_hud(image, lines)


def _snapshot(image: np.ndarray) -> Path:
    path = Path(f"vidtrans-live-{datetime.now():%Y%m%d-%H%M%S-%f}.png")
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path
