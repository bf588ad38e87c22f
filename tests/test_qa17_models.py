"""Defects of models found by name, `vidtrans models` and `import-pix2pix` (seventeenth QA pass)."""
import contextlib
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import vidtrans
from tests.conftest import one_line, run_cli
from tests.media import random_generator
from vidtrans.models.checkpoint import ModelCard, save_checkpoint
from vidtrans.models.onnx_backend import cache_dir, graph_key

REPO = Path(__file__).resolve().parents[1]
# Root reads and enters any folder; without these capabilities it meets permissions as a user does.
NO_OVERRIDE = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner"]


def as_a_user(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`python ARGS` in a child that permissions apply to (root's override dropped where it has one)."""
    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None or subprocess.run([*NO_OVERRIDE, "true"]).returncode != 0:
            pytest.skip("running as root, and root's permission override cannot be dropped here")
        prefix = NO_OVERRIDE
    return subprocess.run([*prefix, sys.executable, *args], env={**os.environ, **env}, cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def table_rows(stdout: str) -> dict[str, list[str]]:
    """`vidtrans models`' rows by name: their cells."""
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in stdout.splitlines() if line.startswith("│")]
    return {cells[0]: cells for cells in rows}


def tiny_model(folder: Path, seed: int = 0) -> Path:
    save_checkpoint(folder, random_generator("resnet_6blocks", 3, 3, 8, "instance", seed=seed),
                    ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance", native_size=(64, 64)))
    return folder


@pytest.fixture
def locked(tmp_path):
    """locked(path): a folder made there with mode 000, given back its permissions at the end."""
    made = []

    def lock(path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0)
        made.append(path)
        return path

    yield lock
    for path in made:
        path.chmod(0o700)


def test_search_folders_that_cannot_be_read_are_skipped_and_the_default_model_still_loads(tmp_path, locked):
    models = tmp_path / "models"
    tiny_model(models / "tiny")
    locked(models / "secret")  # a model folder that cannot be looked into
    env = {"VIDTRANS_MODELS": os.pathsep.join([str(locked(tmp_path / "nobody")), str(models)]),
           "XDG_CACHE_HOME": str(locked(tmp_path / "cache"))}
    listed = as_a_user("-m", "vidtrans", "models", env=env)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    rows = table_rows(listed.stdout)
    assert "pose2person" in rows and rows["tiny"][1] == "resnet_6blocks ngf 8", listed.stdout
    assert rows["secret"][1] == "unusable card", listed.stdout
    warnings = listed.stderr.splitlines()
    for skipped in (tmp_path / "nobody", tmp_path / "cache" / "vidtrans"):
        assert any(line.startswith(f"vidtrans: warning: {skipped}: cannot look for models there (Permission denied)")
                   for line in warnings), listed.stderr
    assert any(f"{models / 'secret' / 'card.json'}: cannot read the model card (Permission denied)" in line
               for line in warnings), listed.stderr

    # Through the API: the default model by name, and (with the onnx extra) the ONNX graph exported
    # though the cache cannot be used (README: "exported for the process alone, with a warning").
    onnx = importlib.util.find_spec("onnxruntime") is not None
    loaded = as_a_user("-c", "import vidtrans, numpy as np\n"
                       "from vidtrans.models.checkpoint import load_checkpoint\n"
                       "print(load_checkpoint('pose2person').path)\n"
                       f"model = vidtrans.load_model({str(models / 'tiny')!r}, device='cpu', "
                       f"backend={'onnxruntime' if onnx else 'torch'!r})\n"
                       "print(model.translate(np.zeros((1, 64, 64, 3), np.uint8)).shape)", env=env)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split("\n")[:2] == [str(REPO / "checkpoints" / "pose2person"), "(1, 64, 64, 3)"], loaded.stdout
    assert not onnx or "cannot keep the exported ONNX graph there (Permission denied)" in loaded.stderr, loaded.stderr

    # A model folder given directly that cannot be read: one line, exit 1.
    direct = as_a_user("-m", "vidtrans", "export", models / "secret", "-o", tmp_path / "x.onnx", env=env)
    assert direct.returncode == 1 and direct.stderr.count("\n") == 1, direct.stderr
    assert direct.stderr.startswith(f"vidtrans: error: {models / 'secret' / 'card.json'}: cannot read the model "
                                    "card (Permission denied)"), direct.stderr
    assert not (tmp_path / "x.onnx").exists()


def test_models_lists_cards_that_are_no_files_and_backgrounds_that_are_no_images_as_unusable(tmp_path):
    models = tmp_path / "models"
    for name in ("fifo", "folder", "link", "background"):
        tiny_model(models / name)
    for name in ("fifo", "folder", "link"):
        (models / name / "card.json").unlink()
    os.mkfifo(models / "fifo" / "card.json")  # read without a check, it waited for a writer for ever
    # Should it be opened after all, an empty write end ends the wait: the test fails, not hangs.
    def end_the_wait():
        with contextlib.suppress(OSError):  # nobody reading it: nothing to end
            os.close(os.open(models / "fifo" / "card.json", os.O_WRONLY | os.O_NONBLOCK))

    unblock = threading.Timer(30, end_the_wait)
    unblock.daemon = True
    unblock.start()
    (models / "folder" / "card.json").mkdir()
    (models / "link" / "card.json").symlink_to(tmp_path / "gone.json")
    (models / "background" / "background.png").write_text("not a picture")
    result = run_cli("models", env={**os.environ, "VIDTRANS_MODELS": str(models)})
    unblock.cancel()
    assert result.returncode == 0 and result.exception is None, result.stderr
    rows = table_rows(result.stdout)
    for name in ("fifo", "folder", "link"):
        assert rows[name][1] == "unusable card", result.stdout
    assert rows["background"][1] == "unusable files", result.stdout
    warnings = result.stderr.splitlines()
    for expected in (f"{models / 'fifo' / 'card.json'}: is a FIFO, not a file",
                     f"{models / 'folder' / 'card.json'}: is a folder, not a file",
                     f"{models / 'link' / 'card.json'}: a link to {tmp_path / 'gone.json'}, which does not exist",
                     f"{models / 'background' / 'background.png'}: not a readable image"):
        # What loading the model says too.
        assert f"vidtrans: warning: {expected}" in warnings[[expected in w for w in warnings].index(True)], warnings
        loaded = run_cli("export", Path(expected.split(": ")[0]).parent, "-o", tmp_path / "x.onnx")
        assert one_line(loaded, 1).startswith(f"vidtrans: error: {expected}"), loaded.stderr


def test_models_shows_names_and_paths_with_brackets_as_they_are(tmp_path):
    root = tmp_path / "[lib] models"
    tiny_model(root / "facades [v2]")
    result = run_cli("models", env={**os.environ, "VIDTRANS_MODELS": str(root)})
    assert result.returncode == 0, result.stderr
    assert table_rows(result.stdout)["facades [v2]"][-1] == str(root / "facades [v2]"), result.stdout
    assert f"searched: {root}, " in result.stderr, result.stderr


def generator_state(architecture="resnet_6blocks", norm="instance", seed=0) -> dict[str, torch.Tensor]:
    return random_generator(architecture, 3, 3, 8, norm, seed=seed).state_dict()


def test_import_never_replaces_its_own_input(tmp_path):
    out = tiny_model(tmp_path / "out")
    state = out / "train_state.pt"
    torch.save(generator_state(), state)
    before = state.read_bytes()
    result = run_cli("import-pix2pix", state, "-o", out, "--overwrite")
    line = one_line(result, 2)
    assert "would replace the input" in line and str(state) in line, line
    assert state.read_bytes() == before
    # A generator's safetensors file named as our weights, in a folder without a card: the save
    # would write over it even without --overwrite.
    bare = tmp_path / "bare"
    bare.mkdir()
    save_file(generator_state(), bare / "model.safetensors")
    before = (bare / "model.safetensors").read_bytes()
    assert "would replace the input" in one_line(run_cli("import-pix2pix", bare / "model.safetensors", "-o", bare), 2)
    assert (bare / "model.safetensors").read_bytes() == before and not (bare / "card.json").exists()


@pytest.mark.parametrize("name", ["generator.safetensors", "generator.pth"])
def test_a_generators_safetensors_file_is_read_by_its_content_wherever_a_pth_is(tmp_path, name):
    path = tmp_path / name
    save_file(generator_state(), path)
    result = run_cli("import-pix2pix", path, "-o", tmp_path / "imported")
    assert result.returncode == 0, result.stderr
    assert "resnet_6blocks (ngf 8, instance norm, 3->3 channels)" in result.stderr
    model = vidtrans.load_model(path, device="cpu")  # what run and export load
    assert model.card.architecture == "resnet_6blocks"


def test_import_messages_say_what_is_missing(tmp_path):
    unet = generator_state("unet_256", "batch")
    without_scale = {k: v for k, v in unet.items() if k != "model.model.1.model.2.weight"}
    torch.save(without_scale, tmp_path / "no_scale.pth")
    line = one_line(run_cli("import-pix2pix", tmp_path / "no_scale.pth", "-o", tmp_path / "a"), 1)
    assert "'model.model.1.model.2.weight' is missing" in line, line
    without_conv = {k: v for k, v in unet.items() if k != "model.model.1.model.1.weight"}
    torch.save(without_conv, tmp_path / "no_conv.pth")
    line = one_line(run_cli("import-pix2pix", tmp_path / "no_conv.pth", "-o", tmp_path / "b"), 1)
    assert "no layer 'model.model.1.model.1.weight'" in line and "'unet_2'" not in line, line
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_training_checkpoint_holding_one_generator_is_imported_and_several_are_named(tmp_path):
    discriminator = {"model.0.weight": torch.zeros(8, 6, 4, 4), "model.0.bias": torch.zeros(8)}
    for saved, entry in (({"netG": generator_state(), "netD": discriminator, "epoch": 3}, "netG"),
                         ({"model": generator_state()}, "model")):
        torch.save(saved, tmp_path / "train.pth")
        result = run_cli("import-pix2pix", tmp_path / "train.pth", "-o", tmp_path / entry)
        assert result.returncode == 0, result.stderr
        assert vidtrans.load_model(tmp_path / entry, device="cpu").card.source.endswith(f"(entry '{entry}')")
    torch.save({"G_A": generator_state(), "G_B": generator_state(seed=1), "D_A": discriminator}, tmp_path / "cycle.pth")
    line = one_line(run_cli("import-pix2pix", tmp_path / "cycle.pth", "-o", tmp_path / "cycle"), 1)
    assert "holds 2 generators (entries 'G_A', 'G_B')" in line, line
    assert f"torch.save(torch.load({str(tmp_path / 'cycle.pth')!r}, weights_only=True)['G_A']" in line, line
    assert "['G_A']" in line and not (tmp_path / "cycle").exists(), line


def test_a_cached_graph_path_taken_by_a_fifo_is_named_in_the_warning(tmp_path, caplog):
    pytest.importorskip("onnxruntime")
    from vidtrans.models.checkpoint import load_checkpoint

    model = tiny_model(tmp_path / "model", seed=17)  # weights of its own: no other test has cached its graph
    path = cache_dir() / f"{graph_key(load_checkpoint(model), 'sample')}.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    try:
        with caplog.at_level(logging.WARNING, logger="vidtrans"):
            vidtrans.load_model(model, device="cpu", backend="onnxruntime")
    finally:
        path.unlink()
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith(f"{path}: is a FIFO") and "each run exports it again" in m for m in messages), messages
