"""Session 21's own finds: names holding emoji codes are shown as they are."""

from tests.media import make_clip


def test_an_output_named_with_an_emoji_code_is_named_as_it_is(cli, rgb_model_dir, tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=3, size=(64, 48), audio=False).path
    out = tmp_path / ":x: take.mp4"
    result = cli("run", clip, "-o", out, "--model", rgb_model_dir, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert f"-> {out}" in result.stderr and "\u274c" not in result.stderr, result.stderr
