"""The hyperparameter reference: the job's own field tables as Markdown, for the docs' Hyperparameters page.

Every row comes from the tables the parser checks values against (`hyperparameters.PPO_FIELDS`,
`MODEL_FIELDS`, the stop criteria and the job's own settings), each meaning from `keys.MEANINGS` or, for
RLlib's fields, `RLLIB_MEANINGS` here. A key the job takes without a meaning is an error, so the page
cannot fall behind the parser. Importing this module loads neither RLlib nor torch.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator
from typing import Any

from sagemaker_rl.job import hyperparameters as _hp
from sagemaker_rl.job.keys import (
    ENV_ID_KEY,
    ENV_KWARGS_KEY,
    ENV_PACKAGE_KEY,
    LEGACY_NAMES,
    MAX_EPISODE_STEPS_KEY,
    MEANINGS,
    PPO_PREFIX,
    PRESET_KEY,
    RUN_KEY,
    SIMULATOR_KEY,
    STOP_PREFIX,
    ppo_key,
    training_attribute,
)
from sagemaker_rl.job.problems import DEFAULT_SIMULATOR, GENERIC_PRESET, PRESETS, SHARED_PPO, SIMULATORS
from sagemaker_rl.job.values import FieldSpec

# What each PPOConfig field (RLlib 2.60) and model_config key the job takes does, in one line.
RLLIB_MEANINGS: dict[str, str] = {
    "lr": "learning rate",
    "gamma": "discount factor",
    "lambda_": "GAE's lambda",
    "kl_coeff": "initial weight of the KL penalty (adapted toward `kl_target`)",
    "kl_target": "the KL divergence per update the penalty's weight is adapted toward",
    "use_kl_loss": "add the KL penalty to the loss (false: the clipped objective alone)",
    "clip_param": "clip range of the probability ratio",
    "vf_clip_param": "clip range of the value function's loss",
    "vf_loss_coeff": "weight of the value function's loss",
    "entropy_coeff": "weight of the entropy bonus",
    "grad_clip": "gradients are clipped to this (null: not clipped)",
    "grad_clip_by": "what `grad_clip` bounds: the global norm, each tensor's norm, or each value",
    "num_epochs": "passes over each train batch",
    "minibatch_size": "env steps per gradient update",
    "train_batch_size_per_learner": "env steps per training iteration (per learner)",
    "shuffle_batch_per_epoch": "shuffle the train batch before each epoch",
    "use_gae": "generalized advantage estimation (false: discounted returns)",
    "use_critic": "learn a value function as the baseline (GAE needs it)",
    "batch_mode": "`truncate_episodes`: fixed-length fragments; `complete_episodes`: whole episodes only",
    "rollout_fragment_length": "env steps per env copy in one sample call (`auto`: from the batch size)",
    "num_env_runners": "env runner actors that sample in parallel (0: sampling in the driver); the job sizes it "
                       "from its CPUs unless given",
    "num_envs_per_env_runner": "vector env copies per env runner (see `rl.training.num_envs`)",
    "num_cpus_per_env_runner": "CPUs each env runner asks Ray for",
    "num_gpus_per_env_runner": "GPUs each env runner asks Ray for",
    "num_learners": "learner actors (0: the learner runs in the driver)",
    "num_cpus_per_learner": "CPUs each learner asks Ray for (`auto`: RLlib's choice)",
    "num_gpus_per_learner": "GPUs per learner (1: learn on a GPU, with the GPU image)",
    "gym_env_vectorize_mode": "how an env runner steps its copies: `sync` in its process, `async` in subprocesses",
    "sample_timeout_s": "seconds one sample call may take before RLlib gives up on it",
    "normalize_actions": "map the policy's actions from [-1, 1] to the env's bounds (the job's connector, on all "
                         "env copies at once)",
    "clip_actions": "clip actions to the env's bounds (the job's connector)",
    "explore": "sample actions from the policy's distribution while training (false: its mean)",
    "min_time_s_per_iteration": "an iteration lasts at least this many seconds (null: no minimum)",
    "min_sample_timesteps_per_iteration": "an iteration samples at least this many env steps",
    "min_train_timesteps_per_iteration": "an iteration trains on at least this many env steps",
    "torch_skip_nan_gradients": "skip an update whose gradients hold NaN or infinity",
    "observation_filter": "`MeanStdFilter`: running mean/std normalization of observations, kept in every "
                          "checkpoint and folded into `policy.onnx`; `NoFilter`: raw observations",
    "model_config": "the network: a JSON object of the `model_config.*` keys, merged into the current one",
    "model_config.fcnet_hiddens": "sizes of the hidden layers of the policy and value networks",
    "model_config.fcnet_activation": "their activation",
    "model_config.fcnet_use_layernorm": "layer normalization after each hidden layer",
    "model_config.head_fcnet_hiddens": "hidden layers of the policy and value heads after the hidden layers "
                                       "(empty: linear heads; gSDE needs them linear)",
    "model_config.head_fcnet_activation": "the heads' activation",
    "model_config.head_fcnet_use_layernorm": "layer normalization in the heads",
    "model_config.free_log_std": "the action std is a learned parameter of its own (false: an output of the "
                                 "network)",
    "model_config.log_std_clip_param": "the log std is clipped to plus or minus this",
    "model_config.vf_share_layers": "the policy and the value function share their hidden layers",
}

_RLLIB = object()  # the default of a PPO field the job leaves to RLlib
_COLUMNS = ("key", "type", "allowed", "default", "meaning")
_ANY = "any"  # a key whose value the job takes as it comes (an env's constructor argument)
_TYPE_NAMES = {bool: "bool", int: "int", float: "float", str: "string", list: "list", dict: "object"}
# The keys the parser reads before the others, with what they take (they select the env and the preset).
_SELECTORS: dict[str, FieldSpec] = {
    PRESET_KEY: FieldSpec((str,), choices=(*PRESETS, GENERIC_PRESET)),
    RUN_KEY: FieldSpec((str,), choices=("PPO",)),
    SIMULATOR_KEY: FieldSpec((str,), choices=SIMULATORS),
    ENV_ID_KEY: _hp._ENV_ID,
    ENV_PACKAGE_KEY: FieldSpec((str,)),
    ENV_KWARGS_KEY: _hp._KWARGS,
    ENV_KWARGS_KEY + ".<name>": FieldSpec(()),
    MAX_EPISODE_STEPS_KEY: _hp._EPISODE_STEPS,
}
_SELECTOR_DEFAULTS = {
    PRESET_KEY: "`fast` (a problem), `generic` (an env)",
    RUN_KEY: "`PPO`",
    SIMULATOR_KEY: f"`{DEFAULT_SIMULATOR}`",
    MAX_EPISODE_STEPS_KEY: "the registered one",
}
_STOP_DEFAULTS = {
    "episode_reward_mean": "the problem's reward target; an env's registered threshold",
    "timesteps_total": f"{_hp.DEFAULT_ENV_TIMESTEPS:,} for an env without a problem",
}


@dataclasses.dataclass(frozen=True)
class _Row:
    key: str
    spec: FieldSpec
    default: str
    meaning: str


def hyperparameter_table() -> str:
    """Every key a job takes, one Markdown table row each (key, type, allowed values, default, meaning), in a
    table per kind of key under a `###` heading."""
    parts = []
    for title, rows in _groups():
        lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
        for row in rows:
            cells = (f"`{row.key}`", _type(row.spec), _allowed(row.spec), row.default, row.meaning)
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        parts.append(f"### {title}\n\n" + "\n".join(lines) + "\n")
    return "\n".join(parts)


def old_names_table() -> str:
    """The old RLlib (and the original scripts') PPO names the job reads as RLlib 2.60's, as a Markdown table."""
    lines = ["| old name | read as |", "|---|---|"]
    lines += [f"| `{PPO_PREFIX}{old}` | `{PPO_PREFIX}{new}` |" for old, new in LEGACY_NAMES.items()]
    return "\n".join(lines) + "\n"


def refused_table() -> str:
    """The PPOConfig fields a job refuses with a reason of its own, and old ones it ignores, as a Markdown table."""
    lines = ["| field | why |", "|---|---|"]
    for reasons, verdict in ((_hp.JOB_OWNED, "refused"), (_hp.REFUSED, "refused"), (_hp.IGNORED_LEGACY, "ignored")):
        lines += [f"| `{PPO_PREFIX}{name}` | {verdict}: {why} |" for name, why in reasons.items()]
    return "\n".join(lines) + "\n"


def _groups() -> list[tuple[str, list[_Row]]]:
    return [
        (f"PPO (`{PPO_PREFIX}*`)", list(_ppo_rows())),
        (f"The network (`{PPO_PREFIX}model_config.*`)", list(_model_rows())),
        (f"When the job stops (`{STOP_PREFIX}*`)", [
            _Row(STOP_PREFIX + name, spec, _STOP_DEFAULTS.get(name, ""), _meaning(STOP_PREFIX + name, MEANINGS))
            for name, spec in _hp._STOP_FIELDS.items()]),
        ("The job's own settings (`rl.training.*`) and the env (`rl.env.*`)", list(_job_rows())),
    ]


def _ppo_rows() -> Iterator[_Row]:
    for name, spec in _hp.PPO_FIELDS.items():
        yield _Row(ppo_key(name), spec, _shown(SHARED_PPO.get(name, _RLLIB), none="`null`"),
                   _meaning(name, RLLIB_MEANINGS))


def _model_rows() -> Iterator[_Row]:
    for name, spec in _hp.MODEL_FIELDS.items():
        yield _Row(ppo_key(f"model_config.{name}"), spec, _shown(SHARED_PPO["model_config"].get(name, _RLLIB)),
                   _meaning(f"model_config.{name}", RLLIB_MEANINGS))


def _job_rows() -> Iterator[_Row]:
    defaults = {field.name: field.default for field in dataclasses.fields(_hp.JobConfig)}
    for key, spec in _hp._JOB_KEYS.items():
        yield _Row(key, spec, _shown(defaults[training_attribute(key)]), _meaning(key, MEANINGS))
    for key, spec in _SELECTORS.items():
        yield _Row(key, spec, _SELECTOR_DEFAULTS.get(key, ""), _meaning(key, MEANINGS))


def _meaning(name: str, meanings: dict[str, str]) -> str:
    if name not in meanings:
        raise KeyError(f"{name} is a hyperparameter the job takes but has no meaning: add one to "
                       f"{'reference.RLLIB_MEANINGS' if meanings is RLLIB_MEANINGS else 'keys.MEANINGS'}")
    return meanings[name]


def _shown(value: Any, *, none: str = "") -> str:
    """A default as the table shows it (`none`: how a None default reads)."""
    if value is _RLLIB:
        return "RLlib's"
    if value is None:
        return none
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f"`{value}`"
    if isinstance(value, int | float):
        return _number(value)
    return f"`{json.dumps(value)}`"


def _type(spec: FieldSpec) -> str:
    if not spec.kinds:
        return _ANY
    names = [_TYPE_NAMES[kind] for kind in spec.kinds]
    if spec.item is not None:
        names = [f"list of {_type(spec.item)}" if name == "list" else name for name in names]
    if spec.schedule:
        names.append("schedule")
    if spec.nullable:
        names.append("null")
    return " or ".join(names)


def _allowed(spec: FieldSpec) -> str:
    parts = []
    if any(kind in (int, float) for kind in spec.kinds):
        parts.append(_bounds(spec))
    if spec.choices:
        parts.append(", ".join(f"`{choice}`" for choice in spec.choices))
    if spec.item is not None:
        items = f"{spec.min_items}–{spec.max_items} items"
        parts.append(items + (f", each {_bounds(spec.item)}" if _bounds(spec.item) else ""))
    return "; ".join(part for part in parts if part)


def _bounds(spec: FieldSpec) -> str:
    low = None if spec.low is None else f"{'≥' if spec.low_inclusive else '>'} {_number(spec.low)}"
    high = None if spec.high is None else f"≤ {_number(spec.high)}"
    return ", ".join(text for text in (low, high) if text)


def _number(value: float) -> str:
    """`0.995`, `25,000`; a power of ten from a million on as `1e9` (the bounds that only stop a typo)."""
    exponent = math.log10(abs(value)) if value else 0.0
    if abs(value) >= 1e6 and exponent.is_integer():
        return f"1e{int(exponent)}"
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"
