"""Selective Parameter Sharing (SePS) for multi-agent RL, as TorchRL building blocks."""
from __future__ import annotations

from torchrl_seps.modules import GroupedMultiAgentMLP
from torchrl_seps.clustering import AgentClustering
from torchrl_seps.identification import IdentificationResult, identify_groups
from torchrl_seps.transforms import AgentIdentityTransform

__version__ = "0.1.0"

from torchrl_seps.scenarios import agent_types, list_presets, make_env  # noqa: E402
