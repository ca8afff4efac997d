"""Rotated-controls navigation: agent types differ in how their actions move them.

Every agent wants the same thing, to reach a goal, and is rewarded by the same function of
its position. What differs between the hidden types is the transition function: an agent of
type ``k`` moves in the direction of its action rotated by a fixed angle ``angles[k]``. Two
types with angles 0 and 180 degrees push in opposite directions for the same action; four
types at 0, 90, 180 and 270 degrees see their moves permuted.

- Given (observation, action), the next observation depends on the type: a model that
  reconstructs the next observation can tell the types apart, while rewards of a state
  cannot.
- A policy shared by all types, without being told the type, cannot act well for all: the
  same observation calls for a different action per type, and the average of the types'
  best moves cancels out. One policy per type can be optimal.
- Agents move kinematically (each step's displacement is set by that step's action alone)
  and do not observe their velocity: the type cannot be read off the observation, and the
  next observation is a deterministic function of (observation, action, type).
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import torch
from vmas.simulator.core import Agent, Landmark, Sphere, World

from torchrl_seps._checks import check_float, check_group_sizes, check_options
from torchrl_seps.scenarios._base import DECOY_COLOR, TypedScenario

__all__ = ["RotatedNavigation"]


class RotatedNavigation(TypedScenario):
    """Reach a shared goal when your controls are rotated by a hidden, per-type angle.

    A VMAS :class:`~vmas.simulator.scenario.BaseScenario`. Agents ``agent_0 .. agent_{N-1}``
    get types in index order from ``groups`` (``groups=(4, 4)``: agents 0-3 type 0, agents
    4-7 type 1). One goal landmark per environment.

    - **Observation** of an agent (4 floats): its position (2), the goal's position relative
      to the agent (2). No type and no velocity appear in it.
    - **Reward** of an agent, every step: ``-0.5 * ||pos - goal||``, the same for every type.
    - **Dynamics**: an action ``u`` in ``[-1, 1]^2`` (the 5 discrete moves of
      :func:`~torchrl_seps.scenarios.make_env` map to ``(0, 0)`` and unit axis vectors) of
      an agent of type ``k`` moves it by ``step_size * R(angles[k]) @ u`` in one step, where
      ``R(a)`` is the counter-clockwise rotation by ``a`` degrees. Velocity does not carry
      over between steps (VMAS drag 1). No collisions.
    - **Reset**: agents uniform in ``[-agent_spawn, agent_spawn]^2``, goal uniform in
      ``[-goal_spawn, goal_spawn]^2``. Episodes end by a time limit (``max_steps``).

    Keyword Args (passed to ``make_world``):
        groups (sequence of int): agents per type. Default ``(4, 4)``.
        angles (sequence of float, optional): rotation of every type's controls, in degrees.
            Default: evenly spaced, ``360 * k / len(groups)``.
        step_size (float): distance moved in one step by a unit action. Default ``0.15``.
        agent_spawn (float): half-width of the agents' spawn square. Default ``1.0``.
        goal_spawn (float): half-width of the goal's spawn square. Default ``2.0``.

    Attributes:
        agent_types (torch.Tensor): the type of every agent, ``LongTensor [n_agents]``.
        angles (tuple[float, ...]): the rotation of every type, in degrees.

    Examples:
        >>> import vmas
        >>> env = vmas.make_env(RotatedNavigation(), num_envs=2, groups=(1, 1), seed=0)
        >>> obs = env.reset()
        >>> env.scenario.angles
        (0.0, 180.0)
        >>> push = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # the same action for both agents
        >>> before = [a.state.pos.clone() for a in env.agents]
        >>> _ = env.step([push, push])
        >>> [[round(x, 4) for x in (a.state.pos - b)[0].tolist()] for a, b in zip(env.agents, before)]
        [[0.15, 0.0], [-0.15, 0.0]]
    """

    #: Radius of an agent (drawing only: agents do not collide).
    AGENT_RADIUS = 0.1
    #: Radius of the goal (drawing only).
    GOAL_RADIUS = 0.1
    #: Reward per unit of distance to the goal.
    DISTANCE_PENALTY = 0.5

    _KWARGS = ("groups", "angles", "step_size", "agent_spawn", "goal_spawn")

    @classmethod
    def validate_config(cls, **kwargs: Any) -> dict[str, Any]:
        """Check scenario keyword arguments and return them completed with defaults.

        Raises ``TypeError`` / ``ValueError`` naming the argument, the value seen and what
        was expected. Builds no tensor.

        Examples:
            >>> RotatedNavigation.validate_config(groups=(5, 5, 5, 5))["angles"]
            (0.0, 90.0, 180.0, 270.0)
            >>> RotatedNavigation.validate_config(groups=(2, 2), angles=(0.0,))
            Traceback (most recent call last):
            ...
            ValueError: angles must have one angle per type (2), got 1: (0.0,)
        """
        check_options(cls.__name__, kwargs, cls._KWARGS)
        groups = check_group_sizes("groups", kwargs.get("groups", (4, 4)))
        angles = kwargs.get("angles")
        if angles is None:
            angles = tuple(360.0 * k / len(groups) for k in range(len(groups)))
        if isinstance(angles, (str, bytes)) or not isinstance(angles, Sequence):
            raise TypeError(
                f"angles must be a sequence of numbers (degrees, one per type), got {angles!r}"
            )
        if len(angles) != len(groups):
            raise ValueError(
                f"angles must have one angle per type ({len(groups)}), got {len(angles)}: {angles!r}"
            )
        if any(isinstance(a, bool) or not isinstance(a, numbers.Real) for a in angles):
            raise TypeError(f"angles must contain numbers (degrees), got {angles!r}")
        if not all(math.isfinite(a) for a in angles):
            raise ValueError(f"angles must be finite, got {angles!r}")
        return {
            "groups": groups,
            "angles": tuple(float(a) for a in angles),
            "step_size": check_float("step_size", kwargs.get("step_size", 0.15), positive=True),
            "agent_spawn": check_float("agent_spawn", kwargs.get("agent_spawn", 1.0), positive=True),
            "goal_spawn": check_float("goal_spawn", kwargs.get("goal_spawn", 2.0), positive=True),
        }

    def build_world(self, world: World, device: torch.device) -> None:
        config = self.config
        self.angles = config["angles"]
        self.agent_spawn = config["agent_spawn"]
        self.goal_spawn = config["goal_spawn"]
        radians = torch.tensor(self.angles, dtype=torch.float64) * math.pi / 180.0
        cos, sin = radians.cos(), radians.sin()
        rotations = torch.stack(
            [torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2
        )  # [K, 2, 2], column-vector convention
        rotations[rotations.abs() < 1e-12] = 0.0  # exact moves for multiples of 90 degrees
        # Right-multiplication matrices for row vectors: u_row @ R^T.
        self._rotations_t = rotations.transpose(-1, -2).to(torch.float32).to(device)
        self._identity_type = [a % 360.0 == 0.0 for a in self.angles]

        self.add_agents(
            world,
            self.AGENT_RADIUS,
            drag=1.0,  # no velocity carried over: displacement = force * dt^2
            u_multiplier=config["step_size"] / world.dt**2,
        )
        world.add_landmark(
            Landmark(
                name="goal",
                shape=Sphere(radius=self.GOAL_RADIUS),
                collide=False,
                movable=False,
                color=DECOY_COLOR,
            )
        )
        self._agent_type_list = self.agent_types.tolist()
        self.finish_world(world, view_half_width=self.goal_spawn + 2 * self.AGENT_RADIUS)

    def reset_world_at(self, env_index: int | None = None) -> None:
        self.spawn_uniform(self.world.agents, self.agent_spawn, env_index)
        self.spawn_uniform(self.world.landmarks, self.goal_spawn, env_index)

    def process_action(self, agent: Agent) -> None:
        k = self._agent_type_list[self._agent_index[agent]]
        if not self._identity_type[k]:
            agent.action.u = agent.action.u @ self._rotations_t[k]

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        pos = torch.stack([a.state.pos for a in self.world.agents], dim=1)  # [B, N, 2]
        rel = self.world.landmarks[0].state.pos.unsqueeze(1) - pos  # [B, N, 2]
        obs = torch.cat([pos, rel], dim=-1)
        reward = -self.DISTANCE_PENALTY * torch.linalg.vector_norm(rel, dim=-1)
        return obs, reward
