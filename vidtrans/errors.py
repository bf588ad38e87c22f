"""The one exception type that reaches users.

Anything raised as `VidtransError` is an expected failure (bad input, missing model, unwritable
folder): the CLI prints its message as a single line and exits non-zero, without a traceback.
Messages should name the problem and the fix, e.g. "input.mp4: no video stream (pass a video file)".
"""


class VidtransError(Exception):
    """A user-facing failure whose message is one line naming the problem and the fix."""
