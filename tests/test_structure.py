"""The structure issue's bound, kept: options travel as objects, so no function outside the typer
commands takes more than eight parameters (a catch-all `**changes` of option fields aside)."""

import ast
from pathlib import Path

import vidtrans

PACKAGE = Path(vidtrans.__file__).parent


def test_no_function_outside_the_commands_takes_more_than_eight_parameters():
    too_many = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "cli.py":  # typer commands take one parameter per flag
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args
                named = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs) if a.arg not in ("self", "cls")]
                if len(named) + bool(args.vararg) > 8:
                    too_many.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({len(named)})")
    assert not too_many, too_many
