"""scripts/tune.py and scripts/train.py: `build_parser()` is the real parser, and its help states each default once."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _parser(script: str) -> argparse.ArgumentParser:
    sys.path.insert(0, str(SCRIPTS))  # the scripts import their helpers (env_flags, sagemaker_flags) by name
    try:
        return importlib.import_module(script).build_parser()
    finally:
        sys.path.remove(str(SCRIPTS))


def _helps(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each option's help as --help prints it (%-expanded), by its first flag."""
    formatter = parser._get_formatter()
    return {action.option_strings[0]: formatter._expand_help(action) for action in parser._actions
            if action.option_strings and action.help and action.help is not argparse.SUPPRESS}


@pytest.mark.parametrize("script", ["tune", "train"])
def test_help_states_each_default_once(script):
    parser = _parser(script)
    for flag, text in _helps(parser).items():
        assert text.count("(default:") <= 1, f"{flag}: {text}"
        assert "(default: None)" not in text, f"{flag}: {text}"
        default = parser._option_string_actions[flag].default
        if default not in (None, False, [], argparse.SUPPRESS):  # a value argparse fills in: the help names it
            assert text.count(f"(default: {default}") == 1, f"{flag}: {text}"
    for line in parser.format_help().splitlines():
        assert line.count("default:") <= 1, line


def test_tune_help_shows_the_tuning_defaults():
    helps = _helps(_parser("tune"))
    assert helps["--problem"].startswith("a built-in problem to tune (default: reacher;")
    assert "(default: " in helps["--max-parallel-jobs"] and "(default: " in helps["--reevaluate-top"]
    assert helps["--backend"].endswith("(default: local)")


@pytest.mark.parametrize(("script", "flags"), [("tune", ["--problem", "reacher", "--max-jobs", "3"]),
                                                ("train", ["--problem", "reacher", "--hp", "a=1"])])
def test_build_parser_is_the_parser_main_uses(script, flags):
    args = _parser(script).parse_args(flags)
    assert args.problem == "reacher" and args.backend == "local"
