"""QA round 24, eval: the figures on cases with known answers, checked against an independent SSIM."""

import json
import math

import numpy as np
import pytest
from scipy.signal import correlate2d

import vidtrans
from tests.conftest import one_line, run_cli
from tests.media import random_generator
from vidtrans.errors import UsageError
from vidtrans.evaluate import Material, check_material, dance_truth, pose_error, region_ssim
from vidtrans.metrics import psnr, ssim
from vidtrans.models.checkpoint import ModelCard, save_checkpoint
from vidtrans.options import RunOptions
from vidtrans.pipeline import TranslateStage
from vidtrans.pose.keypoints import KEYPOINT_INDEX, with_parts
from vidtrans.pose.regions import person_box
from vidtrans.pose.render import PoseStyle
from vidtrans.train.synth import TARGET_LOOK, dance_keypoints, render_person

SIDE = 128  # the model's frame of these cases: large enough for face and hand squares

C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2  # Wang et al. 2004, data range 255
_G = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
WINDOW = np.outer(_G, _G) / np.outer(_G, _G).sum()  # 11x11 Gaussian, sigma 1.5


def _mean(channel: np.ndarray) -> np.ndarray:
    return correlate2d(channel, WINDOW, mode="valid")


def reference_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al.'s SSIM by 2-D correlation over the positions where the window fits, per RGB
    channel, averaged over channels and frames."""
    scores = []
    for x, y in zip(np.asarray(a, np.float64).reshape(-1, *a.shape[-3:]),
                    np.asarray(b, np.float64).reshape(-1, *b.shape[-3:])):
        for c in range(3):
            p, q = x[..., c], y[..., c]
            mp, mq = _mean(p), _mean(q)
            vp, vq, cov = _mean(p * p) - mp**2, _mean(q * q) - mq**2, _mean(p * q) - mp * mq
            scores.append((((2 * mp * mq + C1) * (2 * cov + C2)) / ((mp**2 + mq**2 + C1) * (vp + vq + C2))).mean())
    return float(np.mean(scores))


def _pose_model(folder, native_size, training):
    """A stand-in pose model (pix2pix's initial weights) of `native_size` (height, width), its card
    recording `training`."""
    card = ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance", native_size=native_size, input_kind="pose",
                     pose_style=PoseStyle().to_dict(), training=training)
    save_checkpoint(folder, random_generator("resnet_6blocks", 3, 3, 8, "instance"), card)
    return folder


@pytest.fixture(scope="module")
def dance():
    """Whole-body keypoints (6, 128, 3) of a held-out dance in the model's frame, and its true frames."""
    keypoints = dance_keypoints(20000001, 6, SIDE, SIDE, TARGET_LOOK, whole_body=True)
    return keypoints, np.stack([render_person(kp, SIDE, SIDE, TARGET_LOOK) for kp in keypoints])


def test_ssim_and_psnr_match_the_formulas_on_shifts_noise_and_blank_frames(dance):
    _, truth = dance
    rng = np.random.default_rng(0)
    noisy = np.clip(truth + rng.normal(0, 10, truth.shape), 0, 255).astype(np.uint8)
    cases = {"identical": truth, "1 px right": np.roll(truth, 1, axis=2), "1 px down": np.roll(truth, 1, axis=1),
             "noise": noisy, "blank": np.zeros_like(truth)}
    for name, output in cases.items():
        assert ssim(output, truth) == pytest.approx(reference_ssim(output, truth), abs=1e-9), name
    assert ssim(truth, truth) == 1.0 and psnr(truth, truth) == 100.0
    # A crop (a view into the frame, not contiguous) as region scoring takes it, down to the window's size.
    for y0, x0, h, w in ((20, 30, 11, 11), (5, 7, 40, 23)):
        crop = (slice(None), slice(y0, y0 + h), slice(x0, x0 + w))
        assert ssim(noisy[crop], truth[crop]) == pytest.approx(reference_ssim(noisy[crop], truth[crop]), abs=1e-9)
    # Every pixel off by exactly 5 levels: PSNR's closed form.
    flat = np.full((2, 16, 16, 3), 100, np.uint8)
    assert psnr(flat + 5, flat) == pytest.approx(10 * math.log10(255**2 / 25), abs=1e-9)


def test_crops_are_placed_by_the_body_whatever_the_pose_style(dance):
    """The person's box of a whole-body pose took in the finger points too, so the same output
    scored another person SSIM against a whole-body model's truth than against a body-only one's."""
    keypoints, truth = dance
    shifted = np.roll(truth, 1, axis=2)
    whole = region_ssim(shifted, truth, keypoints)
    body = region_ssim(shifted, truth, with_parts(keypoints, whole_body=False))
    assert whole == body
    # The person figure is the mean SSIM over the body's boxes, by the reference formula.
    boxes = [person_box(kp, SIDE, SIDE) for kp in with_parts(keypoints, whole_body=False)]
    expected = np.mean([reference_ssim(shifted[i, y0:y1, x0:x1], truth[i, y0:y1, x0:x1])
                        for i, (x0, y0, x1, y1) in enumerate(boxes)])
    assert whole["person_ssim"] == round(expected, 4)
    assert region_ssim(truth, truth, keypoints) == {"person_ssim": 1.0, "face_ssim": 1.0, "hands_ssim": 1.0}


def test_keypoints_outside_the_frame_are_not_counted_as_missed():
    """The detector reports no point outside the picture, so a true point there cannot be found:
    a perfect reading of a dancer cut by the frame's edge missed nothing."""
    true = np.zeros((2, 18, 3), np.float32)
    true[..., :2] = np.linspace(10, 50, 18)[:, None]
    true[..., 2] = 1
    true[:, :4, 0] = [-3, SIDE + 2, SIDE - 0.5, -0.5]  # two outside, two on the frame's last pixel centres' edge
    found = true.copy()
    found[:, :2] = 0  # what MediaPipe gives for points past the frame
    assert pose_error(found, true, SIDE, SIDE) == (0.0, 0.0)
    shifted = found.copy()
    shifted[:, 2:, 0] += 1
    shifted[:, 5, 2] = 0  # one point inside the frame not found: 1 of 16 per frame
    error, missed = pose_error(shifted, true, SIDE, SIDE)
    assert error == pytest.approx(1.0) and missed == pytest.approx(1 / 16)
    # Nobody inside the frame: nothing to average.
    assert pose_error(found, np.where(np.arange(18)[:, None] < 2, true, 0), SIDE, SIDE) == (None, None)


def test_numpy_numbers_are_taken_as_the_numbers_they_are():
    """What indexing an array gives: refused as "seed must be a whole number ... got 20000001"."""
    material = check_material(Material(frames=np.int64(5), seed=np.int64(20000001),
                                       size=(np.int32(64), np.uint16(48))))
    assert (material.frames, material.seed, material.size) == (5, 20000001, (64, 48))
    json.dumps([material.frames, material.seed, *material.size])  # the scores echo them in JSON


def test_a_perfect_model_of_an_odd_size_scores_as_one_of_an_even_size(tmp_path, monkeypatch):
    """H.264 stores an odd side padded by a replicated pixel: the output read back was scaled from
    64 to 63 px (person SSIM 0.80 for a perfect output, flicker 0.73x the truth's), not cropped."""
    odd = _pose_model(tmp_path / "odd", (63, 63), {"train_seeds": [0, 10_000]})
    _, _, truth = dance_truth(vidtrans.load_model(odd, device="cpu"), 20000001, 4, (128, 128))

    def perfect(self, batch):
        batch.output = truth[batch.indices].copy()
        yield batch

    monkeypatch.setattr(TranslateStage, "process", perfect)
    result = run_cli("eval", "--model", odd, "--size", "128", "128", "--frames", "4", "--seed", "20000001",
                     "--smooth", "none", "--json")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    # Only the encode stands between the output and the truth; the truth's flicker is taken after the same encode.
    assert scores["person_ssim"] > 0.9 and scores["ssim"] > 0.9 and scores["psnr"] > 30, scores
    assert scores["flicker_ratio"] == 1.0, scores


@pytest.mark.parametrize("seeds", [[5], "abc", [None, None], {"from": 0}, 7, [0.5, 1e9], [True, 3], [10, 0]])
def test_a_damaged_record_of_the_training_dances_is_one_line_naming_the_card(tmp_path, seeds):
    """It was a traceback (IndexError, TypeError, KeyError), or a refusal of seeds 0.5..999999999.0."""
    _pose_model(tmp_path / "m", (64, 64), {"train_seeds": seeds})
    before = sorted(p.name for p in tmp_path.rglob("*"))
    line = one_line(run_cli("eval", "--model", tmp_path / "m", "--frames", "2", "--size", "64", "64"), 1)
    assert "m's card: its record of the training dances" in line and "fix the model card" in line, line
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_face_hand_and_person_crops_of_a_pose_measured_by_hand():
    """A pose whose torso is 30 px (so 100 px tall): a 20 px face square on the nose, a 16 px hand
    square 4 px beyond the wrist along the forearm, the person's box 8 px around the points (10 more
    above, for the head; end-exclusive, past the last pixel it holds); each figure the reference
    SSIM of that crop."""
    pose = np.zeros((1, 18, 3), np.float32)
    # 0.3 px off whole numbers, so that no edge lies on a rounding boundary.
    for name, (x, y) in {"nose": (64, 30), "neck": (64, 40), "r_hip": (60, 70), "l_hip": (68, 70),
                         "r_elbow": (80, 60), "r_wrist": (90, 60)}.items():
        pose[0, KEYPOINT_INDEX[name]] = (x + 0.3, y + 0.3, 1)
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 256, (1, SIDE, SIDE, 3), dtype=np.uint8)
    output = np.clip(truth + rng.normal(0, 40, truth.shape), 0, 255).astype(np.uint8)

    def expected(y0, y1, x0, x1):
        return round(reference_ssim(output[:, y0:y1, x0:x1], truth[:, y0:y1, x0:x1]), 4)

    assert region_ssim(output, truth, pose) == {"person_ssim": expected(12, 80, 52, 100),
                                                "face_ssim": expected(20, 40, 54, 74),
                                                "hands_ssim": expected(52, 68, 86, 102)}


@pytest.mark.parametrize("setting,refused", [
    ({"side_by_side": True}, "side_by_side writes panels beside the output"),
    ({"start": 0.5}, "start and end cut a clip, and evaluation chooses the frames it scores"),
    ({"end": 2.0}, "start and end cut a clip"),
    ({"pose": "none"}, "pose none takes the input for pose maps"),
])
def test_run_settings_that_would_score_something_else_are_refused(setting, refused):
    """From Python, score() took them and gave figures of a squashed three-panel frame, or
    silently dropped the cut."""
    with pytest.raises(UsageError) as info:
        check_material(Material(frames=4), RunOptions(**setting))
    assert refused in str(info.value) and str(info.value).endswith("; drop it") and "\n" not in str(info.value)
