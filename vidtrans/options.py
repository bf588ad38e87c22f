"""Options, defined once: frozen, typed objects passed whole from the CLI to the library.

    from vidtrans.options import EncodeOptions, RunOptions, Smoothing
    options = RunOptions(smoothing=Smoothing.FLOW, encode=EncodeOptions(crf=20))
    vidtrans.translate_video("in.mp4", "out.mp4", model, options)

Each field carries its help text; `vidtrans.cli` makes the command-line flags of `run`, `batch`,
`live`, `train`, `pose` and `eval` from these fields (`cli.takes`), so a new option is one field here
and reaches every command that takes the object. Closed sets are Enums (typer lists their values in
`--help`); their members are strings, so `smoothing="flow"` works as well as `Smoothing.FLOW`.
Values are checked when an object is made (UsageError), and errors name the setting as the caller
spells it (`spell`): the parameter (`smoothing`) for Python callers, the flag (`--smooth`) while a
command runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import importlib.util
import math
import numbers
import os
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NewType

from vidtrans.errors import UsageError, one_line

# How settings are spelled in messages, while a command runs: {"pix_fmt": "--pix-fmt", ...}.
_spellings: ContextVar[Mapping[str, str]] = ContextVar("vidtrans_spellings", default={})


def spell(name: str) -> str:
    """How the caller spells the setting `name` (a parameter or field name) in a message: its
    command-line flag while a command runs (see `spelled`), else the Python name itself."""
    return _spellings.get().get(name, name)


# How much of a value an error message echoes: a value pasted by mistake (a page of text) would
# otherwise become the whole message.
SHOWN_CHARACTERS = 60


def shown(value: Any) -> str:
    """`value` as messages echo it: its repr, or for a long one its first SHOWN_CHARACTERS characters and "..."."""
    if isinstance(value, str) and len(value) > SHOWN_CHARACTERS:
        return f"{value[:SHOWN_CHARACTERS]!r}..."
    text = repr(value)
    return text if len(text) <= SHOWN_CHARACTERS else text[:SHOWN_CHARACTERS] + "..."


def plain(value: Any) -> str:
    """`value` in a message as it is typed (a flag's value, unquoted), or for a long one as
    `shown` cuts it."""
    text = str(value)
    return text if len(text) <= SHOWN_CHARACTERS else shown(value)


# A path in a message is the user's own, to be found again: whole up to the length of the longest file
# name a file system takes; past that it is far more often text pasted by mistake, cut as long values are.
LONGEST_PATH_SHOWN = 255


# The password of a URL's user (rtsp://user:secret@host/...): what vidtrans prints ends up in
# terminals, logs and bug reports. The userinfo ends at the authority's last "@".
_URL_PASSWORD = re.compile(r"^([^:/?#]+://[^/?#@:]*:)[^/?#]*@")


def without_password(text: str) -> str:
    """`text`, a URL as typed, with its user's password (if any) shown as ***."""
    return _URL_PASSWORD.sub(r"\1***@", text)


def shown_path(path: str | os.PathLike) -> str:
    """`path` in a message: whole, or where longer than LONGEST_PATH_SHOWN, its start and its end (which
    names the file); a URL without its password."""
    text = os.fspath(path)
    if isinstance(text, str):
        text = without_password(text)
    if len(text) <= LONGEST_PATH_SHOWN:
        return text
    half = SHOWN_CHARACTERS // 2
    return f"{text[:half]}...{text[-half:]}"


def check_path_text(path: str | os.PathLike, name: str) -> None:
    """UsageError for a path (the setting `name`) holding a NUL character, which no file name holds
    and Python's file functions refuse with ValueError, a traceback to the caller."""
    text = os.fspath(path)
    if isinstance(text, str) and "\0" in text:
        raise UsageError(f"{spell(name)} {one_line(shown_path(text))}: a file path cannot hold a NUL character (\\x00)")


def spell_setting(name: str, *values: str) -> str:
    """Setting `name` to one of `values` as the caller would write it (see `spell`):
    `--precision fp32 or bf16` while a command runs, `precision='fp32' or 'bf16'` from Python."""
    flag = spell(name)
    if flag == name:
        return f"{name}=" + " or ".join(repr(value) for value in values)
    return f"{flag} " + " or ".join(values)


def spellings() -> dict[str, str]:
    """How settings are spelled here and now (see `spelled`): for work done elsewhere (a Ray actor)
    whose messages should read as this caller's."""
    return dict(_spellings.get())


@contextlib.contextmanager
def spelled(names: Mapping[str, str]) -> Iterator[None]:
    """Messages raised in this block, in this thread, spell settings as `names` says."""
    token = _spellings.set(names)
    try:
        yield
    finally:
        _spellings.reset(token)


class Choice(StrEnum):
    """A closed set of string values."""

    # Members hash and compare as their string value, so they work as keys of dicts of strings.
    __hash__ = str.__hash__

    @classmethod
    def values(cls) -> tuple[str, ...]:
        """The set's values as plain strings, in order: what a card or a Python caller may give."""
        return tuple(m.value for m in cls)

    @classmethod
    def parse(cls, value: Any, name: str) -> Choice:
        try:
            return cls(value)
        except ValueError:
            raise UsageError(f"{spell(name)} must be one of {', '.join(cls.values())}, not {shown(value)}") from None


class Smoothing(Choice):
    AUTO = "auto"  # what the model card recommends, else none
    NONE = "none"
    EMA = "ema"
    FLOW = "flow"


# What a smoother, or a card's recommendation, can be: the methods themselves, without `auto`.
SMOOTHING_METHODS = tuple(m for m in Smoothing.values() if m != Smoothing.AUTO)


class PoseSource(Choice):
    AUTO = "auto"  # detect, unless the input already is a pose-map video
    DETECT = "detect"
    NONE = "none"  # the input is pose maps


class CompileMode(Choice):
    AUTO = "auto"  # long clips on CPU
    ON = "on"
    OFF = "off"


class InputKind(Choice):
    RGB = "rgb"  # any image
    POSE = "pose"  # OpenPose-style pose maps


class Normalization(Choice):
    SAMPLE = "sample"  # batch norm with each frame's own statistics (pix2pix's test-time default)
    RUNNING = "running"  # eval-mode running statistics (pix2pix --eval)


class Precision(Choice):
    AUTO = "auto"
    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"


class Backend(Choice):
    """What runs the generator; pre- and post-processing are the translator's either way."""

    AUTO = "auto"  # ONNX Runtime on CPUs without bf16 in hardware when it is installed, else torch
    TORCH = "torch"
    ONNXRUNTIME = "onnxruntime"  # CPU, fp32; pip install 'vidtrans[onnx]'


BACKEND_HELP = ("auto (onnxruntime on CPUs without AMX or AVX-512 BF16 when it and onnx are installed, except for temporal models; else torch), "
                "torch, or onnxruntime (CPU, fp32; pip install 'vidtrans[onnx]').")


# The command-line type of a path kept as typed (a Path would drop a trailing slash, which names a
# folder): the command line expands a leading ~ in it, as for every other path it takes.
PathText = NewType("PathText", str)


def option(default: Any = None, help: str = "", flag: str | None = None, short: str | None = None,
           cli: bool = True, cli_type: type | None = None, factory: Any = None, hashed: bool = True) -> Any:
    """A field with its command-line help; `flag` when the flag is not `--field-name`, `cli_type`
    when the command line takes a narrower type than Python callers may pass; `hashed=False` for a
    field Python callers may give as a list, which has no hash (equality still compares it)."""
    metadata = {"help": help, "flag": flag, "short": short, "cli": cli, "cli_type": cli_type}
    hash_ = None if hashed else False
    if factory is not None:
        return field(default_factory=factory, metadata=metadata, hash=hash_)
    return field(default=default, metadata=metadata, hash=hash_)


def close_names(name: str, names: list[str]) -> list[str]:
    """The names a misspelt `name` most likely meant: two at most (`strat` is as near `start` as `state`)."""
    return difflib.get_close_matches(name, names, 2, 0.75)


def option_names(kind: type) -> list[str]:
    """The fields an options class takes by name, its nested options' fields included."""
    names = []
    for f in dataclasses.fields(kind):
        names.append(f.name)
        if isinstance(f.default_factory, type) and dataclasses.is_dataclass(f.default_factory):
            names += option_names(f.default_factory)
    return names


def refuse_misspelt(function: Any, changes: Mapping[str, Any], options: list[str]) -> None:
    """A one-line error for a keyword in `changes` that is no option but a near miss of one of
    `function`'s parameters (or of `options`): taken for an unknown option, `overwite=True` was told
    the options, among which `overwrite` is not. Model settings (`model_size=`) stay the options' to tell."""
    import inspect

    parameters = [name for name, p in inspect.signature(function).parameters.items() if p.kind != p.VAR_KEYWORD]
    for given in changes:
        if given not in options and (close := close_names(given, parameters + options)):
            raise UsageError(f"{function.__name__} has no parameter {given}; did you mean {' or '.join(close)}?")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise UsageError(message)


def check_switch(value: Any, name: str) -> None:
    """UsageError unless `value` is True or False: Python takes any value as one or the other, and a
    string such as "no" counts as true (overwrite="no" would overwrite)."""
    _check(isinstance(value, bool), f"{spell(name)} must be True or False, not {shown(value)}")


def is_digits(text: str) -> bool:
    """Only the digits 0-9: str.isdigit also takes other scripts' digits and superscripts ("²"),
    which int() then refuses."""
    return text.isascii() and text.isdigit()


def is_int(value: Any) -> bool:
    """A whole number, and not a bool (True is an int to Python, not to a user)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_whole(value: Any) -> bool:
    """`is_int`, NumPy's integers too (what indexing an array gives; its bool is no Integral)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def rounded(value: float | None, digits: int) -> float | None:
    """A figure rounded for a JSON summary; None (nothing measured) as it is."""
    return None if value is None else round(float(value), digits)


def plain_number(value: Any) -> Any:
    """A NumPy scalar (what indexing an array gives, so what a notebook often passes), a Fraction or
    another library's real number as the Python int, float or bool it stands for, which the rest of
    the code (Fraction, JSON) takes; any other value as it is. A float32 is the decimal it prints
    as: np.float32(0.2) means 0.2, not the 0.20000000298 it holds, which would miss a frame at 0.2 s."""
    if type(value).__module__ == "numpy" and getattr(value, "shape", None) == ():
        return float(str(value)) if value.dtype.kind == "f" else value.item()
    if isinstance(value, numbers.Real) and type(value) not in (int, float, bool):
        # JSON (a batch's manifest) holds no Fraction.
        try:
            return int(value) if isinstance(value, numbers.Integral) else float(value)
        except OverflowError:
            return value  # past a float's range: refused by the check, as it is
    return value


def is_finite_number(value: Any) -> bool:
    """A real number, neither NaN nor infinite, and not a bool; nor an int or Fraction past a float's
    range (math.isfinite raises OverflowError on those, and every use of a setting takes it as a float)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


# Switches by their annotation: anything but a bool is refused, since Python would take any value
# as true or false (overwrite="no" would overwrite).
_SWITCHES = {"bool": (bool,), "bool | None": (bool, type(None))}


class _Options:
    """Enum fields accept their string values; every object is checked when it is made, and
    names that are not fields are refused (UsageError, not Python's TypeError)."""

    # Settings a caller may look for here that are given elsewhere: {name: where to give it, a
    # template of the value given, `{value}`}.
    _elsewhere: dict[str, str] = {}

    def __new__(cls, *args: Any, **kwargs: Any):
        for f in dataclasses.fields(cls):
            # A nested options object's fields (RunOptions' encode: crf, codec...) are its own.
            inner = f.default_factory if isinstance(f.default_factory, type) else None
            if inner is not None and issubclass(inner, _Options):
                for name in kwargs.keys() & {g.name for g in dataclasses.fields(inner)}:
                    raise UsageError(f"{name} is an option of {cls.__name__}'s {f.name}: pass {f.name}="
                                     f"{inner.__name__}({name}={shown(kwargs[name])}), or {cls.__name__}().replace("
                                     f"{name}={shown(kwargs[name])})")
        names = [f.name for f in dataclasses.fields(cls)]
        cls._refuse_unknown(kwargs, names)
        # What Python's TypeError would say of values given by position, said as for names.
        _check(len(args) <= len(names), f"{cls.__name__} takes at most {len(names)} settings by position "
                                         f"({', '.join(names)}), got {len(args)}; give settings by name")
        for name in names[:len(args)]:
            _check(name not in kwargs, f"{cls.__name__} got {name} twice, by position and by name; give it once")
        return super().__new__(cls)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = plain_number(getattr(self, f.name))
            object.__setattr__(self, f.name, value)
            # Annotations are strings here (postponed evaluation): find Choice types by name.
            kind = f.type if isinstance(f.type, type) else {c.__name__: c for c in Choice.__subclasses__()}.get(str(f.type))
            if kind is not None and issubclass(kind, Choice):
                object.__setattr__(self, f.name, kind.parse(value, f.name))
            elif f.type in _SWITCHES:
                _check(isinstance(value, _SWITCHES[f.type]), f"{spell(f.name)} must be True or False"
                       f"{' (or None)' if f.type != 'bool' else ''}, not {shown(value)}")
        self.check()

    @classmethod
    def _refuse_unknown(cls, given: Mapping[str, Any], known: list[str]) -> None:
        unknown = [name for name in given if name not in known]
        for name in unknown:
            if name in cls._elsewhere:
                raise UsageError(f"{name} is not an option of {cls.__name__}: "
                                 + cls._elsewhere[name].format(value=shown(given[name])))
        if len(unknown) == 1 and (close := close_names(unknown[0], known)):
            raise UsageError(f"{cls.__name__} has no option {unknown[0]}; did you mean {' or '.join(close)}?")
        if unknown:
            raise UsageError(f"{cls.__name__} has no option {', '.join(unknown)}; its options are {', '.join(known)}")

    def check(self) -> None:
        pass

    def replace(self, **changes: Any):
        """A copy with some fields changed (nested options' fields by their own names)."""
        own = [f.name for f in dataclasses.fields(self)]
        nested = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                  if isinstance(getattr(self, f.name), _Options)}
        self._refuse_unknown(changes, [*own, *(f.name for inner in nested.values() for f in dataclasses.fields(inner))])
        direct = {k: v for k, v in changes.items() if k in own}
        for name, inner in nested.items():
            inner_changes = {k: v for k, v in changes.items() if k in {f.name for f in dataclasses.fields(inner)}}
            # On top of a nested object given too (encode=EncodeOptions(codec=...), crf=20), else
            # on the current one; what is no such object is refused by the check of the copy.
            given = direct.get(name, inner)
            if inner_changes and isinstance(given, type(inner)):
                direct[name] = given.replace(**inner_changes)
        return dataclasses.replace(self, **direct)


# The most threads one setting may start (encoder threads, segments, batch workers): more than any
# machine runs usefully, and each is a real thread (a billion would hang the start).
MAX_THREADS = 1024
# The most frames one forward pass may be asked for: the pipeline holds that many decoded frames per
# stage (the translator splits a pass that does not fit the device), and more only costs memory:
# -b 100000 held 1.4 GB for a 300-frame 640x480 clip against 0.8 GB at 8, and was 3x slower.
MAX_BATCH = 1024


# --pix-fmt's default, no format FFmpeg names: the writer picks one the codec takes (`video.writer`).
AUTO_PIX_FMT = "auto"


@dataclass(frozen=True)
class EncodeOptions(_Options):
    """How output video is encoded. The encoder itself checks the codec, pixel format, the top of
    the crf range and the preset (`vidtrans.video.check_output_settings`), since those depend on the
    codec and the FFmpeg build; no codec takes a crf below 0."""

    codec: str = option("libx264", "Video encoder (libx264, libx265, libvpx-vp9, libsvtav1, h264_nvenc, mpeg4, ...).")
    crf: int = option(18, "Constant rate factor: lower is better quality (x264/x265/NVENC 0-51, VP8/VP9/AV1 0-63).")
    preset: str = option("medium", "Encoder speed, as x264 names it (ultrafast ... placebo; mapped for SVT-AV1, "
                                   "VP9 and NVENC).")
    pix_fmt: str = option(AUTO_PIX_FMT, "Output pixel format: auto (yuv420p, which plays everywhere, where the codec "
                                        "takes it; else the codec's best, e.g. yuv422p10le for prores_ks, rgb24 for "
                                        "png) or one the codec takes (yuv444p keeps full colour).", flag="--pix-fmt")
    # Encoder threads, 0: the codec chooses. Not a flag: the pipelines pick it for their workload.
    threads: int = option(0, cli=False)
    # Consecutive parts of the video encoded at once by encoders of their own (x264), joined
    # without re-encoding; 0: one per 4 cores from 8 cores on (`video.segments`). Not a flag either.
    segments: int = option(0, cli=False)

    def check(self) -> None:
        _check(isinstance(self.codec, str) and bool(self.codec),
               f"{spell('codec')} must be an encoder name, not {shown(self.codec)}")
        _check(is_int(self.crf) and self.crf >= 0,
               f"{spell('crf')} must be a whole number, 0 or more (lower is better quality), not {shown(self.crf)}")
        _check(isinstance(self.preset, str), f"{spell('preset')} must be a name such as medium, not {shown(self.preset)}")
        _check(isinstance(self.pix_fmt, str),
               f"{spell('pix_fmt')} must be a name such as yuv420p or auto, not {shown(self.pix_fmt)}")
        _check(is_int(self.threads) and 0 <= self.threads <= MAX_THREADS,
               f"{spell('threads')} must be from 0 to {MAX_THREADS}, not {shown(self.threads)}")
        _check(is_int(self.segments) and 0 <= self.segments <= MAX_THREADS,
               f"{spell('segments')} must be from 0 to {MAX_THREADS}, not {shown(self.segments)}")


# The smoothing strength when neither the user nor (under --smooth auto) the model card gives one.
DEFAULT_SMOOTHING_STRENGTH = 0.5


@dataclass(frozen=True)
class RunOptions(_Options):
    """How `run` and `batch` translate a clip (`vidtrans.translate_video`, `vidtrans.batch`)."""

    batch_size: int = option(8, "Frames per forward pass (1-1024).", short="-b")
    start: float | None = option(None, "Start time in seconds from the clip's start (default: its first frame).")
    end: float | None = option(None, "End time in seconds from the clip's start (default: its last frame).")
    smoothing: Smoothing = option(Smoothing.AUTO, "Output smoothing: auto (what the model card recommends, else "
                                  "none), none, ema (blend with the previous frame) or flow (motion-compensated).",
                                  flag="--smooth")
    smoothing_strength: float | None = option(None, "Smoothing strength, from 0 (none) up to but not including 1 "
                                              "(default: what the card recommends with --smooth auto, else 0.5).",
                                              flag="--smooth-strength")
    side_by_side: bool = option(False, "Write input | pose map | output panels for comparison.")
    pose: PoseSource = option(PoseSource.AUTO, "Pose models: auto (detect unless the input is already a pose-map "
                              "video), detect, or none (input is pose maps).")
    normalize: bool = option(True, "Fit the dancer's size and floor line to the target's (pose models).",
                             flag="--normalize/--no-normalize")
    compile: CompileMode = option(CompileMode.AUTO, "torch.compile the model: auto (on CPU, for clips of 2000 frames or more: "
                                     "compiling takes 15-20 s), on, off.")
    encode: EncodeOptions = option(help="How the output is encoded.", factory=EncodeOptions)

    # `run` takes these as flags too, but they say how the model is loaded.
    _elsewhere = {name: f"the model's {param} is chosen when it is loaded; pass "
                  f"vidtrans.load_model(model, {param}={{value}}) as the model"
                  for name, param in (("model_size", "size"), ("size", "size"), ("device", "device"),
                                      ("precision", "precision"), ("backend", "backend"))}

    def check(self) -> None:
        _check(is_int(self.batch_size) and 1 <= self.batch_size <= MAX_BATCH,
               f"{spell('batch_size')} must be a whole number from 1 to {MAX_BATCH}, got {shown(self.batch_size)}")
        check_span(self.start, self.end)
        _check_strength(self.smoothing_strength)
        _check(isinstance(self.encode, EncodeOptions), f"{spell('encode')} must be EncodeOptions, not {shown(self.encode)}")


# The latest time a span may name. FFmpeg's timestamps are 64-bit ticks of the stream's time base,
# at most 9.2e9 s in nanoseconds (Matroska's finest): 1e9 s (31 years) fits every time base in use.
MAX_SECONDS = 10**9


def check_span(start: float | None, end: float | None) -> None:
    """UsageError unless `start` and `end` (seconds; None: from the beginning, to the end) are
    each a number from 0 to MAX_SECONDS and `end` is after `start` (0 when None)."""
    for name, value in (("start", start), ("end", end)):
        _check(value is None or (is_finite_number(value) and 0 <= value <= MAX_SECONDS),
               f"{spell(name)} must be a number of seconds from 0 to {MAX_SECONDS:,}, got {shown(value)}")
    _check(end is None or end > (start or 0), f"{spell('end')} ({end}s) must be after {spell('start')} ({start or 0}s)")


def _check_strength(strength: float | None) -> None:
    _check(strength is None or (is_finite_number(strength) and 0.0 <= strength < 1.0),
           f"{spell('smoothing_strength')} must be from 0 up to but not including 1, got {shown(strength)}")


@dataclass(frozen=True)
class BatchOptions(_Options):
    """Which clips of a folder `vidtrans.batch.translate_folder` translates, where, and on what."""

    patterns: list[str] | None = option(None, "File name pattern to translate (repeatable; a str or a list of them in "
                                        "Python; default: common video extensions).", flag="--pattern",
                                        hashed=False)
    recursive: bool = option(True, "Look in subfolders.", flag="--recursive/--no-recursive")
    workers: int | None = option(None, "Clips translated at once (default: 2 per device; with --ray, one per GPU of "
                                 "the cluster, or per CPU when it has no GPU).")
    devices: str | list[str] = option("auto", "Comma-separated devices the workers take turns on, e.g. "
                                      "cuda:0,cuda:1 (a list of names in Python); with --ray: auto, cpu or cuda "
                                      "(a whole GPU per worker).", cli_type=str, hashed=False)
    # Here rather than a parameter of translate_folder: like `devices`, it says how the models are loaded.
    backend: Backend = option(Backend.AUTO, BACKEND_HELP)
    ext: str | None = option(None, "Output container extension, e.g. mp4 (default: the input's).")
    overwrite: bool = option(False, "Redo every clip, even finished ones, and replace existing files.")
    report: str | None = option(None, "Write a report: per clip input, output, status, frames, seconds, fps, "
                                "error, pose; and totals. CSV (a row per clip) where the name ends in .csv, else "
                                "JSON. Replaces an earlier report; any other existing file needs --overwrite.",
                                cli_type=PathText)
    ray: str | None = option(None, "Translate on the Ray cluster at this address, as ray.init takes it: auto (the "
                             "one this machine joined with ray start), HOST:PORT, ray://HOST:10001, or local (a new "
                             "instance here); pip install 'vidtrans[ray]'. Every node must reach the input and "
                             "output folders at the same paths, and the model.")

    def __post_init__(self) -> None:
        # One pattern as a str is what a Python caller means by patterns="*.mp4"; iterated, it would
        # be one pattern per character, and "*" matches every file.
        if isinstance(self.patterns, str):
            object.__setattr__(self, "patterns", [self.patterns])
        super().__post_init__()

    def check(self) -> None:
        _check_patterns(self.patterns)
        _check(self.ext is None or isinstance(self.ext, str),
               f"{spell('ext')} must be an extension such as mp4, not {shown(self.ext)}")
        _check(self.report is None or (isinstance(self.report, (str, os.PathLike))
                                       and isinstance(os.fspath(self.report), str)),
               f"{spell('report')} must be a file name such as report.json, not {shown(self.report)}")
        if self.report is not None:
            from vidtrans.atomic import check_file_name  # atomic spells its settings with this module

            check_path_text(self.report, "report")
            check_file_name(self.report)  # as typed: a Path made of it later drops a trailing slash
        _check(self.workers is None or (is_int(self.workers) and 1 <= self.workers <= MAX_THREADS),
               f"{spell('workers')} must be from 1 to {MAX_THREADS}, got {shown(self.workers)}")
        names = self.devices.split(",") if isinstance(self.devices, str) else self.devices
        _check(isinstance(names, (list, tuple)) and all(isinstance(d, str) for d in names) and bool(self.device_list),
               f"{spell('devices')} must name at least one device, such as auto, cpu or cuda:0, not {shown(self.devices)}")
        if self.ray is not None:
            _ray_endpoint(self.ray)  # the address's form, before Ray is imported
            # Found, not imported: importing Ray takes a while, and is done when the batch starts.
            _check(importlib.util.find_spec("ray") is not None,
                   f"{spell('ray')} needs Ray, which is not installed; pip install 'vidtrans[ray]'")
            # Ray hands each worker its own GPU; the cluster's devices have no names here.
            _check(self.device_list in (["auto"], ["cpu"], ["cuda"]),
                   f"{spell('devices')} must be auto, cpu or cuda with {spell('ray')} (a whole GPU per worker), "
                   f"not {shown(self.devices)}")

    @property
    def device_list(self) -> list[str]:
        names = self.devices.split(",") if isinstance(self.devices, str) else self.devices
        return [d.strip() for d in names if d.strip()]

    @property
    def ray_endpoint(self) -> tuple[str, int] | None:
        """`ray` as (host, port) when it is HOST:PORT; None for auto, local and URLs (ray://...), which
        Ray resolves itself."""
        return _ray_endpoint(self.ray)


def _ray_endpoint(address: Any) -> tuple[str, int] | None:
    """See `BatchOptions.ray_endpoint`; UsageError for what is no Ray address, where Ray would only
    say "Invalid address format" (a failure, not a usage error)."""
    _check(isinstance(address, str) and bool(address.strip()),
           f"{spell('ray')} must be a Ray address such as auto or HOST:PORT, not {shown(address)}")
    if address in ("auto", "local") or "://" in address:
        return None
    host, _, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")  # an IPv6 address: [::1]:6379
    _check(bool(host) and is_digits(port) and 1 <= int(port) <= 65535,
           f"{spell('ray')} {shown(address)}: give auto (the cluster this machine joined), HOST:PORT of its head "
           "(e.g. 10.0.0.5:6379), ray://HOST:10001 or local")
    return host, int(port)


def _check_patterns(patterns: Any) -> None:
    """File name patterns (None: the default ones): each a non-empty name pattern, not a path."""
    if patterns is None:
        return
    _check(isinstance(patterns, (list, tuple)) and all(isinstance(p, str) for p in patterns),
           f"{spell('patterns')} must be a file name pattern such as '*.mp4', or a list of them, not {shown(patterns)}")
    _check(bool(patterns), f"{spell('patterns')} is an empty list, which matches no file; give a pattern such as "
                           "'*.mp4', or None for the usual video files")
    for pattern in patterns:
        _check(bool(pattern), f"{spell('patterns')} '': an empty pattern matches no file; give one such as '*.mp4'")
        _check("\0" not in pattern, f"{spell('patterns')} {shown(pattern)}: no file name holds a NUL character "
                                     "(\\x00); give one such as '*.mp4'")
        if "/" in pattern or os.sep in pattern:
            name = pattern.replace(os.sep, "/").rsplit("/", 1)[1]
            instead = f"use {spell('patterns')} '{name}'" if name else "give a file name pattern such as '*.mp4'"
            raise UsageError(f"{spell('patterns')} {pattern}: patterns match file names, not paths, and subfolders "
                             f"are searched anyway; {instead}, or give the subfolder as the input folder")


class View(Choice):
    SIDE = "side"  # camera | pose | output
    OUTPUT = "output"
    POSE = "pose"  # what the model gets: the pose map, or the camera for RGB models


def _option_of(options_type: type, name: str, default: Any) -> Any:
    """A field of another options type again (its help and flag), with a default of its own."""
    original = next(f for f in dataclasses.fields(options_type) if f.name == name)
    return field(default=default, metadata=original.metadata)


@dataclass(frozen=True)
class LiveOptions(_Options):
    """How `vidtrans.live.run_live` captures, translates and shows a live session."""

    size: tuple[int, int] | str | None = option(None, "WIDTHxHEIGHT: capture at this size (default: the camera's "
                                                "own; frames are resized to it).", cli_type=str, hashed=False)
    view: View = option(View.SIDE, "side (camera | pose | output), output or pose; v cycles them in the window.")
    window: bool = option(True, "Show the preview window; --no-window: no preview window (headless).",
                          flag="--window/--no-window")
    # Taken as typed (str): a Path would drop a trailing slash, which names a folder (see atomic.check_file_name).
    record: str | os.PathLike | None = option(None, "Record the view (without the HUD) to this video, e.g. "
                                              "session.mp4 (or .mkv, .mov), at capture times.", cli_type=PathText)
    serve: str | None = option(None, "Serve a page with the view as MJPEG at [HOST:]PORT (host 127.0.0.1 unless "
                               "given; port 0: a free port).")
    virtual_cam: bool = option(False, "Send the view to a virtual webcam (pip install 'vidtrans[live]').")
    max_frames: int | None = option(None, "Stop after N frames shown (default: at q or Esc, or when a file camera "
                                          "ends).")
    stats: str | os.PathLike | None = option(None, "Write the session's figures as JSON (frames, fps, latency "
                                                   "p50/p95, dropped, captured, seconds, device, ...; see the README).",
                                             cli_type=PathText)
    loop: bool = option(False, "Play a video file camera again from the start when it ends.")
    overwrite: bool = option(False, "Replace existing --record and --stats files.")
    smoothing: Smoothing = _option_of(RunOptions, "smoothing", Smoothing.NONE)
    smoothing_strength: float | None = _option_of(RunOptions, "smoothing_strength", None)
    normalize: bool = _option_of(RunOptions, "normalize", True)

    def check(self) -> None:
        _size(self.size)
        _address(self.serve)
        _check(self.max_frames is None or (is_int(self.max_frames) and self.max_frames >= 1),
               f"{spell('max_frames')} must be at least 1, got {shown(self.max_frames)}")
        for name in ("record", "stats"):
            value = getattr(self, name)
            _check(value is None or (isinstance(value, (str, os.PathLike)) and os.fspath(value).strip() != ""),
                   f"{spell(name)} must be a file path, not {shown(value)}")
            if value is not None:
                check_path_text(value, name)
        _check_strength(self.smoothing_strength)

    @property
    def capture_size(self) -> tuple[int, int] | None:
        """`size` as (width, height)."""
        return _size(self.size)

    @property
    def serve_address(self) -> tuple[str, int] | None:
        """`serve` as (host, port)."""
        return _address(self.serve)


# Frame sides, in pixels, that models run at and cameras capture at.
MIN_SIZE, MAX_SIZE = 16, 8192


def _size(size: tuple[int, int] | str | None) -> tuple[int, int] | None:
    """"640x480" or (640, 480) -> (640, 480)."""
    if size is None:
        return None
    if isinstance(size, str):
        width, _, height = size.lower().partition("x")
        parsed = (int(width), int(height)) if is_digits(width) and is_digits(height) else None
    else:
        parsed = tuple(map(plain_number, size)) if isinstance(size, (tuple, list)) and len(size) == 2 else None
    _check(parsed is not None and all(is_int(v) and MIN_SIZE <= v <= MAX_SIZE for v in parsed),
           f"{spell('size')} {shown(size)}: give WIDTHxHEIGHT, from {MIN_SIZE}x{MIN_SIZE} to {MAX_SIZE}x{MAX_SIZE}, "
           "e.g. 640x480")
    return parsed


def _address(serve: str | int | None) -> tuple[str, int] | None:
    """"8000" (or 8000, as Python callers write a port) -> ("127.0.0.1", 8000); "HOST:PORT" as given."""
    if serve is None:
        return None
    text = str(serve) if is_int(serve) else serve
    host, _, port = text.rpartition(":") if isinstance(text, str) else ("", "", "")
    _check(is_digits(port) and 0 <= int(port) <= 65535, f"{spell('serve')} {shown(serve)}: give PORT or HOST:PORT, e.g. 8000")
    return host.strip("[]") or "127.0.0.1", int(port)


class Direction(Choice):
    A_TO_B = "AtoB"
    B_TO_A = "BtoA"


class TrainPose(Choice):
    """Which keypoints synthetic training draws its pose maps from (the target image is always exact)."""

    EXACT = "exact"  # those the character is rendered from
    DETECTED = "detected"  # those MediaPipe finds on the rendered dances, as run would (detected once, cached)
    NOISY = "noisy"  # exact, moved as the detector's measured error moves them


@dataclass(frozen=True)
class TrainOptions(_Options):
    """How `vidtrans train` learns a model (vidtrans.train.setup.prepare_training checks the
    values against each other and against a checkpoint being resumed)."""

    iterations: int = option(2000, "Training iterations (each one batch); with --resume, the checkpoint's plan unless "
                             "given (the learning rate's decay moves with a new one).")
    batch_size: int = option(1, "Samples per iteration (per process under torchrun); with --resume, the checkpoint's.")
    architecture: str | None = option(None, "unet_256 (default), unet_128, resnet_9blocks or resnet_6blocks; with "
                                      "--resume, the checkpoint's.", flag="--arch")
    ngf: int | None = option(None, "Generator width (default 64; with --resume, the checkpoint's).")
    ndf: int | None = option(None, "Discriminator width (default 64; with --resume, the checkpoint's).")
    size: int | None = option(None, "Training resolution in pixels, square (default 256; a multiple of what --arch needs; "
                              "with --resume, the checkpoint's).")
    lr: float = option(2e-4, "Adam learning rate (decays linearly to 0 over the second half); with --resume, the "
                           "checkpoint's.")
    lambda_l1: float = option(100.0, "Weight of the L1 loss against the GAN loss; with --resume, the checkpoint's.")
    device: str = option("auto", "auto (a CUDA GPU when PyTorch sees one, else the CPU), cpu, cuda or cuda:N "
                           "(GPU number N; torchrun picks cuda:LOCAL_RANK).")
    resume: bool = option(False, "Continue from the checkpoint in --output, on the data it was trained on (given "
                          "again: its card records the name only).")
    overwrite: bool = option(False, "Start over when --output holds a checkpoint: its files are deleted when the "
                             "new run writes its first checkpoint (a run stopped before keeps them).")
    save_every: int = option(500, "Write the checkpoint every N iterations; with --resume, the checkpoint's.")
    validate_every: int = option(500, "Score the held-out split (SSIM/PSNR) and save a sample grid every N "
                                 "iterations; with --resume, the checkpoint's.")
    seed: int = option(0, "Random seed; with --resume, the checkpoint's.")
    input_kind: InputKind = option(InputKind.RGB, "With --data: rgb, or pose when A images are pose maps.")
    direction: Direction = option(Direction.A_TO_B, "With --data: AtoB or BtoA.")
    train_pose: TrainPose = option(TrainPose.EXACT, "With --synthetic, pose maps from: exact keypoints, detected "
                                   "ones (what run sees: MediaPipe on the rendered dances, detected once and cached), "
                                   "or noisy (exact plus the detector's measured error); with --resume, the "
                                   "checkpoint's.")
    whole_body: bool | None = option(None, "Pose maps of the whole body: the face's points and the hands drawn too "
                                     "(ControlNet's openpose_full look; MediaPipe Holistic finds them every other "
                                     "frame, at about 1.5x the body-only detection time). Default: off; with --resume, the "
                                     "checkpoint's; with "
                                     "--init-from, that model's.", flag="--whole-body/--body-only")
    # The recipe (pix2pixHD, Everybody Dance Now); nothing in it needs pretrained weights.
    d_scales: int | None = option(None, "Discriminator scales: 2 (default: PatchGANs on the frame and on it halved, "
                                  "pix2pixHD), 1 (pix2pix) or 3; with --resume, the checkpoint's.")
    lambda_feat: float = option(10.0, "Weight of discriminator feature matching (pix2pixHD); 0: off; with --resume, "
                               "the checkpoint's.")
    face_d: bool | None = option(None, "A discriminator on the face square (default: on, but off with --data, "
                                 "whose pairs have no keypoints; with --resume, the checkpoint's).",
                                 flag="--face-d/--no-face-d")
    lambda_face_gan: float = option(2.0, "Weight of the face discriminator's loss for the generator; with --resume, "
                                   "the checkpoint's.")
    lambda_face: float = option(100.0, "Weight of an L1 loss on the face square (where the keypoints show a face), "
                                "on top of --lambda-l1's on the frame; 0: off; with --resume, the checkpoint's.")
    init_from: str | None = option(None, "Start the generator from this model's weights (a name such as pose2person, "
                                   "or a checkpoint folder) instead of random ones: fine-tuning. Its architecture, "
                                   "width and size are used; the discriminators start fresh.", cli_type=PathText)
    temporal: bool | None = option(None, "A temporal model (Everybody Dance Now): the generator also sees its own "
                                   "previous output, the discriminator two consecutive frames; run, batch and live "
                                   "then run it recurrently. Not with --data (no consecutive frames). Default: off; "
                                   "with --resume, the checkpoint's; with --init-from a temporal model, on.",
                                   flag="--temporal/--no-temporal")
    data_workers: int | None = option(None, "Processes preparing training samples ahead of the step (default: up "
                                      "to 8 per GPU; none on a CPU, where the step uses every core); 0: none, "
                                      "samples are drawn in the step.")

    def check(self) -> None:
        # NumPy takes seeds of any size but refuses negative ones; torch.manual_seed takes 64 bits,
        # and each process of a distributed run adds its rank.
        _check(is_int(self.seed) and 0 <= self.seed < 2**63,
               f"{spell('seed')} must be a whole number from 0 to 2**63 - 1, got {shown(self.seed)}")
        # The command line reads inf and nan as floats: no rate or weight at all, whatever its sign
        # (the trainer tells the range of a finite one).
        for name in ("lr", "lambda_l1", "lambda_feat", "lambda_face_gan", "lambda_face"):
            value = getattr(self, name)
            _check(is_finite_number(value), f"{spell(name)} must be a finite number, got {shown(value)}")


# How pose-map videos are encoded (`vidtrans pose`). Pose maps are flat graphics: x264 superfast
# loses nothing visible at the same CRF (about 1 Mbit/s at 720p). The two pose detectors keep two
# cores busy, so the encoder should spend little CPU: x264's default 1.5 threads per core cost
# 20-25 % more per frame than two, and one thread becomes the bottleneck from 1080p.
POSE_VIDEO_ENCODE = EncodeOptions(preset="superfast", threads=2)


def output_settings(options: RunOptions) -> dict[str, Any]:
    """The options that change what a run writes, as plain JSON values: what a resumed batch
    compares to decide whether a finished clip is still valid. Batch size and compilation are
    left out: batched, compiled output is the same frames (batch invariance); so are the encoder's
    threads and segments, which split the encoder's work (and place a key frame per segment), so a
    clip encoded on a machine with other cores stays valid."""
    flat = {k: v for k, v in dataclasses.asdict(options).items() if k not in ("batch_size", "compile", "encode")}
    flat.update({k: v for k, v in dataclasses.asdict(options.encode).items() if k not in ("threads", "segments")})
    # A strength left to the card is recorded as the default, as manifests did before one could be
    # given over the card's: "auto" with 0.5 then meant the card's strength, else 0.5, which is what
    # None means now. One given under "auto" is marked: it now overrides the card's.
    if options.smoothing_strength is None:
        flat["smoothing_strength"] = DEFAULT_SMOOTHING_STRENGTH
    elif options.smoothing == Smoothing.AUTO:
        flat["smoothing_strength_over_card"] = True
    return {k: (v.value if isinstance(v, Choice) else v) for k, v in flat.items()}
