"""Outputs from the QA run of pass 9: inputs with attachments, data streams or chapters (which
crashed after all the work), stream tags and chapters (which were dropped), outputs onto devices
and FIFOs (which --overwrite replaced), long UTF-8 names (whose temporary and lock names were cut
by characters), temporary files a killed run left, and side-by-side frames too wide to encode."""

import logging
import os
import stat
import subprocess
import sys
from fractions import Fraction

import av
import numpy as np
import pytest

from tests.media import decode_all, make_clip
from tests.test_run import FakeModel
from vidtrans.atomic import OutputClaim, check_destination, temp_path, write_atomically
from vidtrans.errors import UsageError, VidtransError
from vidtrans.pipeline import render_pose_video, translate_video
from vidtrans.pose import write_keypoints_npz
from vidtrans.video import SourceMedia
from vidtrans.video.writer import check_output
from vidtrans.view import side_by_side, side_by_side_size

SRT = "1\n00:00:00,100 --> 00:00:00,400\nhello\n\n2\n00:00:00,600 --> 00:00:00,900\nworld\n\n"
CHAPTERS = [{"id": 1, "start": 0, "end": 500, "time_base": Fraction(1, 1000), "metadata": {"title": "Intro"}},
            {"id": 2, "start": 500, "end": 1000, "time_base": Fraction(1, 1000), "metadata": {"title": "Main"}}]
FONTS = [("font.ttf", "application/x-truetype-font", bytes(range(100))),
         ("extra.otf", "application/vnd.ms-opentype", b"OTTO" * 10)]


def identity():
    return FakeModel(lambda frames: frames)


def clip_with_extras(path, *, subtitles=False, attachments=(), chapters=False, data=False, frames=25):
    """A 64x48 25 fps clip with an English audio track titled "Commentary", and as asked a French
    forced SRT track, attached files, chapters Intro [0, 0.5 s) and Main [0.5, 1 s), and a
    telemetry-like data stream (MPEG-TS keeps one); the file's title is "My Title"."""
    srt = path.with_name("cues.srt")
    srt.write_text(SRT)
    with av.open(str(srt)) as cues, av.open(str(path), "w") as out:
        out.metadata["title"] = "My Title"
        video = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream("aac", rate=16000)
        audio.layout = "mono"
        audio.metadata.update(language="eng", title="Commentary", NUMBER_OF_FRAMES="999")
        subtitle = None
        if subtitles:
            subtitle = out.add_stream_from_template(cues.streams.subtitles[0])
            subtitle.metadata.update(language="fra", title="French")
            subtitle.disposition = av.stream.Disposition.forced
        for name, mimetype, payload in attachments:
            out.add_attachment(name=name, mimetype=mimetype, data=payload)
        telemetry = out.add_data_stream() if data else None
        if chapters:
            out.set_chapters(CHAPTERS)
        for i in range(frames):
            for packet in video.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 8, np.uint8), "rgb24")):
                out.mux(packet)
            if telemetry is not None:
                packet = av.Packet(b"gyro %d" % i)
                packet.stream, packet.time_base, packet.pts, packet.dts = telemetry, Fraction(1, 25), i, i
                out.mux(packet)
        out.mux(video.encode(None))
        tone = np.sin(np.arange(16000 * frames // 25) * 2 * np.pi * 440 / 16000).astype(np.float32)[None]
        sound = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
        sound.sample_rate, sound.pts = 16000, 0
        out.mux(audio.encode(sound))
        out.mux(audio.encode(None))
        if subtitle is not None:
            for packet in cues.demux(cues.streams.subtitles[0]):
                if packet.size:
                    packet.stream = subtitle
                    out.mux(packet)
    return path


def chapter_spans(path):
    with av.open(str(path)) as container:
        return [(c["metadata"].get("title"), round(float(c["start"] * c["time_base"]), 3),
                 round(float(c["end"] * c["time_base"]), 3)) for c in container.chapters()]


def warnings_of(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def hidden_files(folder):
    return sorted(name for name in os.listdir(folder) if name.startswith("."))


# --- 1: attachments and data streams -----------------------------------------------------------


def test_attachments_go_into_mkv_and_are_left_out_of_mp4_with_one_warning(tmp_path, caplog):
    clip = clip_with_extras(tmp_path / "fonts.mkv", subtitles=True, attachments=FONTS)
    translate_video(clip, tmp_path / "out.mkv", identity())
    with av.open(str(tmp_path / "out.mkv")) as out:
        kept = [(s.name, s.mimetype, bytes(s.data)) for s in out.streams if s.type == "attachment"]
    assert kept == FONTS
    with caplog.at_level(logging.WARNING):
        summary = translate_video(clip, tmp_path / "out.mp4", identity())
    assert summary.frames == 25 and len(decode_all(tmp_path / "out.mp4")[0]) == 25
    left_out = [w for w in warnings_of(caplog) if "attached" in w]
    assert left_out == [f"{clip}: its 2 attached files (font.ttf, extra.otf) cannot go into a .mp4 file and are "
                        "left out; a Matroska (.mkv) file keeps them"]


def test_a_data_stream_is_left_out_with_one_warning(tmp_path, caplog):
    clip = clip_with_extras(tmp_path / "gopro.ts", data=True)
    with caplog.at_level(logging.WARNING):
        summary = translate_video(clip, tmp_path / "out.mp4", identity())
    assert summary.frames == 25
    assert [w for w in warnings_of(caplog) if "data stream" in w] == [
        f"{clip}: its 1 data stream (timecode, camera telemetry or the like) is left out; vidtrans copies audio, "
        "subtitles, attachments and chapters only"]
    with av.open(str(tmp_path / "out.mp4")) as out:
        assert [s.type for s in out.streams] == ["video", "audio"]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_an_mp4_chapter_track_comes_as_chapters_without_a_warning(tmp_path, caplog, suffix):
    clip = clip_with_extras(tmp_path / "chapters.mp4", chapters=True)
    with av.open(str(clip)) as source:
        assert [s.type for s in source.streams] == ["video", "audio", "data"]  # the chapter text track
    with caplog.at_level(logging.WARNING):
        translate_video(clip, tmp_path / f"out{suffix}", identity())
    assert warnings_of(caplog) == []
    assert chapter_spans(tmp_path / f"out{suffix}") == [("Intro", 0.0, 0.5), ("Main", 0.5, 1.0)]


def test_pose_and_the_command_line_take_such_inputs(tmp_path, cli, rgb_model_dir):
    clip = clip_with_extras(tmp_path / "fonts.mkv", attachments=FONTS[:1], frames=6)
    summary = render_pose_video(clip, tmp_path / "pose.mp4")
    assert summary.frames == 6
    result = cli("run", clip, "-o", tmp_path / "run.mp4", "--model", rgb_model_dir, "--device", "cpu")
    assert result.returncode == 0 and result.exception is None, result.stderr
    assert "Traceback" not in result.stderr


def test_the_check_before_any_work_sets_up_the_copied_streams(tmp_path):
    """check_output runs the writer's own set-up into memory: every input the writer takes, it
    passes, and it makes no file."""
    clip = clip_with_extras(tmp_path / "all.mkv", subtitles=True, attachments=FONTS, chapters=True)
    for name in ("o.mp4", "o.mkv", "o.mov", "o.avi"):
        check_output(tmp_path / name, 64, 48, Fraction(1, 1000), 25.0, source=SourceMedia(clip))
    assert sorted(os.listdir(tmp_path)) == ["all.mkv", "cues.srt"]


# --- 8: stream tags, the file's tags and chapters ----------------------------------------------


def test_tracks_keep_their_language_title_and_disposition(tmp_path):
    clip = clip_with_extras(tmp_path / "tagged.mkv", subtitles=True, chapters=True)
    translate_video(clip, tmp_path / "out.mkv", identity())
    with av.open(str(tmp_path / "out.mkv")) as out:
        audio, subtitle = out.streams.audio[0], out.streams.subtitles[0]
        assert (audio.metadata.get("language"), audio.metadata.get("title")) == ("eng", "Commentary")
        assert (subtitle.metadata.get("language"), subtitle.metadata.get("title")) == ("fra", "French")
        assert subtitle.disposition & av.stream.Disposition.forced
        assert "NUMBER_OF_FRAMES" not in audio.metadata  # describes the source's bytes, not the output's
        assert out.metadata.get("title") == "My Title"
    assert chapter_spans(tmp_path / "out.mkv") == [("Intro", 0.0, 0.5), ("Main", 0.5, 1.0)]
    translate_video(clip, tmp_path / "out.mp4", identity())
    with av.open(str(tmp_path / "out.mp4")) as out:
        assert out.streams.audio[0].metadata.get("language") == "eng" and out.metadata.get("title") == "My Title"
    assert chapter_spans(tmp_path / "out.mp4") == [("Intro", 0.0, 0.5), ("Main", 0.5, 1.0)]


@pytest.mark.parametrize("start, end, expected", [
    (0.6, None, [("Main", 0.0, 0.4)]),
    (0.2, 0.7, [("Intro", 0.0, 0.3), ("Main", 0.3, 0.5)]),
    (None, 0.4, [("Intro", 0.0, 0.4)]),
])
def test_chapters_are_cut_and_shifted_with_start_and_end(tmp_path, start, end, expected):
    clip = clip_with_extras(tmp_path / "chapters.mkv", chapters=True)
    translate_video(clip, tmp_path / "out.mkv", identity(), start=start, end=end)
    assert chapter_spans(tmp_path / "out.mkv") == expected


def test_a_container_without_chapters_says_they_are_left_out(tmp_path, caplog):
    clip = clip_with_extras(tmp_path / "chapters.mkv", chapters=True)
    with caplog.at_level(logging.WARNING):
        translate_video(clip, tmp_path / "out.avi", identity())
    assert warnings_of(caplog) == [f"{clip}: its 2 chapters cannot go into a .avi file and are left out; a .mkv, "
                                   ".mp4 or .mov file keeps them"]


def test_the_subtitle_warning_names_the_container_not_a_flag(tmp_path, caplog):
    """batch's flag is --ext mkv and run's is -o NAME.mkv: the warning names the container."""
    clip = clip_with_extras(tmp_path / "subs.mkv", subtitles=True)
    with caplog.at_level(logging.WARNING):
        translate_video(clip, tmp_path / "out.avi", identity())
    assert warnings_of(caplog) == [f"{clip}: its subrip subtitle track cannot go into a .avi file and is left out; "
                                   "a Matroska (.mkv) file keeps it"]


# --- 2: devices, FIFOs and sockets ---------------------------------------------------------------


def special_files(tmp_path):
    fifo = tmp_path / "out.fifo.mp4"
    os.mkfifo(fifo)
    link_to_fifo = tmp_path / "link.mp4"
    link_to_fifo.symlink_to(fifo)
    link_to_null = tmp_path / "null.json"
    link_to_null.symlink_to(os.devnull)  # as /dev/stdout is a link to a terminal or a pipe
    found = {fifo: "a FIFO", link_to_fifo: "a symlink to a FIFO", link_to_null: "a symlink to a character device"}
    try:
        os.mknod(tmp_path / "devnull.mp4", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        found[tmp_path / "devnull.mp4"] = "a character device"
    except PermissionError:
        pass  # not root: the links above stand for it
    return found


def test_a_device_fifo_or_link_to_one_is_never_replaced(tmp_path):
    for path, kind in special_files(tmp_path).items():
        for overwrite in (False, True):
            with pytest.raises(UsageError, match=f"^{path}: is {kind}, which vidtrans never replaces") as refused:
                check_destination(path, None, overwrite=overwrite)
            assert "\n" not in str(refused.value)
        with pytest.raises(UsageError):
            write_atomically(path, lambda f: f.write(b"{}"), overwrite=True)
    assert stat.S_ISFIFO(os.stat(tmp_path / "out.fifo.mp4").st_mode)
    dangling = tmp_path / "dangling.mp4"
    dangling.symlink_to(tmp_path / "nowhere.mp4")
    check_destination(dangling, None, overwrite=True)  # a link to nothing is replaced as before


def test_a_link_to_an_open_file_such_as_dev_stdout_is_never_replaced(tmp_path):
    """/dev/stdout links to /proc/self/fd/1, which is a regular file when standard output is
    redirected to one: renaming onto it would replace /dev/stdout itself (as root)."""
    with open(tmp_path / "redirected.txt", "w") as stdout_file:
        link = tmp_path / "stats.json"
        link.symlink_to(f"/proc/self/fd/{stdout_file.fileno()}")
        for path in (link, f"/proc/self/fd/{stdout_file.fileno()}", f"/dev/fd/{stdout_file.fileno()}"):
            with pytest.raises(UsageError, match=r": is a link to a process's open file \(as /dev/stdout is\)"):
                check_destination(path, None, overwrite=True)
    with pytest.raises(UsageError):
        check_destination("/dev/stdout", None, overwrite=True)  # whatever standard output is here


def test_run_onto_a_fifo_with_overwrite_exits_2_with_one_line(tmp_path, cli, rgb_model_dir):
    clip = make_clip(tmp_path / "in.mp4", frames=3).path
    fifo = tmp_path / "out.mp4"
    os.mkfifo(fifo)
    result = cli("run", clip, "-o", fifo, "--model", rgb_model_dir, "--device", "cpu", "--overwrite")
    assert result.returncode == 2 and result.exception is None
    assert result.stderr.strip().splitlines() == [f"vidtrans: error: {fifo}: is a FIFO, which vidtrans never "
                                                  "replaces (outputs are renamed into place whole); give the name "
                                                  "of a regular file"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and hidden_files(tmp_path) == []


# --- 7: long UTF-8 names -------------------------------------------------------------------------


def test_a_long_utf8_name_is_written(tmp_path):
    name = "舞" * 80 + ".mp4"  # 244 bytes: a valid name, though its lock name cut at 200 characters is not
    clip = make_clip(tmp_path / name, frames=3).path
    (tmp_path / "out").mkdir()
    translate_video(clip, tmp_path / "out" / name, identity())
    assert os.listdir(tmp_path / "out") == [name]
    for hidden in (temp_path(tmp_path / "out" / name), OutputClaim(tmp_path / "out" / name).path):
        assert len(os.fsencode(hidden.name)) <= 255
    assert temp_path(tmp_path / "out" / name).suffix == ".mp4"


def test_names_sharing_a_long_beginning_get_their_own_locks(tmp_path):
    shared = "x" * 210
    one, two = OutputClaim(tmp_path / f"{shared}_one.mp4"), OutputClaim(tmp_path / f"{shared}_two.mp4")
    assert one.path != two.path
    same = "舞" * 60
    three, four = OutputClaim(tmp_path / f"{same}a.mp4"), OutputClaim(tmp_path / f"{same}b.mp4")
    assert three.path != four.path
    for claim in (one, two, three, four):
        claim.release()
    assert hidden_files(tmp_path) == []


# --- 10: temporary files a killed run left -------------------------------------------------------


def test_a_claim_removes_what_a_killed_writer_of_the_same_output_left(tmp_path):
    out = tmp_path / "out.mp4"
    killed = subprocess.run(
        [sys.executable, "-c", "import os, sys; from vidtrans.atomic import OutputClaim, temp_path; "
         "OutputClaim(sys.argv[1]); open(temp_path(sys.argv[1]), 'wb').write(b'frames'); "
         "os.kill(os.getpid(), 9)", str(out)], cwd=os.path.dirname(os.path.dirname(__file__)))
    assert killed.returncode == -9
    left = hidden_files(tmp_path)
    assert len(left) == 2 and any(".out.partial-" in name for name in left)
    # A pose video's writer writes into a temporary of the temporary; others' files stay.
    (tmp_path / "..out.partial-0123abcd.partial-89abcdef.mp4").write_bytes(b"nested")
    (tmp_path / ".out.partial-0123abcd.mp4").write_bytes(b"")
    others = [".other.partial-0123abcd.mp4", ".out.partial-0123abcd.mkv", ".out.partial-notours.mp4"]
    for name in others:
        (tmp_path / name).write_bytes(b"not this output's")
    clip = make_clip(tmp_path / "in.mp4", frames=3).path
    translate_video(clip, out, identity())
    assert hidden_files(tmp_path) == sorted(others)


# --- 11: side-by-side frames ----------------------------------------------------------------------


def test_a_short_panel_is_enlarged_at_most_twice_and_centred():
    small = np.full((48, 64, 3), 200, np.uint8)
    nearly = np.full((240, 320, 3), 150, np.uint8)
    tall = np.full((512, 256, 3), 100, np.uint8)
    output = np.full((256, 256, 3), 50, np.uint8)
    joined = side_by_side([small, nearly, tall, output])
    # 64x48 -> 128x96 (not 341x256), 320x240 -> 341x256, 256x512 -> 128x256.
    sizes = [(48, 64), (240, 320), (512, 256), (256, 256)]
    assert joined.shape == (256, 128 + 341 + 128 + 256, 3) == (*side_by_side_size(sizes), 3)
    assert (joined[80:176, :128] == 200).all() and (joined[:80, :128] == 0).all() and (joined[176:, :128] == 0).all()
    assert (joined[:, 128:469] == 150).all() and (joined[:, 469:597] == 100).all() and (joined[:, 597:] == 50).all()


def test_a_small_input_beside_a_pose_model_keeps_its_size(tmp_path, pose_model):
    clip = make_clip(tmp_path / "wide.mp4", frames=3, size=(96, 16)).path
    keypoints = tmp_path / "kp.npz"
    write_keypoints_npz(keypoints, np.zeros((3, 18, 3), np.float32), 96, 16)
    translate_video(clip, tmp_path / "out.mp4", pose_model, keypoints=keypoints, normalize=False, side_by_side=True)
    images, _ = decode_all(tmp_path / "out.mp4")
    assert images[0].shape[:2] == (64, 192 + 64 + 64)  # input 96x16 at most doubled | pose map | output


def test_frames_too_wide_to_encode_are_refused_before_any_work(tmp_path):
    clip = make_clip(tmp_path / "strip.mp4", frames=2, size=(8200, 16), audio=False).path
    calls = []
    model = FakeModel(lambda frames: calls.append(len(frames)) or frames)
    with pytest.raises(VidtransError) as refused:
        translate_video(clip, tmp_path / "out.mp4", model, side_by_side=True)
    message = str(refused.value)
    assert message.startswith(f"{tmp_path / 'out.mp4'}: libx264 cannot encode frames of 16400x16")
    assert "side_by_side" in message and "--crf" not in message and "\n" not in message
    assert calls == [] and sorted(os.listdir(tmp_path)) == ["strip.mp4"]
