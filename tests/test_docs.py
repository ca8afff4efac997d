"""The documentation: it builds without a warning, the API reference covers every public name,
and the relative links of the README and of the guide lead somewhere."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

import torchrl_seps

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "benchmarks" / "README.md"] + sorted(
    path for path in DOCS.rglob("*.md") if "_build" not in path.parts
)


@pytest.mark.skipif(
    importlib.util.find_spec("sphinx") is None or importlib.util.find_spec("myst_parser") is None,
    reason="sphinx and myst-parser are not installed (pip install -e '.[docs]')",
)
def test_the_docs_build_without_warnings(tmp_path):
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html")],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )
    assert build.returncode == 0, build.stderr[-5000:]
    api = (tmp_path / "html" / "api.html").read_text()
    for name in torchrl_seps.__all__:
        assert f'id="torchrl_seps.{name}"' in api, name


def test_the_api_reference_has_a_section_and_an_example_for_every_public_name():
    reference = (DOCS / "api.rst").read_text()
    documented = re.findall(r"^\.\. auto(?:class|function):: torchrl_seps\.(\w+)$", reference, flags=re.M)
    assert sorted(documented) == sorted(torchrl_seps.__all__)
    for name in torchrl_seps.__all__:
        assert re.search(rf"^{name}\n~+\n", reference, flags=re.M), f"no section titled {name}"
        assert ">>> " in (getattr(torchrl_seps, name).__doc__ or ""), f"{name} has no example"


def github_slug(heading: str) -> str:
    """The anchor GitHub (and MyST's heading anchors) give a Markdown heading."""
    heading = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", heading).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    return {github_slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


def relative_links(page: Path) -> list[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    return [target for target in re.findall(r"\]\(([^)\s]+)\)", text)
            if not re.match(r"[a-z]+:", target)]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_lead_to_files_and_headings(page):
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        assert destination.exists(), f"{page.name}: {target}"
        if anchor and destination.suffix == ".md":
            assert anchor in anchors(destination), f"{page.name}: {target}"


def test_the_slugs_are_githubs():
    assert github_slug("bps-1, FuPS warm-up (3 seeds, 120k frames)") == "bps-1-fups-warm-up-3-seeds-120k-frames"
    assert github_slug("Grid-world speed (`benchmarks/grid_speed.py`)") == "grid-world-speed-benchmarksgrid_speedpy"
