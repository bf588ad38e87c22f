"""QA round 27, models, evaluation and live: `load_model(normalization="running")` for a generator
without batch norm changed nothing, silently (import-pix2pix refused it); `eval --data` scored a
non-square model at a square of its first side, a model trained B to A the wrong way round, and
refused a folder of a val/ or test/ split alone; live's recording, from Python, advised settings of
translate_video; `run_live` and `score` took no model name or path (AttributeError), nor told wrong
options or hooks in one line."""

import json

import numpy as np
import pytest
from PIL import Image

import vidtrans
from tests.conftest import one_line
from tests.media import TINY_TRAINING, random_generator
from vidtrans.errors import UsageError
from vidtrans.evaluate import Material, score
from vidtrans.models.checkpoint import ModelCard, load_checkpoint, save_checkpoint
from vidtrans.models.translator import Translator


def model_dir(folder, norm="instance", native_size=(64, 64)):
    save_checkpoint(folder, random_generator("resnet_6blocks", 3, 3, 4, norm, seed=0),
                    ModelCard(architecture="resnet_6blocks", ngf=4, norm=norm, native_size=native_size))
    return folder


def _write_pairs(folder, a, b):
    """A paired folder in A/ and B/ layout of the images `a` and `b`, pair i as i.png."""
    for side, images in (("A", a), ("B", b)):
        (folder / side).mkdir(parents=True)
        for i, image in enumerate(images):
            Image.fromarray(image).save(folder / side / f"{i}.png")


def _eval_scores_match(cli, model, data, given, truth):
    """`eval --data` on `data` scores what the model makes of `given` against `truth`, as computed here."""
    from vidtrans.metrics import psnr, ssim

    result = cli("eval", "--model", model, "--data", data, "--device", "cpu", "--precision", "fp32", "--json")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    output = vidtrans.load_model(model, device="cpu", precision="fp32").translate(given)
    assert scores["frames"] == len(given)
    assert scores["psnr"] == pytest.approx(psnr(output, truth), abs=0.05), scores
    assert scores["ssim"] == pytest.approx(ssim(output, truth), abs=0.002), scores


# --- 1. running statistics asked of a generator that keeps none ----------------------------------------


@pytest.mark.parametrize("norm,held", [("instance", "which keeps none: it normalizes each frame by its own statistics"),
                                       ("none", "no norm layers")])
def test_load_model_refuses_running_statistics_for_a_generator_without_batch_norm(tmp_path, norm, held):
    # It loaded, and every frame came out as with "sample": a setting that did nothing, unsaid.
    folder = model_dir(tmp_path / "nobatch", norm)
    with pytest.raises(UsageError) as refused:
        vidtrans.load_model(folder, device="cpu", normalization="running")
    assert str(refused.value) == ("normalization='running' uses batch norm's running statistics, and nobatch is a "
                                  f"resnet_6blocks generator with {norm} norm ({held}); drop it")
    with pytest.raises(UsageError):  # the class itself, as the API documents it
        Translator(load_checkpoint(folder), device="cpu", normalization="running")
    # What the card says, and "sample", load as before; batch norm takes "running".
    assert vidtrans.load_model(folder, device="cpu", normalization="sample").normalization == "sample"
    batch = model_dir(tmp_path / "batch", "batch")
    assert vidtrans.load_model(batch, device="cpu", normalization="running").normalization == "running"


# --- 2. a non-square model scored on a paired folder ----------------------------------------------------


def test_eval_data_scores_a_non_square_model_at_its_own_size(tmp_path, cli):
    # A card of native_size [64, 128] (height, width) was scored on pairs squeezed to 64x64: its input
    # was not the pictures it takes, nor was its output compared with the truth it should give.
    folder = model_dir(tmp_path / "wide", native_size=(64, 128))
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (3, 64, 128, 3), np.uint8)
    b = np.clip(a.astype(int) // 2 + 60, 0, 255).astype(np.uint8)
    _write_pairs(tmp_path / "pairs", a, b)
    # The pairs are at the model's size: what it makes of A, compared with B as they are.
    _eval_scores_match(cli, folder, tmp_path / "pairs", a, b)


# --- 3. live's advice names live's settings ------------------------------------------------------------


def test_a_recording_that_cannot_be_written_from_python_names_no_setting_live_lacks(tmp_path):
    """run_live's recording failed mid-session (the disk full; here a file size limit) with the
    writer's advice for translate_video: "check codec, pix_fmt, crf and free disk space", settings
    live does not take (it records H.264 at fixed settings)."""
    import subprocess
    import sys

    from tests.media import make_clip

    resource = pytest.importorskip("resource")  # POSIX

    rng = np.random.default_rng(0)  # noise: a few kB a frame, past the limit within a few frames
    camera = make_clip(tmp_path / "noise.mkv", frames=100, size=(64, 48), fps=100, audio=False,
                       frame_fn=lambda i, w, h: rng.integers(0, 256, (h, w, 3), np.uint8)).path
    record = tmp_path / "rec.mp4"
    script = ("from tests.test_live import FakeModel\nfrom vidtrans.live import run_live\nimport sys\n"
              "try:\n    run_live(FakeModel(), sys.argv[1], window=False, record=sys.argv[2])\n"
              "except Exception as e:\n    print(type(e).__name__, e)\n")

    def limited():  # Python ignores SIGXFSZ: a write past the limit fails (EFBIG) instead of ending it
        resource.setrlimit(resource.RLIMIT_FSIZE, (20000, resource.RLIM_INFINITY))

    result = subprocess.run([sys.executable, "-B", "-c", script, str(camera), str(record)], capture_output=True,
                            text=True, preexec_fn=limited, timeout=120)
    [line] = result.stdout.splitlines()
    assert line.startswith(f"VidtransError {record}: ") and "(File too large)" in line, result.stdout + result.stderr
    assert not any(setting in line for setting in ("codec", "pix_fmt", "crf", "side_by_side")), line
    assert line.endswith("free disk space") or line.endswith("the output folder"), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["noise.mkv"]  # nothing half written


# --- 4. a model trained B to A scored on a paired folder ------------------------------------------------


def test_eval_data_scores_a_model_trained_b_to_a_from_b_against_a(tmp_path, cli):
    # `vidtrans train --data DIR --direction BtoA` (pix2pix's facades: labels in B, photos in A) records
    # the direction in the card, and `eval --data` fed the model A and compared its output with B:
    # its own input as the truth.
    folder = tmp_path / "btoa"
    save_checkpoint(folder, random_generator("resnet_6blocks", 3, 3, 4, "instance", seed=0),
                    ModelCard(architecture="resnet_6blocks", ngf=4, norm="instance", native_size=(64, 64),
                              training={"data": "paired folder facades", "direction": "BtoA"}))
    rng = np.random.default_rng(0)
    photos = rng.integers(0, 256, (3, 64, 64, 3), np.uint8)
    labels = np.stack([np.full((64, 64, 3), 40 * i + 40, np.uint8) for i in range(3)])
    _write_pairs(tmp_path / "facades", photos, labels)
    _eval_scores_match(cli, folder, tmp_path / "facades", labels, photos)


# --- 5. the live and scoring functions take what translate_video takes ---------------------------------


def test_run_live_takes_a_model_path_and_refuses_what_is_no_model_options_or_hook_in_one_line(tmp_path):
    # translate_video takes a model's name or path; run_live raised AttributeError ('str' object has no
    # attribute 'device'), as it did for options given as a dict, a stop flag of True or an on_frame
    # that is no function (TypeError at the first frame).
    from tests.media import make_clip
    from vidtrans.live import run_live

    clip = make_clip(tmp_path / "cam.mp4", frames=3, size=(64, 48), fps=50, audio=False).path
    folder = model_dir(tmp_path / "tiny")
    stats = run_live(str(folder), clip, window=False)
    assert stats.frames >= 1 and stats.model == "tiny"
    refused = [(dict(model=None), "model must be a model name or path, or what vidtrans.load_model returns, not None"),
               (dict(options={"window": False}), "options must be a LiveOptions, not dict; pass a LiveOptions, or its "
                                                 "fields as keyword arguments, e.g. window=False"),
               (dict(stop=True), "stop must be None or a threading.Event, not True"),
               (dict(on_frame=5), "on_frame must be None or a function, not 5")]
    for change, message in refused:
        with pytest.raises(UsageError) as error:
            run_live(**{"model": folder, "source": clip, "window": False, **change})
        assert str(error.value) == message


def test_score_takes_a_model_path_and_refuses_what_is_no_material_or_options_in_one_line(tmp_path):
    from tests.media import paired_folder

    pairs = paired_folder(tmp_path / "pairs", 2)
    folder = model_dir(tmp_path / "tiny")
    assert score(folder, Material(data=pairs))["frames"] == 2
    for args, message in [((folder, "pairs"), "material must be a Material, such as Material(data='DIR'), not 'pairs'"),
                          ((folder, Material(data=pairs), {"batch_size": 4}),
                           "options must be a RunOptions, not dict; pass a RunOptions, e.g. RunOptions(batch_size=4)"),
                          ((None, Material(data=pairs)),
                           "model must be a model name or path, or what vidtrans.load_model returns, not None")]:
        with pytest.raises(UsageError) as error:
            score(*args)
        assert str(error.value) == message


# --- 6. a dataset's test split alone -------------------------------------------------------------------


@pytest.mark.parametrize("split", ["val", "test"])
def test_eval_data_scores_a_folder_holding_only_its_held_out_split(tmp_path, cli, split):
    # `eval --data` scores a folder's val/ (or test/) where it has one; a folder of that split alone (a
    # dataset's test download) was refused: "no images found", its images in test/ all the same.
    from tests.media import paired_folder

    paired_folder(tmp_path / "facades" / split, 3)
    model = model_dir(tmp_path / "tiny")
    result = cli("eval", "--model", model, "--data", tmp_path / "facades", "--device", "cpu", "--json")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert scores["frames"] == 3 and scores["data"] == str(tmp_path / "facades" / split)
    # Training still needs pairs to train on, beside the split or in train/.
    line = one_line(cli("train", "--data", tmp_path / "facades", "-o", tmp_path / "out", "--iterations", "1",
                        *TINY_TRAINING), 2)
    assert "no images found" in line and not (tmp_path / "out").exists()
