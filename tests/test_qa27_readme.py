"""README claims a new user relies on, checked against what vidtrans does (QA round 27)."""

import json
import re
import shutil
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

import vidtrans
from tests.conftest import one_line
from vidtrans.errors import VidtransError
from vidtrans.models.checkpoint import CARD_NAME, WEIGHTS_NAME

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"


def _readme() -> str:
    """The README with every run of white space as one space, as its sentences wrap anywhere."""
    return " ".join(README.read_text().split())


def _required_card_fields(card: dict) -> list[str]:
    """The card fields the README's "Models and checkpoints" says every card must name."""
    sentence = re.search(r"A card must name (.*?) the other fields have defaults", _readme())
    assert sentence, "the README no longer says which card fields are required"
    return [name for name in re.findall(r"`([a-z_]+)`", sentence.group(1)) if name in card]


def _card_with(folder: Path, source: Path, card: dict) -> Path:
    folder.mkdir()
    shutil.copy(source / WEIGHTS_NAME, folder / WEIGHTS_NAME)
    (folder / CARD_NAME).write_text(json.dumps(card))
    return folder


def test_a_card_naming_only_the_fields_the_readme_calls_required_loads(tmp_path, rgb_model_dir):
    """README: "A card must name ... ; the other fields have defaults for older cards". A card of an
    older vidtrans with just those fields must load (it did not: `format` and `format_version` are
    required too, and the README did not name them)."""
    full = json.loads((rgb_model_dir / CARD_NAME).read_text())
    required = _required_card_fields(full)
    folder = _card_with(tmp_path / "older", rgb_model_dir, {name: full[name] for name in required})
    model = vidtrans.load_model(folder, device="cpu")
    assert model.translate(np.zeros((1, 64, 64, 3), np.uint8)).shape == (1, 64, 64, 3)


def test_each_field_the_readme_calls_required_is_refused_when_missing_naming_it(tmp_path, rgb_model_dir):
    """The README's "must": a card without one of them gets one line naming the card and the field."""
    full = json.loads((rgb_model_dir / CARD_NAME).read_text())
    for name in _required_card_fields(full):
        folder = _card_with(tmp_path / name, rgb_model_dir, {k: v for k, v in full.items() if k != name})
        with pytest.raises(VidtransError) as refused:
            vidtrans.load_model(folder, device="cpu")
        message = str(refused.value)
        assert "\n" not in message and str(folder / CARD_NAME) in message and name in message, message


def test_the_quick_start_clip_and_still_are_what_the_readme_describes():
    """Quick start: examples/dancer.mp4 is a 4-second clip of 100 frames with audio (the README's
    timings are for it), and examples/still.png is a frame of its side-by-side run: input | pose
    map | output, at the shipped model's 256 pixels high."""
    with av.open(str(REPO / "examples" / "dancer.mp4")) as clip:
        video = clip.streams.video[0]
        frames = sum(1 for _ in clip.decode(video=0))
        assert [s.type for s in clip.streams] == ["video", "audio"]
        assert frames == 100 and abs(float(video.duration * video.time_base) - 4.0) < 0.05
        width, height = video.width, video.height
    still = cv2.imread(str(REPO / "examples" / "still.png"))
    assert still.shape[0] == 256
    assert abs(still.shape[1] - 2 * 256 - width * 256 / height) <= 1  # the input panel at 256 high


@pytest.mark.parametrize("args", [["export", "{url}", "-o", "{tmp}/m.onnx"],
                                  ["eval", "--model", "{url}", "--frames", "4"],
                                  ["train", "--synthetic", "-o", "{tmp}/out", "--init-from", "{url}"],
                                  ["live", "--model", "{url}", "--camera", "{tmp}/cam.mp4", "--no-window"]])
def test_a_model_url_is_refused_as_a_url_by_every_command_taking_a_model(cli, tmp_path, args):
    """README: "A URL where vidtrans takes a path is refused in one line (exit 1)". `export` took it
    for a path, which drops a slash: "https:/example.com/m.pth: no such file or folder"."""
    url = "https://example.com/models/m.pth"
    line = one_line(cli(*(arg.format(url=url, tmp=tmp_path) for arg in args)), 1)
    assert line.startswith(f"vidtrans: error: {url}: is a URL, and vidtrans works on local files only"), line
    assert not list(tmp_path.iterdir())



@pytest.fixture(scope="module")
def files(tmp_path_factory, rgb_model_dir, pose_model_dir):
    """Existing files a command takes as input: a clip, a keypoint file, a pix2pix .pth, a model's card."""
    import torch

    from tests.media import make_clip, paired_folder, random_generator

    folder = tmp_path_factory.mktemp("inputs")
    torch.save(random_generator("resnet_6blocks", 3, 3, 8, "instance").state_dict(), folder / "g.pth")
    (folder / "k.npz").write_bytes(b"")
    return {"clip": make_clip(folder / "in.mp4", frames=2).path, "npz": folder / "k.npz", "pth": folder / "g.pth",
            "card": rgb_model_dir / CARD_NAME, "pairs": paired_folder(folder / "pairs", 2), "pose_model": pose_model_dir}


@pytest.mark.parametrize("args", [["export", "{card}/", "-o", "{tmp}/m.onnx"],
                                  ["import-pix2pix", "{pth}/", "-o", "{tmp}/out"],
                                  ["run", "{clip}", "--model", "{pose_model}", "--keypoints", "{npz}/", "-o", "{tmp}/o.mp4"],
                                  ["train", "--data", "{pairs}", "-o", "{tmp}/out", "--init-from", "{card}/",
                                   "--iterations", "1"]])
def test_an_input_file_named_with_a_trailing_slash_is_refused_wherever_a_path_is_taken(cli, tmp_path, files, args):
    """README: "so is an existing file named with a trailing slash (`cam.mp4/`)", as `run`'s input
    and `--model` are. These dropped the slash and read the file (`export` and `import-pix2pix`
    wrote their output), or read it as something else."""
    args = [arg.format(tmp=tmp_path, **files) for arg in args]
    named = next(arg for arg in args if arg.endswith("/"))
    line = one_line(cli(*args), 1)
    assert line.startswith(f"vidtrans: error: {named}: is a file, not a folder; drop the trailing slash"), line
    assert not list(tmp_path.iterdir())
