"""A tiny multi-agent env whose hidden agent types set the dynamics and the reward.

Each agent is a point in the plane. Action ``a`` in ``0..4`` moves it by ``speed[type] * D[a]``
with ``D`` = (stay, +x, -x, +y, -y); its reward is minus its distance, after the move, to the
goal ``goals[type]``. Episodes last ``max_steps`` steps (truncation); a reset puts every agent
uniformly in ``[-1, 1]^2`` plus ``reset_offset``, so that a transition pairing the last
observation of an episode with the first of the next breaks ``next = obs + speed * D[a]``.
With ``noise > 0`` every move and reward gets independent Gaussian noise of that standard
deviation, the same for every type: exchangeable agents then differ only by chance.
"""
from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, Unbounded
from torchrl.envs import EnvBase

DIRECTIONS = torch.tensor([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])


class TypedAgentsEnv(EnvBase):
    """``num_envs`` batched copies; agent ``i`` of group ``group`` has type ``types[i]``."""

    def __init__(
        self,
        types,
        *,
        num_envs: int = 8,
        speeds=None,
        goals=None,
        max_steps: int = 10,
        reset_offset: float = 5.0,
        nan_reward_at_step: int | None = None,
        bounded_observation: bool = False,
        group: str = "agents",
        noise: float = 0.0,
        seed: int = 0,
    ):
        super().__init__(batch_size=torch.Size([num_envs]))
        self.types = torch.as_tensor(types, dtype=torch.long)
        n_types = int(self.types.max()) + 1
        self.speeds = torch.ones(n_types) * 0.1 if speeds is None else torch.as_tensor(speeds).float()
        self.goals = torch.zeros(n_types, 2) if goals is None else torch.as_tensor(goals).float()
        self.max_steps = max_steps
        self.reset_offset = reset_offset
        self.nan_reward_at_step = nan_reward_at_step
        self.n_steps_taken = 0  # total steps over the env's life, for tests
        self.group = group
        self.noise = noise
        n = self.types.numel()
        obs_spec_cls = (
            Bounded(low=-100.0, high=100.0, shape=(num_envs, n, 2))
            if bounded_observation
            else Unbounded(shape=(num_envs, n, 2))
        )
        self.observation_spec = Composite(
            **{group: Composite(observation=obs_spec_cls, shape=(num_envs, n))},
            step_count=Unbounded(shape=(num_envs, 1), dtype=torch.long),
            shape=(num_envs,),
        )
        self.action_spec = Composite(
            **{group: Composite(action=Categorical(5, shape=(num_envs, n)), shape=(num_envs, n))},
            shape=(num_envs,),
        )
        self.reward_spec = Composite(
            **{group: Composite(reward=Unbounded(shape=(num_envs, n, 1)), shape=(num_envs, n))},
            shape=(num_envs,),
        )
        self.done_spec = Composite(
            done=Categorical(2, shape=(num_envs, 1), dtype=torch.bool),
            terminated=Categorical(2, shape=(num_envs, 1), dtype=torch.bool),
            truncated=Categorical(2, shape=(num_envs, 1), dtype=torch.bool),
            shape=(num_envs,),
        )
        self._pos = torch.zeros(num_envs, n, 2)
        self._count = torch.zeros(num_envs, 1, dtype=torch.long)
        self.set_seed(seed)

    def _set_seed(self, seed: int | None) -> None:
        self._rng = torch.Generator().manual_seed(0 if seed is None else seed)

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        mask = None if tensordict is None else tensordict.get("_reset", None)
        mask = torch.ones(self.batch_size, dtype=torch.bool) if mask is None else mask.reshape(-1)
        fresh = torch.rand(self._pos.shape, generator=self._rng) * 2 - 1 + self.reset_offset
        self._pos = torch.where(mask[:, None, None], fresh, self._pos)
        self._count = torch.where(mask[:, None], torch.zeros_like(self._count), self._count)
        return self._observation()

    def _observation(self) -> TensorDict:
        agents = TensorDict({"observation": self._pos.clone()}, batch_size=self._pos.shape[:2])
        return TensorDict(
            {self.group: agents, "step_count": self._count.clone()}, batch_size=self.batch_size
        )

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict[self.group, "action"]
        self._pos = self._pos + self.speeds[self.types][None, :, None] * DIRECTIONS[action]
        if self.noise:
            self._pos = self._pos + self.noise * torch.randn(self._pos.shape, generator=self._rng)
        self._count = self._count + 1
        self.n_steps_taken += 1
        reward = -(self._pos - self.goals[self.types][None]).norm(dim=-1, keepdim=True)
        if self.noise:
            reward = reward + self.noise * torch.randn(reward.shape, generator=self._rng)
        if self.nan_reward_at_step is not None and self.n_steps_taken == self.nan_reward_at_step:
            reward = torch.full_like(reward, float("nan"))
        truncated = self._count >= self.max_steps
        out = self._observation()
        out.set((self.group, "reward"), reward)
        out.set("done", truncated.clone())
        out.set("terminated", torch.zeros_like(truncated))
        out.set("truncated", truncated)
        return out


class SignedEffectEnv(EnvBase):
    """Agents whose types differ only in the sign of one action's effect on one entry.

    Every agent observes ``n_features`` entries, each following ``x' = 0.5 x + E[a] + 0.3 e``
    for action ``a`` in ``0..4`` and standard Gaussian noise ``e``. Actions act on entry 0 only:
    action 2 moves it by +1 and action 1 by ``signs[type]``, the only difference between types
    (one entry out of ``n_features``, one action out of five).
    The reward is minus the mean square of entries 1.., the same function for every type.
    Episodes last ``max_steps`` steps; a reset draws every entry from a standard Gaussian.
    """

    def __init__(self, types, signs=(1.0, -1.0), *, n_features: int = 20, num_envs: int = 16,
                 max_steps: int = 20, seed: int = 0):
        super().__init__(batch_size=torch.Size([num_envs]))
        self.types = torch.as_tensor(types, dtype=torch.long)
        n = self.types.numel()
        self.max_steps = max_steps
        self.effect = torch.zeros(n, 5, n_features)  # [agent, action, entry]
        self.effect[:, 2, 0] = 1.0
        self.effect[:, 1, 0] = torch.as_tensor(signs, dtype=torch.float)[self.types]
        self.observation_spec = Composite(
            agents=Composite(observation=Unbounded(shape=(num_envs, n, n_features)), shape=(num_envs, n)),
            shape=(num_envs,),
        )
        self.action_spec = Composite(
            agents=Composite(action=Categorical(5, shape=(num_envs, n)), shape=(num_envs, n)), shape=(num_envs,)
        )
        self.reward_spec = Composite(
            agents=Composite(reward=Unbounded(shape=(num_envs, n, 1)), shape=(num_envs, n)), shape=(num_envs,)
        )
        self.done_spec = Composite(
            done=Categorical(2, shape=(num_envs, 1), dtype=torch.bool),
            terminated=Categorical(2, shape=(num_envs, 1), dtype=torch.bool),
            truncated=Categorical(2, shape=(num_envs, 1), dtype=torch.bool),
            shape=(num_envs,),
        )
        self._x = torch.zeros(num_envs, n, n_features)
        self._count = torch.zeros(num_envs, 1, dtype=torch.long)
        self.set_seed(seed)

    def _set_seed(self, seed: int | None) -> None:
        self._rng = torch.Generator().manual_seed(0 if seed is None else seed)

    def _observation(self) -> TensorDict:
        agents = TensorDict({"observation": self._x.clone()}, batch_size=self._x.shape[:2])
        return TensorDict({"agents": agents}, batch_size=self.batch_size)

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        mask = None if tensordict is None else tensordict.get("_reset", None)
        mask = torch.ones(self.batch_size, dtype=torch.bool) if mask is None else mask.reshape(-1)
        fresh = torch.randn(self._x.shape, generator=self._rng)
        self._x = torch.where(mask[:, None, None], fresh, self._x)
        self._count = torch.where(mask[:, None], torch.zeros_like(self._count), self._count)
        return self._observation()

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict["agents", "action"]
        agents = torch.arange(self.types.numel())
        moves = self.effect[agents, action]  # [envs, agents, entries]
        noise = torch.randn(self._x.shape, generator=self._rng)
        self._x = 0.5 * self._x + moves + 0.3 * noise
        self._count = self._count + 1
        truncated = self._count >= self.max_steps
        out = self._observation()
        out.set(("agents", "reward"), -self._x[..., 1:].pow(2).mean(-1, keepdim=True))
        out.set("done", truncated.clone())
        out.set("terminated", torch.zeros_like(truncated))
        out.set("truncated", truncated)
        return out
