"""A SageMaker tuning job's trials as the local tuner's report files (moto has no
ListTrainingJobsForHyperParameterTuningJob)."""

from __future__ import annotations

import csv
import json
import re


def test_results_table_and_best_file_are_built_from_the_listed_trials(tuning_results):
    name, files, printed, requests = tuning_results
    assert requests == [{"HyperParameterTuningJobName": name},
                        {"HyperParameterTuningJobName": name, "NextToken": "4"}]  # both pages read
    rows = list(csv.DictReader(open(files["trials"])))
    assert [(row["trial"], row["training_job"][-12:], row["status"]) for row in rows] == [
        ("0", "001-1a2b3c4d", "complete"), ("1", "002-1a2b3c4d", "complete"), ("2", "003-1a2b3c4d", "pruned"),
        ("3", "004-1a2b3c4d", "failed"), ("4", "005-1a2b3c4d", "failed"), ("5", "006-1a2b3c4d", "running")]
    assert [row["objective"] for row in rows] == ["-8.75", "-4.5", "-30.5", "", "", ""]
    assert rows[0]["rl.training.config.num_epochs"] == "7" and rows[0]["rl.training.config.kl_coeff"] == "0.7523"
    assert rows[0]["duration_s"] == "91.0"
    assert rows[3]["failure"] == "AlgorithmError: ExecuteUserScriptError: exit code 1"
    assert rows[4]["failure"] == "SageMaker read no episode_reward_mean from the job's log"
    best = json.loads(files["best_hyperparameters"].read_text())
    assert best == {
        "rl.training.stop.training_iteration": 20,
        "rl.training.config.model_config.fcnet_hiddens": [64, 64],
        "rl.training.config.kl_coeff": 0.5,
        "rl.training.config.num_epochs": 12,
        "rl.training.config.gamma": 0.995,
        "rl.training.config.batch_mode": "complete_episodes",
    }  # typed values, no sagemaker_* keys
    assert files["report"].stat().st_size > 1_000_000  # the local report, plotly inlined
    assert "best episode_reward_mean: -4.5" in printed
    assert f"train with them: python scripts/train.py --problem reacher --hp-file {files['best_hyperparameters']}" \
        in printed
    assert "(they train for 20 iterations, the training the answer was judged at)" in printed
    assert re.search(r"^1\s+complete\s+-4\.5\s+92\s+0\.5\s+12\s+0\.995\s+complete_episodes$", printed, re.M)

