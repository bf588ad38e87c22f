"""Encode RGB frames to a video file at their original timestamps, with the source's audio copied in.

The file appears at `dst` only when `close()` succeeds: everything is written to a hidden temporary
file beside it (same folder, so the final `os.replace` is atomic) and renamed at the end.
"""

from __future__ import annotations

import errno
import functools
import io
import itertools
import logging
import math
import os
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.subtitles.codeccontext
import cv2
import numpy as np

from vidtrans.atomic import (OutputClaim, check_destination, destination_of, discard, making_files, publish,
                             temp_path)
from vidtrans.errors import ContainerError, UsageError, VidtransError, count, first_line
from vidtrans.options import (AUTO_PIX_FMT, EncodeOptions, View, close_names, shown, spell, spell_setting,
                              spellings)
from vidtrans.video.reader import (AS_NAMED, ContinuousTimestamps, clip_start, demux, first_pts_at,
                                   has_timestamp_jumps, local_file, main_video_stream, seek_pts,
                                   stamped_in_storing_order)
from vidtrans.video.segments import SegmentedEncoder, segment_length, segments_for

log = logging.getLogger(__name__)

# FFmpeg's AVCOL_SPC_SMPTE170M: the BT.601 matrix that _rgb_to_i420 and the swscale path convert with.
_BT601 = 6
_RGB = 0  # AVCOL_SPC_RGB: the planes are R, G, B (or G, B, R) themselves
# AVCOL_PRI_BT709 / AVCOL_TRC_BT709: sRGB frames have BT.709 primaries. Tagging all three (matrix,
# primaries, transfer) also makes the mp4/mov muxer write a `colr` box, for codecs without colour VUI.
_BT709 = 1
# AVFMT_NOFILE: a muxer that opens its own files (hls, dash, image2) rather than writing one.
_AVFMT_NOFILE = 0x0001
_MPEG_RANGE = int(av.video.reformatter.ColorRange.MPEG)
_JPEG_RANGE = int(av.video.reformatter.ColorRange.JPEG)
# What a file system says when it cannot take a file's bytes: no container would fare better.
_DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EFBIG}
# JPEG encoders store full-range YUV only: FFmpeg refuses to open them on limited-range frames.
_FULL_RANGE_CODECS = frozenset({"mjpeg", "ljpeg"})
# The pixel format of an output given none, where its codec takes it: 4:2:0 plays everywhere.
_PLAYS_EVERYWHERE = "yuv420p"
# Containers whose PCM support (ISO 23003-5) few players read: re-encode PCM audio to AAC there; and
# Vorbis, which FFmpeg stores there under an object type of its own (0xDD, registered to nobody), so
# that browsers and QuickTime play the video silent.
_NO_PCM = {"mp4", "ipod", "3gp", "3g2", "psp"}
# The text subtitle codecs cues are converted into where the output cannot hold the input's (SRT into
# .mp4, mov_text into .mkv, as ffmpeg converts them), by preference: ASS keeps the most styling.
_TEXT_SUBTITLES = ("ass", "mov_text", "webvtt")
# Where the warnings about a stream the output cannot hold point: Matroska holds every codec here
# (audio it cannot hold is re-encoded, text subtitles converted to ASS).
_KEEPS_ALL = "a Matroska (.mkv) file"
# What a container holds where FFmpeg cannot be asked: avformat_query_codec answers "unknown" for a
# muxer without a codec table (MPEG-TS) except for its default codecs, and PyAV's supported_codecs
# counts only a "yes" (for MPEG-TS: MPEG-2 video and MP2 audio). These are the codecs (FFmpeg's
# canonical names) the MPEG-TS muxer gives a stream type of their own (libavformat/mpegtsenc.c; it
# writes AAC as ADTS itself); any other it muxes as private data, which readers do not recognise.
# Ogg's muxers (.ogg, .ogv) answer for their defaults alone (FLAC, Theora), and take the codecs they
# have a mapping for (libavformat/oggenc.c): AAC is re-encoded to Opus there, as for .webm, not left out.
_OGG = frozenset({"theora", "vp8", "vorbis", "opus", "flac", "speex"})
# MPEG program streams (.mpg, .vob) mux any video, but their reader knows a video stream's codec only
# by probing its bytes (libavformat/mpeg.c): VP8/9, AV1, FFV1, ProRes, MJPEG, PNG and the like made
# files of a stream nothing decodes. Their audio stays what FFmpeg answers for them: MP2.
_PROGRAM_STREAM = frozenset({"mpeg1video", "mpeg2video", "mpeg4", "h264", "hevc", "vvc", "cavs", "mp2"})
_HOLDS = {"mpegts": frozenset({"mpeg1video", "mpeg2video", "mpeg4", "h264", "hevc", "vvc", "cavs", "avs2", "avs3",
                               "dirac", "vc1", "mp2", "mp3", "aac", "aac_latm", "ac3", "eac3", "dts", "truehd",
                               "opus", "s302m", "dvb_subtitle", "dvb_teletext"}),
          "ogg": _OGG, "ogv": _OGG, **dict.fromkeys(("mpeg", "vob", "dvd", "svcd", "vcd"), _PROGRAM_STREAM)}
# The containers whose readers time frames by the codec's frame rate (MPEG program streams), and
# AVI, which counts time in frames of one rate: at a finer clock its header would tell players of a
# 600 fps video, most of its frames empty, and its last picture shown for one tick.
_FRAME_RATE_TIMED = {"mpeg", "vob", "dvd", "svcd", "vcd", "avi"}
# Muxers whose track lasts from its first decoding time to its last plus that packet's duration
# (MP4, MOV and their kin), rather than to the end of its latest picture (Matroska).
_DECODE_TIMED = {"mov", "mp4", "ipod", "ismv", "3gp", "3g2", "psp", "f4v"}
# What a container's codec table lists but its muxer refuses when it starts (libavformat/movenc.c:
# FLAC and Opus only in MP4, not in QuickTime .mov).
_REFUSES = {"mov": frozenset({"flac", "opus"})}
# The containers that store audio by its WAVE format tag (RIFF), and that tag of AAC in ADTS.
_WAVE_AUDIO = {"avi", "asf", "asf_stream"}
_ADTS_AAC_TAG = "\x10\x16\x00\x00"  # 0x1610 (WAVE_FORMAT_MPEG_ADTS_AAC), as PyAV takes a tag: 4 bytes, little-endian
# The containers that store a copied audio stream's codec delay (libavformat/matroskaenc.c: CodecDelay,
# from its initial padding), which players drop from the stream's first samples.
_STORES_CODEC_DELAY = {"matroska", "webm"}
# The containers whose muxers write chapters (avi, flv and mpegts have none).
_CHAPTER_FORMATS = {"matroska", "webm", "mp4", "mov", "ipod", "3gp", "3g2", "ismv", "f4v", "nut"}
# Tags that describe the source file's bytes, not its content (mkvmerge's statistics, the muxer
# that wrote it, MP4 brands), compared lower-case and before any "-LANGUAGE" ending: the output
# gets its own or none.
_FILE_TAGS = {"duration", "number_of_frames", "number_of_bytes", "bps", "encoder", "major_brand", "minor_version",
              "compatible_brands", "_statistics_tags", "_statistics_writing_app", "_statistics_writing_date_utc"}
# How far before `start` (seconds) the source is sought for its audio and subtitles: muxers store audio up to about a
# second away from the video it plays with, and the audio packet playing at `start` began before it.
SEEK_MARGIN = 2
# The frame size an encoder's settings are first opened at (check_output_settings), and the codecs
# that open only larger (`_settings_size`): dnxhd's DNxHR profiles, from 256x120.
_SETTINGS_SIZE = 64
_SETTINGS_SIZES = {"dnxhd": (256, 128)}
# SVT-AV1's frames narrower than this on one side are encoded on one thread (see `_Muxer._add_video`).
_SVT_NARROW = 32
# More pictures than an encoder holds back before putting their packets out (x264's rc-lookahead
# is at most 250, plus its B-frames and threads' frames).
_PICTURES_HELD = 512
# MPEG-4 part 2 stores the time base in 16 bits.
_MAX_TB_DEN = {"mpeg4": 65535, "h263": 65535}
# libvpx's VP8 encoder's lowest quantizer unless told otherwise (its rc_min_quantizer).
_VP8_QMIN = 4
_X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                 "placebo")
# The encoders of the x264 library: YUV, and RGB (libx264rgb); both take its crf, presets and x264-params.
_X264_ENCODERS = ("libx264", "libx264rgb")
# The speed settings of the encoders that have one under another name, for x264's presets in order
# (medium: the encoder's default, so that what it made is unchanged): SVT-AV1's preset (13 fastest ..
# 0 slowest, default 8) and libvpx-vp9's cpu-used (5 fastest .. 0 slowest in its good-quality mode, default 1).
_SPEEDS = {"libsvtav1": ("preset", (13, 12, 11, 10, 9, 8, 6, 5, 4, 2)),
           "libvpx-vp9": ("cpu-used", (5, 5, 4, 3, 2, 1, 0, 0, 0, 0))}
# NVENC's speed/quality scale (p1 fastest .. p7 best) for the x264 names the CLI takes.
_NVENC_PRESETS = dict(zip(_X264_PRESETS, ("p1", "p1", "p2", "p3", "p3", "p4", "p5", "p6", "p7", "p7")))
# Suggested when a codec name is refused (those of them this FFmpeg build has).
_COMMON_ENCODERS = ("libx264", "libx265", "libvpx-vp9", "libsvtav1", "mpeg4", "h264_nvenc", "libvpx")
# BT.601 luma as 8-bit full range -> limited range (16-235), and chroma (full 0-255 -> limited 16-240).
_LIMITED_Y = np.round(16 + np.arange(256) * (219 / 255)).astype(np.uint8)
_LIMITED_C = np.round(128 + (np.arange(256) - 128) * (224 / 255)).astype(np.uint8)


# Hardware encoders other than NVENC (Intel Quick Sync, AMD AMF, VA-API, V4L2, Apple, Windows Media Foundation).
_OTHER_HARDWARE = ("_qsv", "_amf", "_vaapi", "_v4l2m2m", "_videotoolbox", "_mf", "_omx", "_vulkan")


def encoder_options(codec: str, crf: int, preset: str, pix_fmt: str = "yuv420p") -> dict[str, str]:
    """FFmpeg options giving constant quality `crf` at speed `preset` (x264 names) for `codec`
    encoding `pix_fmt` pictures (which picks dnxhd's profile).

    crf ranges: x264/x265 and NVENC 0-51, VP8/VP9/AV1 0-63; other codecs get a fixed quantiser
    (crf 0-51 mapped to q 2-8, crf / 6). preset: x264's names for every codec (NVENC also takes p1-p7); SVT-AV1
    and VP9 get their own speed setting for it (`_SPEEDS`); other codecs (mpeg4, ProRes, FFV1, and
    VP8 and libaom-av1, whose cpu-used is left at its default) take the names and encode as they
    always do. Hardware encoders other than NVENC are refused. Raises VidtransError naming crf or preset when a
    value is not one the codec takes.
    """
    _refuse_other_hardware(codec)
    wide = codec.startswith(("libvpx", "libaom")) or codec == "libsvtav1"
    _check_crf(codec, crf, 63 if wide else 51)
    if codec.endswith("_nvenc"):
        nvenc_preset = _NVENC_PRESETS.get(preset) or (preset if preset in _NVENC_PRESETS.values() else None)
        if nvenc_preset is None:
            raise _unknown_preset(codec, preset, " or p1 ... p7")
        # Constant quality: VBR steered by `cq` with no bitrate cap (b=0). cq 0 would mean "the
        # encoder's default quality", not the best, so crf 0 asks for the best it has, 1.
        return {"rc": "vbr", "cq": str(max(1, crf)), "b": "0", "preset": nvenc_preset}
    if preset not in _X264_PRESETS:
        raise _unknown_preset(codec, preset)
    if wide:
        options = {"crf": str(crf), "b": "0"}
        if codec in _SPEEDS:
            setting, speeds = _SPEEDS[codec]
            options[setting] = str(speeds[_X264_PRESETS.index(preset)])
        if codec == "libvpx" and crf < _VP8_QMIN:
            # VP8 refuses a crf below its lowest quantizer: lowered to the crf, where one asks for that quality.
            options["qmin"] = str(crf)
        return options
    if codec in _X264_ENCODERS or codec == "libx265":
        options = {"crf": str(crf), "preset": preset}
        if codec in _X264_ENCODERS and _cpu_has_avx512():
            # With mb-tree and B-frames, x264's AVX-512 code reads memory it never wrote, so the same
            # frames made another file now and then (up to 40 grey levels apart). Its AVX2 code, which
            # every AVX-512 CPU runs as fast, does not.
            options["x264-params"] = "asm=AVX2"
        if codec == "libx265":
            # x265 prints its banner and settings (some 25 lines per encoder opened) to stderr itself,
            # past FFmpeg's log level: only its errors are news.
            options["x265-params"] = "log-level=error"
        return options
    if codec == "dnxhd":
        # DNxHD proper takes a few broadcast sizes and bitrates only (anything else: "Invalid
        # argument"); its DNxHR profiles take any size from 256x120: 4:4:4 and 10-bit 4:2:2 one each,
        # 8-bit 4:2:2 three qualities, standing in for crf.
        if av.VideoFormat(pix_fmt).is_rgb or pix_fmt.startswith("yuv444"):
            return {"profile": "dnxhr_444"}
        if pix_fmt == "yuv422p10le":
            return {"profile": "dnxhr_hqx"}
        return {"profile": "dnxhr_hq" if crf <= 23 else "dnxhr_sq" if crf <= 35 else "dnxhr_lb"}
    # Fixed quantiser, the usual stand-in for CRF on older codecs (crf 18 -> q 3, crf 51 -> q 8). The
    # MPEG-video family (mpeg4, MJPEG, MPEG-2) reads it from each frame's quality, which only the ffmpeg
    # tool sets: left at 0 it encoded every crf at its best quantiser, qmin. qmin = qmax holds it there.
    q = max(2, min(31, round(crf / 6)))
    return {"flags": "+qscale", "global_quality": str(118 * q), "qmin": str(q), "qmax": str(q)}


def _refuse_other_hardware(codec: str) -> None:
    """UsageError for a hardware encoder other than NVENC's: their quality scales are their own (a fixed
    quantiser would make crf 18 near lossless), untested here, so refused rather than guessed."""
    if codec.endswith(_OTHER_HARDWARE):
        raise UsageError(f"{spell('codec')} {codec}: of the hardware encoders only NVENC's are supported (h264_nvenc, "
                         "hevc_nvenc, av1_nvenc); use one of them or a software encoder such as libx264")


def _unknown_preset(codec: str, preset: str, others: str = "") -> UsageError:
    return UsageError(f"{spell('preset')} {shown(preset)} is not one {codec} knows; pass one of "
                      f"{', '.join(_X264_PRESETS)}{others}")


@functools.cache
def _cpu_has_avx512() -> bool:
    """Whether x264 runs its AVX-512 code here: CPU and OS have AVX-512 F, CD, BW, DQ and VL (what
    NumPy calls AVX512_SKX, detected on every platform)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # NumPy before 1.26
        from numpy.core._multiarray_umath import __cpu_features__
    return bool(__cpu_features__.get("AVX512_SKX"))


def holdable_codecs(out: av.container.OutputContainer) -> set[str]:
    """The names of the codecs (encoders' and decoders') whose streams `out` can hold."""
    known = _HOLDS.get(out.format.name)
    holds = out.supported_codecs if known is None else set(_codec_names(known))
    return holds - _codec_names(_REFUSES.get(out.format.name, frozenset()))


@functools.cache
def _codec_names(canonical: frozenset[str]) -> frozenset[str]:
    """Every encoder's and decoder's name (mp3float, libx264) for the codecs named `canonical` (mp3, h264)."""
    names = set()
    for name in av.codecs_available:
        for mode in "rw":
            try:
                if av.Codec(name, mode).canonical_name in canonical:
                    names.add(name)
            except (ValueError, av.FFmpegError):  # a decoder only, or an encoder only
                pass
    return frozenset(names)


def _check_crf(codec: str, crf: int, top: int) -> None:
    if isinstance(crf, bool) or not isinstance(crf, (int, np.integer)) or not 0 <= crf <= top:
        raise UsageError(f"{spell('crf')} {shown(crf)} is outside what {codec} takes; pass a whole number from 0 to "
                         f"{top} (lower is better quality)")


def check_output_settings(dst: str | os.PathLike, encode: EncodeOptions) -> tuple[str, dict[str, str], str]:
    """The encoder's name, FFmpeg options and pixel format (`encode`'s, or for auto the one
    `_video_encoder` picks) for `encode`, or VidtransError naming the bad setting;
    and UsageError unless a file named like `dst` can hold that video:
    FFmpeg picks the container from the extension (.txt is none), and containers take only some
    codecs (.webm no H.264, .mov no VP9). Writes a header for a tiny stream into memory, a few
    milliseconds, and creates nothing: pipelines call it before any decoding or model work, batch
    for its --ext."""
    suffix = Path(dst).suffix
    # A run checks once before any work and again as its writer opens (check_output, VideoWriter):
    # what passed once for this extension passes again.
    if (suffix.lower(), encode) in _settings_checked:
        codec, options, pix_fmt = _settings_checked[suffix.lower(), encode]
        return codec, dict(options), pix_fmt
    codec, pix_fmt = _video_encoder(encode.codec, encode.pix_fmt)
    options = encoder_options(codec, encode.crf, encode.preset, pix_fmt)
    if codec == "libsvtav1":
        _quiet_svt_av1()
    container = _container_format(dst)
    try:
        with av.logging.Capture(), av.open(io.BytesIO(), "w", format=container) as probe:
            holdable = holdable_codecs(probe)
            usual = [name for name in _COMMON_ENCODERS if name in av.codecs_available and name in holdable and name != codec]

            def refused(reason: str) -> ContainerError | UsageError:
                # The extension advised is one whose container was tried and holds this video: a fixed
                # one (.mkv, else .mov) sent utvideo from .mkv to .mov and back, neither holding it.
                other = _extension_holding(codec, options, pix_fmt, suffix)
                codecs = f"use the codec {' or '.join(usual[:2])}" if usual else ""
                if other is None:  # no container helps: the codec is what to change (batch: for every clip)
                    return UsageError(f"{dst}: a {suffix} file cannot hold {codec} video{reason}, nor can "
                                      f"{_listed(e for e in _HOLDING_TRIED if e != suffix.lower())}; "
                                      f"{codecs or 'use another codec'}")
                fix = f"{codecs}, or another extension such as {other}" if usual else \
                    f"use another extension such as {other}"
                if probe.format.name == "gif":  # a GIF holds FFmpeg's GIF codec alone, in a palette format
                    fix = (f"use {spell_setting('codec', 'gif')} with {spell_setting('pix_fmt', 'rgb8')}, or another "
                           f"extension such as {other}")
                return ContainerError(f"{dst}: a {suffix} file cannot hold {codec} video{reason}; {fix}", other[1:])

            try:
                stream = _settings_stream(probe, codec, options, pix_fmt)
            except ValueError:  # not among the codecs FFmpeg lets this container hold
                raise refused("") from None
            try:
                stream.codec_context.open()
            except av.FFmpegError as e:
                takes = [f.name for f in av.Codec(codec, "w").video_formats or ()][:6]
                gpu = " (NVENC also needs an NVIDIA GPU with an encoder)" if codec.endswith("_nvenc") else ""
                raise UsageError(f"{codec} refused its settings ({first_line(e)}): options {options}, pix_fmt "
                                 f"{pix_fmt!r}; check {spell('crf')}, {spell('preset')} and {spell('pix_fmt')}"
                                 + (f" (its formats: {', '.join(takes)})" if takes else "") + gpu) from None
            try:
                probe.start_encoding()  # the container's header: some refuse a codec only here (.mov and VP9)
            except av.FFmpegError as e:
                raise refused(f" ({first_line(e)})") from None
            if probe.format.name == "gif":  # its muxer refuses to close a file without a picture
                blank = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
                blank = blank.reformat(format=pix_fmt)
                blank.pts = 0
                probe.mux(stream.encode(blank))
                probe.mux(stream.encode(None))
    except av.FFmpegError as e:  # the container refused as it closed (.mxf wants more than a header)
        if (other := _extension_holding(codec, options, pix_fmt, suffix)) is None:
            raise UsageError(f"{dst}: FFmpeg cannot write a {suffix} file of {codec} video ({first_line(e)}), nor "
                             f"any of {_listed(_HOLDING_TRIED)}; use another codec") from None
        raise ContainerError(f"{dst}: FFmpeg cannot write a {suffix} file of {codec} video ({first_line(e)}); use "
                             f"another extension such as {other}", other[1:]) from None
    if codec == "rawvideo":
        pix_fmt = _raw_format_held(dst, container, pix_fmt, encode.pix_fmt == AUTO_PIX_FMT)
    _settings_checked[suffix.lower(), encode] = codec, dict(options), pix_fmt
    return codec, options, pix_fmt


# The formats --pix-fmt auto tries for rawvideo, which takes any, in order: 4:2:0 as for every codec, then RGB.
_RAW_TRIED = (_PLAYS_EVERYWHERE, "bgr24", "rgb24")


def _raw_format_held(dst: str | os.PathLike, container: str, pix_fmt: str, auto: bool) -> str:
    """`pix_fmt`, or for auto the first of _RAW_TRIED, where a `container` file of raw pictures in
    it reads back as written; else UsageError naming those that do. A container stores raw pictures
    under a tag for their layout and has none for some: .mov read yuv420p back as nothing and yuv444p
    as RGB, .avi rgb24 as bgr24 (red and blue swapped), all without a word."""
    for name in _RAW_TRIED if auto else (pix_fmt,):
        if _raw_reads_back(container, name):
            return name
    suffix = Path(dst).suffix
    held = [name for name in (*_RAW_TRIED, "yuv444p") if _raw_reads_back(container, name)]
    fixes = [f"pass {spell('pix_fmt')} {_listed(held)}"] if held else []
    others = [e for e in _HOLDING_TRIED if e != suffix.lower() and _raw_reads_back(_container_format(f"x{e}"), pix_fmt)]
    fixes += [f"use another extension such as {others[0]}"] if others else []
    raise UsageError(f"{dst}: a {suffix} file cannot hold raw {pix_fmt} pictures (they would read back as others); "
                     f"{', or '.join(fixes) or 'use another codec'}")


@functools.cache
def _raw_reads_back(container: str, pix_fmt: str) -> bool:
    """Whether a raw `pix_fmt` picture written into a `container` file, in memory, decodes to the same pixels."""
    ramp = np.arange(_SETTINGS_SIZE * _SETTINGS_SIZE * 3, dtype=np.uint32).reshape(_SETTINGS_SIZE, _SETTINGS_SIZE, 3)
    written = av.VideoFrame.from_ndarray((ramp * 7 % 251).astype(np.uint8), format="rgb24").reformat(format=pix_fmt)
    buffer = io.BytesIO()
    try:
        with av.logging.Capture():
            with av.open(buffer, "w", format=container) as out:
                stream = out.add_stream("rawvideo", rate=25)
                stream.width, stream.height, stream.pix_fmt = _SETTINGS_SIZE, _SETTINGS_SIZE, pix_fmt
                written.pts = 0
                out.mux(stream.encode(written))
                out.mux(stream.encode(None))
            buffer.seek(0)
            with av.open(buffer) as back:
                read = next(back.decode(video=0))
    except (av.FFmpegError, ValueError, StopIteration):
        return False
    return np.array_equal(read.to_ndarray(format="rgb24"), written.to_ndarray(format="rgb24"))


# The extensions tried, in this order, for one whose container holds a video that the output's cannot.
_HOLDING_TRIED = (".mkv", ".mov", ".mp4", ".avi", ".nut")


def _extension_holding(codec: str, options: dict[str, str], pix_fmt: str, suffix: str) -> str | None:
    """The first of `_HOLDING_TRIED` other than `suffix` whose container takes `codec` video with
    these settings (its header written into memory, as `check_output_settings` tries the output's),
    or None when none does (image codecs such as bmp, which no video container holds)."""
    for extension in _HOLDING_TRIED:
        if extension == suffix.lower():
            continue
        try:
            with av.logging.Capture(), av.open(io.BytesIO(), "w", format=_container_format(f"x{extension}")) as probe:
                _settings_stream(probe, codec, options, pix_fmt).codec_context.open()
                probe.start_encoding()
        except (ValueError, av.FFmpegError):  # refused when added, opened, started or closed
            continue
        return extension
    return None


def _settings_size(codec: str) -> tuple[int, int]:
    """(width, height) of the frames `codec`'s settings are tried on: small, and a size it opens for."""
    return _SETTINGS_SIZES.get(codec, (_SETTINGS_SIZE, _SETTINGS_SIZE))


def _settings_stream(probe: av.container.OutputContainer, codec: str, options: dict[str, str],
                     pix_fmt: str) -> av.video.stream.VideoStream:
    """A `codec` stream of `pix_fmt` pictures (`_settings_size`, the colour range the output
    gets) added to `probe`, unopened, for trying the settings; ValueError where the container
    cannot hold the codec."""
    if probe.format.name in _HOLDS and codec not in holdable_codecs(probe):
        raise ValueError(codec)  # FFmpeg would mux it as data no reader recognises
    stream = probe.add_stream(codec, options=options)
    (stream.width, stream.height), stream.pix_fmt = _settings_size(codec), pix_fmt
    stream.codec_context.color_range = _JPEG_RANGE if full_range(codec, pix_fmt) else _MPEG_RANGE
    return stream


def _listed(items) -> str:
    """'a, b or c'."""
    items = list(items)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def _quiet_svt_av1() -> None:
    """Keep SVT-AV1 to its fatal errors, unless the user set SVT_LOG: it prints its banner and settings
    (some 20 lines per encoder opened) to stderr itself, past FFmpeg's log, and its own error lines
    where it refuses a size or rate, which reach the user as ours. Its only switch is SVT_LOG, read once
    per process as its first encoder opens: every encoder is opened after this settings check."""
    os.environ.setdefault("SVT_LOG", "0")


# check_output_settings's accepted (extension, EncodeOptions): their encoder, its options and pixel format.
_settings_checked: dict[tuple[str, EncodeOptions], tuple[str, dict[str, str], str]] = {}


def _container_format(dst: str | os.PathLike) -> str:
    """The name of the container FFmpeg writes for a file named like `dst` (from its extension)."""
    try:
        # Opening for writing only guesses the format; no file is made before the first frame.
        with av.open(str(Path("/nonexistent-vidtrans-probe") / f"probe{Path(dst).suffix}"), "w") as guess:
            name, flags = guess.format.name, int(guess.format.flags)
    except (av.FFmpegError, ValueError) as e:
        raise ContainerError(f"{dst}: FFmpeg cannot tell from the name which kind of video to write "
                             f"({first_line(e)}); use an extension such as .mp4, .mkv or .mov", "mp4") from None
    if flags & _AVFMT_NOFILE:
        # HLS and DASH write a playlist and segments, image2 one image per frame: files of their
        # own naming, which could neither appear whole under a temporary name nor be cleaned up.
        raise ContainerError(f"{dst}: FFmpeg's {name} output is many files (a playlist and segments, or one image per "
                             "frame), and vidtrans writes one video file; write a .mp4 or .mkv and split it afterwards",
                             "mp4")
    return name


def check_output(dst: str | os.PathLike, width: int, height: int, time_base: Fraction, fps: float,
                 encode: EncodeOptions | None = None, source: SourceMedia | None = None) -> None:
    """Refuse, before any work, what `VideoWriter` with these arguments would refuse at its first
    frame: the settings (`check_output_settings`), frames of `width` x `height` (encoders have a
    largest size: libx264 takes 16384 pixels a side), and the streams, metadata and chapters it
    takes from `source`. The writer's own set-up runs, into memory: no file is made."""
    with av.logging.Capture():
        muxer = _Muxer(io.BytesIO(), dst, width, height, time_base, fps, encode or EncodeOptions(),
                       source or SourceMedia())
        try:
            muxer.write_header()
        finally:
            muxer.close_quietly()


@dataclass(frozen=True)
class SourceMedia:
    """What an output takes from its input besides the frames: the audio and subtitle streams of
    `path` (copied with their language, title and disposition), its attachments (into Matroska),
    its title and other tags, and its chapters; and the span of source time kept, [start, end) in
    seconds from the clip's start (`reader.clip_start`; None: from the beginning, to the end).
    `start` becomes time 0 in the output, else the clip's start."""

    path: str | os.PathLike | None = None
    start: float | None = None
    end: float | None = None


def full_range(codec: str, pix_fmt: str) -> bool:
    """Whether `codec` stores `pix_fmt` at full range (0-255): RGB, the yuvj formats, grey (swscale's
    grey is full range whatever it is asked for) and every format of a JPEG encoder."""
    return (pix_fmt.startswith(("yuvj", "gray")) or av.VideoFormat(pix_fmt).is_rgb
            or codec in _FULL_RANGE_CODECS)


def _video_encoder(codec: str, pix_fmt: str) -> tuple[str, str]:
    """The name of the encoder FFmpeg uses for `codec` (also for a format name: "h264" is
    libx264) and the pixel format it encodes: `pix_fmt`, or for auto yuv420p where the encoder takes
    it, else the best of its own (`_pix_fmt_misfit`); refusing a codec that is not a video encoder
    or a pix_fmt given that it cannot encode, or that vidtrans cannot make (`_made_from_rgb`)."""
    try:
        found = av.codec.Codec(codec, "w")
    except (ValueError, av.FFmpegError):
        found = None
    if found is None or found.type != "video":
        what = "unknown to this FFmpeg build" if found is None else f"for {found.type}, not video"
        usual = [name for name in _COMMON_ENCODERS if name in av.codecs_available]
        advice = f"pass a video encoder such as {', '.join(usual)}"
        if found is None and (meant := _encoders_meant(codec)):
            advice = f"did you mean {' or '.join(meant)}?"
        raise UsageError(f"{spell('codec')} {shown(codec)} is {what}; {advice}")
    _refuse_other_hardware(found.name)  # before its pixel formats: advice to change them would not help
    formats = [f.name for f in found.video_formats or ()]
    made = [name for name in formats if _made_from_rgb(name)]
    if formats and not made:
        raise UsageError(f"{spell('codec')} {shown(codec)} encodes only {', '.join(formats)}, which FFmpeg's scaler "
                         "cannot make from RGB frames; pass another codec")
    if pix_fmt == AUTO_PIX_FMT:
        if not formats or _PLAYS_EVERYWHERE in formats:  # no list: rawvideo, which takes any
            return found.name, _PLAYS_EVERYWHERE
        return found.name, min(made, key=_pix_fmt_misfit)  # the first of the fittest, in the encoder's order
    try:
        av.VideoFormat(pix_fmt)
    except ValueError:
        formats = formats or ["yuv420p", "yuv444p"]
        raise UsageError(f"{spell('pix_fmt')} {shown(pix_fmt)} is not a pixel format FFmpeg knows; pass one {codec} "
                         f"encodes, such as {', '.join(formats[:8])}") from None
    if formats and pix_fmt not in formats:
        raise UsageError(f"{spell('pix_fmt')} {shown(pix_fmt)} cannot be encoded by {codec}; pass one of "
                         f"{', '.join(made)}")
    if not _made_from_rgb(pix_fmt):
        raise UsageError(f"{spell('pix_fmt')} {shown(pix_fmt)} cannot be made from RGB frames by FFmpeg's scaler; pass "
                         f"one of {', '.join(made or ['yuv420p', 'rgb24'])}")
    return found.name, pix_fmt


@functools.cache
def _made_from_rgb(pix_fmt: str) -> bool:
    """Whether FFmpeg's scaler, which makes every frame the writer encodes, converts RGB to `pix_fmt`:
    not to a palette (pal8, one of png's and gif's formats, msrle's and smc's only one), half floats or
    hardware surfaces. Such a format passed the settings check and failed at the first frame, after the
    model's work."""
    try:
        av.VideoFrame(16, 16, "rgb24").reformat(format=pix_fmt)
    except (ValueError, av.FFmpegError):
        return False
    return True


def _pix_fmt_misfit(name: str) -> tuple[int, int, int]:
    """How far pixel format `name` is from storing the frames (8-bit RGB) as they are, least first: what
    it does to them (nothing; adds an alpha plane, stored opaque; or keeps no colour: grey, bilevel),
    then the bits its colour depth falls short of 8 (which lose detail), then those it has above 8
    (which cost size only): prores_ks's yuv422p10le, png's rgb24. Only formats `_made_from_rgb` are
    ranked, so no palette (pal8) is among them."""
    found = av.VideoFormat(name)
    colour = [component.bits for component in found.components if not component.is_alpha]
    if len(colour) < 3 or found.is_bit_stream:
        return 2, 0, 0
    depth = min(colour)
    return int(len(colour) < len(found.components)), max(0, 8 - depth), max(0, depth - 8)


def _encoders_meant(codec: str) -> list[str]:
    """The video encoders of this FFmpeg build a misspelt `codec` most likely meant: FFmpeg's names are
    case- and dash-sensitive (LIBX265, libsvt-av1 are no encoder's)."""
    lowered = {name.lower(): name for name in _video_encoders()}
    typed = codec.strip().lower()
    return [lowered[name] for name in ([typed] if typed in lowered else close_names(typed, list(lowered)))]


@functools.cache
def _video_encoders() -> tuple[str, ...]:
    """The names of this FFmpeg build's video encoders."""
    names = []
    for name in av.codecs_available:
        try:
            if av.Codec(name, "w").type == "video":
                names.append(name)
        except (ValueError, av.FFmpegError):  # a decoder only
            pass
    return tuple(sorted(names))


def _rgb_to_i420(image: np.ndarray, full_range: bool) -> np.ndarray:
    """BT.601 4:2:0 planes (Y, then U, then V) of an even-sized RGB image, each chroma sample the
    mean of its 2x2 block (cv2's own I420 conversion takes one pixel of the four, so fine coloured
    detail aliases: 1-px red/blue stripes turn red instead of purple)."""
    h, w = image.shape[:2]
    out = np.empty((h * 3 // 2, w), np.uint8)
    luma = out[:h]
    cv2.cvtColor(image, cv2.COLOR_RGB2GRAY, dst=luma)  # BT.601 luma, full range
    # Chroma is linear in RGB, so the chroma of each 2x2 block's mean is the mean of its chroma.
    mean = cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    ycrcb = cv2.cvtColor(mean, cv2.COLOR_RGB2YCrCb)  # BT.601, full range
    planes = out.reshape(-1)[h * w:]  # U then V, each (h/2, w/2): not whole rows of `out` when h % 4
    u, v = planes[:planes.size // 2].reshape(h // 2, w // 2), planes[planes.size // 2:].reshape(h // 2, w // 2)
    cv2.mixChannels([ycrcb], [u, v], [2, 0, 1, 1])
    if not full_range:
        cv2.LUT(luma, _LIMITED_Y, dst=luma)
        cv2.LUT(out[h:], _LIMITED_C, dst=out[h:])
    return out


def _frame_rate(fps: float) -> Fraction | None:
    """`fps` as the video stream's frame rate; None (unknown: the timestamps alone time the frames) for
    what is no rate (0, negative, NaN, infinite) or more than FFmpeg's 32-bit fractions hold."""
    return Fraction(fps).limit_denominator(100000) if fps and math.isfinite(fps) and 0 < fps < 2 ** 31 - 1 else None


class _Muxer:
    """An output container set up with the streams a `VideoWriter` writes: the video encoder,
    opened at the frames' size, and what the output takes from its source (see `SourceMedia`).
    `check_output` sets one up in memory, so that what would fail at a writer's first frame, after
    all the work, fails before any. `left_out` says what of the source could not be taken along as
    it was (left out, or re-encoded)."""

    def __init__(self, target: str | io.BytesIO, dst: str | os.PathLike, width: int, height: int,
                 time_base: Fraction, fps: float, encode: EncodeOptions, source: SourceMedia):
        self.dst = Path(dst)
        self.named = destination_of(dst)  # what messages name: the output asked for, where `dst` is a temporary file
        codec, options, pix_fmt = check_output_settings(dst, encode)
        self.width, self.height = width, height
        self.time_base = Fraction(time_base)
        self._place_span(Fraction(0), source)
        self._src: av.container.InputContainer | None = None
        self._rewound: av.container.InputContainer | None = None  # the source again, where seeking it failed
        self._audio: Iterator[av.Packet] = iter(())
        self._next_audio: av.Packet | None = None
        self._copy: dict[int, av.stream.Stream] = {}
        self._last_dts: dict[int, int] = {}  # per copied stream
        self._transcode: dict[int, tuple[av.stream.Stream, av.stream.Stream]] = {}  # audio
        # Per re-encoded stream, its latest packets before `start`: its decoder is given them before
        # the first packet it encodes (`_take`).
        self._preroll: dict[int, deque[av.Packet]] = {}
        # Per audio stream, its latest packet of unknown length before `start` (`_before_start`).
        self._undecided: dict[int, av.Packet] = {}
        # Per copied audio stream whose codec delay (its encoder's priming: AAC's 1024 samples, LAME's 1105)
        # the output stores as the input did (Matroska's CodecDelay), that delay in seconds. A player drops
        # that much from the first packet copied, which is the stream's first only without `start`: from a
        # span's start as much audio before it is copied, so that what is dropped is what lies before it.
        # (Copied from the packet playing at `start` on, the sound began 1-2 frames after the first picture.)
        self._primed: dict[int, Fraction] = {}
        self._cues: dict[int, tuple[av.stream.Stream, av.stream.Stream]] = {}  # text subtitles converted
        self.left_out: list[str] = []
        self._out: av.container.OutputContainer | None = None
        try:
            self._out = av.open(target, "w", format=None if isinstance(target, str) else _container_format(dst))
            self._add_video(codec, options, pix_fmt, fps, encode.threads)
            if source.path is not None:
                self._add_source(Path(source.path), source)
        except (av.FFmpegError, ValueError, OSError) as e:
            self.close_quietly()
            raise VidtransError(f"{self.named}: cannot set up the output ({first_line(e)}); "
                                "check the file extension (.mp4/.mkv/.mov) and codec options") from e
        except BaseException:
            self.close_quietly()
            raise

    def _place_span(self, clip: Fraction, source: SourceMedia) -> None:
        """Put the span kept, `start` and `end` (source times, None: open), and the output's time 0
        (`_origin`) in the source's own timestamps, for a source clip that starts at `clip` there."""
        self.start = None if source.start is None else clip + Fraction(source.start)
        self.end = None if source.end is None else clip + Fraction(source.end)
        self._origin: Fraction = clip if self.start is None else self.start
        # The video frames kept, in pts, as the reader counts them (its frames are the ones written).
        self._span_pts = tuple(None if t is None else first_pts_at(t, self.time_base) for t in (self.start, self.end))

    def _add_video(self, codec: str, options: dict[str, str], pix_fmt: str, fps: float, threads: int) -> None:
        ctb = self.time_base
        self._pix_fmt = pix_fmt
        rate = _frame_rate(fps)
        max_den = _MAX_TB_DEN.get(codec)
        if max_den and ctb.denominator > max_den:
            # Exact pts are impossible here; round to the finest time base the codec can store.
            ctb = Fraction(1, max_den)
        if self._out.format.name in _FRAME_RATE_TIMED and rate:
            # MPEG program streams stamp a packet, which may hold several small frames, with its
            # first frame's time only: readers time the rest by the codec's frame rate, which is
            # its time base's (1/12800 from an MP4 read as 25600 fps, and every frame at once).
            # A varying frame rate keeps its pauses, to the nearest frame of the clip's rate.
            ctb = 1 / rate
        if av.Codec(codec, "w").frame_rates:
            # MPEG-1/2 count time in frames of the rate they store (their streams cannot vary it).
            rate = self._stored_rate(codec, options, rate or Fraction(25))
            ctb = 1 / rate
        self._codec_tb = ctb
        # A picture's length where the encoder gives its packet none (the last one's, for `_mux_last`).
        self._frame_ticks = max(1, round(1 / (rate * ctb))) if rate else 1
        self._pad_w, self._pad_h = self._padding(codec, options, rate)
        enc_w, enc_h = self.width + self._pad_w, self.height + self._pad_h
        if codec == "libsvtav1" and min(enc_w, enc_h) < _SVT_NARROW:
            # SVT-AV1 (4.1) on more than one thread never returns from its flush for frames under 25
            # pixels on one side and over 64 on the other (a 4000x16 strip): one thread finishes them.
            options = {**options, "svtav1-params": "lp=1"}
        stream = self._out.add_stream(codec, rate=rate, options=options)
        stream.width, stream.height = enc_w, enc_h
        stream.pix_fmt = pix_fmt
        stream.time_base = ctb if self._out.format.name in _FRAME_RATE_TIMED else self.time_base
        stream.codec_context.time_base = ctb
        stream.thread_type = "FRAME"
        stream.codec_context.thread_count = threads
        if stamped_in_storing_order(self._out.format.name):
            # AVI stores no presentation times, only the order of its packets, and ASF their send
            # times: with B-frames (stored out of showing order) a reader cannot tell when a picture
            # of a varying frame rate is shown, so pictures are stored in showing order.
            stream.codec_context.max_b_frames = 0
        # RGB formats (libx264rgb's rgb24, gbrp of ffv1) store the pixels themselves: tagged as a YUV
        # matrix, every player would convert them again into wrong colours.
        self._colorspace = _RGB if av.VideoFormat(pix_fmt).is_rgb else _BT601
        self._full_range = full_range(codec, pix_fmt)
        stream.codec_context.colorspace = self._colorspace
        stream.codec_context.color_primaries = stream.codec_context.color_trc = _BT709
        stream.codec_context.color_range = _JPEG_RANGE if self._full_range else _MPEG_RANGE
        self._video = stream
        self._video_options = options
        self._fast_i420 = pix_fmt in ("yuv420p", "yuvj420p") and enc_w % 2 == 0 and enc_h % 2 == 0
        # Open the encoder now (it would be at the first frame). Its settings were opened at a small
        # size already (check_output_settings), so what it refuses here is the size or the frame rate.
        try:
            with av.logging.Capture():
                stream.codec_context.open()
        except av.FFmpegError as e:
            raise VidtransError(f"{self.named}: {self._refused(codec, options, rate, first_line(e))}") from e

    def _refused(self, codec: str, options: dict[str, str], rate: Fraction | None, error: str) -> str:
        """What the encoder refused in opening at the frames' size and rate, and what to do: at
        `_settings_size`, the size its settings were opened at, it refuses the rate; with the
        sides below that raised to it, a size too small; else, one too large."""
        enc_w, enc_h = self.width + self._pad_w, self.height + self._pad_h
        least_w, least_h = _settings_size(codec)
        codec_setting = next(iter(_offered("codec")), None)  # None: the command has no --codec (live)
        another = f"; choose another {codec_setting}" if codec_setting else ""
        if rate and not self._opens(codec, least_w, least_h, options, rate):
            return f"{codec} cannot encode this clip's frame rate, {float(rate):g} frames a second ({error}){another}"
        if self._opens(codec, max(enc_w, least_w), max(enc_h, least_h), options, rate):
            other = " such as libx264" if another and codec not in _X264_ENCODERS else ""
            return (f"{codec} cannot encode frames of {enc_w}x{enc_h} ({error}): they are too small for it"
                    f"{another}{other}")
        smaller = ["a smaller input", *(f"without {name}" for name in _offered("side_by_side")),
                   *(spell_setting("view", View.OUTPUT) for _ in _offered("view")),
                   *(f"a smaller {name}" for name in _offered("size"))]
        return (f"{codec} cannot encode frames of {enc_w}x{enc_h} ({error}); make them smaller ({', '.join(smaller)})"
                + (f" or choose another {codec_setting}" if codec_setting else ""))

    def _stored_rate(self, codec: str, options: dict[str, str], rate: Fraction) -> Fraction:
        """The frame rate an encoder of a table of rates (MPEG-1/2) stores frames at `rate` at, their pts
        rounded to its frames: `rate` where it takes it (MPEG-2 also takes its table's rates times n/d:
        PAL's half rate, 12.5), else the lowest of its table above, a whole multiple of `rate` first
        (MPEG-1 takes 15 fps only as an unofficial rate: 30 times those frames exactly), so that no two
        frames round onto one of its frames (on 12 fps frames, each of 12.5 fps went a frame after the
        one before: the video ran 4 % slower than its sound); else the highest."""
        table = sorted({Fraction(r.numerator, r.denominator) for r in av.Codec(codec, "w").frame_rates})
        above = sorted((r for r in table if r >= rate), key=lambda r: ((r / rate).denominator != 1, r))
        candidates = [rate, *above, *reversed([r for r in table if r < rate])]
        return next((r for r in candidates if self._opens(codec, *_settings_size(codec), options, r, 1 / r)),
                    min(table, key=lambda r: abs(r - rate)))  # none opens: the output's own opening says why

    def _opens(self, codec: str, width: int, height: int, options: dict[str, str], rate: Fraction | None,
               time_base: Fraction | None = None) -> bool:
        """Whether `codec` opens for frames of `width` x `height` in this output's pixel format, at
        `rate`, in `time_base` (by default the output's codec time base), with `options` (a trial
        encoder, not this output's)."""
        if codec == "libx265":
            # A trial's refusal is an answer, not news: x265 would print it as errors of its own
            # (an odd size in 4:2:0), past FFmpeg's log, above a run that then succeeds.
            options = {**options, "x265-params": "log-level=none"}
        trial = av.CodecContext.create(codec, "w")
        trial.width, trial.height, trial.pix_fmt = width, height, self._pix_fmt
        trial.time_base, trial.options = time_base or self._codec_tb, dict(options)
        if rate:
            trial.framerate = rate
        try:
            with av.logging.Capture():
                trial.open()
            return True
        except av.FFmpegError:
            return False

    def _padding(self, codec: str, options: dict[str, str], rate: Fraction | None) -> tuple[int, int]:
        """Pixels to add so the encoder accepts the size: the fewest, on odd sides only (none where it
        takes odd sizes as they are; 4:2:2, which halves the chroma's width only, an odd width alone)."""
        odd = (self.width % 2, self.height % 2)
        smaller = [pad for pad in dict.fromkeys([(0, 0), (odd[0], 0), (0, odd[1])]) if pad != odd]
        return next((pad for pad in smaller
                     if self._opens(codec, self.width + pad[0], self.height + pad[1], options, rate)), odd)

    def _add_source(self, src: Path, source: SourceMedia) -> None:
        """The source's streams other than the video translated, its tags and its chapters, where
        the output container can hold them; what it cannot is left out with one warning per kind
        (`left_out`). Attachment and data streams have no codec, and data (timecode, telemetry,
        GoPro or iPhone metadata) is read by the programs that wrote it only: it is left out."""
        try:
            self._src = av.open(local_file(src), metadata_errors="ignore", options=AS_NAMED)
        except (av.FFmpegError, OSError) as e:
            raise VidtransError(f"{src}: cannot read audio from it ({first_line(e)}); pass a readable video") from e
        self._place_span(clip_start(self._src), source)
        holdable = holdable_codecs(self._out)
        fmt = self._out.format.name
        kind_of_file = f"a {self.dst.suffix or fmt} file"
        translated = main_video_stream(self._src) if self._src.streams.video else None
        wanted = []
        others: dict[str, list[av.stream.Stream]] = {}
        unheld: Counter[tuple[str, str]] = Counter()  # (audio or subtitles, codec): tracks left out
        unread: Counter[str] = Counter()  # by kind: tracks of a codec FFmpeg has no decoder for (nor a name)
        audio_tracks = len(self._src.streams.audio)
        for s in self._src.streams:
            if s.codec_context is None and s.type in ("audio", "subtitle", "video"):
                unread[s.type] += 1
                continue
            if s.type == "audio":
                name = s.codec_context.codec.canonical_name
                why = _why_not_copied(fmt, holdable, s.codec_context, kind_of_file)
                if why is None:
                    out = self._out.add_stream_from_template(s)
                    delay, rate = s.codec_context.delay, s.codec_context.sample_rate
                    if fmt in _STORES_CODEC_DELAY and delay > 0 and rate:
                        self._primed[s.index] = Fraction(delay, rate)
                    if fmt in _WAVE_AUDIO and name == "aac" and not s.codec_context.extradata:
                        # AAC as ADTS (its configuration in every packet: MPEG-TS, HLS) has a WAVE tag
                        # of its own: under plain AAC's the AVI and ASF muxers refuse it at the header.
                        out.codec_context.codec_tag = _ADTS_AAC_TAG
                    self._copy[s.index] = out
                else:
                    codec, rate = _audio_codec_for(holdable, s.codec_context.sample_rate)
                    if codec is None:
                        unheld["audio", name] += 1
                        continue
                    out = self._out.add_stream(codec, rate=rate)
                    layout = _usual_layout(s.codec_context.layout)
                    out.layout = _encoder_layout(codec, layout, rate)
                    self._transcode[s.index] = (s, out)
                    track = (f"audio track {list(self._src.streams.audio).index(s) + 1} ({name})" if audio_tracks > 1
                             else f"{name} audio track")
                    # Told where channels are lost or renamed; an unordered "N channels" given its usual name is neither.
                    given = s.codec_context.layout
                    channels = given.name if given.name.endswith("channels") else f"{given.name} channels"
                    mixed = "" if out.layout.name == layout and out.layout.nb_channels == given.nb_channels else \
                        f", its {channels} as {out.layout.name}"
                    self.left_out.append(f"{src}: its {track} is re-encoded to {out.codec_context.codec.canonical_name}"
                                         f"{mixed}: {why}; {_KEEPS_ALL} keeps it as it is")
            elif s.type == "subtitle":
                name = s.codec_context.name
                if name in holdable:
                    out = self._out.add_stream_from_template(s)
                    self._copy[s.index] = out
                elif (out := self._text_stream_for(s, holdable)) is not None:
                    self._cues[s.index] = (s, out)
                    log.info("%s: %s subtitles converted to %s for %s", src, name, out.codec_context.name,
                             self.dst.suffix)
                else:
                    unheld["subtitle", s.codec_context.codec.canonical_name] += 1
                    continue
            else:
                # The MP4/MOV demuxer marks its chapter text tracks "never read": they come as chapters.
                if s is not translated and s.discard != av.stream.Discard.all:
                    others.setdefault(s.type, []).append(s)
                continue
            # Several tracks of one kind are told apart by these (language, title, default, forced).
            tags = _track_tags(s.metadata)
            if fmt == "mov" and (lost := _for_quicktime(tags)):
                self.left_out.append(f"{src}: the language {lost!r} of its {s.type} track cannot go into "
                                     f"{kind_of_file} (QuickTime's language table lacks it) and is left out; a .mp4 "
                                     "or .mkv file keeps it")
            out.metadata.update(tags)
            out.disposition = s.disposition
            wanted.append(s)
        for (kind, codec), tracks in unheld.items():
            # Matroska holds every subtitle codec FFmpeg reads, converting text ones to ASS (where
            # PyAV can): the input's own kind of file holds what it cannot. Elsewhere only bitmap
            # subtitles (DVD, Blu-ray) come here, or text ones where the container holds no text codec.
            keeper = f"a file like {src.name}" if fmt == "matroska" and kind == "subtitle" else _KEEPS_ALL
            which = f"{codec} {kind} track" if tracks == 1 else f"{tracks} {codec} {kind} tracks"
            self.left_out.append(f"{src}: its {which} cannot go into {kind_of_file} and {_are(tracks)} left out; "
                                 f"{keeper} keeps {'it' if tracks == 1 else 'them'}")
        for kind, tracks in unread.items():
            self.left_out.append(f"{src}: its {count(tracks, f'{kind} track')} of a format this FFmpeg cannot read "
                                 f"(a damaged header, or a codec it lacks) {_are(tracks)} left out")
        if wanted and translated is not None and has_timestamp_jumps(self._src):
            self._audio = _shifted_with_video(self._src, translated, wanted)
        elif wanted:
            sought = translated is not None and self._may_seek(source, wanted)
            packets = self._packets_from_start(src, translated, wanted) if sought else demux(self._src, *wanted)
            self._audio = packets if self.end is None else _until_past(packets, wanted, self.end)
        self._add_others(src, others, kind_of_file)
        self._out.metadata.update(_lasting_tags(self._src.metadata))
        chapters = self._chapters_in_span(self._src.chapters())
        if chapters and fmt in _CHAPTER_FORMATS:
            self._out.set_chapters(chapters)
        elif chapters:
            self.left_out.append(f"{src}: its {count(len(chapters), 'chapter')} cannot go into {kind_of_file} and "
                                 f"{_are(len(chapters))} left out; a .mkv, .mp4 or .mov file keeps them")

    def _may_seek(self, source: SourceMedia, wanted: list[av.stream.Stream]) -> bool:
        """Whether the packets of `wanted` may be read from a little before `start` instead of from the
        beginning: the span starts more than `SEEK_MARGIN` into the clip, and any subtitles are in an
        MP4/MOV file. A cue still on screen at `start` may have begun long before it, and where its packet
        lies only the MP4 demuxer knows: it puts every stream at its own packet at or before the time
        sought (and an MP4 track's cues never overlap). Matroska goes to the keyframe's cluster, past
        the cues stored before it."""
        if source.start is None or source.start <= SEEK_MARGIN:
            return False
        return "mov" in self._src.format.name.split(",") or all(s.type == "audio" for s in wanted)

    def _packets_from_start(self, src: Path, video: av.video.stream.VideoStream,
                            wanted: list[av.stream.Stream]) -> Iterator[av.Packet]:
        """The packets of `wanted` in file order from the keyframe `SEEK_MARGIN` before `start` on, so that
        a span near the end of a long file does not read it all (`_sought_packets`); from the beginning
        where that could leave out a packet the span takes."""
        sought = _sought_packets(self._src, video, wanted, self.start - max(self._primed.values(), default=0))
        if sought is not None:
            yield from sought
            return
        # The seek moved the source's demuxer (a failed one to the end): read the file again.
        self._rewound = av.open(local_file(src), metadata_errors="ignore", options=AS_NAMED)
        yield from demux(self._rewound, *(self._rewound.streams[s.index] for s in wanted))

    def _text_stream_for(self, s: av.stream.Stream, holdable: set[str]) -> av.stream.Stream | None:
        """The text subtitle stream (`_TEXT_SUBTITLES`) the text subtitles of `s` are converted into,
        cue by cue, when the output holds such a codec but not theirs: FFmpeg's text subtitle
        decoders give each cue as an ASS event, with its styling, and an ASS header with the
        source's default style, which each of those encoders takes. None for bitmap subtitles,
        which no text codec can carry, and with a PyAV too old to encode subtitles."""
        decoder = s.codec_context
        target = next((name for name in _TEXT_SUBTITLES if name in holdable and name in av.codecs_available), None)
        if (target is None or decoder.codec is None or not decoder.codec.text_sub
                or not hasattr(av.subtitles.codeccontext.SubtitleCodecContext, "encode_subtitle")):
            return None
        decoder.open(strict=False)  # makes its ASS header
        out = self._out.add_stream(target)
        out.codec_context.subtitle_header = decoder.subtitle_header
        return out

    def _add_others(self, src: Path, others: dict[str, list[av.stream.Stream]], kind_of_file: str) -> None:
        """Attachments (fonts for ASS subtitles, cover art) go into Matroska; every other kind is
        left out, one warning each."""
        attachments = others.pop("attachment", [])
        if attachments and self._out.format.name == "matroska":
            for i, s in enumerate(attachments):
                self._out.add_attachment(name=s.name or f"attachment{i + 1}",
                                         mimetype=s.mimetype or "application/octet-stream", data=bytes(s.data or b""))
        elif attachments:
            names = ", ".join(s.name or "unnamed" for s in attachments[:3]) + (", ..." if len(attachments) > 3 else "")
            self.left_out.append(f"{src}: its {count(len(attachments), 'attached file')} ({names}) cannot go into "
                                 f"{kind_of_file} and {_are(len(attachments))} left out; {_KEEPS_ALL} keeps them")
        videos = others.pop("video", [])
        if covers := [s for s in videos if s.disposition & av.stream.Disposition.attached_pic]:
            self.left_out.append(f"{src}: its {count(len(covers), 'cover picture')} {_are(len(covers))} left out")
        if videos := [s for s in videos if s not in covers]:
            self.left_out.append(f"{src}: its {count(len(videos), 'other video stream')} {_are(len(videos))} left "
                                 "out; only the one with the largest pictures is read, as ffmpeg picks")
        for kind, streams in others.items():
            self.left_out.append(f"{src}: its {count(len(streams), f'{kind} stream')} (timecode, camera telemetry "
                                 f"or the like) {_are(len(streams))} left out; vidtrans copies audio, subtitles, "
                                 "attachments and chapters only")

    def _chapters_in_span(self, chapters: list[dict]) -> list[dict]:
        """The source's chapters that overlap [start, end) (a chapter of no length: that lie in
        it), cut to it and shifted as the video is."""
        lo = -math.inf if self.start is None else Fraction(self.start)
        hi = math.inf if self.end is None else Fraction(self.end)
        origin = Fraction(self._origin)
        kept = []
        for chapter in chapters:
            time_base = chapter["time_base"]
            begin, finish = chapter["start"] * time_base, max(chapter["start"], chapter["end"]) * time_base
            if begin >= hi or (finish <= lo if finish > begin else begin < lo):
                continue
            kept.append({"id": len(kept) + 1, "time_base": time_base, "metadata": dict(chapter["metadata"]),
                         "start": round((max(begin, lo) - origin) / time_base),
                         "end": round((min(finish, hi) - origin) / time_base)})
        return kept

    def write_header(self) -> None:
        """Write the container's header, where a muxer refuses what it cannot hold."""
        try:
            self._out.start_encoding()
            # The clock the muxer stores the video's times on (its choice, made here) where that is coarser than
            # the encoder's: GIF's 1/100 s, ASF's and Matroska's 1/1000 s. GIF and ASF refuse two pictures on one tick.
            self._stored_tb = max(self._codec_tb, Fraction(self._video.time_base))
        except av.FFmpegError as e:
            if e.errno in _DISK_ERRORS:  # the disk, not the container, refused
                raise VidtransError(f"{self.named}: cannot start the output ({first_line(e)}); check free disk space "
                                    "and that the output folder is writable") from e
            raise VidtransError(f"{self.named}: cannot start the output ({first_line(e)}); "
                                f"write another container, such as .mkv") from e

    def close_quietly(self) -> None:
        """Close the output (its data may be incomplete) and the source."""
        if self._out is not None:
            try:
                self._out.close()
            except (av.FFmpegError, OSError):
                pass  # the output is thrown away anyway
            self._out = None
        for source in (self._rewound, self._src):
            if source is not None:
                source.close()
        self._rewound = self._src = None


class VideoWriter(_Muxer):
    """Encode frames with `write(image, pts)`, then `close()` (or `abort()`).

    Timestamps: frames keep the pts they are given, in `time_base` (which also becomes the output
    video stream's time base), so variable-frame-rate input survives. The output starts at
    `source.start` (seconds from the source clip's start), else at the clip's start (0 in nearly
    every file; a broadcast recording's first timestamp, e.g. 10000 s, see `reader.clip_start`):
    video, audio, subtitles and chapters are shifted together so it becomes time 0; frames and
    audio before `source.start` or at/after `source.end` are dropped (the audio packet playing at
    `source.start` is kept, see `_plays_in_span`). Pass the reader's original pts, not renumbered
    ones.
    A pts that does not increase (duplicate or backwards timestamps, common in screen recordings
    and edited files) is moved to one tick after the previous frame's: every frame is kept. When
    the first frame's pts is negative (and there is no `start`), video and audio are shifted
    together so it is at time 0, since players would hide frames before 0.
    .mp4/.mov keep every pts exactly (an edit list absorbs the B-frame delay); Matroska cannot store
    negative timestamps, so there FFmpeg shifts all streams by that delay (a few frames, in sync).
    MPEG-4 part 2 cannot store time bases finer than 1/65535 s: pts are rounded to that. MPEG-1/2
    count time in frames of a rate they store (`fps` where they can, else the lowest above, see
    `_stored_rate`), AVI in frames of `fps` (pass the input's `VideoInfo.frame_rate`, the rate its
    frames sit on): pts are rounded to those, pauses kept.
    Two frames rounded onto one tick of the clock a container stores (those frames; GIF's 1/100 s, ASF's
    and Matroska's 1/1000 s) go a tick apart.

    Audio and subtitle streams of `source.path` are copied without re-encoding, with their language,
    title and disposition, interleaved by time as video is written (read lazily, so memory stays
    flat; from a little before `source.start` where the file can be sought, see `_may_seek`, and
    no further than `source.end`, so a short span of a long file reads little of it); audio the
    output container cannot hold (or PCM, or MP3 below 16 kHz, into .mp4) is re-encoded to AAC (MP2
    for .mpg, Opus for .webm; channels the encoder cannot take are mixed down), with a warning;
    languages .mov cannot hold are given as their other ISO 639-2 code; text subtitles the
    container cannot hold are converted to a text codec it holds (`_TEXT_SUBTITLES`: mov_text to
    ASS for .mkv, SRT to mov_text for .mp4, to WebVTT for .webm); other subtitles the container
    cannot hold are left out with a warning. Attachments go into Matroska; data
    streams (timecode, telemetry) are left out with a warning. The source's title and other tags
    are copied, and its chapters (cut to [start, end) and shifted with the video) where the
    container holds chapters.

    Settings (`encode`): the codec must be a video encoder this FFmpeg has, the pixel format one it
    encodes, crf in its range (see `encoder_options`); anything else raises VidtransError before a
    file is made.

    Odd sizes: 4:2:0 H.264/H.265 cannot store an odd width or height (their cropping works in
    2-pixel steps), so frames are padded by one replicated edge pixel and the output is one pixel
    larger there. Codecs that can store odd sizes (mpeg4, any codec with yuv444p) keep the size.

    Colour: RGB is converted with the BT.601 matrix, limited range (full range for yuvj* formats),
    and the stream is tagged so players and decoders convert it back the same way. 4:2:0 chroma is
    the mean of each 2x2 block, as FFmpeg's swscale does, so fine coloured detail keeps its colour.

    encode.segments: x264 encoders working at once on consecutive segments (`video.segments`), 0:
    one per 4 cores from 8 cores on, else one.
    encode.threads: encoder threads, 0 lets the codec choose (x264: 1.5 per core; with segments,
    cores / segments). Fewer threads cost less
    CPU per frame (x264 superfast at 720p: 8.2 ms with 3 threads, 7.0 with 2, 6.4 with 1), which
    matters when other stages already keep the cores busy.
    """

    def __init__(self, dst: str | os.PathLike, width: int, height: int, time_base: Fraction, fps: float,
                 encode: EncodeOptions | None = None, source: SourceMedia | None = None, overwrite: bool = False):
        encode, source = encode or EncodeOptions(), source or SourceMedia()
        self.dst = Path(dst)
        self.frames_written = 0
        self.audio_time = 0.0  # source time of the last audio/subtitle packet muxed (flat-memory check)
        self._last_pts: int | None = None
        self._last_stored: int | None = None  # the last frame's time on the clock the file stores (`_stored_tb`)
        # The codec pts of the latest pictures written, in order: enough to hold the picture after
        # any packet one encoder still holds back (x264 looks up to 250 frames ahead at most).
        self._recent_pts: deque[int] = deque(maxlen=_PICTURES_HELD)
        self._held: av.Packet | None = None  # the latest video packet, not muxed yet (`_mux_last`)
        self._first_times: tuple[int, int] | None = None  # the first video packet's pts and dts
        self._video_end: int | None = None  # the end of the latest picture encoded
        self._overwrite = overwrite
        self._other_before_zero = False  # whether an audio or subtitle packet was muxed before time 0
        self._deferred: list[av.Packet] | None = None  # packets taken while time 0 is being decided (`_take`)
        # Bad settings are refused before any file (output, temporary or lock) is made.
        check_output_settings(self.dst, encode)
        check_destination(dst, source.path, overwrite)  # as given: a Path drops a trailing slash (a folder's name)
        self._claim = OutputClaim(self.dst)
        try:
            self._tmp = temp_path(self.dst)
        except BaseException:  # also a signal arriving here: the lock must not outlive us
            self._claim.release()
            raise
        self._out = self._src = self._rewound = self._segments = None
        try:
            super().__init__(local_file(self._tmp), self.dst, width, height, time_base, fps, encode, source)
            for warning in self.left_out:
                log.warning("%s", warning)
            self._segments = self._segmented(encode, fps)
            self._lead_in_due = self._out.format.name == "avi"
            with making_files():  # the muxer makes the file (by name) here: not after a final clean-up
                self.write_header()
        except BaseException:
            self.abort()
            raise

    # --- writing ---------------------------------------------------------------------------------

    def write(self, image: np.ndarray, pts: int) -> None:
        """Encode one uint8 RGB (height, width, 3) frame at `pts` (in `time_base`, as read)."""
        if image.shape != (self.height, self.width, 3) or image.dtype != np.uint8:
            raise ValueError(f"expected uint8 image of shape {(self.height, self.width, 3)}, "
                             f"got {image.dtype} {image.shape}")
        t = float(pts * self.time_base)
        first, stop = self._span_pts
        if (first is not None and pts < first) or (stop is not None and pts >= stop):
            return
        if self._last_pts is None:
            if self.start is None and pts * self.time_base < self._origin:
                # mp4 would hide frames before time 0 (an edit list starting at 0) and Matroska
                # cannot store them: start the output (audio too) at the first frame instead. (A TS
                # clip crossing its 33-bit clock's wrap starts below 0 too, at `_origin`: not moved.)
                self._origin = pts * self.time_base
            if self._lead_in_due:
                self._start_with_audio(t)
        elif pts <= self._last_pts:
            pts = self._last_pts + 1  # duplicate or backwards pts (screen recordings, edited files)
        self._last_pts = pts
        shifted = pts - self._offset(self.time_base)
        # On the clock the file stores: halves rounded up, not to even: frames half a tick off the coarser clock
        # (a 25 fps video starting at 0.5 s, in AVI's frames) keep their even steps (12.5, 13.5 would become 12, 14).
        stored = shifted if self._stored_tb == self.time_base else _nearest(shifted * self.time_base / self._stored_tb)
        if self._last_stored is not None and stored <= self._last_stored:
            stored = self._last_stored + 1  # two pts rounded onto one tick of a coarser clock
        self._last_stored = stored
        # The encoder's clock is as fine or finer: the muxer's rounding gives `stored` back.
        codec_pts = stored if self._stored_tb == self._codec_tb else _nearest(stored * self._stored_tb / self._codec_tb)
        self._recent_pts.append(codec_pts)
        try:
            if self._segments is not None:
                for packets, until in self._segments.encode(image, codec_pts, t):
                    self._mux_video(packets, until)
            else:
                frame = self._to_frame(image)
                frame.pts, frame.time_base = codec_pts, self._codec_tb
                self._mux_encoded(self._video.encode(frame))
                self._pump_audio(until=t)
        except av.FFmpegError as e:
            checks = " and ".join(filter(None, [", ".join(_offered("codec", "pix_fmt", "crf")), "free disk space"]))
            raise VidtransError(f"{self.named}: encoding failed ({first_line(e)}); check {checks}") from e
        self.frames_written += 1

    def _segmented(self, encode: EncodeOptions, fps: float) -> SegmentedEncoder | None:
        """Encoders for consecutive segments at once, where more than one is asked for (or the cores
        call for it) and the codec's segments join (see `video.segments`); None: one encoder."""
        template = self._video.codec_context
        parallel = segments_for(template.name, encode.segments)
        if parallel < 2:
            return None
        if not SegmentedEncoder.joins(template, self._video_options):
            log.debug("%s: %s segments would not share one header; encoding with one encoder", self.named, template.name)
            return None
        return SegmentedEncoder(template, self._video_options, self._to_frame, parallel,
                                segment_length(float(_frame_rate(fps) or 0)), encode.threads)

    def _mux_video(self, packets: list[av.Packet], until: float) -> None:
        """Mux one segment's packets, then the source's audio and subtitles up to its last frame."""
        for packet in packets:
            packet.stream = self._video
        self._mux_encoded(packets)
        self._pump_audio(until=until)

    def _mux_encoded(self, packets: list[av.Packet]) -> None:
        """Mux the video's packets, in AVI the first after the frames before it (`_avi_lead_in`);
        each lasting until the next picture written, where that is known."""
        if packets and self._lead_in_due:
            self._lead_in_due = False
            self._avi_lead_in(packets[0])
        for packet in packets:
            # The encoder gives each packet a frame's length, but a container's duration runs to
            # the end of its last packet in decoding order: with B-frames an earlier picture, which
            # must last through a pause after it (a screen recording's) for the file to last to its
            # last picture. Only where the picture is still among those held (segments come back
            # later than the last 512 pictures at 60 fps on many cores).
            following = None
            if packet.pts is not None and self._recent_pts and packet.pts >= self._recent_pts[0]:
                for pts in reversed(self._recent_pts):
                    if pts <= packet.pts:
                        break
                    following = pts
            if following is not None:
                packet.duration = following - packet.pts
            if packet.pts is not None and packet.dts is not None:
                if self._first_times is None:
                    self._first_times = packet.pts, packet.dts
                end = packet.pts + (packet.duration or self._frame_ticks)
                self._video_end = end if self._video_end is None else max(self._video_end, end)
            if self._held is not None:
                self._out.mux(self._held)
            self._held = packet  # muxed with the next one, or by `_mux_last`

    def _mux_last(self) -> None:
        """Mux the video's last packet in decoding order. In an MP4 or MOV its duration ends the
        track, which lasts from the first decoding time: where that packet is not the latest
        picture (a P-frame after a pause, sent after the B-frames before it), it is stretched so
        that the track lasts to the latest picture's end, or the file would end a frame after that
        packet's decoding time, before the picture after the pause was shown."""
        packet, self._held = self._held, None
        if packet is None:
            return
        if self._out.format.name in _DECODE_TIMED and self._first_times and packet.dts is not None:
            first_pts, first_dts = self._first_times
            lasting = (self._video_end - first_pts) - (packet.dts - first_dts)
            packet.duration = max(packet.duration or 0, lasting)
        self._out.mux(packet)

    def _start_with_audio(self, first: float) -> None:
        """AVI: move time 0 back to the start of the earliest copied audio packet that plays with the
        first picture (`first`, source seconds): the one playing at `start`, or AAC's priming. AVI
        cannot store times before 0, and FFmpeg's muxer would move every stream later by that much,
        rounded up to whole frames of the video after the first picture's time had been rounded to
        one: the pictures came up to two frames late, the sound 40-60 ms ahead of them. Counted from
        the audio, the pictures' times are rounded once, to the nearest frame."""
        self._deferred = []
        try:
            self._pump_audio(until=first)
        finally:
            taken, self._deferred = self._deferred, None
        starts = [at for packet in taken
                  if packet.stream.index in self._copy and (at := _played_from(packet)) is not None]
        self._origin = min([self._origin, *starts])
        for packet in taken:
            self._take(packet)

    def _avi_lead_in(self, first: av.Packet) -> None:
        """AVI times a picture by its place among the stream's frames, and FFmpeg's muxer fills the
        frames before a packet's time with empty ones (players show the last picture again), but
        not before a stream's first packet: that one it stores as frame 0, whatever its time. A
        video starting after time 0 (after the audio, or after AAC's priming, which AVI cannot hide
        and for which FFmpeg delays the other streams) would start that much too early. An empty
        packet a frame before the first makes the muxer fill the frames up to it: where the first
        is at 0, only when another stream starts before 0 (the muxer then moves both by as much)."""
        self._pump_audio(until=float(self._origin + first.dts * first.time_base))  # to know what starts before 0
        if first.dts >= 1 or self._other_before_zero:
            empty = av.Packet()
            empty.stream, empty.time_base = self._video, first.time_base
            empty.pts = empty.dts = first.dts - 1
            self._out.mux(empty)

    def _mux_other(self, packet: av.Packet) -> None:
        """Mux an audio or subtitle packet, noting one before time 0."""
        if packet.dts is not None and packet.dts < 0:
            self._other_before_zero = True
        self._out.mux(packet)

    def _to_frame(self, image: np.ndarray) -> av.VideoFrame:
        if self._pad_w or self._pad_h:
            image = cv2.copyMakeBorder(image, 0, self._pad_h, 0, self._pad_w, cv2.BORDER_REPLICATE)
        if self._fast_i420:
            # Same matrix, range and 2x2 chroma averaging as swscale, in about half its time.
            frame = av.VideoFrame.from_ndarray(_rgb_to_i420(image, self._full_range), format=self._pix_fmt)
        else:
            rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame = rgb.reformat(format=self._pix_fmt, dst_colorspace="itu601",
                                 dst_color_range=_JPEG_RANGE if self._full_range else _MPEG_RANGE)
        frame.colorspace = self._colorspace
        frame.color_primaries = frame.color_trc = _BT709
        frame.color_range = _JPEG_RANGE if self._full_range else _MPEG_RANGE
        return frame

    def _offset(self, time_base: Fraction) -> int:
        """The output's time 0 in ticks of `time_base`: subtracted from every stream, keeping them in sync."""
        return round(self._origin / time_base)

    def _pump_audio(self, until: float | None) -> None:
        """Mux source audio/subtitle packets up to video time `until` (None: all that is left)."""
        while True:
            if self._next_audio is None:
                self._next_audio = next(self._audio, None)
                if self._next_audio is None:
                    return
            packet = self._next_audio
            at = _played_from(packet)
            t = None if at is None else float(at)
            if until is not None and t is not None and t > until:
                return
            self._next_audio = None
            if packet.size == 0:
                continue
            if t is not None:
                self.audio_time = max(self.audio_time, t)
            if t is not None and packet.stream.type == "subtitle":
                if not self._cue_in_span(packet, t):
                    continue
            elif t is not None:
                if (held := self._undecided.pop(packet.stream.index, None)) is not None:
                    # It played until this packet: past the start, or not.
                    if t > self._kept_from(packet.stream.index):
                        self._take(held)
                    else:
                        self._to_preroll(held)
                if not self._plays_in_span(packet, t):
                    if self.start is not None and t < self._kept_from(packet.stream.index):
                        self._before_start(packet)
                    continue
            self._take(packet)

    def _before_start(self, packet: av.Packet) -> None:
        """An audio packet that started before `start` and ended before it, as far as is known: one
        of unknown length (ALAC or WavPack in Matroska) waits for its stream's next packet, which
        says whether it was still playing at `start` (`_pump_audio`); the others, and that one if it
        was not, are a re-encoded stream's pre-roll (`_to_preroll`)."""
        if packet.duration:
            self._to_preroll(packet)
        else:
            self._undecided[packet.stream.index] = packet

    def _to_preroll(self, packet: av.Packet) -> None:
        """Keep a packet before the span for a re-encoded stream's decoder (`_DECODER_PREROLL`)."""
        if packet.stream.index in self._transcode:
            self._shift(packet)
            self._preroll.setdefault(packet.stream.index, deque(maxlen=_DECODER_PREROLL)).append(packet)

    def _take(self, packet: av.Packet) -> None:
        """Mux a source packet that plays in the span (copied, converted or re-encoded) at its output time
        (later, while time 0 is being decided: `_start_with_audio`)."""
        if self._deferred is not None:
            self._deferred.append(packet)
            return
        self._shift(packet)
        index, kind = packet.stream.index, packet.stream.type
        try:
            if index in self._copy:
                self._after_last(index, packet)
                packet.stream = self._copy[index]
                self._mux_other(packet)
            elif index in self._cues:
                self._convert_cue(*self._cues[index], packet)
            else:
                src, out = self._transcode[index]
                for before in self._preroll.pop(index, ()):
                    _decoded(src, before)  # its frames lie before the span
                self._encode_audio(src, out, packet)
        except av.ArgumentError as e:  # EINVAL: how muxers refuse a packet (its timestamps, mostly)
            raise VidtransError(f"{self.named}: the {self._out.format.name} muxer refused a packet of the input's "
                                f"{kind} ({_refusal(e)}); write a .mkv file") from e

    def _shift(self, packet: av.Packet) -> None:
        """Put a source packet's times in the output's (`_offset`)."""
        offset = self._offset(packet.time_base)
        if packet.pts is not None:
            packet.pts -= offset
        if packet.dts is not None:
            packet.dts -= offset

    def _after_last(self, index: int, packet: av.Packet) -> None:
        """Move a copied packet whose dts is not after its stream's previous one just after it, as
        FFmpeg's muxing does: a joined recording's first audio can overlap the previous one's last
        by a fraction of a frame once both are shifted with their video. Counted in the output
        stream's ticks: one tick of the source's (a TS's 90 kHz) can round onto the same tick of a
        coarser one (MP4 audio counts samples), which the muxer refuses."""
        time_base = self._copy[index].time_base
        if packet.time_base != time_base:
            scale = packet.time_base / time_base
            packet.pts, packet.dts, packet.duration = (None if ticks is None else _nearest(ticks * scale)
                                                       for ticks in (packet.pts, packet.dts, packet.duration))
            packet.time_base = time_base
        last = self._last_dts.get(index)
        if packet.dts is not None and last is not None and packet.dts <= last:
            nudge = last + 1 - packet.dts
            packet.dts += nudge
            packet.pts = None if packet.pts is None else packet.pts + nudge
        if packet.dts is not None:
            self._last_dts[index] = packet.dts

    def _plays_in_span(self, packet: av.Packet, t: float) -> bool:
        """Whether an audio packet starting at `t` plays in [start, end). The one playing at
        `start` is kept whole, starting before the output's time 0, so the output has no silence at
        its start (up to an AAC frame, 64 ms at 16 kHz): MP4 and MOV hide the part before 0 with
        an edit list, as `ffmpeg -ss` does; in Matroska, which cannot store times before 0 (beyond
        an audio codec's delay), FFmpeg starts all streams that much later together, as for any
        audio that starts before the video. (One of unknown length is decided by the next, `_before_start`.)"""
        return ((self.start is None or not _ends_before(packet, t, self._kept_from(packet.stream.index)))
                and (self.end is None or t < self.end))

    def _kept_from(self, index: int) -> Fraction:
        """Where the audio kept of stream `index` starts, in source seconds: `start`; for audio copied
        with a codec delay the output stores (`_primed`), that much before it."""
        return self.start - self._primed.get(index, 0)

    def _cue_in_span(self, packet: av.Packet, t: float) -> bool:
        """Trims a subtitle cue shown from `t` to the output's span: one already on screen at `start`
        shows from there, one still on screen at `end` stops there. False when nothing of it is in
        the span (a cue of unknown length counts as a moment)."""
        time_base = packet.time_base
        shown_until = t + float(packet.duration * time_base) if packet.duration else t
        begin = t if self.start is None else max(t, self.start)
        finish = shown_until if self.end is None else min(shown_until, self.end)
        if not packet.duration:
            return begin == t and (self.end is None or t < self.end)
        if finish <= begin:
            return False
        packet.pts = packet.dts = round(begin / time_base)
        packet.duration = max(1, round((finish - begin) / time_base))
        return True

    def _convert_cue(self, src: av.stream.Stream, out: av.stream.Stream, packet: av.Packet) -> None:
        """Mux a subtitle cue of `src` into the text subtitle stream `out`, at the packet's (cut) time."""
        try:
            cue = src.codec_context.decode2(packet)
        except av.FFmpegError:
            return  # a damaged cue: left out, as a player would skip it
        if cue is None or not len(cue):
            return  # MP4 fills the time between cues with empty ones
        converted = out.codec_context.encode_subtitle(cue)
        converted.pts = converted.dts = packet.pts
        converted.duration, converted.time_base, converted.stream = packet.duration, packet.time_base, out
        self._out.mux(converted)

    def _encode_audio(self, src: av.stream.Stream, out: av.stream.Stream, packet: av.Packet | None) -> None:
        for frame in _decoded(src, packet):
            for encoded in out.encode(frame):
                self._mux_other(encoded)

    # --- finishing -------------------------------------------------------------------------------

    def close(self) -> None:
        """Flush everything, finish the file and move it to `dst`. Raises VidtransError on failure."""
        if self._out is None:
            return
        try:
            if self.frames_written == 0:
                raise VidtransError(f"{self.named}: no video frames to write; check the input and "
                                    f"{spell('start')}/{spell('end')}")
            if self._segments is not None:
                for packets, until in self._segments.flush():
                    self._mux_video(packets, until)
            else:
                self._mux_encoded(self._video.encode(None))
            self._mux_last()
            self._pump_audio(until=None)
            for src, out in self._transcode.values():
                self._encode_audio(src, out, None)
                self._out.mux(out.encode(None))
            self._out.close()
            self._out = None
            self.close_quietly()
            publish(self._tmp, self.dst, self._overwrite)
            self._claim.release()
        except VidtransError:
            self.abort()
            raise
        except av.PatchWelcomeError as e:
            # The MP4/MOV muxer's refusal of a stream whose timestamps jump too far (not a disk problem).
            self.abort()
            raise VidtransError(f"{self.named}: could not finish the video ({first_line(e)}): the input's timestamps "
                                "jump too far for this kind of file; write a .mkv file") from e
        except OSError as e:  # FFmpeg's failures to write are OSErrors too
            self.abort()
            raise VidtransError(f"{self.named}: could not finish the video ({first_line(e)}); "
                                "check free disk space and the output folder") from e
        except av.FFmpegError as e:  # the encoder or muxer refusing what it was given
            self.abort()
            raise VidtransError(f"{self.named}: could not finish the video ({_refusal(e)}); write a .mkv file") from e

    def abort(self) -> None:
        """Stop and delete the partial file; `dst` is left as it was."""
        if self._segments is not None:
            self._segments.cancel()
        self.close_quietly()
        discard(self._tmp)
        self._claim.release()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


# The settings the writer's advice names that `translate_video` takes, for a caller from Python.
_TRANSLATE_SETTINGS = frozenset({"side_by_side", "codec", "pix_fmt", "crf"})


def _offered(*names: str) -> list[str]:
    """The settings of `names` that the running command has, as it spells them (from Python: those
    `translate_video` takes): advice names only what can be changed (`live` records H.264 of its
    view, at its --size: it has no --codec or --side-by-side)."""
    flags = spellings()
    return [spell(name) for name in names if (name in flags if flags else name in _TRANSLATE_SETTINGS)]


def _decoded(src: av.stream.Stream, packet: av.Packet | None) -> list[av.AudioFrame]:
    try:
        return src.decode(packet)
    except av.FFmpegError:
        return []  # a damaged audio packet: a few ms of silence rather than a failed job


def _nearest(ticks: Fraction) -> int:
    """`ticks` rounded as FFmpeg rescales timestamps (AV_ROUND_NEAR_INF: halves away from 0)."""
    return math.floor(ticks + Fraction(1, 2)) if ticks >= 0 else -math.floor(Fraction(1, 2) - ticks)


def _refusal(error: av.FFmpegError) -> str:
    """Why FFmpeg refused something: its log line where PyAV kept it (not when its log is off,
    as in the CLI), else the error's own words ("Invalid argument")."""
    return error.log[2].strip() if error.log else first_line(error)


def _shifted_with_video(src: av.container.InputContainer, video: av.video.stream.VideoStream,
                        wanted: list[av.stream.Stream]) -> Iterator[av.Packet]:
    """The packets of `wanted` shifted across the TS/PS clock's jumps as the reader shifts the
    video's: the video is demuxed with them, in file order, so the jumps are decided on the same
    video packets and every stream gets the same shift from the same point in the file on."""
    for packet in ContinuousTimestamps(video)(demux(src, video, *wanted)):
        if packet.stream.index != video.index:
            yield packet


def _sought_packets(src: av.container.InputContainer, video: av.video.stream.VideoStream,
                    wanted: list[av.stream.Stream], start: Fraction) -> Iterator[av.Packet] | None:
    """The packets of `wanted` in file order from the keyframe `SEEK_MARGIN` seconds before `start` on;
    None when FFmpeg cannot seek there or may have left out one that plays from `start`. A stream's
    packets are stored in the order of their times, so once an audio stream's first packet after the
    seek ends before `start` (and is dropped as before the span), all that play from `start` follow.
    A first packet that plays from `start` on, or none within `SEEK_MARGIN` after it, proves nothing:
    FFmpeg may have landed later than asked (inexact indexes, audio stored far from its video), and
    the packets before it may play in the span."""
    try:
        src.seek(seek_pts(start - SEEK_MARGIN, video.time_base), stream=video, backward=True)
    except av.FFmpegError as e:  # no index FFmpeg can use (older FFmpeg: Matroska, before its first keyframe)
        log.debug("%s: cannot seek to %gs (%s); reading its audio from the beginning", src.name,
                  start - SEEK_MARGIN, first_line(e))
        return None
    packets = demux(src, *wanted)
    unproven = {s.index for s in wanted if s.type == "audio"}
    ahead: list[av.Packet] = []
    while unproven:
        packet = next(packets, None)
        if packet is None:
            return None  # the file ended first
        ahead.append(packet)
        at = _played_from(packet)
        if at is None:
            continue
        t = float(at)
        if packet.stream.index in unproven and _ends_before(packet, t, start):
            unproven.discard(packet.stream.index)
        elif packet.stream.index in unproven or t > start + SEEK_MARGIN:
            log.debug("%s: after the seek to %gs (its %s packet at %.3fs) audio playing at %gs may be missing; "
                      "reading its audio from the beginning", src.name, start - SEEK_MARGIN, packet.stream.type, t,
                      start)
            packets.close()
            return None
    return itertools.chain(ahead, packets)


def _until_past(packets: Iterator[av.Packet], wanted: list[av.stream.Stream], end: Fraction) -> Iterator[av.Packet]:
    """`packets` until each stream of `wanted` has had one from `end` (seconds) on: a stream's packets
    are stored in the order of their times, so none after that one plays before `end`, and the rest
    of a long file is not read."""
    running = {s.index for s in wanted}
    for packet in packets:
        yield packet
        at = _played_from(packet)
        if at is not None and at >= end:
            running.discard(packet.stream.index)
            if not running:
                return


def _played_from(packet: av.Packet) -> Fraction | None:
    """When a packet plays from, in seconds of its source (None: it states no time)."""
    ts = packet.pts if packet.pts is not None else packet.dts
    return None if ts is None else ts * packet.time_base


def _ends_before(packet: av.Packet, t: float, start: Fraction) -> bool:
    """Whether an audio packet starting at `t` has played by `start` (one of unknown length: starts before it)."""
    ends = t + float(packet.duration * packet.time_base) if packet.duration else t
    return t < start and ends <= start


def _lasting_tags(tags: dict[str, str]) -> dict[str, str]:
    """The tags of a source stream or file that still hold for the output (see _FILE_TAGS)."""
    return {key: value for key, value in tags.items() if key.lower().split("-")[0] not in _FILE_TAGS}


def _track_tags(tags: dict[str, str]) -> dict[str, str]:
    """A source track's lasting tags as muxers take them: FFmpeg's MP4/MOV demuxer gives a track's
    title as "name", which its muxers (and Matroska's) write only from "title"."""
    tags = _lasting_tags(tags)
    if "name" in tags and "title" not in tags:
        tags["title"] = tags.pop("name")
    return tags


def _are(n: int) -> str:
    return "is" if n == 1 else "are"


# Audio is re-encoded where the container cannot hold the source's: to AAC, which plays everywhere,
# else to MPEG audio layer 2 (MPEG program streams, .mpg), else (WebM takes Opus and Vorbis only) to
# Opus or Vorbis.
_AUDIO_FALLBACKS = ("aac", "mp2", "libopus", "libvorbis")


def _audio_codec_for(holdable: set[str], rate: int) -> tuple[str | None, int]:
    """The encoder for audio at `rate` Hz that the output can hold, and the rate to encode at: the
    source's where the encoder takes it, else the next it takes above (PyAV resamples), else its highest."""
    for codec in _AUDIO_FALLBACKS:
        if codec in holdable and codec in av.codecs_available:
            rates = av.Codec(codec, "w").audio_rates
            if rates and rate not in rates:
                rate = min((r for r in rates if r > rate), default=max(rates))
            return codec, rate
    return None, rate


# Packets an audio decoder is given before the first one whose sound is kept (a span's start): a
# decoder opened at that one takes its first frame for the encoder's priming and drops it (AAC: 1024
# samples, 128 ms at 8 kHz), and needs the frames before to decode it (overlapping transforms, MP3's
# bit reservoir); Opus asks for 80 ms of them, 4 of its usual 20 ms frames.
_DECODER_PREROLL = 8
# The MP4 muxer's modes refusing MP3 below 16 kHz (libavformat/movenc.c; QuickTime .mov takes it).
_MP3_FROM_16K = {"mp4", "psp", "ismv", "f4v"}
# The rates the FLV muxer takes MP3 at (libavformat/flvenc.c, get_audio_flags).
_FLV_MP3_RATES = frozenset({11025, 22050, 44100, 48000})
# ISO 639-2 languages with two codes, bibliographic (B) and terminology (T): the one of each pair that
# QuickTime's language table (libavformat/isom.c, which the .mov muxer writes from) holds, for the
# other. Neither of Maori's (mao, mri) is in it.
_QUICKTIME_LANGUAGE = {"deu": "ger", "fre": "fra", "zho": "chi", "nld": "dut", "cze": "ces", "fas": "per",
                       "isl": "ice", "sqi": "alb", "hye": "arm", "eus": "baq", "mya": "bur", "kat": "geo",
                       "ell": "gre", "mkd": "mac", "msa": "may", "rum": "ron", "slo": "slk", "bod": "tib",
                       "cym": "wel"}
# Each code of those pairs to the other.
_OTHER_LANGUAGE_CODE = {**_QUICKTIME_LANGUAGE, **{held: other for other, held in _QUICKTIME_LANGUAGE.items()}}


def _why_not_copied(fmt: str, holdable: set[str], audio: av.audio.codeccontext.AudioCodecContext,
                    kind_of_file: str) -> str | None:
    """Why audio of the codec context `audio` is re-encoded for the container `fmt`, not copied (None: copied)."""
    name = audio.name  # the decoder's, as holdable_codecs names them (mp3float)
    if name not in holdable:
        return f"{kind_of_file} cannot hold it"
    if fmt in _NO_PCM and name.startswith("pcm_"):
        return f"few players read PCM in {kind_of_file}"
    if fmt in _NO_PCM and audio.codec.canonical_name == "vorbis":
        return f"few players read Vorbis in {kind_of_file}"
    if fmt in _MP3_FROM_16K and audio.codec.canonical_name == "mp3" and audio.sample_rate < 16000:
        return f"{kind_of_file} holds MP3 at 16000 Hz and above only, not at {audio.sample_rate} Hz"
    if fmt == "flv" and name.startswith("pcm_"):
        # FFmpeg's FLV muxer aborts the process (not an error: SIGABRT) on PCM copied from another file.
        return f"FFmpeg cannot copy PCM into {kind_of_file}"
    if fmt == "flv" and audio.codec.canonical_name == "mp3" and audio.sample_rate not in _FLV_MP3_RATES:
        return (f"{kind_of_file} holds MP3 at {', '.join(map(str, sorted(_FLV_MP3_RATES)))} Hz only, "
                f"not at {audio.sample_rate} Hz")
    return None


def _for_quicktime(tags: dict[str, str]) -> str | None:
    """Give `tags`' language (an ISO 639-2 code) as QuickTime's language table holds it: its other
    code of the two some languages have, where only that one is there (.mov writes the table's
    numbers and "und" for any other code). The language left out, where neither is there (removed)."""
    language = tags.get("language")
    if not language or language == "und" or _quicktime_keeps(language):
        return None
    other = _OTHER_LANGUAGE_CODE.get(language)
    if other is not None and _quicktime_keeps(other):
        tags["language"] = other
        return None
    del tags["language"]
    return language


@functools.cache
def _quicktime_keeps(language: str) -> bool:
    """Whether a .mov file keeps a track's `language`: a tiny one written into memory and read back (3 ms)."""
    data = io.BytesIO()
    try:
        with av.logging.Capture(), av.open(data, "w", format="mov") as out:
            stream = out.add_stream("pcm_s16le", rate=8000)
            stream.metadata["language"] = language
            out.start_encoding()
            packet = av.Packet(bytes(16))
            packet.stream, packet.pts, packet.dts, packet.duration, packet.time_base = stream, 0, 0, 8, stream.time_base
            out.mux(packet)
        data.seek(0)
        with av.open(data, format="mov") as back:
            return back.streams.audio[0].metadata.get("language") == language
    except (av.FFmpegError, IndexError):
        return False


@functools.cache
def _encoder_layout(codec: str, layout: str, rate: int) -> str:
    """The channel layout `codec` encodes audio of `layout` in: that one where the encoder opens with
    it, else its side channels as back ones (libopus takes 5.1, not 5.1(side)), else stereo (MP2 takes
    mono and stereo only), else mono; FFmpeg's resampler, which PyAV's encoding runs, maps or mixes
    the channels down."""
    tries = [layout, layout.replace("(side)", "")] if "(side)" in layout else [layout]
    for candidate in (*tries, "stereo", "mono"):
        if av.AudioLayout(candidate).nb_channels > av.AudioLayout(layout).nb_channels:
            continue
        trial = av.CodecContext.create(codec, "w")
        trial.sample_rate, trial.layout = rate, candidate
        if formats := av.Codec(codec, "w").audio_formats:
            trial.format = formats[0].name
        try:
            with av.logging.Capture():
                trial.open()
            return candidate
        except av.FFmpegError:
            continue
    return layout  # let the output's start say why


def _usual_layout(layout: av.AudioLayout) -> str:
    """PCM often has an unordered "N channels" layout, which AAC refuses: use the usual one for N."""
    if not layout.name.endswith("channels"):
        return layout.name
    usual = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
    return usual.get(layout.nb_channels, "stereo")
