"""The one exception type that reaches users.

Anything raised as `VidtransError` is an expected failure (bad input, missing model, unwritable
folder): the CLI prints its message as a single line and exits non-zero, without a traceback.
Messages should name the problem and the fix, e.g. "input.mp4: no video stream (pass a video file)".
"""

import re
import signal

# Signals that stop a command the way Ctrl-C does (it ends as a stopped command, not a failure):
# `timeout`, `docker stop` and systemd send SIGTERM, a terminal that closes sends SIGHUP; Ctrl-\ sends
# SIGQUIT, a CPU-time limit (ulimit -t, batch schedulers) SIGXCPU, and `kill -USR1`, `timeout -s ALRM`
# the others. Each of these ends a process by default, leaving its temporary and lock files behind.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGXCPU, signal.SIGALRM,
                signal.SIGUSR1, signal.SIGUSR2)


class VidtransError(Exception):
    """A user-facing failure whose message is one line naming the problem and the fix."""


class UsageError(VidtransError):
    """The options asked for make no sense (bad values, folders, combinations): the CLI exits with
    2 for these, as for options it cannot parse, and 1 for failures of the work itself."""


class ContainerError(UsageError):
    """An output whose container (chosen by its extension) cannot be written with the settings asked for;
    `extension` (no dot) is one that can, for callers whose fix is another flag (`batch --ext`)."""

    def __init__(self, message: str, extension: str):
        super().__init__(message)
        self.extension = extension


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def first_line(error: BaseException, limit: int = 300) -> str:
    """The gist of a library's exception for a one-line message: the OS reason when there is one,
    else the first non-empty line of its text (terminal colour codes removed), at most `limit`
    characters, or the exception's type when it says nothing."""
    text = getattr(error, "strerror", None) or str(error)
    lines = [line.strip() for line in _ANSI.sub("", text).splitlines() if line.strip()]
    line = lines[0] if lines else type(error).__name__
    return line if len(line) <= limit else line[: limit - 3].rstrip() + "..."


def one_line(text: str) -> str:
    """`text` on one line: control characters (a newline in a file name) written as escapes, \\n."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def count(n: int, noun: str) -> str:
    """`n` with `noun`, plural unless one: "1 frame", "3 frames"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def check_version(what: str, version: object, known: tuple[int, ...], fix: str) -> None:
    """VidtransError unless `version` (of a record `what` in a file) is one of `known`: a whole
    number past them was written by a newer vidtrans, which reading it needs; anything else (none,
    a string, 0) is damage, for which upgrading would not help: then `fix`."""
    if version in known and isinstance(version, int) and not isinstance(version, bool):
        return
    if isinstance(version, int) and not isinstance(version, bool) and version > max(known):
        raise VidtransError(f"{what} version {version} is newer than this vidtrans reads (up to {max(known)}); "
                            "upgrade vidtrans to read this model card")
    raise VidtransError(f"{what} version must be one of {', '.join(map(str, known))}, got {version!r}; {fix}")
