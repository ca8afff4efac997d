"""Environment transforms that give each agent identity features."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torchrl.data import Bounded, Composite, TensorSpec, Unbounded
from torchrl.envs import Transform

from torchrl_seps._checks import check_finite, check_instance, check_int, validate_groups
from torchrl_seps.modules.identity import IdentityEncoder

__all__ = ["AgentIdentityTransform"]


class AgentIdentityTransform(Transform):
    """Gives every agent a fixed vector of identity features, appended to its observation or
    written to an entry of its own.

    ``features[i]`` goes to agent ``i`` at every step and reset. Three kinds of features cover
    the baselines and SePS:

    * :meth:`one_hot` (``features = I_N``): the agent's one-hot id, as in the *FuPS+id*
      baseline, or the input of :class:`~torchrl_seps.modules.IdentityEncoder`;
    * :meth:`from_groups`: the one-hot id of the agent's group;
    * :meth:`from_embeddings` / :meth:`from_encoder`: a learned identity embedding, e.g.
      :attr:`~torchrl_seps.identification.IdentificationResult.embeddings`.

    With ``out_key=None`` (the default) the features are concatenated to the observation at
    ``in_key`` along its last dimension; otherwise the observation is left alone and the features,
    of shape ``(*batch, n_agents, n_features)``, are written at ``out_key``. The observation spec
    follows: appended features widen a bounded observation spec with exact bounds (each agent's
    own values) and an unbounded one stays unbounded; a separate entry gets a bounded spec whose
    bounds are the features themselves.

    Args:
        features (Tensor): per-agent features, shape ``(n_agents, n_features)``, finite.

    Keyword Args:
        in_key (NestedKey, optional): the per-agent observation, shape ``(*batch, n_agents,
            n_obs)``. Defaults to ``("agents", "observation")``.
        out_key (NestedKey, optional): where to write the features; ``None`` appends them to the
            observation. Defaults to ``None``.

    Examples:
        >>> from torchrl.envs import TransformedEnv, check_env_specs
        >>> from torchrl.envs.libs.vmas import VmasEnv
        >>> env = VmasEnv("navigation", num_envs=2, n_agents=3, seed=0)
        >>> env.observation_spec["agents", "observation"].shape
        torch.Size([2, 3, 18])
        >>> env = TransformedEnv(env, AgentIdentityTransform.one_hot(3))
        >>> check_env_specs(env)
        >>> obs = env.reset()["agents", "observation"]
        >>> obs.shape
        torch.Size([2, 3, 21])
        >>> obs[0, :, -3:]
        tensor([[1., 0., 0.],
                [0., 1., 0.],
                [0., 0., 1.]])
    """

    def __init__(
        self,
        features: torch.Tensor,
        *,
        in_key: NestedKey = ("agents", "observation"),
        out_key: NestedKey | None = None,
    ) -> None:
        check_instance("features", features, torch.Tensor, "a tensor")
        if features.ndim != 2 or features.shape[0] < 1 or features.shape[1] < 1:
            raise ValueError(
                f"features must have shape (n_agents, n_features) with both >= 1, got "
                f"{tuple(features.shape)}."
            )
        if not features.dtype.is_floating_point:
            features = features.float()
        check_finite("features", features)
        self.appends = out_key is None
        super().__init__(in_keys=[in_key], out_keys=[in_key if out_key is None else out_key])
        self.register_buffer("features", features.detach().clone())

    @classmethod
    def one_hot(cls, n_agents: int, **kwargs) -> AgentIdentityTransform:
        """Agent ``i`` gets the one-hot vector ``e_i`` of size ``n_agents`` (FuPS+id).

        Examples:
            >>> AgentIdentityTransform.one_hot(2).features
            tensor([[1., 0.],
                    [0., 1.]])
        """
        return cls(torch.eye(check_int("n_agents", n_agents)), **kwargs)

    @classmethod
    def from_groups(cls, groups: Sequence[int] | torch.Tensor, **kwargs) -> AgentIdentityTransform:
        """Agent ``i`` gets the one-hot vector of its group ``groups[i]`` (of size ``K``).

        Examples:
            >>> AgentIdentityTransform.from_groups([0, 1, 1]).features
            tensor([[1., 0.],
                    [0., 1.],
                    [0., 1.]])
        """
        n_agents = groups.numel() if isinstance(groups, torch.Tensor) else len(groups)
        groups = validate_groups(groups, n_agents)
        return cls(torch.nn.functional.one_hot(groups).float(), **kwargs)

    @classmethod
    def from_embeddings(cls, embeddings: torch.Tensor, **kwargs) -> AgentIdentityTransform:
        """Agent ``i`` gets ``embeddings[i]``, e.g. its learned identity (encoder mean).

        Examples:
            >>> AgentIdentityTransform.from_embeddings(torch.tensor([[0.5], [-0.5]])).features
            tensor([[ 0.5000],
                    [-0.5000]])
        """
        return cls(torch.as_tensor(embeddings), **kwargs)

    @classmethod
    def from_encoder(cls, encoder: IdentityEncoder, **kwargs) -> AgentIdentityTransform:
        """Agent ``i`` gets its identity embedding from a fitted encoder: the mean of
        :meth:`~torchrl_seps.modules.IdentityEncoder.agent_distribution`, fixed at creation.

        Examples:
            >>> from torchrl_seps.modules import IdentityEncoder
            >>> AgentIdentityTransform.from_encoder(IdentityEncoder(n_agents=4, latent_dim=3)).features.shape
            torch.Size([4, 3])
        """
        check_instance("encoder", encoder, IdentityEncoder, "an IdentityEncoder")
        with torch.no_grad():
            loc, _ = encoder.agent_distribution()
        return cls(loc.cpu(), **kwargs)

    @property
    def n_agents(self) -> int:
        return self.features.shape[0]

    def _features_like(self, observation: torch.Tensor) -> torch.Tensor:
        if observation.ndim < 2 or observation.shape[-2] != self.n_agents:
            raise ValueError(
                f"{type(self).__name__} holds features for {self.n_agents} agents, but the "
                f"observation at {self.in_keys[0]} has shape {tuple(observation.shape)}; expected "
                f"(*batch, {self.n_agents}, n_obs)."
            )
        features = self.features.to(device=observation.device, dtype=observation.dtype)
        return features.expand(*observation.shape[:-1], features.shape[-1])

    def _apply_transform(self, observation: torch.Tensor) -> torch.Tensor:
        features = self._features_like(observation)
        if self.appends:
            return torch.cat([observation, features], dim=-1)
        return features.clone()

    def _reset(
        self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase
    ) -> TensorDictBase:
        return self._call(tensordict_reset)

    def transform_observation_spec(self, observation_spec: Composite) -> Composite:
        in_key, out_key = self.in_keys[0], self.out_keys[0]
        if in_key not in observation_spec.keys(True, True):
            raise ValueError(
                f"{type(self).__name__}: no observation spec at in_key={in_key}; observation keys "
                f"are {sorted(map(str, observation_spec.keys(True, True)))}."
            )
        spec = observation_spec[in_key]
        if len(spec.shape) < 2 or spec.shape[-2] != self.n_agents:
            raise ValueError(
                f"{type(self).__name__} holds features for {self.n_agents} agents, but the "
                f"observation spec at {in_key} has shape {tuple(spec.shape)}; expected "
                f"(*batch, {self.n_agents}, n_obs)."
            )
        features = self._features_like(torch.zeros(spec.shape, dtype=spec.dtype, device="cpu"))
        features = features.to(spec.device) if spec.device is not None else features
        observation_spec[out_key] = self._spec_with_features(spec, features)
        return observation_spec

    def _spec_with_features(self, spec: TensorSpec, features: torch.Tensor) -> TensorSpec:
        if not self.appends:
            return Bounded(
                low=features, high=features, shape=features.shape, dtype=spec.dtype, device=spec.device
            )
        shape = torch.Size([*spec.shape[:-1], spec.shape[-1] + features.shape[-1]])
        if isinstance(spec, Bounded):
            low = torch.cat([spec.space.low, features], dim=-1)
            high = torch.cat([spec.space.high, features], dim=-1)
            return Bounded(low=low, high=high, shape=shape, dtype=spec.dtype, device=spec.device)
        if isinstance(spec, Unbounded):
            return Unbounded(shape=shape, dtype=spec.dtype, device=spec.device)
        raise TypeError(
            f"{type(self).__name__} can append features to a Bounded or Unbounded observation "
            f"spec, got {type(spec).__name__} at {self.in_keys[0]}; pass out_key to write them to "
            "an entry of their own."
        )
