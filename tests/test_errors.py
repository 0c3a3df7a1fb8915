import pytest

from sagemaker_rl.errors import USER_ERROR_EXIT, UserError, check_count, cli, did_you_mean
from sagemaker_rl.tuning import TuningError


def test_did_you_mean_names_the_closest_choice_only_when_close():
    assert did_you_mean("hoper", ["reacher", "hopper"]) == " (did you mean 'hopper'?)"
    assert did_you_mean("walker", ["reacher", "hopper"]) == ""


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "3", None])
def test_a_count_must_be_a_whole_number_of_at_least_one(value):
    with pytest.raises(UserError, match=f"max_jobs must be a whole number >= 1, got {value!r}"):
        check_count("max_jobs", value)


def test_an_optional_count_may_be_none():
    check_count("max_jobs", None, optional=True)
    check_count("max_jobs", 1)


def test_every_command_reports_a_user_error_in_one_line_and_exits_2(capsys):
    @cli
    def main(reason: str) -> int:
        raise TuningError(reason)  # the tuning family is a user error too

    assert main("max_jobs must be a whole number >= 1, got 0") == USER_ERROR_EXIT == 2
    assert capsys.readouterr().err == "error: max_jobs must be a whole number >= 1, got 0\n"


def test_an_internal_error_is_not_swallowed():
    @cli
    def main() -> int:
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError):
        main()
