"""The private APIs of tensordict, TorchRL and VMAS that the package relies on, each in one place.

Each use below names the version it was checked against, which ``pyproject.toml`` pins (below
the next minor version), and what it relies on. On an upgrade of one of these libraries, check
its entries here first: nothing else in the package touches their private APIs.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict import TensorDict
from torch import nn
from torchrl.objectives import LossModule
from vmas.simulator.core import World

__all__ = ["CollisionFreeWorld", "delayed_loss_networks", "rebind_loss_parameters", "unchecked_tensordict"]


# --------------------------------------------------------------------------------- tensordict


def unchecked_tensordict(
    source: dict[str, torch.Tensor | TensorDict], batch_size: torch.Size, device: torch.device | None
) -> TensorDict:
    """A TensorDict built without checking its entries' shapes and devices.

    Checked against tensordict 0.14.3: ``TensorDict._new_unsafe(source, batch_size=,
    device=)`` wraps the entries as given, as TorchRL's batched env wrappers build their
    outputs. The caller guarantees that every tensor has the leading dimensions ``batch_size``
    and lies on ``device``.

    Examples:
        >>> td = unchecked_tensordict({"x": torch.zeros(2, 3)}, torch.Size([2]), None)
        >>> td.batch_size, td["x"].shape
        (torch.Size([2]), torch.Size([2, 3]))
    """
    return TensorDict._new_unsafe(source, batch_size=batch_size, device=device)


# ------------------------------------------------------------------------------------- TorchRL

# The functional networks of TorchRL's actor-critic losses, whose parameters they hold as
# ``<name>_params`` (and ``target_<name>_params`` with a delayed copy). Checked against
# torchrl 0.14.1 (A2CLoss, PPO losses, IPPOLoss, MAPPOLoss, SAC, DDPG, TD3).
_LOSS_NETWORKS = ("actor_network", "critic_network", "value_network", "qvalue_network")


def delayed_loss_networks(loss: LossModule) -> list[str]:
    """The networks of ``loss`` that hold a separate target (delayed) copy of their parameters.

    Checked against torchrl 0.14.1: a loss built with ``delay_actor`` / ``delay_value`` holds a
    child module ``target_<network>_params``.
    """
    children = dict(loss.named_children())
    return [name for name in _LOSS_NETWORKS if f"target_{name}_params" in children]


def rebind_loss_parameters(loss: LossModule, modules: Sequence[nn.Module]) -> None:
    """Makes ``loss`` train the current parameters of ``modules`` after they were replaced.

    A TorchRL loss keeps its own references to its networks' parameters, taken when it was
    built. Each of its networks that holds one of ``modules`` is converted again, and the loss's
    caches of detached parameters are cleared. Checked against torchrl 0.14.1:
    ``LossModule.convert_to_functional(module, name)`` re-creates ``<name>_params`` from the
    module's current parameters (no underscore, but documented only as a step of a loss's
    construction), and moving a loss with ``.to()`` clears those caches.
    """
    for name in _LOSS_NETWORKS:
        module = getattr(loss, name, None)
        if getattr(loss, f"{name}_params", None) is None or module is None:
            continue
        if any(m is target for m in module.modules() for target in modules):
            loss.convert_to_functional(module, name)
    loss.to(next(loss.parameters()).device)


# ---------------------------------------------------------------------------------------- VMAS


class CollisionFreeWorld(World):
    """A VMAS :class:`~vmas.simulator.core.World` that skips the pairwise pass where nothing
    collides.

    Every physics step of VMAS's world visits every pair of entities in Python to collect
    colliding pairs and joints, even when no entity collides: ``O(N^2)`` calls per step, which
    took 0.86 s of a 1.1 s step at 1,000 agents of Blind-Particle Spread (64 envs, 2-core CPU).
    Where no entity collides and no joint exists that pass applies no force, so this world
    skips it; otherwise it runs VMAS's own. The results are the same as VMAS's world's, step for
    step (``tests/test_scenarios.py``).

    Checked against vmas 1.5.2: it overrides ``World._apply_vectorized_enviornment_force``
    (spelled so), the private method of a physics step that applies the pairwise collision
    and joint forces, and reads the private list ``World._joints``.
    """

    def _apply_vectorized_enviornment_force(self) -> None:
        if self._joints or any(entity.collide for entity in self.entities):
            super()._apply_vectorized_enviornment_force()
