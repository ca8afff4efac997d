"""Blind-Particle Spread (BPS): agents must reach the landmark of a colour they cannot see.

The task of Christianos et al. (ICML 2021) for Selective Parameter Sharing, as a vectorised
VMAS scenario. Every agent has a hidden colour (its type); every landmark has a colour. An
agent is rewarded for being close to the landmark of its own colour, but nothing in its
observation says which colour that is: the landmarks are listed in a fixed order, the same
for every agent. Agents of different colours therefore need different policies on the same
observations, which is what parameter sharing across colours cannot provide.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from vmas.simulator.core import Landmark, Sphere, World

from torchrl_seps._checks import check_bool, check_float, check_group_sizes, check_int, check_options, is_int
from torchrl_seps.scenarios._base import DECOY_COLOR, TypedScenario, type_color

__all__ = ["BlindParticleSpread"]


def _check_permutations(
    permutations: Any, n_types: int, obs_dim: int
) -> tuple[tuple[int, ...], ...]:
    if isinstance(permutations, (str, bytes)) or not isinstance(permutations, Sequence):
        raise TypeError(
            "obs_permutations must be a sequence with one permutation per colour, "
            f"got {type(permutations).__name__} {permutations!r}"
        )
    if len(permutations) != n_types:
        raise ValueError(
            f"obs_permutations must have one permutation per colour ({n_types}), "
            f"got {len(permutations)}"
        )
    out = []
    for colour, perm in enumerate(permutations):
        if isinstance(perm, torch.Tensor):
            perm = perm.tolist()
        if isinstance(perm, (str, bytes)) or not isinstance(perm, Sequence):
            raise TypeError(
                f"obs_permutations[{colour}] must be a sequence of ints, got {perm!r}"
            )
        if len(perm) != obs_dim:
            raise ValueError(
                f"obs_permutations[{colour}] must have length {obs_dim} (the observation "
                f"size), got length {len(perm)}"
            )
        if not all(map(is_int, perm)):
            raise TypeError(f"obs_permutations[{colour}] must contain ints, got {perm!r}")
        if sorted(int(i) for i in perm) != list(range(obs_dim)):
            raise ValueError(
                f"obs_permutations[{colour}] must be a permutation of range({obs_dim}), "
                f"got {list(perm)}"
            )
        out.append(tuple(int(i) for i in perm))
    return tuple(out)


def _random_permutations(n_types: int, obs_dim: int, seed: int) -> tuple[tuple[int, ...], ...]:
    """One fixed permutation per colour, pairwise distinct, none the identity."""
    generator = torch.Generator().manual_seed(seed)
    identity = tuple(range(obs_dim))
    perms: list[tuple[int, ...]] = []
    while len(perms) < n_types:
        perm = tuple(torch.randperm(obs_dim, generator=generator).tolist())
        if perm != identity and perm not in perms:
            perms.append(perm)
    return tuple(perms)


class BlindParticleSpread(TypedScenario):
    """Blind-Particle Spread: reach the landmark of your own, unobserved, colour.

    A VMAS :class:`~vmas.simulator.scenario.BaseScenario`. Agents ``agent_0 .. agent_{N-1}``
    get colours in index order from ``groups``: with ``groups=(5, 5, 5)`` agents 0-4 have
    colour 0, agents 5-9 colour 1, agents 10-14 colour 2. Landmark ``c`` has colour ``c``.

    - **Observation** of an agent (``4 + 2 * n_landmarks`` floats): its velocity (2), its
      position (2), then the position of every landmark relative to the agent (2 each), in
      landmark order. No colour appears in it. With ``obs_permutations`` (or
      ``permute_obs=True``) the vector of an agent of colour ``c`` is reordered by a fixed
      permutation ``p_c``: ``obs[i] = raw[p_c[i]]``.
    - **Reward** of an agent, every step: ``-0.5 * ||pos - landmark[colour].pos||``.
    - **Reset**: agents uniform in ``[-agent_spawn, agent_spawn]^2`` with zero velocity,
      landmarks uniform in ``[-landmark_spawn, landmark_spawn]^2``.
    - **Physics** (as in the particle environments): no collisions, mass 1, drag 0.25,
      dt 0.1, force ``5 * u`` for an action ``u`` in ``[-1, 1]^2``. Episodes end only by a
      time limit: pass ``max_steps=50`` to the environment (``make_env`` does).
    - **Actions**: 2-D continuous forces. With ``continuous_actions=False`` plain VMAS offers
      its 9 discrete moves (with diagonals); :func:`~torchrl_seps.scenarios.make_env` instead
      offers the paper's 5 (no-op, -x, +x, -y, +y) through
      :class:`~torchrl_seps.scenarios.DiscreteActionTable`.

    Keyword Args (passed to ``make_world``, i.e. as extra keyword arguments of
    ``vmas.make_env`` or :class:`~torchrl.envs.libs.vmas.VmasEnv`):
        groups (sequence of int): agents per colour. Default ``(5, 5, 5)``.
        n_landmarks (int, optional): number of landmarks, at least ``len(groups)``. Landmarks
            beyond the colours are decoys nobody is rewarded for (they keep the observation
            the same size in a control task with fewer colours). Default ``len(groups)``.
        permute_obs (bool): give each colour a fixed random permutation of its observation
            vector, drawn from ``permutation_seed``. Default ``False``.
        obs_permutations (sequence of sequences of int, optional): explicit permutations,
            one per colour, each of length ``4 + 2 * n_landmarks``. Overrides ``permute_obs``.
        permutation_seed (int): seed of the permutations of ``permute_obs``. Default ``0``.
        agent_spawn (float): half-width of the agents' spawn square. Default ``1.0``.
        landmark_spawn (float): half-width of the landmarks' spawn square. Default ``3.0``.

    Attributes:
        agent_types (torch.Tensor): the colour of every agent, ``LongTensor [n_agents]``.
        obs_permutations (tuple or None): the permutation of every colour, if any.

    Examples:
        >>> import vmas
        >>> env = vmas.make_env(BlindParticleSpread(), num_envs=2, groups=(2, 1), seed=0)
        >>> obs = env.reset()
        >>> len(obs), tuple(obs[0].shape)  # 3 agents; 2 envs x (2 + 2 + 2 * 2 landmarks)
        (3, (2, 8))
        >>> env.scenario.agent_types
        tensor([0, 0, 1])
        >>> obs, rews, dones, info = env.step([torch.zeros(2, 2)] * 3)
        >>> tuple(rews[0].shape)
        (2,)
    """

    #: Radius of an agent (it does not collide: this only matters for drawing).
    AGENT_RADIUS = 0.15
    #: Radius of a landmark (drawing only).
    LANDMARK_RADIUS = 0.1
    #: Force per unit of action (the particle environments' "sensitivity").
    ACTION_MULTIPLIER = 5.0
    #: Reward per unit of distance to the own-colour landmark.
    DISTANCE_PENALTY = 0.5

    _KWARGS = (
        "groups",
        "n_landmarks",
        "permute_obs",
        "obs_permutations",
        "permutation_seed",
        "agent_spawn",
        "landmark_spawn",
    )

    @classmethod
    def validate_config(cls, **kwargs: Any) -> dict[str, Any]:
        """Check scenario keyword arguments and return them completed with defaults.

        Raises ``TypeError`` / ``ValueError`` naming the argument, the value seen and what
        was expected. Builds no tensor.

        Examples:
            >>> BlindParticleSpread.validate_config(groups=[2, 3])["n_landmarks"]
            2
            >>> BlindParticleSpread.validate_config(groups=[2, 0])
            Traceback (most recent call last):
            ...
            ValueError: every entry of groups must be >= 1, got [2, 0]
        """
        check_options(cls.__name__, kwargs, cls._KWARGS)
        groups = check_group_sizes("groups", kwargs.get("groups", (5, 5, 5)))
        n_landmarks = kwargs.get("n_landmarks")
        if n_landmarks is None:
            n_landmarks = len(groups)
        check_int("n_landmarks", n_landmarks)
        if n_landmarks < len(groups):
            raise ValueError(
                f"n_landmarks must be >= the number of colours ({len(groups)}), got {n_landmarks}"
            )
        permute_obs = kwargs.get("permute_obs", False)
        check_bool("permute_obs", permute_obs)
        seed = check_int("permutation_seed", kwargs.get("permutation_seed", 0), minimum=None)
        obs_dim = 4 + 2 * int(n_landmarks)
        permutations = kwargs.get("obs_permutations")
        if permutations is not None:
            permutations = _check_permutations(permutations, len(groups), obs_dim)
        elif permute_obs:
            permutations = _random_permutations(len(groups), obs_dim, int(seed))
        return {
            "groups": groups,
            "n_landmarks": int(n_landmarks),
            "permute_obs": permutations is not None,
            "obs_permutations": permutations,
            "permutation_seed": int(seed),
            "agent_spawn": check_float(
                "agent_spawn", kwargs.get("agent_spawn", 1.0), positive=True
            ),
            "landmark_spawn": check_float(
                "landmark_spawn", kwargs.get("landmark_spawn", 3.0), positive=True
            ),
        }

    def build_world(self, world: World, device: torch.device) -> None:
        config = self.config
        self.agent_spawn = config["agent_spawn"]
        self.landmark_spawn = config["landmark_spawn"]
        self.obs_permutations = config["obs_permutations"]
        n_landmarks = config["n_landmarks"]
        self.obs_dim = 4 + 2 * n_landmarks
        # Columns of agent i's own-colour landmark in the unpermuted observation: [N, 2].
        self._own_columns = 4 + 2 * self.agent_types.unsqueeze(-1) + torch.arange(2, device=device)
        self._obs_index = None
        if self.obs_permutations is not None:
            # Row i of _obs_index is agent i's permutation: obs[:, i] = raw[:, i, index[i]].
            perms = torch.tensor(self.obs_permutations, dtype=torch.long)
            self._obs_index = perms[self.agent_types.cpu()].to(device)

        self.add_agents(world, self.AGENT_RADIUS, u_multiplier=self.ACTION_MULTIPLIER)
        for j in range(n_landmarks):
            world.add_landmark(
                Landmark(
                    name=f"landmark_{j}",
                    shape=Sphere(radius=self.LANDMARK_RADIUS),
                    collide=False,
                    movable=False,
                    color=type_color(j, self.n_types) if j < self.n_types else DECOY_COLOR,
                )
            )
        self.finish_world(world, view_half_width=self.landmark_spawn + 2 * self.AGENT_RADIUS)

    def reset_world_at(self, env_index: int | None = None) -> None:
        self.spawn_uniform(self.world.agents, self.agent_spawn, env_index)
        self.spawn_uniform(self.world.landmarks, self.landmark_spawn, env_index)

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        agents = self.world.agents
        pos = torch.stack([a.state.pos for a in agents], dim=1)  # [B, N, 2]
        vel = torch.stack([a.state.vel for a in agents], dim=1)  # [B, N, 2]
        landmarks = torch.stack([lm.state.pos for lm in self.world.landmarks], dim=1)  # [B, L, 2]
        rel = landmarks.unsqueeze(1) - pos.unsqueeze(2)  # [B, N, L, 2]
        obs = torch.cat([vel, pos, rel.flatten(2)], dim=-1)  # [B, N, 4 + 2L]
        batch = obs.shape[0]
        # own-colour landmark relative to the agent, read from the unpermuted observation
        own = obs.gather(2, self._own_columns.expand(batch, -1, -1))  # [B, N, 2]
        reward = -self.DISTANCE_PENALTY * torch.linalg.vector_norm(own, dim=-1)
        if self._obs_index is not None:
            obs = obs.gather(2, self._obs_index.expand(batch, -1, -1))
        return obs, reward
