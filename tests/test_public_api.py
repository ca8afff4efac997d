"""The public API: what ``torchrl_seps.__all__`` lists, and what the README imports."""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

import torchrl_seps

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_imports() -> list[tuple[str, list[str]]]:
    """``(module, names)`` of every ``from torchrl_seps... import ...`` in the README's code."""
    code = "\n".join(re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S))
    return [
        (module, [name.strip() for name in names.split(",")])
        for module, names in re.findall(r"^from (torchrl_seps[\w.]*) import ([\w, ]+)$", code, flags=re.M)
    ]


@pytest.mark.parametrize("name", torchrl_seps.__all__)
def test_every_public_name_imports(name):
    assert getattr(torchrl_seps, name) is not None
    namespace: dict = {}
    exec(f"from torchrl_seps import {name}", namespace)
    assert namespace[name] is getattr(torchrl_seps, name)


def test_the_readme_imports_resolve_and_the_tour_is_public():
    imports = readme_imports()
    assert imports, "the README's code imports from torchrl_seps"
    for module, names in imports:
        for name in names:
            assert hasattr(importlib.import_module(module), name), (module, name)
    top_level = {name for module, names in imports if module == "torchrl_seps" for name in names}
    assert top_level <= set(torchrl_seps.__all__)
    # the tour's building blocks, by name
    for name in ("identify_groups", "identify_from_transitions", "IdentificationOptions",
                 "AgentIdentityTransform", "GroupedMultiAgentMLP", "SePSSchedule", "regroup",
                 "make_actor", "make_critic", "make_env", "list_presets", "agent_types"):
        assert name in torchrl_seps.__all__, name


def test_all_lists_each_name_once_and_sorted():
    assert sorted(set(torchrl_seps.__all__)) == torchrl_seps.__all__
