from __future__ import annotations

from torchrl_seps.modules.grouped_mlp import GroupedMultiAgentMLP, validate_groups, warm_start_sources

__all__ = ["GroupedMultiAgentMLP", "validate_groups", "warm_start_sources"]
from torchrl_seps.modules.identity import IdentityDecoder, IdentityEncoder

__all__ += ["IdentityDecoder", "IdentityEncoder"]
