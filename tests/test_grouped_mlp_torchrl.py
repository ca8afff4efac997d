"""GroupedMultiAgentMLP inside TorchRL: actor, critic, collector over VMAS, PPO and A2C losses."""
from __future__ import annotations

import pytest
import torch
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.collectors import Collector
from torchrl.envs.libs.vmas import VmasEnv
from torchrl.envs.utils import check_env_specs
from torchrl.modules import ProbabilisticActor, ValueOperator
from torchrl.modules.distributions import NormalParamExtractor, TanhNormal
from torchrl.objectives import A2CLoss, ValueEstimators
from torchrl.objectives.multiagent import IPPOLoss, MAPPOLoss
from torch.distributions import Categorical

from torchrl_seps import GroupedMultiAgentMLP

N_AGENTS = 3
GROUPS = [1, 0, 1]


def make_env(continuous: bool) -> VmasEnv:
    env = VmasEnv(
        "navigation",
        num_envs=4,
        n_agents=N_AGENTS,
        continuous_actions=continuous,
        categorical_actions=True,
        max_steps=8,
        seed=0,
    )
    check_env_specs(env)
    return env


def make_actor_critic(env: VmasEnv, continuous: bool, centralized_critic: bool):
    obs_dim = env.observation_spec["agents", "observation"].shape[-1]
    action_spec = env.full_action_spec_unbatched[env.action_key]
    if continuous:
        n_out = 2 * action_spec.shape[-1]
    else:
        n_out = action_spec.space.n
    kwargs = dict(n_agents=N_AGENTS, groups=GROUPS, depth=1, num_cells=16)
    net = GroupedMultiAgentMLP(obs_dim, n_out, centralized=False, **kwargs)
    if continuous:
        module = TensorDictModule(
            nn.Sequential(net, NormalParamExtractor()),
            in_keys=[("agents", "observation")],
            out_keys=[("agents", "loc"), ("agents", "scale")],
        )
        dist = dict(
            distribution_class=TanhNormal,
            distribution_kwargs={"low": action_spec.space.low, "high": action_spec.space.high},
        )
        dist_keys = [("agents", "loc"), ("agents", "scale")]
    else:
        module = TensorDictModule(
            net, in_keys=[("agents", "observation")], out_keys=[("agents", "logits")]
        )
        dist = dict(distribution_class=Categorical)
        dist_keys = [("agents", "logits")]
    actor = ProbabilisticActor(
        module,
        spec=action_spec,
        in_keys=dist_keys,
        out_keys=[env.action_key],
        return_log_prob=True,
        **dist,
    )
    critic = ValueOperator(
        GroupedMultiAgentMLP(obs_dim, 1, centralized=centralized_critic, **kwargs),
        in_keys=[("agents", "observation")],
        out_keys=[("agents", "state_value")],
    )
    return actor, critic


def set_multiagent_keys(loss_module, env) -> None:
    loss_module.set_keys(
        reward=env.reward_key,
        action=env.action_key,
        value=("agents", "state_value"),
        advantage=("agents", "advantage"),
        value_target=("agents", "value_target"),
        sample_log_prob=("agents", "action_log_prob"),
    )


def one_update(env, actor, loss_module) -> None:
    collector = Collector(
        env,
        actor,
        frames_per_batch=32,
        total_frames=32,
        auto_register_policy_transforms=False,
    )
    data = next(iter(collector))
    collector.shutdown()
    assert data["agents", "action"].shape[:2] == (4, 8)
    with torch.no_grad():
        loss_module.value_estimator(
            data, params=loss_module.critic_network_params, target_params=loss_module.target_critic_network_params
        )
    assert data["agents", "advantage"].shape == (4, 8, N_AGENTS, 1)
    assert torch.isfinite(data["agents", "advantage"]).all()

    before = [p.detach().clone() for p in loss_module.parameters()]
    optim = torch.optim.Adam(loss_module.parameters(), lr=1e-2)
    losses = loss_module(data.reshape(-1))
    total = sum(v for k, v in losses.items() if k.startswith("loss_"))
    assert torch.isfinite(total)
    total.backward()
    optim.step()
    changed = [not torch.equal(b, p) for b, p in zip(before, loss_module.parameters())]
    assert all(changed), "every actor and critic parameter set is used, so every one trains"


@pytest.mark.parametrize("centralized_critic, loss_class", [(False, IPPOLoss), (True, MAPPOLoss)])
def test_ppo_update_over_vmas(centralized_critic, loss_class):
    env = make_env(continuous=False)
    actor, critic = make_actor_critic(env, continuous=False, centralized_critic=centralized_critic)
    loss_module = loss_class(actor, critic, entropy_coeff=0.01)
    set_multiagent_keys(loss_module, env)
    loss_module.make_value_estimator(ValueEstimators.MAGAE, gamma=0.99, lmbda=0.95)
    one_update(env, actor, loss_module)


def test_a2c_update_over_vmas_continuous():
    env = make_env(continuous=True)
    actor, critic = make_actor_critic(env, continuous=True, centralized_critic=False)
    loss_module = A2CLoss(actor, critic, entropy_coeff=0.01, critic_coeff=0.5)
    set_multiagent_keys(loss_module, env)
    loss_module.make_value_estimator(ValueEstimators.MAGAE, gamma=0.99, lmbda=1.0)
    one_update(env, actor, loss_module)
