"""QA pass 13, training: every image of a paired folder is checked before the first step, the bad
ones named in one line (item 5); a target video holds out what `eval --video` needs (item 8);
--resume refuses another number of torchrun processes (item 9); a warning is told once, by rank 0
under torchrun and not by each sample-preparing process (item 10); A/ and B/ images of different
shapes are named (item 11)."""

import json
import logging
import os
import pickle
import socket
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import one_line
from tests.conftest import run_cli as cli
from tests.media import TINY_TRAINING, make_clip, paired_folder, train_tiny
from vidtrans.errors import UsageError
from vidtrans.models.checkpoint import read_card
from vidtrans.options import TrainOptions
from vidtrans.train.data import PairedFolder, image_size
from vidtrans.train.setup import prepare_training
from vidtrans.train.synth import TARGET_LOOK, dance_keypoints, render_person
from vidtrans.train.trainer import TrainConfig, Trainer

NOISE = np.random.default_rng(0).integers(0, 256, (64, 128, 3), dtype=np.uint8)


def warnings_in(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("vidtrans: warning: ")]


def encoded(image: np.ndarray, suffix: str) -> bytes:
    return cv2.imencode(suffix, image)[1].tobytes()


def with_exif_orientation(image: np.ndarray, suffix: str, orientation: int) -> bytes:
    """`image` as a JPEG (an APP1 Exif segment) or PNG (an eXIf chunk) whose EXIF turns it."""
    exif = (b"MM\x00\x2a" + struct.pack(">IH", 8, 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)
            + struct.pack(">I", 0))
    plain = encoded(image, suffix)
    if suffix == ".jpg":
        app1 = b"Exif\x00\x00" + exif
        return plain[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + plain[2:]
    chunk = struct.pack(">I", len(exif)) + b"eXIf" + exif + struct.pack(">I", zlib.crc32(b"eXIf" + exif))
    return plain[:33] + chunk + plain[33:]  # after the signature and IHDR


@pytest.fixture
def vidtrans_log_level():
    """Restores the vidtrans logger's level, which a process of rank > 0 raises for good."""
    logger = logging.getLogger("vidtrans")
    level = logger.level
    yield
    logger.setLevel(level)


# --- 5: every image checked before the first step -----------------------------------------------------


def test_image_size_is_what_opencv_reads_and_none_where_it_would_not(tmp_path):
    png, jpg = encoded(NOISE, ".png"), encoded(NOISE, ".jpg")
    crc_broken = bytearray(png)
    crc_broken[60] ^= 0xFF  # inside the IDAT chunk
    good = {"rgb.png": png, "rgb.jpg": jpg, "grey.png": encoded(NOISE[..., 0], ".png"),
            "rgba16.png": encoded(np.dstack([NOISE, NOISE[..., :1]]).astype(np.uint16) * 257, ".png"),
            "turned.jpg": with_exif_orientation(NOISE, ".jpg", 6),
            "turned.png": with_exif_orientation(NOISE, ".png", 8),
            "mirrored.jpg": with_exif_orientation(NOISE, ".jpg", 2),
            "x.bmp": encoded(NOISE, ".bmp"), "x.tif": encoded(NOISE, ".tif"), "x.webp": encoded(NOISE, ".webp"),
            "x.ppm": encoded(NOISE, ".ppm"), "jpeg_named.png": jpg}
    bad = {"empty.png": b"", "noise.png": NOISE.tobytes()[:3000], "half.png": png[:len(png) // 2],
           "crc.png": bytes(crc_broken), "no_end.png": png[:-12], "half.jpg": jpg[:len(jpg) // 2],
           "header_only.jpg": jpg[:300], "text.jpg": b"<html>404 Not Found</html>"}
    for name, content in {**good, **bad}.items():
        (tmp_path / name).write_bytes(content)
    for name in good:
        image = cv2.imread(str(tmp_path / name))
        assert image_size(tmp_path / name) == (image.shape[1], image.shape[0]), name
    assert image_size(tmp_path / "turned.jpg") == (64, 128) and image_size(tmp_path / "mirrored.jpg") == (128, 64)
    for name in bad:
        assert image_size(tmp_path / name) is None, name


def test_png_and_jpeg_are_checked_without_decoding_them(tmp_path, monkeypatch):
    # Decoding costs 2-35 ms an image (256x512 to 1024x2048): hours of pairs would take minutes.
    folder = tmp_path / "pairs"
    folder.mkdir()
    for i in range(4):
        (folder / f"{i}.png").write_bytes(encoded(NOISE, ".png"))
        (folder / f"{i}.jpg").write_bytes(encoded(NOISE, ".jpg"))

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded")

    monkeypatch.setattr(cv2, "imread", no_decoding)
    monkeypatch.setattr(cv2, "imdecode", no_decoding)
    told = []
    pairs = PairedFolder(folder, size=64, progress=lambda done, total, what: told.append((done, total, what)))
    assert len(pairs.pairs) + len(pairs.held_out) == 8
    assert told[-1] == (8, 8, "checking the images")


def test_bad_images_are_named_in_one_line_before_any_training(tmp_path, capfd):
    folder = paired_folder(tmp_path / "pairs", 30)
    png, jpg = encoded(NOISE, ".png"), encoded(NOISE, ".jpg")
    (folder / "017.png").write_bytes(png[:len(png) // 2])  # cut short: libpng would print a line of its own
    (folder / "018.png").write_bytes(os.urandom(3000))
    (folder / "019.jpg").write_bytes(b"")
    (folder / "020.jpg").write_bytes(jpg[:len(jpg) // 2])  # OpenCV decodes it with a grey half
    out = tmp_path / "m"
    line = one_line(cli("train", "--data", folder, "-o", out, "--iterations", "3000", *TINY_TRAINING), 1)
    assert line == (f"vidtrans: error: {folder}: 4 files, each not a readable image (corrupt, cut short or of a "
                    "kind OpenCV does not read): 017.png, 018.png, 019.jpg, 020.jpg; remove or replace them")
    assert "libpng" not in capfd.readouterr().err and not out.exists()
    for name in ("017.png", "018.png", "019.jpg"):
        (folder / name).unlink()
    line = one_line(cli("train", "--data", folder, "-o", out, "--iterations", "3000", *TINY_TRAINING), 1)
    assert line == (f"vidtrans: error: {folder / '020.jpg'}: not a readable image (corrupt, cut short or of a "
                    "kind OpenCV does not read); remove or replace it")


# --- 8: a target video holds out what eval --video scores -------------------------------------------


def test_a_ten_frame_target_video_holds_out_two_frames_that_eval_scores(tmp_path, monkeypatch):
    import vidtrans.pose.track as track_module

    fps, track = 25, dance_keypoints(3, 10, 64, 64, TARGET_LOOK)
    clip = make_clip(tmp_path / "target.mp4", frames=len(track), size=(64, 64), fps=fps, audio=False,
                     frame_fn=lambda i, w, h: render_person(track[i], h, w, TARGET_LOOK))

    def detect(video, start=None, end=None, progress=None, whole_body=False):
        """The exact poses of the frames from `start` to `end` (seconds), without MediaPipe."""
        times = np.arange(len(track)) / fps
        shown = (times > (start or 0) - 1e-3) & (times < (np.inf if end is None else end - 1e-3))
        return track[shown].copy()

    monkeypatch.setattr(track_module, "detect_keypoints", detect)
    out = tmp_path / "ck"
    trained = cli("train", clip.path, "-o", out, "--iterations", "1", *TINY_TRAINING)
    assert trained.returncode == 0, trained.stderr
    assert read_card(out).training["held_out"]["from_frame"] == 8
    scored = cli("eval", "--model", out, "--video", clip.path, "--model-only", "--device", "cpu", "--json")
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)["frames"] == 2


# --- 9: --resume keeps the number of torchrun processes ----------------------------------------------


def test_resume_refuses_another_number_of_processes_and_keeps_the_card(tmp_path):
    data, out = train_tiny(tmp_path, 1, cli)
    card_before = (out / "card.json").read_bytes()
    as_rank_0_of_2 = {**os.environ, "WORLD_SIZE": "2", "RANK": "0"}
    line = one_line(cli("train", "--data", data, "-o", out, "--iterations", "2", "--resume", env=as_rank_0_of_2), 2)
    assert line == (f"vidtrans: error: {out} was trained by one process, which --resume keeps (--batch-size is per "
                    f"process); resume it with one process, not 2, or start a new stage from this model with "
                    f"--init-from {out} and another output folder")
    assert (out / "card.json").read_bytes() == card_before

    card = json.loads(card_before)
    card["training"]["world_size"] = 2
    (out / "card.json").write_text(json.dumps(card))
    line = one_line(cli("train", "--data", data, "-o", out, "--iterations", "2", "--resume"), 2)
    assert "was trained by 2 torchrun processes" in line and "resume it with 2 torchrun processes, not 1" in line
    # From Python, a Trainer resuming the folder refuses it too.
    config = TrainConfig(iterations=2, architecture="resnet_6blocks", ngf=4, ndf=4, d_scales=1, face_d=False)
    with pytest.raises(UsageError, match="was trained by 2 torchrun processes, which resume=True keeps"):
        Trainer(PairedFolder(data, size=64), out, config, read_card(out), device="cpu", resume=True)


# --- 10: a warning told once --------------------------------------------------------------------------


def odd_width_folder(folder: Path) -> Path:
    """Four AB pairs, one of them 129 pixels wide: a warning when the folder is read."""
    paired_folder(folder, 4)
    cv2.imwrite(str(folder / "001.png"), np.random.default_rng(1).integers(0, 256, (64, 129, 3), dtype=np.uint8))
    return folder


def test_sample_preparing_processes_do_not_repeat_the_folders_warning(tmp_path, caplog):
    folder = odd_width_folder(tmp_path / "odd")
    with caplog.at_level(logging.WARNING):
        pairs = PairedFolder(folder, size=64, flip=False)
        # What each DataLoader worker process holds: a copy of the source, drawing samples.
        for worker in [pickle.loads(pickle.dumps(pairs)) for _ in range(2)]:
            for n in range(8):
                worker.sample(np.random.default_rng([0, 0, n]))
    told = [r.getMessage() for r in caplog.records]
    assert len(told) == 1 and "an AB image of odd width 129, split as pix2pix splits it" in told[0], told


def test_processes_of_rank_above_0_keep_warnings_to_themselves(tmp_path, monkeypatch, caplog, vidtrans_log_level):
    folder = paired_folder(tmp_path / "pairs", 4)
    (folder / "._000.png").write_bytes(b"\0\5\26\7")  # macOS's AppleDouble file: left out, with a warning
    options = TrainOptions(iterations=1, size=64, architecture="resnet_6blocks", device="cpu")
    for rank, expected in (("0", 1), ("1", 0)):  # rank 1 quiets its process for good
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("RANK", rank)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            prepare_training(tmp_path / f"m{rank}", options, data=folder)
        assert len([r for r in caplog.records if "hidden image file" in r.getMessage()]) == expected, rank


def test_torchrun_tells_a_warning_once(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun not installed next to this python")
    folder = odd_width_folder(tmp_path / "odd")
    with socket.socket() as probe:  # a free port: a fixed one fails when anything else holds it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", str(port), "-m", "vidtrans",
                             "train", "--data", str(folder), "-o", str(tmp_path / "ddp"), "--iterations", "2",
                             "--data-workers", "1", *TINY_TRAINING], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    told = warnings_in(result.stderr)
    assert len(told) == 1 and "odd width 129" in told[0], result.stderr


# --- 11: A/ and B/ images of different shapes ----------------------------------------------------------


def test_a_and_b_images_of_different_shapes_are_named(tmp_path, caplog):
    folder = tmp_path / "ab"
    rng = np.random.default_rng(0)
    shapes = {"0": ((64, 64), (128, 128)), "1": ((64, 64), (48, 80)), "2": ((64, 64), (56, 80))}  # (h, w) A, B
    for side in (0, 1):
        (folder / "AB"[side]).mkdir(parents=True)
        for name, pair in shapes.items():
            cv2.imwrite(str(folder / "AB"[side] / f"{name}.png"), rng.integers(0, 256, (*pair[side], 3), np.uint8))
    with caplog.at_level(logging.WARNING):
        PairedFolder(folder, size=64)
    told = [r.getMessage() for r in caplog.records]
    # The same shape at twice the size lines up once resized; 80x48 and 80x56 do not.
    assert told == [f"{folder}: 2 of its 3 pairs have A/ and B/ images of different shapes (e.g. A/1.png 64x64, "
                    "B/1.png 80x48), and each is resized to the training square on its own, so they do not line up "
                    "pixel for pixel as pix2pix needs; crop or pad them to one shape"], told


def test_a_refusal_under_torchrun_is_told_once_by_rank_0(tmp_path, vidtrans_log_level):
    # Every rank refuses the same options alike; only rank 0 says so, the others end with its exit code.
    data, out = train_tiny(tmp_path, 1, cli)
    for rank, told in (("0", True), ("1", False)):
        env = {**os.environ, "WORLD_SIZE": "2", "RANK": rank}
        result = cli("train", "--data", data, "-o", out, "--iterations", "2", env=env)  # exists, no --resume
        assert result.returncode == 2, result.stderr
        assert ("--resume" in result.stderr) is told, (rank, result.stderr)


def test_one_iteration_is_one_iteration(tmp_path):
    _, out = train_tiny(tmp_path, 1, cli)
    result = cli("train", "--data", tmp_path / "pairs", "-o", out, "--iterations", "2", "--resume")
    assert result.returncode == 0, result.stderr
    assert f"wrote {out} after 2 iterations" in result.stderr
    trained = cli("train", "--data", tmp_path / "pairs", "-o", tmp_path / "one", "--iterations", "1", *TINY_TRAINING)
    assert f"wrote {tmp_path / 'one'} after 1 iteration:" in trained.stderr
