"""The README's commands and flags, as a new user copies them, against the command line's `--help`."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
COMMANDS = ("run", "pose", "batch", "live", "train", "eval", "models", "import-pix2pix", "export")
# Flags the README gives to other programs: pip, `ray start`, coreutils `timeout`, OpenPose.
OTHER_TOOLS = {"--extra-index-url", "--head", "--port", "--address", "--preserve-status", "--frame_first",
               "--nproc_per_node"}
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9_-]*[a-z0-9]")


@pytest.fixture(scope="module")
def helps():
    from tests.conftest import run_cli

    env = {"COLUMNS": "1000", "PATH": "/usr/bin:/bin"}
    texts = {command: run_cli(command, "--help", env=env).stdout for command in COMMANDS}
    texts[""] = run_cli("--help", env=env).stdout
    return texts


def _flags(text: str) -> set[str]:
    return set(FLAG.findall(text))


def _invocations(readme: str):
    """(command, the rest of the line) for every `vidtrans COMMAND ...` the README shows, in code
    blocks and in inline code alike (a backtick or a code block's line ends each)."""
    for line in readme.splitlines():
        for match in re.finditer(r"vidtrans (?:--debug )?([a-z-]+)([^`#\n]*)", line):
            if match.group(1) in COMMANDS:
                yield match.group(1), match.group(2)


def test_every_flag_the_readme_names_is_one_vidtrans_has(helps):
    known = set().union(*(_flags(text) for text in helps.values()))
    unknown = _flags(README.read_text()) - known - OTHER_TOOLS
    assert not unknown, f"the README names flags no command has: {sorted(unknown)}"


def test_every_command_line_the_readme_shows_uses_that_commands_flags(helps):
    wrong = {(command, flag) for command, rest in _invocations(README.read_text())
             for flag in _flags(rest) - _flags(helps[command]) - OTHER_TOOLS}
    assert not wrong, f"README command lines with flags their command lacks: {sorted(wrong)}"
