"""TEST DOUBLE of the job contract (not the real job): used only by the runner and tuner-loop tests.

It reads $SAGEMAKER_BASE_DIR/input/config/hyperparameters.json and prints reward lines the way
`sagemaker_rl.job` does, in a few seconds and without Ray. `fake.*` hyperparameters choose its
behaviour:
  fake.mode   ok | crash | nan | silent | sigkill | late_nan   (default ok)
  fake.slope  reward at iteration i is slope * i + rl.training.seed  (slope default: kl_coeff, else 1)
  fake.sleep  seconds per iteration                             (default 0.05)
  fake.lucky  1: add 100 to every reward when rl.training.seed < 10000 (good on the search's seeds only)
  fake.child  1: start a child process in the job's process group that sleeps for a long time
  fake.linger seconds to stay alive after writing output/success (a tuner can die before it sees the end)
It prints evaluation_reward_mean, 2 * slope * i + seed, at its last iteration and, given
rl.training.evaluation_interval (env steps), at the iterations that pass a multiple of it, as the job's
deterministic evaluations (none when rl.training.evaluation_episodes is 0); `fake.evaluation`, an object of slopes
to values ({"0.5": 900}), sets the last one of the jobs of those slopes.
Stop criterion: rl.training.stop.training_iteration (default 3), or rl.training.stop.timesteps_total (1,000 env
steps an iteration). After each iteration it writes checkpoints/checkpoint_NNNNNN/job_state.json (the real job's
format, counters only); a job that finds one there continues after its iteration. A job that ends writes
model/seed.txt (its seed), model/params.json (its hyperparameters) and
model/result.json (its last iteration, with its evaluation). Each start appends a line to
`starts.log` in the base directory (the tests count reruns with it) and SM_NUM_CPUS to `env.log`
(and RAY_ADDRESS, when given, to `ray_address.log`, with the Ray token variables it got).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    assert sys.argv[1:3] == ["--problem", "reacher"], sys.argv
    base = Path(os.environ["SAGEMAKER_BASE_DIR"])
    raw = json.loads((base / "input/config/hyperparameters.json").read_text())
    hp = {key: json.loads(value) for key, value in raw.items()}
    (base / "output").mkdir(parents=True, exist_ok=True)
    with open(base / "starts.log", "a") as handle:
        handle.write(f"{os.getpid()} {time.time()}\n")
    (base / "env.log").write_text(os.environ.get("SM_NUM_CPUS", "") + "\n")
    if "RAY_ADDRESS" in os.environ:
        auth = [f"{name}={os.environ.get(name)}" for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_TOKEN")]
        (base / "ray_address.log").write_text(os.environ["RAY_ADDRESS"] + "\n" + "\n".join(auth) + "\n")
    mode = hp.get("fake.mode", "ok")
    slope = float(hp.get("fake.slope", hp.get("rl.training.config.kl_coeff", 1.0)))
    offset = int(hp.get("rl.training.seed", 0))  # seeds differ by a constant
    if hp.get("fake.lucky") and offset < 10000:
        offset += 100
    pause = float(hp.get("fake.sleep", 0.05))
    iterations = int(hp.get("rl.training.stop.training_iteration", 3))
    if "rl.training.stop.timesteps_total" in hp:
        iterations = int(hp["rl.training.stop.timesteps_total"]) // 1000
    if hp.get("fake.child"):
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        (base / "child.started").write_text("")
    print("fake job starting", flush=True)
    evaluation = None
    checkpoints = base / "checkpoints"
    done = max((int(path.name.removeprefix("checkpoint_")) for path in checkpoints.glob("checkpoint_*")), default=0)
    for iteration in range(done + 1, iterations + 1):
        time.sleep(pause)
        if mode == "crash" and iteration == 2:
            (base / "output/failure").write_text("the job failed: RuntimeError: boom\n\ntraceback ...\n")
            print("ERROR: the job failed: RuntimeError: boom", file=sys.stderr, flush=True)
            return 1
        if mode == "sigkill" and iteration == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        if mode == "silent":
            print(f"training_iteration: {iteration}", flush=True)
            continue
        nan = mode == "nan" or (mode == "late_nan" and iteration == iterations)
        reward = "nan" if nan else f"{slope * iteration + offset:.6g}"
        print(f"episode_reward_mean: {reward}", flush=True)
        if not nan:
            print(f"episode_reward_max: {slope * iteration + 1:.6g}", flush=True)
        evaluation = _evaluation(hp, slope, iteration, offset, last=iteration == iterations)
        if evaluation is not None:
            print(f"evaluation_reward_mean: {evaluation:.6g}", flush=True)
        print(f"timesteps_total: {iteration * 1000}", flush=True)
        print(f"training_iteration: {iteration}", flush=True)
        print(f"iteration {iteration}: reward {reward}", flush=True)
        state = {"training_iteration": iteration, "timesteps_total": iteration * 1000}
        (checkpoints / f"checkpoint_{iteration:06d}").mkdir(parents=True)
        (checkpoints / f"checkpoint_{iteration:06d}/job_state.json").write_text(json.dumps(state))
    (base / "model").mkdir(exist_ok=True)
    (base / "model/seed.txt").write_text(f"{hp.get('rl.training.seed')}\n")
    (base / "model/params.json").write_text(json.dumps({"hyperparameters": hp, "seed": hp.get("rl.training.seed")}))
    result = {"training_iteration": iterations, "evaluation_reward_mean": evaluation}
    (base / "model/result.json").write_text(json.dumps(result))
    (base / "output/success").write_text("")
    time.sleep(float(hp.get("fake.linger", 0)))
    return 0


def _evaluation(hp: dict, slope: float, iteration: int, offset: int, *, last: bool) -> float | None:
    """The evaluation the job prints at `iteration` (None: it does not evaluate there)."""
    interval = int(hp.get("rl.training.evaluation_interval", 0))
    crossed = bool(interval) and iteration * 1000 // interval > (iteration - 1) * 1000 // interval
    if not int(hp.get("rl.training.evaluation_episodes", 5)) or not (crossed or last):
        return None
    return float(hp.get("fake.evaluation", {}).get(str(slope), 2 * slope * iteration + offset) if last else
                 2 * slope * iteration + offset)


if __name__ == "__main__":
    sys.exit(main())
