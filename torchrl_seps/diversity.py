"""System Neural Diversity (SND): how differently the agents' policies act in the same situations.

SND (Bettini et al., DiCo) is the mean, over pairs of agents, of the distance between the two
agents' action distributions, averaged over one shared set of observations: every agent is
given the same observation, so the distance measures the networks, not what each agent sees.
Full sharing gives 0; distinct networks give a positive value.

The distance between two action distributions:

- discrete actions (categorical or one-hot): total variation,
  ``TV(p, q) = 1/2 * sum_a |p(a) - q(a)|``, in ``[0, 1]``. It is the 1-Wasserstein distance under
  the discrete metric (moving mass from one action to another costs 1), the analogue for
  unordered actions of DiCo's Wasserstein form;
- continuous actions (a (Tanh)Normal with ``loc`` and ``scale``): DiCo's 2-Wasserstein distance
  between the diagonal Gaussians, ``sqrt(||loc_i - loc_j||^2 + ||scale_i - scale_j||^2)``.
"""
from __future__ import annotations

import torch
from tensordict import TensorDict
from tensordict.utils import NestedKey
from torch.distributions import Categorical, Distribution
from torchrl.modules import ProbabilisticActor

from torchrl_seps._checks import check_instance, check_int

__all__ = ["action_distance", "system_neural_diversity"]


def action_distance(dist: Distribution) -> torch.Tensor:
    """Distance between every two agents' action distributions, per observation.

    Args:
        dist (Distribution): batch shape ``(n_observations, n_agents)``: a ``Categorical`` or
            ``OneHotCategorical`` (total variation), or a distribution with ``loc`` and
            ``scale`` (2-Wasserstein between diagonal Gaussians).

    Returns:
        a tensor of shape ``(n_observations, n_agents, n_agents)``.

    Examples:
        >>> probs = torch.tensor([[[1.0, 0.0], [0.5, 0.5]]])
        >>> action_distance(Categorical(probs=probs))
        tensor([[[0.0000, 0.5000],
                 [0.5000, 0.0000]]])
    """
    if isinstance(dist, Categorical):  # TorchRL's OneHotCategorical is one
        p = dist.probs
        return 0.5 * (p.unsqueeze(-2) - p.unsqueeze(-3)).abs().sum(-1)
    if hasattr(dist, "loc") and hasattr(dist, "scale"):
        loc, scale = dist.loc, dist.scale
        squared = (loc.unsqueeze(-2) - loc.unsqueeze(-3)).pow(2).sum(-1)
        squared = squared + (scale.unsqueeze(-2) - scale.unsqueeze(-3)).pow(2).sum(-1)
        return squared.sqrt()
    raise TypeError(
        f"dist must be a Categorical, a OneHotCategorical or have loc and scale, got "
        f"{type(dist).__name__}."
    )


@torch.no_grad()
def system_neural_diversity(
    actor: ProbabilisticActor,
    observations: torch.Tensor,
    n_agents: int,
    *,
    observation_key: NestedKey = ("agents", "observation"),
    agent_features: torch.Tensor | None = None,
    max_observations: int | None = 1024,
) -> float:
    """SND of ``actor``'s agents on a shared set of observations.

    Every row of ``observations`` is given to every agent (with ``agent_features[i]`` appended
    for agent ``i`` when given, e.g. the one-hot ids a FuPS+id policy reads); the distance of
    :func:`action_distance` between each pair of agents is averaged over the rows, then over the
    pairs.

    Args:
        actor (ProbabilisticActor): the agents' policy, reading ``observation_key`` of shape
            ``(*batch, n_agents, n_features)``.
        observations (Tensor): shape ``(..., n_features)``: every leading dimension is pooled
            into one set (e.g. a collected batch's ``("agents", "observation")``, all agents'
            observations together).
        n_agents (int): number of agents.

    Keyword Args:
        observation_key (NestedKey, optional): the actor's observation entry. Defaults to
            ``("agents", "observation")``.
        agent_features (Tensor, optional): per-agent features appended to every observation,
            shape ``(n_agents, n_agent_features)``.
        max_observations (int, optional): at most this many rows, evenly spaced over the pooled
            set; ``None`` keeps all. Defaults to ``1024``.

    Returns:
        the mean pairwise distance; 0 when agents share one network.

    Examples:
        >>> from torchrl.envs.libs.vmas import VmasEnv
        >>> from torchrl_seps.policies import make_actor
        >>> env = VmasEnv("navigation", num_envs=4, n_agents=3, continuous_actions=False, seed=0)
        >>> obs = env.reset()["agents", "observation"]
        >>> system_neural_diversity(make_actor(env, [0, 0, 0]), obs, n_agents=3)
        0.0
        >>> system_neural_diversity(make_actor(env, [0, 1, 2]), obs, n_agents=3) > 0
        True
    """
    check_instance("actor", actor, ProbabilisticActor, "a torchrl ProbabilisticActor")
    check_int("n_agents", n_agents, minimum=2)
    shared = observations.reshape(-1, observations.shape[-1])
    if check_int("max_observations", max_observations, optional=True) is not None:
        if shared.shape[0] > max_observations:
            index = torch.linspace(0, shared.shape[0] - 1, max_observations, device=shared.device)
            shared = shared[index.long()]
    inputs = shared.unsqueeze(-2).expand(-1, n_agents, -1)
    if agent_features is not None:
        features = agent_features.to(inputs).expand(shared.shape[0], -1, -1)
        inputs = torch.cat([inputs, features], dim=-1)
    dist = actor.get_dist(TensorDict({observation_key: inputs}, batch_size=[shared.shape[0]]))
    distance = action_distance(dist).mean(0)
    first, second = torch.triu_indices(n_agents, n_agents, offset=1)
    return distance[first, second].mean().item()
