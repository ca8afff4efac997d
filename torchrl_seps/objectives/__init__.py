from __future__ import annotations

from torchrl_seps.objectives.identity import IdentityLoss

__all__ = ["IdentityLoss"]
