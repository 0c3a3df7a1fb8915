"""The `rl.*` names: spelled once in keys.py, and every table of the parser and the problem table built from them."""

from __future__ import annotations

import dataclasses

from sagemaker_rl.job import keys
from sagemaker_rl.job.hyperparameters import _JOB_KEYS, JobConfig, parse_hyperparameters, to_hyperparameters
from sagemaker_rl.job.problems import PROBLEMS


def test_the_prefixes_and_keys_are_the_names_users_write():
    assert (keys.PPO_PREFIX, keys.STOP_PREFIX) == ("rl.training.config.", "rl.training.stop.")
    assert (keys.SEED_KEY, keys.SIMULATOR_KEY, keys.PRESET_KEY) == ("rl.training.seed", "rl.env.simulator",
                                                                   "rl.training.preset")
    assert keys.ppo_key("lr") == "rl.training.config.lr"
    assert keys.training_key("num_envs") == keys.NUM_ENVS_KEY == "rl.training.num_envs"
    assert keys.training_attribute(keys.GSDE_KEY) == "gsde_resample_steps"


def test_an_old_rllib_name_is_read_as_its_new_name_and_other_keys_stay():
    assert keys.canonical_key("rl.training.config.num_sgd_iter") == "rl.training.config.num_epochs"
    assert keys.canonical_key("rl.training.config.vf_share_layers") == "rl.training.config.model_config.vf_share_layers"
    assert keys.canonical_key("rl.training.seed") == "rl.training.seed"


def test_every_job_setting_key_sets_the_config_attribute_of_its_name():
    attributes = {field.name for field in dataclasses.fields(JobConfig)}
    assert {keys.training_attribute(key) for key in _JOB_KEYS} <= attributes
    job = parse_hyperparameters({keys.SEED_KEY: 3, keys.CHECKPOINT_FREQ_KEY: 2}, "reacher")
    assert (job.seed, job.checkpoint_freq) == (3, 2)
    assert to_hyperparameters(job)[keys.SEED_KEY] == 3


def test_a_presets_rows_are_written_without_prefixes_and_read_as_flat_rl_keys():
    fast = PROBLEMS["reacher"].presets["fast"]["roboschool"]
    assert not any(name.startswith("rl.") for name in [*fast.ppo, *fast.training])
    flat = fast.hyperparameters
    assert flat["rl.training.num_envs"] == 16 and flat["rl.training.config.observation_filter"] == "MeanStdFilter"
    assert set(flat) == {keys.training_key(name) for name in fast.training} | {keys.ppo_key(name) for name in fast.ppo}
    seed = PROBLEMS["humanoid"].presets["seed"]["mujoco"]
    assert seed.hyperparameters == {"rl.training.config.num_epochs": 10, "rl.training.config.minibatch_size": 32_768,
                                    "rl.training.config.train_batch_size_per_learner": 320_000}
    assert "num_epochs 10, minibatch_size 32768" in seed.note
