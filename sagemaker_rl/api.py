"""Python API: tune, watch, resume and train from a notebook or a script, on any backend.

The same objects the command lines use (scripts/tune.py and scripts/train.py are thin over this module):
a `TuningConfig` with its `SearchSpace` of SageMaker-style parameters, a backend (`Local`, `Container`,
`Ray`, `SageMaker`), and the run directory a run leaves. In a Jupyter notebook a tuning run shows its
trials as a table that updates in place, and its report inline; elsewhere the console's progress lines.

    from sagemaker_rl import api

    space = api.SearchSpace(
        (api.ContinuousParameter("rl.training.config.lr", 1e-4, 1e-2, api.Scaling.LOGARITHMIC),),
        {"rl.training.stop.time_total_s": 60},
    )
    tuning = api.tune(problem="reacher", space=space, max_jobs=8)
    tuning.best_hyperparameters          # the answer, flat dotted keys
    trained = api.train("reacher", {**tuning.best_hyperparameters, "rl.training.stop.time_total_s": 600})
    api.evaluate(trained.model_dir, episodes=5, video="reacher.gif").mean
"""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import optuna

from sagemaker_rl import contract, engine, job, sagemaker, user_code
from sagemaker_rl.contract import JobPaths, decode_value
from sagemaker_rl.engine import ContainerSettings
from sagemaker_rl.errors import UserError
from sagemaker_rl.sagemaker import SageMakerConfig
from sagemaker_rl.tuning import (
    CategoricalParameter,
    ContinuousParameter,
    IntegerParameter,
    Runner,
    Scaling,
    SearchSpace,
    TuningConfig,
    TuningError,
    TuningResult,
    TuningRun,
    backends,
    config_from_mapping,
    default_space,
    load_run_config,
    open_run,
    record,
    reopen_run,
    report,
)
from sagemaker_rl.tuning.rundir import BEST_FILE, LOG_FILE, MODEL_DIR, REPORT_FILE, TRIALS_FILE, is_run_dir
from sagemaker_rl.tuning.strategies import LOCAL_STRATEGIES

if TYPE_CHECKING:
    from sagemaker_rl.job.evaluation import EvaluationResult

__all__ = [
    "LOCAL",
    "Backend",
    "CategoricalParameter",
    "Container",
    "ContinuousParameter",
    "IntegerParameter",
    "Local",
    "Ray",
    "SageMaker",
    "SageMakerConfig",
    "Scaling",
    "SearchSpace",
    "Training",
    "Tuning",
    "TuningConfig",
    "default_space",
    "evaluate",
    "open_tuning",
    "reopen_tuning",
    "resume",
    "train",
    "tune",
]

# --- backends: where the jobs run ---


@dataclass(frozen=True)
class Local:
    """Each job a process on this machine; a run's jobs share one Ray instance (the default)."""


@dataclass(frozen=True)
class Container:
    """Each job in the built image (podman or docker), one container per host, sharing this machine's cores."""

    image: str | None = None  # a local tag (None: sagemaker-rl:VERSION-cpu, from `make build`)
    instance_count: int = 1  # hosts per job

    def settings(self, run_name: str) -> ContainerSettings:
        """The engine found here and the image, checked: the engine has it."""
        engine.host_names(self.instance_count)  # at least 1
        settings = ContainerSettings(image=self.image or engine.default_image(), engine=engine.find_engine(),
                                     instance_count=self.instance_count, run_name=run_name)
        engine.check_image(settings)
        return settings


@dataclass(frozen=True)
class Ray:
    """Each trial a Ray Job on a cluster (tuning only)."""

    storage_path: str | None = None  # a directory every node can write, the same path on each (required)
    address: str | None = None  # the dashboard's Jobs API, http://HEAD:8265 (None: RAY_API_SERVER_ADDRESS, RAY_ADDRESS)


@dataclass(frozen=True)
class SageMaker:
    """One SageMaker tuning job (or training job); region and credentials from the usual AWS configuration."""

    settings: SageMakerConfig | None = None  # image, role, instance type, ... (None: only to follow a job)
    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None  # SageMaker, CloudWatch Logs, S3 and STS endpoint (e.g. a moto server)
    wait: bool = True  # follow the job to its end (False: return once it started; `Tuning.wait` follows it)
    poll_s: float = sagemaker.POLL_S  # between status checks

    def connect(self) -> sagemaker.Aws:
        return sagemaker.connect(region=self.region, profile=self.profile, endpoint_url=self.endpoint_url)


Backend = Local | Container | Ray | SageMaker
LOCAL = Local()


# --- tuning ---


def tune(config: TuningConfig | None = None, *, backend: Backend = LOCAL, runner: Runner | None = None,
         out: IO[str] | None = None, **settings: Any) -> Tuning:
    """Run a new tuning study to the end of its budget.

    `settings` are a tuning file's keys (TuningConfig's fields, `space`, or `parameters` and `static` as in a
    YAML file); they win over `config`. `runner` replaces the backend's way of starting a job (e.g. a test
    double of the job). In a notebook the trials show as a live table, then the report; elsewhere progress
    lines go to `out` (default: stdout).

        tuning = api.tune(problem="reacher", max_jobs=4, backend=api.Container(image="sagemaker-rl:0.1.0-cpu"))
        tuning = api.tune(config, backend=api.SageMaker(api.SageMakerConfig(image=URI, role=ARN)))
        tuning = api.tune(problem="hopper", static={"rl.training.stop.time_total_s": 120}, strategy="Random")
    """
    config = config or TuningConfig()
    if "space" in settings:
        config = config.rebuilt(space=settings.pop("space"))
    config = config_from_mapping(settings, base=config) if settings else config
    if isinstance(backend, SageMaker):
        return _tune_on_sagemaker(config.resolved(), backend, out)
    with open_tuning(config, backend, command=_command()) as run, _tuner_log(run.run_dir):
        view = out or _view(run.config)
        result = run.run(runner=runner, out=view)
    return Tuning(run.run_dir, result=result)._shown(out)


def resume(run_dir: str | Path, *, max_jobs: int | None = None, max_parallel_jobs: int | None = None,
           address: str | None = None, runner: Runner | None = None, out: IO[str] | None = None) -> Tuning:
    """Continue the run in `run_dir` (stopped, killed or done) where its jobs ran before, optionally with a new
    budget; `address` is where a Ray run's cluster is now.

        tuning = api.resume("runs/tune-reacher-20261204-101500", max_jobs=30)
    """
    with reopen_tuning(run_dir, address=address, max_jobs=max_jobs, max_parallel_jobs=max_parallel_jobs) as run, \
            _tuner_log(run.run_dir):
        result = run.run(runner=runner, out=out or _view(run.config))
    return Tuning(run.run_dir, result=result)._shown(out)


@contextmanager
def open_tuning(config: TuningConfig, backend: Backend = LOCAL, *,
                command: list[str] | None = None) -> Iterator[TuningRun]:
    """Check `config` for `backend`, then claim a new run directory with the runner of its jobs recorded.

    Everything a user can get wrong (a cluster out of reach, an image missing, a bad range) fails here,
    before the run directory exists. SageMaker runs a whole study itself: see `tune`.
    """
    if isinstance(backend, SageMaker):
        raise TuningError("a SageMaker run is one SageMaker tuning job: start it with api.tune(config, backend=...)")
    _check_strategy(config, backend)
    cluster = None
    if isinstance(backend, Ray):
        cluster = backends.ray_cluster(backend.address, backend.storage_path)
        if config.num_cpus is None:
            config = dataclasses.replace(config, num_cpus=backends.cpus_to_share(cluster))
    config = config.resolved()
    assert config.run_dir is not None
    container = backend.settings(config.run_dir.name) if isinstance(backend, Container) else None
    runner = backends.new_runner(config.run_dir, cluster=cluster, container=container, code_dir=config.code_dir)
    # an env only in the image or on the cluster is left to the job's own check there
    with open_run(config, command=command, envs_here=isinstance(backend, Local), runner=runner) as run:
        backends.record(runner, run.run_dir)  # a resume finds the cluster or the image there
        yield run


@contextmanager
def reopen_tuning(run_dir: str | Path, *, address: str | None = None, max_jobs: int | None = None,
                  max_parallel_jobs: int | None = None) -> Iterator[TuningRun]:
    """Claim the run in `run_dir` again, with the runner it recorded (reached at `address`, for a Ray cluster)."""
    runner = backends.runner_to_resume(Path(run_dir), address=address)
    with reopen_run(run_dir, max_jobs=max_jobs, max_parallel_jobs=max_parallel_jobs, runner=runner) as run:
        yield run


def _check_strategy(config: TuningConfig, backend: Backend) -> None:
    """PBT and ASHA are not SageMaker AMT's strategies; PBT copies checkpoints between a member's jobs, on a cluster
    through storage seen here."""
    # A default ASHA comes with a training budget, which the SageMaker checks refuse in their own words.
    if config.strategy in LOCAL_STRATEGIES and isinstance(backend, SageMaker) and config.named_strategy:
        raise TuningError(f"strategy {config.strategy} runs locally or on a Ray cluster (--backend local or ray): "
                          "SageMaker AMT does not have it (its Hyperband is the nearest)")
    if not config.strategy.population_based:
        return
    backends.check_pbt_storage(backend.storage_path if isinstance(backend, Ray) else None, config.strategy)


def _tune_on_sagemaker(config: TuningConfig, backend: SageMaker, out: IO[str] | None) -> Tuning:
    assert config.run_dir is not None
    _check_strategy(config, backend)
    if backend.settings is None:
        raise TuningError("a SageMaker tuning job needs its settings: api.SageMaker(api.SageMakerConfig(image=URI, "
                          "role=ARN))")
    name = sagemaker.start_tuning_job(backend.connect(), config, backend.settings, out=out or sys.stdout)
    tuning = Tuning(config.run_dir, job_name=name, sagemaker=backend)
    return tuning.wait(out=out) if backend.wait else tuning


class Tuning:
    """A tuning run's directory: its trials, answer, report and model; also of a run that still goes on.

    `tune` and `resume` return one; `Tuning(run_dir)` opens a run started elsewhere (a command line,
    another notebook) to watch it. `result` is how the run ended here (None when it ran elsewhere).
    """

    def __init__(self, run_dir: str | Path, *, result: TuningResult | None = None, job_name: str | None = None,
                 sagemaker: SageMaker | None = None) -> None:
        self.run_dir = Path(run_dir).absolute()
        self.result = result
        self.job_name = job_name  # the SageMaker tuning job, for a run on SageMaker
        self.sagemaker_status: str | None = None  # how that job ended (Completed, Failed, Stopped), once followed
        self._sagemaker = sagemaker

    def __repr__(self) -> str:
        return f"Tuning({str(self.run_dir)!r}{f', job_name={self.job_name!r}' if self.job_name else ''})"

    @property
    def best_hyperparameters(self) -> dict[str, Any] | None:
        """The answer (best by re-evaluation, else the best trial): static + tuned values, flat dotted keys;
        None until a trial completed."""
        path = self.run_dir / BEST_FILE
        if not path.is_file():
            return None
        return {key: decode_value(value) for key, value in json.loads(path.read_text()).items()}

    @property
    def report(self) -> Path | None:
        """report.html (written when the run ends), or None."""
        path = self.run_dir / REPORT_FILE
        return path if path.is_file() else None

    @property
    def model_dir(self) -> Path | None:
        """The run's trained model/ (its best-evaluated policy at the answer's training; PBT: the best final member's),
        or None (none yet, or on SageMaker's S3)."""
        if (self.run_dir / MODEL_DIR).is_dir():
            return self.run_dir / MODEL_DIR
        study = self._study()
        best = report.best_trial(study) if study is not None else None
        if best is None:
            return None
        item = record.read(best)
        base = Path(item.outputs[0]) if item.outputs else next(iter(item.job_dirs(1)), None)
        return JobPaths(base).model if base is not None and JobPaths(base).model.is_dir() else None

    @property
    def tensorboard_logdir(self) -> Path:
        """The directory holding every job's TensorBoard events (JOB/output/intermediate/tensorboard):
        `tensorboard --logdir` it. The run directory, or for a Ray run its folder on the cluster's storage."""
        return backends.jobs_dir(self.run_dir)

    def dashboard_command(self, *, port: int = 8080) -> list[str]:
        """The command that shows this run's study live in optuna-dashboard (`pip install optuna-dashboard`),
        served on this machine only (127.0.0.1: the dashboard can edit the study)."""
        storage = load_run_config(self.run_dir).storage
        assert storage is not None  # a run's recorded config has its storage
        return ["optuna-dashboard", storage, "--host", "127.0.0.1", "--port", str(port)]

    def trials(self) -> list[dict[str, Any]]:
        """One row per trial (trial, status, role, objective, env_steps, duration_s, the tuned values, ...)."""
        study = self._study()
        if study is not None:
            return report.trial_rows(study.get_trials(deepcopy=False))
        path = self.run_dir / TRIALS_FILE  # a SageMaker run's, written when it ended
        if not path.is_file():
            return []
        with path.open(newline="") as handle:
            return list(csv.DictReader(handle))

    def show(self) -> None:
        """Show the report inline in a notebook (the trials table until the run wrote its report)."""
        from IPython.display import HTML, display

        display(HTML(_report_frame(self.report) if self.report else report.table_html(self.trials())))

    def resume(self, **budget: Any) -> Tuning:
        """Continue this run (`resume`'s keyword arguments)."""
        return resume(self.run_dir, **budget)

    def wait(self, *, out: IO[str] | None = None) -> Tuning:
        """Follow this run's SageMaker tuning job to its end, then write its trials, answer and report here."""
        if self._sagemaker is None or self.job_name is None:
            raise TuningError(f"{self.run_dir} is not a SageMaker tuning job this session started: open it with "
                              "Tuning(run_dir, job_name=NAME, sagemaker=api.SageMaker(...))")
        aws, stream = self._sagemaker.connect(), out or _view(None)
        description = sagemaker.wait_for_tuning_job(aws, self.job_name, out=stream, poll_s=self._sagemaker.poll_s)
        self.sagemaker_status = description["HyperParameterTuningJobStatus"]
        sagemaker.write_tuning_results(aws, description, self.run_dir, out=stream)
        return self._shown(out)

    def _study(self) -> optuna.Study | None:
        if not is_run_dir(self.run_dir):
            return None
        config = load_run_config(self.run_dir)
        assert config.storage is not None  # a run's recorded config has its storage
        return optuna.load_study(study_name=config.study_name, storage=config.storage)

    def _shown(self, out: IO[str] | None) -> Tuning:
        """This run, its report shown first when it ran in a notebook (no `out` given)."""
        if out is None and _in_notebook():
            self.show()
        return self


# --- training and evaluation ---


@dataclass(frozen=True)
class Training:
    """One training job: where it ran and how it ended."""

    run_dir: Path | None  # the job's directory in SageMaker's /opt/ml layout (None: on SageMaker)
    exit_code: int | None  # 0: a model was written (None: a SageMaker job not followed to its end)
    job_name: str | None = None  # the SageMaker training job

    @property
    def model_dir(self) -> Path | None:
        """The job's model/ (policy.onnx, params.json, the RLlib checkpoint), once written."""
        model = JobPaths(self.run_dir).model if self.run_dir is not None else None
        return model if model is not None and model.is_dir() else None


def train(problem: str | None = None, hyperparameters: Mapping[str, Any] | None = None, *,
          run_dir: str | Path | None = None, backend: Local | Container | SageMaker = LOCAL,
          code_dir: str | Path | None = None, out: IO[str] | None = None) -> Training:
    """Train one job of `problem` (None: the env `rl.env.id` names) with `hyperparameters` (flat dotted keys).

    An existing `run_dir` resumes from its checkpoints. Locally the job is a child process (its reward lines
    go to `out`, default stdout); `Container` runs it in the image, `SageMaker` as a training job.

        trained = api.train("reacher", tuning.best_hyperparameters, run_dir="runs/reacher-answer")
        trained.model_dir
    """
    values = dict(hyperparameters or {})
    stream = out or sys.stdout
    code = user_code.check_code_dir(Path(code_dir)) if code_dir is not None else None
    if isinstance(backend, SageMaker):
        return _train_on_sagemaker(problem, values, backend, code, stream)
    label = job.target_label(problem, values)
    base = Path(run_dir or Path("runs", f"train-{label}-{time.strftime('%Y%m%d-%H%M%S')}")).absolute()
    if isinstance(backend, Container):
        return _train_in_containers(problem, values, base, backend, code, stream)
    paths = JobPaths(base)
    if not paths.hyperparameters_file.exists() or values:
        contract.write_inputs(paths, values)
    print(f"Run directory: {paths.base}", file=stream, flush=True)
    return Training(paths.base, _run_child(problem, paths, code, stream))


def _run_child(problem: str | None, paths: JobPaths, code_dir: Path | None, out: IO[str]) -> int:
    """The job as `python -m sagemaker_rl.job` here, its output copied to `out` and its errors to stderr. Ctrl-C
    (or a notebook's interrupt) and SIGTERM reach it once, from here: it writes its failure (it can be resumed),
    and its exit code is returned."""
    env = job.child_env(code_dir, **{contract.BASE_DIR_ENV: str(paths.base), "PYTHONUNBUFFERED": "1"})
    process = subprocess.Popen([sys.executable, *job.job_command(problem)], cwd=code_dir or paths.base, env=env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    assert process.stdout is not None and process.stderr is not None
    errors = threading.Thread(target=_copy, args=(process.stderr, sys.stderr), daemon=True)
    with process, _forwarded(signal.SIGTERM, process):  # leaving it closes the pipes and waits for the job
        errors.start()
        try:
            _copy(process.stdout, out)
        except KeyboardInterrupt:
            process.send_signal(signal.SIGINT)
            _copy(process.stdout, out)  # its last lines, until it ended
        errors.join()
    return 130 if process.returncode == -signal.SIGINT else process.returncode


def _copy(source: IO[str], target: IO[str]) -> None:
    for line in source:
        target.write(line)
        target.flush()


@contextmanager
def _forwarded(signum: int, process: subprocess.Popen[str]) -> Iterator[None]:
    """`signum` sent to this process goes to `process` instead (in the main thread: only it handles signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signum, lambda *_: process.send_signal(signum))
    try:
        yield
    finally:
        signal.signal(signum, previous)


def _train_in_containers(problem: str | None, values: dict[str, Any], base: Path, backend: Container,
                         code_dir: Path | None, out: IO[str]) -> Training:
    settings = backend.settings(base.name)
    cpus = max(1, contract.num_cpus() // settings.instance_count)
    bundle = user_code.make_bundle(code_dir, user_code.entry_point(problem), base) if code_dir else None
    containers = engine.JobContainers(base, problem, settings, cpus_per_host=cpus, code_bundle=bundle)
    if not containers.has_inputs() or values:
        containers.write_inputs(values)
    print(f"Run directory: {containers.base_dir} (/opt/ml of {containers.hosts[0]}; {settings.image}, "
          f"{len(containers.hosts)} host(s) of {cpus} CPU(s) with {settings.engine})", file=out, flush=True)
    return Training(containers.base_dir, engine.run_job(containers, out=out))


def _train_on_sagemaker(problem: str | None, values: dict[str, Any], backend: SageMaker, code_dir: Path | None,
                        out: IO[str]) -> Training:
    if backend.settings is None:
        raise UserError("a SageMaker training job needs its settings: api.SageMaker(api.SageMakerConfig(image=URI, "
                        "role=ARN))")
    aws = backend.connect()
    name = sagemaker.start_training_job(aws, problem, values, backend.settings, out=out, code_dir=code_dir)
    if not backend.wait:
        return Training(None, None, name)
    description = sagemaker.wait_for_training_job(aws, name, out=out, poll_s=backend.poll_s)
    return Training(None, sagemaker.training_outcome(description, out=out), name)


def evaluate(model_dir: str | Path, *, episodes: int = 10, seed: int = 0,
             video: str | Path | None = None) -> EvaluationResult:
    """Deterministic episodes of the policy in a job's `model_dir` (its ONNX export, without Ray): their returns
    (`.returns`, `.mean`); `video` saves the first episode as a GIF.

        result = api.evaluate(trained.model_dir, episodes=5, video="reacher.gif")
    """
    from sagemaker_rl.job.evaluation import evaluate as run_episodes

    os.environ.setdefault("MUJOCO_GL", "egl")  # headless MuJoCo rendering
    return run_episodes(Path(model_dir), episodes=episodes, seed=seed, video=Path(video) if video else None)


# --- how a run shows itself ---


def _command() -> list[str]:
    """What started this run, for tuning.json: the script, or the notebook's kernel."""
    return ["python", *sys.argv] if not _in_notebook() else ["sagemaker_rl.api.tune", "(in a notebook)"]


def _in_notebook() -> bool:
    """True in a Jupyter kernel (IPython's ZMQ shell); never imports IPython itself."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None  # type: ignore[attr-defined]
    return type(shell).__name__ == "ZMQInteractiveShell"


def _view(config: TuningConfig | None) -> IO[str]:
    """Where a run's progress goes: a live table in a notebook, else stdout."""
    return _LiveTable(config) if _in_notebook() else sys.stdout  # type: ignore[return-value]


class _LiveTable(io.TextIOBase):
    """A notebook's view of a running study: its last progress lines above its trials, updated in place.

    The tuner writes its timestamped progress lines here (when a trial starts or ends, and once a minute); each
    redraws the view from the study's storage. Its closing summary is left out: the report shows it."""

    def __init__(self, config: TuningConfig | None, *, lines: int = 3) -> None:
        from IPython.display import HTML, display

        self._config = config
        self._lines: deque[str] = deque(maxlen=lines)
        self._partial = ""
        self._study: Any = None
        self._html = HTML
        self._handle = display(HTML("<p>starting ...</p>"), display_id=True)

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        *done, self._partial = (self._partial + text).split("\n")
        lines = [line for line in done if line.startswith("[")]  # Console's `[0:01:02] ...`
        if lines:
            self._lines.extend(lines)
            self._handle.update(self._html(self._render()))
        return len(text)

    def _render(self) -> str:
        progress = f"<pre>{html.escape(chr(10).join(self._lines))}</pre>"
        if self._config is None:  # a SageMaker job: its progress lines only
            return progress
        if self._study is None:
            assert self._config.storage is not None  # a resolved config
            self._study = optuna.load_study(study_name=self._config.study_name, storage=self._config.storage)
        return progress + report.table_html(report.trial_rows(self._study.get_trials(deepcopy=False)))


def _report_frame(path: Path) -> str:
    """report.html in an iframe of its own (its scripts and styles stay inside), the page itself in it: a
    notebook served from elsewhere could not load the file."""
    page = html.escape(path.read_text())
    return f"<div><iframe srcdoc=\"{page}\" style=\"width: 100%; height: 640px; border: 0\"></iframe></div>"


@contextmanager
def _tuner_log(run_dir: Path) -> Iterator[None]:
    """While a run started here goes on: the package's log records (INFO and up) in RUN_DIR/tuner.log, and
    Optuna's per-trial INFO lines kept off the console (the progress shows the trials); what the console shows
    of the package stays the caller's logging configuration."""
    package = logging.getLogger("sagemaker_rl")
    handler = logging.FileHandler(run_dir / LOG_FILE)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    level, optuna_level = package.level, optuna.logging.get_verbosity()
    package.addHandler(handler)
    if package.getEffectiveLevel() > logging.INFO:
        package.setLevel(logging.INFO)
    optuna.logging.set_verbosity(max(optuna_level, logging.WARNING))
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(level)
        optuna.logging.set_verbosity(optuna_level)
        handler.close()
