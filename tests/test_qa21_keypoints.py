"""Keypoint files (QA 21): an NPZ or folder far longer than the clip refused before it is read whole,
ControlNet frames on canvases of different sizes, a normalised file of height 0, messages that quote
a huge or deeply nested entry, and OpenPose folders written over the files of another clip."""

import io
import json
import zipfile

import numpy as np
import pytest

from tests.media import make_clip
from vidtrans.errors import VidtransError
from vidtrans.pose import read_keypoints, write_openpose_json
from vidtrans.pose.keypoints import NUM_KEYPOINTS
from vidtrans.pose.track import keypoints_for
from vidtrans.video import VideoReader

WIDTH, HEIGHT, FRAMES = 64, 48, 6


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", frames=FRAMES, size=(WIDTH, HEIGHT),
                     audio=False).path


def body(scale: float = 1.0) -> np.ndarray:
    """A COCO-18 body in a WIDTH x HEIGHT frame, its coordinates times `scale` (a canvas that size)."""
    rng = np.random.default_rng(0)
    points = np.column_stack([rng.uniform(20, 44, NUM_KEYPOINTS), rng.uniform(6, 42, NUM_KEYPOINTS),
                              np.full(NUM_KEYPOINTS, 0.9)])
    return points * [scale, scale, 1]


def person(points: np.ndarray) -> dict:
    return {"pose_keypoints_2d": [float(v) for v in points.reshape(-1)]}


def message(call, *args) -> str:
    with pytest.raises(VidtransError) as info:
        call(*args)
    text = str(info.value)
    assert "\n" not in text, text
    return text


def read_for_clip(path, clip):
    with VideoReader(clip) as reader:
        return keypoints_for(path, clip, reader)


# ---------------------------------------------------------------- files far longer than the clip

def declared_npz(path, frames: int, shape: tuple[int, ...] | None = None):
    """An NPZ whose keypoints say they hold `frames` frames (gigabytes; or another `shape`) but hold a
    few bytes: what a compressed archive of that many zeros costs nothing to declare and all of it to
    inflate."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": shape or (frames, NUM_KEYPOINTS, 3)})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("keypoints.npy", header.getvalue() + bytes(64))
        for name, value in (("width", WIDTH), ("height", HEIGHT)):
            number = io.BytesIO()
            np.save(number, np.int64(value))
            archive.writestr(f"{name}.npy", number.getvalue())
    return path


def test_an_npz_of_millions_of_frames_is_refused_for_the_clip_before_its_keypoints_are_read(tmp_path, clip,
                                                                                             monkeypatch):
    path = declared_npz(tmp_path / "long.npz", 10_000_000)
    read_array = np.lib.format.read_array
    reads = []
    monkeypatch.setattr(np.lib.format, "read_array", lambda *a, **k: reads.append(1) or read_array(*a, **k))
    text = message(read_for_clip, path, clip)
    assert "10000000 frames of keypoints" in text and f"has only {FRAMES}" in text, text
    assert "from another clip" in text
    # Width and height are read; the 2 GB of keypoints never are.
    assert len(reads) <= 2


def test_an_openpose_folder_of_more_files_than_the_clip_has_frames_is_refused_before_they_are_read(tmp_path, clip,
                                                                                                 monkeypatch):
    folder = tmp_path / "op"
    folder.mkdir()
    for i in range(FRAMES + 3):
        (folder / f"clip_{i:012d}_keypoints.json").write_text(json.dumps({"people": [person(body())]}))
    import vidtrans.pose.files as files

    loads = []
    load_json = files._load_json
    monkeypatch.setattr(files, "_load_json", lambda path: loads.append(path) or load_json(path))
    text = message(read_for_clip, folder, clip)
    assert f"{FRAMES + 3} frames of keypoints" in text and f"has only {FRAMES}" in text, text
    assert not loads


def test_a_compressed_npz_damaged_inside_is_refused_in_one_line(tmp_path):
    path = tmp_path / "damaged.npz"
    keypoints = np.random.default_rng(0).uniform(0, 1, (50, NUM_KEYPOINTS, 3)) * [WIDTH, HEIGHT, 1]
    np.savez_compressed(path, keypoints=keypoints.astype(np.float32), width=WIDTH, height=HEIGHT)
    with zipfile.ZipFile(path) as archive:
        start = archive.getinfo("keypoints.npy").header_offset + 60
    data = bytearray(path.read_bytes())
    data[start:start + 40] = b"\xff" * 40  # zlib: "invalid block type", a traceback before
    path.write_bytes(data)
    text = message(read_keypoints, path)
    assert "not a vidtrans keypoint .npz" in text, text


def test_a_fifo_in_an_openpose_folder_is_named_not_waited_on(tmp_path):
    import os
    import threading

    folder = tmp_path / "op"
    write_openpose_json(folder, np.stack([body()] * 2))
    fifo = folder / "frame_000000000002_keypoints.json"
    os.mkfifo(fifo)

    def writer():  # lets a reader that opens the FIFO (before: waiting forever for a writer) read "{}"
        with open(fifo, "w") as f:
            f.write("{}")

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        text = message(read_keypoints, folder)
    finally:
        read_end = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # lets the writer's open return, if nobody read
        thread.join()
        os.close(read_end)
    assert "frame_000000000002_keypoints.json: not a regular file (a FIFO)" in text, text


# ---------------------------------------------------------------- ControlNet canvases

def test_frames_on_canvases_of_different_sizes_are_refused_naming_both(tmp_path):
    # The same pose on a 512x384 canvas, then on a 1024x768 one: scaled by either canvas, half the
    # frames would be drawn at half or twice their size.
    frames = [{"people": [person(body(8))], "canvas_width": 512, "canvas_height": 384}] * 3 + \
             [{"people": [person(body(16))], "canvas_width": 1024, "canvas_height": 768}] * 3
    path = tmp_path / "canvases.json"
    path.write_text(json.dumps(frames))
    text = message(read_keypoints, path)
    assert "512x384" in text and "1024x768" in text and "frame 3" in text, text


def test_frames_that_give_no_canvas_share_the_others(tmp_path, clip):
    frames = [{"people": [person(body(8))], "canvas_width": 512, "canvas_height": 384}] + \
             [{"people": [person(body(8))]}] * (FRAMES - 1)
    path = tmp_path / "canvas_once.json"
    path.write_text(json.dumps(frames))
    np.testing.assert_allclose(read_for_clip(path, clip).keypoints, np.stack([body()] * FRAMES), rtol=1e-5)


def test_a_normalised_file_of_height_0_says_so_rather_than_that_it_gives_no_size(tmp_path):
    normalised = body(1 / WIDTH)
    path = tmp_path / "zero.json"
    path.write_text(json.dumps({"frames": [normalised[:, :3].tolist()] * 3, "width": WIDTH, "height": 0}))
    text = message(read_keypoints, path)
    assert "64x0" in text and "from 1 to" in text, text


@pytest.mark.parametrize("width", [1e20, 2 ** 70])
def test_a_normalised_file_of_a_width_beyond_any_video_is_refused_in_one_line(tmp_path, width):
    # A width past 64 bits scaled the coordinates as Python objects: a numpy traceback.
    normalised = body(1 / WIDTH)
    frames = {"frames": [normalised.tolist()] * 3, "width": WIDTH, "height": HEIGHT}
    path = tmp_path / "wide.json"
    path.write_text(json.dumps({**frames, "width": width}))
    assert "from 1 to 1048576" in message(read_keypoints, path)
    path.write_text(json.dumps([{"people": [person(normalised)], "canvas_width": width, "canvas_height": HEIGHT}]))
    assert "from 1 to 1048576" in message(read_keypoints, path)


# ---------------------------------------------------------------- messages that quote the file

@pytest.mark.parametrize("entry", [list(range(100_000)), json.loads("[" * 900 + "]" * 900)])
def test_a_bad_keypoint_entry_is_quoted_briefly(tmp_path, entry):
    path = tmp_path / "frames.json"
    path.write_text(json.dumps([[entry, *[[1, 2, 0.9]] * (NUM_KEYPOINTS - 1)]]))
    text = message(read_keypoints, path)
    assert "keypoint 0 must be [x, y] or [x, y, confidence]" in text and len(text) < 300, text[:400]


def test_json_nested_too_deeply_is_named_as_such(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('{"people": [' + "[" * 100_000 + "]" * 100_000 + "]}")
    text = message(read_keypoints, path)
    assert "nested too deeply" in text and "UTF-8" not in text, text


# ---------------------------------------------------------------- OpenPose folders written again

def test_writing_a_shorter_track_into_a_folder_of_a_longer_one_is_refused(tmp_path):
    # The old clip's frames 3-5 would stay, and be read as the new clip's.
    folder = tmp_path / "op"
    write_openpose_json(folder, np.stack([body()] * 6))
    text = message(write_openpose_json, folder, np.stack([body()] * 3))
    assert "frame_000000000003_keypoints.json" in text and "empty folder" in text, text
    assert len(read_keypoints(folder).keypoints) == 6
    # Another clip's files of later frames, of another name, would be read as frames 3 and 4 of this one.
    other = tmp_path / "other"
    other.mkdir()
    for i in (3, 4):
        (other / f"dance_{i:012d}_keypoints.json").write_text(json.dumps({"people": []}))
    text = message(write_openpose_json, other, np.stack([body()] * 3))
    assert "dance_000000000003_keypoints.json and 1 more" in text, text
    assert len(list(other.iterdir())) == 2


def test_writing_the_same_frames_again_replaces_them_with_overwrite_only(tmp_path):
    folder = tmp_path / "op"
    write_openpose_json(folder, np.stack([body()] * 3))
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    text = message(write_openpose_json, folder, np.stack([body() + [1, 0, 0]] * 3))
    assert "frame_000000000000_keypoints.json: already exists" in text and "overwrite=True" in text, text
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before
    write_openpose_json(folder, np.stack([body() + [1, 0, 0]] * 3), overwrite=True)
    np.testing.assert_allclose(read_keypoints(folder).keypoints[:, :, 0], np.stack([body()[:, 0] + 1] * 3), rtol=1e-6)


# ---------------------------------------------------------------- detection in a thin strip of a frame

def test_a_frame_a_few_pixels_high_is_not_searched_in_hundreds_of_crops():
    # A 1280x2 clip (640x1 at the detector's size) took 51 s a frame: 639 crops of 1x1 pixel, each a MediaPipe run.
    pytest.importorskip("mediapipe")
    from vidtrans.pose.detector import PoseDetector, _crops

    assert _crops(1, 640) == [] and _crops(16, 640) == []
    assert 0 < len(_crops(64, 640)) <= 20  # a strip a person could still stand in
    with PoseDetector(video_mode=True) as detector:
        calls, process = [], detector._process
        detector._process = lambda frame: calls.append(frame.shape) or process(frame)
        assert (detector.detect(np.zeros((2, 1280, 3), np.uint8)) == 0).all()
    assert len(calls) == 1, calls


# --- the person followed through a frame in which they are hidden --------------------------------------

def _people_frames(*frames):
    from tests.test_qa19_keypoints import person

    return [[person(p) for p in people] for people in frames]


def test_one_frame_with_only_a_bystander_does_not_hand_them_the_clip(tmp_path):
    from tests.test_qa19_keypoints import body, openpose_folder

    dancer, bystander = body(x=-15, confidence=0.9), body(x=40, seed=1, confidence=0.5)
    frames = _people_frames(*[[dancer, bystander]] * 3, [bystander], *[[dancer, bystander]] * 4)
    kp = read_keypoints(openpose_folder(tmp_path / "op", frames)).keypoints
    followed = [i for i in range(len(kp)) if np.allclose(kp[i], dancer, rtol=1e-5)]
    assert followed == [0, 1, 2, 4, 5, 6, 7]  # frame 3 has nobody else to show


def test_after_a_cut_the_person_there_is_followed_once_they_stay(tmp_path):
    from tests.test_qa19_keypoints import body, openpose_folder

    before, after, other = body(x=-15), body(x=40, seed=2), body(x=90, seed=3, confidence=1.0)
    # The one person left after a cut is followed in every frame, as before; with a second person
    # there too, the one nearest the first far pick is followed from the cut on.
    alone = read_keypoints(openpose_folder(tmp_path / "alone", _people_frames(*[[before]] * 3, *[[after]] * 8)))
    np.testing.assert_allclose(alone.keypoints[3:], np.repeat(after[None], 8, axis=0), rtol=1e-5)
    two = read_keypoints(openpose_folder(tmp_path / "two", _people_frames(*[[before]] * 3,
                                                                          *[[other, after]] * 8)))
    np.testing.assert_allclose(two.keypoints[3:], np.repeat(after[None], 8, axis=0), rtol=1e-5)


# --- a span of a clip with a raw keypoint file gets the whole run's poses -------------------------------

def test_a_span_of_an_unsmoothed_keypoint_file_gets_the_poses_of_the_whole_clips_run(tmp_path):
    """The file was smoothed after the span was cut: --start 0.4 drew other poses for the same frames
    than a run of the whole clip (up to 60 grey levels in its first frames)."""
    from tests.test_qa19_keypoints import FPS, FRAMES, HEIGHT, WIDTH, body
    from vidtrans.pose.files import write_keypoints_npz
    from vidtrans.pose.smoothing import smooth_track
    from vidtrans.pose.track import keypoints_for
    from vidtrans.video import VideoReader

    clip = make_clip(tmp_path / "clip.mp4", frames=FRAMES, size=(WIDTH, HEIGHT), fps=FPS, audio=False).path
    rng = np.random.default_rng(5)
    raw = np.stack([body() + np.array([rng.normal(0, 2), rng.normal(0, 2), 0], np.float32) for _ in range(FRAMES)])
    path = tmp_path / "raw.npz"
    write_keypoints_npz(path, raw, WIDTH, HEIGHT)
    whole = smooth_track(raw)
    for start in (None, 0.2):
        with VideoReader(clip, start=start) as reader:
            track = keypoints_for(path, clip, reader)
            first = reader.span().first
        np.testing.assert_allclose(track.keypoints, whole[first:], atol=1e-4)
        assert track.smoothed


def test_after_a_cut_a_bystander_appearing_does_not_take_the_clip(tmp_path):
    from tests.test_qa19_keypoints import body, openpose_folder

    before, after, bystander = body(x=-15), body(x=60, seed=2), body(x=0, seed=3, confidence=1.0)
    frames = _people_frames(*[[before]] * 4, [after], *[[bystander, after]] * 6)
    kp = read_keypoints(openpose_folder(tmp_path / "op", frames)).keypoints
    np.testing.assert_allclose(kp[4:], np.repeat(after[None], 7, axis=0), rtol=1e-5)
