"""Discrete actions for continuous-action environments, through a lookup table."""
from __future__ import annotations

import torch
from tensordict.utils import NestedKey
from torchrl.data import Bounded, Categorical, Composite, OneHot, TensorSpec
from torchrl.envs.transforms import Transform

from torchrl_seps._checks import check_actions

__all__ = ["BoundedActionCheck", "DiscreteActionTable", "FIVE_MOVES"]

#: The five moves of the particle environments: no-op, -x, +x, -y, +y (in this order).
FIVE_MOVES: torch.Tensor = torch.tensor(
    [[0.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]]
)


class DiscreteActionTable(Transform):
    """Exposes ``n`` discrete actions; action ``i`` sends row ``i`` of ``table`` to the env.

    The parent environment has a bounded continuous action of size ``table.shape[-1]``
    under ``action_key``; the transformed environment has a categorical (or one-hot)
    action with ``table.shape[0]`` values under the same key, and every step looks the
    continuous action up in ``table`` in one indexing operation for all environments and
    agents. Rollouts keep the discrete action.

    With VMAS, this replaces the simulator's own discrete actions (which are converted
    agent by agent) by one lookup, and lets a scenario offer a set of moves that is not a
    product of per-axis choices, such as :data:`FIVE_MOVES`.

    Args:
        table (torch.Tensor): ``[n_actions, action_size]`` continuous action of every
            discrete action, within the parent's action bounds.
        action_key (NestedKey): the action entry. Default ``("agents", "action")``.
        categorical (bool): integer actions (``True``, as VMAS's ``categorical_actions``)
            or one-hot actions (``False``). Default ``True``.

    Examples:
        >>> from torchrl.envs import TransformedEnv, check_env_specs
        >>> from torchrl.envs.libs.vmas import VmasEnv
        >>> base = VmasEnv("navigation", num_envs=2, continuous_actions=True, n_agents=2)
        >>> env = TransformedEnv(base, DiscreteActionTable(FIVE_MOVES))
        >>> env.full_action_spec["agents", "action"].space.n
        5
        >>> check_env_specs(env)
        >>> td = env.rollout(3)
        >>> td["agents", "action"].shape, td["agents", "action"].dtype
        (torch.Size([2, 3, 2]), torch.int64)
    """

    def __init__(
        self,
        table: torch.Tensor,
        action_key: NestedKey = ("agents", "action"),
        categorical: bool = True,
    ) -> None:
        if not isinstance(table, torch.Tensor):
            raise TypeError(f"table must be a torch.Tensor, got {type(table).__name__}")
        if table.ndim != 2 or table.shape[0] < 1 or table.shape[1] < 1:
            raise ValueError(
                f"table must have shape [n_actions, action_size], got {tuple(table.shape)}"
            )
        if not table.is_floating_point():
            raise TypeError(f"table must be a floating point tensor, got {table.dtype}")
        super().__init__(in_keys_inv=[action_key], out_keys_inv=[action_key])
        self.action_key = action_key
        self.categorical = bool(categorical)
        self.register_buffer("table", table.clone())

    @property
    def n_actions(self) -> int:
        """Number of discrete actions."""
        return self.table.shape[0]

    def _inv_apply_transform(self, action: torch.Tensor) -> torch.Tensor:
        index = check_actions(str(self.action_key), action, self.n_actions, self.categorical)
        return self.table[index]

    def transform_action_spec(self, action_spec: TensorSpec) -> TensorSpec:
        spec = action_spec[self.action_key]
        if not isinstance(spec, Bounded):
            raise TypeError(
                f"DiscreteActionTable needs a Bounded continuous action under {self.action_key}, "
                f"got {type(spec).__name__}"
            )
        if spec.shape[-1] != self.table.shape[-1]:
            raise ValueError(
                f"table has actions of size {self.table.shape[-1]} but the environment's "
                f"action under {self.action_key} has size {spec.shape[-1]}"
            )
        table = self.table.to(spec.device)
        low, high = spec.space.low, spec.space.high
        if ((table < low.min()) | (table > high.max())).any():
            raise ValueError(
                f"table values must lie within the action bounds [{low.min()}, {high.max()}]"
            )
        self.table = table
        shape = spec.shape[:-1]
        if self.categorical:
            new = Categorical(
                self.n_actions, shape=shape, device=spec.device, dtype=torch.int64
            )
        else:
            new = OneHot(self.n_actions, shape=(*shape, self.n_actions), device=spec.device)
        action_spec = action_spec.clone() if isinstance(action_spec, Composite) else action_spec
        action_spec[self.action_key] = new
        return action_spec


class BoundedActionCheck(Transform):
    """Refuses continuous actions that are not finite or lie outside the env's action bounds,
    with a ``ValueError`` naming the entry, before they reach the env (VMAS itself fails on
    them with a bare ``AssertionError``). One min / max reduction per step.

    Args:
        action_key (NestedKey): the action entry. Default ``("agents", "action")``.

    Examples:
        >>> from torchrl.envs import TransformedEnv
        >>> from torchrl.envs.libs.vmas import VmasEnv
        >>> env = TransformedEnv(VmasEnv("navigation", num_envs=2, continuous_actions=True, n_agents=2),
        ...                      BoundedActionCheck())
        >>> td = env.reset()
        >>> td["agents", "action"] = torch.full((2, 2, 2), float("nan"))
        >>> env.step(td)
        Traceback (most recent call last):
        ...
        ValueError: ('agents', 'action') must be finite and within the action bounds [-1, 1], got values in [nan, nan].
    """

    def __init__(self, action_key: NestedKey = ("agents", "action")) -> None:
        super().__init__(in_keys_inv=[action_key], out_keys_inv=[action_key])
        self.action_key = action_key
        self.bounds: tuple[float, float] | None = None

    def _inv_apply_transform(self, action: torch.Tensor) -> torch.Tensor:
        if self.bounds is None:
            space = self.parent.full_action_spec[self.action_key].space
            self.bounds = (float(space.low.min()), float(space.high.max()))
        low, high = torch.aminmax(action.detach())
        if not (self.bounds[0] <= low and high <= self.bounds[1]):  # false for NaN too
            raise ValueError(
                f"{self.action_key} must be finite and within the action bounds "
                f"[{self.bounds[0]:g}, {self.bounds[1]:g}], got values in [{float(low):g}, {float(high):g}]."
            )
        return action
