"""Bad inputs fail under the job contract: output/failure with the reason first, non-zero exit."""

import json
import math
import subprocess
import sys

import pytest

from sagemaker_rl.contract import (
    JobPaths,
    cpu_limit,
    decode_value,
    encode_hyperparameters,
    num_cpus,
    read_resource_config,
    run_job,
    write_inputs,
)
from sagemaker_rl.errors import UserError
from tests.conftest import job_env, run_entrypoint, write_hyperparameters


def assert_failed_with(result, base, reason):
    assert result.returncode != 0
    first_line = (base / "output" / "failure").read_text().splitlines()[0]
    assert reason in first_line
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert reason in result.stderr  # the console says it too, once


@pytest.mark.parametrize("hyperparameters, reason", [
    ({"rl.training.config.kl_coef": 0.5},
     "unknown PPO setting 'rl.training.config.kl_coef' (did you mean 'kl_coeff'?)"),
    ({"rl.training.config.num_epochs": "many"},
     "rl.training.config.num_epochs must be a whole number >= 1 and <= 10000, got 'many'"),
    ({"rl.env.simulator": "bullet"}, "unknown simulator 'bullet'"),
])
def test_bad_hyperparameters_fail_before_training(tmp_path, home, hyperparameters, reason):
    write_hyperparameters(tmp_path, hyperparameters)
    result = run_entrypoint("reacher", tmp_path, home, timeout=120)
    assert_failed_with(result, tmp_path, reason)
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())


def test_malformed_json_fails_with_the_file_named(tmp_path, home):
    config = tmp_path / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text('{"rl.training.config.lr": ')
    result = run_entrypoint("hopper", tmp_path, home, timeout=120)
    assert_failed_with(result, tmp_path, "hyperparameters.json is not valid JSON")


def test_missing_config_file_says_where_it_looked(tmp_path, home):
    result = run_entrypoint("humanoid", tmp_path, home, timeout=120)
    expected = f"hyperparameter file {tmp_path}/input/config/hyperparameters.json does not exist"
    assert_failed_with(result, tmp_path, expected)


def test_unknown_problem_fails_under_the_contract(tmp_path, home):
    write_hyperparameters(tmp_path, {})
    result = subprocess.run([sys.executable, "-m", "sagemaker_rl.job", "--problem", "walker"],
                            env=job_env(tmp_path, home), capture_output=True, text=True, timeout=120)
    assert_failed_with(result, tmp_path, "unknown problem 'walker': choose one of reacher, hopper, humanoid")


def test_an_internal_error_keeps_the_traceback_in_the_failure_file_after_the_reason(tmp_path):
    def broken(paths):
        raise RuntimeError("simulator crashed")

    assert run_job(JobPaths(tmp_path), broken) == 1
    text = (tmp_path / "output" / "failure").read_text()
    assert text.splitlines()[0] == "the job failed: RuntimeError: simulator crashed"
    assert "Traceback" in text


def test_a_rerun_clears_the_previous_failure(tmp_path):
    def user_mistake(paths):
        raise UserError("bad value")

    assert run_job(JobPaths(tmp_path), user_mistake) == 2
    assert run_job(JobPaths(tmp_path), lambda paths: None) == 0
    assert not (tmp_path / "output" / "failure").exists() and (tmp_path / "output" / "success").exists()


def test_resource_config_defaults_to_one_host_and_reads_sagemakers_file(tmp_path):
    paths = JobPaths(tmp_path)
    assert read_resource_config(paths)["hosts"] == ["algo-1"]
    paths.config_dir.mkdir(parents=True)
    paths.resource_config_file.write_text(json.dumps({"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]}))
    assert read_resource_config(paths)["current_host"] == "algo-2"


def test_decode_value_prefers_json_and_falls_back_to_the_raw_string():
    assert decode_value('"a"') == "a" and decode_value("0.5") == 0.5 and decode_value(".5") == ".5"
    assert decode_value("[1, 2]") == [1, 2] and decode_value(3) == 3 and math.isnan(float(decode_value("NaN")))


def test_decode_value_undoes_encode_hyperparameters():
    values = {"a": "truncate_episodes", "b": 0.75, "c": [[0, 1e-4]], "d": {"x": True}, "e": None}
    assert {key: decode_value(text) for key, text in encode_hyperparameters(values).items()} == values


@pytest.mark.parametrize(("files", "expected"), [
    ({"cpu.max": "max 100000\n"}, None),  # cgroup v2, no limit
    ({"cpu.max": "150000 100000\n"}, 2),  # --cpus 1.5: rounded up
    ({"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1),  # cgroup v1, --cpus 1
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({}, None),  # no cgroup files (not Linux)
])
def test_a_containers_cpu_limit_is_read_from_its_cgroup(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cpu_limit(tmp_path) == expected


def test_num_cpus_is_at_most_the_containers_cpu_limit(tmp_path):
    """sagemaker-training sets SM_NUM_CPUS to the machine's count; `--cpus 1` is what the job may use."""
    (tmp_path / "cpu.max").write_text("100000 100000\n")
    assert num_cpus({"SM_NUM_CPUS": "8"}, cgroup=tmp_path) == 1
    assert num_cpus({"SM_NUM_CPUS": "8"}, cgroup=tmp_path / "none") == 8


def test_write_inputs_names_the_current_host_of_a_multi_host_job(tmp_path):
    paths = JobPaths(tmp_path)
    write_inputs(paths, {"rl.training.seed": 1}, hosts=["algo-1", "algo-2"], current_host="algo-2")
    assert read_resource_config(paths) == {"current_host": "algo-2", "hosts": ["algo-1", "algo-2"],
                                           "network_interface_name": "eth0"}
