"""Live mode: translate a camera (or a file/URL standing in for one) frame by frame as it is captured.

    capture thread (latest frame wins) -> [detect pose -> One Euro filter -> map -> draw] -> translate
        -> [smooth] -> sinks: preview window / recording / MJPEG stream / virtual camera

`loop` runs a session (capture, the loop, statistics), `process` turns a camera frame into the
model's output (pose mapping for live included), `sinks` holds the outputs behind one small
protocol, `Sink`. Options: `vidtrans.options.LiveOptions`.
"""

from vidtrans.live.loop import LiveStats, check_live, run_live
from vidtrans.live.process import FrameProcessor, LiveFrame, compose
from vidtrans.live.sinks import MjpegServer, PreviewWindow, Recorder, Shown, Sink, VirtualCamera
from vidtrans.options import LiveOptions, View
from vidtrans.video.camera import Camera

__all__ = ["Camera", "FrameProcessor", "LiveFrame", "LiveOptions", "LiveStats", "MjpegServer", "PreviewWindow",
           "Recorder", "Shown", "Sink", "View", "VirtualCamera", "check_live", "compose", "run_live"]
