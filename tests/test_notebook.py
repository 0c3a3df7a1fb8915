"""examples/tune_reacher.ipynb runs from top to bottom in a Jupyter kernel: a real tiny study shown as a live
table and its report, a job trained with the answer, its policy evaluated with a GIF (slow: ~3 minutes)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "tune_reacher.ipynb"


def _outputs(notebook: nbformat.NotebookNode) -> list[str]:
    """Every output's text and HTML, in order."""
    found = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            found.append(output.get("text", "") + data.get("text/plain", "") + data.get("text/html", ""))
    return found


def _execute(notebook: nbformat.NotebookNode, cwd: Path, *, timeout_s: int) -> None:
    """Run every cell in a fresh kernel working in `cwd` (CellExecutionError on a cell's error)."""
    resources = {"metadata": {"path": str(cwd)}}
    NotebookClient(notebook, timeout=timeout_s, kernel_name="python3", resources=resources).execute()


def test_the_notebooks_cells_have_no_stored_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") and not cell.get("execution_count") for cell in notebook.cells
               if cell.cell_type == "code")


@pytest.mark.slow
def test_the_example_notebook_tunes_trains_and_evaluates_reacher(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    _execute(notebook, tmp_path, timeout_s=600)
    outputs = _outputs(notebook)
    assert any("<table>" in text and "complete" in text for text in outputs)  # the live table, at its last update
    assert any("<div><iframe srcdoc=" in text for text in outputs)  # the report inline
    assert any("rl.training.config.lr" in text for text in outputs)  # the answer
    assert any(text.startswith("returns: ") for text in outputs)
    assert (tmp_path / "reacher.gif").stat().st_size > 0
    run_dir = tmp_path / "runs" / "tune-reacher-notebook"
    trials = sorted((run_dir / "trials").iterdir())
    assert len(trials) == 3
    for trial in trials:  # every job's TensorBoard events are under the run directory
        assert list(trial.rglob("events.out.tfevents.*")), trial


def test_a_run_in_a_notebook_shows_its_trials_as_a_live_table_then_its_report(tmp_path):
    """The notebook view on the job contract's test double: one display updated in place, then the report."""
    fake_job = Path(__file__).resolve().parent / "tuning" / "fake_job.py"
    code = f"""
import sys
from sagemaker_rl import api
from sagemaker_rl.tuning import LocalProcessRunner
space = api.SearchSpace((api.ContinuousParameter("rl.training.config.kl_coeff", 0.5, 2.0),),
                        {{"rl.training.stop.training_iteration": 3}})
tuning = api.tune(problem="reacher", space=space, max_jobs=3, run_dir="run", num_cpus=2, reevaluate_top=0,
                  check_hyperparameters=False, runner=LocalProcessRunner([sys.executable, {str(fake_job)!r}]))
"""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    _execute(notebook, tmp_path, timeout_s=120)
    outputs = notebook.cells[0].outputs
    displays = [output for output in outputs if output.output_type == "display_data"]
    assert len(displays) == 2, outputs  # the live view (updated in place) and the report
    live, report = (output.data["text/html"] for output in displays)
    assert "3/3 done" in live and live.count("<td>complete</td>") == 3
    assert report.startswith("<div><iframe srcdoc=")
    streams = [output.text for output in outputs if output.output_type == "stream"]
    # no console or log lines; tqdm (imported by Optuna) warns once that ipywidgets is not installed
    assert all("TqdmWarning: IProgress not found" in text and text.count("Warning") == 1 for text in streams), streams
