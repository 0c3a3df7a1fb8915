"""The docs site: its generated reference follows the job's field tables, the README's figures follow the results,
and the site builds strictly and renders in a real browser."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sagemaker_rl.job import hyperparameters, reference
from sagemaker_rl.job.keys import ENV_KWARGS_KEY, ppo_key
from sagemaker_rl.job.values import FieldSpec

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
CHROMIUM = shutil.which("chromium")


def _accepted_keys() -> list[str]:
    """Every key the job's parser takes, read from its own tables (not from the generator)."""
    return [*hyperparameters._known_keys(), *(ppo_key(f"model_config.{name}") for name in hyperparameters.MODEL_FIELDS),
            ENV_KWARGS_KEY + ".<name>"]


def _table_keys(markdown: str) -> list[str]:
    return re.findall(r"^\| `([^`]+)` \|", markdown, re.MULTILINE)


def test_the_hyperparameter_table_has_one_row_per_key_the_job_takes():
    assert sorted(_table_keys(reference.hyperparameter_table())) == sorted(_accepted_keys())


def test_a_field_added_to_the_job_without_a_meaning_fails_the_table(monkeypatch):
    monkeypatch.setitem(hyperparameters.PPO_FIELDS, "new_field", FieldSpec((float,)))
    with pytest.raises(KeyError, match="new_field"):
        reference.hyperparameter_table()
    monkeypatch.setitem(reference.RLLIB_MEANINGS, "new_field", "what it does")
    assert ppo_key("new_field") in _table_keys(reference.hyperparameter_table())


def test_a_row_shows_the_fields_type_bounds_choices_and_default():
    lines = [line for line in reference.hyperparameter_table().splitlines() if line.startswith("| `")]
    rows = {key: line for line in lines for key in _table_keys(line)}
    assert rows[ppo_key("lr")] == "| `rl.training.config.lr` | float or schedule | > 0, ≤ 1 | 0.0001 | learning rate |"
    assert "`truncate_episodes`, `complete_episodes` | `complete_episodes`" in rows[ppo_key("batch_mode")]
    assert "| list of int | 1–16 items, each ≥ 1, ≤ 4,096 | `[64, 64]` |" in rows[ppo_key("model_config.fcnet_hiddens")]
    assert "| int | ≥ 1, ≤ 1e7 | 5 |" in rows["rl.training.checkpoint_freq"]


def test_the_readme_headline_block_is_bench_pages_headline():
    # In a child: bench/pages.py imports its siblings (common, generic_default) from bench/ on sys.path.
    check = subprocess.run([sys.executable, str(ROOT / "docs" / "hooks.py"), "readme", "--check"], cwd=ROOT,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr  # "... run `make docs`"


def test_the_readme_is_short_and_links_into_pages_that_exist():
    text = README.read_text()
    assert len(text.splitlines()) <= 150
    for page in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / page).is_file(), page


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built strictly (a warning, a broken link or anchor fails) into a temporary directory."""
    site_dir = tmp_path_factory.mktemp("site")
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)]
    quiet = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's notice about MkDocs 2
    built = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=quiet)
    assert built.returncode == 0, built.stderr
    return site_dir


def test_the_readme_anchors_into_the_docs_exist_on_the_built_pages(site: Path):
    for page, anchor in re.findall(r"\]\(docs/([^)#]+)\.md#([^)]+)\)", README.read_text()):
        assert f'id="{anchor}"' in (site / page / "index.html").read_text(), f"docs/{page}.md#{anchor}"


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not on PATH (apt-get install chromium; .ci/run installs it)")
def test_the_hyperparameter_page_renders_every_row_in_a_browser(site: Path, tmp_path: Path):
    page = site / "hyperparameters" / "index.html"
    dumped = subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
                             f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
                            capture_output=True, text=True, timeout=120)
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    rendered = {html.unescape(key) for key in re.findall(r"<tr>\s*<td><code>([^<]+)</code></td>", dumped.stdout)}
    assert not set(_accepted_keys()) - rendered, "keys the job takes without a row on the rendered page"
