"""Read and write keypoint tracks, so poses can come from other tools or be edited by hand.

Accepted by `read_keypoints(path)`:

- ``.npz`` (vidtrans's own, written by `write_keypoints_npz`): ``keypoints`` float32
  (frames, 18, 3) of x, y in pixels of the input frame and confidence (0 = missing), plus
  ``width`` and ``height`` of that frame.
- A folder of OpenPose per-frame ``*_keypoints.json`` files (``--write_json``), in frame order by
  the number in their names. Each holds ``{"people": [{"pose_keypoints_2d": [x, y, c, ...]}]}``
  in pixels, as COCO-18 (54 numbers) or BODY_25 (75 numbers, OpenPose's default; mapped to
  COCO-18 by joint name, its MidHip and foot points dropped). With several people the one with
  the highest total confidence is used; a frame with nobody is all missing. Frame size unknown.
- A single ``.json``: one OpenPose frame as above, or a list of frames (or
  ``{"frames": [...], "width": W, "height": H}``), each frame either an OpenPose frame dict
  (its ``canvas_width``/``canvas_height`` are used when present, as in ControlNet pose files) or
  DWPose-style 18 keypoints: ``[[x, y], ...]`` or ``[[x, y, c], ...]`` or 54 flat numbers, with
  ``null`` or negative coordinates for missing points. When the frame size is given and every
  coordinate lies within [0, 1], coordinates are taken as normalised (DWPose's output) and
  scaled to pixels.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidtrans.atomic import write_atomically
from vidtrans.errors import VidtransError, first_line
from vidtrans.pose.keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS, check_keypoints

# OpenPose BODY_25 joint names in its output order, spelled like our COCO-18 names.
_BODY25_NAMES = (
    "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
    "mid_hip", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle",
    "r_eye", "l_eye", "r_ear", "l_ear",
    "l_big_toe", "l_small_toe", "l_heel", "r_big_toe", "r_small_toe", "r_heel",
)
_BODY25_FOR_COCO = [_BODY25_NAMES.index(name) for name in KEYPOINT_NAMES]


@dataclass
class KeypointTrack:
    """Keypoints (frames, 18, 3) float32 in pixels, with the frame size when the file says it."""

    keypoints: np.ndarray
    width: int | None = None
    height: int | None = None


def write_keypoints_npz(path: str | os.PathLike, keypoints: np.ndarray, width: int, height: int,
                        overwrite: bool = False) -> None:
    """Saves a track (frames, 18, 3) in pixels of a width x height frame. The file appears complete
    or not at all; an existing file is replaced only with `overwrite`."""
    kp = check_keypoints(keypoints)
    write_atomically(path, lambda f: np.savez_compressed(f, keypoints=kp, width=np.int64(width), height=np.int64(height)),
                     overwrite=overwrite, what="keypoints")


def write_openpose_json(folder: str | os.PathLike, keypoints: np.ndarray, prefix: str = "frame") -> None:
    """Writes one OpenPose COCO-18 ``{prefix}_{index:012d}_keypoints.json`` per frame into folder."""
    kp = check_keypoints(keypoints)
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for i, pose in enumerate(kp):
            people = [] if not (pose[:, 2] > 0).any() else [{"pose_keypoints_2d": pose.reshape(-1).tolist()}]
            (folder / f"{prefix}_{i:012d}_keypoints.json").write_text(json.dumps({"version": 1.3, "people": people}))
    except OSError as e:
        raise VidtransError(f"{folder}: cannot write OpenPose JSON ({e.strerror}; check the folder is writable)") from e


def read_keypoints(path: str | os.PathLike) -> KeypointTrack:
    """Reads any accepted keypoint file or folder (see the module docstring)."""
    path = Path(path)
    if path.is_dir():
        return _read_openpose_folder(path)
    if not path.is_file():
        raise VidtransError(f"{path}: no such keypoint file or folder")
    if path.suffix.lower() == ".npz":
        return _read_npz(path)
    if path.suffix.lower() == ".json":
        return _read_json_file(path)
    raise VidtransError(f"{path}: unknown keypoint file type (use .npz, .json or a folder of OpenPose *_keypoints.json)")


def _read_npz(path: Path) -> KeypointTrack:
    try:
        with np.load(path, allow_pickle=False) as data:
            kp = np.asarray(data["keypoints"], dtype=np.float32)
            width, height = int(data["width"]), int(data["height"])
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as e:
        raise VidtransError(f"{path}: not a vidtrans keypoint .npz (needs keypoints, width, height): "
                            f"{first_line(e)}; write it with vidtrans pose --keypoints") from e
    return KeypointTrack(check_keypoints(kp, f"{path}: keypoints"), width, height)


def _load_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise VidtransError(f"{path}: not readable JSON ({e})") from e


def _read_openpose_folder(folder: Path) -> KeypointTrack:
    def frame_number(p: Path) -> tuple[int, str]:
        numbers = re.findall(r"\d+", p.name)
        return (int(numbers[-1]) if numbers else -1, p.name)

    files = sorted(folder.glob("*_keypoints.json"), key=frame_number)
    if not files:
        raise VidtransError(f"{folder}: no OpenPose *_keypoints.json files in this folder")
    poses = []
    for f in files:
        data = _load_json(f)
        if not isinstance(data, dict) or "people" not in data:
            raise VidtransError(f"{f}: not an OpenPose keypoint file (no 'people' list)")
        poses.append(_openpose_frame(data, f))
    return KeypointTrack(np.stack(poses))


def _openpose_frame(frame: dict, source: Path) -> np.ndarray:
    people = frame.get("people")
    if not isinstance(people, list):
        raise VidtransError(f"{source}: OpenPose 'people' must be a list")
    best, best_score = np.zeros((NUM_KEYPOINTS, 3), dtype=np.float32), -1.0
    for person in people:
        values = person.get("pose_keypoints_2d") if isinstance(person, dict) else None
        pose = _flat_pose(values, source)
        if pose[:, 2].sum() > best_score:
            best, best_score = pose, float(pose[:, 2].sum())
    return best


def _flat_pose(values, source: Path) -> np.ndarray:
    try:
        flat = np.asarray(values, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError) as e:
        raise VidtransError(f"{source}: pose_keypoints_2d must be a list of numbers") from e
    if flat.size == NUM_KEYPOINTS * 3:
        pose = flat.reshape(NUM_KEYPOINTS, 3).copy()
    elif flat.size == len(_BODY25_NAMES) * 3:
        pose = flat.reshape(-1, 3)[_BODY25_FOR_COCO].copy()
    else:
        raise VidtransError(f"{source}: pose_keypoints_2d has {flat.size} numbers; expected 54 (COCO-18) or 75 (BODY_25)")
    pose[~np.isfinite(pose).all(axis=1)] = 0.0
    pose[pose[:, 2] <= 0] = 0.0
    return pose


def _keypoint_list(frame: list, source: Path) -> np.ndarray:
    """DWPose-style 18 keypoints: [[x, y(, c)], ...] or 54 flat numbers; null / negative = missing."""
    if len(frame) == NUM_KEYPOINTS * 3 and all(isinstance(v, (int, float)) for v in frame):
        return _flat_pose(frame, source)
    if len(frame) != NUM_KEYPOINTS:
        raise VidtransError(f"{source}: a frame has {len(frame)} entries; expected {NUM_KEYPOINTS} keypoints (COCO-18)")
    pose = np.zeros((NUM_KEYPOINTS, 3), dtype=np.float32)
    for i, point in enumerate(frame):
        if point is None:
            continue
        if not isinstance(point, (list, tuple)) or len(point) not in (2, 3):
            raise VidtransError(f"{source}: keypoint {i} must be [x, y] or [x, y, confidence], got {point!r}")
        try:
            x, y, c = float(point[0]), float(point[1]), float(point[2]) if len(point) == 3 else 1.0
        except (TypeError, ValueError) as e:
            raise VidtransError(f"{source}: keypoint {i} has non-numeric values {point!r}") from e
        if x >= 0 and y >= 0 and c > 0 and np.isfinite([x, y, c]).all():
            pose[i] = (x, y, c)
    return pose


def _read_json_file(path: Path) -> KeypointTrack:
    data = _load_json(path)
    width = height = None
    if isinstance(data, dict) and "people" in data:
        frames = [data]
    elif isinstance(data, dict) and isinstance(data.get("frames"), list):
        frames, width, height = data["frames"], data.get("width"), data.get("height")
    elif isinstance(data, list):
        frames = data
    else:
        raise VidtransError(f"{path}: unrecognised keypoint JSON (expected an OpenPose frame, a list of frames or {{'frames': [...]}})")
    if not frames:
        raise VidtransError(f"{path}: keypoint JSON holds no frames")
    poses = []
    for frame in frames:
        if isinstance(frame, dict) and "people" in frame:
            poses.append(_openpose_frame(frame, path))
            width = frame.get("canvas_width", width)
            height = frame.get("canvas_height", height)
        elif isinstance(frame, list):
            poses.append(_keypoint_list(frame, path))
        else:
            raise VidtransError(f"{path}: a frame is neither an OpenPose frame dict nor a list of {NUM_KEYPOINTS} keypoints")
    kp = np.stack(poses)
    try:
        width = int(width) if width is not None else None
        height = int(height) if height is not None else None
    except (TypeError, ValueError) as e:
        raise VidtransError(f"{path}: width/height must be integers") from e
    present = kp[..., 2] > 0
    if width and height and present.any() and kp[present][:, :2].max() <= 1.0:
        kp[..., 0] *= width
        kp[..., 1] *= height
    return KeypointTrack(kp, width, height)
