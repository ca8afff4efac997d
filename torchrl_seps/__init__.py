"""Selective Parameter Sharing (SePS) for multi-agent RL, as TorchRL building blocks.

The names below are the public API, as the README's tour uses them: the grouped network, the
identification of groups (and its options and result), the identity transform, SePS during
training (the schedule and regrouping), the grouped actor and critic, and the scenarios with
hidden agent types.
"""
from __future__ import annotations

from torchrl_seps.clustering import AgentClustering
from torchrl_seps.identification import (
    IdentificationOptions,
    IdentificationResult,
    identify_from_transitions,
    identify_groups,
)
from torchrl_seps.modules import GroupedMultiAgentMLP
from torchrl_seps.policies import make_actor, make_critic
from torchrl_seps.scenarios import agent_types, list_presets, make_env
from torchrl_seps.schedule import SePSSchedule, regroup
from torchrl_seps.transforms import AgentIdentityTransform

__version__ = "0.1.0"

__all__ = [
    "AgentClustering",
    "AgentIdentityTransform",
    "GroupedMultiAgentMLP",
    "IdentificationOptions",
    "IdentificationResult",
    "SePSSchedule",
    "agent_types",
    "identify_from_transitions",
    "identify_groups",
    "list_presets",
    "make_actor",
    "make_critic",
    "make_env",
    "regroup",
]
