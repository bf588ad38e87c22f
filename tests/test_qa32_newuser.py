"""QA round 32, a new user walking through the README: advice they can follow (a training size the
architecture takes, the data a resume needs, a narrower generator on a CPU), option values told
before an output in the way, `batch` defaulting to pose2person as the other commands do, figures
printed alike (eval's flicker with 2 decimals, no fps where nothing was translated), and a clip of
non-square pixels named by both its sizes."""

import json
import logging
import re
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.conftest import one_line
from tests.conftest import run_cli as cli
from tests.media import make_clip, paired_folder, quadrants, train_tiny
from tests.test_qa10_train import FLAGS, detected_as  # noqa: F401 (a fixture)
from vidtrans.errors import UsageError
from vidtrans.options import TrainOptions, spelled
from vidtrans.train.setup import prepare_training
from vidtrans.train.synth import TARGET_LOOK, dance_keypoints, render_person

CARPHONE = Path("/work/shared/data/people/carphone.mp4")
ENLARGED = "so the model learns blurred frames"


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


# --- 1: a target video smaller than the training size is told a size the architecture takes ------


@pytest.fixture
def target_144(tmp_path, detected_as):  # noqa: F811 (the fixture imported above)
    """A 144x144 video of the target character (carphone's height), its poses given, not detected."""
    track = dance_keypoints(7, 12, 144, 144, TARGET_LOOK)
    clip = make_clip(tmp_path / "small.mp4", frames=12, size=(144, 144), audio=False,
                     frame_fn=lambda i, w, h: render_person(track[i], h, w, TARGET_LOOK))
    detected_as(track)
    return clip.path


def told_when_preparing(out: Path, target: Path, caplog, **options) -> list[str]:
    caplog.clear()
    with spelled(FLAGS), caplog.at_level(logging.WARNING):
        prepare_training(out, TrainOptions(iterations=1, device="cpu", ngf=16, **options), target=target)
    return warnings_of(caplog)


def test_a_small_target_video_is_told_an_architecture_and_size_that_fit_and_following_it_works(tmp_path, target_144,
                                                                                                caplog):
    # The QA's: '... or at a --size of at most 144', and --size 144 and 128 do not fit unet_256.
    told = told_when_preparing(tmp_path / "m", target_144, caplog)
    assert len(told) == 1 and ENLARGED in told[0], told
    assert told[0].endswith("train from a larger video, or with --arch unet_128 --size 128 (unet_256 takes no --size "
                            "below 256)"), told[0]
    assert told_when_preparing(tmp_path / "m", target_144, caplog, architecture="unet_128", size=128) == []


def test_a_resnet_is_told_the_largest_size_it_takes_within_the_square(tmp_path, target_144, caplog):
    told = told_when_preparing(tmp_path / "m", target_144, caplog, architecture="resnet_6blocks")
    assert len(told) == 1 and told[0].endswith("train from a larger video, or at --size 144"), told
    assert told_when_preparing(tmp_path / "m", target_144, caplog, architecture="resnet_6blocks", size=144) == []


# --- 2: --resume without its data names the data the checkpoint was trained on ----------------------


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A checkpoint trained 1 iteration on the paired folder `pairs`."""
    return train_tiny(tmp_path_factory.mktemp("resume"), 1, cli)[1]


def test_resume_without_data_names_the_paired_folder_it_continues_on(tmp_path, tiny_checkpoint):
    out = tmp_path / "ck"
    shutil.copytree(tiny_checkpoint, out)
    line = one_line(cli("train", "-o", out, "--resume", "--iterations", "2"), 2)
    assert line.endswith(f"{out} was trained on the paired folder pairs, and --resume goes on training on the same "
                         f"data: give it again, as in vidtrans train --data PATH/pairs -o {out} --resume"), line


def test_resume_without_data_names_the_target_video_it_continues_on(tmp_path, tiny_checkpoint):
    out = tmp_path / "alice"
    shutil.copytree(tiny_checkpoint, out)
    card = json.loads((out / "card.json").read_text())
    card["training"]["data"] = "target video carphone.mp4"
    (out / "card.json").write_text(json.dumps(card))
    line = one_line(cli("train", "-o", out, "--resume", "--iterations", "60"), 2)
    assert line.endswith(f"{out} was trained on the target video carphone.mp4, and --resume goes on training on the "
                         f"same data: give it again, as in vidtrans train PATH/carphone.mp4 -o {out} --resume"), line
    with pytest.raises(UsageError, match=re.escape("give it again, as in target='PATH/carphone.mp4'")):
        prepare_training(out, TrainOptions(resume=True, iterations=60))


# --- 3: option values are told before an output in the way ----------------------------------------


@pytest.mark.parametrize("command", ["run", "pose"])
@pytest.mark.parametrize("named", [False, True])
def test_a_bad_crf_is_told_before_the_existing_output(tmp_path, rgb_model_dir, command, named):
    clip = make_clip(tmp_path / "clip.mp4", frames=3, audio=False).path
    default = tmp_path / ("clip.tiny.mp4" if command == "run" else "clip.pose.mp4")
    default.write_bytes(b"someone's")
    model = ["-m", rgb_model_dir] if command == "run" else []
    line = one_line(cli(command, clip, *model, *(["-o", default] if named else []), "--crf", "99"), 2)
    assert "--crf" in line and "already exists" not in line, line
    assert default.read_bytes() == b"someone's"


def test_the_default_output_in_the_way_is_still_told_with_good_options(tmp_path, rgb_model_dir):
    clip = make_clip(tmp_path / "clip.mp4", frames=3, audio=False).path
    (tmp_path / "clip.tiny.mp4").write_bytes(b"someone's")
    line = one_line(cli("run", clip, "-m", rgb_model_dir), 2)
    assert line.endswith("clip.tiny.mp4: already exists; choose another name or pass --overwrite"), line


# --- 4: batch defaults to pose2person, as run, live and eval do -------------------------------------


def test_batch_translates_with_pose2person_when_no_model_is_given(tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    make_clip(clips / "a.mp4", frames=2, audio=False)
    result = cli("batch", clips, "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "a.mp4").is_file()
    assert "vidtrans batch: pose2person" in result.stderr
    assert "[default: pose2person]" in " ".join(cli("batch", "--help").stdout.split())


# --- 5: training on a CPU at the default width is told the narrower one README recommends ------------


@pytest.mark.parametrize("ngf, noted", [(None, True), (64, False), (16, False)])
def test_training_on_the_cpu_at_the_default_width_notes_ngf_16(tmp_path, caplog, ngf, noted):
    pairs = paired_folder(tmp_path / "pairs", 2)
    with spelled({**FLAGS, "data": "--data"}), caplog.at_level(logging.WARNING):
        prepare_training(tmp_path / "m", TrainOptions(iterations=1, device="cpu", ngf=ngf), data=pairs)
    told = [line for line in warnings_of(caplog) if "--ngf" in line]
    assert told == (["training on the CPU at --ngf 64, the default, which is meant for a GPU: at --ngf 16 an "
                     "iteration takes about half the time and the model is 16 times smaller; pass --ngf 16 for that"]
                    if noted else []), told


# --- 6: eval prints its flicker ratios with 2 decimals, as run does ----------------------------------


def test_eval_prints_flicker_with_two_decimals(tmp_path, rgb_model_dir):
    pairs = paired_folder(tmp_path / "pairs", 3)
    result = cli("eval", "-m", rgb_model_dir, "--data", pairs, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert re.search(r" flicker \d+\.\d\dx the truth's over 3 frames", result.stdout), result.stdout
    ratio = json.loads(cli("eval", "-m", rgb_model_dir, "--data", pairs, "--device", "cpu", "--json").stdout)
    assert len(str(ratio["flicker_ratio"]).split(".")[1]) > 2  # --json keeps its precision


# --- 7: no fps where no frame was translated ---------------------------------------------------------


def test_an_all_skipped_batch_shows_no_fps_in_any_row(tmp_path, rgb_model_dir):
    clips = tmp_path / "clips"
    clips.mkdir()
    make_clip(clips / "a.mp4", frames=2, audio=False)
    for _ in range(2):
        result = cli("batch", clips, "-o", tmp_path / "out", "-m", rgb_model_dir)
        assert result.returncode == 0, result.stderr
    rows = {line.split("│")[1].strip(): [cell.strip() for cell in line.split("│")[2:-1]]
            for line in result.stderr.splitlines() if line.count("│") == 6}
    assert rows["skipped"][0] == "1" and rows["all (wall clock)"][3] == "" and rows["done"][3] == "", rows


# --- 8: a clip of non-square pixels is named by its size shown and stored ---------------------------


def anamorphic_clip(path: Path) -> Path:
    """64x48 pixels of aspect ratio 4:3, shown 85x48."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"crf": "10"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.sample_aspect_ratio = Fraction(4, 3)
        for i in range(3):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(quadrants(i, 64, 48), "rgb24")))
        out.mux(stream.encode(None))
    return path


def test_keypoints_of_the_stored_size_are_refused_naming_both_sizes(tmp_path, pose_model_dir):
    from vidtrans.pose import write_keypoints_npz

    clip = anamorphic_clip(tmp_path / "wide.mp4")
    write_keypoints_npz(tmp_path / "kp.npz", np.zeros((3, 18, 3), np.float32), 64, 48)
    line = one_line(cli("run", clip, "-m", pose_model_dir, "--keypoints", tmp_path / "kp.npz", "-o",
                        tmp_path / "out.mp4"), 1)
    assert f"but {clip} is 85x48 (64x48 stored, non-square pixels); extract them" in line, line


def test_carphone_is_named_by_its_size_shown_and_stored_a_square_pixel_clip_by_one(tmp_path):
    from vidtrans.video import probe

    assert probe(make_clip(tmp_path / "square.mp4", frames=2, audio=False).path).size_text == "64x48"
    if not CARPHONE.is_file():
        pytest.skip(f"{CARPHONE} is not here")
    assert probe(CARPHONE).size_text == "193x144 (176x144 stored, non-square pixels)"
