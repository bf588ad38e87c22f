"""Option values a machine cannot honour are refused when the options are made, in one line."""

import pytest

from tests.media import make_clip
from vidtrans import BatchOptions, EncodeOptions
from vidtrans.errors import UsageError


@pytest.mark.parametrize("make", [lambda n: EncodeOptions(threads=n), lambda n: EncodeOptions(segments=n),
                                  lambda n: BatchOptions(workers=n)], ids=["threads", "segments", "workers"])
@pytest.mark.parametrize("value", [1025, 10**12, 2**70])
def test_absurd_thread_counts_are_refused_up_front(make, value):
    # They reached PyAV as a bare OverflowError, or started a thread per worker until the process hung.
    with pytest.raises(UsageError, match=rf"must be from [01] to 1024, (not|got) {value}$"):
        make(value)
    make(1024)


@pytest.mark.parametrize("field, value", [("ext", 5), ("ext", ["mp4"]), ("ext", True), ("report", 5),
                                          ("report", True), ("report", ["r.json"]), ("report", b"r.json")])
def test_batch_ext_and_report_of_the_wrong_type_are_refused(field, value):
    # They failed inside the batch as bare AttributeError / TypeError.
    with pytest.raises(UsageError, match=rf"^{field} must be "):
        BatchOptions(**{field: value})


@pytest.mark.parametrize("kwargs, message", [
    ({"ext": ""}, "ext must be a file extension such as mp4 or mkv, got ''"),
    ({"ext": "../x"}, "ext must be a file extension such as mp4 or mkv, got '../x'"),
    ({"report": " "}, "report is empty (' '); give a report file name such as report.json")])
def test_batch_messages_name_the_python_parameters(tmp_path, rgb_model_dir, kwargs, message):
    from vidtrans.batch import BatchUsageError, translate_folder

    (tmp_path / "in").mkdir()
    make_clip(tmp_path / "in" / "a.mp4", frames=2, audio=False)
    with pytest.raises(BatchUsageError) as caught:
        translate_folder(tmp_path / "in", tmp_path / "out", rgb_model_dir, **kwargs)
    assert str(caught.value) == message
    assert not (tmp_path / "out").exists() and not (tmp_path / " ").exists()


@pytest.mark.parametrize("frames, named", [(None, "NoneType"), ("frames", "str"), ((f for f in ()), "generator")])
def test_translate_given_no_pixels_names_what_it_got(rgb_model_dir, frames, named):
    import vidtrans

    with pytest.raises(UsageError, match=rf"pass a NumPy uint8 array, not {named}$"):
        vidtrans.load_model(rgb_model_dir).translate(frames)


def test_a_translator_made_from_a_name_points_to_load_model():
    import vidtrans

    with pytest.raises(UsageError, match=r"^Translator takes a loaded Checkpoint, not str; for a model name or path "
                                         r"use vidtrans.load_model\(\.\.\.\)$"):
        vidtrans.Translator("pose2person")


def test_an_array_given_as_a_path_is_named_in_one_line(tmp_path):
    import numpy as np

    import vidtrans

    with pytest.raises(UsageError) as caught:
        vidtrans.translate_video(np.zeros((4, 4, 3)), tmp_path / "o.mp4", None)
    assert str(caught.value) == "src must be a file path (a str or os.PathLike), not ndarray"
