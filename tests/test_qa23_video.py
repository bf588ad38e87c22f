"""QA round 23, video: how a clip's frames are cut into batches, and hostile videos through `run`."""

import av
import numpy as np
import pytest
import torch

from tests.conftest import one_line
from tests.media import decode_all, make_clip
from vidtrans.pipeline import translate_video
from vidtrans.runner import frame_batches
from vidtrans.video.hdr import HLG
from vidtrans.video.reader import VideoReader, probe


class _Frame:
    def __init__(self, index):
        self.image, self.pts, self.index = index, index, index


def _sizes(count, batch_size, expected, workers):
    batches = list(frame_batches((_Frame(i) for i in range(count)), batch_size, expected, workers))
    assert [i for b in batches for i in b.indices] == list(range(count))
    return [len(b.indices) for b in batches]


class _FakeModel:
    name, device, precision, input_kind = "fake", torch.device("cpu"), "fp32", "rgb"

    def __init__(self):
        self.sizes = []

    def translate(self, frames):
        self.sizes.append(len(frames))
        return np.ascontiguousarray(255 - frames)


@pytest.mark.parametrize("count, batch_size, workers, sizes", [
    (20, 8, 2, [8, 8, 2, 2]),  # was 8, 6, 6: the second 6 started when the 8 ended, alone
    (100, 8, 2, [8] * 12 + [2, 2]),  # was [8] * 11 + [6, 6]: 54 batch-frames' time for 50 per worker
    (16, 8, 2, [8, 8]),  # was 8, 4, 4: two rounds for one
    (15, 8, 2, [8, 7]),  # was 8, 4, 3
    (7, 8, 2, [4, 3]),
    (31, 8, 3, [8, 8, 8, 3, 2, 2]),
])
def test_the_last_round_of_batches_starts_together(count, batch_size, workers, sizes):
    """`Parallel` starts a batch when the one `workers` before it ends, so batches run in rounds of
    `workers`: the frames after the last round of full batches are cut into `workers` batches of
    that last round. Cut anywhere else, the tail's last batch ran alone in a round of its own."""
    assert _sizes(count, batch_size, count, workers) == sizes


def test_no_clip_takes_a_round_more_than_its_frames_need():
    for count in range(1, 70):
        for batch_size in (1, 2, 3, 5, 8):
            for workers in (2, 3):
                sizes = _sizes(count, batch_size, count, workers)
                assert -(-len(sizes) // workers) == -(-count // (workers * batch_size)), (count, batch_size, workers)
                last_round = sizes[len(sizes) - (len(sizes) - 1) % workers - 1:]
                assert max(last_round) - min(last_round) <= 1, (count, batch_size, workers, sizes)


@pytest.mark.parametrize("count, expected, sizes", [
    (20, 0, [8, 8, 4]),  # no estimate
    (20, -5, [8, 8, 4]),
    (20, 20, [8, 8, 2, 2]),
    (30, 29, [8, 8, 7, 7]),  # a frame short (Matroska's estimate, a variable rate): no batch of 1 more
    (30, 28, [8, 8, 6, 8]),
    (29, 30, [8, 8, 7, 6]),  # a frame long
    (20, 12, [6, 8, 6]),  # well short of the clip: full batches after it
    (20, 40, [8, 8, 4]),  # beyond it
])
def test_estimates_that_are_wrong_or_missing_still_give_every_frame_once(count, expected, sizes):
    assert _sizes(count, 8, expected, 2) == sizes
    assert _sizes(count, 8, expected, 1) == [8] * (count // 8) + [count % 8] * (count % 8 > 0)  # no tail to share


def test_run_shares_a_clips_last_round_between_both_workers(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=20, size=(64, 48), audio=False)
    model = _FakeModel()
    assert translate_video(clip.path, tmp_path / "out.mp4", model, batch_size=8).frames == 20
    assert sorted(model.sizes) == [2, 2, 8, 8]


def _unreadable(clip, codec_id: bytes, tmp_path, name):
    """`clip` (a Matroska file) with the track of `codec_id` given a codec ID no FFmpeg knows, as a
    damaged header or a codec this FFmpeg lacks leaves it: PyAV gives such a stream no codec context."""
    data = clip.path.read_bytes()
    assert data.count(codec_id) == 1
    path = tmp_path / name
    path.write_bytes(data.replace(codec_id, codec_id[:2] + b"Z" * (len(codec_id) - 2)))  # kind kept: "A_", "V_"
    return path


def test_an_audio_track_ffmpeg_cannot_read_is_left_out_with_a_warning(cli, tmp_path, rgb_model_dir):
    """It crashed the run (AttributeError naming the missing codec context, a traceback)."""
    clip = make_clip(tmp_path / "in.mkv", frames=12, size=(64, 48), audio=True)
    src = _unreadable(clip, b"A_AAC", tmp_path, "unknown_audio.mkv")
    before = src.read_bytes()
    out = tmp_path / "out.mp4"
    result = cli("run", src, "-m", rgb_model_dir, "-o", out)
    assert result.returncode == 0 and result.exception is None, result.stderr
    assert "audio track of a format this FFmpeg cannot read" in result.stderr
    images, times = decode_all(out)
    assert len(images) == 12 and times == pytest.approx(clip.times, abs=1e-3)
    with av.open(str(out)) as written:
        assert not written.streams.audio
    assert src.read_bytes() == before


def test_a_larger_video_track_ffmpeg_cannot_read_leaves_the_one_it_can(cli, tmp_path, rgb_model_dir):
    path = tmp_path / "two.mkv"
    with av.open(str(path), "w") as out:
        small = out.add_stream("libx264", rate=25)
        large = out.add_stream("mpeg4", rate=25)
        for stream, (width, height) in ((small, (64, 48)), (large, (128, 96))):
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(10):
            for stream in (small, large):
                picture = np.full((stream.height, stream.width, 3), 20 * i, np.uint8)
                frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
                frame.pts = i
                out.mux(stream.encode(frame))
        for stream in (small, large):
            out.mux(stream.encode())
    src = tmp_path / "unknown_large.mkv"
    src.write_bytes(path.read_bytes().replace(b"V_MPEG4/ISO/ASP", b"V_" + b"Z" * 13))
    assert probe(src).width == 64
    out = tmp_path / "out.mp4"
    result = cli("run", src, "-m", rgb_model_dir, "-o", out)
    assert result.returncode == 0 and result.exception is None, result.stderr
    assert "video track of a format this FFmpeg cannot read" in result.stderr
    images, _ = decode_all(out)
    assert len(images) == 10 and images[0].shape == (48, 64, 3)


@pytest.mark.parametrize("command", ["run", "pose"])
def test_a_video_ffmpeg_cannot_read_is_one_line(cli, tmp_path, rgb_model_dir, command):
    clip = make_clip(tmp_path / "in.mkv", frames=6, size=(64, 48), audio=True)
    src = _unreadable(clip, b"V_MPEG4/ISO/AVC", tmp_path, "unknown_video.mkv")
    out = tmp_path / "out.mp4"
    model = ["-m", rgb_model_dir] if command == "run" else []
    line = one_line(cli(command, src, *model, "-o", out), 1)
    assert "no decoder" in line and str(src) in line
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in.mkv", "unknown_video.mkv"]


def test_a_one_pixel_hlg_video_is_read(cli, tmp_path, rgb_model_dir):
    """A 1x1 HLG frame crashed the HDR conversion (ValueError, a traceback): OpenCV's max took the
    1x1 luma beside a number for a scalar of 4 values."""
    path = tmp_path / "hlg1x1.mkv"
    image = np.full((1, 1, 3), int(0.6 * 65535), np.uint16)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 1, 1, "yuv444p10le"
        context = stream.codec_context
        context.colorspace, context.color_primaries, context.color_trc = 9, 9, HLG
        frame = av.VideoFrame.from_ndarray(image, format="rgb48le").reformat(format="yuv444p10le",
                                                                             dst_colorspace="bt2020")
        frame.colorspace, frame.color_primaries, frame.color_trc = 9, 9, HLG
        for i in range(3):
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    out = tmp_path / "out.mp4"
    result = cli("run", path, "-m", rgb_model_dir, "-o", out)
    assert result.returncode == 0 and result.exception is None, result.stderr
    assert len(decode_all(out)[0]) == 3
    with VideoReader(path) as reader:
        pixel = next(iter(reader)).image
    assert pixel.shape == (1, 1, 3) and 100 < pixel.mean() < 255  # HLG's 60 % grey: a light SDR grey


def test_channels_mixed_down_are_told_even_from_an_unordered_layout(cli, tmp_path, rgb_model_dir):
    """16 channels of PCM in Matroska (no channel order: "16 channels") went into a .mp4 as stereo
    AAC, and the warning told the re-encoding but not that 14 channels were mixed away."""
    src = tmp_path / "pcm16.mkv"
    with av.open(str(src), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream("pcm_s16le", rate=48000)
        audio.layout = "hexadecagonal"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 40 * i, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode())
        samples = (np.random.default_rng(0).standard_normal((1, 16 * 9600)) * 3000).astype(np.int16)
        sound = av.AudioFrame.from_ndarray(samples, format="s16", layout="hexadecagonal")
        sound.sample_rate, sound.pts = 48000, 0
        out.mux(audio.encode(sound))
        out.mux(audio.encode())
    result = cli("run", src, "-m", rgb_model_dir, "-o", tmp_path / "out.mp4")
    assert result.returncode == 0 and result.exception is None, result.stderr
    assert "re-encoded to aac, its 16 channels as stereo:" in result.stderr
    with av.open(str(tmp_path / "out.mp4")) as written:
        assert written.streams.audio[0].codec_context.layout.name == "stereo"


@pytest.mark.parametrize("suffix, codec", [(".h264", "libx264"), (".hevc", "libx265")])
def test_a_span_of_a_raw_stream_holds_the_frames_at_its_times(cli, tmp_path, rgb_model_dir, suffix, codec):
    """A raw H.264/HEVC stream (a Raspberry Pi camera's .h264) stores no timestamps and cannot seek:
    its first picture was stamped at --start, so --start 0.5 kept all 30 frames, and --start 0.5
    --end 0.9 the first 10, not those from 0.5 s (frames at 25 fps, as FFmpeg counts them)."""
    if codec not in av.codecs_available:
        pytest.skip(f"{codec} is not in this FFmpeg build")
    clip = make_clip(tmp_path / f"raw{suffix}", frames=30, size=(64, 48), audio=False, codec=codec)
    with VideoReader(clip.path) as reader:
        everything = [frame.image for frame in reader]
    with VideoReader(clip.path, start=0.5, end=0.9) as reader:
        span = list(reader)
    assert [frame.time for frame in span] == pytest.approx([0.52 + 0.04 * i for i in range(10)], abs=1e-3)
    assert all(np.array_equal(frame.image, everything[13 + i]) for i, frame in enumerate(span))
    result = cli("run", clip.path, "-m", rgb_model_dir, "-o", tmp_path / "out.mp4", "--start", "0.5", "--json")
    assert result.returncode == 0 and result.exception is None, result.stderr
    assert '"frames": 17' in result.stdout


@pytest.mark.parametrize("suffix, codec", [(".mkv", "libx264"), (".webm", "libvpx-vp9")])
def test_a_matroska_copy_cut_short_is_warned_about(cli, tmp_path, rgb_model_dir, suffix, codec):
    """Matroska states no frame count, so a .mkv/.webm copy cut in half gave half its frames in
    silence (an MP4's or AVI's is warned about); its Segment's stated size tells the cut."""
    clip = make_clip(tmp_path / f"whole{suffix}", frames=75, size=(64, 48), audio=False, codec=codec)
    data = clip.path.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[:len(data) // 2])
    result = cli("run", cut, "-m", rgb_model_dir, "-o", tmp_path / "cut.mp4")
    assert result.returncode == 0 and result.exception is None, result.stderr
    assert "s its header states (the file is cut short" in result.stderr and "of the 3.0 s" in result.stderr
    whole = cli("run", clip.path, "-m", rgb_model_dir, "-o", tmp_path / "whole.mp4")
    assert whole.returncode == 0 and "warning" not in whole.stderr
