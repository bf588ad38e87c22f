"""`vidtrans pose` on a 1280x720 clip: our threaded pipeline against a one-thread loop.

    baseline: decode -> detect -> smooth (whole track) -> draw -> encode, one frame at a time, one thread
    vidtrans pose: `render_pose_video` (decode, detection, smoothing, drawing and encoding overlapped)
    steady: the same run from its first written batch to its last, without start-up and filling

Both produce the same pose-map video from the same synthetic dancer clip; the ratio is measured in
the same run. `--whole-body` measures both with face and hands (MediaPipe Holistic, style v2); the
loop then finds them on every frame, `vidtrans pose` on every other one (the filter fills the rest).

    .venv/bin/python benchmarks/bench_pose.py [--frames 150] [--width 1280 --height 720] [--whole-body]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.media import dancer_clip  # noqa: E402
from vidtrans.pipeline import render_pose_video  # noqa: E402
from vidtrans.pose import PoseDetector, PoseStyle, render_pose, smooth_track  # noqa: E402
from vidtrans.video import VideoReader, VideoWriter  # noqa: E402


def one_thread(src: Path, dst: Path, whole_body: bool) -> int:
    with VideoReader(src) as reader:
        info = reader.info
        detector = PoseDetector(whole_body=whole_body)
        frames = [(frame.pts, detector.detect(frame.image)) for frame in reader]
        detector.close()
    track = smooth_track(np.stack([kp for _, kp in frames]))
    writer = VideoWriter(dst, info.width, info.height, time_base=info.time_base, fps=info.fps, overwrite=True)
    for (pts, _), keypoints in zip(frames, track):
        writer.write(render_pose(keypoints, info.height, info.width, PoseStyle(version=2 if whole_body else 1)), pts)
    writer.close()
    return len(frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--whole-body", action="store_true", help="Face and hands too (MediaPipe Holistic).")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    clip = dancer_clip(work / "dancer.mp4", frames=args.frames, size=(args.width, args.height), fps=30, audio=True)
    rows = {}
    started = time.perf_counter()
    count = one_thread(clip.path, work / "baseline.mp4", args.whole_body)
    rows["one-thread loop"] = (count, time.perf_counter() - started)
    written: list[tuple[int, float]] = []
    started = time.perf_counter()
    summary = render_pose_video(clip.path, work / "pose.mp4", overwrite=True, whole_body=args.whole_body,
                                progress=lambda done, total, what: written.append((done, time.perf_counter())))
    rows["vidtrans pose"] = (summary.frames, time.perf_counter() - started)
    (first_done, first_at), (last_done, last_at) = written[0], written[-1]
    steady = (last_done - first_done, last_at - first_at)
    print(f"{'whole-body ' if args.whole_body else ''}pose maps of a {args.width}x{args.height} clip, {args.frames} frames")
    for label, (frames, seconds) in rows.items():
        print(f"{label:<18}{frames:>6} frames {seconds:>8.2f} s {frames / seconds:>8.1f} fps")
    print(f"{'  steady':<18}{steady[0]:>6} frames {steady[1]:>8.2f} s {steady[0] / steady[1]:>8.1f} fps")
    base, ours = (f / s for f, s in rows.values())
    print(f"vidtrans pose / one-thread loop = {ours / base:.2f}x (goal: >= 35 fps)")


if __name__ == "__main__":
    main()
