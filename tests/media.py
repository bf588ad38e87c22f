"""Synthetic media for tests: tiny clips written with PyAV, with known pixels and timestamps (and
`random_generator`, the stand-in model of tests and benchmarks).

    from tests.media import make_clip
    clip = make_clip(tmp_path / "in.mp4", frames=12, size=(64, 48), audio=True)
    clip.pts, clip.time_base, clip.images   # what was encoded, to compare against

Keep clips tiny (the test machine has 2 shared cores): 64x48 .. 160x120, 10-30 frames.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

FrameFn = Callable[[int, int, int], np.ndarray]  # (index, width, height) -> uint8 RGB (H, W, 3)


@dataclass
class Clip:
    path: Path
    size: tuple[int, int]          # (width, height) as stored, before any rotation metadata
    fps: float
    pts: list[int] = field(default_factory=list)   # video pts in the codec time base passed in
    time_base: Fraction = Fraction(1, 25)            # of `pts` (the container may store another)
    images: list[np.ndarray] = field(default_factory=list)

    @property
    def times(self) -> list[float]:
        return [float(p * self.time_base) for p in self.pts]

    @property
    def duration(self) -> float:
        """Seconds of video: the last frame's time plus one frame."""
        return self.times[-1] + 1.0 / self.fps if self.pts else 0.0


def moving_square(index: int, width: int, height: int) -> np.ndarray:
    """A horizontal gradient with a white square that moves each frame (so frames differ)."""
    img = np.empty((height, width, 3), np.uint8)
    img[:] = np.linspace(0, 200, width, dtype=np.uint8)[None, :, None]
    img[..., 2] = 80
    side = max(2, min(width, height) // 4)
    x = (index * 3) % max(1, width - side)
    y = (index * 2) % max(1, height - side)
    img[y:y + side, x:x + side] = 255
    return img


def solid(color: Sequence[int]) -> FrameFn:
    """Every frame one flat RGB colour (for colour-accuracy checks)."""
    def fn(index: int, width: int, height: int) -> np.ndarray:
        return np.broadcast_to(np.array(color, np.uint8), (height, width, 3)).copy()
    return fn


def quadrants(index: int, width: int, height: int) -> np.ndarray:
    """Red top-left, green top-right, blue bottom-left, white bottom-right: shows rotation and colour."""
    img = np.empty((height, width, 3), np.uint8)
    h2, w2 = height // 2, width // 2
    img[:h2, :w2] = (220, 30, 30)
    img[:h2, w2:] = (30, 200, 30)
    img[h2:, :w2] = (30, 30, 220)
    img[h2:, w2:] = (235, 235, 235)
    return img


def vfr_pts(frames: int) -> tuple[list[int], Fraction]:
    """Irregular millisecond timestamps (20..70 ms steps), like a phone's variable frame rate."""
    steps = [40, 20, 70, 33, 50, 25, 60]
    pts, t = [], 0
    for i in range(frames):
        pts.append(t)
        t += steps[i % len(steps)]
    return pts, Fraction(1, 1000)


def make_clip(path: str | Path, frames: int = 20, size: tuple[int, int] = (64, 48), fps: float = 25,
              audio: bool = True, vfr: bool = False, codec: str = "libx264", pix_fmt: str = "yuv420p",
              rotation: int | None = None, audio_streams: int = 1, audio_codec: str = "aac",
              sample_rate: int = 16000, frame_fn: FrameFn = moving_square,
              pts: Sequence[int] | None = None, time_base: Fraction | None = None,
              video: bool = True, audio_seconds: float | None = None, audio_from: float = 0.0,
              options: dict[str, str] | None = None) -> Clip:
    """Write a small synthetic clip and return what was put in it.

    rotation: clockwise degrees a player must turn the stored picture (a phone's `rotate` tag),
        written as display-matrix side data. The stored picture is `size` as given.
    vfr: irregular timestamps (see `vfr_pts`); or pass explicit `pts` with their `time_base`.
    audio_streams: number of sine-wave audio tracks (different pitch each), from `audio_from` seconds,
        `audio_seconds` long (default: until the video ends). video=False writes an audio-only file.
    """
    path = Path(path)
    width, height = size
    if pts is not None:
        pts, tb = list(pts), time_base or Fraction(1, 1000)
    elif vfr:
        pts, tb = vfr_pts(frames)
    else:
        tb = Fraction(1, round(fps)) if float(fps).is_integer() else Fraction(1000, round(fps * 1000))
        pts = list(range(frames))
    clip = Clip(path=path, size=size, fps=fps, pts=pts, time_base=tb)

    out = av.open(str(path), "w")
    vstream = None
    if video:
        opts = {"preset": "ultrafast", "crf": "10"} if codec == "libx264" else {}
        vstream = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1001), options={**opts, **(options or {})})
        vstream.width, vstream.height, vstream.pix_fmt = width, height, pix_fmt
        vstream.codec_context.time_base = tb
        if rotation:
            # PyAV takes counter-clockwise degrees; phones' tag means clockwise.
            vstream.set_display_rotation(-rotation)

    astreams = []
    if audio:
        for _ in range(audio_streams):
            a = out.add_stream(audio_codec, rate=sample_rate)
            a.layout = "mono"
            astreams.append(a)

    if vstream is not None:
        for i, p in enumerate(pts):
            img = np.ascontiguousarray(frame_fn(i, width, height))
            clip.images.append(img)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = p, tb
            out.mux(vstream.encode(frame))
        out.mux(vstream.encode(None))

    seconds = audio_seconds if audio_seconds is not None else (clip.duration - audio_from if video else 1.0)
    for k, a in enumerate(astreams):
        _write_sine(out, a, seconds, sample_rate, freq=440.0 * (k + 1), first=round(audio_from * sample_rate))
    out.close()
    return clip


def _write_sine(out: av.container.OutputContainer, stream, seconds: float, rate: int, freq: float,
                first: int = 0) -> None:
    total = int(round(seconds * rate))
    chunk = 1024
    for start in range(0, total, chunk):
        n = min(chunk, total - start)
        t = (np.arange(start, start + n) / rate).astype(np.float32)
        samples = (0.3 * np.sin(2 * math.pi * freq * t)).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = rate, first + start, Fraction(1, rate)
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def corrupt_middle(path: str | Path, fraction: tuple[float, float] = (0.4, 0.6), seed: int = 0) -> None:
    """Overwrite a byte range in the middle of the media data with garbage (headers stay intact)."""
    path = Path(path)
    data = bytearray(path.read_bytes())
    start, end = _mdat_payload(data)
    a = start + int((end - start) * fraction[0])
    b = start + int((end - start) * fraction[1])
    data[a:b] = np.random.default_rng(seed).integers(0, 256, b - a, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def _mdat_payload(data: bytes | bytearray) -> tuple[int, int]:
    """Byte range of the first mp4 `mdat` box's payload."""
    pos = 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos:pos + 4], "big")
        kind = bytes(data[pos + 4:pos + 8])
        header = 8
        if size == 1:
            size, header = int.from_bytes(data[pos + 8:pos + 16], "big"), 16
        elif size == 0:
            size = len(data) - pos
        if kind == b"mdat":
            return pos + header, pos + size
        pos += size
    raise ValueError("no mdat box")


def decode_all(path: str | Path) -> tuple[list[np.ndarray], list[float]]:
    """Independent check: every video frame as RGB and its time in seconds, straight from PyAV."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        images, times = [], []
        for f in c.decode(s):
            images.append(f.to_ndarray(format="rgb24"))
            times.append(float(f.pts * f.time_base))
    return images, times


def audio_durations(path: str | Path) -> list[float]:
    """Seconds of each audio stream, summed from packet durations."""
    with av.open(str(path)) as c:
        streams = list(c.streams.audio)
        if not streams:
            return []
        totals = {s.index: 0 for s in streams}
        for p in c.demux(*streams):
            if p.duration:
                totals[p.stream.index] += p.duration
        return [float(totals[s.index] * s.time_base) for s in streams]


def dancer_clip(path: str | Path, look_name: str = "source", frames: int = 24, size: tuple[int, int] = (256, 256),
                seed: int = 7, fps: float = 25, audio: bool = False, **clip_options) -> Clip:
    """A clip of our procedural character dancing (`look_name` "source" or "target"); `clip_options`
    as make_clip takes them (pts, time_base, ...)."""
    from vidtrans.train.synth import SOURCE_LOOK, TARGET_LOOK, dance_keypoints, render_person

    look = SOURCE_LOOK if look_name == "source" else TARGET_LOOK
    width, height = size
    track = dance_keypoints(seed, frames, height, width, look)
    clip = make_clip(path, frames=frames, size=size, fps=fps, audio=audio,
                     frame_fn=lambda i, w, h: render_person(track[i], h, w, look), **clip_options)
    clip.keypoints = track
    return clip


def upstream_frames(net, frames: np.ndarray) -> np.ndarray:
    """What pytorch-CycleGAN-and-pix2pix's test.py makes of uint8 RGB `frames` (N, H, W, 3) with its
    defaults: the generator in train mode (batch statistics), dropout off, one frame at a time."""
    import torch

    net.train()
    for module in net.modules():
        if isinstance(module, torch.nn.Dropout):
            module.eval()
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        y = torch.cat([net(x[i:i + 1]) for i in range(len(x))])
    return ((y + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def assert_same_frames(batched: np.ndarray, single: np.ndarray) -> None:
    """Frames translated in one batch against the same frames translated in other batches (one at a
    time, split passes): equal within one grey level, and in almost every value. A CPU's convolution
    kernels add the same products in another order for another batch size (oneDNN on AVX2-only CPUs
    does, with AVX-512 it did not), which moves a few values across a rounding edge; a frame that
    saw its neighbours (batch statistics, padding) would differ far more widely."""
    assert batched.shape == single.shape and batched.dtype == single.dtype == np.uint8
    differences = np.abs(batched.astype(np.int16) - single.astype(np.int16))
    assert differences.max() <= 1, f"{differences.max()} grey levels apart"
    assert np.mean(differences > 0) < 0.005, f"{np.mean(differences > 0):.2%} of the values differ"


class Recorder:
    """Wraps a model and keeps what it was asked to translate (for a pose model, the pose maps)."""

    def __init__(self, model):
        self.model, self.seen = model, []
        self.name, self.device, self.precision = model.name, model.device, model.precision
        self.input_kind, self.card, self.native_size = model.input_kind, model.card, model.native_size

    def translate(self, frames):
        self.seen.append(frames.copy())
        return self.model.translate(frames)


def random_generator(architecture: str, input_nc: int, output_nc: int, ngf: int, norm: str, seed: int = 0):
    """A generator with pix2pix's initial weights, the same for the same seed: the stand-in model of
    tests and benchmarks (arguments as `vidtrans.models.networks.build_generator`)."""
    import torch

    from vidtrans.models.networks import build_generator, init_weights

    torch.manual_seed(seed)
    net = build_generator(architecture, input_nc, output_nc, ngf, norm)
    init_weights(net)
    return net


def normalizing_pose_model(folder: Path, architecture: str, size: int, pose_style: dict | None = None):
    """A tiny pose model (ngf 8, seed 0) at `size` whose card carries a target's body statistics,
    so `run` normalizes, and `pose_style` where given. Loaded in fp32 on the CPU (the bf16 `auto`
    picks on some CPUs varies with the batch)."""
    import vidtrans
    from vidtrans.models.checkpoint import ModelCard, save_checkpoint
    from vidtrans.pose import PoseStats

    stats = PoseStats(frame_width=size, frame_height=size, far=0.80, near=0.90, height_far=0.55, height_near=0.62)
    style = {} if pose_style is None else {"pose_style": pose_style}
    save_checkpoint(folder, random_generator(architecture, 3, 3, 8, "instance", seed=0),
                    ModelCard(architecture=architecture, ngf=8, norm="instance", native_size=(size, size),
                              input_kind="pose", target_pose_stats=stats.to_dict(), **style))
    return vidtrans.load_model(folder, device="cpu", precision="fp32")


def video_model(folder: Path, clip: Path, held_out_from: int) -> Path:
    """A tiny pose model whose card says `vidtrans train` made it from `clip` (64x48, 25 fps),
    holding out its frames from `held_out_from` on."""
    from vidtrans.models.checkpoint import ModelCard, save_checkpoint
    from vidtrans.pose.render import PoseStyle
    from vidtrans.video import file_identity

    training = {"data": f"target video {clip.name}", "video": clip.name, "video_identity": file_identity(clip),
                "crop": [8, 0, 48], "held_out": {"from_frame": held_out_from, "from_time": held_out_from / 25}}
    card = ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance", native_size=(64, 64), input_kind="pose",
                     pose_style=PoseStyle().to_dict(), training=training)
    save_checkpoint(folder, random_generator("resnet_6blocks", 3, 3, 8, "instance"), card)
    return folder


# Training options for a network small enough for a step in a fraction of a second on a CPU.
TINY_TRAINING = ["--arch", "resnet_6blocks", "--size", "64", "--d-scales", "1", "--ngf", "4", "--ndf", "4",
                 "--device", "cpu", "--save-every", "1", "--validate-every", "1"]


def paired_folder(folder: Path, pairs: int, seed: int = 0) -> Path:
    """`pairs` side-by-side AB images of 64x64 noise each side."""
    import cv2

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(pairs):
        cv2.imwrite(str(folder / f"{i:03d}.png"), rng.integers(0, 256, (64, 128, 3), dtype=np.uint8))
    return folder


def train_tiny(root: Path, iterations: int, cli) -> tuple[Path, Path]:
    """A checkpoint `root`/ck trained `iterations` iterations (TINY_TRAINING) on 4 noise pairs in
    `root`/pairs, through `cli` (tests.conftest.run_cli); returns (pairs folder, checkpoint folder)."""
    data = paired_folder(root / "pairs", 4)
    out = root / "ck"
    result = cli("train", "--data", data, "-o", out, "--iterations", str(iterations), *TINY_TRAINING)
    assert result.returncode == 0, result.stderr
    return data, out


def move_timestamps(path, stream_id, pes_numbers, seconds):
    """Add `seconds` to the PTS and DTS in the headers of the PES packets `pes_numbers` (counted
    from 0) of stream `stream_id` in an MPEG-TS file, as damaged headers carry them."""
    data = bytearray(path.read_bytes())
    left, count = set(pes_numbers), 0
    for packet in range(0, len(data), 188):
        if not data[packet + 1] & 0x40:  # no PES starts in this TS packet
            continue
        pes = packet + 4 + (1 + data[packet + 4] if data[packet + 3] & 0x20 else 0)
        if data[pes:pes + 4] != b"\0\0\1" + bytes([stream_id]):
            continue
        count += 1
        if count - 1 not in left:
            continue
        left.discard(count - 1)
        stamps = 2 if data[pes + 7] >> 6 == 3 else 1
        for at in range(pes + 9, pes + 9 + 5 * stamps, 5):
            b = data[at:at + 5]
            ticks = (b[0] >> 1 & 7) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1
            ticks = (ticks + round(seconds * 90000)) % (1 << 33)
            data[at:at + 5] = bytes([b[0] & 0xF0 | (ticks >> 30) << 1 | 1, ticks >> 22 & 255,
                                     (ticks >> 15 & 127) << 1 | 1, ticks >> 7 & 255, (ticks & 127) << 1 | 1])
    assert not left, f"{path}: no PES {sorted(left)} of stream {stream_id:#x}"
    path.write_bytes(data)
    return path


@contextlib.contextmanager
def two_node_ray_cluster(prefix: str):
    """A Ray head and a second node, one CPU each: two raylets on this machine, so two workers on
    two nodes; always stopped. Ray's files (and the address file `ray.init()` reads) go in a
    folder of their own with a short path: Ray's socket paths must fit in 107 bytes."""
    from ray import cluster_utils

    temp = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_TMPDIR", temp)
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        cluster = cluster_utils.Cluster()
        try:
            cluster.add_node(num_cpus=1, include_dashboard=False)
            cluster.add_node(num_cpus=1)
            yield cluster
        finally:
            cluster.shutdown()
            shutil.rmtree(temp, ignore_errors=True)

