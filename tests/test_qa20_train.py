"""QA pass 20: training data as users hand it over (odd image kinds, hostile folders and videos)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vidtrans.train.data import PairedFolder, _fit, image_size


def _ab(height: int = 16, width: int = 32) -> np.ndarray:
    """An AB picture whose quarters have four colours, so a turn or a mirror shows."""
    ab = np.zeros((height, width, 3), np.uint8)
    ab[:height // 2, :width // 2] = (255, 0, 0)
    ab[:height // 2, width // 2:] = (0, 255, 0)
    ab[height // 2:, width // 2:] = (0, 0, 255)
    ab[height // 2:, :width // 2] = (255, 255, 0)
    return ab


@pytest.mark.parametrize("orientation", [1, 3, 6, 7])
def test_transparent_pixels_train_as_black_not_as_the_colour_hidden_under_them(tmp_path, orientation):
    # A cut-out tool leaves anything under fully transparent pixels (here magenta); viewers show
    # none of it, and OpenCV's TIFF reading already puts such pixels over black.
    from PIL import ImageOps

    ab = _ab()
    rgba = np.dstack([ab, np.full(ab.shape[:2], 255, np.uint8)])
    rgba[:, :4, :3], rgba[:, :4, 3] = (255, 0, 255), 0  # transparent, magenta under it
    rgba[:4, 4:8, 3] = 128  # half transparent, in one corner: a turn or a mirror shows
    picture = Image.fromarray(rgba)
    exif = picture.getexif()
    exif[0x0112] = orientation
    picture.save(tmp_path / "x.png", exif=exif)
    for name in ("y.png", "z.png"):
        Image.fromarray(ab).save(tmp_path / name)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "x.png"))).astype(np.float64)
    expected = np.round(upright[..., :3] * upright[..., 3:] / 255).astype(np.uint8)
    assert image_size(tmp_path / "x.png") == (expected.shape[1], expected.shape[0])
    half = expected.shape[1] // 2
    a, b = PairedFolder(tmp_path, size=16).all_pairs()[0]
    for read, want in ((a, expected[:, :half]), (b, expected[:, half:])):
        assert np.abs(read.astype(int) - _fit(want, 16)).max() <= 1


def test_a_tiff_with_an_exif_orientation_that_passes_the_check_is_read_when_drawn(tmp_path):
    # OpenCV's imread fails on such a TIFF where its imdecode (the check's decoder) reads it, so the
    # folder was accepted and training stopped when a sample first drew the file.
    picture = Image.fromarray(_ab())
    exif = picture.getexif()
    exif[0x0112] = 6
    picture.save(tmp_path / "x.tif", exif=exif)
    picture.save(tmp_path / "y.tif")
    folder = PairedFolder(tmp_path, size=16)  # the check passes
    pairs = folder.all_pairs()
    assert len(pairs) == 2 and all(a.shape == b.shape == (16, 16, 3) for a, b in pairs)
    turned = pairs[0]
    # Turned a quarter clockwise: the 32x16 picture is 16 wide and 32 high, A its left 8 columns,
    # whose top half was the picture's bottom-left (yellow) quarter.
    assert tuple(turned[0][2, 2]) == (255, 255, 0)


@pytest.mark.parametrize("name", ["background.png", "samples/iter_0000002.png"])
def test_a_file_training_would_write_in_a_folder_without_a_checkpoint_is_not_replaced_unasked(tmp_path, cli, name):
    # `-o ~/project` where the user keeps their own background.png: the first save replaced it.
    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        Image.fromarray(_ab()).save(data / f"{i}.png")
    out = tmp_path / "project"
    theirs = out / name
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(b"their own picture")
    flags = ["--iterations", "2", "--arch", "resnet_6blocks", "--ngf", "4", "--ndf", "4", "--size", "32",
             "--d-scales", "1", "--save-every", "2", "--validate-every", "2"]
    result = cli("train", "--data", data, "-o", out, *flags)
    assert result.returncode == 2, result.stderr
    assert "--overwrite" in result.stderr and name in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert theirs.read_bytes() == b"their own picture"
    assert {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} == {name}


TINY = ["--arch", "resnet_6blocks", "--ngf", "4", "--ndf", "4", "--size", "32", "--d-scales", "1"]


def test_a_training_state_of_another_generator_is_refused_before_training_naming_the_flag(tmp_path, cli):
    # A train_state.pt of the same iteration from a run of another width (or architecture) beside
    # the model: the generator was built from the state's settings, the card's weights did not fit
    # it, and the message, after the data was read, told a command-line user "overwrite=True".
    import torch

    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        Image.fromarray(_ab()).save(data / f"{i}.png")
    out = tmp_path / "ck"
    assert cli("train", "--data", data, "-o", out, "--iterations", "1", "--save-every", "1", *TINY).returncode == 0
    state = torch.load(out / "train_state.pt", weights_only=True)
    state["config"]["ngf"] = 8
    torch.save(state, out / "train_state.pt")
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    result = cli("train", "--data", data, "-o", out, "--resume", "--iterations", "2")
    assert result.returncode == 1
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "--ngf 8" in message and "--overwrite" in message, message
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_the_trainers_own_messages_spell_settings_as_the_caller_does(tmp_path):
    from vidtrans.errors import UsageError
    from vidtrans.options import spelled
    from vidtrans.train.trainer import check_output

    with pytest.raises(UsageError, match="drop resume=True to start fresh$"):
        check_output(tmp_path, resume=True, overwrite=False)
    with pytest.raises(UsageError, match="drop --resume to start fresh$"), spelled({"resume=True": "--resume"}):
        check_output(tmp_path, resume=True, overwrite=False)


def test_a_temporal_models_held_out_tail_holds_consecutive_frames_to_score_it_on(tmp_path, monkeypatch, caplog):
    # The person seen on and off at the clip's end (frames 17 and 23 of the last tenth): a temporal
    # run kept no two consecutive held-out frames, so it trained, saved and reported no SSIM/PSNR
    # at all, without a word.
    import vidtrans.pose.track as track_module
    from tests.media import make_clip
    from vidtrans.train.data import VideoPairs
    from vidtrans.train.synth import TARGET_LOOK, dance_keypoints

    clip = make_clip(tmp_path / "on and off.mp4", frames=24, size=(64, 64), audio=False)
    track = dance_keypoints(7, 24, 64, 64, TARGET_LOOK).copy()
    track[12:17] = track[18:23] = 0
    monkeypatch.setattr(track_module, "detect_keypoints", lambda *args, **kwargs: track.copy())
    pairs = VideoPairs(clip.path, size=32, sequence_length=2)
    assert len(pairs.validation_sequences(2)) >= 1
    frame, _ = pairs.held_out_from
    assert frame == 10 and "held-out tail starts at frame 10" in caplog.text
    assert all(index < frame for index in pairs.indices[pairs._training_starts(2) + 1])  # none trained on
    # A frame-by-frame model's tail stays the last tenth.
    assert VideoPairs(clip.path, size=32).held_out_from[0] == 17
