"""A file cut short (a copy or a recording interrupted) decodes to fewer frames than its header
states, and nothing in the decoding says so: the reader warns, and batch, like run, tells the
frames that were replaced by the one before."""

from __future__ import annotations

import json
import logging
from fractions import Fraction

import av
import numpy as np

from tests.media import corrupt_middle, make_clip
from tests.test_run import FakeModel
from vidtrans.batch import MANIFEST_NAME, translate_folder
from vidtrans.pipeline import translate_video

IDENTITY = FakeModel(lambda frames: frames)


def with_index_first(path, out):
    """`path` remuxed with its MP4 index before the media (faststart), as downloads are: the file
    stays readable when its end is missing."""
    with av.open(str(path)) as src, av.open(str(out), "w", options={"movflags": "+faststart"}) as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                dst.mux(packet)
    return out


def test_a_file_cut_short_is_warned_about_once(tmp_path, caplog):
    whole = make_clip(tmp_path / "whole.mp4", frames=60)
    data = with_index_first(whole.path, tmp_path / "index-first.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[:len(data) * 6 // 10])
    with caplog.at_level(logging.WARNING, logger="vidtrans"):
        translate_video(whole.path, tmp_path / "whole-out.mp4", IDENTITY)
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger="vidtrans"):
        summary = translate_video(cut, tmp_path / "cut-out.mp4", IDENTITY)
    assert summary.frames < 50
    # Read twice (a pose model's detection and translation passes, live's loops): told once.
    with caplog.at_level(logging.WARNING, logger="vidtrans"):
        translate_video(cut, tmp_path / "again.mp4", IDENTITY)
    [warning] = [r.getMessage() for r in caplog.records if "header states" in r.getMessage()]
    assert warning.startswith(f"{cut}: its video ends after ") and "of the 2.4 s its header states" in warning


def test_a_last_frame_held_for_seconds_is_no_cut(tmp_path, caplog):
    """A screen recording's last frame may last 10 s: the header's duration runs to its end."""
    path = tmp_path / "held.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"bf": "0"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for i, pts in enumerate([*range(0, 1000, 40), 1000]):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 9, np.uint8), "rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            for packet in stream.encode(frame):
                packet.duration = 10000 if packet.pts == 1000 else 40  # the last frame: ten seconds
                out.mux(packet)
        for packet in stream.encode(None):
            packet.duration = 10000 if packet.pts == 1000 else 40
            out.mux(packet)
    with av.open(str(path)) as check:
        assert float(check.streams.video[0].duration * check.streams.video[0].time_base) > 10
    with caplog.at_level(logging.WARNING, logger="vidtrans"):
        summary = translate_video(path, tmp_path / "out.mp4", IDENTITY)
    assert summary.frames == 26 and not [r for r in caplog.records if "header states" in r.getMessage()]


def test_batch_tells_the_corrupt_frames_of_each_clip(tmp_path, rgb_model_dir):
    folder = tmp_path / "in"
    folder.mkdir()
    clip = make_clip(folder / "damaged.mp4", frames=40, audio=False)
    corrupt_middle(clip.path)
    report = translate_folder(folder, tmp_path / "out", rgb_model_dir)
    [row] = report.clips
    assert row.status == "done" and row.corrupt_frames > 0 and row.to_dict()["corrupt_frames"] == row.corrupt_frames
    records = [json.loads(line) for line in (tmp_path / "out" / MANIFEST_NAME).read_text().splitlines()[1:]]
    assert records[-1]["corrupt_frames"] == row.corrupt_frames
    # A rerun skips the clip and still tells them.
    [again] = translate_folder(folder, tmp_path / "out", rgb_model_dir).clips
    assert again.status == "skipped" and again.corrupt_frames == row.corrupt_frames
