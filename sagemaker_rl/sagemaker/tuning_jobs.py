"""SageMaker tuning jobs: starting one (its request recorded in the run directory) and following it."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sagemaker_rl import user_code
from sagemaker_rl.console import Console
from sagemaker_rl.sagemaker.aws import Aws, aws_errors, default_output_s3, upload_code
from sagemaker_rl.sagemaker.config import SageMakerConfig, job_name
from sagemaker_rl.sagemaker.requests import check_tuning_job, tuning_job_request
from sagemaker_rl.sagemaker.training_jobs import DONE, POLL_S

if TYPE_CHECKING:
    from sagemaker_rl.tuning import TuningConfig


def start_tuning_job(aws: Aws, tuning: TuningConfig, config: SageMakerConfig, *, out: IO[str]) -> str:
    """Check the run, upload the user's code (`tuning.code_dir`, once: every trial gets that bundle), then
    CreateHyperParameterTuningJob; records the request in the run directory."""
    name = job_name(tuning.problem, "tuning", config.job_name)
    check_tuning_job(tuning, config)  # the one check, before the first AWS call
    code_dir = user_code.check_code_dir(tuning.code_dir) if tuning.code_dir is not None else None
    output_s3 = config.output_s3 or default_output_s3(aws, out)
    submit = upload_code(aws, code_dir, tuning.problem, output_s3=output_s3, name=name, out=out) if code_dir else None
    request = tuning_job_request(tuning, config, name=name, output_s3=output_s3, submit_directory=submit)
    with aws_errors(f"create tuning job {name}"):
        response = aws.sagemaker.create_hyper_parameter_tuning_job(**request)
    assert tuning.run_dir is not None, "start_tuning_job takes a resolved TuningConfig"
    run_dir = Path(tuning.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {"region": aws.region, "arn": response.get("HyperParameterTuningJobArn"), "request": request}
    (run_dir / "sagemaker.json").write_text(json.dumps(record, indent=2) + "\n")
    budget = request["HyperParameterTuningJobConfig"]["ResourceLimits"].get("MaxNumberOfTrainingJobs", "all")
    print(f"started tuning job {name} ({budget} trials, {tuning.max_parallel_jobs} at a time, strategy "
          f"{tuning.strategy}) in {aws.region}; its request is in {run_dir / 'sagemaker.json'}", file=out, flush=True)
    return name


def wait_for_tuning_job(aws: Aws, name: str, *, out: IO[str], poll_s: float = POLL_S) -> dict[str, Any]:
    """Show progress (jobs done, failed, stopped early, running; best objective) until the tuning job ends."""
    console = Console(out)
    while True:
        with aws_errors(f"describe tuning job {name}"):
            description = aws.sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        status = description["HyperParameterTuningJobStatus"]
        console.progress(f"{_progress(description)} [{status}]")
        if status in DONE:
            if status == "Failed":
                print(f"tuning job {name} failed: {description.get('FailureReason') or 'no reason given'}", file=out)
            return description
        time.sleep(poll_s)


def _progress(description: Mapping[str, Any]) -> str:
    """The local tuner's progress line, from a tuning job's counters (a stopped job was stopped early)."""
    from sagemaker_rl.tuning.ranking import progress_line

    counts = description.get("TrainingJobStatusCounters", {})
    failed = counts.get("NonRetryableError", 0) + counts.get("RetryableError", 0)
    stopped = counts.get("Stopped", 0)
    limits = description.get("HyperParameterTuningJobConfig", {}).get("ResourceLimits", {})
    best = description.get("BestTrainingJob") or {}
    return progress_line(
        done=counts.get("Completed", 0) + failed + stopped,
        budget=limits.get("MaxNumberOfTrainingJobs", "?"),
        failed=failed,
        pruned=stopped,
        running=counts.get("InProgress", 0),
        best=best.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value"),
        best_name=str(best.get("TrainingJobName")),
    )
