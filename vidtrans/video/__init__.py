"""Video I/O: decode to upright RGB frames with original timestamps, encode back with audio copied.

    from vidtrans.video import probe, SourceMedia, VideoReader, VideoWriter

    with VideoReader("in.mp4") as reader, VideoWriter("out.mp4", reader.info.width, reader.info.height,
                                                      time_base=reader.info.time_base, fps=reader.info.frame_rate,
                                                      source=SourceMedia("in.mp4")) as writer:
        for frame in reader:
            writer.write(frame.image, frame.pts)
"""

from vidtrans.video.reader import Frame, VideoInfo, VideoReader, file_identity, not_a_video_file, probe
from vidtrans.video.writer import SourceMedia, VideoWriter, check_destination, check_output_settings

__all__ = ["Frame", "SourceMedia", "VideoInfo", "VideoReader", "VideoWriter", "check_destination",
           "check_output_settings", "file_identity", "not_a_video_file", "probe"]
