"""PB2's explore (Parker-Holder et al. 2020, "Provably Efficient Online Hyperparameter Optimization with
Population-Based Bandits"): the values a member takes with a donor's checkpoint are chosen by a Gaussian process
instead of perturbed at random.

The process predicts a segment's improvement (its objective minus the objective it started from) from when it
ran (its generation), where it started (that objective) and its values on their scales mapped to [0, 1]. The
kernel is TV-GP-UCB's time-varying squared exponential (Bogunovic et al. 2016): a segment generations ago
counts less than one just run, since what suits training changes as it goes. A member that explores gets the
values with the highest upper confidence bound at its own start (this generation, its donor's objective). The
members exploring at one boundary are chosen one after another, each counting the earlier ones' values as
points that will run (they lower the uncertainty there, GP-BUCB, Desautels et al. 2014), so they spread out.

As in Ray Tune's PB2: improvements standardized and clipped to ±2, the confidence weight sqrt(0.2 + log(0.4 n))
for n segments. Unlike it: the kernel's length scale, time decay and noise are the most likely of a small grid
(deterministic, no optimizer to fail), and the bound is maximized over random candidates drawn from the plan's
own random stream, so a resumed run plans the same values. Categorical values are drawn anew, as PBT does
(PB2 models numbers).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sagemaker_rl.tuning.space import CategoricalParameter, SearchSpace, from_unit, to_unit

# The kernel settings tried; the data's most likely one is used (improvements are standardized: unit variance).
LENGTH_SCALES = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
TIME_DECAYS = (0.001, 0.01, 0.05, 0.1, 0.2, 0.35, 0.5)  # epsilon: (1 - epsilon) ** (generations apart / 2)
NOISES = (0.001, 0.01, 0.1, 0.3)
CANDIDATES = 2048  # random points the confidence bound is maximized over
CLIP = 2.0  # standardized improvements beyond it are clipped (one lucky segment does not dominate)


@dataclass(frozen=True)
class Observation:
    """A segment that ended: when it ran, the objective it started from, its values and how much it gained."""

    generation: int
    start: float
    values: dict[str, Any]
    improvement: float  # in the objective's better direction


def choose(space: SearchSpace, history: Sequence[Observation], starts: Sequence[tuple[int, float]],
           rng: random.Random) -> list[dict[str, Any]] | None:
    """Values for members exploring from each (generation, objective) of `starts`, in order; None when there is
    nothing to model (no finished segment, or no numeric parameter): then PBT's explore does it."""
    numeric = [parameter for parameter in space.parameters if not isinstance(parameter, CategoricalParameter)]
    history = [item for item in history if all(parameter.name in item.values for parameter in numeric)]
    if not history or not numeric or not starts:
        return None
    low = min([item.start for item in history] + [start for _, start in starts])
    high = max([item.start for item in history] + [start for _, start in starts])

    def features(generation: int, start: float, unit_values: Sequence[float]) -> list[float]:
        return [float(generation), (start - low) / (high - low) if high > low else 0.5, *unit_values]

    inputs = np.array([features(item.generation, item.start, [to_unit(parameter, item.values[parameter.name])
                                                              for parameter in numeric]) for item in history])
    gains = np.array([item.improvement for item in history])
    spread = gains.std()
    targets = np.clip((gains - gains.mean()) / spread, -CLIP, CLIP) if spread > 0 else np.zeros_like(gains)
    model = _fit(inputs, targets)
    weight = math.sqrt(0.2 + max(0.0, math.log(0.4 * len(history))))
    draws = np.random.default_rng(rng.getrandbits(64)).uniform(size=(CANDIDATES, len(numeric)))
    chosen: list[dict[str, Any]] = []
    pending: list[list[float]] = []
    for generation, start in starts:
        candidates = np.array([features(generation, start, row) for row in draws])
        mean, deviation = model.predict(candidates, np.array(pending).reshape(-1, inputs.shape[1]))
        best = draws[int(np.argmax(mean + weight * deviation))]
        pending.append(features(generation, start, best))
        values = {parameter.name: from_unit(parameter, float(unit)) for parameter, unit in zip(numeric, best,
                                                                                               strict=True)}
        for parameter in space.parameters:
            if isinstance(parameter, CategoricalParameter):
                values[parameter.name] = rng.choice(parameter.values)
        chosen.append({parameter.name: values[parameter.name] for parameter in space.parameters})
    return chosen


@dataclass
class _Process:
    """A fitted Gaussian process: its inputs, kernel settings and the weights of its posterior mean."""

    inputs: np.ndarray
    length_scale: float
    time_decay: float
    noise: float
    weights: np.ndarray

    def kernel(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        return _kernel(left, right, self.length_scale, self.time_decay)

    def predict(self, points: np.ndarray, pending: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The posterior mean at `points`, and the standard deviation once `pending` points also ran (their
        outcomes are not needed: a Gaussian process's variance does not depend on them)."""
        mean = self.kernel(points, self.inputs) @ self.weights
        known = np.vstack([self.inputs, pending])
        covariance = self.kernel(known, known) + self.noise * np.eye(len(known))
        cross = self.kernel(points, known)
        explained = np.einsum("ij,ji->i", cross, np.linalg.solve(covariance, cross.T))
        return mean, np.sqrt(np.maximum(1.0 - explained, 0.0))  # of the gain itself, without the noise


def _fit(inputs: np.ndarray, targets: np.ndarray) -> _Process:
    """The process with the kernel settings of the grid that make `targets` most likely."""
    best: tuple[float, _Process] | None = None
    for length_scale in LENGTH_SCALES:
        for time_decay in TIME_DECAYS:
            base = _kernel(inputs, inputs, length_scale, time_decay)
            for noise in NOISES:
                factor = np.linalg.cholesky(base + noise * np.eye(len(inputs)))
                weights = np.linalg.solve(factor.T, np.linalg.solve(factor, targets))
                likelihood = -0.5 * float(targets @ weights) - float(np.log(np.diag(factor)).sum())
                if best is None or likelihood > best[0]:
                    best = (likelihood, _Process(inputs, length_scale, time_decay, noise, weights))
    assert best is not None
    return best[1]


def _kernel(left: np.ndarray, right: np.ndarray, length_scale: float, time_decay: float) -> np.ndarray:
    """Squared exponential over the start and the values, times (1 - decay) ** (generations apart / 2)."""
    apart = np.abs(left[:, :1] - right[:, :1].T)
    distance = ((left[:, None, 1:] - right[None, :, 1:]) ** 2).sum(axis=-1)
    return np.exp(-distance / (2 * length_scale**2)) * (1 - time_decay) ** (apart / 2)
