"""Training pairs (input image, target image): from our synthetic character, a paired folder, or a target video.

Every source offers `sample(rng)` (a random training pair, with the keypoints of the person in
the target image when it knows them: training weighs the face by them) and `validation()` (a fixed
held-out list). Images are uint8 RGB at the training size.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from vidtrans.errors import VidtransError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def _read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise VidtransError(f"{path}: not a readable image (corrupt or unsupported); remove or replace it")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _fit(image: np.ndarray, size: int) -> np.ndarray:
    if image.shape[:2] == (size, size):
        return image
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_LINEAR)


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


class PairedFolder:
    """pix2pix's layouts: side-by-side `AB` images (A left, B right), or `A/` and `B/` folders with
    matching file names. A `val/` (or `test/`) subfolder in the same layout is the held-out split;
    without one, every tenth pair is held out."""

    def __init__(self, root: str | os.PathLike, size: int = 256, direction: str = "AtoB", flip: bool = True):
        self.root = Path(root)
        self.size = size
        self.flip = flip
        self.swap = direction == "BtoA"
        if not self.root.is_dir():
            raise VidtransError(f"{self.root}: no such folder; pass a folder of AB images or with A/ and B/ subfolders")
        train_dir = self.root / "train" if (self.root / "train").is_dir() else self.root
        self.pairs = self._pairs(train_dir)
        held_out = next((self.root / d for d in ("val", "test") if (self.root / d).is_dir()), None)
        if held_out is not None:
            self.held_out = self._pairs(held_out)
        else:
            self.held_out = self.pairs[::10]
            self.pairs = [p for i, p in enumerate(self.pairs) if i % 10] or self.held_out
        self._validation: list[tuple[np.ndarray, np.ndarray]] | None = None

    def _pairs(self, folder: Path) -> list[tuple[Path, Path | None]]:
        if (folder / "A").is_dir() and (folder / "B").is_dir():
            a_files = {p.stem: p for p in _images_in(folder / "A")}
            b_files = {p.stem: p for p in _images_in(folder / "B")}
            common = sorted(a_files.keys() & b_files.keys())
            if not common:
                raise VidtransError(f"{folder}: A/ and B/ share no file names; pairs need the same name in both")
            return [(a_files[k], b_files[k]) for k in common]
        files = _images_in(folder)
        if not files:
            raise VidtransError(f"{folder}: no images found; expected side-by-side AB images or A/ and B/ subfolders")
        return [(f, None) for f in files]

    def _load(self, pair: tuple[Path, Path | None]) -> tuple[np.ndarray, np.ndarray]:
        a_path, b_path = pair
        if b_path is None:
            ab = _read_image(a_path)
            if ab.shape[1] < 2 * 4:
                raise VidtransError(f"{a_path}: too narrow to be a side-by-side AB pair")
            half = ab.shape[1] // 2
            a, b = ab[:, :half], ab[:, half:2 * half]
        else:
            a, b = _read_image(a_path), _read_image(b_path)
        a, b = _fit(a, self.size), _fit(b, self.size)
        return (b, a) if self.swap else (a, b)

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, None]:
        a, b = self._load(self.pairs[rng.integers(len(self.pairs))])
        # pix2pix's default augmentation; off for pose maps, whose colours encode left and right.
        if self.flip and rng.random() < 0.5:
            a, b = a[:, ::-1].copy(), b[:, ::-1].copy()
        return a, b, None

    def validation(self) -> list[tuple[np.ndarray, np.ndarray]]:
        if self._validation is None:
            self._validation = [self._load(p) for p in self.held_out[:64]]
        return self._validation

    def all_pairs(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every pair of the folder, training and held-out, in file-name order."""
        return [self._load(p) for p in sorted(set(self.pairs) | set(self.held_out))]

    def background(self) -> None:
        return None  # unrelated pairs show no one scene


class SyntheticPairs:
    """Pose maps of procedural dances -> our rendered target character, generated on the fly.

    Training draws from dances with seeds in `train_seeds`; validation uses frames spread over
    the dance `validation_seed`, which must lie outside that range (so must `vidtrans eval`'s).
    """

    def __init__(self, size: int = 256, style=None, look=None, train_seeds: range = range(0, 10_000),
                 validation_seed: int = 10_000_000, frames_per_dance: int = 240, validation_frames: int = 32):
        from vidtrans.pose.render import PoseStyle
        from vidtrans.train.synth import TARGET_LOOK

        if validation_seed in train_seeds:
            raise VidtransError(f"validation seed {validation_seed} is one of the training seeds")
        self.size = size
        self.style = style or PoseStyle()
        self.look = look or TARGET_LOOK
        self.train_seeds = train_seeds
        self.validation_seed = validation_seed
        self.frames_per_dance = frames_per_dance
        self.validation_frames = validation_frames
        self._tracks: dict[int, np.ndarray] = {}
        self._validation: list[tuple[np.ndarray, np.ndarray]] | None = None

    def _track(self, seed: int) -> np.ndarray:
        from vidtrans.train.synth import dance_keypoints

        if seed not in self._tracks:
            if len(self._tracks) > 512:  # keypoints are small, but bound the cache anyway
                self._tracks.clear()
            self._tracks[seed] = dance_keypoints(seed, self.frames_per_dance, self.size, self.size, self.look)
        return self._tracks[seed]

    def pair(self, keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from vidtrans.pose.render import render_pose
        from vidtrans.train.synth import render_person

        return (render_pose(keypoints, self.size, self.size, self.style),
                render_person(keypoints, self.size, self.size, self.look))

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        seed = int(rng.integers(self.train_seeds.start, self.train_seeds.stop))
        keypoints = self._track(seed)[rng.integers(self.frames_per_dance)]
        return (*self.pair(keypoints), keypoints)

    def validation(self) -> list[tuple[np.ndarray, np.ndarray]]:
        if self._validation is None:
            track = self._track(self.validation_seed)
            picks = np.linspace(0, len(track) - 1, self.validation_frames).astype(int)
            self._validation = [self.pair(track[i]) for i in picks]
        return self._validation

    def target_pose_stats(self) -> dict:
        """The target's body size and floor line in the training frame, for pose normalization."""
        from vidtrans.pose.normalize import estimate_pose_stats

        tracks = np.concatenate([self._track(seed) for seed in self.train_seeds[:20]])
        return estimate_pose_stats(tracks, self.size, self.size).to_dict()

    def background(self) -> np.ndarray:
        """The target's room without the character (nothing is drawn for missing keypoints)."""
        from vidtrans.pose.keypoints import NUM_KEYPOINTS
        from vidtrans.train.synth import render_person

        return render_person(np.zeros((NUM_KEYPOINTS, 3), np.float32), self.size, self.size, self.look)


class VideoPairs:
    """Pairs from a video of the target person: each frame's detected pose map -> the frame.

    Frames are cropped to a square around where the person dances (full height) and scaled to
    `size`; the pose statistics of the target in that frame go into the model card so that
    `run --normalize` can fit other dancers to this body. The last tenth of the clip is held out.
    """

    def __init__(self, video: str | os.PathLike, size: int = 256, style=None, max_frames: int = 3000,
                 progress=None):
        from vidtrans.pose.track import detect_keypoints
        from vidtrans.pose.normalize import estimate_pose_stats
        from vidtrans.pose.render import PoseStyle
        from vidtrans.pose.smoothing import smooth_track
        from vidtrans.video import VideoReader

        self.size = size
        self.style = style or PoseStyle()
        track = smooth_track(detect_keypoints(video, progress=progress))
        found = track[..., 2].max(axis=1) > 0
        if found.sum() < 10:
            raise VidtransError(f"{video}: a person was found in only {int(found.sum())} of {len(track)} frames; "
                                "train from a video that shows the target person's whole body")
        with VideoReader(video) as reader:
            height, width = reader.info.height, reader.info.width
            keep = set(np.flatnonzero(found)[np.linspace(0, found.sum() - 1, min(max_frames, found.sum())).astype(int)])
            side = min(height, width)
            centre_x = float(np.median(track[found][..., 0][track[found][..., 2] > 0]))
            left = int(np.clip(round(centre_x - side / 2), 0, width - side))
            top = (height - side) // 2
            scale = size / side
            frames, poses = [], []
            for i, frame in enumerate(reader):
                if i in keep:
                    crop = frame.image[top:top + side, left:left + side]
                    frames.append(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA))
                    pose = track[i].copy()
                    pose[:, 0] = (pose[:, 0] - left + 0.5) * scale - 0.5
                    pose[:, 1] = (pose[:, 1] - top + 0.5) * scale - 0.5
                    pose[pose[:, 2] <= 0] = 0
                    poses.append(pose)
        self.poses = np.stack(poses)
        self.frames = frames
        self.split = max(1, int(len(frames) * 0.9))
        try:
            self.stats = estimate_pose_stats(self.poses, size, size).to_dict()
        except VidtransError:
            self.stats = None  # upper-body footage: the model still trains, but cannot normalize
        self._validation: list[tuple[np.ndarray, np.ndarray]] | None = None

    def pair(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        from vidtrans.pose.render import render_pose

        return render_pose(self.poses[i], self.size, self.size, self.style), self.frames[i]

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        i = int(rng.integers(self.split))
        return (*self.pair(i), self.poses[i])

    def validation(self) -> list[tuple[np.ndarray, np.ndarray]]:
        if self._validation is None:
            held_out = range(self.split, len(self.frames)) if self.split < len(self.frames) else range(len(self.frames))
            self._validation = [self.pair(i) for i in list(held_out)[:64]]
        return self._validation

    def target_pose_stats(self) -> dict | None:
        return self.stats

    def background(self) -> np.ndarray:
        """The target's scene without them: the per-pixel median of (up to 99 of) the training
        crops, as the dancer covers any one pixel in a minority of frames."""
        picks = np.linspace(0, self.split - 1, min(self.split, 99)).astype(int)
        return np.median(np.stack([self.frames[i] for i in picks]), axis=0).round().astype(np.uint8)
