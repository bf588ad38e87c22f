"""Output files appear complete or not at all, and never replace a file they were not allowed to.

Every file vidtrans writes (videos, keypoints, reports, stats, checkpoints) goes through here:

- `check_destination` refuses a bad output path before any work is done;
- `temp_path` names a hidden temporary file beside the destination (same folder, so the final
  rename is atomic);
- `publish` moves the finished temporary file into place. Without `overwrite` it links rather than
  renames, so a file that appeared at the destination while we worked (another process writing
  the same output) is refused instead of silently replaced;
- `write_atomically` does all three for small files written in one go (JSON, NPZ, ...);
- `publish_together` publishes several files as one: all of them, or (on any failure or
  interruption) none, with every file they would have replaced as it was;
- `OutputClaim` holds an advisory lock on the destination for the length of a long job, so a second
  process writing the same output is refused at the start rather than after all its work;
- `remove_unfinished` deletes, as the process ends, every temporary and lock file it has not
  finished with, also those of threads still running then (a stopped batch's clips).
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import hashlib
import os
import re
import secrets
import stat
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from vidtrans.errors import UsageError, VidtransError, first_line
from vidtrans.options import check_switch, shown_path, spell

LOCK_SUFFIX = ".vidtrans-lock"
# Most file systems limit a name to 255 bytes (not characters: UTF-8 takes up to 4 per character);
# hidden names are kept a little shorter.
_NAME_MAX = 250
# The temporary files' infix; the 8 hex digits after it make each name new.
_PARTIAL = ".partial-"
_TOKEN_DIGITS = 8
# What every temporary file's name matches (fnmatch), for clean-ups of a whole folder: its hex digits
# too, so that a user's hidden file that merely holds the infix (.notes.partial-draft.txt) is kept.
TEMPORARY_PATTERN = f".*{_PARTIAL}{'[0-9a-f]' * _TOKEN_DIGITS}*"
# A destination's extension kept on its temporary files (muxers and numpy pick the format from it)
# when it is at most this long; a longer "extension" is part of the name, not a format.
_SUFFIX_MAX = 20


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file (also through links and different spellings)."""
    a, b = Path(a), Path(b)
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except (OSError, RuntimeError):  # Python 3.11-3.12 raise RuntimeError on a link that leads back to itself
        return False


def check_destination(dst: str | os.PathLike, inputs: str | os.PathLike | Iterable[str | os.PathLike] | None,
                      overwrite: bool) -> None:
    """Refuse an output path before any work is done: one of the inputs, an existing file without
    `overwrite`, a folder, a device, FIFO or socket (or a link to one) even with `overwrite`, or a
    folder that does not exist (UsageError: the path given is the mistake, as for `batch`'s output
    folder). Outputs are published by renaming a finished file onto the path, which would replace
    a device such as /dev/null with a regular file. `overwrite` must be a bool: any other value (a
    string such as "no") would count as true and replace the file."""
    check_switch(overwrite, "overwrite")
    if os.fspath(dst) == "-":  # the Unix convention for standard output
        raise UsageError("-: vidtrans writes files, not standard output (an output appears only when complete); "
                         "give a file name")
    check_file_name(dst)
    dst = Path(dst)
    named = shown_path(dst)  # a path thousands of characters long would make the message as long
    if inputs is None:
        inputs = ()
    elif isinstance(inputs, (str, os.PathLike)):
        inputs = (inputs,)
    for src in inputs:
        if same_file(dst, src):
            raise UsageError(f"{named}: output would overwrite the input; choose another output path")
    try:
        if dst.is_dir():
            raise UsageError(f"{named}: is a folder; give an output file name")
        if (special := _special_file_at(dst)) is not None:
            raise UsageError(f"{named}: is {special}, which vidtrans never replaces (outputs are renamed into place "
                             "whole); give the name of a regular file")
        if _leads_to_open_file(dst):
            raise UsageError(f"{named}: is a link to a process's open file (as /dev/stdout is), which vidtrans never "
                             "replaces (outputs are renamed into place whole); give the name of a regular file")
        if (dst.exists() or dst.is_symlink()) and not overwrite:
            raise UsageError(f"{named}: already exists; choose another name or pass {spell('overwrite=True')}")
        if not dst.parent.is_dir():
            if dst.parent.exists():
                raise UsageError(f"{named}: {shown_path(dst.parent)} is a file, not a folder; choose another output path")
            raise UsageError(f"{named}: folder {shown_path(dst.parent)} does not exist; create it first")
    except OSError as e:  # the file system refuses to even look the name up
        if e.errno == errno.ENAMETOOLONG:
            raise UsageError(f"{named}: file name too long; choose a shorter output name") from None
        if e.errno == errno.ELOOP:
            raise UsageError(f"{named}: is a link that leads back to itself; remove it or choose another output "
                             "path") from None
        raise UsageError(f"{named}: cannot use this output path ({first_line(e)}); "
                            "choose another output path") from None


def check_file_name(dst: str | os.PathLike) -> None:
    """Refuse an output file's name written as a folder's, with a trailing slash: a Path drops it,
    so `-o m.onnx/` wrote a file m.onnx. Only the text as typed still has it (a str)."""
    text = os.fspath(dst)
    # A folder that is there is refused as one by check_destination, which names no file to give instead.
    if not isinstance(text, str) or not text.endswith(tuple(filter(None, (os.sep, os.altsep)))) or os.path.isdir(text):
        return
    name = text.rstrip(os.sep + (os.altsep or ""))
    fix = f" ({name})" if name else ""
    raise UsageError(f"{text}: ends with a slash, which names a folder; give the output file's name without the "
                     f"trailing slash{fix}")


def _special_file_at(path: Path) -> str | None:
    """What `path` is when it is a device, FIFO or socket, or a symlink to one; None for a regular
    file, a folder, a dangling symlink or nothing."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None  # nothing there: the checks after this one say what is wrong with the path
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    kind = special_file_kind(mode)
    return f"a symlink to {kind}" if path.is_symlink() else kind


def special_file_kind(mode: int) -> str:
    """What a file of `mode` (os.stat's st_mode) that is neither a regular file nor a folder is."""
    kinds = {stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device", stat.S_ISFIFO: "a FIFO",
             stat.S_ISSOCK: "a socket"}
    return next((name for test, name in kinds.items() if test(mode)), "a special file")


def _leads_to_open_file(path: Path) -> bool:
    """Whether `path` is, or links through, a process's file descriptor (/proc/PID/fd/N, /dev/fd/N,
    /dev/stdout): renaming onto it would replace the link (/dev/stdout itself, as root) even where
    the descriptor is a regular file (standard output redirected to one)."""
    for _ in range(40):  # the kernel's own limit on links followed; a loop ends here
        if os.path.realpath(path.parent).startswith("/proc/"):
            return True
        if not path.is_symlink():
            return False
        target = Path(os.readlink(path))
        path = target if target.is_absolute() else path.parent / target
    return False


def _fitted(name: str, room: int) -> str:
    """`name` when its UTF-8 form takes at most `room` bytes; else its beginning, cut at a character
    boundary, then "~" and a hash of the whole name, in `room` bytes: names that differ anywhere
    stay different however much of them is cut."""
    encoded = os.fsencode(name)
    if len(encoded) <= room:
        return name
    digest = hashlib.sha256(encoded).hexdigest()[:12]
    # "ignore" drops the bytes of a character cut in two (and any byte that was no UTF-8 to begin with).
    return encoded[:room - len(digest) - 1].decode("utf-8", "ignore") + "~" + digest


def lock_path(dst: str | os.PathLike) -> Path:
    """The hidden lock file of `OutputClaim(dst)`."""
    dst = Path(dst)
    return dst.with_name(f".{_fitted(dst.name, _NAME_MAX - 1 - len(LOCK_SUFFIX))}{LOCK_SUFFIX}")


def _temp_name_parts(dst: Path) -> tuple[str, str]:
    """The hidden temporary names of `dst` are PREFIX + 8 hex digits + SUFFIX (`dst`'s extension,
    kept last): one prefix per destination, and all of it within the 255-byte limit."""
    suffix = dst.suffix if len(os.fsencode(dst.suffix)) <= _SUFFIX_MAX else ""
    stem = dst.name[:len(dst.name) - len(suffix)]
    room = _NAME_MAX - 1 - len(_PARTIAL) - _TOKEN_DIGITS - len(os.fsencode(suffix))
    return f".{_fitted(stem, room)}{_PARTIAL}", suffix


# Temporary and lock files this process has made (or is making) and not yet finished with. Each
# is entered here BEFORE it is created, so an interrupt landing anywhere, even between creating a
# file and remembering it, cannot leave it behind: `remove_unfinished` (at exit, also after a stop
# signal) deletes what is still listed. Values: the OutputClaim of a lock file, else None.
_unfinished: dict[Path, OutputClaim | None] = {}
# The destination each temporary file of `temp_path` stands for, while it is unfinished: messages about
# writing one name the output the user asked for (`destination_of`).
_stands_for: dict[Path, Path] = {}
# Held while a file is made (and, in `making_files`, opened by name): the final clean-up of a process
# whose other threads still run takes it, so that no file is made after the clean-up looked, nor
# made again by name after it removed it; from then on `_closed` refuses any new file.
_making = threading.RLock()
_closed = threading.Event()
# How long the final clean-up waits for a file being made (a slow network folder), then goes on.
_MAKING_WAIT_SECONDS = 10


@contextlib.contextmanager
def making_files() -> Iterator[None]:
    """A section in which temporary files are made and then opened again by name (a muxer opens its
    output itself, creating it if it is gone): the final clean-up waits for it to end, so it never
    removes a file that the section is about to make again. Refused (VidtransError) once the process
    is ending."""
    with _making:
        if _closed.is_set():
            raise VidtransError("vidtrans is stopping; no new output file is made")
        yield


def temp_path(dst: str | os.PathLike) -> Path:
    """A new, empty, hidden file beside `dst` that keeps `dst`'s extension last (muxers and numpy
    pick the format from the name). Remove it with `discard` unless `publish` moves it."""
    dst = Path(dst)
    try:
        tmp = _new_name(dst, lambda name: os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)))
    except OSError as e:
        raise _unwritable(dst, e) from e
    _stands_for[tmp] = destination_of(dst)
    return tmp


def temp_file(dst: str | os.PathLike) -> tuple[Path, BinaryIO]:
    """`temp_path(dst)` opened for writing (binary), in one `making_files` section: opened by name
    after it, a final clean-up in between would see the file made again. Nothing is left where
    opening it fails."""
    with making_files():
        tmp = temp_path(dst)
        try:
            return tmp, open(tmp, "wb")
        except BaseException:
            discard(tmp)
            raise


def destination_of(path: str | os.PathLike) -> Path:
    """The output an unfinished temporary file of ours stands for (one written into another's
    temporary file: that one's), what a message about writing it names; any other path itself."""
    return _stands_for.get(Path(path), Path(path))


def _unwritable(dst: Path, error: OSError) -> UsageError:
    # The path given cannot be used: a usage error, as for a missing folder.
    return UsageError(f"{dst}: cannot write to {dst.parent} ({error.strerror or error}); "
                      "choose a writable output folder")


def _new_name(dst: Path, make: Callable[[Path], None]) -> Path:
    """A hidden name beside `dst` that no file had, on which `make(name)` has made one (it raises
    FileExistsError for a name that is taken)."""
    prefix, suffix = _temp_name_parts(dst)
    with making_files():
        while True:
            name = dst.parent / f"{prefix}{secrets.token_hex(_TOKEN_DIGITS // 2)}{suffix}"
            _unfinished[name] = None
            try:
                make(name)
                return name
            except FileExistsError:
                del _unfinished[name]  # someone else's: try another name
            except OSError:  # not made (an interrupt, though, may come after it was: it stays listed)
                del _unfinished[name]
                raise


def discard(tmp: str | os.PathLike) -> None:
    """Delete an unfinished temporary file (nothing happens if it is gone already, or where its
    folder no longer lets it go: a clean-up must not hide the error that called for it)."""
    tmp = Path(tmp)
    with contextlib.suppress(OSError):
        tmp.unlink(missing_ok=True)
    _unfinished.pop(tmp, None)
    _stands_for.pop(tmp, None)


def remove_unfinished(final: bool = False) -> None:
    """Delete every temporary file and release every lock this process has not finished with:
    what an interrupted process must not leave behind. Finished files are not listed.

    `final`: the process is ending (at exit, or at once after a stop signal) while other threads
    may still run; a file one of them is making is waited for, and none is made after this."""
    if not final:
        _remove_listed()
        return
    waited = _making.acquire(timeout=_MAKING_WAIT_SECONDS)
    try:
        _closed.set()
        _remove_listed()
    finally:
        if waited:
            _making.release()


def _remove_listed() -> None:
    for path, claim in list(_unfinished.items()):
        if claim is not None:
            claim.release()
        elif path.name.endswith(LOCK_SUFFIX):
            remove_if_unheld(path)
        else:
            discard(path)


atexit.register(remove_unfinished, final=True)


def publish(tmp: str | os.PathLike, dst: str | os.PathLike, overwrite: bool = False) -> None:
    """Move the finished `tmp` onto `dst`, with the permissions of the file it replaces, else
    those a new file normally gets (temporary files from mkstemp are private, 0600).

    Without `overwrite`, a file that exists at `dst` by now (another process wrote it meanwhile)
    is left alone and this raises VidtransError; `tmp` is deleted either way on failure.
    """
    tmp, dst = Path(tmp), Path(dst)
    umask = os.umask(0)
    os.umask(umask)
    new_file = 0o666 & ~umask
    try:
        os.chmod(tmp, _kept_mode(dst, new_file) if overwrite else new_file)
        if overwrite:
            os.replace(tmp, dst)
            return
        try:
            os.link(tmp, dst)  # fails if dst exists: no window in which another file is replaced
        except FileExistsError:
            raise VidtransError(f"{dst}: appeared while vidtrans was writing it (another process?); "
                                f"choose another name or pass {spell('overwrite=True')}") from None
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
                raise
            # File systems without hard links (FAT, some network mounts): check, then rename.
            if dst.exists() or dst.is_symlink():
                raise VidtransError(f"{dst}: appeared while vidtrans was writing it (another process?); "
                                    f"choose another name or pass {spell('overwrite=True')}") from None
            os.replace(tmp, dst)
            return
        tmp.unlink()
    except OSError as e:
        raise VidtransError(f"{dst}: cannot move the finished file into place ({e.strerror or e}); "
                            "check the output folder is writable") from e
    finally:
        discard(tmp)


def _kept_mode(dst: Path, new: int) -> int:
    """The permissions of the regular file at `dst`, which its replacement keeps (a private or
    read-only file stays so), else `new`."""
    try:
        st = os.lstat(dst)
    except OSError:
        return new
    return stat.S_IMODE(st.st_mode) & 0o777 if stat.S_ISREG(st.st_mode) else new


def publish_together(files: Sequence[tuple[str | os.PathLike, str | os.PathLike]], overwrite: bool = False) -> None:
    """`publish` each finished (temporary, destination) pair, as one: when any of them fails, or an
    interruption lands anywhere in between, the destinations already published are put back as
    they were (the files they replaced restored, new ones removed) before the error goes on. The
    temporary files are deleted either way. (On file systems without hard links a replaced file
    cannot be kept aside, so there only new files are removed.)"""
    pairs = [(Path(tmp), Path(dst)) for tmp, dst in files]
    # Which file each temporary is, so the clean-up can tell what was published by looking.
    ours = {dst: os.stat(tmp) for tmp, dst in pairs}
    aside: dict[Path, Path] = {}  # destination: a second name of the file it held
    try:
        if overwrite:
            for _, dst in pairs:
                if (dst.is_symlink() or dst.is_file()) and (link := _set_aside(dst)) is not None:
                    aside[dst] = link
        for tmp, dst in pairs:
            publish(tmp, dst, overwrite)
    except BaseException:
        for dst, stat in ours.items():
            if _is_file(dst, stat):
                if dst in aside:
                    os.replace(aside[dst], dst)
                else:
                    dst.unlink()
        raise
    finally:
        for path in [*aside.values(), *(tmp for tmp, _ in pairs)]:
            discard(path)


def _set_aside(dst: Path) -> Path | None:
    """A hidden second name (a hard link) for the file at `dst`, for `publish_together` to put it
    back from; None on file systems without hard links."""
    try:
        return _new_name(dst, lambda name: os.link(dst, name, follow_symlinks=False))
    except OSError as e:
        if e.errno in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
            return None
        raise VidtransError(f"{dst}: cannot keep the file being replaced ({e.strerror or e}); "
                            "check the output folder is writable") from e


def _is_file(path: Path, stat: os.stat_result) -> bool:
    try:
        return os.path.samestat(os.stat(path, follow_symlinks=False), stat)
    except OSError:
        return False


def write_atomically(dst: str | os.PathLike, write: Callable[[BinaryIO], None], *, overwrite: bool,
                     inputs: str | os.PathLike | Iterable[str | os.PathLike] | None = None,
                     what: str = "file") -> None:
    """Write a small file in one go: `write(f)` fills a temporary file, which is synced and then
    published onto `dst`. Nothing is left behind on any failure or interruption."""
    check_destination(dst, inputs, overwrite)
    made: list[Path] = []
    try:
        publish(filled_temporary(dst, write, what, made.append), dst, overwrite)
    except OSError as e:
        raise cannot_write(dst, what, e) from e
    finally:
        for tmp in made:
            discard(tmp)


def filled_temporary(dst: str | os.PathLike, write: Callable[[BinaryIO], None], what: str,
                     made: Callable[[Path], None]) -> Path:
    """A temporary file beside `dst` that `write(f)` filled and synced, for the caller to publish.
    `made(tmp)` is called before it is filled: a failure or stop while writing leaves it to the
    caller to discard."""
    try:
        tmp, f = temp_file(dst)
        made(tmp)
        with f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise cannot_write(dst, what, e) from e
    return tmp


def cannot_write(dst: str | os.PathLike, what: str, error: OSError) -> VidtransError:
    """The one line for a file that could not be written: a full disk or a folder not writable."""
    return VidtransError(f"{dst}: cannot write the {what} ({error.strerror or error}); "
                         "check free disk space and that the folder is writable")


class OutputClaim:
    """An advisory lock that says "this process is writing `dst`" (a hidden lock file beside it).

    A second claim on the same destination, from any process, raises VidtransError at once. The
    lock dies with the process (flock), so a killed run never blocks the next one; the lock file
    itself is removed on release. A claim also deletes the temporary files of `dst` that a killed
    process left (it held the lock, so whoever made them is gone).

    `shared`: a command claims its output when it starts, and the writer it makes at its first frame
    claims the same file; claims of `dst` made later by the same thread share this one (they lock
    nothing, and their release leaves it held). Other threads are refused, as other processes are,
    and so is a second claim of an unshared one (two writers of one file in one thread).
    """

    def __init__(self, dst: str | os.PathLike, shared: bool = False):
        dst = Path(dst)
        self.path = lock_path(dst)
        self._fd: int | None = None
        self._shared_with = threading.get_ident() if shared else None
        held = _unfinished.get(self.path)
        if isinstance(held, OutputClaim) and held._fd is not None and held._shared_with == threading.get_ident():
            return  # inside a shared claim: see above
        try:
            with making_files():  # also keeps two threads from claiming at once
                held = _unfinished.get(self.path)
                if isinstance(held, OutputClaim) and held._fd is not None:
                    # Its flock would refuse this one too, but then name "another process".
                    raise VidtransError(f"{shown_path(dst)}: this process is already writing this file (another translation in "
                                        "it); wait for that to finish or choose another output")
                _unfinished[self.path] = self  # before the file exists: see _unfinished
                self._fd = self._lock(dst)
            _remove_stale_temporaries(dst)
        except BaseException:
            # Refused (a claim holds it: left alone) or interrupted (ours: removed).
            self.release()
            remove_if_unheld(self.path)
            raise

    def _lock(self, dst: Path) -> int:
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise _unwritable(dst, e) from e
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise VidtransError(f"{shown_path(dst)}: another vidtrans process is writing this file; "
                                    "wait for it to finish or choose another output") from None
            if _still_linked(fd, self.path):
                return fd
            os.close(fd)  # locked a lock file its holder had just removed: take the new one

    def release(self) -> None:
        if self._fd is not None:
            # Unlink before unlocking: a waiting claimant then locks a file nobody else will use. A
            # folder made read-only meanwhile keeps the lock file; unlocked, it claims nothing.
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None
        if _unfinished.get(self.path) is self:
            del _unfinished[self.path]

    def __enter__(self) -> OutputClaim:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def remove_if_unheld(path: Path) -> bool:
    """Delete a lock file that no process holds; True unless a process holds it. Safe against a
    claimant that has opened it but not locked it yet: its lock then lands on a removed file,
    which it notices and retries."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if _still_linked(fd, path):
            path.unlink(missing_ok=True)
        return True
    except OSError:
        return False  # held by a process that is writing that output
    finally:
        os.close(fd)


def _remove_stale_temporaries(dst: Path) -> None:
    """Delete the temporary files of `dst` that a killed process (SIGKILL, power loss) left behind,
    with the temporaries and locks of their own (a pose video's writer writes into one). Called
    with `dst`'s lock held, so no live process is writing them; this process's own are kept."""
    prefix, suffix = _temp_name_parts(dst)
    stale = re.compile(re.escape(prefix) + f"[0-9a-f]{{{_TOKEN_DIGITS}}}" + re.escape(suffix))
    try:
        names = os.listdir(dst.parent)
    except OSError:
        return  # a folder that cannot be listed cannot be written either: publishing will say so
    for name in names:
        path = dst.parent / name
        if stale.fullmatch(name) and path not in _unfinished and remove_if_unheld(lock_path(path)):
            _remove_stale_temporaries(path)
            try:
                path.unlink(missing_ok=True)
            except OSError:
                pass  # not ours to fight over: it only wastes space


def _still_linked(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False
