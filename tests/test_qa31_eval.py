"""QA round 31, eval, models, export and pose: a link that loops in a model search folder hid
every model of that folder."""

import os
import shutil

from tests.conftest import one_line


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
