"""QA round 26 on the Python API: paths a notebook user hands in are taken or refused as the command
line takes or refuses them, in one line of the project's error type, before any work, with nothing
written: the keypoints' output file written as a folder's (a trailing slash, which a Path dropped:
the file was written under the name without it), an input file's name with a trailing slash (read
as the file), a URL as the input, the output or the model (which a Path turned into a local
https:/host/... that was "not found"), and an os.PathLike whose path is bytes (a TypeError from
pathlib); a progress callback whose calls do not run it (an async or generator function: no
progress, a warning per batch)."""

from __future__ import annotations

import os
import re

import pytest

import vidtrans
from tests.media import make_clip
from vidtrans.errors import UsageError, VidtransError


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("media") / "clip.mp4", frames=6, size=(64, 48), audio=False).path


class _BytesPath:
    """An os.PathLike whose path is bytes, as os.fspath allows."""

    def __init__(self, path):
        self.path = os.fsencode(path)

    def __fspath__(self):
        return self.path


def test_keypoints_out_written_as_a_folder_is_refused_and_nothing_is_written(tmp_path, clip):
    given = f"{tmp_path / 'k.npz'}/"
    with pytest.raises(UsageError, match=r"k\.npz/: ends with a slash, which names a folder; give the output "
                                         r"file's name without the trailing slash \(.*k\.npz\)$"):
        vidtrans.render_pose_video(clip, tmp_path / "pose.mp4", keypoints_out=given)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argument", ["src", "keypoints", "model", "pose src", "load_model"])
def test_an_input_file_named_with_a_trailing_slash_is_refused_as_the_command_line_refuses_it(tmp_path, clip,
                                                                                              rgb_model_dir, argument):
    # A Path dropped the slash, and the file was read.
    keypoints = tmp_path / "k.npz"
    keypoints.write_bytes(b"")
    weights = rgb_model_dir / "model.safetensors"
    given = {"keypoints": keypoints, "model": weights, "load_model": weights}.get(argument, clip)
    calls = {"src": lambda: vidtrans.translate_video(f"{clip}/", tmp_path / "out.mp4", rgb_model_dir),
             "keypoints": lambda: vidtrans.translate_video(clip, tmp_path / "out.mp4", rgb_model_dir,
                                                           keypoints=f"{keypoints}/"),
             "model": lambda: vidtrans.translate_video(clip, tmp_path / "out.mp4", f"{weights}/"),
             "pose src": lambda: vidtrans.render_pose_video(f"{clip}/", tmp_path / "out.mp4"),
             "load_model": lambda: vidtrans.load_model(f"{weights}/")}
    with pytest.raises(VidtransError, match=rf"{re.escape(given.name)}/: is a file, not a folder; drop the trailing "
                                            rf"slash \(.*{re.escape(given.name)}\)$"):
        calls[argument]()
    assert list(tmp_path.iterdir()) == [keypoints]


@pytest.mark.parametrize("argument", ["src", "dst", "model", "pose src", "pose dst", "keypoints_out", "load_model"])
def test_a_url_given_as_a_path_is_named_as_given_and_refused_as_no_local_file(tmp_path, clip, rgb_model_dir,
                                                                              argument):
    # A Path made https://example.com/a/b of it: "https:/example.com/a/b: file not found" (or "folder
    # https:/example.com/a does not exist", "no such file or folder"), a name nobody typed.
    url = "https://example.com/clips/b"
    calls = {"src": lambda: vidtrans.translate_video(url, tmp_path / "out.mp4", rgb_model_dir),
             "dst": lambda: vidtrans.translate_video(clip, url, rgb_model_dir),
             "model": lambda: vidtrans.translate_video(clip, tmp_path / "out.mp4", url),
             "pose src": lambda: vidtrans.render_pose_video(url, tmp_path / "out.mp4"),
             "pose dst": lambda: vidtrans.render_pose_video(clip, url),
             "keypoints_out": lambda: vidtrans.render_pose_video(clip, tmp_path / "out.mp4", keypoints_out=url),
             "load_model": lambda: vidtrans.load_model(url)}
    with pytest.raises(VidtransError, match=r"^https://example\.com/clips/b: is a URL, and vidtrans works on local "
                                            r"files only"):
        calls[argument]()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argument", ["src", "dst", "keypoints", "keypoints_out"])
def test_a_path_like_whose_path_is_bytes_is_refused_in_one_line(tmp_path, clip, rgb_model_dir, argument):
    paths = {"src": clip, "dst": tmp_path / "out.mp4", "keypoints": tmp_path / "k.npz",
             "keypoints_out": tmp_path / "k.npz"}
    paths[argument] = _BytesPath(paths[argument])
    with pytest.raises(UsageError, match=rf"^{argument} must be a file path \(a str or os\.PathLike\), not "
                                         r"_BytesPath whose path is bytes \(b'.*\)$"):
        if argument == "keypoints_out":
            vidtrans.render_pose_video(paths["src"], paths["dst"], keypoints_out=paths["keypoints_out"])
        else:
            vidtrans.translate_video(paths["src"], paths["dst"], rgb_model_dir, keypoints=paths["keypoints"]
                                     if argument == "keypoints" else None)
    assert list(tmp_path.iterdir()) == []


async def _async_progress(done, total, what):
    pass


def _generator_progress(done, total, what):
    yield done


class _AsyncCallable:
    async def __call__(self, done, total, what):
        pass


@pytest.mark.parametrize("call", ["translate_video", "render_pose_video"])
@pytest.mark.parametrize("progress", [_async_progress, _generator_progress, _AsyncCallable()],
                         ids=["async def", "generator", "async __call__"])
def test_a_progress_callback_whose_calls_would_not_run_it_is_refused_before_any_work(tmp_path, clip, rgb_model_dir,
                                                                                     call, progress):
    # Calling it made a coroutine nothing awaited: no progress at all, a RuntimeWarning per batch.
    with pytest.raises(UsageError, match=r"^progress must be a plain function called with \(done, total, what\), "
                                         r"not .*: calling an async or generator function does not run it$"):
        if call == "translate_video":
            vidtrans.translate_video(clip, tmp_path / "out.mp4", rgb_model_dir, progress=progress)
        else:
            vidtrans.render_pose_video(clip, tmp_path / "out.mp4", progress=progress)
    assert list(tmp_path.iterdir()) == []
