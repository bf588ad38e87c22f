"""QA round 26, checkpoints: PyTorch files cut short or damaged are named as such (a training state cut
at 5000 bytes said "cannot read (Invalid argument)"; a damaged pickle said it held pickled objects);
an archive whose end record is damaged but which torch reads loads (zipfile raised BadZipFile); a
file of meta-device tensors is one line (a traceback); a checkpoint folder whose weights are a
PyTorch file says so (it said the weights were damaged); import-pix2pix no longer adopts a
background.png it finds (the model written could not load), nor writes --normalization running
for a generator without batch norm, where it changes nothing."""

import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

import vidtrans
from tests.conftest import one_line
from tests.media import make_clip, random_generator
from vidtrans.models.checkpoint import WEIGHTS_NAME, ModelCard, convert_pix2pix, save_checkpoint


def generator():
    return random_generator("resnet_6blocks", 3, 3, 4, "instance")


def files_of(folder):
    return {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("media") / "in.mp4", frames=2, audio=False).path


# --- 1. a training state cut short --------------------------------------------------------------------


def test_resuming_from_a_training_state_cut_short_says_it_is_truncated_and_what_to_do(tmp_path, cli):
    folder = tmp_path / "ck"
    save_checkpoint(folder, generator(), ModelCard(architecture="resnet_6blocks", ngf=4, norm="instance"))
    state = folder / "train_state.pt"
    torch.save({"netG": {"w": torch.zeros(10_000)}, "iteration": 1, "config": {}}, state)
    state.write_bytes(state.read_bytes()[:5000])  # a copy stopped part way
    before = files_of(folder)
    line = one_line(cli("train", "--synthetic", "-o", folder, "--resume", "--iterations", "5"), 1)
    assert line.startswith(f"vidtrans: error: {state}: a truncated or damaged PyTorch file"), line
    assert "cannot read" not in line
    assert line.endswith("copy it again from a whole copy, or start over with --overwrite"), line
    assert files_of(folder) == before


# --- 2. damaged bytes are no pickled objects --------------------------------------------------------------


def test_a_generator_file_with_damaged_pickle_bytes_is_not_said_to_hold_pickled_objects(tmp_path, cli):
    path = tmp_path / "latest_net_G.pth"
    torch.save(generator().state_dict(), path)
    with zipfile.ZipFile(path) as archive:
        record = next(info for info in archive.infolist() if info.filename.endswith("data.pkl"))
    data = bytearray(path.read_bytes())
    header = record.header_offset  # a local header: 30 bytes, then the name and the extra field
    start = header + 30 + sum(int.from_bytes(data[at:at + 2], "little") for at in (header + 26, header + 28))
    assert data[start] == 0x80  # the pickle's PROTO; after it, its protocol, then its first opcode
    data[start + 2] = 0xFF  # no pickle opcode
    path.write_bytes(bytes(data))
    line = one_line(cli("import-pix2pix", path, "-o", tmp_path / "out"), 1)
    assert "pickled Python objects" not in line and "a damaged or truncated one" in line, line
    assert not (tmp_path / "out").exists()


def test_a_whole_pickled_network_is_still_refused_as_pickled_objects(tmp_path, cli):
    path = tmp_path / "latest_net_G.pth"
    torch.save(generator(), path)  # torch.save(net): its classes pickled with its weights
    line = one_line(cli("import-pix2pix", path, "-o", tmp_path / "out"), 1)
    assert "holds pickled Python objects, not just tensors; refused to unpickle them" in line, line


# --- 3. an archive with a damaged end record that torch reads ------------------------------------------


def test_a_generator_whose_zip_end_record_is_damaged_loads_as_torch_reads_it(tmp_path, clip, cli):
    # Named .bin, so the content decides: zipfile.is_zipfile raised BadZipFile ("span multiple
    # disks") for the damaged disk number of the archive's ZIP64 locator, which torch never reads.
    path = tmp_path / "gen.bin"
    torch.save(generator().state_dict(), path)
    data = bytearray(path.read_bytes())
    if data[-42:-38] != b"PK\x06\x07":  # the ZIP64 end locator, before the 22-byte end record
        pytest.skip("this torch writes no ZIP64 end locator")
    data[-38] ^= 0xFF  # the disk its directory is on
    path.write_bytes(bytes(data))
    model = vidtrans.load_model(path, device="cpu")
    assert model.translate(np.zeros((1, 32, 32, 3), np.uint8)).shape == (1, 32, 32, 3)
    out = tmp_path / "out.mp4"
    result = cli("run", clip, "--model", path, "-o", out)
    assert result.returncode == 0, result.stderr
    assert out.is_file()


# --- 4. tensors without values ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["run", "import-pix2pix"])
def test_a_generator_of_meta_tensors_is_one_line(tmp_path, clip, cli, command):
    path = tmp_path / "latest_net_G.pth"
    torch.save({name: torch.empty_like(value, device="meta") for name, value in generator().state_dict().items()},
               path)
    out = tmp_path / ("out.mp4" if command == "run" else "out")
    args = ["run", clip, "--model", path, "-o", out] if command == "run" else ["import-pix2pix", path, "-o", out]
    line = one_line(cli(*args), 1)
    assert line == (f"vidtrans: error: {path}: tensor 'model.1.weight' holds no values (saved from the meta device: "
                    "a network's shapes without its weights); save the trained network's weights")
    assert not out.exists()


# --- 5. a folder made by hand around a .pth --------------------------------------------------------------


def test_a_checkpoint_folder_whose_weights_are_a_pytorch_file_says_so(tmp_path, clip, cli):
    folder = tmp_path / "ck"
    upstream = tmp_path / "G.pth"
    torch.save(generator().state_dict(), upstream)
    convert_pix2pix(upstream, folder)
    (folder / WEIGHTS_NAME).write_bytes(upstream.read_bytes())  # renamed by hand
    line = one_line(cli("run", clip, "--model", folder, "-o", tmp_path / "out.mp4"), 1)
    assert line.startswith(f"vidtrans: error: {folder / WEIGHTS_NAME}: a PyTorch file (torch.save's format), not the "
                           "safetensors file a checkpoint folder holds;"), line
    assert "vidtrans import-pix2pix" in line and not (tmp_path / "out.mp4").exists()


# --- 6. a picture named as a checkpoint's background -----------------------------------------------------


def test_import_does_not_adopt_a_background_png_it_finds_in_a_folder_without_a_checkpoint(tmp_path, clip, cli):
    # It exited 0, and the model written failed to load ("background.png: 10x10, but the model's
    # native size is 256x256"), or showed the picture as its own background where the size fitted.
    upstream = tmp_path / "G.pth"
    torch.save(generator().state_dict(), upstream)
    folder = tmp_path / "out"
    (folder / "samples").mkdir(parents=True)
    picture = Image.new("RGB", (10, 10), (200, 30, 30))
    picture.save(folder / "background.png")
    (folder / "notes.txt").write_text("the user's")
    (folder / "samples" / "iter_0000001.png").write_bytes(b"a grid of a run whose card is gone")
    before = files_of(folder)
    line = one_line(cli("import-pix2pix", upstream, "-o", folder), 2)
    assert line == (f"vidtrans: error: {folder / 'background.png'}: already there, named as a checkpoint's "
                    "background, which the imported model would show as its own; move it away, import into another "
                    "folder, or pass --overwrite to replace it")
    assert files_of(folder) == before and not (folder / WEIGHTS_NAME).exists()
    result = cli("import-pix2pix", upstream, "-o", folder, "--overwrite")
    assert result.returncode == 0, result.stderr
    # Only the background goes: a folder without a card keeps its training state and grids.
    assert sorted(path.name for path in folder.iterdir()) == ["card.json", "model.safetensors", "notes.txt", "samples"]
    assert (folder / "samples" / "iter_0000001.png").is_file()
    out = tmp_path / "out.mp4"
    assert cli("run", clip, "--model", folder, "-o", out).returncode == 0 and out.is_file()


@pytest.mark.parametrize("card", [False, True])
def test_import_refuses_a_folder_named_as_the_background_before_writing_anything(tmp_path, cli, card):
    # Without a card the import exited 0 with a model that could not load ("is a folder, not a
    # file"); over a checkpoint, --overwrite put the new card and weights in place, then failed.
    upstream = tmp_path / "G.pth"
    torch.save(generator().state_dict(), upstream)
    folder = tmp_path / "out"
    if card:
        convert_pix2pix(upstream, folder)
    (folder / "background.png").mkdir(parents=True)
    (folder / "background.png" / "keep.txt").write_text("the user's")
    before = files_of(folder)
    line = one_line(cli("import-pix2pix", upstream, "-o", folder, "--overwrite"), 2)
    assert line == (f"vidtrans: error: {folder / 'background.png'}: a folder, where a checkpoint keeps its "
                    "background; move it away or import into another folder")
    assert files_of(folder) == before and (folder / "background.png" / "keep.txt").is_file()


# --- 7. a setting that would change nothing ----------------------------------------------------------------


@pytest.mark.parametrize("norm,held", [("instance", "which keeps none: it normalizes each frame by its own statistics"),
                                       ("none", "no norm layers")])
def test_import_refuses_running_statistics_for_a_generator_without_batch_norm(tmp_path, cli, norm, held):
    # It wrote a card saying "running" for a model that computes the same frames either way.
    upstream = tmp_path / "G.pth"
    torch.save(random_generator("resnet_6blocks", 3, 3, 4, norm).state_dict(), upstream)
    line = one_line(cli("import-pix2pix", upstream, "-o", tmp_path / "out", "--normalization", "running"), 2)
    assert line == (f"vidtrans: error: --normalization running uses batch norm's running statistics, and {upstream} "
                    f"is a resnet_6blocks generator with {norm} norm ({held}); drop it")
    assert not (tmp_path / "out").exists()
    batch = tmp_path / "B.pth"
    torch.save(random_generator("resnet_6blocks", 3, 3, 4, "batch").state_dict(), batch)
    assert convert_pix2pix(batch, tmp_path / "ok", normalization="running").normalization == "running"
