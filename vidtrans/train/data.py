"""Training pairs (input image, target image): from our synthetic character, a paired folder, or a target video.

Every source offers `sample(rng)` (a random training pair) and `validation()` (a fixed held-out
list). Images are uint8 RGB at the training size.
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

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        a, b = self._load(self.pairs[rng.integers(len(self.pairs))])
        # pix2pix's default augmentation; off for pose maps, whose colours encode left and right.
        if self.flip and rng.random() < 0.5:
            a, b = a[:, ::-1].copy(), b[:, ::-1].copy()
        return a, b

    def validation(self) -> list[tuple[np.ndarray, np.ndarray]]:
        if self._validation is None:
            self._validation = [self._load(p) for p in self.held_out[:64]]
        return self._validation
