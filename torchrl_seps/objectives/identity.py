"""The identity loss: a variational auto-encoder over agent ids, as in SePS."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import NestedKey, unravel_key
from torch.distributions import Normal, kl_divergence
from torchrl.objectives import LossModule

from torchrl_seps._checks import check_float, check_instance
from torchrl_seps.modules.identity import IdentityDecoder, IdentityEncoder

__all__ = ["IdentityLoss"]

TARGETS = ("next_observation", "reward")
# (frame, agent) pairs the standardisation statistics are computed from, at most
_STATISTICS_ROWS = 2**20


class IdentityLoss(LossModule):
    """Reconstruction plus ``kl_weight`` times KL: the loss that learns agent identities.

    For every transition ``(observation, action, next observation, reward)`` of agent ``i``, a
    latent ``z ~ Normal(loc_i, scale_i)`` is drawn from the encoder's output for the one-hot id of
    ``i`` (reparameterised, one draw per transition and agent), and the decoder predicts the
    chosen targets from ``(z, observation, action)``.

    Units. Every observation feature fed to the decoder and every target feature is
    standardised with its mean and standard deviation over the collected data, pooled over
    agents (so that differences between agents survive); set them with :meth:`set_statistics`
    before training (until then data are used as they are). A feature that never varies is only
    centred. With ``predict_change=True`` (the default) the next-observation target is the
    *change* ``next_observation - observation``, standardised: it carries the same information as
    the next observation (the observation is an input), but a small effect of the agent's type on
    the dynamics is then as large as any other feature instead of a rounding error on a large
    position.

    Output entries:

    * ``loss_reconstruction``: for each target, the squared error averaged over its standardised
      features; summed over targets; averaged over transitions and agents. Averaging within a
      target lets a one-feature reward weigh as much as a many-feature next observation.
    * ``loss_kl``: ``kl_weight`` times ``KL(Normal(loc_i, scale_i) || Normal(0, I))``, summed
      over latent dimensions and averaged over agents.
    * ``kl``: the unweighted KL, detached, for logging.

    Sum the ``loss_*`` entries to train.

    Subsets of agents. Data may hold some of the agents only, in any order: the entry at
    ``agent_index`` (integers of shape ``(*batch, n)``) then says which agent each of the ``n``
    entries of the agent dimension is, and every per-agent entry has ``n`` in place of
    ``n_agents``. :func:`~torchrl_seps.identification.fit_identity` uses this to fit large
    teams on a sample of agents per frame. Without that entry the agent dimension holds every
    agent in order.

    Args:
        encoder (IdentityEncoder): one-hot agent id -> latent ``loc`` and ``scale``.
        decoder (IdentityDecoder): (latent, observation, action) -> (next observation, reward);
            the loss writes the latent sample at ``decoder.in_keys[0]`` and reads the observation
            and action at ``decoder.in_keys[1:]``.

    Keyword Args:
        targets (sequence of str, optional): what to reconstruct, any non-empty subset of
            ``("next_observation", "reward")``. Defaults to both.
        kl_weight (float, optional): weight of the KL term. Defaults to ``1e-4`` (the SePS
            authors' value; large values pull every identity to the prior).
        predict_change (bool, optional): reconstruct the next observation through its change
            (see above). ``False`` reconstructs the next observation itself, as the SePS authors
            do. Defaults to ``True``.

    Tensordict keys (set with :meth:`set_keys`):
        observation (NestedKey): the observation whose next value (read at ``("next",
            observation)``) is a target. Defaults to ``("agents", "observation")``.
        reward (NestedKey): the reward, read at ``("next", reward)``. Defaults to
            ``("agents", "reward")``.
        agent_index (NestedKey): optional, the agent of each entry of the agent dimension.
            Defaults to ``("agents", "agent_index")``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from torchrl_seps.modules import IdentityDecoder, IdentityEncoder
        >>> encoder = IdentityEncoder(n_agents=3, latent_dim=2)
        >>> decoder = IdentityDecoder(2, observation_dim=4, action_dim=5, categorical_actions=True)
        >>> loss = IdentityLoss(encoder, decoder)
        >>> data = TensorDict({
        ...     "agents": {"observation": torch.randn(16, 3, 4), "action": torch.randint(5, (16, 3))},
        ...     "next": {"agents": {"observation": torch.randn(16, 3, 4), "reward": torch.randn(16, 3, 1)}},
        ... }, batch_size=[16])
        >>> loss.set_statistics(data)
        >>> out = loss(data)
        >>> sorted(out.keys())
        ['kl', 'loss_kl', 'loss_reconstruction']
        >>> (out["loss_reconstruction"] + out["loss_kl"]).backward()
    """

    @dataclass
    class _AcceptedKeys:
        """Configurable tensordict keys of :class:`IdentityLoss`.

        Attributes:
            observation (NestedKey): the observation whose next value (at ``("next",
                observation)``) is a target. Defaults to ``("agents", "observation")``.
            reward (NestedKey): the reward, read at ``("next", reward)``. Defaults to
                ``("agents", "reward")``.
            agent_index (NestedKey): optional, the agent of each entry of the agent dimension.
                Defaults to ``("agents", "agent_index")``.
        """

        observation: NestedKey = ("agents", "observation")
        reward: NestedKey = ("agents", "reward")
        agent_index: NestedKey = ("agents", "agent_index")

    default_keys = _AcceptedKeys
    tensor_keys: _AcceptedKeys
    out_keys = ["loss_reconstruction", "loss_kl", "kl"]

    def __init__(
        self,
        encoder: IdentityEncoder,
        decoder: IdentityDecoder,
        *,
        targets: Sequence[str] = TARGETS,
        kl_weight: float = 1e-4,
        predict_change: bool = True,
    ) -> None:
        check_instance("encoder", encoder, IdentityEncoder, "an IdentityEncoder")
        check_instance("decoder", decoder, IdentityDecoder, "an IdentityDecoder")
        if encoder.latent_dim != decoder.latent_dim:
            raise ValueError(
                f"encoder.latent_dim ({encoder.latent_dim}) and decoder.latent_dim "
                f"({decoder.latent_dim}) must be equal."
            )
        targets = (targets,) if isinstance(targets, str) else tuple(targets)
        if not targets or len(set(targets)) != len(targets) or not set(targets) <= set(TARGETS):
            raise ValueError(
                f"targets must be a non-empty subset of {TARGETS} without repeats, got "
                f"targets={targets!r}."
            )
        check_float("kl_weight", kl_weight)
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.targets = tuple(t for t in TARGETS if t in targets)
        self.kl_weight = float(kl_weight)
        self.predict_change = bool(predict_change)
        n_targets = sum(self._target_dims().values())
        self.register_buffer("observation_loc", torch.zeros(decoder.observation_dim))
        self.register_buffer("observation_scale", torch.ones(decoder.observation_dim))
        self.register_buffer("target_loc", torch.zeros(n_targets))
        self.register_buffer("target_scale", torch.ones(n_targets))
        self.register_buffer(
            "feature_weights",
            torch.cat([torch.full((dim,), 1.0 / dim) for dim in self._target_dims().values()]),
        )

    @property
    def in_keys(self) -> list[NestedKey]:
        keys = list(self.decoder.in_keys[1:])
        if "next_observation" in self.targets:
            keys.append(unravel_key(("next", self.tensor_keys.observation)))
            if self.predict_change:
                keys.append(self.tensor_keys.observation)
        if "reward" in self.targets:
            keys.append(unravel_key(("next", self.tensor_keys.reward)))
        return list(dict.fromkeys(keys))

    def _target_dims(self) -> dict[str, int]:
        dims = {"next_observation": self.decoder.observation_dim, "reward": self.decoder.reward_dim}
        return {name: dims[name] for name in self.targets}

    def _agent_index(self, tensordict: TensorDictBase) -> torch.Tensor | None:
        """The agent of each entry of the agent dimension, or ``None`` for every agent in order."""
        index = tensordict.get(self.tensor_keys.agent_index, None)
        if index is None:
            return None
        if index.dtype.is_floating_point or index.dtype == torch.bool or index.ndim < 1:
            raise ValueError(
                f"the agent index at {self.tensor_keys.agent_index} must hold integers of shape "
                f"(*batch, n), got dtype {index.dtype} and shape {tuple(index.shape)}."
            )
        if index.numel() and not 0 <= int(index.min()) <= int(index.max()) < self.encoder.n_agents:
            raise ValueError(
                f"the agent index at {self.tensor_keys.agent_index} must lie in "
                f"0..{self.encoder.n_agents - 1}, got values in {int(index.min())}..{int(index.max())}."
            )
        return index.long()

    def _get(self, tensordict: TensorDictBase, key: NestedKey, what: str, dim: int) -> torch.Tensor:
        value = tensordict.get(key, None)
        if value is None:
            raise ValueError(
                f"IdentityLoss needs the {what} at {key}, which the data lacks; keys present: "
                f"{sorted(map(str, tensordict.keys(True, True)))}."
            )
        index = tensordict.get(self.tensor_keys.agent_index, None)
        n_agents = self.encoder.n_agents if index is None else index.shape[-1]
        if value.ndim < 2 or value.shape[-2] != n_agents or value.shape[-1] != dim:
            name = "n_agents" if index is None else "agents indexed"
            raise ValueError(
                f"the {what} at {key} must have shape (*batch, {name}={n_agents}, "
                f"{dim}), got {tuple(value.shape)}."
            )
        return value.to(self.target_loc.dtype)

    def raw_targets(self, tensordict: TensorDictBase) -> torch.Tensor:
        """The chosen targets of ``tensordict`` before standardisation, concatenated.

        Returns a tensor of shape ``(*batch, n_agents, features)``: the next observation (or its
        change, with ``predict_change=True``) and the reward, in that order, as chosen.

        Raises:
            ValueError: when an entry is missing (naming it and the keys present) or does not have
                the shape the decoder expects.
        """
        parts = []
        dims = self._target_dims()
        if "next_observation" in self.targets:
            key = self.tensor_keys.observation
            next_key = unravel_key(("next", key))
            value = self._get(tensordict, next_key, "next observation", dims["next_observation"])
            if self.predict_change:
                value = value - self._get(tensordict, key, "observation", dims["next_observation"])
            parts.append(value)
        if "reward" in self.targets:
            key = unravel_key(("next", self.tensor_keys.reward))
            parts.append(self._get(tensordict, key, "reward", dims["reward"]))
        return torch.cat(parts, dim=-1)

    def _observation(self, tensordict: TensorDictBase) -> torch.Tensor:
        key = self.decoder.in_keys[1]
        return self._get(tensordict, key, "observation", self.decoder.observation_dim)

    @staticmethod
    def _loc_scale(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values = values.flatten(0, -2)
        loc = values.mean(0)
        scale = values.std(0, unbiased=False)
        scale = torch.where(scale > 1e-6 * (1 + loc.abs()), scale, torch.ones_like(scale))
        return loc, scale

    def check_finite(self, tensordict: TensorDictBase) -> None:
        """Raises ``ValueError`` naming the entry when an entry the loss reads holds a NaN or an
        infinity."""
        for key in self.in_keys:
            value = tensordict.get(key, None)
            if value is None or not value.dtype.is_floating_point:
                continue  # a missing entry is reported where it is read
            # the extremes propagate a NaN or an infinity, in one pass without a copy
            if not (torch.isfinite(value.amax()) and torch.isfinite(value.amin())):
                raise ValueError(
                    f"the entry {key} holds {int((~torch.isfinite(value)).sum())} NaN or "
                    "infinite values; expected finite data."
                )

    @torch.no_grad()
    def set_statistics(self, tensordict: TensorDictBase) -> None:
        """Sets the per-feature mean and standard deviation of the decoder's observation input and
        of the targets, pooled over the transitions and agents of ``tensordict``: over all of
        them, or over evenly spaced transitions where they hold more than 2**20 (transition,
        agent) pairs, whose statistics are as good at a fraction of the cost.

        Raises:
            ValueError: when an entry is missing, has the wrong shape or holds NaN or infinite
                values.
        """
        self.check_finite(tensordict)
        observation = self._observation(tensordict)
        rows = observation.shape[:-1].numel()
        if rows > _STATISTICS_ROWS:
            flat = tensordict.reshape(-1)
            tensordict = flat[:: -(-rows // _STATISTICS_ROWS)]
            observation = self._observation(tensordict)
        obs_loc, obs_scale = self._loc_scale(observation)
        target_loc, target_scale = self._loc_scale(self.raw_targets(tensordict))
        self.observation_loc.copy_(obs_loc)
        self.observation_scale.copy_(obs_scale)
        self.target_loc.copy_(target_loc)
        self.target_scale.copy_(target_scale)

    def squared_errors(
        self, tensordict: TensorDictBase, latent: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The squared error of every standardised target feature, of every transition and agent:
        shape ``(*batch, n_agents, features)`` (``(*batch, n, features)`` for data holding ``n``
        agents by ``agent_index``), features in the order of :meth:`raw_targets`.

        Args:
            tensordict (TensorDictBase): transitions, as for :meth:`forward`.
            latent (Tensor, optional): the identity latent of every agent, shape
                ``[n_agents, latent_dim]`` (row ``i`` for agent ``i``), used for every
                transition: e.g. the encoder means (a deterministic prediction) or each group's
                mean embedding. ``None`` (the default) draws one latent per transition and agent
                from the encoder, as in training.
        """
        observation = self._observation(tensordict)
        target = (self.raw_targets(tensordict) - self.target_loc) / self.target_scale
        index = self._agent_index(tensordict)
        if latent is None:
            loc, scale = self.encoder.agent_distribution()
            if index is not None:
                loc, scale = loc[index], scale[index]
            noise = torch.randn(
                (*observation.shape[:-1], loc.shape[-1]), device=loc.device, dtype=loc.dtype
            )
            latent = loc + scale * noise
        else:
            expected = (self.encoder.n_agents, self.encoder.latent_dim)
            if tuple(latent.shape) != expected:
                raise ValueError(
                    f"latent must have shape (n_agents, latent_dim) = {expected}, got "
                    f"{tuple(latent.shape)}."
                )
            latent = latent.to(observation)
            if index is not None:
                latent = latent[index]
            latent = latent.expand(*observation.shape[:-1], latent.shape[-1])
        inputs = tensordict.select(self.decoder.in_keys[2])
        inputs.set(self.decoder.in_keys[0], latent)
        inputs.set(
            self.decoder.in_keys[1], (observation - self.observation_loc) / self.observation_scale
        )
        outputs = self.decoder(inputs)
        predictions = dict(zip(TARGETS, (outputs.get(key) for key in self.decoder.out_keys)))
        prediction = torch.cat([predictions[name] for name in self.targets], dim=-1)
        return (prediction - target).pow(2)

    def reconstruction_error(
        self,
        tensordict: TensorDictBase,
        latent: torch.Tensor | None = None,
        feature_weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The reconstruction error of every transition and agent, shape ``(*batch, n_agents)``
        (``(*batch, n)`` for data holding ``n`` agents by ``agent_index``).

        By default, for each target the squared error averaged over its standardised features,
        summed over targets: :attr:`feature_weights` weighs each feature of a target by one over
        the target's number of features. :meth:`forward`'s ``loss_reconstruction`` is its mean.

        Args:
            tensordict (TensorDictBase): transitions, as for :meth:`forward`.
            latent (Tensor, optional): as :meth:`squared_errors`.
            feature_weights (Tensor, optional): a weight per target feature in place of
                :attr:`feature_weights`.

        Examples:
            >>> import torch
            >>> from tensordict import TensorDict
            >>> from torchrl_seps.modules import IdentityDecoder, IdentityEncoder
            >>> loss = IdentityLoss(IdentityEncoder(3, 2), IdentityDecoder(2, 4, 5, categorical_actions=True))
            >>> data = TensorDict({
            ...     "agents": {"observation": torch.randn(16, 3, 4), "action": torch.randint(5, (16, 3))},
            ...     "next": {"agents": {"observation": torch.randn(16, 3, 4), "reward": torch.randn(16, 3, 1)}},
            ... }, batch_size=[16])
            >>> loc, _ = loss.encoder.agent_distribution()
            >>> loss.reconstruction_error(data, latent=loc).shape
            torch.Size([16, 3])
        """
        weights = self.feature_weights if feature_weights is None else feature_weights
        return self.squared_errors(tensordict, latent) @ weights.to(self.target_loc)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        reconstruction = self.reconstruction_error(tensordict).mean()
        loc, scale = self.encoder.agent_distribution()
        kl = kl_divergence(Normal(loc, scale), Normal(0.0, 1.0)).sum(-1).mean()
        return TensorDict(
            {
                "loss_reconstruction": reconstruction,
                "loss_kl": self.kl_weight * kl,
                "kl": kl.detach(),
            },
            batch_size=[],
        )
