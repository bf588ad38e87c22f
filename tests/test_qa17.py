"""Defects found in the seventeenth QA pass (thirteenth session), each a user-visible behaviour."""
import pytest

from tests.media import paired_folder
from vidtrans.errors import UsageError
from vidtrans.train.data import PairedFolder


def test_an_empty_held_out_folder_is_named_with_its_own_fix(tmp_path):
    data = paired_folder(tmp_path / "data", 3)
    (data / "val").mkdir()
    with pytest.raises(UsageError) as caught:
        PairedFolder(data)
    message = str(caught.value)
    assert str(data / "val") in message and "no images found" in message, message
    # Not the advice for a wrong training folder: the training pairs are fine.
    assert "put held-out pairs in it" in message and "or remove it" in message, message
    assert "pass a folder of side-by-side AB images" not in message, message
