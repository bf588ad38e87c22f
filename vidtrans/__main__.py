"""The `vidtrans` command (and `python -m vidtrans`): stop signals are handled from the first
moment, then the CLI is imported and run."""

import os
import signal
import sys


def _stopped_while_starting(signum, frame):
    # Importing the CLI takes a few tenths of a second before `cli.main` installs its handlers.
    # Nothing has been written yet, so a stop signal then ends at once, as it would later: one
    # line and 128 + N, not a traceback from whichever import it interrupted.
    print("vidtrans: interrupted", file=sys.stderr)
    os._exit(128 + signum)


def entry() -> None:
    from vidtrans.errors import STOP_SIGNALS  # a light module: the standard library's re and signal only

    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:  # nohup and background jobs keep theirs
            signal.signal(signum, _stopped_while_starting)
    from vidtrans.cli import main

    main()


if __name__ == "__main__":
    entry()
