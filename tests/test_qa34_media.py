"""QA round 34: real-world video variety through `vidtrans run`."""

from fractions import Fraction

import av
import numpy as np
import pytest

from tests.media import decode_all

# Kr and Kb of the two matrices a stream may be encoded with.
_MATRICES = {"bt709": (0.2126, 0.0722), "bt601": (0.299, 0.114)}


def _patches(width: int, height: int) -> np.ndarray:
    """Eight saturated flat colours side by side, where the two matrices differ most."""
    colours = np.array([(220, 30, 30), (30, 200, 30), (30, 30, 220), (235, 235, 235), (240, 200, 20),
                        (20, 200, 220), (128, 128, 128), (200, 40, 200)], np.uint8)
    return np.repeat(colours, width // len(colours), axis=0)[None].repeat(height, axis=0)


def _untagged_clip(path, image: np.ndarray, matrix: str) -> None:
    """Two frames of `image` converted to limited-range 4:4:4 YUV with `matrix` and encoded
    losslessly with no colour tags at all, as many encoders write HD video."""
    kr, kb = _MATRICES[matrix]
    rgb = image.astype(np.float64) / 255
    luma = kr * rgb[..., 0] + (1 - kr - kb) * rgb[..., 1] + kb * rgb[..., 2]
    planes = [16 + 219 * luma, 128 + 224 * (rgb[..., 2] - luma) / (2 * (1 - kb)),
              128 + 224 * (rgb[..., 0] - luma) / (2 * (1 - kr))]
    height, width = image.shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"crf": "0", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv444p"
        for pts in range(2):
            frame = av.VideoFrame(width, height, "yuv444p")
            for plane, values in zip(frame.planes, planes):
                rows = np.zeros((height, plane.line_size), np.uint8)
                rows[:, :width] = np.rint(values)
                plane.update(rows.tobytes())
            frame.pts, frame.time_base = pts, Fraction(1, 25)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with av.open(str(path)) as written:  # the premise: nothing says which matrix
        assert int(next(written.decode(video=0)).colorspace) == 2


@pytest.mark.parametrize("size, matrix", [((1280, 16), "bt709"), ((64, 48), "bt601")])
def test_untagged_video_keeps_the_colours_players_show(cli, tmp_path, rgb_model_dir, size, matrix):
    # A stream that does not name its YUV matrix was read with BT.601 at every size, FFmpeg's default,
    # while players take BT.709 for HD pictures: an untagged 720p clip came out 8.7 grey levels off
    # on average, its reds and greens far more. HD is now read as BT.709, SD as BT.601, as players do.
    width, height = size
    image = _patches(width, height)
    _untagged_clip(tmp_path / "in.mp4", image, matrix)
    result = cli("run", tmp_path / "in.mp4", "--model", rgb_model_dir, "-o", tmp_path / "out.mp4", "--side-by-side")
    assert result.returncode == 0, result.stderr
    frames, _ = decode_all(tmp_path / "out.mp4")
    assert len(frames) == 2
    shown = frames[0][:height, :width].astype(int)
    assert np.abs(shown - image).mean() < 2.0
