"""QA pass 10b, batch, live and models: a clip without a person warned about per clip in batch as
`run` warns, what live can record to, its messages naming flags (--virtual-cam, --serve's host,
--no-window) with usage errors exiting 2, and `models` telling temporal and whole-body models apart
and sizing a model by its own files. A synthetic clip file stands in for the camera, headless."""

import json
import socket
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from tests.conftest import one_line, run_cli
from tests.media import make_clip, random_generator
from tests.test_live import FakeModel
from vidtrans.batch import translate_folder
from vidtrans.errors import UsageError
from vidtrans.live import run_live
from vidtrans.pipeline import Summary, no_person_shows
from vidtrans.models.checkpoint import ModelCard, save_checkpoint
from vidtrans.pose import PoseStyle
from vidtrans.train.synth import SOURCE_LOOK, render_person

FAST = dict(devices=["cpu"], preset="ultrafast", batch_size=4)


# --- 4. batch warns about a clip without a person, as run does --------------------------------------


@pytest.fixture(scope="module")
def empty_room_folder(tmp_path_factory):
    """A folder with one clip of the source dancer's room with nobody in it."""
    room = render_person(np.zeros((18, 3), np.float32), 120, 160, SOURCE_LOOK)
    folder = tmp_path_factory.mktemp("in")
    make_clip(folder / "empty.mp4", frames=6, size=(160, 120), audio=False, frame_fn=lambda i, w, h: room)
    return folder


def warnings_in(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("vidtrans: warning: ")]


def test_batch_warns_per_clip_without_a_person_in_the_words_of_run(tmp_path, empty_room_folder, pose_model_dir):
    clip = empty_room_folder / "empty.mp4"
    report_path = tmp_path / "report.json"
    result = run_cli("batch", empty_room_folder, "-o", tmp_path / "out", "--model", pose_model_dir, "--devices", "cpu",
                     "--preset", "ultrafast", "--report", report_path)
    assert result.returncode == 0, result.stderr
    run = run_cli("run", clip, "-o", tmp_path / "run.mp4", "--model", pose_model_dir, "--device", "cpu",
                  "--preset", "ultrafast")
    assert run.returncode == 0, run.stderr
    [run_warning] = warnings_in(run.stderr)
    assert run_warning.startswith("vidtrans: warning: no person found in 6 of 6 frames; ")
    # The same words, naming the clip.
    assert warnings_in(result.stderr) == [run_warning.replace("warning: ", f"warning: {clip}: ", 1)]
    assert f"done {clip}: 6 frames in " in result.stderr and "; no person in 6 of 6 frames" in result.stderr
    [row] = json.loads(report_path.read_text())["clips"]
    assert row["status"] == "done" and row["frames_without_person"] == 6
    assert row["warning"] == run_warning.removeprefix("vidtrans: warning: ")

    # A rerun skips the clip without warning again; its row and the manifest still say it.
    again = run_cli("batch", empty_room_folder, "-o", tmp_path / "out", "--model", pose_model_dir, "--devices", "cpu",
                    "--preset", "ultrafast", "--report", report_path)
    assert again.returncode == 0, again.stderr
    assert warnings_in(again.stderr) == []
    [row] = json.loads(report_path.read_text())["clips"]
    assert row["status"] == "skipped" and row["frames_without_person"] == 6 and row["warning"].startswith("no person")


def test_clips_of_rgb_models_have_no_count_of_frames_without_a_person(tmp_path, rgb_model_dir):
    (tmp_path / "in").mkdir()
    make_clip(tmp_path / "in" / "a.mp4", frames=3, audio=False)
    [clip] = translate_folder(tmp_path / "in", tmp_path / "out", rgb_model_dir, **FAST).clips
    assert clip.status == "done" and clip.to_dict()["frames_without_person"] is None and clip.warning is None


def test_the_warning_is_for_clips_with_nobody_in_most_frames_and_says_what_is_shown():
    def warning(missing, frames, background):
        summary = Summary("in.mp4", "out.mp4", "m", "cpu", "fp32", frames=frames, frames_without_person=missing)
        return summary.no_person_warning(no_person_shows(SimpleNamespace(background=background)))

    assert warning(None, 10, True) is None  # nobody looked (RGB models)
    assert warning(5, 10, True) is None
    assert warning(6, 10, True).startswith("no person found in 6 of 10 frames; the output shows the "
                                           "target's empty scene there; ")
    assert "the model's guess from an empty pose map" in warning(6, 10, None)


# --- 5 and 6. live: what it records to, messages naming flags ---------------------------------------


@pytest.fixture
def camera(tmp_path):
    return make_clip(tmp_path / "cam.mp4", frames=4, size=(64, 48), fps=30, audio=False).path


def live(camera, model, *args):
    return run_cli("live", "--model", model, "--device", "cpu", "--camera", camera, "--no-window", *args)


@pytest.mark.parametrize("name", ["rec.avi", "rec.flv", "rec"])
def test_record_takes_only_the_containers_that_keep_capture_times(tmp_path, camera, rgb_model_dir, name):
    line = one_line(live(camera, rgb_model_dir, "--record", tmp_path / name), 2)
    assert f"--record {tmp_path / name}:" in line and ".mp4, .mkv or .mov" in line
    assert f"record to {tmp_path / 'rec.mp4'} instead" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam.mp4"]  # nothing written


def test_record_extensions_are_matched_in_any_case(tmp_path, camera, rgb_model_dir):
    result = live(camera, rgb_model_dir, "--record", tmp_path / "rec.MOV", "--max-frames", "2")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "rec.MOV").stat().st_size > 0


def test_virtual_cam_without_pyvirtualcam_names_the_flag(camera, rgb_model_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyvirtualcam", None)  # as if not installed
    line = one_line(live(camera, rgb_model_dir, "--virtual-cam"), 1)
    assert "--virtual-cam needs pyvirtualcam" in line and "virtual_cam" not in line


def test_serve_on_a_host_of_another_machine_is_a_usage_error_naming_the_host(camera, rgb_model_dir):
    line = one_line(live(camera, rgb_model_dir, "--serve", "192.0.2.1:8000"), 2)  # TEST-NET-1: nobody's address
    assert "--serve 192.0.2.1:8000: cannot listen on host 192.0.2.1" in line and "127.0.0.1" in line
    assert "another port" not in line


def test_serve_on_a_port_in_use_says_to_choose_another_port(camera, rgb_model_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line(live(camera, rgb_model_dir, "--serve", f"127.0.0.1:{port}"), 1)
    assert f"--serve 127.0.0.1:{port}: cannot listen there" in line and "choose another port" in line


def test_live_without_a_display_is_a_usage_error_naming_the_headless_flags(camera, rgb_model_dir, monkeypatch):
    if not sys.platform.startswith("linux"):
        pytest.skip("the display is looked for as DISPLAY only on Linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    result = run_cli("live", "--model", rgb_model_dir, "--device", "cpu", "--camera", camera)
    line = one_line(result, 2)
    assert "no display for the preview window" in line
    assert "run with --no-window and watch through --serve, --record or --virtual-cam" in line
    # The library names its parameters.
    with pytest.raises(UsageError, match="run with window=False and watch through serve, record or virtual_cam"):
        run_live(FakeModel(), camera)


# --- 6. models: what each model takes, and the size of its own files --------------------------------


def test_models_shows_temporal_and_whole_body_models_and_sizes_their_own_files(tmp_path, monkeypatch, cli):
    whole_body = PoseStyle(version=2).to_dict()
    cards = {"frames": ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance", native_size=(64, 64),
                                 input_kind="pose", pose_style=PoseStyle().to_dict()),
             "temporal_wb": ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance", native_size=(64, 64),
                                      input_kind="pose", pose_style=whole_body, input_nc=6,
                                      temporal={"previous": "output", "first": "black"}),
             "pictures": ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance", native_size=(64, 64))}
    for name, card in cards.items():
        save_checkpoint(tmp_path / name, random_generator("resnet_6blocks", card.input_nc, 3, 8, "instance"), card)
    own = sum(f.stat().st_size for f in (tmp_path / "temporal_wb").iterdir())
    # What training leaves beside a model: its state (several times the weights) and samples.
    (tmp_path / "temporal_wb" / "train_state.pt").write_bytes(bytes(3 << 20))
    (tmp_path / "temporal_wb" / "samples").mkdir()
    (tmp_path / "temporal_wb" / "samples" / "iter_0000010.png").write_bytes(bytes(1 << 20))
    monkeypatch.setenv("VIDTRANS_MODELS", str(tmp_path))
    result = cli("models")
    assert result.returncode == 0, result.stderr
    lines = [line.split("│") for line in result.stdout.splitlines() if line.startswith("│")]
    rows = {cells[1].strip(): [cell.strip() for cell in cells[2:-1]] for cells in lines}
    header = next(line for line in result.stdout.splitlines() if "native size" in line)
    assert [h.strip() for h in header.split("┃")[1:-1]] == ["name", "architecture", "native size", "input",
                                                            "temporal", "size", "path"]
    assert rows["frames"][2:4] == ["pose (body)", "no"]
    assert rows["temporal_wb"][2:4] == ["pose (whole body)", "yes"]
    assert rows["pictures"][2:4] == ["rgb", "no"]
    assert rows["temporal_wb"][4] == f"{own / 2**20:.1f} MiB" != "3.5 MiB"
