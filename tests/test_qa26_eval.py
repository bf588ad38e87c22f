"""QA round 26, eval: a default seed the model trained on, a default dance longer than fits in
memory, a one-channel model's truth, a dataset of train/ alone, values refused from Python as Python
names them, and regions and metrics on coordinates and frames at the numbers' limits."""

import json

import numpy as np
import pytest

from tests.conftest import one_line, run_cli
from tests.media import random_generator
from vidtrans.models.checkpoint import ModelCard, save_checkpoint
from vidtrans.pose.render import PoseStyle


def _pose_model(folder, training, native_size=(64, 64)):
    """A stand-in pose model (pix2pix's initial weights) whose card records `training`."""
    card = ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance", native_size=native_size, input_kind="pose",
                     pose_style=PoseStyle().to_dict(), training=training)
    save_checkpoint(folder, random_generator("resnet_6blocks", 3, 3, 8, "instance"), card)
    return folder


@pytest.fixture(scope="module")
def wide_seeds(tmp_path_factory):
    """A model trained on dances 0..29,999,999: the default dance, 20,000,000, among them."""
    return _pose_model(tmp_path_factory.mktemp("models") / "wide", {"train_seeds": [0, 30_000_000]})


def test_a_default_seed_the_model_trained_on_is_refused_offering_a_held_out_one(wide_seeds):
    """It said "--seed 20000000 was used in training ...; pick a held-out seed such as 20000000":
    a flag nobody gave, and a suggestion refused in turn."""
    line = one_line(run_cli("eval", "--model", wide_seeds, "--model-only", "--frames", "2"), 2)
    assert "the default dance, --seed 20000000, was used in training (seeds 0..29999999)" in line, line
    assert line.endswith("pick a held-out seed such as 30000000"), line
    given = one_line(run_cli("eval", "--model", wide_seeds, "--model-only", "--frames", "2", "--seed", "5"), 2)
    assert "--seed 5 was used in training" in given and given.endswith("such as 30000000"), given
    # The seed offered is taken.
    result = run_cli("eval", "--model", wide_seeds, "--model-only", "--frames", "2", "--seed", "30000000", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["seed"] == 30000000


def test_a_one_channel_model_is_scored_against_the_grey_it_can_make(cli, tmp_path, monkeypatch):
    """pix2pix compares a model of output_nc 1 with its B image in grey (PIL's "L"); against the
    colour B, a model giving exactly that grey scored SSIM 0.34 and PSNR 8.7 dB."""
    from PIL import Image

    from vidtrans.pipeline import TranslateStage

    rng = np.random.default_rng(3)
    for side in "AB":
        (tmp_path / "pairs" / side).mkdir(parents=True)
    greys = []
    for i in range(3):
        colour = np.zeros((64, 64, 3), np.uint8)
        colour[..., 0], colour[..., 2] = 40 * i + 20, 200
        colour[20:40, 10 + 5 * i:30 + 5 * i] = (0, 255, 0)
        Image.fromarray(colour).save(tmp_path / "pairs" / "B" / f"{i}.png")
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), np.uint8)).save(tmp_path / "pairs" / "A" / f"{i}.png")
        greys.append(np.repeat(np.asarray(Image.fromarray(colour).convert("L"))[..., None], 3, axis=-1))
    card = ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance", native_size=(64, 64), output_nc=1)
    save_checkpoint(tmp_path / "grey", random_generator("resnet_6blocks", 3, 1, 8, "instance"), card)

    def grey_b(self, batch):
        batch.output = np.stack([greys[i] for i in batch.indices])
        yield batch

    monkeypatch.setattr(TranslateStage, "process", grey_b)
    result = cli("eval", "--model", tmp_path / "grey", "--data", tmp_path / "pairs", "--device", "cpu", "--json")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert (scores["ssim"], scores["psnr"], scores["flicker_ratio"]) == (1.0, 100.0, 1.0), scores


@pytest.mark.parametrize("mode", [["--model-only"], ["--size", "128", "128"]])
def test_a_default_dance_longer_than_fits_in_memory_is_cut_with_a_warning(tmp_path, monkeypatch, mode):
    """A 1024 px model fits 227 frames, and `eval` without --frames said "--frames 300: ... give
    --frames 227 or fewer", a flag nobody gave; a tail or a folder too long is cut with a warning."""
    from vidtrans import evaluate

    model = _pose_model(tmp_path / "m", {"train_seeds": [0, 10_000]})
    monkeypatch.setattr(evaluate, "EVAL_MEMORY", 3 * evaluate.FRAME_COPIES * 64 * 64 * 3)  # 3 frames fit
    result = run_cli("eval", "--model", model, "--seed", "20000001", "--device", "cpu", "--json", *mode)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["frames"] == 3
    assert "the held-out dance's 300 frames (the default) do not all fit in memory at the model's 64x64; " \
           "scoring its first 3" in result.stderr, result.stderr
    # Asked for, the frames that do not fit are refused as before.
    line = one_line(run_cli("eval", "--model", model, "--frames", "300", "--device", "cpu", *mode), 2)
    assert "--frames 300: evaluation holds every frame in memory" in line and "give --frames 3 or fewer" in line


@pytest.mark.parametrize("dtype,far", [(np.float32, 3e38), (np.int64, 2**62), (np.float64, 1e308)])
def test_points_far_off_the_frame_place_boxes_as_any_points_off_it_do(dtype, far):
    """Ankles as far off as the numbers go, on either side, in a pose without hips (so sized by its
    extent): every box as for ankles 10,000 px away. The extent overflowed (float32: "cannot convert
    float infinity to integer"; int64 wrapped round to a negative height)."""
    from vidtrans.pose.keypoints import KEYPOINT_INDEX
    from vidtrans.pose.regions import body_height, face_box, hand_boxes, person_box

    pose = np.zeros((18, 3), np.float64)
    for name, (x, y) in {"nose": (30, 10), "neck": (30, 20), "r_elbow": (16, 30), "r_wrist": (10, 36)}.items():
        pose[KEYPOINT_INDEX[name]] = (x, y, 1)
    boxes = {}
    for distance in (10_000, far):
        kp = pose.astype(dtype)
        kp[KEYPOINT_INDEX["r_ankle"]] = (distance, distance, 1)
        kp[KEYPOINT_INDEX["l_ankle"]] = (-distance, -distance, 1)
        assert body_height(kp) > 0
        boxes[distance] = (person_box(kp, 64, 64), face_box(kp, 64, 64), hand_boxes(kp, 64, 64))
    assert boxes[far] == boxes[10_000] == ((0, 0, 64, 64), (0, 0, 64, 64), [(0, 0, 64, 64)]), boxes


@pytest.mark.parametrize("frames", [2.0, 300.5, "300", True])
def test_frames_that_are_not_a_whole_number_are_called_so(frames):
    """From Python, frames=2.0 was refused as "frames 2.0: evaluation needs at least 2 frames"."""
    from vidtrans.errors import UsageError
    from vidtrans.evaluate import Material, check_material

    with pytest.raises(UsageError) as info:
        check_material(Material(frames=frames))
    assert str(info.value) == f"frames must be a whole number, 2 or more, got {frames!r}"


@pytest.mark.parametrize("material,options,model_only,refused", [
    ({"synthetic": True, "data": "pairs"}, {}, False,
     "give one of synthetic=True, video='VIDEO' or data='DIR', not synthetic=True and data"),
    ({"seed": 20000001, "video": "target.mp4"}, {}, False,
     "seed picks the synthetic dance, and data and video score other material; drop it"),
    ({"size": (64, 64)}, {}, True, "size is the size of the synthetic dance video, which only end-to-end evaluation "
                                   "of the synthetic dances writes; drop it"),
    ({}, {"normalize": False}, True, "normalize=False turns off fitting the detected dancer to the target's body, "
                                     "which only end-to-end evaluation does; drop it"),
])
def test_material_refused_from_python_is_named_as_python_names_it(material, options, model_only, refused):
    """From Python these named the command line's flags (--synthetic, --seed, --size, --no-normalize),
    which a caller of `score` never wrote; the command line's lines are unchanged (tests of eval)."""
    from vidtrans.errors import UsageError
    from vidtrans.evaluate import Material, check_material
    from vidtrans.options import RunOptions

    with pytest.raises(UsageError) as info:
        check_material(Material(**material), RunOptions(**options), model_only)
    assert str(info.value) == refused


def test_a_dataset_of_train_alone_is_scored_with_a_warning_that_it_is_training_pairs(cli, rgb_model_dir, tmp_path):
    """pix2pix's layout with train/ and no val/ or test/ was scored on train/'s pairs, the ones a model
    is trained on there, saying nothing (the README: never on the pairs a model was trained on)."""
    from tests.media import paired_folder

    paired_folder(tmp_path / "facades" / "train", 3, seed=1)
    result = cli("eval", "--model", rgb_model_dir, "--device", "cpu", "--data", tmp_path / "facades", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["frames"] == 3
    warnings = [line for line in result.stderr.splitlines() if line.startswith("vidtrans: warning:")]
    assert len(warnings) == 1 and f"{tmp_path / 'facades'}: holds train/ and no val/ or test/" in warnings[0], \
        result.stderr
    # With a held-out split beside it, that split is scored, without a warning.
    paired_folder(tmp_path / "facades" / "val", 2, seed=2)
    split = cli("eval", "--model", rgb_model_dir, "--device", "cpu", "--data", tmp_path / "facades", "--json")
    assert json.loads(split.stdout)["frames"] == 2 and "warning" not in split.stderr, split.stderr


@pytest.mark.parametrize("shape", [(2, 0, 0, 3), (2, 5, 0, 3), (1, 0, 7, 3), (4, 0, 3)])
def test_frames_without_pixels_are_refused_not_scored_perfect(shape):
    """psnr of frames without a pixel was 100 dB (the cap: NaN lost in min(), with a RuntimeWarning),
    and their flicker 0, as if two identical clips and a still one."""
    from vidtrans.errors import VidtransError
    from vidtrans.metrics import flicker, psnr

    empty = np.zeros(shape, np.uint8)
    for measure in (lambda: psnr(empty, empty), lambda: flicker(empty)):
        with pytest.raises(VidtransError, match="hold no pixels") as info:
            measure()
        assert "\n" not in str(info.value)
