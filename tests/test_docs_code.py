"""Every ```python block of the README and of the guide (``docs/``) runs as written.

The blocks of one file run in order in one namespace, as a reader would paste them, in a
temporary working directory (a block may write files). Shell blocks are not run.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md"] + sorted(
    path for path in (ROOT / "docs").rglob("*.md") if "_build" not in path.parts
)
BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", flags=re.S | re.M)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(line of the block's first code line, code)`` of every ```python block of ``text``."""
    return [(text.count("\n", 0, match.start(1)) + 1, match.group(1)) for match in BLOCK.finditer(text)]


def run_blocks(path: Path) -> dict:
    """Runs ``path``'s python blocks in order in one namespace; a failure names the file and
    line of its block."""
    namespace: dict = {"__name__": "__docs__"}
    for line, code in python_blocks(path.read_text()):
        # Blank lines in front put the block's lines at their line numbers in tracebacks.
        exec(compile("\n" * (line - 1) + code, str(path), "exec"), namespace)
    return namespace


def documents_with_code() -> list[Path]:
    return [path for path in DOCUMENTS if python_blocks(path.read_text())]


@pytest.mark.parametrize("path", documents_with_code(), ids=lambda path: str(path.relative_to(ROOT)))
def test_python_blocks_run_as_written(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_blocks(path)


def test_the_readme_and_the_guide_have_code_to_run():
    documents = {path.relative_to(ROOT).as_posix() for path in documents_with_code()}
    assert "README.md" in documents
    for page in ("docs/building_blocks.md", "docs/schedule.md", "docs/scenarios.md"):
        assert page in documents, page
    assert len(python_blocks((ROOT / "README.md").read_text())) >= 5


def test_a_failing_block_is_reported_at_its_line(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# A page\n\n```python\nx = 1\n```\n\n```bash\nexit 1\n```\n\n```python\ny = x + 1\nraise ValueError(y)\n```\n")
    assert [line for line, _ in python_blocks(page.read_text())] == [4, 12]
    with pytest.raises(ValueError, match="2") as error:
        run_blocks(page)
    assert error.traceback[-1].lineno + 1 == 13  # pytest counts lines from 0
