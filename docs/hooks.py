"""The docs' generated parts: an MkDocs hook that fills `<!-- generated: NAME -->` markers from the code.

A figure or a table the code already holds is written once, there: the hyperparameter reference comes from the
job's field tables (`sagemaker_rl/job/reference.py`), the command-line reference from the scripts' own argparse
parsers, the benchmark page from `bench/results/*.json` (`bench/pages.py`). The README's headline figures come from
`bench/pages.py` too: `python docs/hooks.py readme` rewrites its block (`make docs`; `--check` only compares), and a
build whose README block is stale fails (strict mode), as does a marker nobody generates.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BENCH_PAGES = ROOT / "bench" / "pages.py"
MARKER = re.compile(r"<!-- generated: ([a-z-]+) -->")
HEADLINE = re.compile(r"(<!-- headline:start -->\n)(.*?)(<!-- headline:end -->)", re.S)
HELP_COLUMNS = 100  # the width argparse wraps the help to, whatever terminal builds the docs

log = logging.getLogger("mkdocs.hooks.generated")  # under "mkdocs": strict mode counts its warnings


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """The page with every marker replaced by what it names."""
    return MARKER.sub(lambda match: _generate(match.group(1), page.file.src_path), markdown)


def on_post_build(**_: Any) -> None:
    if readme_headline() != headline_block():
        log.warning("README.md's headline block differs from bench/pages.py's headline(): run `make docs`")


def readme_headline() -> str:
    """What README.md's `<!-- headline:start -->` block holds now."""
    match = HEADLINE.search(README.read_text())
    if match is None:
        raise PluginError("README.md has no <!-- headline:start --> ... <!-- headline:end --> block")
    return match.group(2)


def headline_block() -> str:
    """What README.md's headline block should hold: bench/pages.py's headline(), ending in a newline."""
    return bench_pages().headline().strip("\n") + "\n"


def rewrite_readme() -> bool:
    """Put headline_block() into README.md; True when that changed the file."""
    text = README.read_text()
    if HEADLINE.search(text) is None:
        readme_headline()  # raises, naming the missing block
    new = HEADLINE.sub(lambda match: match.group(1) + headline_block() + match.group(3), text, count=1)
    if new != text:
        README.write_text(new)
    return new != text


def _generate(name: str, page: str) -> str:
    generators: dict[str, Callable[[], str]] = {
        "hyperparameters": lambda: _reference().hyperparameter_table(),
        "old-names": lambda: _reference().old_names_table(),
        "refused": lambda: _reference().refused_table(),
        "cli-train": lambda: cli_help("train"),
        "cli-tune": lambda: cli_help("tune"),
        "benchmarks": lambda: bench_pages().benchmark_page(),
    }
    if name not in generators:
        raise PluginError(f"{page}: unknown marker <!-- generated: {name} -->: docs/hooks.py generates "
                          f"{', '.join(generators)}")
    return generators[name]()


def _reference() -> ModuleType:
    from sagemaker_rl.job import reference

    return reference


@functools.cache
def bench_pages() -> ModuleType:
    """bench/pages.py, the benchmark page and headline figures from bench/results/*.json."""
    if not BENCH_PAGES.exists():
        raise PluginError("docs/benchmarks.md and README.md's headline figures come from bench/pages.py "
                          "(benchmark_page() and headline()), which does not exist")
    return _load(BENCH_PAGES, "bench_pages")


@functools.cache
def cli_help(script: str) -> str:
    """`scripts/SCRIPT.py --help` from its own parser (the script's `build_parser()`), as a Markdown code block."""
    module = _load(ROOT / "scripts" / f"{script}.py", f"scripts_{script}")
    if not hasattr(module, "build_parser"):
        raise PluginError(f"scripts/{script}.py has no build_parser(): the command-line reference is generated from it")
    parser = module.build_parser()
    parser.formatter_class = functools.partial(parser.formatter_class, width=HELP_COLUMNS)
    return f"```text\n{parser.format_help().rstrip()}\n```\n"


def _load(path: Path, name: str) -> ModuleType:
    """The module at `path`; its directory goes on sys.path first (scripts and benchmarks import their siblings)."""
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before it runs: its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> int:
    """`readme`: rewrite README.md's headline block; `readme --check`: exit 1 when it is stale."""
    if argv not in (["readme"], ["readme", "--check"]):
        print("usage: python docs/hooks.py readme [--check]   (README.md's headline block from bench/pages.py)",
              file=sys.stderr)
        return 2
    try:
        if "--check" in argv:
            stale = readme_headline() != headline_block()
            if stale:
                print("README.md's headline figures differ from bench/results: run `make docs`", file=sys.stderr)
            return int(stale)
        changed = rewrite_readme()
    except PluginError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"README.md: headline block {'rewritten' if changed else 'already current'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
