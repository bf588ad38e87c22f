"""A damaged H.264 clip with B-frames keeps one frame per packet (QA round 36).

A damaged stream's decoder can put a picture out late, after pictures with later times, whose
packet the reader had counted as lost and given a stand-in; or put one picture out twice. Each
was kept as one frame more, a tick after the frame before (101 frames out of 100)."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from tests.media import _mdat_payload
from vidtrans.video.reader import VideoReader

DANCER = Path(__file__).resolve().parent.parent / "examples" / "dancer.mp4"  # 100 frames, B-frames, 25 fps


def damaged(path: Path, kind: str, seed: int) -> Path:
    """The dancer clip with a stretch of its media data damaged, its header and index intact: every
    so many bytes inverted ("xor"), scattered bytes set at random ("random"), zeroed ("zero") or
    overwritten with noise ("garbage"); the stretch, and how many bytes apart, drawn from `seed`."""
    data = bytearray(DANCER.read_bytes())
    start, end = _mdat_payload(data)
    rng = np.random.default_rng(seed)
    lo, hi = sorted(rng.uniform(0.05, 0.95, 2))
    a, b = start + int((end - start) * lo), start + int((end - start) * hi)
    if kind == "xor":
        for i in range(a, b, int(rng.integers(10, 200))):
            data[i] ^= 0xFF
    elif kind == "random":
        for i in rng.integers(a, b, max(1, (b - a) // 50)):
            data[i] = int(rng.integers(256))
    else:
        data[a:b] = bytes(b - a) if kind == "zero" else rng.integers(0, 256, b - a, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def packet_times(path: Path) -> list[float]:
    """The video packets' times in seconds, in showing order: the frames the container has."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sorted(float(p.pts * p.time_base) for p in container.demux(stream) if p.size and p.pts is not None)


def frame_times(path: Path) -> list[float]:
    with VideoReader(path) as reader:
        return [frame.time for frame in reader]


@pytest.mark.parametrize("kind", ["xor", "random", "zero", "garbage"])
@pytest.mark.parametrize("seed", range(8))
def test_a_damaged_clip_keeps_one_frame_per_packet(tmp_path, kind, seed):
    clip = damaged(tmp_path / "dmg.mp4", kind, seed)
    times = frame_times(clip)
    assert len(times) == len(packet_times(clip)) == 100
    assert all(a < b for a, b in zip(times, times[1:]))


@pytest.mark.parametrize(("kind", "seed"), [
    ("xor", 8), ("random", 3), ("random", 9), ("zero", 6), ("zero", 7), ("zero", 12), ("garbage", 8),
    ("garbage", 14)])
def test_a_late_or_repeated_picture_takes_no_frame_of_its_own(tmp_path, kind, seed):
    """Damage whose late pictures (or pictures put out twice) made one to five frames more: each
    frame is at its packet's time, the late pictures' times having their stand-ins."""
    clip = damaged(tmp_path / "dmg.mp4", kind, seed)
    assert frame_times(clip) == packet_times(clip)


def test_the_users_clip_runs_to_as_many_frames(tmp_path, cli, rgb_model_dir):
    """The user's damage: every 97th byte inverted from 40 % to 60 % of the file. Frame 59 came out
    of the decoder after frame 67 and went out again, as frame 68, a tick after 67's time."""
    clip = tmp_path / "dmg.mp4"
    shutil.copyfile(DANCER, clip)
    data = bytearray(clip.read_bytes())
    for i in range(len(data) * 4 // 10, len(data) * 6 // 10, 97):
        data[i] ^= 0xFF
    clip.write_bytes(bytes(data))
    out = tmp_path / "out.mp4"
    result = cli("run", clip, "--model", rgb_model_dir, "-o", out)
    assert result.returncode == 0 and result.exception is None, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("100 frames in "), result.stderr
    assert packet_times(out) == pytest.approx(packet_times(clip), abs=1e-6)


@pytest.mark.xfail(strict=True, reason="a picture the damaged decoder puts out before a B-frame it shows after "
                                       "goes out first, the B-frame a tick after it (times off, count kept)")
def test_a_picture_put_out_early_keeps_its_time(tmp_path):
    clip = damaged(tmp_path / "dmg.mp4", "xor", 1)
    assert frame_times(clip) == packet_times(clip)
