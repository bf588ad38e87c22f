"""Read and write keypoint tracks, so poses can come from other tools or be edited by hand.

Tracks are (frames, 18, 3) for the body alone or (frames, 128, 3) for whole-body poses (the body,
68 face points and 21 points per hand, in the layout of `vidtrans.pose.keypoints`).
Accepted by `read_keypoints(path)`:

- ``.npz`` (vidtrans's own, written by `write_keypoints_npz`): ``keypoints`` float32
  (frames, 18, 3) or (frames, 128, 3) of x, y in pixels of the input frame and confidence
  (0 = missing), plus ``width`` and ``height`` of that frame and, optionally, ``first_frame``:
  the number of the clip's frame its first pose belongs to (0, the default: the clip's first
  frame; `vidtrans pose --start` writes the frames of a part of the clip); all three whole numbers;
  and, optionally, ``smoothed`` (1: the track is already filtered over time, as `vidtrans pose`
  writes it, and is not filtered again; 0, the default: raw, as a detector found it).
- A folder of OpenPose per-frame ``*_keypoints.json`` files (``--write_json``), one per frame of
  the clip: the last number in a file's name is its frame (OpenPose writes
  ``NAME_000000000000_keypoints.json`` from frame 0 for a video, from N with ``--frame_first N``,
  and names files after the images of an image folder, often numbered from 1): the lowest number
  is the clip's frame of the first pose (`first_frame`), except that a folder numbered from 1 is
  taken to start at the clip's first frame, like one numbered from 0. A number missing between two
  others is refused (the poses after it would land a frame early). Each holds
  ``{"people": [{"pose_keypoints_2d": [x, y, c, ...]}]}`` (``pose_keypoints`` in OpenPose 1.0 and 1.1)
  in pixels, as COCO-18 (54 numbers), BODY_25 (75 numbers, OpenPose's default; mapped to
  COCO-18 by joint name, its MidHip and foot points dropped) or COCO-17 (51 numbers, as MMPose,
  YOLO-pose and DWPose's body give them; mapped by joint name, the neck midway between the
  shoulders when both are visible, as sure as the less sure of them). With several people one
  person is followed (`_follow_person`): the one with the highest total body confidence in the
  first frame with anyone, then in each later frame the one nearest the person picked before; a
  frame with nobody is all missing. Frame size unknown.
  A person may also carry ``face_keypoints_2d`` (OpenPose's 70 points: the 68 iBUG points and
  two pupils, which are dropped; 68 points are accepted too) and ``hand_left_keypoints_2d`` /
  ``hand_right_keypoints_2d`` (21 points each; left is the person's left hand). When any person
  has a non-empty one of these the track is whole-body, its frames without them missing those
  parts; empty (``[]``, OpenPose with face or hand detection off) or ``null`` ones mean none.
- A single ``.json``: one OpenPose frame as above, or a list of frames (or
  ``{"frames": [...], "width": W, "height": H}``), each frame either an OpenPose frame dict
  (its ``canvas_width``/``canvas_height`` are used when present, as in ControlNet and DWPose
  pose files, whose whole-body people have 68 or 70 face points, ``null`` for a part not found)
  or keypoints in vidtrans's layout, 18 or 128 of them (or COCO-17's 17, mapped as above):
  ``[[x, y], ...]`` or ``[[x, y, c], ...]`` or 51, 54 or 384 flat numbers, with ``null`` or
  negative coordinates for missing points (and ``[0, 0]``, COCO's mark, where ``[x, y]`` gives no
  confidence). When nearly every visible point (NORMALISED_SHARE of
  them, face and hands included) lies within 2 of 0 on both axes, coordinates are taken as
  normalised (DWPose's output, a point a little off the canvas; a stray far point does not decide)
  and scaled to pixels by the frame size, which such a file must give; a point with a negative
  coordinate is then missing (DWPose writes -1, with confidence 1, for the points it did not see),
  and so is one beyond 2 (more than a canvas off it, where no detector sees). That frame size
  (ControlNet's canvas: the clip scaled to the detector's resolution) only gives the shape: the
  keypoints are scaled to a video of the same aspect ratio. So are pixel coordinates on a canvas
  given by ``canvas_width``/``canvas_height`` (openpose-editor and ControlNet files): a canvas is
  the picture the poses were drawn on, of the video's shape but not always its size; a ``width``
  and ``height`` beside ``frames`` are the video's own frame size, which the video must have (with
  a canvas too, the coordinates are scaled from the canvas to that size).

JSON files hold one pose per frame of the clip from its first frame. Sizes and frame numbers must be
whole numbers (``true`` is not one), frame numbers at most MAX_FRAME_NUMBER. A point with confidence
0 is missing whatever its coordinates (DWPose writes NaN there); every other number is checked as
`check_keypoint_values` says, for NPZ and JSON alike: finite, confidences from 0 to about 1, and
points within reach of the frame when the file gives its size. In every format, a file with frames
of each kind, a body's worth of points normalised (0-1) in some and pixels in others (the outputs
of two tools joined into one), is refused naming a frame of each: no frame is scaled otherwise than
the rest, since a frame's few points can look like either.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import reprlib
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidtrans.atomic import check_destination, discard, publish_together, special_file_kind, temp_file, write_atomically
from vidtrans.errors import UsageError, VidtransError, first_line
from vidtrans.options import is_whole, plain, shown
from vidtrans.pose.keypoints import (
    FACE, KEYPOINT_COUNTS, KEYPOINT_INDEX, KEYPOINT_NAMES, LEFT_HAND, MAX_FRAME_SIDE, NUM_FACE, NUM_HAND, NUM_KEYPOINTS,
    NUM_WHOLE_BODY, RIGHT_HAND, check_keypoint_values, check_keypoints, is_frame_size, is_whole_body, with_parts,
)

# OpenPose BODY_25 joint names in its output order, spelled like our COCO-18 names.
_BODY25_NAMES = (
    "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
    "mid_hip", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle",
    "r_eye", "l_eye", "r_ear", "l_ear",
    "l_big_toe", "l_small_toe", "l_heel", "r_big_toe", "r_small_toe", "r_heel",
)
_BODY25_FOR_COCO = [_BODY25_NAMES.index(name) for name in KEYPOINT_NAMES]
# COCO-17 (MMPose, YOLO-pose, DWPose's body): our names but the neck, in its order, and where each goes in ours.
_COCO17_NAMES = (
    "nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow",
    "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle",
)
_COCO17_IN_COCO = [KEYPOINT_INDEX[name] for name in _COCO17_NAMES]
_SHOULDERS = [KEYPOINT_INDEX["r_shoulder"], KEYPOINT_INDEX["l_shoulder"]]
# The number of points a body given as a list may have: COCO-17 and our layouts.
_LIST_COUNTS = (len(_COCO17_NAMES), *KEYPOINT_COUNTS)

# The face and hands of an OpenPose person: its field, where the points go in a whole-body pose and
# how many points a file may give. OpenPose's face model adds two pupils after the 68 iBUG points
# (DWPose's ControlNet files pad them with the body's eyes); we keep the 68.
_PARTS = (
    ("face_keypoints_2d", FACE, (NUM_FACE, NUM_FACE + 2)),
    ("hand_left_keypoints_2d", LEFT_HAND, (NUM_HAND,)),
    ("hand_right_keypoints_2d", RIGHT_HAND, (NUM_HAND,)),
)
# iBUG-68 eyes; OpenPose's pupil 68 belongs to the first (the person's right eye), 69 to the second.
_EYES = (slice(36, 42), slice(42, 48))


@dataclass
class KeypointTrack:
    """Keypoints (frames, 18, 3) or whole-body (frames, 128, 3) float32 in pixels, with the frame
    size when the file says it; `first_frame`: the number of the clip's frame of the first pose;
    `smoothed`: whether the track is filtered over time already (`smooth_track`); `normalised`:
    whether the file's coordinates were normalised to its frame, a canvas of the video's shape
    but not its size; `frame_names`: the file each frame came from, for messages (OpenPose folders);
    `canvas`: whether width x height is a canvas the poses were drawn on (ControlNet's
    canvas_width/canvas_height), of the video's shape but not always its size, rather than the
    video's frame size."""

    keypoints: np.ndarray
    width: int | None = None
    height: int | None = None
    first_frame: int = 0
    smoothed: bool = False
    normalised: bool = False
    frame_names: list[str] | None = None
    canvas: bool = False


def write_keypoints_npz(path: str | os.PathLike, keypoints: np.ndarray, width: int, height: int,
                        overwrite: bool = False, first_frame: int = 0, smoothed: bool = False) -> None:
    """Saves a track (frames, 18, 3) or (frames, 128, 3) in pixels of a width x height frame, whose
    first pose is of the clip's frame number `first_frame` (the clip's first frame is 0), and
    whether it is `smoothed` already (so that using it does not filter it twice). The file
    appears complete or not at all; an existing file is replaced only with `overwrite`."""
    _check_frame_size(width, height, "frame size")
    # No values read_keypoints would refuse (not finite, confidences past 1, points far off the frame).
    kp = _checked(keypoints, "keypoints", (height, width))
    if not _frame_number(first_frame):
        raise VidtransError(f"first_frame must be a frame number, 0 or more (up to {MAX_FRAME_NUMBER}); "
                            f"got {shown(first_frame)}")
    if not isinstance(smoothed, (bool, np.bool_)):
        raise VidtransError(f"smoothed must be True or False; got {shown(smoothed)}")
    numbers = dict(width=np.int64(width), height=np.int64(height), first_frame=np.int64(first_frame),
                   smoothed=np.int64(bool(smoothed)))
    write_atomically(path, lambda f: np.savez_compressed(f, keypoints=kp, **numbers), overwrite=overwrite,
                     what="keypoints")


# NPZ files keep frame numbers as int64, and FFmpeg counts a video's frames in one: a larger number
# (an OpenPose file name of 200 digits) is no frame of any video.
MAX_FRAME_NUMBER = 2 ** 63 - 1


def _frame_number(value) -> bool:
    """Whether `value` is a number a frame of a video can have: a whole number from 0 to MAX_FRAME_NUMBER."""
    return is_whole(value) and 0 <= value <= MAX_FRAME_NUMBER


def _check_frame_size(width, height, what: str) -> None:
    """`keypoints.is_frame_size`'s check, named as files give a size: width, then height."""
    if not is_frame_size((width, height), whole=True):
        # shown: a size of 1e300 in a JSON file is an int of 301 digits, quoted in a few of them.
        raise VidtransError(f"{what} {shown(width)}x{shown(height)}: width and height must be whole numbers of "
                            f"pixels, from 1 to {MAX_FRAME_SIDE}")


def write_openpose_json(folder: str | os.PathLike, keypoints: np.ndarray, prefix: str = "frame",
                        overwrite: bool = False) -> None:
    """Writes one OpenPose ``{prefix}_{index:012d}_keypoints.json`` per frame into folder: the COCO-18
    body and, for a whole-body track, the face (OpenPose's 70 points) and both hands. Every file or
    none: a failure or an interruption leaves the folder as it was. Files of these names are refused
    unless `overwrite`; a folder holding keypoint files of later frames is refused, and so is a prefix
    naming files `read_keypoints` would not find: hidden ones, or in another folder."""
    kp = _checked(keypoints, "keypoints")
    if not isinstance(prefix, str) or prefix.startswith(".") or "/" in prefix or os.sep in prefix:
        raise VidtransError(f"prefix must start a file name, without a slash and not starting with '.' (hidden files, "
                            f"which read_keypoints leaves out), such as 'frame'; got {shown(prefix)}")
    folder = Path(folder)
    made = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # `read_keypoints` reads every *_keypoints.json of a folder as a frame of one clip: files of frames
        # past this track's (a longer track's, whatever their prefix) would silently lengthen it.
        beyond = sorted(f.name for f in folder.glob("*_keypoints.json") if not f.name.startswith(".")
                        and (match := _FRAME_NUMBER.search(f.name)) and int(match[1]) >= len(kp))
        if beyond:
            more = f" and {len(beyond) - 1} more" if len(beyond) > 1 else ""
            raise VidtransError(f"{folder}: holds {plain(beyond[0])}{more}, keypoint files of frames past these {len(kp)}, "
                                "which would be read with them as one clip; write into an empty folder")
        files = [folder / f"{prefix}_{i:012d}_keypoints.json" for i in range(len(kp))]
        for path in files:
            check_destination(path, None, overwrite)
        written = []
        try:
            for path, pose in zip(files, kp):
                people = [_openpose_person_json(pose)] if (pose[:, 2] > 0).any() else []
                tmp, f = temp_file(path)
                written.append((tmp, path))
                with f:
                    f.write(json.dumps({"version": 1.3, "people": people}).encode())
            publish_together(written, overwrite)
        finally:
            for tmp, _ in written:
                discard(tmp)
    except BaseException as e:
        if made:  # nothing in it: the folder goes too
            with contextlib.suppress(OSError):
                folder.rmdir()
        if isinstance(e, OSError):
            raise VidtransError(f"{folder}: cannot write OpenPose JSON ({e.strerror}; check the folder is "
                                "writable)") from e
        raise


def _openpose_person_json(pose: np.ndarray) -> dict:
    person = {"pose_keypoints_2d": pose[:NUM_KEYPOINTS].reshape(-1).tolist()}
    if is_whole_body(pose):
        face = pose[FACE]
        pupils = np.zeros((len(_EYES), 3), np.float32)
        for pupil, eye in zip(pupils, _EYES):
            if (face[eye, 2] > 0).all():  # a pupil from part of an eye would sit off its centre
                pupil[:] = face[eye].mean(axis=0)
        person["face_keypoints_2d"] = np.concatenate([face, pupils]).reshape(-1).tolist()
        person["hand_left_keypoints_2d"] = pose[LEFT_HAND].reshape(-1).tolist()
        person["hand_right_keypoints_2d"] = pose[RIGHT_HAND].reshape(-1).tolist()
    return person


def check_keypoint_path(path: str | os.PathLike) -> None:
    """What `read_keypoints` refuses before reading a byte (no such file, a FIFO, an unknown type), for
    callers that would otherwise tell it only after seconds of other work (loading a model)."""
    _keypoint_reader(path)


def _keypoint_reader(path) -> tuple[Path, Callable[[Path, int | None], KeypointTrack]]:
    """`path` as a Path and the function reading its kind of keypoint file or folder."""
    given = os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
    if not isinstance(given, str) or not given:  # Path("") is the current folder
        raise UsageError(f"path must be a keypoint file or folder (a str or os.PathLike), not {shown(path)}")
    path = Path(given)
    if path.is_dir():
        return path, _read_openpose_folder
    if not path.is_file():
        if path.exists():  # reading a FIFO would wait for a writer forever
            raise VidtransError(f"{path}: not a regular file ({special_file_kind(path.stat().st_mode)}); give a "
                                "keypoint file (.npz, .json) or a folder of OpenPose *_keypoints.json")
        raise VidtransError(f"{path}: no such keypoint file or folder")
    readers = {".npz": _read_npz, ".json": _read_json_file}
    if path.suffix.lower() not in readers:
        raise VidtransError(f"{path}: unknown keypoint file type (use .npz, .json or a folder of OpenPose *_keypoints.json)")
    return path, readers[path.suffix.lower()]


def read_keypoints(path: str | os.PathLike, max_frames: int | None = None) -> KeypointTrack:
    """Reads any accepted keypoint file or folder (see the module docstring). `max_frames`: the frames
    of the clip the keypoints are for; a file of more poses is refused, an NPZ or folder before its
    poses are read (a compressed NPZ of a few kilobytes can declare gigabytes of them); an NPZ whose
    keypoints are no track (frames, K, 3) at all, or whose numbers are more than one, is refused from
    its headers whatever `max_frames`."""
    path, read = _keypoint_reader(path)
    what = f"{path}: keypoints"
    # Numbers beyond float32's range become infinite, which the check of the values refuses.
    with np.errstate(over="ignore"):
        track = read(path, max_frames)
        track.keypoints = check_keypoints(track.keypoints, what)  # its shape before its frame size
    size = None
    if track.width is not None and track.height is not None:
        _check_frame_size(track.width, track.height, f"{path}: frame size")
        size = (track.height, track.width)
    track.keypoints = _checked(track.keypoints, what, size, track.frame_names)
    return track


def _checked(keypoints, what: str, frame_size: tuple[int, int] | None = None,
             frame_names: list[str] | None = None) -> np.ndarray:
    """A track in pixels as `check_keypoint_values` accepts it, the coordinates of its missing points
    zeroed first: they mean nothing (DWPose writes NaN there), in every format alike. Refused as
    well: frames normalised to the frame (0-1) among pixel ones, and a track that looks normalised
    where no person in pixels could be so small (`frame_size` unknown or larger)."""
    with np.errstate(over="ignore"):  # beyond float32's range: infinite, and refused as such
        kp = check_keypoints(keypoints, what)
    kp = check_keypoint_values(np.where(kp[..., 2:] == 0, np.float32(0), kp), what, frame_size, frame_names)
    if _looks_normalised(kp, what, frame_names) and (frame_size is None or max(frame_size) > 4 * NORMALISED_MAX):
        # No person in pixels fits in a box this small: coordinates normalised to the frame (0-1),
        # read as pixels, would draw a dot in the corner of every frame.
        raise VidtransError(f"{what}: nearly every visible point lies within {NORMALISED_MAX:g} pixels of the "
                            "frame's corner, so they look normalised to the frame (0-1); this file's coordinates are "
                            "pixels of the video: multiply x by its width and y by its height")
    return kp


def _integer(value) -> int | None:
    """`value` as an int when it is a whole number (an int, or a float with nothing after the
    point; a bool is not one), else None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    return None


def _refuse_longer_than_clip(path: Path, frames: int | None, max_frames: int | None) -> None:
    if frames is not None and max_frames is not None and frames > max_frames:
        raise VidtransError(f"{path}: {frames} frames of keypoints, but the clip has only {max_frames}: a keypoint "
                            "file has one pose per frame of the clip it was made from, so this one is from another "
                            "clip; extract keypoints from this clip with vidtrans pose")


# The widest value an NPZ member may declare: keypoints and numbers take at most 32 bytes (complex256),
# or a few characters of text; a header costs nothing to declare values of gigabytes.
_VALUE_BYTES = 64


def _declared(data, name: str) -> np.ndarray | None:
    """Member `name` of an open NPZ as its header declares it: an array of its shape and type that holds
    no data (a broadcast zero), to check before gigabytes of it are inflated; None for a header of a
    version np.load refuses anyway. A member that is no .npy array (np.load would hand over its raw
    bytes), or declares values wider than _VALUE_BYTES, is refused (ValueError)."""
    member = name if name in data.zip.namelist() else f"{name}.npy"  # as np.load finds it
    with data.zip.open(member) as f:
        # Version 3.0 is 2.0 with its header in UTF-8, which a number's or keypoints' header is in ASCII.
        read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0,
                       (3, 0): np.lib.format.read_array_header_2_0}.get(np.lib.format.read_magic(f))
        if read_header is None:
            return None
        shape, _, dtype = read_header(f)
    if dtype.itemsize > _VALUE_BYTES:
        raise ValueError(f"{name} holds values of {dtype.itemsize:,} bytes each ({shown(dtype.str)}), not numbers")
    return np.broadcast_to(np.zeros((), dtype), shape)


def _number(data, name: str) -> np.ndarray:
    """NPZ member `name`, which holds one number: read when its header declares one, else the array it
    declares (holding no data), which the caller refuses for its shape without inflating it first."""
    declared = _declared(data, name) if name in data else None
    return data[name] if declared is None or declared.size == 1 else declared


def _read_npz(path: Path, max_frames: int | None) -> KeypointTrack:
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.ndarray):  # np.save's single array, whatever the file's name says
            raise VidtransError(f"{path}: a .npy array (np.save), not an .npz archive; save the keypoints with "
                                "np.savez(path, keypoints=..., width=W, height=H), or with vidtrans pose --keypoints")
        with data:
            declared = _declared(data, "keypoints") if "keypoints" in data else None
            if declared is not None:
                # Its shape first: the first axis of a flat array is no count of frames.
                check_keypoints(declared, f"{path}: keypoints", dtype=None)
                _refuse_longer_than_clip(path, len(declared), max_frames)
            kp = data["keypoints"]
            numbers = {name: _number(data, name) for name in ("width", "height", "first_frame", "smoothed")
                       if name in ("width", "height") or name in data}
    # zlib.error: a compressed member damaged inside; NotImplementedError: a zip compression numpy cannot read;
    # RuntimeError: an encrypted member, which zipfile reads only with its password.
    except (OSError, ValueError, KeyError, TypeError, EOFError, MemoryError, zipfile.BadZipFile, zlib.error,
            NotImplementedError, RuntimeError) as e:
        raise VidtransError(f"{path}: not a vidtrans keypoint .npz (needs keypoints, width, height): "
                            f"{first_line(e)}; write it with vidtrans pose --keypoints") from e
    if kp.dtype.kind == "b":
        raise VidtransError(f"{path}: keypoints are true/false values, not numbers (x, y in pixels, confidence); "
                            "write the file with vidtrans pose --keypoints")
    whole = {}
    for name, array in numbers.items():
        # A smoothed written as a bool (True) means 1.
        item = int(array.item()) if name == "smoothed" and array.dtype.kind == "b" and array.size == 1 else \
            array.item() if array.size == 1 else None
        value = whole[name] = _integer(item)
        if value is None or (name == "first_frame" and not _frame_number(value)) or \
                (name == "smoothed" and value not in (0, 1)):
            given = shown(array.item()) if array.size == 1 else f"an array of shape {shown(array.shape)}"
            raise VidtransError(f"{path}: {name} is {given}, not {_NPZ_NUMBERS[name]}; write the file with "
                                "vidtrans pose --keypoints")
    return KeypointTrack(kp, whole["width"], whole["height"], whole.get("first_frame", 0),
                         bool(whole.get("smoothed", 0)))


# The numbers of a keypoint .npz besides the keypoints, and what each must be.
_NPZ_NUMBERS = {"width": "a whole number of pixels", "height": "a whole number of pixels",
                "first_frame": f"a frame number, 0 or more (up to {MAX_FRAME_NUMBER})", "smoothed": "0 or 1"}


def _load_json(path: Path):
    try:
        # utf-8-sig: Windows tools start UTF-8 files with a byte order mark. Integers as floats: Python
        # refuses to convert one of thousands of digits, as a float it is infinite and refused like 1e400.
        return json.loads(path.read_text(encoding="utf-8-sig"), parse_int=float)
    except RecursionError as e:  # no keypoint file nests more than a few levels
        raise VidtransError(f"{path}: JSON nested too deeply to be keypoints (lists within lists hundreds of levels "
                            "deep); give an OpenPose or DWPose keypoint file") from e
    except (OSError, ValueError) as e:  # ValueError: JSONDecodeError, UnicodeDecodeError
        raise VidtransError(f"{path}: not readable JSON ({first_line(e)}); save it as UTF-8 JSON") from e


# The largest coordinate of a keypoint file read as normalised (0-1, a point a little off the canvas).
NORMALISED_MAX = 2.0
# The share of the visible points that must lie within NORMALISED_MAX for a file to read as normalised:
# a stray point far off the canvas must not turn a whole file into pixels, and no person in pixels has
# more than a few points within a couple of pixels of the frame's corner.
NORMALISED_SHARE = 0.9


# The fewest visible points, not all at one place, that tell a frame's kind (normalised or pixels) in
# `_looks_normalised`: a detector's stray points at (0, 0), or a point or two near a corner, are no body.
KIND_POINTS = 3


def _looks_normalised(keypoints: np.ndarray, what: str, frame_names: list[str] | None = None) -> bool:
    """Whether the visible points of a track (frames, K, 3) look normalised to the frame rather than
    pixels. A track with frames of each kind (`_frame_kinds`: tools' outputs joined into one file) is
    refused, naming the first frame of each (by `frame_names` when given): scaled as one kind, the
    other's poses would be drawn as a dot in the frame's corner, or dropped as far off the canvas."""
    kinds = _frame_kinds(keypoints)
    if (kinds > 0).any() and (kinds < 0).any():
        normalised, pixels = ((frame_names[i] if frame_names else f"frame {i}") for i in
                              (int(np.argmax(kinds > 0)), int(np.argmax(kinds < 0))))
        raise VidtransError(f"{what} of {normalised} are normalised to the frame (0-1), but those of {pixels} are "
                            "pixels; a file's frames must all be one or the other: extract the keypoints again in one "
                            "go, or convert one kind (pixels are x times the frame's width, y times its height)")
    points = keypoints[keypoints[..., 2] > 0][:, :2]
    return len(points) > 0 and (np.abs(points) <= NORMALISED_MAX).all(axis=1).mean() >= NORMALISED_SHARE


def _frame_kinds(keypoints: np.ndarray) -> np.ndarray:
    """Per frame of a track (frames, K, 3): 1 where NORMALISED_SHARE of its visible points lie within
    NORMALISED_MAX of 0 (normalised), -1 where that share lies beyond (pixels), 0 where neither, or
    where fewer than KIND_POINTS of them, or all at one place (DWPose's -1 for every point of a person
    it did not see), make the share. Points that are not finite, refused later, count for neither."""
    visible = (keypoints[..., 2] > 0) & np.isfinite(keypoints).all(axis=-1)
    xy = keypoints[..., :2]
    near = (np.abs(xy) <= NORMALISED_MAX).all(axis=-1)
    kinds = np.zeros(len(keypoints), np.int8)
    for kind, these in ((1, visible & near), (-1, visible & ~near)):
        lowest = xy.min(axis=1, initial=np.inf, where=these[..., None])
        highest = xy.max(axis=1, initial=-np.inf, where=these[..., None])
        spread = (highest > lowest).any(axis=-1)
        count = these.sum(axis=1)
        kinds[(count >= KIND_POINTS) & (count >= NORMALISED_SHARE * visible.sum(axis=1)) & spread] = kind
    return kinds


# The frame number in an OpenPose file name: its last run of digits before "_keypoints.json".
_FRAME_NUMBER = re.compile(r"(\d+)(\D*)_keypoints\.json$")


def _read_openpose_folder(folder: Path, max_frames: int | None) -> KeypointTrack:
    numbered: dict[int, tuple[Path, re.Match]] = {}
    for f in folder.glob("*_keypoints.json"):
        if f.name.startswith("."):  # macOS's ._ resource files and other hidden files are no frames
            continue
        if f.exists() and not (f.is_file() or f.is_dir()):  # reading a FIFO would wait for a writer forever
            raise VidtransError(f"{f}: not a regular file ({special_file_kind(f.stat().st_mode)}); keep only "
                                "OpenPose's *_keypoints.json files in the folder")
        match = _FRAME_NUMBER.search(f.name)
        if match is None:
            raise VidtransError(f"{f}: no frame number in the name; name each file by its frame, as OpenPose "
                                "does: NAME_000000000000_keypoints.json")
        number = int(match[1])
        if not _frame_number(number):
            raise VidtransError(f"{folder}: {plain(f.name)} is numbered {shown(number)}, past the last frame of "
                                "any video; name each file by its frame, as OpenPose does: "
                                "NAME_000000000000_keypoints.json")
        if number in numbered:
            raise VidtransError(f"{folder}: {plain(numbered[number][0].name)} and {plain(f.name)} are both frame "
                                f"{number}; keep the files of one clip in the folder")
        numbered[number] = f, match
    if not numbered:
        raise VidtransError(f"{folder}: no OpenPose *_keypoints.json files in this folder")
    _refuse_longer_than_clip(folder, len(numbered), max_frames)
    numbers = sorted(numbered)
    for number, following in zip(numbers, numbers[1:]):
        if following != number + 1:
            before, match = numbered[number]
            name = f"{before.name[:match.start(1)]}{number + 1:0{len(match[1])}d}{before.name[match.end(1):]}"
            raise VidtransError(f"{folder}: {plain(name)} is missing: the files are numbered by frame, and without "
                                f"frame {number + 1} the poses after it would land a frame early; restore it or "
                                "extract the keypoints again")
    frames = []
    for number in numbers:
        f = numbered[number][0]
        data = _load_json(f)
        if not isinstance(data, dict) or "people" not in data:
            raise VidtransError(f"{f}: not an OpenPose keypoint file (no 'people' list)")
        frames.append(_openpose_people(data, f))
    # OpenPose numbers a video's files from its frame 0, or from N with --frame_first N; files named after the
    # images of a folder numbered from 1 start at the clip's first frame all the same.
    first_frame = numbers[0] if numbers[0] > 1 else 0
    return KeypointTrack(_track(_follow_person(frames)), first_frame=first_frame,
                         frame_names=[plain(numbered[number][0].name) for number in numbers])


def _track(poses: list[np.ndarray]) -> np.ndarray:
    """Frames stacked into a track: whole-body when any frame has face or hand points, the other
    frames then missing those parts."""
    whole_body = any(is_whole_body(pose) for pose in poses)
    return np.stack([with_parts(pose, whole_body) for pose in poses])


def _openpose_people(frame: dict, source: Path) -> list[np.ndarray]:
    """The people of an OpenPose frame, each (128, 3) when anyone in it has face or hand points, else (18, 3)."""
    people = frame.get("people")
    if not isinstance(people, list):
        raise VidtransError(f"{source}: OpenPose 'people' must be a list")
    poses, whole_body = [], False
    for person in people:
        if not isinstance(person, dict):
            raise VidtransError(f"{source}: a person in 'people' is {json.dumps(person)[:40]}; each person must be an "
                                'object such as {"pose_keypoints_2d": [x, y, confidence, ...]}')
        pose, has_parts = _openpose_person(person, source)
        poses.append(pose)
        whole_body |= has_parts
    return [with_parts(pose, whole_body) for pose in poses]


def _follow_person(frames: list[list[np.ndarray]]) -> list[np.ndarray]:
    """One pose per frame of the people of each frame, following one person: in the first frame with
    anyone, the one with the most confident body (the body decides, as for body-only files: a face or
    hands alone must not pick a bystander; the first of equals, as DWPose gives every point confidence
    1), then in each later frame the one nearest the person picked last (`_distance`). A frame with
    nobody is all missing.

    The nearest person may be more than the followed one's size away: someone else while the dancer
    is hidden, or the dancer after a cut. Someone new (nobody was near them in the last frame with
    anyone) is the dancer after a cut, followed from then on; someone who was there already, not
    followed (a bystander), stands for the frame but is followed only once the picks have been that
    far for ADOPT_AFTER frames in a row: one frame in which the dancer is hidden no longer hands the
    rest of the clip to a bystander."""
    picked, last, far_in_a_row, before = [], None, 0, []
    for people in frames:
        if not people:
            picked.append(np.zeros((NUM_KEYPOINTS, 3), np.float32))
            continue
        far = False
        # A person with numbers that are not finite (refused later, if picked) is the last choice.
        with np.errstate(invalid="ignore", over="ignore"):
            if last is None:
                scores = np.array([pose[:NUM_KEYPOINTS, 2].sum() for pose in people], np.float64)
                best = people[int(np.argmax(np.where(np.isfinite(scores), scores, -np.inf)))]
            else:
                distances = np.array([_distance(last, pose) for pose in people], np.float64)
                nearest = int(np.argmin(np.where(np.isnan(distances), np.inf, distances)))
                best, far = people[nearest], bool(distances[nearest] > _size(last))
        picked.append(best)
        if (best[..., 2] > 0).any():
            with np.errstate(invalid="ignore", over="ignore"):
                known = far and any(_distance(pose, best) <= _size(best) for pose in before)
            far_in_a_row = far_in_a_row + 1 if known else 0
            if far_in_a_row in (0, ADOPT_AFTER):
                last, far_in_a_row = best, 0
        before = people
    return picked


# Frames in a row in which someone already there, farther from the one followed than their size,
# is the nearest before they are followed instead (the dancer gone): a fifth of a second at 25 fps.
ADOPT_AFTER = 5


def _size(pose: np.ndarray) -> float:
    """A pose's size: the longer side of the box of its body points (of all its points when it shows
    fewer than two of the body); infinite when it shows fewer than two points, which gives no size."""
    for points in (pose[:NUM_KEYPOINTS], pose):
        seen = points[points[:, 2] > 0, :2]
        if len(seen) >= 2:
            return float((seen.max(axis=0) - seen.min(axis=0)).max())
    return math.inf


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    """How far apart two poses are: the median distance of the body points both show (a limb one
    detector swapped, or a point DWPose did not see, at -1, does not decide) or, with none in common,
    of the centres of their boxes (of their body points, or of all their points when one shows no
    body); infinite when one shows nothing."""
    body_a, body_b = a[:NUM_KEYPOINTS], b[:NUM_KEYPOINTS]
    both = (body_a[:, 2] > 0) & (body_b[:, 2] > 0)
    if both.any():
        return float(np.median(np.linalg.norm(body_a[both, :2] - body_b[both, :2], axis=1)))
    if not ((body_a[:, 2] > 0).any() and (body_b[:, 2] > 0).any()):
        body_a, body_b = a, b
    centres = []
    for pose in (body_a, body_b):
        points = pose[pose[:, 2] > 0, :2]
        if not len(points):
            return math.inf
        centres.append((points.min(axis=0) + points.max(axis=0)) / 2)
    return float(np.linalg.norm(centres[0] - centres[1]))


def _openpose_person(person: dict, source: Path) -> tuple[np.ndarray, bool]:
    """One OpenPose person as a whole-body pose (parts it lacks missing), and whether it had a face or hands."""
    if "pose_keypoints_2d" not in person and "pose_keypoints" not in person:
        raise VidtransError(f"{source}: a person has no pose_keypoints_2d (nor OpenPose 1.0's pose_keypoints), only "
                            f"{', '.join(sorted(map(str, person)))[:80] or 'nothing'}; each person needs "
                            '{"pose_keypoints_2d": [x, y, confidence, ...]}')
    pose = with_parts(_flat_pose(_field(person, "pose_keypoints_2d"), source), True)
    has_parts = False
    for field, part, point_counts in _PARTS:
        values = _field(person, field)
        if values is None or values == []:  # OpenPose with that detector off, or DWPose finding nothing
            continue
        values = _numbers(values, field, source)
        if len(values) not in [3 * n for n in point_counts]:
            numbers, points = (" or ".join(str(k * n) for n in point_counts) for k in (3, 1))
            raise VidtransError(f"{source}: {field} has {len(values)} numbers; expected {numbers} "
                                f"({points} points of x, y, confidence), or [] for none")
        pose[part] = _points(values)[:part.stop - part.start]
        has_parts = True
    return pose, has_parts


def _field(person: dict, field: str):
    """A person's `field`, or its name in OpenPose 1.0 and 1.1 (without "_2d") when only that is there."""
    return person[field] if field in person else person.get(field.removesuffix("_2d"))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)  # JSON true is no coordinate


def _numbers(values, field: str, source: Path) -> list:
    """`values` when it is a flat JSON list of numbers and nulls."""
    if not (isinstance(values, list) and all(v is None or _is_number(v) for v in values)):
        raise VidtransError(f"{source}: {field} must be a list of numbers (null for a missing one)")
    return values


def _points(values: list) -> np.ndarray:
    """Numbers x, y, confidence per point (a list of a multiple of 3) as points (n, 3) float32, the missing
    ones all zero: those with a null among their numbers or a confidence of 0 or less. The others keep
    their numbers, NaN and infinity included, for `check_keypoint_values` to refuse as it does in NPZ files."""
    points = np.array([np.nan if v is None else v for v in values], dtype=np.float64).reshape(-1, 3)
    nulls = np.array([v is None for v in values], dtype=bool).reshape(-1, 3).any(axis=1)
    points = points.astype(np.float32)  # beyond float32's range: infinite, refused later
    points[nulls | (points[:, 2] <= 0)] = 0.0
    return points


def _flat_pose(values, source: Path) -> np.ndarray:
    values = _numbers(values, "pose_keypoints_2d", source)
    if len(values) == NUM_KEYPOINTS * 3:
        return _points(values)
    if len(values) == len(_BODY25_NAMES) * 3:
        return _points(values)[_BODY25_FOR_COCO]
    if len(values) == len(_COCO17_NAMES) * 3:
        return _from_coco17(_points(values))
    raise VidtransError(f"{source}: pose_keypoints_2d has {len(values)} numbers; expected 54 (COCO-18), 51 (COCO-17) "
                        "or 75 (BODY_25)")


def _from_coco17(points: np.ndarray) -> np.ndarray:
    """COCO-17 points (17, 3) as our COCO-18 body: OpenPose's neck is midway between the shoulders, as
    sure as the less sure of them, and missing unless both are visible."""
    body = np.zeros((NUM_KEYPOINTS, 3), np.float32)
    body[_COCO17_IN_COCO] = points
    # (0, 0) is a point not seen, COCO's own mark: YOLO-pose zeroes the unsure ones but keeps their confidence.
    body[(body[:, 0] == 0) & (body[:, 1] == 0), 2] = 0
    shoulders = body[_SHOULDERS]
    if (shoulders[:, 2] > 0).all():
        body[KEYPOINT_INDEX["neck"]] = [*shoulders[:, :2].mean(axis=0), shoulders[:, 2].min()]
    return body


def _keypoint_list(frame: list, source: Path) -> np.ndarray:
    """Keypoints in our layout (18 or 128) or COCO-17's: [[x, y(, c)], ...] or their flat numbers; null /
    negative = missing, and so is an [x, y] of [0, 0]: a list without confidences has no other mark for a
    point not seen, and COCO's is (0, 0) (a point seen exactly there is vanishingly rare)."""
    if len(frame) in [3 * k for k in _LIST_COUNTS]:
        values = _numbers(frame, f"a frame of {len(frame)} values", source)
    elif len(frame) in _LIST_COUNTS:
        values = []
        for i, point in enumerate(frame):
            if point is None:
                point = [None] * 3
            elif not (isinstance(point, list) and len(point) in (2, 3)
                      and all(v is None or _is_number(v) for v in point)):
                # reprlib: a point of 100000 numbers, or nested 900 deep, is quoted in a few of them.
                raise VidtransError(f"{source}: keypoint {i} must be [x, y] or [x, y, confidence] of numbers, "
                                    f"got {reprlib.repr(point)}")
            values += point if len(point) == 3 else [*point, 0.0 if point == [0, 0] else 1.0]
    else:
        raise VidtransError(f"{source}: a frame has {len(frame)} entries; expected {NUM_KEYPOINTS} keypoints "
                            f"(COCO-18), {len(_COCO17_NAMES)} (COCO-17) or {NUM_WHOLE_BODY} (body, face and hands)")
    points = _points(values)
    # Negative coordinates mark a missing point here; an infinite one is no mark but bad data, refused later.
    points[np.isfinite(points).all(axis=1) & (points[:, :2] < 0).any(axis=1)] = 0.0
    return _from_coco17(points) if len(points) == len(_COCO17_NAMES) else points


def _frame_size_field(data: dict, field: str, default: int | None, path: Path) -> int | None:
    """The frame width or height `data[field]` (`default` when absent or null) as a whole number of pixels."""
    if data.get(field) is None:
        return default
    value = _integer(data[field])
    if value is None:
        raise VidtransError(f"{path}: {field} is {json.dumps(data[field])[:40]}, not a whole number of pixels; "
                            "give the frame size in pixels, e.g. 1920")
    return value


def _read_json_file(path: Path, max_frames: int | None) -> KeypointTrack:
    data = _load_json(path)
    width = height = None
    if isinstance(data, dict) and "people" in data:
        frames = [data]
    elif isinstance(data, dict) and isinstance(data.get("frames"), list):
        frames = data["frames"]
        width, height = (_frame_size_field(data, field, None, path) for field in ("width", "height"))
    elif isinstance(data, list):
        frames = data
    else:
        raise VidtransError(f"{path}: unrecognised keypoint JSON (expected an OpenPose frame, a list of frames or {{'frames': [...]}})")
    if not frames:
        raise VidtransError(f"{path}: keypoint JSON holds no frames")
    _refuse_longer_than_clip(path, len(frames), max_frames)
    canvas: tuple[int | None, int | None] | None = None  # the canvas the poses were drawn on, if the frames say
    people = []
    for i, frame in enumerate(frames):
        if isinstance(frame, dict) and "people" in frame:
            people.append(_openpose_people(frame, path))
            if frame.get("canvas_width") is not None or frame.get("canvas_height") is not None:
                size = (_frame_size_field(frame, "canvas_width", width, path),
                        _frame_size_field(frame, "canvas_height", height, path))
                # One canvas scales every frame: frames drawn on another would come out larger or smaller.
                if canvas is not None and size != canvas:
                    raise VidtransError(f"{path}: frame {i} is on a {size[0]}x{size[1]} canvas, but the frames "
                                        f"before it on a {canvas[0]}x{canvas[1]} one; the poses of one clip are drawn "
                                        "on one canvas: extract them again in one go")
                canvas = size
        elif isinstance(frame, list):
            people.append([_keypoint_list(frame, path)])
        else:
            raise VidtransError(f"{path}: a frame is neither an OpenPose frame dict nor a list of keypoints")
    kp = _track(_follow_person(people))
    drawn_on = canvas or (width, height)  # the size the coordinates are of
    normalised = _looks_normalised(kp, f"{path}: keypoints")
    if normalised:
        if None in drawn_on:
            raise VidtransError(f"{path}: its coordinates are normalised (within 0-{NORMALISED_MAX:g}), but it gives "
                                "no frame size to scale them by; add \"width\" and \"height\" (or each frame's "
                                "canvas_width/canvas_height)")
        _check_frame_size(*drawn_on, f"{path}: frame size")  # before scaling by it
        # DWPose writes the points it did not see as -1 with confidence 1, and a point beyond NORMALISED_MAX is
        # more than a canvas off it, where no detector sees: both missing. An infinite one is bad data, refused later.
        coordinates = kp[..., :2]
        kp[np.isfinite(coordinates).all(axis=-1) & ((coordinates < 0) | (coordinates > NORMALISED_MAX)).any(axis=-1)] = 0.0
        kp[..., :2] *= np.array(drawn_on, np.float32)
    if canvas is not None and None not in (width, height):
        # The file names the video's frame size too, which the video must have: the canvas is that frame,
        # scaled, or that frame itself (the canvas's size alone took its place, and a video of its shape but
        # not that size passed).
        _check_frame_size(*canvas, f"{path}: canvas size")  # before scaling by it
        kp[..., :2] *= np.array([width / canvas[0], height / canvas[1]], np.float32)
        return KeypointTrack(kp, width, height)
    return KeypointTrack(kp, *drawn_on, normalised=normalised, canvas=canvas is not None and not normalised)
