import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sagemaker_rl.errors import UserError
from sagemaker_rl.job.hyperparameters import parse_hyperparameters, to_hyperparameters
from sagemaker_rl.job.problems import PRESETS, PROBLEMS, get_preset

finite_floats = st.floats(allow_nan=False, allow_infinity=False, min_value=1e-9, max_value=1e6)


def encodings(value):
    """Every way SageMaker may hand us `value`: native, JSON-encoded string, tuner's bare string."""
    return [value, json.dumps(value), str(value)]


@given(finite_floats)
def test_a_float_field_keeps_its_exact_value_in_every_encoding(value):
    for encoded in encodings(value):
        job = parse_hyperparameters({"rl.training.config.kl_coeff": encoded}, "reacher")
        assert isinstance(job.ppo["kl_coeff"], float)
        assert job.ppo["kl_coeff"] == value  # never truncated (the seed's launcher made 0.75 into 0)


@given(st.integers(min_value=1, max_value=10_000))
def test_an_int_field_takes_ints_in_every_encoding_and_whole_floats(value):
    for encoded in [*encodings(value), f"{value}.0", float(value)]:
        job = parse_hyperparameters({"rl.training.config.num_epochs": encoded}, "reacher")
        assert job.ppo["num_epochs"] == value and isinstance(job.ppo["num_epochs"], int)


@given(st.floats(min_value=1.01, max_value=1e4).filter(lambda v: not float(v).is_integer()))
def test_an_int_field_rejects_fractions(value):
    with pytest.raises(UserError, match="num_epochs must be a whole number"):
        parse_hyperparameters({"rl.training.config.num_epochs": str(value)}, "reacher")


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=20))
def test_unknown_ppo_fields_are_rejected_before_training(name):
    from sagemaker_rl.job.hyperparameters import IGNORED_LEGACY, JOB_OWNED, _ppo_defaults
    from sagemaker_rl.job.keys import LEGACY_NAMES

    known = set(_ppo_defaults()) | set(LEGACY_NAMES) | set(IGNORED_LEGACY) | set(JOB_OWNED) | {"observation_filter"}
    if name in known:
        return
    with pytest.raises(UserError, match="unknown PPO setting"):
        parse_hyperparameters({f"rl.training.config.{name}": 1}, "reacher")


@given(st.booleans())
def test_booleans_in_json_and_python_spelling(value):
    for encoded in [value, json.dumps(value), str(value)]:
        job = parse_hyperparameters({"rl.training.config.use_gae": encoded}, "reacher")
        assert job.ppo["use_gae"] is value


def test_categorical_json_strings_lists_and_nested_dicts():
    job = parse_hyperparameters({
        "rl.training.config.batch_mode": '"truncate_episodes"',
        "rl.training.config.model_config.fcnet_hiddens": "[32, 32]",
        "rl.training.config.model_config.free_log_std": "false",
    }, "hopper")
    assert job.ppo["batch_mode"] == "truncate_episodes"
    assert job.ppo["model_config"]["fcnet_hiddens"] == [32, 32]
    assert job.ppo["model_config"]["free_log_std"] is False
    assert job.ppo["model_config"]["fcnet_activation"] == "tanh"  # the rest of the dict is kept


def test_a_whole_dict_merges_into_the_defaults():
    job = parse_hyperparameters({"rl.training.config.model_config": '{"fcnet_hiddens": [32]}'}, "reacher")
    assert job.ppo["model_config"] == {"fcnet_hiddens": [32], "fcnet_activation": "tanh", "free_log_std": True}


def test_legacy_names_are_mapped_with_a_notice(caplog):
    job = parse_hyperparameters({
        "rl.training.config.num_sgd_iter": "12", "rl.training.config.sgd_minibatch_size": "500",
        "rl.training.config.num_workers": "1", "rl.training.config.num_envs_per_worker": "8",
        "rl.training.config.train_batch_size": "5000", "rl.training.config.lambda": "0.95",
        "rl.training.config.model": '{"free_log_std": false}', "rl.training.config.monitor": "true",
    }, "reacher")
    assert (job.ppo["num_epochs"], job.ppo["minibatch_size"], job.ppo["num_env_runners"]) == (12, 500, 1)
    assert (job.ppo["num_envs_per_env_runner"], job.ppo["train_batch_size_per_learner"]) == (8, 5000)
    assert job.ppo["lambda_"] == 0.95 and job.ppo["model_config"]["free_log_std"] is False
    assert "monitor" not in job.ppo
    notices = [r.getMessage() for r in caplog.records]
    assert any("num_sgd_iter is an old RLlib name; read as rl.training.config.num_epochs" in n for n in notices)
    assert any("monitor is ignored" in n for n in notices)


def test_the_seed_preset_has_the_original_scripts_values():
    reacher = parse_hyperparameters({"rl.training.preset": "seed"}, "reacher")
    humanoid = parse_hyperparameters({"rl.training.preset": '"seed"'}, "humanoid")
    assert reacher.ppo["gamma"] == 0.995 and reacher.ppo["kl_coeff"] == 1.0 and reacher.ppo["lr"] == 1e-4
    assert reacher.ppo["num_epochs"] == 20 and reacher.ppo["minibatch_size"] == 1000
    assert reacher.ppo["train_batch_size_per_learner"] == 25_000
    assert reacher.ppo["batch_mode"] == "complete_episodes" and reacher.ppo["model_config"]["free_log_std"]
    assert reacher.ppo["observation_filter"] == "NoFilter" and reacher.initial_log_std is None
    assert (humanoid.ppo["num_epochs"], humanoid.ppo["minibatch_size"]) == (10, 32_768)
    assert humanoid.ppo["train_batch_size_per_learner"] == 320_000


def test_the_fast_preset_is_the_default_and_every_problem_has_both_presets():
    job = parse_hyperparameters({}, "reacher")
    assert job.preset == "fast" and job.ppo["observation_filter"] == "MeanStdFilter"
    assert job.ppo == parse_hyperparameters({"rl.training.preset": "fast"}, "reacher").ppo
    for problem in PROBLEMS:
        for simulator in PROBLEMS[problem].envs:
            for preset in (*PRESETS, "generic"):
                assert get_preset(problem, simulator, preset).note  # every row says where it comes from
                parse_hyperparameters({"rl.training.preset": preset, "rl.env.simulator": simulator}, problem)


def test_explicit_hyperparameters_override_the_preset_and_legacy_names_count_as_theirs():
    fast = parse_hyperparameters({}, "reacher")
    job = parse_hyperparameters({"rl.training.config.lr": "0.001", "rl.training.config.num_sgd_iter": "3",
                                 "rl.training.config.model_config.fcnet_hiddens": "[32]",
                                 "rl.training.initial_log_std": "-0.5"}, "reacher")
    assert (job.ppo["lr"], job.ppo["num_epochs"], job.initial_log_std) == (0.001, 3, -0.5)
    assert job.ppo["model_config"] == {**fast.ppo["model_config"], "fcnet_hiddens": [32]}
    unchanged = {k: v for k, v in job.ppo.items() if k not in ("lr", "num_epochs", "model_config")}
    assert unchanged == {k: v for k, v in fast.ppo.items() if k not in ("lr", "num_epochs", "model_config")}


def test_the_env_count_is_set_job_wide_or_per_runner_not_both():
    assert parse_hyperparameters({}, "reacher").num_envs == 16
    assert parse_hyperparameters({"rl.training.num_envs": "4"}, "reacher").num_envs == 4
    per_runner = parse_hyperparameters({"rl.training.config.num_envs_per_worker": "4"}, "reacher")
    assert (per_runner.num_envs, per_runner.ppo["num_envs_per_env_runner"]) == (None, 4)
    with pytest.raises(UserError, match="rl.training.num_envs .* and rl.training.config.num_envs_per_env_runner "
                                        ".* both set the env count: keep one of them"):
        parse_hyperparameters({"rl.training.num_envs": "4", "rl.training.config.num_envs_per_env_runner": "4"},
                              "reacher")
    for raw in ({}, {"rl.training.config.num_envs_per_env_runner": "4"}):
        job = parse_hyperparameters(raw, "reacher")
        assert parse_hyperparameters(to_hyperparameters(job), "reacher") == job


def test_a_presets_initial_log_std_gives_way_to_a_state_dependent_std():
    job = parse_hyperparameters({"rl.training.config.model_config.free_log_std": "false"}, "reacher")
    assert job.initial_log_std is None and job.ppo["model_config"]["free_log_std"] is False


def test_gsde_takes_the_initial_log_std_for_its_noise_scale_whatever_free_log_std_says():
    job = parse_hyperparameters({"rl.training.gsde_resample_steps": "4", "rl.training.initial_log_std": "-2",
                                 "rl.training.config.model_config.free_log_std": "false"}, "reacher")
    assert (job.gsde_resample_steps, job.initial_log_std) == (4, -2.0)
    assert parse_hyperparameters(to_hyperparameters(job), "reacher") == job
    assert parse_hyperparameters({}, "reacher").gsde_resample_steps is None  # RLlib's Gaussian by default
    # The fast preset's initial_log_std is a free std's: gSDE's noise scale keeps its own start instead.
    assert parse_hyperparameters({}, "reacher").initial_log_std is not None
    assert parse_hyperparameters({"rl.training.gsde_resample_steps": 4}, "reacher").initial_log_std is None


def test_the_preset_follows_the_simulator():
    job = parse_hyperparameters({"rl.env.simulator": "mujoco", "rl.training.preset": "seed"}, "hopper")
    assert job.simulator == "mujoco" and job.ppo["observation_filter"] == "NoFilter"


def test_stop_targets_come_from_the_problem_table():
    assert parse_hyperparameters({}, "reacher").stop.episode_reward_mean == 18.0
    assert parse_hyperparameters({}, "hopper").stop.episode_reward_mean == 2500.0
    assert parse_hyperparameters({}, "humanoid").stop.episode_reward_mean == 3500.0


def test_an_explicit_stop_criterion_replaces_the_default_target():
    job = parse_hyperparameters({"rl.training.stop.time_total_s": "600"}, "reacher")
    assert job.stop.time_total_s == 600.0 and job.stop.episode_reward_mean is None


def test_mujoco_has_its_own_stop_target():
    job = parse_hyperparameters({"rl.env.simulator": '"mujoco"'}, "reacher")
    assert job.simulator == "mujoco" and job.stop.episode_reward_mean == PROBLEMS["reacher"].envs["mujoco"].stop_reward


@pytest.mark.parametrize("raw, message", [
    ({"rl.training.config.kl_coef": 1}, "unknown PPO setting 'rl.training.config.kl_coef' (did you mean 'kl_coeff'?)"),
    ({"rl.training.stop.episode_reward_men": 1}, "did you mean 'episode_reward_mean'?"),
    ({"rl.training.chekpoint_freq": 1}, "did you mean 'rl.training.checkpoint_freq'?"),
    ({"rl.training.config.lr": "fast"},
     "rl.training.config.lr must be a number > 0 and <= 1 or a schedule [[timestep, value], ...] starting at "
     "timestep 0, got 'fast'"),
    ({"rl.training.config.gamma": 1.5}, "rl.training.config.gamma must be a number > 0 and <= 1, got 1.5"),
    ({"rl.training.config.lr": "nan"}, "must be a number"),
    ({"rl.training.config.minibatch_size": 30000},
     "rl.training.config.minibatch_size (30000) must be <= rl.training.config.train_batch_size_per_learner"),
    ({"rl.training.config.sgd_minibatch_size": 30000},  # the old name, as given
     "rl.training.config.sgd_minibatch_size (30000) must be <= rl.training.config.train_batch_size_per_learner"),
    ({"rl.env.simulator": "bullet"}, "unknown simulator 'bullet'"),
    ({"rl.training.config.env": "Hopper-v5"}, "cannot be set as a hyperparameter"),
    ({"rl.training.config.observation_filter": "MeanStd"},
     "must be one of NoFilter, MeanStdFilter, got 'MeanStd' (did you mean 'MeanStdFilter'?)"),
    ({"rl.training.preset": "fastest"},
     "rl.training.preset: unknown preset 'fastest': choose one of seed, fast, generic"),
    ({"rl.training.initial_log_std": "-9"}, "rl.training.initial_log_std must be a number >= -5 and <= 2, got -9"),
    ({"rl.training.config.model_config.free_log_std": "false", "rl.training.initial_log_std": -1},
     "rl.training.initial_log_std needs a free log std"),
    ({"rl.training.gsde_resample_steps": 0}, "rl.training.gsde_resample_steps must be a whole number >= 1"),
    ({"rl.training.gsde_resample_steps": 4, "rl.training.config.model_config.head_fcnet_hiddens": [32]},
     "the policy head must be linear: set rl.training.config.model_config.head_fcnet_hiddens=[]"),
    ({"rl.training.config.model_config.fcnet_hidens": [8]}, "did you mean 'fcnet_hiddens'?"),
    ({"rl.training.config.num_epochs": True}, "must be a whole number"),
    ({"rl.training.run": "DQN"}, "trains PPO only"),
    ({"rl.training.evaluation_interval": 4000, "rl.training.evaluation_episodes": 0},
     "rl.training.evaluation_interval evaluates on rl.training.evaluation_episodes episodes, which is 0: set it to 1 "
     "or more, or drop rl.training.evaluation_interval"),
])
def test_bad_hyperparameters_fail_with_one_clear_sentence(raw, message):
    with pytest.raises(UserError) as error:
        parse_hyperparameters(raw, "reacher")
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_platform_keys_are_not_errors():
    parse_hyperparameters({"sagemaker_program": '"train-reacher.py"', "_tuning_objective_metric": "x"}, "reacher")


def test_unknown_problem_names_the_choices():
    with pytest.raises(UserError, match="unknown problem 'hoper'.*did you mean 'hopper'"):
        parse_hyperparameters({}, "hoper")


def test_to_hyperparameters_round_trips():
    job = parse_hyperparameters({"rl.training.config.kl_coeff": "0.7523", "rl.training.seed": "3",
                                 "rl.training.stop.timesteps_total": "100000"}, "hopper")
    again = parse_hyperparameters({k: json.dumps(v) for k, v in to_hyperparameters(job).items()}, "hopper")
    assert again == job



def test_a_list_encoded_twice_as_sagemaker_sdk_v2_and_the_tuner_send_it_is_read_as_the_list():
    for encoded in ('"[32, 32]"', json.dumps(json.dumps([32, 32]))):
        job = parse_hyperparameters({"rl.training.config.model_config.fcnet_hiddens": encoded}, "reacher")
        assert job.ppo["model_config"]["fcnet_hiddens"] == [32, 32]
