"""Session 21's own finds: names holding emoji codes are shown as they are; a pose video's errors name it."""

import os
import subprocess
import sys

from tests.media import make_clip


def test_an_output_named_with_an_emoji_code_is_named_as_it_is(cli, rgb_model_dir, tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=3, size=(64, 48), audio=False).path
    out = tmp_path / ":x: take.mp4"
    result = cli("run", clip, "-o", out, "--model", rgb_model_dir, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert f"-> {out}" in result.stderr and "\u274c" not in result.stderr, result.stderr


def _file_size_limit(limit: int):
    def apply() -> None:
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_pose_on_a_full_disk_names_its_output_not_a_temporary_file(tmp_path):
    # The pose video is written into a temporary file published with the keypoints: its writer's
    # messages named that hidden file (".pose.partial-6fe8cdf9.mp4: could not finish the video").
    clip = make_clip(tmp_path / "in.mp4", frames=30, size=(320, 240), audio=False).path
    out = tmp_path / "pose.mp4"
    result = subprocess.run([sys.executable, "-m", "vidtrans", "pose", clip, "-o", out, "--keypoints",
                             tmp_path / "kp.npz"], stderr=subprocess.PIPE, text=True,
                            preexec_fn=_file_size_limit(1_500))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"vidtrans: error: {out}: ") and "partial" not in lines[0], lines
    assert "File too large" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_other_libraries_log_lines_stay_off_stderr(tmp_path):
    # mediapipe imports matplotlib, which logged two bare lines on every run where its cache folder
    # cannot be made (a read-only HOME in a container).
    clip = make_clip(tmp_path / "in.mp4", frames=3, size=(64, 48), audio=False).path
    env = {**os.environ, "MPLCONFIGDIR": "/proc/vidtrans-no-such-folder"}
    result = subprocess.run([sys.executable, "-m", "vidtrans", "pose", clip, "-o", tmp_path / "pose.mp4"],
                            stderr=subprocess.PIPE, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert all(line.startswith("vidtrans: warning: ") or " -> " in line for line in result.stderr.splitlines()), \
        result.stderr


def test_an_empty_file_is_called_empty(cli, rgb_model_dir, tmp_path):
    clip = tmp_path / "in.mp4"
    clip.touch()
    result = cli("run", clip, "-o", tmp_path / "out.mp4", "--model", rgb_model_dir)
    assert result.returncode == 1
    assert result.stderr.strip() == (f"vidtrans: error: {clip}: is empty (0 bytes), not a video; pass the video "
                                     "once it is copied whole"), result.stderr


def test_an_input_folder_named_like_an_option_is_told_how_to_give_it(cli, tmp_path, monkeypatch):
    (tmp_path / "-in").mkdir()
    monkeypatch.chdir(tmp_path)
    result = cli("batch", "-in", "-o", "out")
    assert result.returncode == 2
    assert "-in is a folder: give it as ./-in" in result.stderr, result.stderr


def test_batch_refuses_an_unknown_precision_before_any_work(tmp_path, rgb_model_dir):
    import pytest

    from vidtrans.batch import BatchUsageError, translate_folder

    (tmp_path / "in").mkdir()
    make_clip(tmp_path / "in" / "a.mp4", frames=2, size=(64, 48), audio=False)
    with pytest.raises(BatchUsageError, match="unknown precision 'fp8'; use one of auto, fp32, fp16, bf16"):
        translate_folder(tmp_path / "in", tmp_path / "out", rgb_model_dir, precision="fp8")
    assert not (tmp_path / "out").exists()


def test_openpose_json_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    import json

    import numpy as np
    import pytest

    from vidtrans.errors import VidtransError
    from vidtrans.pose import files
    from vidtrans.pose.keypoints import NUM_KEYPOINTS

    track = np.zeros((5, NUM_KEYPOINTS, 3), np.float32)
    track[:, :, :2], track[:, :, 2] = 10.0, 1.0
    folder = tmp_path / "op"
    dumps = json.dumps

    def full_disk_at_the_fourth(value):
        if len(calls := full_disk_at_the_fourth.calls) == 3:
            raise OSError(28, "No space left on device")
        calls.append(1)
        return dumps(value)

    full_disk_at_the_fourth.calls = []
    monkeypatch.setattr(files.json, "dumps", full_disk_at_the_fourth)
    with pytest.raises(VidtransError, match="No space left on device"):
        files.write_openpose_json(folder, track)
    assert not folder.exists()  # made for the files, gone with them
    monkeypatch.setattr(files.json, "dumps", dumps)
    files.write_openpose_json(folder, track)
    assert len(list(folder.iterdir())) == 5


def test_a_one_frame_run_says_why_it_has_no_flicker(cli, rgb_model_dir, tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=1, size=(64, 48), audio=False).path
    result = cli("run", clip, "-o", tmp_path / "out.mp4", "--model", rgb_model_dir, "--smooth", "ema")
    assert result.returncode == 0, result.stderr
    assert "flicker n/a (one frame)" in result.stderr, result.stderr
