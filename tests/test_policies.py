"""Grouped actors and critics inside TorchRL: collector over VMAS, PPO and A2C updates."""
from __future__ import annotations

import pytest
import torch
from torchrl.collectors import Collector
from torchrl.envs.libs.vmas import VmasEnv
from torchrl.envs.utils import check_env_specs
from torchrl.objectives import A2CLoss, ValueEstimators
from torchrl.objectives.multiagent import IPPOLoss, MAPPOLoss

from torchrl_seps import GroupedMultiAgentMLP
from torchrl_seps.policies import make_actor, make_critic

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


def make_actor_critic(env: VmasEnv, centralized_critic: bool):
    kwargs = dict(groups=GROUPS, depth=1, num_cells=16)
    actor = make_actor(env, **kwargs)
    critic = make_critic(env, centralized=centralized_critic, **kwargs)
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
    actor, critic = make_actor_critic(env, centralized_critic=centralized_critic)
    loss_module = loss_class(actor, critic, entropy_coeff=0.01)
    set_multiagent_keys(loss_module, env)
    loss_module.make_value_estimator(ValueEstimators.MAGAE, gamma=0.99, lmbda=0.95)
    one_update(env, actor, loss_module)


def test_a2c_update_over_vmas_continuous():
    env = make_env(continuous=True)
    actor, critic = make_actor_critic(env, centralized_critic=False)
    loss_module = A2CLoss(actor, critic, entropy_coeff=0.01, critic_coeff=0.5)
    set_multiagent_keys(loss_module, env)
    loss_module.make_value_estimator(ValueEstimators.MAGAE, gamma=0.99, lmbda=1.0)
    one_update(env, actor, loss_module)


@pytest.mark.parametrize("continuous", [False, True])
def test_actor_and_critic_are_grouped_networks(continuous):
    env = make_env(continuous)
    actor, critic = make_actor_critic(env, centralized_critic=False)
    nets = [m for m in (*actor.modules(), *critic.modules()) if isinstance(m, GroupedMultiAgentMLP)]
    assert len(nets) == 2
    assert all(net.groups.tolist() == GROUPS for net in nets)
    td = critic(actor(env.reset()))
    spec = env.full_action_spec_unbatched[env.action_key]
    assert spec.is_in(td["agents", "action"][0])
    assert td["agents", "state_value"].shape == (4, N_AGENTS, 1)
