"""Session 23's own fixes."""
import struct

import cv2
import numpy as np
import pytest

from tests.conftest import one_line
from tests.conftest import run_cli as cli
from tests.media import TINY_TRAINING, make_clip, paired_folder


def test_a_long_ext_is_echoed_cut_on_one_line(tmp_path, rgb_model_dir):
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "a.mp4", frames=2, size=(32, 32), audio=False)
    result = cli("batch", str(src), "-o", str(tmp_path / "out"), "--model", str(rgb_model_dir), "--ext", "!" + "x" * 300)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "must be a file extension" in lines[0] and len(lines[0]) < 200, result.stderr
    assert not (tmp_path / "out").exists()


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) % 2)


def _animated_webp_with_icc_profile(rgb: np.ndarray, profile_bytes: int) -> bytes:
    """An animated WebP as an editor exporting with colour management writes it: VP8X (flags ICC and
    animation), then its ICC profile (ICCP, which the format puts before ANIM), ANIM and the frames."""
    ok, encoded = cv2.imencode(".webp", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_WEBP_QUALITY, 101])
    assert ok
    height, width = rgb.shape[:2]
    size = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    frame = _chunk(b"ANMF", bytes(6) + size + (100).to_bytes(3, "little") + b"\0" + bytes(encoded)[12:])
    payload = (b"WEBP" + _chunk(b"VP8X", bytes([0x20 | 0x02, 0, 0, 0]) + size)
               + _chunk(b"ICCP", bytes(profile_bytes)) + _chunk(b"ANIM", bytes(6)) + frame * 3)
    return b"RIFF" + struct.pack("<I", len(payload)) + payload


@pytest.mark.parametrize("profile_bytes", [0, 3144])  # none; sRGB IEC61966-2.1's usual size
def test_an_animated_webp_with_a_colour_profile_is_called_what_it_is(tmp_path, rgb_model_dir, profile_bytes):
    """Its ANIM chunk comes after the profile, beyond the first bytes: the VP8X flag says it is animated."""
    clip = tmp_path / "anim.webp"
    clip.write_bytes(_animated_webp_with_icc_profile(np.full((48, 64, 3), 90, np.uint8), profile_bytes))
    line = one_line(cli("run", clip, "-o", tmp_path / "out.mp4", "--model", rgb_model_dir), 1)
    assert line.endswith("anim.webp: an animated WebP, which FFmpeg cannot decode; convert it to a GIF or a video "
                         "(.mp4) first"), line
    assert not (tmp_path / "out.mp4").exists()


def test_an_animated_webp_with_a_colour_profile_among_pairs_is_refused(tmp_path):
    data = paired_folder(tmp_path / "data", 3)
    animated = data / "003.webp"
    animated.write_bytes(_animated_webp_with_icc_profile(np.zeros((64, 128, 3), np.uint8), 3144))
    line = one_line(cli("train", "--data", data, "-o", tmp_path / "out", "--iterations", "1", *TINY_TRAINING), 1)
    assert line.endswith(f"{animated}: an animated WebP, of which training would see the first picture only; save "
                         "the frames as images, one pair each"), line
    assert not (tmp_path / "out").exists()


def test_pose_json_names_the_keypoint_file_or_null(tmp_path):
    """`pose --json`: "keypoints" is the file written, and null (not "") where none was asked for, as
    other absent values in the summaries are."""
    import json

    clip = make_clip(tmp_path / "in.mp4", frames=3, size=(64, 48), audio=False).path
    without = cli("pose", clip, "-o", tmp_path / "a.mp4", "--json")
    assert without.returncode == 0, without.stderr
    assert json.loads(without.stdout)["keypoints"] is None
    with_file = cli("pose", clip, "-o", tmp_path / "b.mp4", "--keypoints", tmp_path / "k.npz", "--json")
    assert with_file.returncode == 0, with_file.stderr
    assert json.loads(with_file.stdout)["keypoints"] == str(tmp_path / "k.npz") and (tmp_path / "k.npz").is_file()


@pytest.mark.parametrize("args", [["run", "{url}", "-o", "{tmp}/o.mp4"],
                                  ["run", "{clip}", "-o", "{tmp}/o.mp4", "--model", "{url}"],
                                  ["pose", "{url}", "-o", "{tmp}/o.mp4"]])
def test_a_url_with_a_password_is_refused_without_showing_the_password(tmp_path, args):
    """Errors end up in terminals, logs and bug reports: live already hid a camera URL's password,
    the other commands printed it."""
    url = "rtsp://admin:hunter2@192.0.2.1:554/stream"
    clip = make_clip(tmp_path / "in.mp4", frames=2, size=(32, 32), audio=False).path
    result = cli(*(arg.format(url=url, tmp=tmp_path, clip=clip) for arg in args))
    line = one_line(result, 1)
    assert "rtsp://admin:***@192.0.2.1:554/stream: is a URL" in line and "hunter2" not in result.stderr, line


def test_an_ogv_output_is_told_the_codec_it_can_hold_and_writes_with_it(tmp_path, rgb_model_dir):
    """.ogv holds VP8 (and Theora, which this FFmpeg lacks): the refusal of H.264 named no codec, only
    another extension, though --codec libvpx writes the .ogv asked for."""
    from tests.media import decode_all

    clip = make_clip(tmp_path / "in.mp4", frames=4, size=(32, 32), audio=False).path
    line = one_line(cli("run", clip, "-o", tmp_path / "o.ogv", "--model", rgb_model_dir), 2)
    assert line.endswith("a .ogv file cannot hold libx264 video; use the codec libvpx, or another extension such as "
                         ".mkv"), line
    result = cli("run", clip, "-o", tmp_path / "o.ogv", "--model", rgb_model_dir, "--codec", "libvpx")
    assert result.returncode == 0, result.stderr
    assert len(decode_all(tmp_path / "o.ogv")[0]) == 4


def test_fine_tuning_a_non_square_model_warns_that_the_new_one_is_square(tmp_path, cli):
    """Training makes square models: a model of native size 128x64 fine-tuned came out 64x64, unsaid."""
    import json

    from tests.media import random_generator
    from vidtrans.models.checkpoint import ModelCard, save_checkpoint

    wide = tmp_path / "wide"
    save_checkpoint(wide, random_generator("resnet_6blocks", 3, 3, 4, "instance", seed=0),
                    ModelCard(architecture="resnet_6blocks", ngf=4, norm="instance", native_size=(64, 128)))
    data = paired_folder(tmp_path / "data", 3)
    result = cli("train", "--data", data, "-o", tmp_path / "out", "--init-from", wide, "--iterations", "1",
                 "--ndf", "4", "--d-scales", "1", "--device", "cpu", "--save-every", "1", "--validate-every", "1")
    assert result.returncode == 0, result.stderr
    warning = " ".join(result.stderr.split())
    assert f"{wide}: its native size is 128x64 (width x height), and training makes square models: the fine-tuned " \
           "one's is 64x64" in warning, result.stderr
    assert json.loads((tmp_path / "out" / "card.json").read_text())["native_size"] == [64, 64]


@pytest.mark.parametrize("name,fix", [
    ("clip.mkv", "the .mkv file is damaged or cut short, or not what its name says; re-export or re-download it"),
    ("clip.MXF", "the .mxf file is damaged or cut short, or not what its name says; re-export or re-download it"),
    ("notes.txt", "pass a video such as .mp4/.mov/.mkv")])
def test_a_video_whose_header_is_damaged_is_told_so_not_to_pass_a_video(tmp_path, rgb_model_dir, name, fix):
    """A .mkv whose first bytes are damaged was told "pass a video such as .mp4/.mov/.mkv"."""
    make_clip(tmp_path / "good.mkv", frames=4, size=(32, 32), audio=False)
    data = bytearray((tmp_path / "good.mkv").read_bytes())
    data[:8] = bytes(b ^ 0x5A for b in data[:8])  # the EBML header's magic and its size
    (tmp_path / name).write_bytes(data)
    line = one_line(cli("run", tmp_path / name, "-o", tmp_path / "o.mp4", "--model", rgb_model_dir), 1)
    assert line.endswith(f"{tmp_path / name}: not a readable video file (Invalid data found when processing input); "
                         f"{fix}"), line
    assert not (tmp_path / "o.mp4").exists()


def test_eval_data_translates_each_pair_as_its_own_clip_for_a_temporal_model(tmp_path, cli):
    """A paired folder's pairs are unrelated pictures: a temporal model's previous output must not be
    the pair before's, as it was (the state went on from pair to pair). The truth here is what the
    model makes of each A alone, so scoring it so is perfect (100 dB, the cap)."""
    import json

    import vidtrans
    from tests.media import random_generator
    from vidtrans.metrics import psnr
    from vidtrans.models.checkpoint import ModelCard, save_checkpoint

    model_dir = tmp_path / "temporal"
    save_checkpoint(model_dir, random_generator("resnet_6blocks", 6, 3, 8, "instance", seed=1),
                    ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance", input_nc=6, native_size=(64, 64),
                              temporal={"previous": "output", "first": "black"}))
    model = vidtrans.load_model(model_dir, device="cpu", precision="fp32", backend="torch")
    a = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), np.uint8)
    each_alone = np.concatenate([model.translate(a[i:i + 1]) for i in range(3)])
    assert psnr(model.translate(a), each_alone) < 60  # one after another, the later pairs differ
    data = tmp_path / "pairs"
    data.mkdir()
    for i in range(3):
        cv2.imwrite(str(data / f"{i:03d}.png"), cv2.cvtColor(np.concatenate([a[i], each_alone[i]], 1), cv2.COLOR_RGB2BGR))
    result = cli("eval", "--model", model_dir, "--data", data, "--device", "cpu", "--precision", "fp32", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["psnr"] == 100


def test_pose_and_run_tell_the_corrupt_frames_they_replaced(tmp_path, rgb_model_dir):
    """`run` said how many frames could not be decoded; `pose`, reading the same damaged clip, did not."""
    import json

    from tests.media import corrupt_middle

    clip = make_clip(tmp_path / "damaged.mp4", frames=40, audio=False)
    corrupt_middle(clip.path)
    notes = []
    for args in (["run", clip.path, "-o", tmp_path / "r.mp4", "--model", rgb_model_dir, "--json"],
                 ["pose", clip.path, "-o", tmp_path / "p.mp4", "--json"]):
        result = cli(*args)
        assert result.returncode == 0, result.stderr
        corrupt = json.loads(result.stdout.splitlines()[0])["corrupt_frames"]
        assert corrupt > 0
        notes.append(f"; {corrupt} corrupt frame(s) replaced by the previous good frame" in " ".join(result.stderr.split()))
    assert notes == [True, True], notes


def test_training_data_source_refusals_name_the_python_parameters_from_python(tmp_path):
    """From Python, prepare_training named --data and --synthetic, flags a caller there has none of."""
    from vidtrans.errors import UsageError
    from vidtrans.options import TrainOptions
    from vidtrans.train.setup import prepare_training

    with pytest.raises(UsageError) as none_given:
        prepare_training(tmp_path / "out", TrainOptions())
    assert str(none_given.value) == ("give exactly one data source: a target video, data (a paired folder) or "
                                     "synthetic=True")
    with pytest.raises(UsageError) as paired_only:
        prepare_training(tmp_path / "out", TrainOptions(direction="BtoA"), synthetic=True)
    assert "is for a paired folder (data)" in str(paired_only.value) and "--" not in str(paired_only.value)
    line = one_line(cli("train", "-o", tmp_path / "out"), 2)
    assert line.endswith("give exactly one data source: a target video, --data (a paired folder) or --synthetic")
    assert not (tmp_path / "out").exists()
