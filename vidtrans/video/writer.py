"""Encode RGB frames to a video file at their original timestamps, with the source's audio copied in.

The file appears at `dst` only when `close()` succeeds: everything is written to a hidden temporary
file beside it (same folder, so the final `os.replace` is atomic) and renamed at the end.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from vidtrans.atomic import OutputClaim, check_destination, publish, temp_path
from vidtrans.errors import VidtransError

log = logging.getLogger(__name__)

# FFmpeg's AVCOL_SPC_SMPTE170M (BT.601 matrix), the matrix cv2.COLOR_RGB2YUV_I420 uses.
_BT601 = 6
# AVCOL_PRI_BT709 / AVCOL_TRC_BT709: sRGB frames have BT.709 primaries. Tagging all three (matrix,
# primaries, transfer) also makes the mp4/mov muxer write a `colr` box, for codecs without colour VUI.
_BT709 = 1
_MPEG_RANGE = int(av.video.reformatter.ColorRange.MPEG)
_JPEG_RANGE = int(av.video.reformatter.ColorRange.JPEG)
# Containers whose PCM support (ISO 23003-5) few players read: re-encode PCM audio to AAC there.
_NO_PCM = {"mp4", "ipod", "3gp", "3g2", "psp"}
# MPEG-4 part 2 stores the time base in 16 bits.
_MAX_TB_DEN = {"mpeg4": 65535, "h263": 65535, "mpeg1video": 65535, "mpeg2video": 65535}


def _reason(e: BaseException) -> str:
    return (getattr(e, "strerror", None) or str(e)).splitlines()[0]


class VideoWriter:
    """Encode frames with `write(image, pts)`, then `close()` (or `abort()`).

    Timestamps: frames keep the pts they are given, in `time_base` (which also becomes the output
    video stream's time base), so variable-frame-rate input survives. With `start` (seconds),
    video and audio are shifted together so `start` becomes time 0 in the output; frames and audio
    before `start` or at/after `end` are dropped. Pass the reader's original pts, not renumbered ones.
    .mp4/.mov keep every pts exactly (an edit list absorbs the B-frame delay); Matroska cannot store
    negative timestamps, so there FFmpeg shifts all streams by that delay (a few frames, in sync).
    MPEG-4 part 2 cannot store time bases finer than 1/65535 s: pts are rounded to that.

    Audio and subtitle streams of `audio_from` are copied without re-encoding, interleaved by time
    as video is written (read lazily, so memory stays flat); audio the output container cannot
    hold (or PCM into .mp4) is re-encoded to AAC; subtitles it cannot hold are dropped.

    Odd sizes: 4:2:0 H.264/H.265 cannot store an odd width or height (their cropping works in
    2-pixel steps), so frames are padded by one replicated edge pixel and the output is one pixel
    larger there. Codecs that can store odd sizes (mpeg4, any codec with yuv444p) keep the size.

    Colour: RGB is converted with the BT.601 matrix, limited range (full range for yuvj* formats),
    and the stream is tagged so players and decoders convert it back the same way.

    threads: encoder threads, 0 lets the codec choose (x264: 1.5 per core). Fewer threads cost less
    CPU per frame (x264 superfast at 720p: 8.2 ms with 3 threads, 7.0 with 2, 6.4 with 1), which
    matters when other stages already keep the cores busy.
    """

    def __init__(self, dst: str | os.PathLike, width: int, height: int, time_base: Fraction, fps: float,
                 codec: str = "libx264", crf: int = 18, preset: str = "medium", pix_fmt: str = "yuv420p",
                 audio_from: str | os.PathLike | None = None, start: float | None = None,
                 end: float | None = None, overwrite: bool = False, threads: int = 0):
        self.dst = Path(dst)
        self.width, self.height = width, height
        self.time_base = Fraction(time_base)
        self.start, self.end = start, end
        self.frames_written = 0
        self.audio_time = 0.0  # source time of the last audio/subtitle packet muxed (flat-memory check)
        self._last_pts: int | None = None
        self._overwrite = overwrite
        check_destination(self.dst, audio_from, overwrite)
        self._claim = OutputClaim(self.dst)
        try:
            self._tmp = temp_path(self.dst)
        except VidtransError:
            self._claim.release()
            raise
        self._out: av.container.OutputContainer | None = None
        self._src: av.container.InputContainer | None = None
        try:
            self._out = av.open(str(self._tmp), "w")
            self._add_video(codec, crf, preset, pix_fmt, fps, threads)
            self._audio: Iterator[av.Packet] = iter(())
            self._next_audio: av.Packet | None = None
            self._copy: dict[int, av.stream.Stream] = {}
            self._transcode: dict[int, tuple[av.stream.Stream, av.stream.Stream]] = {}
            if audio_from is not None:
                self._add_audio(Path(audio_from))
        except VidtransError:
            self.abort()
            raise
        except (av.FFmpegError, ValueError, OSError) as e:
            self.abort()
            raise VidtransError(f"{self.dst}: cannot set up the output ({_reason(e)}); "
                                "check the file extension (.mp4/.mkv/.mov) and codec options") from e

    # --- setup -----------------------------------------------------------------------------------

    def _add_video(self, codec: str, crf: int, preset: str, pix_fmt: str, fps: float, threads: int) -> None:
        ctb = self.time_base
        max_den = _MAX_TB_DEN.get(codec)
        if max_den and ctb.denominator > max_den:
            # Exact pts are impossible here; round to the finest time base the codec can store.
            ctb = Fraction(1, max_den)
        self._codec_tb = ctb
        if codec in ("libx264", "libx265"):
            options = {"crf": str(crf), "preset": preset}
        elif codec.startswith("libvpx") or codec.startswith("libaom") or codec == "libsvtav1":
            options = {"crf": str(crf), "b": "0"}
        else:
            # Fixed quantiser, the usual stand-in for CRF on older codecs (crf 18 -> q 3).
            options = {"flags": "+qscale", "global_quality": str(118 * max(2, min(31, round(crf / 6))))}
        self._pad_w, self._pad_h = self._padding(codec, pix_fmt, options)
        stream = self._out.add_stream(codec, rate=Fraction(fps).limit_denominator(100000) if fps else None,
                                      options=options)
        stream.width, stream.height = self.width + self._pad_w, self.height + self._pad_h
        stream.pix_fmt = pix_fmt
        stream.time_base = self.time_base
        stream.codec_context.time_base = ctb
        stream.thread_type = "FRAME"
        stream.codec_context.thread_count = threads
        self._full_range = pix_fmt.startswith("yuvj")
        stream.codec_context.colorspace = _BT601
        stream.codec_context.color_primaries = stream.codec_context.color_trc = _BT709
        stream.codec_context.color_range = _JPEG_RANGE if self._full_range else _MPEG_RANGE
        self._video = stream
        self._pix_fmt = pix_fmt
        enc_w, enc_h = stream.width, stream.height
        self._fast_i420 = pix_fmt == "yuv420p" and enc_w % 2 == 0 and enc_h % 2 == 0

    def _padding(self, codec: str, pix_fmt: str, options: dict[str, str]) -> tuple[int, int]:
        """Pixels to add so the encoder accepts the size: 0 when it takes odd sizes as they are."""
        fmt = av.VideoFormat(pix_fmt)
        need_w = self.width % 2 and fmt.chroma_width(self.width) * 2 != self.width
        need_h = self.height % 2 and fmt.chroma_height(self.height) * 2 != self.height
        if not (need_w or need_h):
            return 0, 0
        trial = av.CodecContext.create(codec, "w")
        trial.width, trial.height, trial.pix_fmt = self.width, self.height, pix_fmt
        trial.time_base, trial.options = self._codec_tb, dict(options)
        try:
            with av.logging.Capture():
                trial.open()
            return 0, 0
        except av.FFmpegError:
            return int(bool(need_w)), int(bool(need_h))

    def _add_audio(self, src: Path) -> None:
        try:
            self._src = av.open(str(src), metadata_errors="ignore")
        except (av.FFmpegError, OSError) as e:
            raise VidtransError(f"{src}: cannot read audio from it ({_reason(e)}); pass a readable video") from e
        holdable = self._out.supported_codecs
        fmt = self._out.format.name.split(",")[0]
        wanted = []
        for s in self._src.streams:
            name = s.codec_context.name
            if s.type == "audio":
                if name in holdable and not (fmt in _NO_PCM and name.startswith("pcm_")):
                    self._copy[s.index] = self._out.add_stream_from_template(s)
                else:
                    out = self._out.add_stream("aac", rate=s.codec_context.sample_rate)
                    out.layout = _aac_layout(s.codec_context.layout)
                    self._transcode[s.index] = (s, out)
                    log.info("%s: audio %s re-encoded to AAC for %s", src, name, self.dst.suffix)
            elif s.type == "subtitle" and name in holdable:
                self._copy[s.index] = self._out.add_stream_from_template(s)
            else:
                continue
            wanted.append(s)
        if wanted:
            self._audio = self._src.demux(*wanted)

    # --- writing ---------------------------------------------------------------------------------

    def write(self, image: np.ndarray, pts: int) -> None:
        """Encode one uint8 RGB (height, width, 3) frame at `pts` (in `time_base`, as read)."""
        if image.shape != (self.height, self.width, 3) or image.dtype != np.uint8:
            raise ValueError(f"expected uint8 image of shape {(self.height, self.width, 3)}, "
                             f"got {image.dtype} {image.shape}")
        t = float(pts * self.time_base)
        if (self.start is not None and t < self.start) or (self.end is not None and t >= self.end):
            return
        if self._last_pts is not None and pts <= self._last_pts:
            raise ValueError(f"pts must increase: {pts} after {self._last_pts}")
        self._last_pts = pts
        frame = self._to_frame(image)
        shifted = pts - self._offset(self.time_base)
        frame.pts = shifted if self._codec_tb == self.time_base else round(shifted * self.time_base / self._codec_tb)
        frame.time_base = self._codec_tb
        try:
            self._out.mux(self._video.encode(frame))
            self._pump_audio(until=t)
        except av.FFmpegError as e:
            raise VidtransError(f"{self.dst}: encoding failed ({_reason(e)}); "
                                "check --codec/--pix-fmt/--crf and free disk space") from e
        self.frames_written += 1

    def _to_frame(self, image: np.ndarray) -> av.VideoFrame:
        if self._pad_w or self._pad_h:
            image = cv2.copyMakeBorder(image, 0, self._pad_h, 0, self._pad_w, cv2.BORDER_REPLICATE)
        if self._fast_i420:
            # cv2's I420 conversion is BT.601 limited range, faster than swscale for this case.
            frame = av.VideoFrame.from_ndarray(cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
        else:
            rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame = rgb.reformat(format=self._pix_fmt, dst_colorspace="itu601",
                                 dst_color_range=_JPEG_RANGE if self._full_range else _MPEG_RANGE)
        frame.colorspace = _BT601
        frame.color_primaries = frame.color_trc = _BT709
        frame.color_range = _JPEG_RANGE if self._full_range else _MPEG_RANGE
        return frame

    def _offset(self, time_base: Fraction) -> int:
        """The trim start in ticks of `time_base`: subtracted from every stream, keeping them in sync."""
        return round(self.start / time_base) if self.start else 0

    def _pump_audio(self, until: float | None) -> None:
        """Mux source audio/subtitle packets up to video time `until` (None: all that is left)."""
        while True:
            if self._next_audio is None:
                self._next_audio = next(self._audio, None)
                if self._next_audio is None:
                    return
            packet = self._next_audio
            ts = packet.pts if packet.pts is not None else packet.dts
            t = None if ts is None else float(ts * packet.time_base)
            if until is not None and t is not None and t > until:
                return
            self._next_audio = None
            if packet.size == 0:
                continue
            if t is not None:
                self.audio_time = max(self.audio_time, t)
            if t is not None and ((self.start is not None and t < self.start)
                                  or (self.end is not None and t >= self.end)):
                continue
            offset = self._offset(packet.time_base)
            if packet.pts is not None:
                packet.pts -= offset
            if packet.dts is not None:
                packet.dts -= offset
            index = packet.stream.index
            if index in self._copy:
                packet.stream = self._copy[index]
                self._out.mux(packet)
            else:
                self._encode_audio(*self._transcode[index], packet)

    def _encode_audio(self, src: av.stream.Stream, out: av.stream.Stream, packet: av.Packet | None) -> None:
        try:
            frames = src.decode(packet)
        except av.FFmpegError:
            return  # a damaged audio packet: a few ms of silence rather than a failed job
        for frame in frames:
            self._out.mux(out.encode(frame))

    # --- finishing -------------------------------------------------------------------------------

    def close(self) -> None:
        """Flush everything, finish the file and move it to `dst`. Raises VidtransError on failure."""
        if self._out is None:
            return
        try:
            if self.frames_written == 0:
                raise VidtransError(f"{self.dst}: no video frames to write; check the input and --start/--end")
            self._out.mux(self._video.encode(None))
            self._pump_audio(until=None)
            for src, out in self._transcode.values():
                self._encode_audio(src, out, None)
                self._out.mux(out.encode(None))
            self._out.close()
            self._out = None
            self._close_src()
            publish(self._tmp, self.dst, self._overwrite)
            self._claim.release()
        except VidtransError:
            self.abort()
            raise
        except (av.FFmpegError, OSError) as e:
            self.abort()
            raise VidtransError(f"{self.dst}: could not finish the video ({_reason(e)}); "
                                "check free disk space and the output folder") from e

    def abort(self) -> None:
        """Stop and delete the partial file; `dst` is left as it was."""
        if self._out is not None:
            try:
                self._out.close()
            except (av.FFmpegError, OSError):
                pass  # the file is deleted next anyway
            self._out = None
        self._close_src()
        self._tmp.unlink(missing_ok=True)
        self._claim.release()

    def _close_src(self) -> None:
        if self._src is not None:
            self._src.close()
            self._src = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _aac_layout(layout: av.AudioLayout) -> str:
    """PCM often has an unordered "N channels" layout, which AAC refuses: use the usual one for N."""
    if not layout.name.endswith("channels"):
        return layout.name
    usual = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
    return usual.get(layout.nb_channels, "stereo")
