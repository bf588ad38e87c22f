"""QA pass 24, the lead's follow-ups: a NUL character in a batch pattern, a camera and eval's
material paths (ValueError tracebacks or raw NULs echoed), and eval's material of the wrong type."""

import pytest

from vidtrans.errors import UsageError
from vidtrans.evaluate import Material, check_material
from vidtrans.options import BatchOptions


def test_a_batch_pattern_holding_a_nul_is_refused_when_made():
    with pytest.raises(UsageError, match=r"^patterns '\*\.mp4\\x00': no file name holds a NUL character"):
        BatchOptions(patterns=["*.mp4\0"])


def test_a_camera_path_holding_a_nul_is_a_usage_error():
    from vidtrans.video.camera import Camera

    with pytest.raises(UsageError, match="cannot hold a NUL character"):
        Camera("/tmp/c\0am.mp4")


@pytest.mark.parametrize("material", [Material(video="clip\0.mp4"), Material(data="pairs\0")])
def test_eval_material_paths_holding_a_nul_are_usage_errors(material):
    with pytest.raises(UsageError, match="cannot hold a NUL character"):
        check_material(material)


@pytest.mark.parametrize("material", [Material(video=123), Material(data=b"pairs")])
def test_eval_material_that_is_no_path_is_a_usage_error(material):
    with pytest.raises(UsageError, match="must be a file path"):
        check_material(material)
