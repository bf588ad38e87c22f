"""QA round 35: targets trained from a video (`vidtrans train target.mp4`), on a square around the dancer.

The target's statistics are measured in that square, a clip's in its whole frame. The target's own
new footage, filmed as its training video was, was moved about 11 px sideways at 256 px (its dancer's
usual place, which differs from dance to dance, went onto the training dance's), and in a portrait
video, whose square starts below the frame's top, it was not taken as framed alike at all and was
rescaled by the size measure's error. With the square the card records (`TrainingSquare`), such a
clip is cropped as training cropped it.
"""

import json

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.media import TINY_TRAINING
from vidtrans.pose.normalize import (PoseNormalizer, TrainingSquare, estimate_pose_stats, estimate_target_stats,
                                     normalizer_for)
from vidtrans.errors import VidtransError
from vidtrans.train.data import keypoints_in_crop, recorded_training_square, training_crop
from vidtrans.train.synth import TARGET_LOOK, dance_keypoints, render_person

MODEL = 256


def filmed(seed: int, width: int, height: int, right: float = 0.0, down: float = 0.0, factor: float = 1.0,
           frames: int = 300) -> np.ndarray:
    """Dance `seed` of the target in a width x height video: made in a square of the frame's shorter
    side, its middle `right` of the frame's and its top `down` of the frame's top (pixels), scaled by
    `factor` about the square's floor line (where the dancer stands)."""
    side = min(width, height)
    track = dance_keypoints(seed, frames, side, side, TARGET_LOOK)
    shown = track[..., 2] > 0
    floor = 0.88 * side
    out = track.copy()
    out[..., 0] = np.where(shown, (track[..., 0] + 0.5 - side / 2) * factor + width / 2 + right - 0.5, 0)
    out[..., 1] = np.where(shown, (track[..., 1] + 0.5 - floor) * factor + floor + down - 0.5, 0)
    return out


def trained_on(track: np.ndarray, width: int, height: int) -> tuple[TrainingSquare, object, tuple]:
    """The square training crops from `track`, and the statistics it measures there (as VideoPairs)."""
    crop = training_crop(track, width, height)
    stats = estimate_target_stats(keypoints_in_crop(track, crop, MODEL), MODEL, MODEL)
    return TrainingSquare(width, height, *crop), stats, crop


# A landscape video with the dancer right of the middle; a portrait one, the dancer in its middle.
FRAMINGS = [(640, 360, 120.0, 0.0), (360, 640, 0.0, 140.0)]


@pytest.mark.parametrize("width, height, right, down", FRAMINGS)
def test_the_targets_own_new_dance_is_cropped_as_training_cropped(width, height, right, down):
    square, target, crop = trained_on(filmed(1, width, height, right, down), width, height)
    new = filmed(2, width, height, right, down)
    normalizer, _ = normalizer_for(new, height, width, target, square)
    assert normalizer.alike
    np.testing.assert_allclose(normalizer(new), keypoints_in_crop(new, crop, MODEL), atol=1e-3)


@pytest.mark.parametrize("width, height, right, down", FRAMINGS)
def test_a_dancer_of_another_size_is_brought_to_the_targets(width, height, right, down):
    square, target, crop = trained_on(filmed(1, width, height, right, down), width, height)
    for factor in (0.8, 1.25):
        track = filmed(2, width, height, right, down, factor)
        normalizer, _ = normalizer_for(track, height, width, target, square)
        assert not normalizer.alike
        mapped, cropped = normalizer(track), keypoints_in_crop(track, crop, MODEL)
        heights = [np.median(t[:, [10, 13], 1].max(axis=1) - t[:, 1, 1]) for t in (mapped, cropped)]
        assert heights[0] / heights[1] == pytest.approx(1 / factor, rel=0.01)


def test_a_dancer_of_the_targets_size_elsewhere_sideways_goes_to_where_the_target_stood():
    """Framed alike but for standing on the frame's other side: cropping as training did would cut
    the dancer off, so their usual place goes to the target's, as without a square."""
    square, target, _ = trained_on(filmed(1, 640, 360, right=120), 640, 360)
    track = filmed(1, 640, 360, right=-120)
    normalizer, _ = normalizer_for(track, 360, 640, target, square)
    assert not normalizer.alike
    ankle_x = np.median(normalizer(track)[:, [10, 13], 0].mean(axis=1) + 0.5) / MODEL
    assert ankle_x == pytest.approx(0.5 + target.centre_x, abs=0.01)


def test_without_a_square_an_older_cards_target_is_mapped_as_before():
    _, target, _ = trained_on(filmed(1, 640, 360, right=120), 640, 360)
    track = filmed(2, 640, 360, right=120)
    source = estimate_pose_stats(track, 360, 640, like=target)
    normalizer, _ = normalizer_for(track, 360, 640, target)
    np.testing.assert_array_equal(normalizer(track), PoseNormalizer(source, target)(track))


@pytest.mark.parametrize("size", [[640], [640, 0], [640.0, 360], "640x360", [True, 360]])
def test_a_damaged_training_video_size_is_named(size):
    with pytest.raises(VidtransError, match=r"m: the model card's training video size .* is not \[width, height\]"):
        recorded_training_square({"crop": [0, 0, 360], "frame_size": size}, "m")


def test_a_card_without_the_video_size_has_no_square():
    assert recorded_training_square({"crop": [0, 0, 360]}, "m") is None
    assert recorded_training_square({}, "m") is None


def test_train_records_the_video_size_and_run_keeps_the_targets_own_portrait_footage(tmp_path):
    """End to end at tiny settings: the card holds the square's video size, and run says the
    target's own portrait footage (its square below the frame's top) is kept as framed."""
    import av

    width, height = 180, 320
    video = tmp_path / "target.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for pose in filmed(1, width, height, down=70, frames=60):
            image = render_person(pose, height, width, TARGET_LOOK)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    model = tmp_path / "m"
    trained = run_cli("train", video, "-o", model, "--iterations", "1", *TINY_TRAINING)
    assert trained.returncode == 0, trained.stderr
    training = json.loads((model / "card.json").read_text())["training"]
    assert training["frame_size"] == [width, height] and training["crop"][1] > 0
    result = run_cli("run", video, "--model", model, "-o", tmp_path / "out.mp4", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["pose"] == ("detected, normalized to the target's body, which the clip already "
                                                 "shows at its size and on its floor")
