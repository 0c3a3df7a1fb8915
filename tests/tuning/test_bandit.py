"""PB2's explore (bandit.py): the Gaussian process finds where segments gain most, forgets what no longer holds,
spreads the members exploring at one boundary, and is planned the same on every call; the population feeds it each
segment's gain over where it started. Real tiny PB2 runs are in test_pbt.py."""

from __future__ import annotations

import math
import random

import optuna
import pytest
from optuna.study import StudyDirection
from optuna.trial import TrialState

from sagemaker_rl.tuning import bandit, load_config, pbt
from sagemaker_rl.tuning.ranking import segments
from sagemaker_rl.tuning.record import TrialRecord
from sagemaker_rl.tuning.space import (
    CategoricalParameter,
    ContinuousParameter,
    IntegerParameter,
    Scaling,
    SearchSpace,
    from_unit,
    to_unit,
)
from tests.tuning.test_pbt import GAMMA, LR

CLIP = ContinuousParameter("rl.training.config.clip_param", 0.1, 0.4)
EPOCHS = IntegerParameter("rl.training.config.num_epochs", 1, 30, Scaling.LINEAR)
MODE = CategoricalParameter("rl.training.config.batch_mode", ("truncate_episodes", "complete_episodes"))


def test_values_map_to_the_unit_interval_on_their_scale_and_back():
    assert to_unit(LR, 1e-3) == pytest.approx(0.5)  # halfway on the log scale
    assert to_unit(GAMMA, 0.99) == pytest.approx(0.5)  # 1 - gamma: 0.1, 0.01, 0.001
    assert to_unit(CLIP, 0.25) == pytest.approx(0.5)
    for parameter, value in ((LR, 3e-4), (GAMMA, 0.995), (CLIP, 0.3)):
        assert from_unit(parameter, to_unit(parameter, value)) == pytest.approx(value)
    assert (from_unit(EPOCHS, 0.0), from_unit(EPOCHS, 1.0), from_unit(EPOCHS, 0.5)) == (1, 30, 16)
    assert isinstance(from_unit(EPOCHS, 0.3), int)
    assert to_unit(LR, 1.0) == 1.0  # a value outside the range (a file edited by hand) is kept at its edge


def _history(gain, generations=(0, 1, 2), members=8, seed=0):
    """Segments at random lr values whose gain is `gain(lr's unit value, generation)`, all from the same start."""
    rng = random.Random(seed)
    found = []
    for generation in generations:
        for _ in range(members):
            unit = rng.random()
            found.append(bandit.Observation(generation, 10.0, {LR.name: from_unit(LR, unit)}, gain(unit, generation)))
    return found


@pytest.mark.parametrize("seed", range(4))
def test_the_bandit_chooses_values_where_segments_gained_most(seed):
    history = _history(lambda unit, _: -20.0 * (unit - 0.8) ** 2, seed=seed)  # best at lr's unit 0.8
    [chosen] = bandit.choose(SearchSpace((LR,)), history, [(3, 10.0)], random.Random(seed))
    assert abs(to_unit(LR, chosen[LR.name]) - 0.8) < 0.05, chosen


def test_the_bandit_follows_the_latest_generations_when_what_helps_changes():
    space = SearchSpace((LR,))
    # A high lr helped for five generations, a low one helps now (as when a policy nears its best and needs
    # smaller steps): without the kernel's time decay the bandit would choose a high one (> 0.9 on this data).
    history = _history(lambda unit, generation: (unit if generation < 5 else 1 - unit) * 10.0,
                       generations=range(7), members=4)
    [chosen] = bandit.choose(space, history, [(7, 10.0)], random.Random(0))
    assert to_unit(LR, chosen[LR.name]) < 0.35, chosen


def test_members_exploring_at_one_boundary_spread_out_and_the_plan_is_the_same_on_every_call():
    space = SearchSpace((LR, CLIP, EPOCHS, MODE))
    history = [bandit.Observation(0, 0.0, {LR.name: 1e-3, CLIP.name: 0.2, EPOCHS.name: 10}, 1.0),
               bandit.Observation(0, 0.0, {LR.name: 3e-3, CLIP.name: 0.3, EPOCHS.name: 20}, 2.0)]
    chosen = bandit.choose(space, history, [(1, 2.0)] * 3, random.Random(5))
    units = [(to_unit(LR, item[LR.name]), to_unit(CLIP, item[CLIP.name])) for item in chosen]
    assert min(math.dist(a, b) for i, a in enumerate(units) for b in units[i + 1:]) > 0.1, units
    assert all(isinstance(item[EPOCHS.name], int) and item[MODE.name] in MODE.values for item in chosen)
    assert bandit.choose(space, history, [(1, 2.0)] * 3, random.Random(5)) == chosen
    assert bandit.choose(space, [], [(1, 2.0)], random.Random(5)) is None  # nothing to model: PBT's explore
    assert bandit.choose(SearchSpace((MODE,)), history, [(1, 2.0)], random.Random(5)) is None


def _segment(member, generation, value, *, number, lr, parent=None, first=None):
    trial = optuna.trial.create_trial(
        state=TrialState.COMPLETE, value=value, params={}, distributions={},
        intermediate_values={} if first is None else {8000: first, 16000: value},
        user_attrs=TrialRecord(member=member, generation=generation, parent=parent, tuned={LR.name: lr}).attrs())
    trial.number = number
    return trial


@pytest.mark.parametrize("direction", [StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE])
def test_the_population_gives_the_bandit_each_segments_gain_over_where_it_started(direction):
    space = SearchSpace((LR,))
    population = pbt.Population(space, population=2, generations=3, direction=direction, seed=3, bandit=True)
    trials = [_segment(0, 0, 5.0, number=0, lr=1e-3, first=1.0), _segment(1, 0, 2.0, number=1, lr=2e-3, first=1.5),
              _segment(0, 1, 9.0, number=2, lr=1e-3, parent=0), _segment(1, 1, 3.0, number=3, lr=4e-3, parent=0)]
    history = population._history(segments(trials), 2)
    sign = 1 if direction is StudyDirection.MAXIMIZE else -1
    # A first segment starts from its first report; a later one from its parent's objective (an exploit's donor's).
    assert [(item.generation, item.start, item.improvement) for item in history] == [
        (0, 1.0, sign * 4.0), (0, 1.5, sign * 0.5), (1, 5.0, sign * 4.0), (1, 5.0, sign * -2.0)]
    assert population._history(segments(trials), 1) == history[:2]  # only generations before the one planned
    plan = population._plan(2, segments(trials))
    assert population._plan(2, segments(trials)) == plan  # the same plan on every call (a resumed run)


def test_pb2_is_pbt_with_the_bandit_explore_and_refuses_what_pbt_refuses():
    config = load_config(None, {"strategy": "PB2", "population": 2})
    assert (config.budget, config.generations, config.reevaluate_top) == (20, 10, 0)
    assert "rl.training.initial_log_std" not in config.space.names  # PBT's live space
    from sagemaker_rl.tuning import TuningError

    with pytest.raises(TuningError, match="strategy PB2 ends every job at a perturbation boundary"):
        load_config(None, {"strategy": "PB2", "static": {"rl.training.stop.time_total_s": 30}})
    with pytest.raises(TuningError, match="strategy PB2 splits a member's training into generations of env steps"):
        load_config(None, {"strategy": "PB2", "train_budget": "10min"})
