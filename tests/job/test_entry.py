"""The job's check mode: its own parser, run in a child process, finds the first set it would refuse."""

from sagemaker_rl import job


def test_the_first_refused_set_is_named_with_the_parsers_reason():
    sets = [{"rl.training.config.lr": 3e-4}, {"rl.training.config.lrr": 1e-3}, {"rl.training.config.gamma": 2}]
    index, reason = job.check_hyperparameters("reacher", sets)
    assert index == 1 and reason.startswith("unknown PPO setting 'rl.training.config.lrr' (did you mean 'lr'?)")
    assert job.check_hyperparameters("reacher", sets[:1]) is None


def test_an_unknown_problem_is_refused_like_a_job_would():
    index, reason = job.check_hyperparameters("hoper", [{}])
    assert index == 0 and "unknown problem 'hoper'" in reason
