"""Fuzzing the job's inputs: every malformed hyperparameter is one clean sentence, before any Ray process.

A corpus of malformed inputs (one class per row of issue 12's table, and more) goes through the parser
(`parse_hyperparameters` + `check_resources`, what the job runs before Ray starts), hypothesis
generates more, and a sample goes through the real entrypoint as SageMaker starts it. A rejection is
a UserError of one line, at most 1,024 characters, naming the key; an acceptance is listed with its
reason. `test_corpus_counts` prints the counts (tried / rejected / accepted / traceback / hang).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sagemaker_rl import contract
from sagemaker_rl.errors import UserError
from sagemaker_rl.job.hyperparameters import (
    _JOB_KEYS,
    IGNORED_LEGACY,
    JOB_OWNED,
    MODEL_FIELDS,
    PPO_FIELDS,
    _model_config_defaults,
    _ppo_defaults,
    parse_hyperparameters,
)
from sagemaker_rl.job.keys import LEGACY_NAMES, PPO_PREFIX, STOP_PREFIX
from sagemaker_rl.job.ppo_config import check_resources
from tests.conftest import REPO, job_env

CPUS, GPUS = 2, 0  # the machine the corpus is judged for (check_resources)
MESSAGE_LIMIT = contract.FAILURE_LINE_LIMIT


@dataclass(frozen=True)
class Case:
    raw: dict[str, Any]  # hyperparameters as they would be decoded from hyperparameters.json
    names: tuple[str, ...]  # one of these must appear in the message (the key, or the field it sets)
    accept: str = ""  # why the input is accepted ("" = it must be rejected)


def _case(key: str, value: Any, *names: str, accept: str = "") -> Case:
    return Case({key: value}, names or (key,), accept)


NUMERIC = [name for name, spec in PPO_FIELDS.items() if spec.kinds[0] in (int, float)]
BAD_NUMBERS = [
    10**400, -(10**400), "1" * 400, "1" * 5000, "1e400", "-1e400", float("inf"), float("-inf"), "nan", "NaN",
    "Infinity", "-Infinity", "inf", True, False, [], {}, [1], {"a": 1}, "abc", "", " ", "0x10", "1_000",
    "1,5", "\u0661", None,
]
BAD_NUMBER_CASES = [
    _case(PPO_PREFIX + name, value)
    for name in NUMERIC
    for value in BAD_NUMBERS
    if not (value is None and PPO_FIELDS[name].nullable)
]
OUT_OF_RANGE = [
    _case(PPO_PREFIX + name, value)
    for name, spec in PPO_FIELDS.items()
    if spec.kinds[0] in (int, float)
    for value in ([spec.low - 1] if spec.low is not None else []) + ([spec.high * 10] if spec.high is not None else [])
    + ([spec.low] if spec.low is not None and not spec.low_inclusive else [])
]
ENUMS = [name for name, spec in PPO_FIELDS.items() if spec.choices]
BAD_ENUMS = [
    _case(PPO_PREFIX + name, value)
    for name in ENUMS
    for value in ["garbage", "TRUNCATE_EPISODES", " auto", "", 1, ["sync"], {"x": 1}, "x" * 10_000]
    if not (name in ("num_cpus_per_learner", "rollout_fragment_length") and value == 1)
]
BOOLS = [name for name, spec in PPO_FIELDS.items() if spec.kinds == (bool,)]
BAD_BOOLS = [_case(PPO_PREFIX + name, value) for name in BOOLS for value in ["yes", 1, 0, "1", None, [True]]]
LAYERS = [[64, -1], [], [1e9], [64.5], ["a"], [[64]], [64] * 17, [0], [True, 64], "64,64", 64, {"0": 64}, [None],
          "[64, -1]", '"[64, 0]"', [10**400]]
MODEL_CASES = (
    [_case(PPO_PREFIX + "model_config.fcnet_hiddens", value) for value in LAYERS]
    + [_case(PPO_PREFIX + "model_config.head_fcnet_hiddens", value) for value in [[0], [-3], [1e9], "x", [[1]]]]
    + [_case(PPO_PREFIX + f"model_config.{name}", value)
       for name in ("fcnet_activation", "head_fcnet_activation") for value in ["garbage", 3, "Tanh ", None, ["relu"]]]
    + [_case(PPO_PREFIX + f"model_config.{name}", 1) for name in _model_config_defaults() if name not in MODEL_FIELDS]
    + [_case(PPO_PREFIX + "model_config.not_a_key", 1), _case(PPO_PREFIX + "model_config.fcnet_hiddens.x", 1),
       _case(PPO_PREFIX + "model_config", {"fcnet_hiddens": [64, -1]}),
       _case(PPO_PREFIX + "model_config", {"unknown_key": 1}, "unknown_key"),
       _case(PPO_PREFIX + "model_config", {"use_lstm": True}, "use_lstm"),
       _case(PPO_PREFIX + "model_config", "abc"), _case(PPO_PREFIX + "model_config", [1]),
       _case(PPO_PREFIX + "model", {"fcnet_activation": "garbage"}, "model"),
       _case(PPO_PREFIX + "model_config", {"free_log_std": "maybe"})]
)
SCHEDULES = [[[0, 1e-4], [100, -1.0]], [[100, 1e-4]], [[0, 1e-3], [0, 1e-4]], [[0, 1e-3], [50, 1e-4], [20, 1e-5]],
             [[0]], [[0, 1e-3, 5]], [0, 1e-3], [[-1, 1e-3]], [["a", 1e-3]], [[0, "x"]], [[0, float("nan")]],
             [[0, 1e-3], [1.5, 1e-4]], [[0, 10**400]], [[0, 1e-3]] * 100, "[[0, -1]]", [[]], [[0, None]]]
SCHEDULE_CASES = [_case(PPO_PREFIX + name, value) for name in ("lr", "entropy_coeff") for value in SCHEDULES]
# Every PPOConfig field the job does not take: refused with a reason, never passed on to RLlib.
UNSUPPORTED = [
    _case(PPO_PREFIX + name, value)
    for name, value in [*((n, d) for n, d in _ppo_defaults().items()
                          if n not in PPO_FIELDS and n not in LEGACY_NAMES and n not in IGNORED_LEGACY),
                        ("algo_class", "DQN"), ("evaluation_config", "abc"), ("min_time_s_per_iteration", "abc"),
                        ("lr_schedule", [[0, 1e-3]]), ("callbacks_class", "x"), ("env", "Hopper-v5")]
    if isinstance(value, (int, float, str, bool, list, dict, type(None)))
]
KEYS = ["rl.training.config.lr.", "rl.training.config..lr", ".rl.training.config.lr", "rl.training.config. lr",
        "rl.training.config.lr ", "rl.training.config.l r", "rl.training.config.lr\n", "rl.training.confíg.lr",
        "rl.training.config.", "rl.", "rl", "", " ", "rl.training.config.lr.x", "rl.training.stop.", "rl.env.",
        "rl.training.config.num_epochs.0", "RL.training.config.lr", "rl.training.config.1lr",
        "rl.training.config.lr[0]", "rl.training.config.lr/../x", "rl.training.config.lr\x00", "x" * 100_000,
        "rl.training.config." + "a" * 10_000, "rl.training.stop.reward", "rl.training.stop.time_total_s.x",
        "rl.training.seeed", "rl.env.simulatr", "rl.training.config.$(touch X)", "rl.training.config.lr;rm",
        "learning_rate", "lr", "training.config.lr", "rl_training_config_lr", "rl.training.config.__class__",
        "rl.training.config._private"]
KEY_CASES = [Case({key: 0.1}, (repr(key)[1:-1][:40].strip(),)) for key in KEYS]  # as the message quotes it
JOB_KEY_CASES = [
    _case(key, value)
    for key, spec in _JOB_KEYS.items() if not spec.choices
    for value in [spec.low - 1, 10**10, "abc", 1.5 if spec.kinds == (int,) else "1e400", None, [], True, "nan"]
] + [_case("rl.training.seed", value) for value in [2**32, 4294967296, 2**31, -(2**31)]]
STOP_CASES = [
    _case(STOP_PREFIX + name, value)
    for name in ("time_total_s", "timesteps_total", "training_iteration", "episode_reward_mean")
    for value in ["abc", "nan", "inf", None, [], 10**400, True, -5 if name != "episode_reward_mean" else "1e400"]
]
CHOICE_CASES = [
    _case("rl.env.simulator", value) for value in ["bullet", 1, None, ["mujoco"], "x" * 200]
] + [_case("rl.training.preset", value) for value in ["fastest", 3, None, {"a": 1}, "y" * 200]] + [
    _case("rl.training.run", value) for value in ["DQN", 1, None]] + [
    _case("rl.training.sampler", value) for value in ["fast", "RLlib", 1, None, ["lean"]]]
CONFLICTS = [
    Case({PPO_PREFIX + "num_sgd_iter": 5, PPO_PREFIX + "num_epochs": 10}, ("num_sgd_iter",)),
    Case({PPO_PREFIX + "sgd_minibatch_size": 64, PPO_PREFIX + "minibatch_size": 64}, ("minibatch_size",)),
    Case({PPO_PREFIX + "num_workers": 1, PPO_PREFIX + "num_env_runners": 1}, ("num_workers",)),
    Case({PPO_PREFIX + "lambda": 0.9, PPO_PREFIX + "lambda_": 0.9}, ("lambda",)),
    Case({PPO_PREFIX + "model": {}, PPO_PREFIX + "model_config": {}}, ("model",)),
    Case({PPO_PREFIX + "vf_share_layers": True, PPO_PREFIX + "model_config.vf_share_layers": False},
         ("vf_share_layers",)),
    Case({PPO_PREFIX + "train_batch_size": 1000, PPO_PREFIX + "train_batch_size_per_learner": 2000},
         ("train_batch_size",)),
    Case({PPO_PREFIX + "minibatch_size": 5000, PPO_PREFIX + "train_batch_size_per_learner": 2000}, ("minibatch_size",)),
]
# What made jobs hang or fail late in the probe: now refused before Ray starts.
RESOURCE_CASES = [
    _case(PPO_PREFIX + "num_env_runners", 3, "num_env_runners"),
    _case(PPO_PREFIX + "num_env_runners", 1000, "num_env_runners"),
    _case(PPO_PREFIX + "num_cpus_per_env_runner", 100, "num_cpus_per_env_runner"),
    _case(PPO_PREFIX + "num_workers", 8, "num_env_runners"),
    Case({PPO_PREFIX + "num_env_runners": 2, PPO_PREFIX + "num_learners": 1}, ("num_env_runners",)),
    _case(PPO_PREFIX + "num_learners", 4, "num_env_runners"),
    _case(PPO_PREFIX + "num_gpus_per_learner", 1, "num_gpus_per_learner"),
    _case(PPO_PREFIX + "num_gpus_per_env_runner", 0.5, "num_gpus_per_env_runner"),
    _case(PPO_PREFIX + "rollout_fragment_length", 0),
    _case(PPO_PREFIX + "rollout_fragment_length", -5),
]
HUGE = [_case(PPO_PREFIX + "lr", "9" * 50_000_000), _case(PPO_PREFIX + "batch_mode", "z" * 50_000_000),
        _case(PPO_PREFIX + "model_config.fcnet_hiddens", "[" * 100_000),
        _case(PPO_PREFIX + "model_config.fcnet_hiddens", "[" * 500 + "]" * 500),
        _case(PPO_PREFIX + "lr", "[" * 100_000)]
# Accepted on purpose: each is a valid value in one of the ways SageMaker and its SDK encode values.
ACCEPTED = [
    _case(PPO_PREFIX + "model_config.fcnet_hiddens", '"[64, 64]"', accept="SDK v2 encodes a list categorical twice"),
    _case(PPO_PREFIX + "model_config.fcnet_hiddens", json.dumps(json.dumps([32])), accept="the same, as JSON"),
    _case(PPO_PREFIX + "lr", "1e-3", accept="the tuner's bare string"),
    _case(PPO_PREFIX + "lr", [[0, 1e-3], [100000, 1e-4]], accept="RLlib's schedule form"),
    _case(PPO_PREFIX + "lr", '"[[0, 0.001], [1000, 0.0001]]"', accept="a schedule, encoded twice"),
    _case(PPO_PREFIX + "num_epochs", "10.0", accept="a whole float is a whole number"),
    _case(PPO_PREFIX + "grad_clip", None, accept="null: no gradient clipping (RLlib's off)"),
    _case(PPO_PREFIX + "rollout_fragment_length", "auto", accept="RLlib's automatic fragment"),
    _case(PPO_PREFIX + "use_gae", "True", accept="Python's spelling of a boolean, as str(True) gives it"),
    _case(PPO_PREFIX + "num_sgd_iter", 5, accept="an old RLlib name, read with a notice"),
    _case(PPO_PREFIX + "monitor", "anything", accept="a seed-script setting with no effect, ignored with a notice"),
    _case("sagemaker_program", "train-reacher.py", accept="the platform's key"),
    _case("_tuning_objective_metric", {"x": 1}, accept="the platform's key"),
    _case(PPO_PREFIX + "model_config", {"fcnet_hiddens": [8], "free_log_std": True}, accept="a whole model dict"),
    _case(PPO_PREFIX + "num_env_runners", 2, accept="as many runners as CPUs"),
    _case(STOP_PREFIX + "episode_reward_mean", -1e300, accept="any finite target"),
]
CORPUS = (BAD_NUMBER_CASES + OUT_OF_RANGE + BAD_ENUMS + BAD_BOOLS + MODEL_CASES + SCHEDULE_CASES + UNSUPPORTED
          + KEY_CASES + JOB_KEY_CASES + STOP_CASES + CHOICE_CASES + CONFLICTS + RESOURCE_CASES + HUGE + ACCEPTED)


def _judge(case: Case) -> str:
    """'rejected' or 'accepted' (as the case expects), else why not; tracebacks and hangs are failures."""
    started = time.monotonic()
    verdict = _verdict(case)
    return f"hang: {time.monotonic() - started:.0f} s" if time.monotonic() - started > 5 else verdict


def _verdict(case: Case) -> str:
    try:
        job = parse_hyperparameters(case.raw, "reacher")
        check_resources(job, cpus=CPUS, gpus=GPUS)
    except UserError as error:
        message = str(error)
        if case.accept:
            return f"rejected, but should be accepted ({case.accept}): {message}"
        problems = [text for text, bad in [
            ("more than one line", "\n" in message), (f"over {MESSAGE_LIMIT} characters", len(message) > MESSAGE_LIMIT),
            ("names no key", not any(name in message for name in case.names)),
            ("a traceback", "Traceback" in message)] if bad]
        return f"bad message ({', '.join(problems)}): {message[:300]}" if problems else "rejected"
    except Exception as error:  # noqa: BLE001 - what the fuzz looks for
        return f"traceback: {type(error).__name__}: {str(error)[:200]}"
    return "accepted" if case.accept else "accepted, but should be rejected"


@pytest.fixture(scope="module")
def verdicts() -> list[tuple[Case, str]]:
    return [(case, _judge(case)) for case in CORPUS]


def test_the_corpus_is_large_and_covers_every_class():
    assert len(CORPUS) >= 400
    for group in (BAD_NUMBER_CASES, OUT_OF_RANGE, BAD_ENUMS, BAD_BOOLS, MODEL_CASES, SCHEDULE_CASES, UNSUPPORTED,
                  KEY_CASES, JOB_KEY_CASES, STOP_CASES, CHOICE_CASES, CONFLICTS, RESOURCE_CASES, HUGE, ACCEPTED):
        assert group


def test_every_malformed_input_is_one_sentence_naming_its_key(verdicts):
    wrong = [(case.raw if len(repr(case.raw)) < 200 else repr(case.raw)[:200], verdict)
             for case, verdict in verdicts if verdict not in ("rejected", "accepted")]
    assert wrong == []


def test_corpus_counts(verdicts, capsys):
    kinds = [verdict.split(":")[0].split(",")[0] for _, verdict in verdicts]
    counts = {kind: kinds.count(kind) for kind in ("rejected", "accepted", "traceback", "hang")}
    with capsys.disabled():
        print(f"\nfuzz corpus: tried {len(verdicts)}, " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    assert counts["traceback"] == counts["hang"] == 0


def test_unusable_files_are_one_sentence_naming_the_file(tmp_path):
    paths = contract.JobPaths(tmp_path)
    paths.config_dir.mkdir(parents=True)
    contents = [b"\xff\xfe{\x00}\x00", '{"rl.training.config.lr": "0.1"}'.encode("utf-16"), b"\x80abc",
                b"[" * 100_000, b"{" + b'"a":' * 50_000 + b"1" + b"}" * 50_000, b'{"a": ' + b"1" * 5000 + b"}",
                b"", b"null", b"[]", b'"x"', b"{,}", b'{"a": NaN}x']
    for content in contents:
        paths.hyperparameters_file.write_bytes(content)
        with pytest.raises(UserError) as error:
            raw = contract.read_hyperparameters(paths)
            parse_hyperparameters(raw, "reacher")
        assert "\n" not in str(error.value) and len(str(error.value)) <= MESSAGE_LIMIT
        assert str(paths.hyperparameters_file) in str(error.value) or "a" in str(error.value)


# --- generated inputs ---------------------------------------------------------------------------

STOPS = ("time_total_s", "timesteps_total", "training_iteration", "episode_reward_mean")
KNOWN_KEYS = [
    *(PPO_PREFIX + name for name in PPO_FIELDS), *(PPO_PREFIX + f"model_config.{name}" for name in MODEL_FIELDS),
    *(STOP_PREFIX + name for name in STOPS), *_JOB_KEYS, *(PPO_PREFIX + name for name in LEGACY_NAMES),
    *(PPO_PREFIX + name for name in JOB_OWNED),
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)


def _clean_or_accepted(raw: dict[str, Any]) -> None:
    try:
        job = parse_hyperparameters(raw, "reacher")
        check_resources(job, cpus=CPUS, gpus=GPUS)
    except UserError as error:
        message = str(error)
        assert "\n" not in message and len(message) <= MESSAGE_LIMIT
        # A resource sentence (check_resources) names the keys it adds up by their new names, not an old alias.
        resources = "CPUs" in message or "GPUs" in message
        assert any(key[:40] in message or key.rpartition(".")[2] in message for key in raw) or resources


@settings(max_examples=300)
@given(st.sampled_from(KNOWN_KEYS), json_values)
def test_any_json_value_for_a_known_key_is_accepted_or_one_sentence(key, value):
    _clean_or_accepted({key: value})


@settings(max_examples=200)
@given(st.sampled_from(KNOWN_KEYS), json_values)
def test_any_value_encoded_as_sagemaker_does_is_accepted_or_one_sentence(key, value):
    _clean_or_accepted({key: json.dumps(value)})


@settings(max_examples=200)
@given(st.text(max_size=60), st.text(max_size=30))
def test_any_key_and_string_is_accepted_or_one_sentence(key, value):
    try:
        parse_hyperparameters({key: value}, "reacher")
    except UserError as error:
        assert "\n" not in str(error) and len(str(error)) <= MESSAGE_LIMIT


@settings(max_examples=100)
@given(st.dictionaries(st.sampled_from(KNOWN_KEYS), json_values, max_size=6))
def test_any_set_of_known_keys_is_accepted_or_one_sentence(raw):
    _clean_or_accepted(raw)


# --- a sample through the real entrypoint -------------------------------------------------------

ENTRYPOINT_SAMPLE = [
    (b'{"rl.training.config.lr": "' + b"1" * 400 + b'"}', "rl.training.config.lr"),
    (json.dumps({"rl.training.config.lr": "9" * 5000}).encode(), "rl.training.config.lr"),
    (json.dumps({"rl.training.config.model_config.fcnet_hiddens": "[" * 100_000}).encode(), "fcnet_hiddens"),
    (b"\xff\xfe\x00garbage", "hyperparameters.json"),
    (json.dumps({"rl.training.config.algo_class": '"DQN"'}).encode(), "algo_class"),
    (json.dumps({"rl.training.config.evaluation_config": '"abc"'}).encode(), "evaluation_config"),
    (json.dumps({"rl.training.config.model_config.fcnet_hiddens": "[64, -1]"}).encode(), "fcnet_hiddens"),
    (json.dumps({"rl.training.config.batch_mode": '"garbage"'}).encode(), "batch_mode"),
    (json.dumps({"rl.training.config.rollout_fragment_length": "0"}).encode(), "rollout_fragment_length"),
    (json.dumps({"rl.training.config.num_env_runners": "8"}).encode(), "num_env_runners"),
    (json.dumps({"rl.training.config.num_cpus_per_env_runner": "100"}).encode(), "num_cpus_per_env_runner"),
    (json.dumps({"rl.training.config.num_sgd_iter": "5", "rl.training.config.num_epochs": "10"}).encode(),
     "num_sgd_iter"),
    (json.dumps({"rl.training.config.lr.": "0.1"}).encode(), "rl.training.config.lr."),
    (json.dumps({"rl.training.seed": "4294967296"}).encode(), "rl.training.seed"),
    (json.dumps({"rl.training.config.lr": "3" * 50_000_000}).encode(), "rl.training.config.lr"),
]
ENTRYPOINT_TIMEOUT_S = 60  # parsing fails in seconds; a job that got as far as Ray would still run here


def _run_entrypoint(base: Path, content: bytes) -> tuple[int | None, str]:
    """(exit code, stderr) of the reacher entrypoint on `content`; None if it ran over the timeout (killed)."""
    config = base / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_bytes(content)
    process = subprocess.Popen([sys.executable, str(REPO / "entrypoints" / "train-reacher.py")],
                               env=job_env(base, base, SM_NUM_CPUS=str(CPUS)), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, cwd=base, start_new_session=True)
    try:
        _, stderr = process.communicate(timeout=ENTRYPOINT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # with any Ray processes it started
        process.communicate()
        return None, ""
    return process.returncode, stderr


def test_a_sample_through_the_real_entrypoint_fails_fast_with_one_line_and_no_traceback(tmp_path):
    bases = [tmp_path / f"job-{index}" for index in range(len(ENTRYPOINT_SAMPLE))]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(_run_entrypoint, bases, [content for content, _ in ENTRYPOINT_SAMPLE]))
    for base, (content, name), (returncode, stderr) in zip(bases, ENTRYPOINT_SAMPLE, results, strict=True):
        assert returncode is not None, f"hang: {content[:80]!r} ran over {ENTRYPOINT_TIMEOUT_S} s"
        assert returncode == 2, (content[:80], returncode, stderr[-2000:])
        first = (base / "output" / "failure").read_text().splitlines()[0]
        assert name in first and len(first) <= MESSAGE_LIMIT, first[:2000]
        assert "Traceback" not in (base / "output" / "failure").read_text()
        assert "Traceback" not in stderr
        assert not (base / "model" / "checkpoint").exists()  # nothing trained
