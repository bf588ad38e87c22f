"""Regenerate the example clips: our procedural "source dancer" and its pose-map version.

    .venv/bin/python examples/make_examples.py

dancer.mp4: 4 s of the source dancer (a different person from the pose2person target) at
480x360, 25 fps, with a click track as audio so you can check that `run` keeps it.
dancer_pose.mp4: the same clip through `vidtrans pose` (OpenPose-style maps, same timestamps).
still.png: one frame of `vidtrans run examples/dancer.mp4 --side-by-side` with the shipped model
(input | pose map | output), for the README.
"""

import tempfile
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

import vidtrans

from vidtrans.pipeline import render_pose_video, translate_video
from vidtrans.train.synth import SOURCE_LOOK, dance_keypoints, render_person

HERE = Path(__file__).resolve().parent
WIDTH, HEIGHT, FPS, SECONDS, SEED = 480, 360, 25, 4, 2024
SAMPLE_RATE = 22050


def click_track(seconds: float, bpm: float = 120.0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    since_beat = np.mod(t, 60.0 / bpm)
    return (0.4 * np.sin(2 * np.pi * 880 * t) * np.exp(-since_beat * 40)).astype(np.float32)


def write_dancer(path: Path) -> None:
    track = dance_keypoints(SEED, FPS * SECONDS, HEIGHT, WIDTH, SOURCE_LOOK, fps=FPS)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=FPS, options={"crf": "20", "preset": "slow"})
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        audio = out.add_stream("aac", rate=SAMPLE_RATE)
        audio.layout = "mono"
        for i, keypoints in enumerate(track):
            frame = av.VideoFrame.from_ndarray(render_person(keypoints, HEIGHT, WIDTH, SOURCE_LOOK), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        samples = click_track(SECONDS)
        for start in range(0, len(samples), 1024):
            chunk = samples[start:start + 1024][None, :]
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, start, Fraction(1, SAMPLE_RATE)
            out.mux(audio.encode(frame))
        out.mux(audio.encode(None))


def write_still(path: Path, frame_index: int = 60) -> None:
    with tempfile.TemporaryDirectory() as folder:
        side_by_side = Path(folder) / "sbs.mp4"
        translate_video(HERE / "dancer.mp4", side_by_side, vidtrans.load_model("pose2person"), side_by_side=True)
        with av.open(str(side_by_side)) as container:
            frame = next(f for i, f in enumerate(container.decode(video=0)) if i == frame_index)
    cv2.imwrite(str(path), cv2.cvtColor(frame.to_ndarray(format="rgb24"), cv2.COLOR_RGB2BGR))


if __name__ == "__main__":
    write_dancer(HERE / "dancer.mp4")
    render_pose_video(HERE / "dancer.mp4", HERE / "dancer_pose.mp4", overwrite=True)
    write_still(HERE / "still.png")
    print("wrote", HERE / "dancer.mp4", HERE / "dancer_pose.mp4", "and", HERE / "still.png")
