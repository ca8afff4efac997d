"""Selective Parameter Sharing (SePS) for multi-agent RL, as TorchRL building blocks.

The names below are the public API, as the README's tour uses them: the grouped network, the
identification of groups (and its options and result), the identity transform, SePS during
training (the schedule and regrouping), the grouped actor and critic, and the scenarios with
hidden agent types.

Each name is imported from its module on first use, so that importing a torch-free module of the
package (:mod:`torchrl_seps.settings`, which a command line reads before torch loads) does not
load torch and TorchRL.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Each public name and the module it lives in.
_HOMES = {
    "AgentClustering": "torchrl_seps.clustering",
    "AgentIdentityTransform": "torchrl_seps.transforms",
    "GroupedMultiAgentMLP": "torchrl_seps.modules",
    "IdentificationOptions": "torchrl_seps.identification",
    "IdentificationResult": "torchrl_seps.identification",
    "SePSSchedule": "torchrl_seps.schedule",
    "agent_types": "torchrl_seps.scenarios",
    "identify_from_transitions": "torchrl_seps.identification",
    "identify_groups": "torchrl_seps.identification",
    "list_presets": "torchrl_seps.scenarios",
    "make_actor": "torchrl_seps.policies",
    "make_critic": "torchrl_seps.policies",
    "make_env": "torchrl_seps.scenarios",
    "regroup": "torchrl_seps.schedule",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
