"""QA round 31, eval, models, export and pose: a link that loops in a model search folder hid
every model of that folder; eval --video --model-only scored a held-out tail without a person, and
a tail of which no frame decodes was to be cured by a longer video."""

import os
import shutil

import pytest

from tests.conftest import one_line
from tests.media import corrupt_middle, dancer_clip, make_clip, video_model


def test_a_link_that_loops_in_a_search_folder_hides_no_model(cli, tmp_path, monkeypatch, pose_model_dir):
    """`vidtrans models` skipped the whole folder ("cannot look for models there (Too many levels
    of symbolic links)"), and `-m NAME` of a model missing from it listed none of the folder's."""
    shutil.copytree(pose_model_dir, tmp_path / "dancer")
    os.symlink("loop", tmp_path / "loop")
    monkeypatch.setenv("VIDTRANS_MODELS", str(tmp_path))
    listed = cli("models")
    assert listed.returncode == 0 and "warning" not in listed.stderr, listed.stderr
    assert "dancer" in listed.stdout, listed.stdout
    line = one_line(cli("eval", "-m", "nothing", "--model-only", "--frames", "2", "--device", "cpu"), 1)
    assert "model 'nothing' not found (available: dancer" in line, line


@pytest.mark.parametrize("mode", [[], ["--model-only"]], ids=["end-to-end", "model-only"])
def test_a_held_out_tail_without_a_person_is_refused_in_either_mode(cli, tmp_path, mode):
    """End to end refused it (run's output would be the empty scene throughout); --model-only
    scored the model on blank pose maps: 'ssim 0.47, flicker ratio 0.0', exit 0, figures of
    nothing but how it paints the empty scene."""
    clip = make_clip(tmp_path / "target.mp4", frames=10, audio=False).path  # a moving square, nobody
    model = video_model(tmp_path / "m", clip, 6)
    line = one_line(cli("eval", "-m", model, "--video", clip, *mode, "--device", "cpu"), 1)
    assert "found no person in any of the 4 frames of its held-out tail" in line, line
    assert line.endswith("or score the model on a paired folder (--data DIR)"), line


def test_a_held_out_tail_that_does_not_decode_is_called_damaged(cli, tmp_path):
    """A target video damaged from its middle on (training reads its last good frame in place of
    each lost one) said "its held-out tail has 0 frame(s), and evaluation needs at least 2; train on
    a longer video"."""
    clip = dancer_clip(tmp_path / "target.mp4", "target", frames=10, size=(64, 48)).path
    corrupt_middle(clip, (0.5, 0.99))
    model = video_model(tmp_path / "m", clip, 8)
    line = one_line(cli("eval", "-m", model, "--video", clip, "--model-only", "--device", "cpu"), 1)
    assert "not one frame of its held-out tail (from 0.32 s) could be decoded, the file is damaged there" in line, line
