"""Files appear complete or not at all: write under a temporary name, then rename into place."""

from __future__ import annotations

import os
from pathlib import Path


def publish(tmp: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Rename the finished `tmp` onto `dst` (atomic within a folder), with the permissions a new
    file normally gets: temporary files from mkstemp and safetensors are private (0600)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, Path(dst))
