"""Training pairs (input image, target image): from our synthetic character, a paired folder, or a target video.

Every source offers `sample(rng)` (a random training pair, with the keypoints of the person in
the target image when it knows them: training weighs the face by them) and `validation()` (a fixed
held-out list). Sources of moving pictures (synthetic dances, a target video) also offer
`sample_sequence(rng, length)` and `validation_sequences(length)`: consecutive frames, what a
temporal model trains and is scored on; a paired folder's pairs are unrelated pictures. Images are
uint8 RGB at the training size.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import logging
import os
import struct
import unicodedata
import zlib
from pathlib import Path
from typing import Any, Collection

import cv2
import numpy as np

from vidtrans.errors import UsageError, VidtransError, first_line
from vidtrans.metrics import MIN_SCORED_FRAMES
from vidtrans.options import TrainPose, is_int, shown, shown_path
from vidtrans.video.reader import is_animated_webp

log = logging.getLogger(__name__)

# What a card records as the data of a synthetic run (`data_description`).
SYNTHETIC_DATA = "synthetic (procedural character and dances rendered by vidtrans)"

# pix2pix's image extensions (its IMG_EXTENSIONS), and WebP.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".webp")
# What is wrong with an image file OpenCV does not read, and how many such files a message names.
UNREADABLE = "not a readable image (corrupt, cut short or of a kind OpenCV does not read)"
NAMED_AT_MOST = 5
# An AB image narrower than this cannot hold two sides that the networks' first layers can take.
MIN_AB_WIDTH = 2 * 4
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"
# JPEG markers: those starting a frame (its header holds the picture's size) are C0-CF but for C4
# (Huffman tables), C8 (reserved) and CC (arithmetic coding conditions); TEM and the restarts
# stand alone (no length follows).
_JPEG_FRAME = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8)}
_JPEG_EXIF, _JPEG_SCAN, _JPEG_END = 0xE1, 0xDA, b"\xff\xd9"
_EXIF_ORIENTATION = 0x0112
_EXIF_QUARTER_TURNS = (5, 6, 7, 8)  # orientations that swap width and height


def _read_image(path: Path) -> np.ndarray:
    """The image file `path` as uint8 RGB, upright as its EXIF orientation says; transparent
    pixels over black. Decoded from its bytes, as `image_size` decodes what it checks by decoding:
    OpenCV's `imread` fails on some files its `imdecode` reads (a TIFF with an EXIF orientation)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise _missing(path) from None
    except OSError:
        data = b""
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    except cv2.error:
        image = None
    if image is None:
        raise VidtransError(f"{path}: {UNREADABLE}; remove or replace it")
    return _oriented(_over_black(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), data), _webp_orientation(data))


def _over_black(image: np.ndarray, data: bytes) -> np.ndarray:
    """`image`, the colour OpenCV reads from the PNG or WebP file `data`, with its transparent
    pixels over black. OpenCV's colour of those formats is the colour stored under the alpha
    channel, which viewers do not show and which holds anything (whatever a cut-out tool left
    there); its TIFF colour is already over black, as are the pose maps and the black bars
    training draws."""
    png = data.startswith(PNG_SIGNATURE)
    # A WebP can hold alpha when lossless (VP8L) or extended with its alpha flag (VP8X); a plain
    # lossy one (VP8) cannot, and is not decoded a second time.
    webp = data[:4] == b"RIFF" and data[8:12] == b"WEBP" and (
        data[12:16] == b"VP8L" or data[12:16] == b"VP8X" and len(data) > 20 and data[20] & 0x10)
    if not (png and (data[25:26] in (b"\x04", b"\x06") or b"tRNS" in data) or webp):
        return image
    full = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if full is None or full.ndim != 3 or full.shape[2] not in (2, 4):
        return image
    alpha = full[..., -1]
    if png:  # OpenCV turns the colour by the PNG's EXIF, not what it reads unchanged (WebP: neither)
        alpha = _oriented(alpha, _png_orientation(data))
    if alpha.shape != image.shape[:2]:
        return image
    opacity = alpha.astype(np.float32) / np.iinfo(alpha.dtype).max
    return (image * opacity[..., None] + 0.5).astype(np.uint8)


def _oriented(image: np.ndarray, orientation: int) -> np.ndarray:
    """`image` turned and mirrored by an EXIF orientation (1-8) as OpenCV's imread does it."""
    if orientation in (5, 6, 7, 8):
        image = image.T if image.ndim == 2 else image.transpose(1, 0, *range(2, image.ndim))
    flip = {2: 1, 3: -1, 4: 0, 6: 1, 7: -1, 8: 0}.get(orientation)
    return image if flip is None else cv2.flip(np.ascontiguousarray(image), flip)


def _png_orientation(data: bytes) -> int:
    """The EXIF orientation (1: as stored) of a PNG's eXIf chunk (OpenCV reads one after the image
    data too)."""
    view, position = memoryview(data), len(PNG_SIGNATURE)
    while position + 12 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        if kind == b"IEND":
            break
        if kind == b"eXIf":
            return _exif_orientation(view[position + 8:position + 8 + length])
        position += 12 + length
    return 1


def _webp_orientation(data: bytes) -> int:
    """The EXIF orientation (1: as stored) of a WebP's first EXIF chunk, wherever it lies. OpenCV
    ignores it, where it turns JPEG, PNG and TIFF; FFmpeg, which reads photos for `run` and
    `batch`, turns the picture by it (as here: a TIFF header first, nothing found behind an
    'Exif\\0\\0' prefix), so training sees a phone's WebP upright as they do."""
    if not (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        return 1
    view, position = memoryview(data), 12
    while position + 8 <= len(data):
        kind, length = struct.unpack_from("<4sI", data, position)
        if kind == b"EXIF":
            return _exif_orientation(view[position + 8:position + 8 + length])
        position += 8 + length + length % 2  # chunks are padded to an even length
    return 1


def data_description(target, data, synthetic: bool) -> str:
    """The card's `training["data"]`: the kind of source and its file or folder name."""
    if synthetic:
        return SYNTHETIC_DATA
    # abspath: `--data .` names the folder itself, and (unlike resolve) a link keeps its own name.
    name = Path(os.path.abspath(data if data is not None else target)).name
    return f"paired folder {name}" if data is not None else f"target video {name}"


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) of the image file `path` as OpenCV reads it (turned by its EXIF
    orientation), or None where it would not read it whole: corrupt, cut short, not an image, or
    not readable at all. PNG and JPEG files, most of any folder, are checked by their structure
    instead of decoded (every chunk there with its checksum; the markers, the frame header and the
    scan's end): about 0.1 ms rather than 2-35 ms an image from 256x512 to 1024x2048, and without
    the line libpng prints for each PNG it cannot read. A JPEG cut short, which OpenCV decodes
    with grey where the rest is missing (libjpeg printing a line each time), counts as unreadable.
    Other kinds are decoded."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if data.startswith(PNG_SIGNATURE):
        return _png_size(data)
    if data.startswith(JPEG_SIGNATURE):
        return _jpeg_size(data)
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    except cv2.error:
        return None
    if image is None:
        return None
    return _turned((image.shape[1], image.shape[0]), _webp_orientation(data) in _EXIF_QUARTER_TURNS)


# OpenCV refuses to decode images of more pixels than this (its own default, which this variable sets).
_MAX_PIXELS = int(os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS", 1 << 30))


def _turned(size: tuple[int, int], turned: bool) -> tuple[int, int] | None:
    """(width, height) of a picture stored `size` (None if either is 0, or if OpenCV would refuse
    its pixel count), turned a quarter by its EXIF."""
    width, height = size
    if not (width and height) or width * height > _MAX_PIXELS:
        return None
    return (height, width) if turned else (width, height)


def _png_size(data: bytes) -> tuple[int, int] | None:
    """A PNG's size if every chunk is there up to IEND, critical ones (an upper-case first letter)
    with the right checksum, as libpng requires; None otherwise."""
    view, position, size, turned = memoryview(data), len(PNG_SIGNATURE), None, False
    while position + 12 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        end = position + 12 + length
        if end > len(data):
            return None
        if not kind[0] & 0x20 and zlib.crc32(view[position + 4:end - 4]) != struct.unpack_from(">I", data, end - 4)[0]:
            return None
        if kind == b"IHDR" and length >= 8:
            size = struct.unpack_from(">II", data, position + 8)
        elif kind == b"eXIf":
            turned = _exif_turned(view[position + 8:end - 4])
        elif kind == b"IEND":
            return None if size is None else _turned(size, turned)
        position = end
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """A JPEG's size if its markers lead to a frame header and a scan, and the scan's end marker
    follows (none can occur inside the scan's data); None otherwise."""
    position, size, turned = 2, None, False  # past the start-of-image marker
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF or marker in _JPEG_STANDALONE:  # a fill byte, or a marker without a segment
            position += 1 if marker == 0xFF else 2
            continue
        (length,) = struct.unpack_from(">H", data, position + 2)
        segment = memoryview(data)[position + 4:position + 2 + length]
        if marker in _JPEG_FRAME and len(segment) >= 5:
            height, width = struct.unpack_from(">HH", segment, 1)
            size = (width, height)
        elif marker == _JPEG_EXIF and segment[:6] == b"Exif\0\0":
            turned = _exif_turned(segment[6:])
        elif marker == _JPEG_SCAN:
            return None if size is None or data.rfind(_JPEG_END) < position else _turned(size, turned)
        position += 2 + length
    return None


def _exif_turned(exif: memoryview) -> bool:
    """Whether an EXIF block (a TIFF header and its first directory) turns the picture a quarter,
    as OpenCV then does when it decodes it."""
    return _exif_orientation(exif) in _EXIF_QUARTER_TURNS


def _exif_orientation(exif: memoryview) -> int:
    """The orientation (1-8; 1: as stored) an EXIF block (a TIFF header and its first directory) gives."""
    order = {b"II": "<", b"MM": ">"}.get(bytes(exif[:2]))
    if order is None:
        return 1
    try:
        (directory,) = struct.unpack_from(order + "I", exif, 4)
        (entries,) = struct.unpack_from(order + "H", exif, directory)
        for entry in range(directory + 2, directory + 2 + 12 * entries, 12):
            tag, _, _, value = struct.unpack_from(order + "HHIH", exif, entry)
            if tag == _EXIF_ORIENTATION:
                return value
    except struct.error:  # a directory past the block's end: OpenCV finds no orientation either
        pass
    return 1


def _unreadable(root: Path, paths: list[Path]) -> VidtransError:
    """One line naming the image files of the folder `root` that OpenCV does not read."""
    if len(paths) == 1:
        return VidtransError(f"{paths[0]}: {UNREADABLE}; remove or replace it")
    named = ", ".join(str(p.relative_to(root)) for p in paths[:NAMED_AT_MOST])
    more = f" and {len(paths) - NAMED_AT_MOST} more" if len(paths) > NAMED_AT_MOST else ""
    return VidtransError(f"{root}: {len(paths)} files, each {UNREADABLE}: {named}{more}; remove or replace them")


def _line_up(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Whether images of sizes `a` and `b` (width, height) line up pixel for pixel once each is
    resized to the training square: b scaled to a's width is a's height, within a pixel."""
    return abs(b[1] * a[0] / b[0] - a[1]) < 1


def _missing(path: Path) -> VidtransError:
    """The error for an image file listed in a folder that is not there (to be read)."""
    if path.is_symlink():
        target = os.readlink(path)
        try:
            os.stat(path)
        except OSError as e:
            if e.errno == errno.ELOOP:  # every link in it is there: "does not exist" would mislead
                return VidtransError(f"{path}: a link in a loop of links (to {target}, which leads back to it); fix "
                                     "or remove the link")
        return VidtransError(f"{path}: broken link (to {target}, which does not exist); fix or remove the link")
    return VidtransError(f"{path}: no such file (removed while training?); put it back or restart training")


def _fit(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """`image` at `size`: a square's side (training's), or (height, width) (a model's native size,
    which evaluation scores a non-square model at)."""
    height, width = (size, size) if isinstance(size, int) else size
    if image.shape[:2] == (height, width):
        return image
    shrunk = image.shape[0] > height
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrunk else cv2.INTER_LINEAR)


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _is_hidden(path: Path) -> bool:
    """Hidden files are left out, as `batch` leaves them out: macOS `._x.png` (AppleDouble, not
    images at all), editors' and tools' temporary files."""
    return path.name.startswith(".")


def _by_name(images: list[Path]) -> dict[str, Path]:
    """`images` by their name without extension, which pairs A/ and B/; two of one name (3.png and
    3.jpg) refused, since either could be the partner."""
    named: dict[str, Path] = {}
    for image in images:
        if image.stem in named:
            raise UsageError(f"{image.parent}: {named[image.stem].name} and {image.name} have the same name, which "
                             "pairs an image of A/ with one of B/; rename or remove one of them")
        named[image.stem] = image
    return named


def _loose_images(folder: Path) -> list[Path]:
    """The image files (not hidden) right in `folder`: side-by-side AB images, in pix2pix's layout."""
    return sorted(p for p in folder.iterdir() if _is_image(p) and not _is_hidden(p) and p.is_file())


def _halves(folder: Path) -> list[Path]:
    """The subfolders of `folder` named as the A/B layout's halves (in either case)."""
    return sorted(p for p in folder.iterdir() if p.name in ("A", "a", "B", "b") and p.is_dir())


def _named(paths: list[Path]) -> str:
    """`paths` (files or folders) in a message: the first few by name, with how many more."""
    shown = [f"{p.name}/" if p.is_dir() else p.name for p in paths[:NAMED_AT_MOST]]
    more = f" and {len(paths) - NAMED_AT_MOST} more" if len(paths) > NAMED_AT_MOST else ""
    return ", ".join(shown) + more


# A paired folder without val/ holds out the pairs whose names hash to one of this many values: about
# one in ten, as pix2pix's datasets split theirs.
HELD_OUT_ONE_IN = 10


def _pair_name(pair: tuple[Path, Path | None]) -> str:
    """What names a pair for the held-out split: its file name without extension (A/ and B/ pair by
    it), so a pair converted to another format stays on its side; in Unicode's composed form, as a
    folder copied through macOS (which decomposes accents) still names its pairs alike."""
    return unicodedata.normalize("NFC", pair[0].stem)


def _name_hash(name: str) -> int:
    """A hash of a pair's name that is the same in every process and Python (unlike hash())."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8", "surrogateescape")).digest()[:8], "big")


def _held_out_by_name(pairs: list[tuple[Path, Path | None]], kept: set[str]) -> set[tuple[Path, Path | None]]:
    """The pairs (2 or more) held out by their names: those whose name hashes to one value in
    HELD_OUT_ONE_IN, and those named in `kept`. Adding or removing pairs moves no other pair between
    training and validation. Where no name is chosen (a small folder), the pair of the lowest hash
    is; where every one is, the pair of the highest hash is trained on."""
    ranked = sorted(pairs, key=lambda p: (_name_hash(_pair_name(p)), str(p[0])))
    held = [p for p in ranked if _name_hash(_pair_name(p)) % HELD_OUT_ONE_IN == 0 or _pair_name(p) in kept]
    if len(held) == len(pairs):
        held = held[:-1]
    return set(held or ranked[:1])


class PairedFolder:
    """pix2pix's layouts: side-by-side `AB` images (A left, B right, split at width // 2 as pix2pix's
    aligned dataset does, so B has the extra column of an odd width), or `A/` and `B/` folders with
    matching file names. A `val/` (or `test/`) subfolder in the same layout is the held-out split;
    without one, about a tenth of the pairs are, chosen by their names (`held_out_names`), so a pair
    added to the folder does not move others between training and validation. A single pair cannot
    be held out: validation then scores that training pair (`validation_held_out` False). One folder
    holds one layout: side-by-side images beside A/ or B/, or beside train/, are refused rather than
    some of them left out unsaid.

    `size`: what every image is resized to: the training square's side, or (height, width).
    `scoring`: only the pairs `evaluated` are needed, so a folder of a val/ (or test/) split alone
    (a dataset's test download) will do.
    `keep_held_out`: names of pairs the run being resumed held out, which stay held out (the one
    chosen when no name was, in a small folder, would otherwise be trained on once pairs are added).

    Every image is checked once when the folder is read (`image_size`): a file OpenCV cannot
    read is refused then, with the others like it in one line, not when a sample first draws it
    (hours into a run, and again after --resume, which draws the same samples); `progress(done,
    total, what)` is told how far the check is."""

    def __init__(self, root: str | os.PathLike, size: int | tuple[int, int] = 256, direction: str = "AtoB",
                 flip: bool = True, progress=None, keep_held_out: Collection[str] = (), scoring: bool = False):
        self.root = Path(root)
        self.scoring = scoring
        self.size = size
        self.flip = flip
        self.swap = direction == "BtoA"
        fix = "pass a folder of AB images or with A/ and B/ subfolders"
        try:
            if not self.root.is_dir():
                problem = ("is a file, not a folder" if self.root.is_file() else
                           "is not a folder" if self.root.exists() else "no such folder")  # /dev/null
                raise UsageError(f"{shown_path(self.root)}: {problem}; {fix}")
        except OSError as e:  # a name longer than the file system takes, a parent folder not to be searched
            raise UsageError(f"{shown_path(self.root)}: cannot be read ({first_line(e)}); {fix}") from None
        self.hidden: list[Path] = []  # hidden image files left out
        self.not_files: list[Path] = []  # folders (and devices, FIFOs) with an image's name, left out
        try:
            # held_out_split: the val/ (or test/) folder holding the held-out pairs; None without one.
            self.pairs, self.held_out_split, held_out = self._find_pairs()
        except OSError as e:  # a subfolder that cannot be listed
            raise VidtransError(f"{shown_path(e.filename or self.root)}: cannot be read ({first_line(e)}); make "
                                "it readable or move it out of the folder") from None
        self.validation_held_out = held_out is not None or len(self.pairs) > 1
        self.held_out_names: list[str] = []  # the names of the pairs held out of the folder's own (no val/)
        if held_out is not None:
            self.held_out = held_out
        elif self.validation_held_out:
            held = _held_out_by_name(self.pairs, set(keep_held_out))
            self.held_out = [p for p in self.pairs if p in held]
            self.pairs = [p for p in self.pairs if p not in held]
            self.held_out_names = sorted({_pair_name(p) for p in self.held_out})
        else:
            self.held_out = self.pairs
        self._validation: list[tuple[np.ndarray, np.ndarray]] | None = None
        if self.hidden:
            log.warning("%s: left out %d hidden image file(s) (names starting with '.', e.g. %s), as macOS and "
                        "editors leave them; rename any you meant to train on", self.root, len(self.hidden),
                        self.hidden[0].name)
        if self.not_files:
            example = self.not_files[0]
            kind = "a folder" if example.is_dir() else "not a regular file"
            log.warning("%s: left out %d item(s) named like images that are not image files (e.g. %s, %s)",
                        self.root, len(self.not_files), example, kind)
        self._check_images(progress)

    def _find_pairs(self) -> tuple[list[tuple[Path, Path | None]], Path | None, list[tuple[Path, Path | None]] | None]:
        """The pairs of the folder's layout, its val/ (or test/) folder, and that folder's pairs
        (None, None without one)."""
        train_dir = self.root / "train" if (self.root / "train").is_dir() else self.root
        if train_dir != self.root and (beside := _loose_images(self.root) + _halves(self.root)):
            raise UsageError(f"{self.root}: holds train/ and, beside it, {_named(beside)}, which training would "
                             "leave out; move them into train/ (or train/ out of the folder)")
        held_out = next((self.root / d for d in ("val", "test") if (self.root / d).is_dir()), None)
        alone = self.scoring and held_out is not None and train_dir == self.root and not (
            _loose_images(self.root) or _halves(self.root))
        pairs = [] if alone else self._pairs(train_dir)
        if held_out is None:
            return pairs, None, None
        return pairs, held_out, self._pairs(held_out, fix="put held-out pairs in it (laid out as the training "
                                                           "pairs) or remove it")

    def _check_images(self, progress) -> None:
        """Refuses image files OpenCV cannot read and AB images too narrow to split, and warns
        (once: sample-preparing processes load images again and again) about odd-width AB
        images and A/B pairs that do not line up."""
        pairs = sorted(set(self.pairs) | set(self.held_out))
        files = [path for pair in pairs for path in pair if path is not None]
        sizes = {}
        for done, path in enumerate(files, 1):
            sizes[path] = image_size(path)
            if progress:
                progress(done, len(files), "checking the images")
        if unreadable := [path for path in files if sizes[path] is None]:
            raise _unreadable(self.root, unreadable)
        if animated := next((path for path in files if is_animated_webp(path)), None):
            # OpenCV reads its first picture alone: a pair of one frame of a clip, silently.
            raise VidtransError(f"{animated}: an animated WebP, of which training would see the first picture "
                                "only; save the frames as images, one pair each")
        side_by_side = [a for a, b in pairs if b is None]
        if narrow := next((ab for ab in side_by_side if sizes[ab][0] < MIN_AB_WIDTH), None):
            raise VidtransError(f"{narrow}: {sizes[narrow][0]} pixel(s) wide, too narrow to be a side-by-side AB "
                                "pair; remove it")
        if odd := [ab for ab in side_by_side if sizes[ab][0] % 2]:
            width = sizes[odd[0]][0]
            log.warning("%s: an AB image of odd width %d, split as pix2pix splits it: A the left %d columns, B "
                        "the right %d (the same for any other odd-width image here)", odd[0], width, width // 2,
                        width - width // 2)
        if apart := [(a, b) for a, b in pairs if b is not None and not _line_up(sizes[a], sizes[b])]:
            a, b = apart[0]
            log.warning("%s: %d of its %d pairs have A/ and B/ images of different shapes (e.g. %s %dx%d, %s "
                        "%dx%d), and each is resized to the training square on its own, so they do not line up "
                        "pixel for pixel as pix2pix needs; crop or pad them to one shape", self.root, len(apart),
                        len(pairs), a.relative_to(self.root), *sizes[a], b.relative_to(self.root), *sizes[b])

    def _images_in(self, folder: Path) -> list[Path]:
        """The image files in `folder`, by name; hidden ones are noted in `hidden`, folders and other
        non-files named like images in `not_files`, and left out; a broken link is refused."""
        images = sorted(p for p in folder.iterdir() if _is_image(p))
        self.hidden.extend(p for p in images if _is_hidden(p))
        images = [p for p in images if not _is_hidden(p)]
        if broken := next((p for p in images if not p.exists()), None):  # before training, not when drawn
            raise _missing(broken)
        # A folder named x.png is no corrupt image; a FIFO would block the read.
        self.not_files.extend(p for p in images if not p.is_file())
        return [p for p in images if p.is_file()]

    def _pairs(self, folder: Path, fix: str = "pass a folder of side-by-side AB images or with A/ and B/ subfolders"
               ) -> list[tuple[Path, Path | None]]:
        if (loose := _loose_images(folder)) and (halves := _halves(folder)):
            raise UsageError(f"{folder}: holds both side-by-side AB images ({_named(loose)}) and "
                             f"{_named(halves)}, two layouts, of which training reads one; move the AB images or "
                             f"the subfolders to another folder")
        if (folder / "A").is_dir() and (folder / "B").is_dir():
            a_files, b_files = (_by_name(self._images_in(folder / side)) for side in ("A", "B"))
            common = sorted(a_files.keys() & b_files.keys())
            if empty := next((side for side, files in (("A", a_files), ("B", b_files)) if not files), None):
                # pix2pix's combine_A_and_B.py takes A/train/, B/train/...: not pairs to be found by name.
                inside = [p for p in (folder / empty).iterdir() if p.is_dir()]
                held = f" but subfolders ({_named(inside)}), which are not read" if inside else ""
                raise UsageError(f"{folder}: {empty}/ holds no images{held}; pairs are images of the same name right "
                                 "in A/ and B/: put them there")
            if not common:
                # A folder that holds no pairs is the wrong folder given, as one without images is.
                raise UsageError(f"{folder}: A/ and B/ share no file names; pairs need the same name in both")
            for side, files, other, partners in (("A", a_files, "B", b_files), ("B", b_files, "A", a_files)):
                alone = sorted(files.keys() - partners.keys())
                if alone:
                    log.warning("%s: %d image(s) in %s/ have no partner of the same name in %s/ and are left out "
                                "(e.g. %s)", folder, len(alone), side, other, files[alone[0]].name)
            return [(a_files[k], b_files[k]) for k in common]
        files = self._images_in(folder)
        if not files:
            # One half of the A/B layout, or both spelt in lower case: not a folder without images.
            if halves := sorted(p.name for p in folder.iterdir() if p.name in ("A", "a", "B", "b") and p.is_dir()):
                raise UsageError(f"{folder}: has {' and '.join(f'{h}/' for h in halves)}, not A/ and B/ (the names "
                                 "are case-sensitive), which pair images by name; name its subfolders A/ and B/")
            # The wrong folder given: a usage error, as a missing one is.
            left_out = "".join(f"; {what} are left out" for what, found in (("hidden files", self.hidden),
                                                                             ("folders", self.not_files)) if found)
            raise UsageError(f"{folder}: no images found (the extensions read: {', '.join(IMAGE_SUFFIXES)}{left_out}); "
                             f"{fix}")
        return [(f, None) for f in files]

    def _load(self, pair: tuple[Path, Path | None]) -> tuple[np.ndarray, np.ndarray]:
        a_path, b_path = pair
        if b_path is None:
            ab = _read_image(a_path)
            half = ab.shape[1] // 2  # B has the extra column of an odd width (see _check_images)
            a, b = ab[:, :half], ab[:, half:]
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

    def all_pairs(self, limit: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every pair of the folder (the first `limit`), training and held-out, in file-name order."""
        return self.load(sorted(set(self.pairs) | set(self.held_out))[:limit])

    @property
    def evaluated(self) -> list[tuple[Path, Path | None]]:
        """The pairs `vidtrans eval --data` scores, in file-name order: the val/ (or test/) split's
        where the folder has one (pix2pix's datasets come so, and a model is trained on the pairs
        beside it), else every pair (a folder given to be scored holds pairs the model did not see)."""
        return sorted(self.held_out if self.held_out_split is not None else set(self.pairs) | set(self.held_out))

    def named(self, names: Collection[str]) -> list[tuple[Path, Path | None]]:
        """The pairs of `evaluated` whose names are among `names` (as `held_out_names` gives them)."""
        names = set(names)
        return [pair for pair in self.evaluated if _pair_name(pair) in names]

    def load(self, pairs: list[tuple[Path, Path | None]]) -> list[tuple[np.ndarray, np.ndarray]]:
        """`pairs` (of this folder's) as (input, target) images at the folder's size, unflipped."""
        return [self._load(p) for p in pairs]

    def background(self) -> None:
        return None  # unrelated pairs show no one scene


@dataclasses.dataclass(frozen=True)
class Dances:
    """The procedural dances synthetic training uses: training and validation seeds, their length,
    and how many the detector sees (for the target's statistics, and for detected poses)."""

    train_seeds: range = range(0, 10_000)
    validation_seed: int = 10_000_000
    frames: int = 240  # per dance
    validation_frames: int = 32
    stats_dances: int = 20
    detected_dances: int = 40
    video_size: int | None = None  # of the videos the detector sees; None: train/detected.VIDEO_SIZE


class SyntheticPairs:
    """Pose maps of procedural dances -> our rendered target character, generated on the fly.

    Training draws from dances with seeds in `train_seeds`; validation uses frames spread over
    the dance `validation_seed`, which must lie outside that range (so must `vidtrans eval`'s).

    The pose maps are drawn from the keypoints `train_pose` names (options.TrainPose): the exact
    ones the character is rendered from; those the detector finds on the rendered dances, as `run`
    would on a video of them (the first `detected_dances` training dances, see train/detected.py);
    or the exact ones moved by noise matched to the detector's error, measured on the first
    `stats_dances` dances. The target image, and the keypoints handed with it, are always exact.
    `prepare` runs the detection these need (minutes the first time, then cached): call it before
    sampling detected or noisy poses.
    """

    def __init__(self, size: int = 256, style=None, look=None, train_pose: TrainPose | str = TrainPose.EXACT,
                 dances: Dances = Dances()):
        from vidtrans.pose.render import PoseStyle
        from vidtrans.train.detected import VIDEO_SIZE, DetectedDances
        from vidtrans.train.synth import TARGET_LOOK

        if dances.validation_seed in dances.train_seeds:
            raise VidtransError(f"validation seed {dances.validation_seed} is one of the training seeds")
        self.size = size
        self.style = style or PoseStyle()
        self.look = look or TARGET_LOOK
        self.train_seeds = dances.train_seeds
        self.validation_seed = dances.validation_seed
        self.frames_per_dance = dances.frames
        self.validation_frames = dances.validation_frames
        self.train_pose = TrainPose.parse(train_pose, "train_pose")
        self.stats_seeds = dances.train_seeds[:dances.stats_dances]
        self.detected_seeds = dances.train_seeds[:dances.detected_dances]
        self.detected = DetectedDances(size, self.look, dances.frames, dances.video_size or VIDEO_SIZE,
                                       whole_body=self.style.whole_body)
        self.detector_error = None  # train/detected.DetectorError, measured by `prepare` for noisy poses
        self._found: np.ndarray | None = None  # (detected dance, frame): whether the detector found the person
        self._detected_runs: dict[int, np.ndarray] = {}  # length -> (dance, first frame) of runs with the person
        self._tracks: dict[int, np.ndarray] = {}
        self._validation: dict[int, list[list[tuple[np.ndarray, np.ndarray]]]] = {}

    def prepare(self, progress=None) -> None:
        """Detects (or reads from the cache) the dances the statistics and the pose maps come from."""
        from vidtrans.pose.keypoints import has_person
        from vidtrans.train.detected import DetectorError

        seeds = list(self.stats_seeds)
        if self.train_pose is TrainPose.DETECTED:
            seeds += [s for s in self.detected_seeds if s not in self.stats_seeds] + [self.validation_seed]
        self.detected.prepare(seeds, progress)
        if self.train_pose is TrainPose.DETECTED:
            self._found = np.stack([has_person(self.detected.track(s)) for s in self.detected_seeds])
            if not self._found.any():
                raise VidtransError("the pose detector found nobody in the rendered training dances; "
                                    "check that mediapipe works (vidtrans pose on any video)")
        elif self.train_pose is TrainPose.NOISY:
            exact = np.concatenate([self._track(s) for s in self.stats_seeds])
            detected = np.concatenate([self.detected.track(s) for s in self.stats_seeds])
            self.detector_error = DetectorError.measure(exact, detected, self.look)

    def _track(self, seed: int) -> np.ndarray:
        from vidtrans.train.synth import dance_keypoints

        if seed not in self._tracks:
            if len(self._tracks) > 512:  # keypoints are small, but bound the cache anyway
                self._tracks.clear()
            self._tracks[seed] = dance_keypoints(seed, self.frames_per_dance, self.size, self.size, self.look,
                                                 whole_body=self.style.whole_body)
        return self._tracks[seed]

    def pair(self, keypoints: np.ndarray, shown: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(pose map, target image) of exact `keypoints`; the pose map drawn from `shown` when given."""
        from vidtrans.pose.render import render_pose
        from vidtrans.train.synth import render_person

        return (render_pose(keypoints if shown is None else shown, self.size, self.size, self.style),
                render_person(keypoints, self.size, self.size, self.look))

    def _shown(self, seed: int, frame: int, rng: np.random.Generator) -> np.ndarray:
        """The keypoints the pose map of frame `frame` of dance `seed` is drawn from."""
        if self.train_pose is TrainPose.DETECTED:
            return self.detected.track(seed)[frame]
        exact = self._track(seed)[frame]
        if self.train_pose is TrainPose.NOISY:
            if self.detector_error is None:
                raise VidtransError("SyntheticPairs.prepare() must run before noisy poses are drawn")
            return self.detector_error.perturb(exact, self.look, rng)
        return exact

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.sample_sequence(rng, 1)[0]

    def sample_sequence(self, rng: np.random.Generator,
                        length: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """`length` consecutive frames of one training dance, each as `sample` gives it; with
        detected poses, frames where the detector found the person."""
        if self.train_pose is TrainPose.DETECTED:
            starts = self._detected_starts(length)
            dance, first = starts[rng.integers(len(starts))]
            seed = self.detected_seeds[dance]
        else:
            seed = int(rng.integers(self.train_seeds.start, self.train_seeds.stop))
            first = rng.integers(self.frames_per_dance - length + 1)
        track = self._track(seed)
        return [(*self.pair(track[f], self._shown(seed, f, rng)), track[f]) for f in range(first, first + length)]

    def _detected_starts(self, length: int) -> np.ndarray:
        if self._found is None:
            raise VidtransError("SyntheticPairs.prepare() must run before detected poses are drawn")
        if length not in self._detected_runs:
            windows = np.lib.stride_tricks.sliding_window_view(self._found, length, axis=1)
            self._detected_runs[length] = np.argwhere(windows.all(axis=-1))
            if not len(self._detected_runs[length]):
                raise VidtransError(f"the pose detector found the person in no {length} consecutive frames of the "
                                    "rendered training dances; check that mediapipe works (vidtrans pose on any video)")
        return self._detected_runs[length]

    def validation(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [frames[0] for frames in self.validation_sequences(1)]

    def validation_sequences(self, length: int) -> list[list[tuple[np.ndarray, np.ndarray]]]:
        """`validation_frames` runs of `length` consecutive frames, spread over the validation dance."""
        if length not in self._validation:
            track = self._track(self.validation_seed)
            ends = np.linspace(length - 1, len(track) - 1, self.validation_frames).astype(int)
            rng = np.random.default_rng(self.validation_seed)  # the same noisy poses at every validation
            self._validation[length] = [[self.pair(track[f], self._shown(self.validation_seed, f, rng))
                                         for f in range(end - length + 1, end + 1)] for end in ends]
        return self._validation[length]

    def target_pose_stats(self) -> dict:
        """The target's body size and floor line in the training frame, for pose normalization, as
        `run` measures them on a video of the target: from the keypoints the detector finds on the
        first `stats_dances` training dances. (The renderer's exact keypoints give other figures:
        the detector reads the ankles about 3 px higher at 256 px, so a target's own video was not
        mapped onto itself.)

        Without `centre_x` (None): it exists to undo the offset of a training crop around a
        target who stood off-centre in their video, and the character is trained on whole frames,
        its stage centred. With it, every source clip was moved by its dancer's own average
        position: a held-out dance that wanders to one side came out about 10 px off at 256 px."""
        from vidtrans.pose.normalize import estimate_pose_stats

        tracks = np.concatenate([self.detected.track(seed) for seed in self.stats_seeds])
        stats = estimate_pose_stats(tracks, self.size, self.size)
        return dataclasses.replace(stats, centre_x=None).to_dict()

    def background(self) -> np.ndarray:
        """The target's room without the character (nothing is drawn for missing keypoints)."""
        from vidtrans.pose.keypoints import NUM_KEYPOINTS
        from vidtrans.train.synth import render_person

        return render_person(np.zeros((NUM_KEYPOINTS, 3), np.float32), self.size, self.size, self.look)


# Frames showing the target person that training from a video needs: ten leave eight to learn from
# and two held out (held_out_count).
MIN_PERSON_FRAMES = 10


# A target video's frames are held in memory at the training size, as many as fit in this many
# bytes: 3000 frames (VideoPairs' default) at 256x256 take 0.6 GB, but at 2048x2048 38 GB, which
# filled the machine's memory until the process was killed. A fixed bound, not the memory free
# now, so that a resumed run keeps the same frames and the same held-out tail.
FRAME_MEMORY = 8 * 2**30


def held_out_count(frames: int) -> int:
    """How many of the `frames` frames training keeps from a target video are held out at its end,
    for validation and `vidtrans eval --video`: the last tenth, rounded up, and at least what
    evaluation scores."""
    return max(frames - int(frames * 0.9), MIN_SCORED_FRAMES)


# (left, top, side): a square of a video's frames, in its pixels; it may reach past them (see crop_square).
Crop = tuple[int, int, int]
# What a training square holds where it reaches past the video's frame: black bars, as a
# letterboxed video shows them (an edge repeated would smear a hand touching it across the bar).
CROP_FILL = (0, 0, 0)
# Room the training square leaves around the body's keypoints, as a share of the person's height
# (from the highest keypoint to the lowest): the keypoints stop at the eyes, wrists and ankles. The
# synthetic character's head reaches 0.09 of that height over its eyes, its feet and shadow 0.08
# under its ankles.
BODY_MARGIN = 0.1


def crop_square(image: np.ndarray, crop: Crop, size: int, fill: tuple[int, int, int] = CROP_FILL) -> np.ndarray:
    """The square `crop` of a frame, scaled to size x size: a target video's frame as training sees
    it. Where the square reaches past the frame it holds `fill`."""
    left, top, side = crop
    height, width = image.shape[:2]
    inside = image[max(top, 0):min(top + side, height), max(left, 0):min(left + side, width)]
    square = cv2.copyMakeBorder(inside, max(-top, 0), max(top + side - height, 0), max(-left, 0),
                                max(left + side - width, 0), cv2.BORDER_CONSTANT, value=fill)
    return cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA)


def keypoints_in_crop(keypoints: np.ndarray, crop: Crop, size: int) -> np.ndarray:
    """Keypoints (..., K, 3) of a video's frame in the pixels of `crop_square`'s image (pixel
    centres at whole numbers in both); missing keypoints stay (0, 0, 0)."""
    left, top, side = crop
    scale = size / side
    out = np.array(keypoints, dtype=np.float32, copy=True)
    out[..., 0] = (out[..., 0] - left + 0.5) * scale - 0.5
    out[..., 1] = (out[..., 1] - top + 0.5) * scale - 0.5
    out[out[..., 2] <= 0] = 0
    return out


def _span_start(low: float, high: float, centre: float, side: int, length: int) -> int:
    """Where a span of `side` pixels starts along an axis of the frame `length` long: centred on
    `centre`, moved to hold [low, high] where it is that long, and within the frame, or, where it
    is longer than the frame, holding all of the frame."""
    start = centre - side / 2
    if high - low <= side:
        start = min(max(start, high - side), low)
    return int(np.clip(round(start), min(0, length - side), max(0, length - side)))


def training_crop(track: np.ndarray, width: int, height: int) -> Crop:
    """The square of a width x height video that training on it crops, from the keypoints of the
    person over the clip (T, K, 3, every frame showing them): their whole body (where their
    keypoints reach, with BODY_MARGIN) fits in it, horizontally centred on where they usually are.
    Its side is the frame's shorter one, or the body's height where that is more (a portrait video
    of a dancer taller than its width): the square then reaches past the frame on both sides (see
    crop_square) and holds all of its width. A dancer who travels wider than the square cannot be
    held throughout (`frames_cut` counts the frames they leave it)."""
    from vidtrans.pose.keypoints import NUM_KEYPOINTS

    body = track[..., :NUM_KEYPOINTS, :]
    present = body[..., 2] > 0
    # Pixel edges (pixel i spans [i, i + 1)), as the square's sides count.
    xs, ys = (np.where(present, body[..., axis] + 0.5, np.nan) for axis in (0, 1))
    tops, bottoms = np.nanmin(ys, axis=1), np.nanmax(ys, axis=1)
    lefts, rights = np.nanmin(xs, axis=1), np.nanmax(xs, axis=1)
    margin = BODY_MARGIN * float(np.median(bottoms - tops))
    # Percentiles of each frame's extremes: a keypoint the detector misplaced once does not count.
    top, bottom = max(0.0, np.percentile(tops, 1) - margin), min(height, np.percentile(bottoms, 99) + margin)
    left, right = max(0.0, np.percentile(lefts, 1) - margin), min(width, np.percentile(rights, 99) + margin)
    side = max(min(height, width), int(np.ceil(bottom - top)))
    return (_span_start(left, right, float(np.nanmedian(xs)), side, width),
            _span_start(top, bottom, (top + bottom) / 2, side, height), side)


def crop_fits(crop: Crop, width: int, height: int) -> bool:
    """Whether `crop` is a square training could have chosen in a width x height frame: one that
    lies in the frame, or that holds all of the frame along the sides shorter than it; never
    longer than the frame's longer side (`training_crop` measures the body inside the frame)."""
    left, top, side = crop
    return side <= max(width, height) and all(min(0, length - side) <= offset <= max(0, length - side)
                                              for offset, length in ((left, width), (top, height)))


@dataclasses.dataclass(frozen=True)
class TrainedOn:
    """What a resumed run keeps of the target video's frames its checkpoint was trained on: the square
    (`crop`; None: chosen anew) and what filled it past the frame's edges, and the number of the first
    frame of the held-out tail (`held_out_from`; None: the last tenth, as a new run holds out)."""

    crop: Crop | None = None
    fill: tuple[int, int, int] = CROP_FILL
    held_out_from: int | None = None


def recorded_tail(training: dict[str, Any], where: str) -> tuple[int, str] | None:
    """(the number of the first held-out frame, the target video's file name) as a model card's
    `training` record, made by `vidtrans train VIDEO`, states them; None where it states none (an
    older vidtrans); VidtransError, naming the card `where`, for a damaged record."""
    if "held_out" not in training:
        return None
    held_out, name = training["held_out"], training.get("video")
    first = held_out.get("from_frame") if isinstance(held_out, dict) else None
    if not (is_int(first) and first >= 0 and isinstance(name, str)):
        raise VidtransError(f"{where}'s card: its record of the training video ({shown(name)}, held out from "
                            f"frame {shown(first)}) is not a file name and a frame number; fix the model card")
    return first, name


def recorded_square(training: dict[str, Any], where: str) -> tuple[Crop, tuple[int, int, int]] | None:
    """The square of its target video's frames that a model card's `training` record says the model
    was trained on (`crop`), and what filled it past the frame's edges (`crop_fill`); None where it
    records none (an older vidtrans). VidtransError, naming the card `where`, for a record that is
    no such square: `--resume` and `eval --video` rebuild the training frames from it."""
    crop, fill = training.get("crop"), training.get("crop_fill", list(CROP_FILL))
    if crop is None:
        return None

    def three_whole_numbers(values) -> bool:
        return isinstance(values, list) and len(values) == 3 and all(is_int(v) for v in values)

    if not (three_whole_numbers(crop) and crop[2] >= 1 and three_whole_numbers(fill)
            and all(0 <= v <= 255 for v in fill)):
        raise VidtransError(f"{where}: the model card's training square {shown(crop)} (fill {shown(fill)}) is not "
                            "[left, top, side] in whole pixels (and an RGB colour); fix the model card")
    return tuple(crop), tuple(fill)


def recorded_training_square(training: dict[str, Any], where: str):
    """The `normalize.TrainingSquare` a model card's `training` record says the model was trained on
    (its `crop` of a video of `frame_size`), which pose normalization crops a clip framed as that
    video was by; None where it records no such square (not trained from a video, or by an older
    vidtrans). VidtransError, naming the card `where`, for a damaged record."""
    from vidtrans.pose.keypoints import is_frame_size
    from vidtrans.pose.normalize import TrainingSquare

    square, size = recorded_square(training, where), training.get("frame_size")
    if square is None or size is None:
        return None
    if not (isinstance(size, list) and is_frame_size(size) and all(is_int(side) for side in size)):
        raise VidtransError(f"{where}: the model card's training video size {shown(size)} is not [width, height] in "
                            "whole pixels; fix the model card")
    return TrainingSquare(*size, *square[0])


def frames_cut(track: np.ndarray, crop: Crop) -> int:
    """How many poses of `track` (T, K, 3) have a body keypoint outside the square `crop`."""
    from vidtrans.pose.keypoints import NUM_KEYPOINTS

    left, top, side = crop
    body = track[..., :NUM_KEYPOINTS, :]
    x, y = body[..., 0] + 0.5, body[..., 1] + 0.5  # pixel edges, as the crop counts
    outside = (x < left) | (x >= left + side) | (y < top) | (y >= top + side)
    return int((outside & (body[..., 2] > 0)).any(axis=-1).sum())


class VideoPairs:
    """Pairs from a video of the target person: each frame's detected pose map -> the frame.

    Frames are cropped to a square that holds the person's whole body (`training_crop`; past the
    frame's edges where the body is taller than the frame is wide, filled with CROP_FILL) and
    scaled to `size`; the pose statistics of the target in that frame go into the model card so that
    `run --normalize` can fit other dancers to this body. The last tenth of the clip (at least
    MIN_SCORED_FRAMES frames with the person, held_out_count) is held out: `held_out_from` is the
    (frame index, time in seconds) of its first frame; no frame from there to the end of the video
    is trained on (`vidtrans eval --video` scores on them).

    Up to `max_frames` frames showing the person are kept, spread over the clip. `sequence_length`
    > 1 (a temporal model's samples) keeps each picked frame with its successors, so that a long
    clip still has consecutive frames to train on.

    `crop` (and `fill`) replace the square `training_crop` would choose: a resumed run trains on
    the frames its checkpoint was trained on, whichever way that square was chosen.
    """

    def __init__(self, video: str | os.PathLike, size: int = 256, style=None, max_frames: int = 3000,
                 progress=None, sequence_length: int = 1, trained_on: TrainedOn = TrainedOn()):
        from vidtrans.pose.keypoints import has_person
        from vidtrans.pose.track import detect_keypoints
        from vidtrans.pose.normalize import estimate_target_stats
        from vidtrans.pose.render import PoseStyle
        from vidtrans.pose.smoothing import smooth_track
        from vidtrans.video import VideoReader

        self.video = Path(video)
        self.size = size
        self.style = style or PoseStyle()
        self.fill = fill = trained_on.fill
        crop = trained_on.crop
        track = smooth_track(detect_keypoints(video, progress=progress, whole_body=self.style.whole_body))
        found = has_person(track)
        if len(track) == 1:
            raise VidtransError(f"{video}: a single picture, and training needs a video of at least "
                                f"{MIN_PERSON_FRAMES} frames of the person; train from a video of them")
        if found.sum() < MIN_PERSON_FRAMES and found.all():
            raise VidtransError(f"{video}: the person is in all {len(track)} frames, but the clip is too short: "
                                f"training needs at least {MIN_PERSON_FRAMES}; train from a longer video of them")
        if found.sum() < MIN_PERSON_FRAMES:
            found_in = f"only {int(found.sum())} of {len(track)} frames" if found.any() else \
                f"none of its {len(track)} frames"
            raise VidtransError(f"{video}: a person was found in {found_in}, and "
                                f"training needs at least {MIN_PERSON_FRAMES}; train from a video that shows the "
                                "target person's whole body")
        if not found.all():
            log.warning("%s: a person was found in %d of %d frames; the frames without one are left out of training",
                        video, int(found.sum()), len(track))
        with VideoReader(video) as reader:
            height, width = reader.info.height, reader.info.width
            self.frame_size = (width, height)
            shown = np.flatnonzero(found)
            fit = max(MIN_PERSON_FRAMES, FRAME_MEMORY // (size * size * 3))
            picked = shown[np.linspace(0, len(shown) - 1, min(min(max_frames, fit) // sequence_length,
                                                              len(shown))).astype(int)]
            keep = {i + k for i in picked for k in range(sequence_length) if i + k < len(found) and found[i + k]}
            if fit < min(max_frames, len(shown)):
                from vidtrans.options import spell

                log.warning("%s: training keeps %d of the %d frames showing the person, spread over the clip, as it "
                            "holds them in memory and at %s %d no more fit in %g GiB; train at a smaller %s to keep "
                            "more", video, len(keep), len(shown), spell("size"), size, FRAME_MEMORY / 2**30,
                            spell("size"))
            if crop is not None and not crop_fits(crop, width, height):
                raise VidtransError(f"{video}: {reader.info.size_text}, which the training square {list(crop)} does "
                                    "not fit; train on the video that square was chosen in")
            self.crop: Crop = training_crop(track[found], width, height) if crop is None else crop
            self._tell_about_crop(track[found])
            frames, poses, kept = [], [], []
            for i, frame in enumerate(reader):
                if i in keep:
                    frames.append(crop_square(frame.image, self.crop, size, fill))
                    poses.append(keypoints_in_crop(track[i], self.crop, size))
                    kept.append((i, frame.time))
        self.poses = np.stack(poses)
        self.frames = frames
        self.indices = np.array([i for i, _ in kept])  # each kept frame's number in the video
        self.split = len(frames) - held_out_count(len(frames))
        runs = self._starts(0, len(frames), sequence_length)
        if trained_on.held_out_from is not None:
            # What the checkpoint held out stays held out: the tail counted anew could move (detection on
            # another machine finding the person in a frame more or less) onto frames it was scored on.
            self.split = int(np.searchsorted(self.indices, trained_on.held_out_from))
            if not 0 < self.split < len(frames):
                raise VidtransError(f"{video}: the checkpoint held out its frames from number "
                                    f"{trained_on.held_out_from} on, which now leaves {self.split} of the "
                                    f"{len(frames)} frames showing the person to train on and "
                                    f"{len(frames) - self.split} to hold out; resume on the video it was trained on")
        elif sequence_length > 1 and len(runs) and not len(self._starts(self.split, len(frames), sequence_length)):
            # A temporal model is scored on consecutive frames: a tail without them (the person
            # seen on and off at the clip's end) would leave it unscored, silently.
            self.split = int(runs[-1])
            log.warning("%s: the last tenth of the frames showing the person has no %d consecutive ones to score "
                        "a temporal model on, so the held-out tail starts at frame %d, where the last such run "
                        "does", self.video, sequence_length, int(self.indices[self.split]))
        # Kept frames are in clip order, so no frame from the first held-out one on was trained on.
        self.held_out_from: tuple[int, float] = kept[self.split]
        try:
            stats = estimate_target_stats(self.poses, size, size)
        except VidtransError:
            # Neither a whole body nor shoulders: the model still trains, but runs cannot fit other dancers to it.
            self.stats = None
            log.warning("%s: too few training frames show the whole body (head and ankles) or the neck and both "
                        "shoulders to measure the person, so run and eval will scale other dancers' poses to the "
                        "frame instead of fitting them to this body", self.video)
        else:
            self.stats = stats.to_dict()
            if not stats.whole_body:  # upper-body footage
                log.warning("%s: too few training frames show the whole body (head and ankles) to measure it, so "
                            "run and eval will fit other dancers to this person by their upper body (shoulders "
                            "and neck)", self.video)
        self._validation: dict[int, list[list[tuple[np.ndarray, np.ndarray]]]] = {}
        self._training_starts(sequence_length)  # refuses a clip without such sequences now, not when training

    @property
    def padded(self) -> bool:
        """Whether the training square reaches past the video's frame (filled with `fill` there)."""
        left, top, side = self.crop
        return left < 0 or top < 0 or left + side > self.frame_size[0] or top + side > self.frame_size[1]

    @property
    def square(self) -> str:
        """The training square as messages name it."""
        left, top, side = self.crop
        return f"the training square ({side}x{side} pixels at x {left}, y {top})"

    def _tell_about_crop(self, track: np.ndarray) -> None:
        """A warning where the square cannot hold the person throughout. (One that holds too few
        pixels for the training size is told by the training setup, which knows what sizes the
        networks take.)"""
        cut = frames_cut(track, self.crop)
        if cut:
            log.warning("%s: the person reaches out of %s in %d of the %d frames showing them, which train with "
                        "their body cut off; a video that keeps them within a square of its height trains on all "
                        "of them", self.video, self.square, cut, len(track))

    def pair(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        from vidtrans.pose.render import render_pose

        return render_pose(self.poses[i], self.size, self.size, self.style), self.frames[i]

    def _starts(self, first: int, end: int, length: int) -> np.ndarray:
        """Positions (in `frames`) from `first` that begin `length` kept frames consecutive in the
        video, all before position `end`."""
        starts = np.arange(first, max(first, end - length + 1))
        return starts[self.indices[starts + length - 1] - self.indices[starts] == length - 1]

    def _training_starts(self, length: int) -> np.ndarray:
        starts = self._starts(0, self.split, length)
        if not len(starts):
            raise VidtransError(f"{self.video}: the person is seen in no {length} consecutive frames before the "
                                "held-out tail; train a temporal model from a video that shows them throughout")
        return starts

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.sample_sequence(rng, 1)[0]

    def sample_sequence(self, rng: np.random.Generator,
                        length: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """`length` consecutive frames of the video (before the held-out tail), each as `sample` gives it."""
        starts = self._training_starts(length)
        first = int(starts[rng.integers(len(starts))])
        return [(*self.pair(i), self.poses[i]) for i in range(first, first + length)]

    def validation(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [frames[0] for frames in self.validation_sequences(1)]

    def validation_sequences(self, length: int) -> list[list[tuple[np.ndarray, np.ndarray]]]:
        """Up to 64 runs of `length` consecutive frames of the held-out tail."""
        if length not in self._validation:
            self._validation[length] = [[self.pair(i) for i in range(start, start + length)]
                                        for start in self._starts(self.split, len(self.frames), length)[:64]]
        return self._validation[length]

    def target_pose_stats(self) -> dict | None:
        return self.stats

    def background(self) -> np.ndarray:
        """The target's scene without them: the per-pixel median of (up to 99 of) the training
        crops, as the dancer covers any one pixel in a minority of frames."""
        picks = np.linspace(0, self.split - 1, min(self.split, 99)).astype(int)
        return np.median(np.stack([self.frames[i] for i in picks]), axis=0).round().astype(np.uint8)
