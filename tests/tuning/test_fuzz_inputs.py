"""Fuzzing the tuner's own inputs: tuning files, flags and run directories, as the job's inputs are fuzzed.

A corpus of malformed tuning files (every setting with values of the wrong kind or size, broken ranges,
YAML anchors and bombs, unreadable files) goes through `load_config` in-process, each case under a time
limit; a sample of files and malformed flags goes through the real `scripts/tune.py`. A rejection is a
UserError of one line, at most 1,024 characters; an accepted file must give a config whose every form
(resolved, SageMaker's ranges, the tuning file) can be built. Nothing may be written. `test_corpus_counts`
prints the counts (tried / rejected / accepted / traceback / hang). What a file may hold and still be
accepted here is judged when the run opens: names and values by the job's own parser, the storage by
connecting to it, warm-start parents by reading them (the real command's cases show those refusals).
"""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sagemaker_rl import contract
from sagemaker_rl.errors import UserError
from sagemaker_rl.tuning import TuningConfig, load_config

REPO = Path(__file__).resolve().parents[2]
TIME_LIMIT_S = 10
SETTINGS = [item.name for item in dataclasses.fields(TuningConfig) if item.name not in ("problem", "space")]
BAD_VALUES: list[Any] = [-1, 0, 10**400, -(10**30), 1.5, "abc", "", [], [1, 2], {}, {"a": 1}, True, ".nan", ".inf",
                         "1e400", "\u0661"]
LR = "rl.training.config.lr"


@dataclass(frozen=True)
class Case:
    name: str
    text: str | bytes  # the tuning file's content
    suffix: str = ".yaml"


def _yaml(data: Any) -> str:
    return json.dumps(data)  # JSON is YAML; `.nan`/`.inf` strings stay strings, which is a case of its own


def _setting_cases() -> Iterator[Case]:
    for setting in [*SETTINGS, "problem"]:
        for value in BAD_VALUES:
            yield Case(f"{setting}={value!r}"[:60], _yaml({setting: value}))
        yield Case(f"{setting}=yaml nan", f"{setting}: .nan\n")
        yield Case(f"{setting}=yaml inf", f"{setting}: -.inf\n")


def _range(kind: str, **fields: Any) -> dict[str, Any]:
    return {"parameters": {LR: {"type": kind, **fields}}}


def _parameter_cases() -> Iterator[Case]:
    numbers: list[Any] = [".nan", ".inf", "-.inf", 1e308, 10**400, "abc", None, [], True]
    for kind in ("Continuous", "Integer"):
        for value in numbers:
            for bound in ("min_value", "max_value"):
                other = "max_value" if bound == "min_value" else "min_value"
                text = f"parameters:\n  {LR}: {{type: {kind}, {bound}: {json.dumps(value) if not isinstance(value, str) or not value.startswith(('.', '-.')) else value}, {other}: 1}}\n"  # noqa: E501
                yield Case(f"{kind} {bound}={value!r}", text)
        for scaling in ("Logarithmic", "ReverseLogarithmic", "Linear", "Auto", "Log", "", 3):
            for low, high in ((-1, 1), (0, 1), (1, 0), (1, 1), (0.5, 2), (1e-300, 1e300)):
                yield Case(f"{kind} {scaling} {low}..{high}",
                           _yaml(_range(kind, min_value=low, max_value=high, scaling_type=scaling)))
    for values in ([], [1, 1], [[1], [1]], [None], [{"a": [1]}], list(range(10_000)), "abc", 5, {"a": 1},
                   [float("1e308")] * 2):
        yield Case(f"Categorical {str(values)[:30]}", _yaml(_range("Categorical", values=values)))
    for spec in ({"type": "Continous", "min_value": 0, "max_value": 1}, {"type": "Continuous"}, {"min_value": 0},
                 {"type": "Continuous", "min_value": 0, "max_value": 1, "extra": 1}, "Continuous:0:1", None, [], 3):
        yield Case(f"parameter {str(spec)[:40]}", _yaml({"parameters": {LR: spec}}))
    for name in ("", " ", "rl..x", "rl.training.config.lr.", "a b", "x" * 5000, "rl.training.config.lrr"):
        yield Case(f"parameter name {name[:20]!r}", _yaml({"parameters": {name: {"type": "Categorical",
                                                                               "values": [1, 2]}}}))
    for static in ([], "abc", {"": 1}, {"rl.training.stop.time_total_s": {"a": [1]}}, {LR: 1e-3, "x": None}, 5):
        yield Case(f"static {str(static)[:40]}", _yaml({"static": static}))
    for ranges in ([], {"ContinuousParameterRanges": [{"Name": LR}]}, {"IntegerParameterRanges": "x"},
                   {"CategoricalParameterRanges": [{"Name": LR, "Values": []}]}, {"Bogus": []}):
        yield Case(f"ParameterRanges {str(ranges)[:40]}", _yaml({"ParameterRanges": ranges}))
    for objective in ("x", {"metric": "loss"}, {"type": "Biggest"}, {"metric": 1, "type": None}, []):
        yield Case(f"objective {objective!r}", _yaml({"objective": objective}))


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
) + "parameters: *i\n"
FILE_CASES = [
    Case("yaml bomb (a billion laughs)", BOMB),
    Case("yaml bomb as a static value", BOMB.replace("parameters: *i", "static: {rl.training.config.model: *i}")),
    Case("yaml anchors reused as a range", f"r: &r {{type: Continuous, min_value: 0, max_value: 1}}\n"
                                           f"parameters: {{{LR}: *r, rl.training.config.gamma: *r}}\n"),
    Case("yaml deeply nested", "parameters: " + "[" * 5000 + "]" * 5000 + "\n"),
    Case("json deeply nested", '{"parameters": ' + "[" * 100_000 + "]" * 100_000 + "}", ".json"),
    Case("yaml python object tag", "parameters: !!python/object/apply:os.system ['true']\n"),
    Case("yaml invalid", "parameters: {a: [1, 2\n"),
    Case("json trailing comma", '{"max_jobs": 3,}', ".json"),
    Case("a list", "- 1\n- 2\n"),
    Case("a scalar", "3\n"),
    Case("empty", ""),
    Case("binary", bytes(range(256))),
    Case("not utf-8", b"max_jobs: \xff\xfe\n"),
    Case("a huge file", "max_jobs: 3\n" + "# " + "x" * 20_000_000 + "\n"),
    Case("unknown setting", "max_job: 3\n"),
    Case("integer keys", "1: 2\n"),
    Case("null keys", "~: 2\n"),
]


def _corpus() -> list[Case]:
    return [*_setting_cases(), *_parameter_cases(), *FILE_CASES]


CORPUS = _corpus()


class _Hang(Exception):
    pass


@contextmanager
def _time_limit(seconds: int) -> Iterator[None]:
    def stop(signum: int, frame: Any) -> None:
        raise _Hang

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _outcome(case: Case, directory: Path) -> tuple[str, str]:
    """('rejected' | 'accepted' | 'traceback' | 'hang', detail) of loading `case` as a tuning file."""
    path = directory / f"tuning{case.suffix}"
    if isinstance(case.text, bytes):
        path.write_bytes(case.text)
    else:
        path.write_text(case.text)
    try:
        with _time_limit(TIME_LIMIT_S):
            config = load_config(path).resolved()
            config.space.to_parameter_ranges()
            json.dumps(config.to_dict(), default=str)
    except _Hang:
        return "hang", ""
    except UserError as error:
        message = str(error)
        clean = "\n" not in message and 0 < len(message) <= contract.FAILURE_LINE_LIMIT
        return ("rejected", message) if clean else ("traceback", f"not one short line: {message[:200]!r}")
    except Exception as error:  # what a user must never see
        return "traceback", f"{type(error).__name__}: {str(error)[:200]}"
    return "accepted", ""


def test_the_corpus_is_big_enough():
    assert len(CORPUS) >= 300


@pytest.mark.parametrize("case", CORPUS, ids=[case.name[:60] for case in CORPUS])
def test_a_malformed_tuning_file_is_one_sentence_or_a_valid_config(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    outcome, detail = _outcome(case, tmp_path)
    assert outcome in ("rejected", "accepted"), detail
    assert sorted(path.name for path in tmp_path.iterdir()) == [f"tuning{case.suffix}"]  # nothing written


def test_corpus_counts(tmp_path, capsys):
    counts = dict.fromkeys(("rejected", "accepted", "traceback", "hang"), 0)
    for case in CORPUS:
        counts[_outcome(case, tmp_path)[0]] += 1
    with capsys.disabled():
        print(f"\ntuner input corpus: {len(CORPUS)} tried, " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    assert counts["traceback"] == counts["hang"] == 0


COMMAND_CASES = [
    ["--config", "tuning.yaml"],  # the file of the case below
    ["--param", f"{LR}=Continuous:nan:1"],
    ["--param", f"{LR}=Continuous:1e400:1e401"],
    ["--param", f"{LR}=Integer:1.5:3"],
    ["--param", f"{LR}=Categorical:"],
    ["--param", "=Categorical:1,2"],
    ["--param", f"{LR}=Continuous:0:1:Loggy"],
    ["--static", "=1"],
    ["--static", "rl.training.config.lrr=1"],
    ["--param", "a b=Categorical:1,2"],
    ["--max-jobs", "0"],
    ["--max-jobs", "-3"],
    ["--max-parallel-jobs", "0"],
    ["--seeds", "0"],
    ["--population", "1", "--strategy", "PBT"],
    ["--perturbation-interval", "0", "--strategy", "PBT"],
    ["--population", "1", "--strategy", "PB2"],
    ["--seeds", "2", "--strategy", "PB2"],
    ["--warm-start", "a", "b", "c", "d", "e", "f"],
    ["--storage", "postgresql://user:secret@127.0.0.1:1/db"],
    ["--run-dir", "tuning.yaml"],
]


@pytest.mark.parametrize("args", COMMAND_CASES, ids=[" ".join(args)[:50] for args in COMMAND_CASES])
def test_the_real_command_refuses_malformed_input_in_one_line_and_writes_nothing(args, tmp_path):
    (tmp_path / "tuning.yaml").write_text(BOMB)
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "tune.py"), *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-1000:]
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1, done.stderr[-1000:]
    assert "secret" not in done.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["tuning.yaml"]


@pytest.fixture(params=["read-only", "full"])
def unwritable_disk(request, tmp_path):
    """A tmpfs mounted read-only, or one filled to its last byte."""
    disk = tmp_path / "disk"
    disk.mkdir()
    options = "size=64k,ro" if request.param == "read-only" else "size=64k"
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(disk)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"a tmpfs cannot be mounted here (root and CAP_SYS_ADMIN needed): {mounted.stderr.strip()}")
    if request.param == "full":
        subprocess.run(["dd", "if=/dev/zero", f"of={disk / 'fill'}", "bs=1k"], capture_output=True)
    before = sorted(path.name for path in disk.iterdir())
    yield disk, before, "Read-only file system" if request.param == "read-only" else "No space left on device"
    subprocess.run(["umount", "-l", str(disk)], check=True)


@pytest.mark.parametrize("where", ["new", "existing"])
def test_a_run_directory_on_a_read_only_or_full_disk_is_one_sentence_and_nothing_is_left(unwritable_disk, where):
    disk, before, said = unwritable_disk
    run_dir = disk if where == "existing" else disk / "run"
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "tune.py"), "--problem", "reacher", "--max-jobs",
                           "1", "--run-dir", str(run_dir)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-1000:]
    fix = "free space there or choose" if said == "No space left on device" else "choose"
    assert done.stderr.strip().splitlines() == [
        f"error: cannot start the run in {run_dir} ({said}): {fix} another --run-dir"]
    assert sorted(path.name for path in disk.iterdir()) == before
