"""Shared machinery of the batched torch grid worlds.

:class:`GridWorld` is the TorchRL :class:`~torchrl.envs.EnvBase` under
:class:`~torchrl_seps.scenarios.LevelBasedForaging` and
:class:`~torchrl_seps.scenarios.ColouredWarehouse`: ``num_envs`` worlds in one batch, agents
in one group ``"agents"`` with ``("agents", "observation")``, ``("agents", "action")``
(discrete, integer or one-hot) and ``("agents", "reward")``, root ``done`` / ``terminated`` /
``truncated``, a torch random generator, resets of some of the envs, and an ``rgb_array``
canvas for :meth:`render`. A subclass checks its settings in :meth:`GridWorld.validate_config`,
draws new episodes in :meth:`GridWorld._spawn`, computes observations in
:meth:`GridWorld._observation` and implements ``_step``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, OneHot, Unbounded
from torchrl.envs import EnvBase

from torchrl_seps._checks import check_actions, check_bool, check_int, is_int
from torchrl_seps._compat import unchecked_tensordict

__all__ = ["GridWorld"]


class GridWorld(EnvBase):
    """Base of the batched grid worlds: specs, seeding, resets, observations, a canvas.

    Args:
        num_envs (int): number of environments (the batch size).
        n_agents (int): agents per environment.
        n_actions (int): number of discrete actions per agent.
        categorical_actions (bool): integer (``True``) or one-hot actions.
        device: torch device.

    Examples:
        >>> from torchrl.envs import check_env_specs
        >>> from torchrl_seps.scenarios import LevelBasedForaging
        >>> env = LevelBasedForaging(num_envs=2, players=2, field_size=5, max_num_food=1, seed=0)
        >>> isinstance(env, GridWorld), env.n_actions
        (True, 6)
        >>> check_env_specs(env)
    """

    def __init__(
        self,
        num_envs: int,
        n_agents: int,
        n_actions: int,
        categorical_actions: bool,
        device: str | torch.device,
    ) -> None:
        num_envs = check_int("num_envs", num_envs)
        check_bool("categorical_actions", categorical_actions)
        super().__init__(batch_size=torch.Size([num_envs]), device=device)
        self.num_envs = num_envs
        self.n_agents = n_agents
        self.n_actions = n_actions
        self.categorical_actions = categorical_actions
        self._agents_batch = torch.Size([num_envs, n_agents])
        self._rng: torch.Generator | None = None

    @classmethod
    def validate_config(cls, **kwargs: Any) -> dict[str, Any]:
        """Checks the world's settings (the constructor's arguments less ``num_envs``,
        ``categorical_actions``, ``device`` and ``seed``) and returns them complete, normalised
        and with defaults; :func:`~torchrl_seps.scenarios.make_env` calls it before building
        anything.

        Raises ``TypeError`` for an unknown or wrongly typed setting and ``ValueError`` for an
        invalid value, naming the setting and the value seen.
        """
        raise NotImplementedError

    def _make_specs(self, low: Sequence[float], high: Sequence[float]) -> None:
        """Observation (bounded per entry by ``low`` / ``high``), action, reward and done specs."""
        shape, dev = (self.num_envs, self.n_agents), self.device
        self.obs_dim = len(low)
        bound = lambda v: torch.tensor(v, dtype=torch.float32, device=dev).expand(*shape, -1)
        self.observation_spec = Composite(
            agents=Composite(
                observation=Bounded(
                    low=bound(low), high=bound(high), shape=(*shape, self.obs_dim),
                    dtype=torch.float32, device=dev,
                ),
                shape=shape,
            ),
            shape=(self.num_envs,),
        )
        n = self.n_actions
        action = (
            Categorical(n, shape=shape, device=dev) if self.categorical_actions
            else OneHot(n, shape=(*shape, n), device=dev)
        )
        self.action_spec = Composite(
            agents=Composite(action=action, shape=shape), shape=(self.num_envs,)
        )
        self.reward_spec = Composite(
            agents=Composite(reward=Unbounded(shape=(*shape, 1), device=dev), shape=shape),
            shape=(self.num_envs,),
        )
        flag = lambda: Categorical(2, shape=(self.num_envs, 1), dtype=torch.bool, device=dev)
        self.done_spec = Composite(
            done=flag(), terminated=flag(), truncated=flag(), shape=(self.num_envs,)
        )

    def _set_seed(self, seed: int | None) -> None:
        self._rng = torch.Generator(device=self.device)
        if seed is None:
            self._rng.seed()
        else:
            self._rng.manual_seed(seed)

    # ------------------------------------------------------------------------ state

    def _state_values(
        self, state: TensorDictBase, shapes: dict[str, tuple[int, ...]], flags: Sequence[str] = ()
    ) -> dict[str, torch.Tensor]:
        """The entries ``shapes`` of ``state`` on the env's device, checked: the ``flags`` bool
        tensors, the others integer tensors (not bool), as ``int64``; ``positions`` (and any other
        key ending in ``positions``), ``[..., 2]`` (row, col), must lie in the grid."""
        if not isinstance(state, TensorDictBase):
            raise TypeError(f"state must be a TensorDict (as get_state returns), got {type(state).__name__}")
        values = {}
        for key, shape in shapes.items():
            value = state.get(key, None)
            if value is None:
                raise ValueError(f"state must contain {key!r}")
            kind = "bool" if key in flags else "integer (not bool)"
            wrong_type = (value.dtype != torch.bool) if key in flags else (
                value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool
            )
            if tuple(value.shape) != shape or wrong_type:
                raise ValueError(
                    f"state[{key!r}] must be a {kind} tensor of shape {shape}, got "
                    f"{value.dtype} {tuple(value.shape)}"
                )
            values[key] = value.to(self.device, torch.bool if key in flags else torch.long)
            if key.endswith("positions"):
                pos = values[key]
                outside = (pos < 0).any(-1) | (pos[..., 0] >= self.rows) | (pos[..., 1] >= self.cols)
                self._refuse(outside, key, f"must lie in the {self.rows} x {self.cols} grid")
        return values

    @staticmethod
    def _refuse(broken: torch.Tensor, key: str, rule: str) -> None:
        """Raises a ``ValueError`` stating ``rule`` of ``state[key]`` when ``broken`` (``[E, ...]``,
        ``True`` where the state breaks the rule) holds anywhere, naming the first envs that do."""
        envs = broken.reshape(broken.shape[0], -1).any(1).nonzero().flatten()
        if envs.numel():
            raise ValueError(
                f"state[{key!r}] {rule} (no episode reaches such a state); broken in env(s) "
                f"{envs[:5].tolist()}"
            )

    # ------------------------------------------------------------------------ reset and step

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs: Any) -> TensorDictBase:
        mask = None if tensordict is None else tensordict.get("_reset", None)
        if mask is None:
            mask = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        else:
            mask = mask.reshape(self.num_envs).to(self.device)
        which = mask.nonzero().squeeze(1)
        if which.numel():
            self._spawn(which)
        return self._observe()

    def _spawn(self, which: torch.Tensor) -> None:
        """New episodes in the environments ``which`` (a non-empty index tensor)."""
        raise NotImplementedError

    def _actions(self, tensordict: TensorDictBase) -> torch.Tensor:
        """The joint action of ``tensordict`` as integers ``[num_envs, n_agents]``."""
        action = tensordict.get(("agents", "action"), None)
        if action is None:
            raise KeyError("the step's tensordict has no ('agents', 'action') entry.")
        return check_actions(
            "('agents', 'action')", action.to(self.device), self.n_actions,
            self.categorical_actions, self._agents_batch,
        )

    def _step_output(self, reward: torch.Tensor, terminated: torch.Tensor) -> TensorDict:
        """The observation of the new state with rewards ``[E, N]`` and ``terminated`` ``[E, 1]``."""
        return self._observe(
            reward=reward.to(torch.float32)[..., None],
            done=terminated.clone(), terminated=terminated, truncated=torch.zeros_like(terminated),
        )

    # ------------------------------------------------------------------------ observation

    def _observe(self, reward: torch.Tensor | None = None, **done: torch.Tensor) -> TensorDict:
        """The observation TensorDict of the current state of every env, with the agents'
        ``reward`` and the root entries ``done`` when given.

        Built unchecked, as TorchRL's batched env wrappers build theirs: every tensor is made
        here, on the env's device and with the batch dimensions of its spec.
        """
        agents = {"observation": self._observation()}
        if reward is not None:
            agents["reward"] = reward
        agents = unchecked_tensordict(agents, self._agents_batch, self.device)
        return unchecked_tensordict({"agents": agents, **done}, self.batch_size, self.device)

    def _observation(self) -> torch.Tensor:
        """Observations ``[E, n_agents, obs_dim]`` of the current state of every env."""
        raise NotImplementedError

    # ------------------------------------------------------------------------ rendering

    def _canvas(self, mode: str, env_index: int, rows: int, cols: int, cell: int) -> tuple[Any, Any]:
        """A white PIL image with a ``rows x cols`` grid of ``cell``-pixel squares, and its pen."""
        from PIL import Image, ImageDraw

        if mode != "rgb_array":
            raise ValueError(f"mode must be 'rgb_array', got {mode!r}")
        if not is_int(env_index) or not 0 <= env_index < self.num_envs:
            raise ValueError(f"env_index must be an int in [0, {self.num_envs}), got {env_index!r}")
        h, w = rows * cell + 1, cols * cell + 1
        image = Image.new("RGB", (w, h), (255, 255, 255))
        draw = ImageDraw.Draw(image)
        for r in range(rows + 1):
            draw.line([(0, r * cell), (w, r * cell)], fill=(60, 60, 60))
        for c in range(cols + 1):
            draw.line([(c * cell, 0), (c * cell, h)], fill=(60, 60, 60))
        return image, draw
