"""Actor and critic for a multi-agent TorchRL env, grouped by ``GroupedMultiAgentMLP``."""
from __future__ import annotations

from tensordict.nn import NormalParamExtractor, TensorDictModule
from tensordict.utils import NestedKey
from torch import nn
from torch.distributions import Categorical
from torchrl.data import Categorical as CategoricalSpec, OneHot as OneHotSpec
from torchrl.envs import EnvBase
from torchrl.modules import OneHotCategorical, ProbabilisticActor, TanhNormal, ValueOperator

from torchrl_seps.modules import GroupedMultiAgentMLP
from torchrl_seps.modules.grouped_mlp import GroupsLike


def _agent_keys(group: str) -> tuple[NestedKey, NestedKey]:
    return (group, "observation"), (group, "action")


def _grouped_mlp(
    env: EnvBase, groups: GroupsLike, n_outputs: int, group: str, **network
) -> GroupedMultiAgentMLP:
    """The network of ``group``'s agents: each agent's observation in, ``n_outputs`` out."""
    obs_key, action_key = _agent_keys(group)
    n_agents = env.full_action_spec_unbatched[action_key].shape[0]
    return GroupedMultiAgentMLP(
        env.observation_spec[obs_key].shape[-1], n_outputs, n_agents, groups=groups, **network
    )


def make_actor(
    env: EnvBase,
    groups: GroupsLike,
    *,
    group: str = "agents",
    depth: int = 2,
    num_cells: int = 64,
    activation_class: type[nn.Module] = nn.Tanh,
    device=None,
) -> ProbabilisticActor:
    """A stochastic policy for the agents of ``env``'s ``group``, one parameter set per group id.

    Discrete actions (categorical or one-hot specs) get a categorical distribution over logits;
    bounded continuous actions get a ``TanhNormal`` within the spec's bounds. The log-probability
    of the sampled action is written next to the action, ``(group, "action_log_prob")``.

    Examples:
        >>> from torchrl.envs.libs.vmas import VmasEnv
        >>> env = VmasEnv("navigation", num_envs=2, n_agents=3, continuous_actions=False)
        >>> actor = make_actor(env, groups=[0, 1, 1])
        >>> td = actor(env.reset())
        >>> td["agents", "action"].shape, td["agents", "action_log_prob"].shape
        (torch.Size([2, 3]), torch.Size([2, 3]))
    """
    obs_key, action_key = _agent_keys(group)
    spec = env.full_action_spec_unbatched[action_key]
    discrete = isinstance(spec, (CategoricalSpec, OneHotSpec))
    n_outputs = spec.space.n if discrete else 2 * spec.shape[-1]
    net = _grouped_mlp(
        env, groups, n_outputs, group, centralized=False, depth=depth, num_cells=num_cells,
        activation_class=activation_class, device=device,
    )
    if discrete:
        params = [(group, "logits")]
        module = TensorDictModule(net, in_keys=[obs_key], out_keys=params)
        dist_class = Categorical if isinstance(spec, CategoricalSpec) else OneHotCategorical
        dist_kwargs = {}
    else:
        params = [(group, "loc"), (group, "scale")]
        module = TensorDictModule(
            nn.Sequential(net, NormalParamExtractor()), in_keys=[obs_key], out_keys=params
        )
        dist_class = TanhNormal
        dist_kwargs = {"low": spec.space.low, "high": spec.space.high}
    return ProbabilisticActor(
        module,
        spec=spec,
        in_keys=params,
        out_keys=[action_key],
        distribution_class=dist_class,
        distribution_kwargs=dist_kwargs,
        return_log_prob=True,
        log_prob_key=(group, "action_log_prob"),
    )


def make_critic(
    env: EnvBase,
    groups: GroupsLike,
    *,
    centralized: bool = False,
    group: str = "agents",
    depth: int = 2,
    num_cells: int = 64,
    activation_class: type[nn.Module] = nn.Tanh,
    device=None,
) -> ValueOperator:
    """A per-agent state-value function, ``(group, "state_value")``, grouped like the actor.

    With ``centralized=False`` (IPPO, A2C) each agent's value sees its own observation; with
    ``centralized=True`` (MAPPO) every group's value network sees all agents' observations.

    Examples:
        >>> from torchrl.envs.libs.vmas import VmasEnv
        >>> env = VmasEnv("navigation", num_envs=2, n_agents=3)
        >>> critic = make_critic(env, groups=[0, 1, 1], centralized=True)
        >>> critic(env.reset())["agents", "state_value"].shape
        torch.Size([2, 3, 1])
    """
    net = _grouped_mlp(
        env, groups, 1, group, centralized=centralized, depth=depth, num_cells=num_cells,
        activation_class=activation_class, device=device,
    )
    return ValueOperator(net, in_keys=[(group, "observation")], out_keys=[(group, "state_value")])
