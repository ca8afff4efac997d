"""The identity encoder and decoder of Selective Parameter Sharing.

The encoder maps a one-hot agent id to a Normal distribution over a small latent space (the
agent's *identity*); the decoder predicts an agent's next observation and reward from a latent
sample, the agent's observation and its action. Trained together by
:class:`~torchrl_seps.objectives.IdentityLoss`, agents that behave alike end up with nearby
latent means, which :class:`~torchrl_seps.clustering.AgentClustering` turns into groups.

Shape conventions follow TorchRL's multi-agent modules: tensors are ``(*batch, n_agents,
features)``; discrete actions may also be ``(*batch, n_agents)`` integer indices.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict import TensorDict
from tensordict.nn import NormalParamExtractor, TensorDictModule
from tensordict.utils import NestedKey
from torch import nn
from torchrl.modules import MLP

from torchrl_seps._checks import check_bool, check_int, check_keys

__all__ = ["IdentityDecoder", "IdentityEncoder"]


class IdentityEncoder(TensorDictModule):
    """Maps a one-hot agent id to the ``loc`` and ``scale`` of a Normal identity latent.

    The network is ``MLP(n_agents -> num_cells -> 2 * latent_dim)`` followed by
    :class:`~tensordict.nn.NormalParamExtractor`, whose default ``scale`` mapping is a softplus
    shifted to give 1 at zero input, plus a floor of 0.01. An agent's *embedding* is its
    ``loc``; :meth:`agent_distribution` returns those of all agents at once.

    Args:
        n_agents (int): number of agents, the size of the one-hot id.
        latent_dim (int, optional): size of the latent. Defaults to ``5``.
        num_cells (sequence of int, optional): hidden layer sizes. Defaults to ``(64,)``.
        activation_class (type, optional): activation between layers. Defaults to
            :class:`~torch.nn.ReLU`.
        in_keys (sequence of NestedKey, optional): the one-hot id entry, shape
            ``(*batch, n_agents, n_agents)``. Defaults to ``[("agents", "agent_id")]``.
        out_keys (sequence of NestedKey, optional): the ``loc`` and ``scale`` entries. Defaults to
            ``[("agents", "identity", "loc"), ("agents", "identity", "scale")]``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> encoder = IdentityEncoder(n_agents=3, latent_dim=2)
        >>> data = TensorDict({("agents", "agent_id"): torch.eye(3)}, batch_size=[])
        >>> data = encoder(data)
        >>> data["agents", "identity", "loc"].shape
        torch.Size([3, 2])
        >>> loc, scale = encoder.agent_distribution()
        >>> torch.testing.assert_close(loc, data["agents", "identity", "loc"])
    """

    def __init__(
        self,
        n_agents: int,
        latent_dim: int = 5,
        *,
        num_cells: Sequence[int] = (64,),
        activation_class: type[nn.Module] = nn.ReLU,
        in_keys: Sequence[NestedKey] = (("agents", "agent_id"),),
        out_keys: Sequence[NestedKey] = (
            ("agents", "identity", "loc"),
            ("agents", "identity", "scale"),
        ),
    ) -> None:
        check_int("n_agents", n_agents)
        check_int("latent_dim", latent_dim)
        net = nn.Sequential(
            MLP(
                in_features=n_agents,
                out_features=2 * latent_dim,
                num_cells=list(num_cells),
                activation_class=activation_class,
            ),
            NormalParamExtractor(),
        )
        super().__init__(
            net,
            in_keys=check_keys("in_keys", in_keys, 1),
            out_keys=check_keys("out_keys", out_keys, 2),
        )
        self.n_agents = n_agents
        self.latent_dim = latent_dim

    def agent_distribution(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``loc`` and ``scale`` of every agent's identity, each of shape ``[n_agents, latent_dim]``.

        Row ``i`` is the encoder's output for the one-hot id of agent ``i``; ``loc`` is the agent's
        embedding.
        """
        weight = next(self.parameters())
        ids = torch.eye(self.n_agents, device=weight.device, dtype=weight.dtype)
        out = self(TensorDict({self.in_keys[0]: ids}, batch_size=[self.n_agents]))
        return out[self.out_keys[0]], out[self.out_keys[1]]


class _DecoderNet(nn.Module):
    """(latent, observation, action) -> (next observation, reward): one MLP over the
    concatenation; with ``interaction``, the observation enters gated by the latent and a
    linear map of the outer product latent x action is added to the output."""

    def __init__(
        self,
        latent_dim: int,
        observation_dim: int,
        action_dim: int,
        categorical_actions: bool,
        reward_dim: int,
        num_cells: Sequence[int],
        activation_class: type[nn.Module],
        interaction: bool,
    ) -> None:
        super().__init__()
        self.action_dim = action_dim
        self.observation_dim = observation_dim
        self.categorical_actions = categorical_actions
        self.mlp = MLP(
            in_features=latent_dim + observation_dim + action_dim,
            out_features=observation_dim + reward_dim,
            num_cells=list(num_cells),
            activation_class=activation_class,
        )
        self.observation_gate = self.action_effect = None
        if interaction:  # both start at zero, where the network is the plain MLP
            self.observation_gate = nn.Linear(latent_dim, observation_dim)
            self.action_effect = nn.Linear(
                latent_dim * action_dim, observation_dim + reward_dim, bias=False
            )
            for parameter in (*self.observation_gate.parameters(), self.action_effect.weight):
                nn.init.zeros_(parameter)

    def forward(
        self, latent: torch.Tensor, observation: torch.Tensor, action: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.categorical_actions:
            if action.ndim == observation.ndim:  # a trailing singleton dim: (*batch, n_agents, 1)
                action = action.squeeze(-1)
            action = nn.functional.one_hot(action.long(), self.action_dim)
        action = action.to(observation.dtype)
        if self.observation_gate is not None:
            observation = observation * (1 + self.observation_gate(latent))
        out = self.mlp(torch.cat([latent, observation, action], dim=-1))
        if self.action_effect is not None:
            outer = (latent.unsqueeze(-1) * action.unsqueeze(-2)).flatten(-2)
            out = out + self.action_effect(outer)
        return out[..., : self.observation_dim], out[..., self.observation_dim :]


class IdentityDecoder(TensorDictModule):
    """Predicts an agent's next observation and reward from (latent sample, observation, action).

    The network is one MLP over the concatenation of the three inputs. By default
    (``interaction=True``) the latent also acts multiplicatively, in two ways that start at zero
    and cost a few operations per entry:

    - it gates the observation, entry by entry: the MLP sees ``observation * (1 + W z + b)``, so
      a type can select the entries that matter to it (e.g. its own landmark among ten);
    - it sets what each action does: a term linear in the outer product of latent and action is
      added to the prediction, so agents whose actions act differently (negated or rotated
      controls, other strengths) are told apart even where the effect shows in few entries.

    An MLP over the concatenation must first learn such products from data; on ten-colour
    Blind-Particle Spread (reward of the own landmark among ten) and on particles whose moves
    are negated for some agents (the effect in 2 of 24 entries) it was measured to memorise the
    training episodes or to merge the types instead. Discrete actions
    (``categorical_actions=True``: integer indices of shape ``(*batch, n_agents)`` or
    ``(*batch, n_agents, 1)``) are one-hot encoded over ``action_dim`` values; continuous or
    already one-hot actions of shape ``(*batch, n_agents, action_dim)`` are used as they are.

    Inputs and outputs are in the units :class:`~torchrl_seps.objectives.IdentityLoss` gives
    them: it feeds standardised observations and compares the outputs with standardised targets
    (by default the change of the observation rather than the next observation itself).

    Args:
        latent_dim (int): size of the identity latent.
        observation_dim (int): size of an agent's observation (and of the predicted next one).
        action_dim (int): size of an agent's action, or the number of discrete actions when
            ``categorical_actions=True``.

    Keyword Args:
        categorical_actions (bool, optional): whether actions are integer indices to one-hot
            encode. Defaults to ``False``.
        reward_dim (int, optional): size of an agent's reward. Defaults to ``1``.
        num_cells (sequence of int, optional): hidden layer sizes. Defaults to ``(64, 64)``.
        activation_class (type, optional): activation between layers. Defaults to
            :class:`~torch.nn.ReLU`.
        interaction (bool, optional): let the latent gate the observation and act on each
            action's effect (see above). Defaults to ``True``.
        in_keys (sequence of NestedKey, optional): the latent sample, observation and action
            entries, in that order. Defaults to ``[("agents", "identity", "latent"),
            ("agents", "observation"), ("agents", "action")]``.
        out_keys (sequence of NestedKey, optional): the predicted next observation and reward.
            Defaults to ``[("agents", "identity", "next_observation"),
            ("agents", "identity", "reward")]``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> decoder = IdentityDecoder(latent_dim=2, observation_dim=4, action_dim=5,
        ...                           categorical_actions=True)
        >>> data = TensorDict({
        ...     ("agents", "identity", "latent"): torch.randn(8, 3, 2),
        ...     ("agents", "observation"): torch.randn(8, 3, 4),
        ...     ("agents", "action"): torch.randint(5, (8, 3)),
        ... }, batch_size=[8, 3])
        >>> data = decoder(data)
        >>> data["agents", "identity", "next_observation"].shape, data["agents", "identity", "reward"].shape
        (torch.Size([8, 3, 4]), torch.Size([8, 3, 1]))
    """

    def __init__(
        self,
        latent_dim: int,
        observation_dim: int,
        action_dim: int,
        *,
        categorical_actions: bool = False,
        reward_dim: int = 1,
        num_cells: Sequence[int] = (64, 64),
        activation_class: type[nn.Module] = nn.ReLU,
        interaction: bool = True,
        in_keys: Sequence[NestedKey] = (
            ("agents", "identity", "latent"),
            ("agents", "observation"),
            ("agents", "action"),
        ),
        out_keys: Sequence[NestedKey] = (
            ("agents", "identity", "next_observation"),
            ("agents", "identity", "reward"),
        ),
    ) -> None:
        for name, value in [
            ("latent_dim", latent_dim),
            ("observation_dim", observation_dim),
            ("action_dim", action_dim),
            ("reward_dim", reward_dim),
        ]:
            check_int(name, value)
        net = _DecoderNet(
            latent_dim,
            observation_dim,
            action_dim,
            categorical_actions,
            reward_dim,
            num_cells,
            activation_class,
            check_bool("interaction", interaction),
        )
        super().__init__(
            net,
            in_keys=check_keys("in_keys", in_keys, 3),
            out_keys=check_keys("out_keys", out_keys, 2),
        )
        self.latent_dim = latent_dim
        self.observation_dim = observation_dim
        self.reward_dim = reward_dim
