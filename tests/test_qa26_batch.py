"""QA pass 26, `batch` as users have their folders: a report asked for as CSV, clips of video
formats the default patterns do not take (camera .mxf, DVD .vob) left out without a word, pose-map
videos among a pose model's clips, which the report did not tell from the others, and a container
only some clips have that cannot hold the video, whose advice a batch could not follow."""

import csv
import json

import pytest

from tests.conftest import one_line
from tests.media import dancer_clip, make_clip
from tests.test_batch import FAST
from vidtrans import render_pose_video
from vidtrans.batch import BatchUsageError, read_manifest, translate_folder


@pytest.fixture
def mixed_clips(tmp_path):
    """A clip, a broken one, and a clip whose name holds a comma, a quote and a newline."""
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "a.mp4", frames=3, audio=False)
    make_clip(src / 'b, "take\n2".mp4', frames=2, audio=False)
    (src / "broken.mp4").write_bytes(b"not a video")
    return src


def test_a_report_named_csv_is_a_csv_table_of_the_clips(mixed_clips, tmp_path, rgb_model_dir, cli):
    """`--report report.csv` wrote JSON into the .csv file, which a spreadsheet shows as one column of
    braces; it is a table now: a header row and a row per clip with the JSON report's fields."""
    report = tmp_path / "report.csv"
    result = cli("batch", mixed_clips, "-o", tmp_path / "out", "--model", rgb_model_dir, "--preset", "ultrafast",
                 "--report", report)
    assert result.returncode == 1 and result.exception is None, result.stderr
    with open(report, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["input", "output", "status", "frames", "seconds", "fps", "error",
                             "frames_without_person", "warning", "corrupt_frames", "pose"]
    by_input = {row["input"]: row for row in rows}
    assert sorted(by_input) == sorted(str(p) for p in mixed_clips.iterdir())
    named = by_input[str(mixed_clips / 'b, "take\n2".mp4')]
    assert (named["status"], named["frames"], named["error"], named["warning"]) == ("done", "2", "", "")
    assert named["output"] == str(tmp_path / "out" / 'b, "take\n2".mp4')
    broken = by_input[str(mixed_clips / "broken.mp4")]
    assert broken["status"] == "failed" and broken["error"].startswith(f"{mixed_clips / 'broken.mp4'}: ")
    # A rerun replaces its own CSV report without --overwrite, as it does a JSON one.
    rerun = cli("batch", mixed_clips, "-o", tmp_path / "out", "--model", rgb_model_dir, "--preset", "ultrafast",
                "--report", report)
    assert rerun.returncode == 1 and rerun.exception is None, rerun.stderr
    with open(report, newline="", encoding="utf-8") as f:
        assert {row["input"]: row["status"] for row in csv.DictReader(f)}[str(mixed_clips / "a.mp4")] == "skipped"


def test_other_names_keep_the_json_report_and_a_users_csv_is_kept(mixed_clips, tmp_path, rgb_model_dir):
    report = tmp_path / "report.json"
    translate_folder(mixed_clips, tmp_path / "out", rgb_model_dir, report=report, **FAST)
    assert json.loads(report.read_text())["totals"]["done"] == 2
    theirs = tmp_path / "sheet.CSV"
    theirs.write_text("name,score\nalice,3\n")
    with pytest.raises(BatchUsageError, match="already exists and is not a batch report"):
        translate_folder(mixed_clips, tmp_path / "out", rgb_model_dir, report=theirs, **FAST)
    assert theirs.read_text() == "name,score\nalice,3\n"


@pytest.fixture
def camera_folder(tmp_path):
    """A clip the default patterns take, and files of formats they do not (their content does not matter)."""
    src = tmp_path / "in"
    (src / "card").mkdir(parents=True)
    make_clip(src / "phone.mp4", frames=2, audio=False)
    for name in ("card/C0001.MXF", "card/C0002.MXF", "VTS_01_1.VOB", "notes.txt"):
        (src / name).write_bytes(b"\0" * 64)
    return src


def test_video_files_the_default_patterns_leave_out_are_named(camera_folder, tmp_path, rgb_model_dir, cli):
    """A folder of phone clips and a camera's .MXF files: the batch translated the phone clip, said
    nothing of the others, and ended with exit 0, as if every video had been translated."""
    result = cli("batch", camera_folder, "-o", tmp_path / "out", "--model", rgb_model_dir, "--preset", "ultrafast")
    assert result.returncode == 0 and result.exception is None, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("vidtrans: warning: ")]
    assert warnings == [f"vidtrans: warning: {camera_folder}: 3 files of video formats the default patterns do not "
                        "take (2 .mxf, 1 .vob) left out; to translate them, name every pattern wanted, e.g. "
                        "--pattern '*.mp4' --pattern '*.mxf' --pattern '*.vob'"], result.stderr
    # Patterns the user chose leave out what they leave out, without a warning.
    chosen = cli("batch", camera_folder, "-o", tmp_path / "out2", "--model", rgb_model_dir, "--preset", "ultrafast",
                 "--pattern", "*.mp4")
    assert chosen.returncode == 0 and "warning" not in chosen.stderr, chosen.stderr


def test_a_folder_of_such_files_alone_says_which_patterns_take_them(camera_folder, tmp_path, rgb_model_dir, cli):
    (camera_folder / "phone.mp4").unlink()
    result = cli("batch", camera_folder, "-o", tmp_path / "out", "--model", rgb_model_dir)
    assert one_line(result, 2) == (f"vidtrans: error: {camera_folder}: no clips matching the default patterns; 3 files "
                                   "of video formats the default patterns do not take (2 .mxf, 1 .vob) left out; to "
                                   "translate them, name every pattern wanted, e.g. --pattern '*.mxf' --pattern '*.vob'")
    assert not (tmp_path / "out").exists()
    with pytest.raises(BatchUsageError, match=r"e\.g\. patterns=\['\*\.mxf', '\*\.vob'\]$"):
        translate_folder(camera_folder, tmp_path / "out", rgb_model_dir)


def test_a_pose_model_s_rows_say_how_each_clip_s_poses_were_had(tmp_path, pose_model_dir, cli):
    """A pose-map video among the clips is translated as pose maps, without detection, as `run` does;
    `run` says so ("pose: input is pose maps"), the batch said nothing, in the log or the report, so
    a clip taken for pose maps by mistake could not be found. Now each row has run's `pose`, kept
    for the clip's skipped rows, and the log line says it."""
    src = tmp_path / "in"
    src.mkdir()
    dancer_clip(src / "dancer.mp4", frames=4, size=(128, 128))
    render_pose_video(src / "dancer.mp4", src / "dancer_pose.mp4", preset="ultrafast")
    report = tmp_path / "report.json"
    result = cli("batch", src, "-o", tmp_path / "out", "--model", pose_model_dir, "--preset", "ultrafast",
                 "--report", report)
    assert result.returncode == 0 and result.exception is None, result.stderr
    assert f"done {src / 'dancer_pose.mp4'}: 4 frames in " in result.stderr
    assert "; pose: input is pose maps\n" in result.stderr
    poses = {row["input"]: row["pose"] for row in json.loads(report.read_text())["clips"]}
    assert poses[str(src / "dancer_pose.mp4")] == "input is pose maps"
    assert poses[str(src / "dancer.mp4")].startswith("detected")
    assert read_manifest(tmp_path / "out")["dancer_pose.mp4"]["pose"] == "input is pose maps"
    again = translate_folder(src, tmp_path / "out", pose_model_dir, preset="ultrafast")
    assert {c.status for c in again.clips} == {"skipped"}
    assert {c.input: c.pose for c in again.clips} == poses


def test_rgb_models_rows_have_no_pose(tmp_path, rgb_model_dir):
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "a.mp4", frames=2, audio=False)
    (row,) = translate_folder(src, tmp_path / "out", rgb_model_dir, **FAST).clips
    assert row.status == "done" and row.to_dict()["pose"] is None


def test_a_container_some_clips_have_that_cannot_hold_the_video_says_how_a_batch_changes_it(tmp_path, rgb_model_dir,
                                                                                              cli):
    """A folder of phone clips and a screen recording in .webm: the .webm clip failed with the
    writer's advice for `run` ("another extension such as .mkv"), which a batch cannot follow (its
    outputs are named as their clips); it names --ext now, and fails before any work on the clip."""
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "a.mp4", frames=2, audio=False)
    make_clip(src / "b.webm", frames=2, audio=False, codec="libvpx-vp9")
    (src / "c.ogv").write_bytes(b"not even a video")
    result = cli("batch", src, "-o", tmp_path / "out", "--model", rgb_model_dir, "--preset", "ultrafast")
    assert result.returncode == 1 and result.exception is None, result.stderr
    assert (f"failed {src / 'b.webm'}: {tmp_path / 'out' / 'b.webm'}: a .webm file cannot hold libx264 video; use the "
            "codec libvpx-vp9 or libsvtav1, or another extension such as .mkv (for batch: --ext mkv)\n") in result.stderr
    assert (f"failed {src / 'c.ogv'}: {tmp_path / 'out' / 'c.ogv'}: a .ogv file cannot hold libx264 video; use the "
            "codec libvpx, or another extension such as .mkv (for batch: --ext mkv)\n") in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".vidtrans-batch.jsonl", "a.mp4"]
    report = translate_folder(src, tmp_path / "out", rgb_model_dir, **FAST)
    assert [(c.error or "").endswith("(for batch: ext='mkv')") for c in report.clips] == [False, True, True]
    # Following the advice translates the clip.
    fixed = translate_folder(src, tmp_path / "out", rgb_model_dir, ext="mkv", patterns=["*.webm"], **FAST)
    assert [c.status for c in fixed.clips] == ["done"]


def test_the_patterns_suggested_keep_the_kinds_of_clips_found(camera_folder, tmp_path, rgb_model_dir, cli):
    # The suggestion always began with '*.mp4': in a folder of .mov clips, following it dropped them.
    (camera_folder / "phone.mp4").rename(camera_folder / "phone.MOV")
    result = cli("batch", camera_folder, "-o", tmp_path / "out", "--model", rgb_model_dir, "--preset", "ultrafast")
    assert result.returncode == 0, result.stderr
    assert "e.g. --pattern '*.mov' --pattern '*.mxf' --pattern '*.vob'" in result.stderr, result.stderr
