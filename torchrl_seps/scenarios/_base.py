"""Shared machinery of the scenarios with hidden agent types.

:class:`TypedScenario` is a VMAS :class:`~vmas.simulator.scenario.BaseScenario` whose agents
carry a hidden integer type. VMAS asks a scenario for observations and rewards one agent at a
time; :class:`TypedScenario` answers the first such question of a step by computing the
quantities of *all* agents in one batched call (:meth:`TypedScenario.compute`) and serves the
other agents by slicing that result. The cached result is dropped whenever the world state
changes: after every physics step, on every reset, and whenever an entity is moved through
VMAS's setters (``set_pos``, ``set_vel``, ...), which notify their observers.
"""
from __future__ import annotations

import colorsys
from collections.abc import Sequence
from typing import Any

import torch
from vmas.simulator.core import Agent, Entity, Sphere, World
from vmas.simulator.scenario import BaseScenario
from vmas.simulator.utils import Observer

from torchrl_seps._checks import check_group_sizes
from torchrl_seps._compat import CollisionFreeWorld

__all__ = ["TypedScenario", "type_color", "DECOY_COLOR"]

# Colour-blind friendly hues for the first types; more types get evenly spaced hues.
_PALETTE: tuple[tuple[float, float, float], ...] = (
    (0.12, 0.47, 0.71),  # blue
    (1.00, 0.50, 0.05),  # orange
    (0.17, 0.63, 0.17),  # green
    (0.84, 0.15, 0.16),  # red
    (0.58, 0.40, 0.74),  # purple
    (0.55, 0.34, 0.29),  # brown
    (0.89, 0.47, 0.76),  # pink
    (0.74, 0.74, 0.13),  # olive
    (0.09, 0.75, 0.81),  # cyan
)
#: Colour of entities that belong to no type (decoy landmarks, a shared goal).
DECOY_COLOR: tuple[float, float, float] = (0.45, 0.45, 0.45)


def type_color(type_index: int, n_types: int) -> tuple[float, float, float]:
    """RGB colour (floats in ``[0, 1]``) used to draw entities of a hidden type.

    The first nine types use a fixed colour-blind friendly palette; with more than nine
    types every type gets an evenly spaced hue instead.

    Args:
        type_index (int): the type, in ``[0, n_types)``.
        n_types (int): how many types the scenario has.

    Examples:
        >>> type_color(0, 3)
        (0.12, 0.47, 0.71)
        >>> len({type_color(k, 12) for k in range(12)})
        12
    """
    if not 0 <= type_index < n_types:
        raise ValueError(f"type_index must be in [0, {n_types}), got {type_index}")
    if n_types <= len(_PALETTE):
        return _PALETTE[type_index]
    r, g, b = colorsys.hsv_to_rgb(type_index / n_types, 0.75, 0.85)
    return (r, g, b)


class _StateWatcher(Observer):
    """Drops a scenario's cached per-agent quantities when an entity is moved by hand."""

    def __init__(self, scenario: TypedScenario) -> None:
        self.scenario = scenario

    def notify(self, observable: Any, *args: Any, **kwargs: Any) -> None:
        self.scenario.invalidate()


class TypedScenario(BaseScenario):
    """A VMAS scenario whose agents have hidden types, computed for all agents at once.

    ``make_world`` checks the scenario's keyword arguments (:meth:`validate_config`, which
    :func:`~torchrl_seps.scenarios.make_env` also calls before building anything), records the
    types (:meth:`set_types`) and builds a :class:`~torchrl_seps._compat.CollisionFreeWorld`.
    Subclasses implement :meth:`validate_config`, fill the world in :meth:`build_world`
    (:meth:`add_agents`, their landmarks, then :meth:`finish_world`), implement
    ``reset_world_at`` (e.g. with :meth:`spawn_uniform`) and :meth:`compute`, and get
    ``observation`` / ``reward`` for free.
    Agents must be added in type order and named ``agent_<i>`` so that TorchRL's
    :class:`~torchrl.envs.libs.vmas.VmasEnv` puts them in one group ``"agents"``.

    Attributes:
        config (dict): the scenario's settings, complete (:meth:`validate_config`).
        groups (tuple[int, ...]): agents per type, in agent index order.
        agent_types (torch.Tensor): the hidden type of every agent, ``LongTensor [n_agents]``
            on the world's device. Never part of any observation.
    """

    config: dict[str, Any]
    groups: tuple[int, ...]
    agent_types: torch.Tensor

    @classmethod
    def validate_config(cls, **kwargs: Any) -> dict[str, Any]:
        """Checks the scenario's keyword arguments and returns them completed with defaults,
        ``groups`` (agents per type) among them.

        Raises ``TypeError`` / ``ValueError`` naming the argument, the value seen and what was
        expected. Builds no tensor.
        """
        raise NotImplementedError

    def make_world(self, batch_dim: int, device: torch.device, **kwargs: Any) -> World:
        self.config = self.validate_config(**kwargs)
        self.set_types(self.config["groups"], device)
        world = CollisionFreeWorld(batch_dim, device)
        self.build_world(world, device)
        return world

    def build_world(self, world: World, device: torch.device) -> None:
        """Adds the agents and landmarks of :attr:`config` to ``world``, then
        :meth:`finish_world`."""
        raise NotImplementedError

    def set_types(self, groups: Sequence[int], device: torch.device | str) -> None:
        """Record the hidden types: agents ``0..groups[0]-1`` have type 0, and so on."""
        self.groups = check_group_sizes("groups", groups)
        self.agent_types = torch.repeat_interleave(
            torch.arange(len(self.groups)), torch.tensor(self.groups)
        ).to(device)
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None
        self._agent_index: dict[Agent, int] = {}

    @property
    def n_types(self) -> int:
        """Number of hidden types."""
        return len(self.groups)

    def add_agents(self, world: World, radius: float, **agent_kwargs: Any) -> None:
        """Add one non-colliding, non-rotating agent ``agent_<i>`` per entry of ``agent_types``.

        Agents are drawn in the colour of their type; ``agent_kwargs`` reach
        :class:`~vmas.simulator.core.Agent`.
        """
        for i, k in enumerate(self.agent_types.tolist()):
            world.add_agent(
                Agent(
                    name=f"agent_{i}",
                    shape=Sphere(radius=radius),
                    collide=False,
                    rotatable=False,
                    color=type_color(k, self.n_types),
                    **agent_kwargs,
                )
            )

    def finish_world(self, world: World, view_half_width: float) -> None:
        """Index the agents, watch every entity, and keep a square of the world in view.

        Call at the end of ``make_world``. Moving an entity by hand (``set_pos``, ...) then
        invalidates the cached observations and rewards. VMAS's camera fits the agents only;
        its half-range is at least ``viewer_zoom ** 2``, hence the square root.
        """
        entities = world.agents + world.landmarks
        self._agent_index = {agent: i for i, agent in enumerate(world.agents)}
        watcher = _StateWatcher(self)
        for entity in entities:
            entity.subscribe(watcher)
        self.viewer_zoom = view_half_width**0.5

    def spawn_uniform(
        self, entities: Sequence[Entity], half_width: float, env_index: int | None
    ) -> None:
        """Place ``entities`` uniformly in ``[-half_width, half_width]^2`` (one draw for all)."""
        world = self.world
        n = world.batch_dim if env_index is None else 1
        pos = torch.empty(n, len(entities), world.dim_p, device=world.device)
        pos.uniform_(-half_width, half_width)
        if env_index is not None:
            pos = pos[0]
        for j, entity in enumerate(entities):
            entity.set_pos(pos[..., j, :], batch_index=env_index)
        self.invalidate()

    def invalidate(self) -> None:
        """Forget the per-agent quantities computed for the current state."""
        self._cache = None

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Observations ``[batch, n_agents, obs_dim]`` and rewards ``[batch, n_agents]``.

        Called at most once per world state; must not modify the world.
        """
        raise NotImplementedError

    def _computed(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._cache is None:
            self._cache = self.compute()
        return self._cache

    def observation(self, agent: Agent) -> torch.Tensor:
        return self._computed()[0][:, self._agent_index[agent]]

    def reward(self, agent: Agent) -> torch.Tensor:
        return self._computed()[1][:, self._agent_index[agent]]

    def post_step(self) -> None:
        self.invalidate()

    def to(self, device: torch.device) -> None:
        super().to(device)
        self.invalidate()
