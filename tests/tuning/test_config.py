"""Tuning config: defaults, tuning files, flags-over-file order and the up-front hyperparameter check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sagemaker_rl.errors import UserError
from sagemaker_rl.tuning import (
    TuningConfig,
    TuningError,
    check_hyperparameters,
    config_from_mapping,
    load_config,
)
from sagemaker_rl.tuning.config import (
    DEFAULT_PERTURBATION_INTERVAL,
    default_pbt_space,
    paused_at_once,
    reevaluation_jobs,
    unread_evaluation,
)
from sagemaker_rl.tuning.strategies import EarlyStopping, Strategy

REPO = Path(__file__).resolve().parents[2]


def test_default_run_is_the_measured_study_in_a_15_minute_budget():
    config = TuningConfig()
    assert config.problem == "reacher"
    assert config.budget == 20 and config.max_parallel_jobs == 2
    assert (config.reevaluate_top, config.reevaluation_seeds) == (1, (3, 3))
    assert reevaluation_jobs(config.reevaluate_top, 3) == 6
    assert config.strategy is Strategy.BAYESIAN and config.early_stopping is EarlyStopping.OFF
    assert config.space.names == ["rl.training.config.lr", "rl.training.initial_log_std", "rl.training.config.gamma"]
    assert config.space.static == {"rl.training.stop.time_total_s": 60}
    assert config.space == load_config(REPO / "bench/studies/focused-60s.yaml").space  # the study measured


@pytest.mark.parametrize(("cores", "parallel", "expected"), [(2, 2, 1), (2, 1, 2), (1, 2, 1), (8, 3, 2)])
def test_parallel_jobs_split_the_cores(cores, parallel, expected):
    assert TuningConfig(num_cpus=cores, max_parallel_jobs=parallel).cpus_per_job == expected


def test_tuning_file_then_flags(tmp_path):
    file = tmp_path / "tune.yaml"
    file.write_text(
        "max_jobs: 4\nstrategy: Random\nearly_stopping: Off\n"
        "objective: {metric: episode_reward_mean, type: Maximize}\n"
        "parameters:\n  rl.training.config.lr: {type: Continuous, min_value: 1.0e-5, max_value: 1.0e-3}\n"
        "static:\n  rl.training.stop.training_iteration: 3\n"
    )
    config = load_config(file, {"max_jobs": 6, "static": {"rl.training.stop.time_total_s": 60}})
    assert config.max_jobs == 6 and config.strategy is Strategy.RANDOM
    assert config.early_stopping is EarlyStopping.OFF  # YAML reads Off as false
    assert config.space.names == ["rl.training.config.lr"]
    assert config.space.static == {
        "rl.training.stop.time_total_s": 60,
        "rl.training.stop.training_iteration": 3,
    }


def test_a_static_value_replaces_a_default_range():
    config = config_from_mapping({"static": {"rl.training.config.lr": 0.001}})
    assert config.space.names == ["rl.training.initial_log_std", "rl.training.config.gamma"]
    assert config.space.static["rl.training.config.lr"] == 0.001


def test_pbt_gets_its_own_defaults_less_what_static_values_fix():
    fixed = config_from_mapping({"strategy": "PBT", "static": {"rl.training.config.lr": 0.001}})
    assert fixed.space.names == default_pbt_space().names[1:]  # before, the search's initial_log_std was left in
    assert fixed.space.static == {"rl.training.config.lr": 0.001}
    given = config_from_mapping({"strategy": "PBT", "parameters": {
        "rl.training.config.gamma": {"type": "Continuous", "min_value": 0.9, "max_value": 0.99}}})
    assert given.space.names == ["rl.training.config.gamma"]  # a given space is kept


def test_sagemaker_parameter_ranges_are_accepted_in_a_file():
    config = config_from_mapping(
        {
            "ParameterRanges": {
                "IntegerParameterRanges": [
                    {
                        "Name": "rl.training.config.num_epochs",
                        "MinValue": "3",
                        "MaxValue": "10",
                        "ScalingType": "Linear",
                    }
                ]
            },
            "StaticHyperParameters": {"rl.training.stop.time_total_s": "30"},
        }
    )
    assert config.space.names == ["rl.training.config.num_epochs"]
    assert config.space.static["rl.training.stop.time_total_s"] == 30


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"max_job": 3}, "did you mean 'max_jobs'"),
        ({"max_jobs": 0}, "max_jobs must be a whole number >= 1"),
        ({"strategy": "Bayes"}, "did you mean 'Bayesian'"),
        ({"problem": "reacer"}, "did you mean 'reacher'"),
        ({"objective": {"metric": "reward"}}, "is not a reward line"),
        ({"strategy": "Grid"}, "Categorical parameters only"),
        ({"strategy": "Hyperband", "early_stopping": "Auto"}, "early_stopping must be Off"),
        ({"train_budget": "5m"}, "ambiguous: write 5min for minutes or 5M for million env steps"),
        ({"train_budget": "5min", "strategy": "PBT"}, "give train_budget in env steps"),
        ({"train_budget": "1M", "strategy": "PBT", "perturbation_interval": 20_000},
         r"train_budget sets strategy PBT's perturbation_interval \(train_budget / generations: 100,000\)"),
        ({"train_budget": "1M", "reevaluate_top": 0}, "the budget the re-evaluation trains at: set reevaluate_top"),
        ({"objective": {"metric": "evaluation_reward_mean"}, "static": {"rl.training.evaluation_episodes": 0}},
         "objective_metric evaluation_reward_mean is printed by jobs that evaluate, but the static "
         "rl.training.evaluation_episodes is 0: drop it or set it to 1 or more"),
        # 4 re-evaluation jobs (the best and the default on 2 seeds), 2 at a time: 2 rounds of 600 + 20 s
        ({"train_budget": "10min", "reevaluate_seeds": 2, "max_runtime_s": 1239},
         r"train_budget 10min does not fit in max_runtime_s 1239: the re-evaluation alone \(4 jobs, 2 at a time\) "
         "takes ~1,240 s; lower train_budget or reevaluate_seeds, or raise max_runtime_s"),
    ],
)
def test_bad_settings_are_named(data, expected):
    with pytest.raises(UserError, match=expected):  # TuningError, or the problem table's own UserError
        config_from_mapping(data)


def test_a_run_ranks_on_evaluations_when_its_jobs_make_them():
    given = config_from_mapping({"objective": {"metric": "evaluation_reward_mean"},
                                 "static": {"rl.training.evaluation_interval": "25000"}})
    assert given.objective_metric == "evaluation_reward_mean"
    # a search of whole trials ranks on the evaluation every job makes at its end
    bayesian = config_from_mapping({"objective": {"metric": "evaluation_reward_mean"}, "strategy": "Bayesian"})
    assert "rl.training.evaluation_interval" not in bayesian.space.static
    # ASHA's jobs evaluate at its first rung's env steps (a ninth of the budget): every rung is a multiple of it
    asha = config_from_mapping({"train_budget": "900k", "objective": {"metric": "evaluation_reward_mean"}})
    assert asha.strategy is Strategy.ASHA and asha.space.static["rl.training.evaluation_interval"] == 100_000
    assert config_from_mapping(asha.to_dict()).space.static == asha.space.static


def test_a_training_budget_that_fits_is_kept_as_written():
    config = config_from_mapping({"train_budget": "10min", "reevaluate_seeds": 2, "max_runtime_s": 1240})
    assert config.training is not None and config.training.seconds == 600
    assert config_from_mapping({"train_budget": 1000000}).train_budget == "1000000"  # a number in a YAML file
    assert config_from_mapping({"train_budget": "2M", "max_runtime_s": 60}).training.env_steps == 2_000_000


def test_asha_trains_unstopped_trials_to_the_training_budget_with_three_rungs():
    config = config_from_mapping({"strategy": "ASHA", "train_budget": "90k"})
    assert config.space.static == {"rl.training.stop.timesteps_total": 90_000}  # the default 60-s stop replaced
    assert config.hyperband_min_env_steps == 10_000  # rungs at 10k, 30k and 90k env steps
    assert config.budget == 100  # most trials stop at the first rung: more of them than a search's 20
    assert config_from_mapping(config.to_dict()) == config  # its record reads back the same
    timed = config_from_mapping({"strategy": "ASHA", "train_budget": "5min"})
    assert timed.space.static == {"rl.training.stop.time_total_s": 300} and timed.hyperband_min_env_steps == 25_000
    assert config_from_mapping({"strategy": "ASHA"}).space.static == {"rl.training.stop.time_total_s": 60}


def test_pbt_members_train_the_training_budget_in_their_generations():
    config = config_from_mapping({"strategy": "PBT", "train_budget": "300k", "population": 4, "max_jobs": 32})
    assert (config.generations, config.generation_env_steps) == (8, 37_500)  # 8 x 37,500 = 300,000 env steps
    assert config.reevaluate_top == 0 and config.space.names == default_pbt_space().names
    assert config_from_mapping(config.to_dict()) == config  # its record (a resume) reads back the same
    more = config_from_mapping({"max_jobs": 80}, base=config)  # a later layer (flags over a file) splits it anew
    assert (more.generations, more.generation_env_steps) == (20, 15_000)
    assert config_from_mapping({"strategy": "PB2", "train_budget": "100k"}).generation_env_steps == 10_000
    assert config_from_mapping({"strategy": "PBT"}).generation_env_steps == DEFAULT_PERTURBATION_INTERVAL


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, Strategy.BAYESIAN),  # trials of the space's own length: the default study's strategy
        ({"train_budget": "1M"}, Strategy.ASHA),  # a budget to judge at: ASHA's rungs are fractions of it
        ({"train_budget": "1M", "early_stopping": "Auto"}, Strategy.BAYESIAN),  # Auto is a search's early stopping
        ({"train_budget": "1M", "strategy": "Random"}, Strategy.RANDOM),  # a named strategy is kept
    ],
)
def test_a_run_that_names_no_strategy_gets_the_default_for_its_training_budget(data, expected):
    assert config_from_mapping(data).strategy is expected


def test_a_default_strategy_is_chosen_again_when_a_later_layer_changes_what_it_depends_on(tmp_path):
    # a tuning file without a strategy, then flags: the training budget the flags add makes the default ASHA, and
    # early stopping Auto added after that makes it Bayesian again, with the space of a search at its own length
    file = tmp_path / "tuning.yaml"
    file.write_text("max_jobs: 6\n")
    asha = load_config(file, {"train_budget": "90k"})
    assert asha.strategy is Strategy.ASHA and asha.named_strategy is None
    assert asha.space.static == {"rl.training.stop.timesteps_total": 90_000}
    searched = config_from_mapping({"early_stopping": "Auto"}, base=asha)
    assert searched.strategy is Strategy.BAYESIAN and searched.space.static == {"rl.training.stop.time_total_s": 60}
    assert asha.resolved().strategy is Strategy.ASHA  # filling in the run's paths keeps the choice
    # a strategy named in the file stays through the flags' training budget
    file.write_text("strategy: Bayesian\n")
    assert load_config(file, {"train_budget": "90k"}).strategy is Strategy.BAYESIAN
    # and the recorded config names the strategy it ran with: a resume keeps it whatever the defaults become
    assert config_from_mapping(asha.to_dict()).named_strategy is Strategy.ASHA


def test_grid_budget_is_the_number_of_combinations():
    config = config_from_mapping(
        {
            "strategy": "Grid",
            "parameters": {"rl.training.config.num_epochs": {"type": "Categorical", "values": [3, 10, 30]}},
        }
    )
    assert config.budget == 3
    assert config.to_dict()["strategy"] == "Grid"


def test_a_run_config_round_trips_through_its_file_form(tmp_path):
    config = TuningConfig(max_jobs=5, sampler_seed=3, run_dir=tmp_path).resolved()
    again = config_from_mapping(config.to_dict())
    assert again == config


def test_typo_in_a_hyperparameter_key_is_found_before_any_trial():
    config = config_from_mapping({"static": {"rl.training.config.klcoeff": 0.3}})
    with pytest.raises(TuningError, match="kl_coeff"):
        check_hyperparameters(config)


def test_two_names_for_one_field_are_rejected():
    config = config_from_mapping({"parameters": {"rl.training.config.num_epochs": {"type": "Integer", "min_value": 3,
                                                                                  "max_value": 20}},
                                  "static": {"rl.training.config.num_sgd_iter": 5}})
    with pytest.raises(TuningError, match="set the same hyperparameter"):
        check_hyperparameters(config)


def test_out_of_range_end_of_a_range_is_found_before_any_trial():
    config = config_from_mapping(
        {"parameters": {"rl.training.config.gamma": {"type": "Continuous", "min_value": 0.9, "max_value": 1.5}}}
    )
    with pytest.raises(TuningError, match="gamma"):
        check_hyperparameters(config)
    check_hyperparameters(TuningConfig())  # the default space is valid


def test_checking_hyperparameters_loads_no_rllib_in_the_tuner_or_submitting_process():
    code = (
        "import sys\n"
        "from sagemaker_rl import sagemaker\n"
        "from sagemaker_rl.tuning import TuningConfig, check_hyperparameters\n"
        "check_hyperparameters(TuningConfig())\n"
        "sagemaker.training_hyperparameters('reacher', {'rl.training.config.lr': 3e-4})\n"
        "loaded = sorted(name for name in sys.modules if name == 'ray' or name.startswith(('ray.', 'torch')))\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_a_legacy_name_in_the_space_is_noticed_once(caplog):
    config = config_from_mapping({"static": {"rl.training.config.num_sgd_iter": 5},
                                  "parameters": {"rl.training.config.kl_coeff": {"type": "Continuous",
                                                                                 "min_value": 0.5, "max_value": 1.0}}})
    check_hyperparameters(config)
    notices = [record.getMessage() for record in caplog.records if "old RLlib name" in record.getMessage()]
    assert len(notices) == 1 and "num_sgd_iter" in notices[0]


@pytest.mark.parametrize(
    "path",
    sorted([*(REPO / "sagemaker_rl/tuning/spaces").glob("*.yaml"), *(REPO / "bench/studies").glob("*.yaml")]),
    ids=lambda path: f"{path.parent.name}/{path.name}",
)
def test_every_shipped_study_file_loads(path):
    config = load_config(path)
    assert config.space.parameters and "rl.training.stop.time_total_s" in config.space.static


def test_a_job_skips_the_evaluation_nothing_reads():
    skip = {"rl.training.evaluation_episodes": 0}
    trial = {"rl.training.stop.time_total_s": 60}
    budgeted = config_from_mapping({"train_budget": "300k", "strategy": "Bayesian"})
    assert unread_evaluation(budgeted, trial) == skip  # trained shorter than the budget: never the run's policy
    assert unread_evaluation(budgeted, {"rl.training.stop.timesteps_total": 300_000}) == {}
    assert unread_evaluation(config_from_mapping({"strategy": "Bayesian"}), trial) == {}  # the re-evaluation's stop
    assert unread_evaluation(config_from_mapping({"strategy": "Bayesian", "reevaluate_top": 0}), trial) == skip
    pbt = config_from_mapping({"strategy": "PBT", "population": 4, "max_jobs": 12})  # 3 generations
    assert [unread_evaluation(pbt, {}, generation=generation) for generation in range(3)] == [skip, skip, {}]
    for kept in ({"objective": {"metric": "evaluation_reward_mean"}},
                 {"static": {"rl.training.evaluation_interval": 5000}}):
        assert unread_evaluation(config_from_mapping({"strategy": "PBT", **kept}), {}, generation=0) == {}
        assert unread_evaluation(config_from_mapping({"train_budget": "300k", "strategy": "Bayesian", **kept}),
                                 trial) == {}


def test_an_asha_search_job_ends_at_once_when_paused_unless_the_user_set_its_grace():
    assert paused_at_once(config_from_mapping({"strategy": "ASHA"})) == {"rl.training.stop_grace_s": 0}
    assert paused_at_once(config_from_mapping({"strategy": "Bayesian"})) == {}
    assert paused_at_once(config_from_mapping({"strategy": "ASHA", "static": {"rl.training.stop_grace_s": 60}})) == {}
