import io
import re

from sagemaker_rl.console import Console


def _lines(out: io.StringIO) -> list[str]:
    lines = out.getvalue().splitlines()
    assert all(re.match(r"^\[\d+:\d\d:\d\d\] ", line) for line in lines)  # time since the start, first
    return [line.split("] ", 1)[1] for line in lines]


def test_a_progress_line_is_repeated_only_when_it_changes_or_a_note_comes():
    out = io.StringIO()
    console = Console(out)
    console.progress("1/8 done", detail="#1 it 2: -3")
    console.progress("1/8 done", detail="#1 it 3: -2")  # only the detail changed: not printed
    console.progress("1/8 done", note="trial 1 failed: boom")
    console.progress("2/8 done")
    console.say("stopping")
    assert _lines(out) == ["1/8 done | #1 it 2: -3", "1/8 done | trial 1 failed: boom", "2/8 done", "stopping"]


def test_an_unchanged_progress_line_is_repeated_after_the_interval():
    out = io.StringIO()
    console = Console(out, interval_s=0.0)
    console.progress("1/8 done")
    console.progress("1/8 done")
    assert _lines(out) == ["1/8 done", "1/8 done"]
