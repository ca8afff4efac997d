from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torchrl.data import Bounded, Unbounded
from torchrl.envs import TransformedEnv, check_env_specs
from torchrl.envs.libs.vmas import VmasEnv
from threads import one_thread  # noqa: F401
from typed_env import TypedAgentsEnv

from torchrl_seps.modules import IdentityEncoder
from torchrl_seps.transforms import AgentIdentityTransform




def test_one_hot_appended_on_vmas():
    base = VmasEnv("navigation", num_envs=3, n_agents=4, seed=0)
    env = TransformedEnv(base, AgentIdentityTransform.one_hot(4))
    check_env_specs(env)
    rollout = env.rollout(5)
    for key in [("agents", "observation"), ("next", "agents", "observation")]:
        obs = rollout[key]
        assert obs.shape == (3, 5, 4, 18 + 4)
        torch.testing.assert_close(obs[..., -4:], torch.eye(4).expand(3, 5, 4, 4))
    # The original features are untouched: the env's own observation of the same state.
    base.set_seed(0)
    raw = base.reset()["agents", "observation"]
    env.set_seed(0)
    torch.testing.assert_close(env.reset()["agents", "observation"][..., :18], raw)


def test_features_written_to_their_own_key():
    groups = [0, 1, 1, 0]
    env = TransformedEnv(
        VmasEnv("navigation", num_envs=2, n_agents=4, seed=0),
        AgentIdentityTransform.from_groups(groups, out_key=("agents", "group_id")),
    )
    check_env_specs(env)
    rollout = env.rollout(3)
    assert rollout["agents", "observation"].shape[-1] == 18
    expected = torch.nn.functional.one_hot(torch.tensor(groups)).float()
    torch.testing.assert_close(rollout["next", "agents", "group_id"], expected.expand(2, 3, 4, 2))
    spec = env.observation_spec["agents", "group_id"]
    assert isinstance(spec, Bounded) and spec.shape == (2, 4, 2)


def test_bounded_observation_spec_keeps_exact_bounds():
    embeddings = torch.tensor([[0.5, -1.0], [2.0, 0.0], [0.5, 3.0]])
    env = TransformedEnv(
        TypedAgentsEnv([0, 1, 1], num_envs=2, bounded_observation=True),
        AgentIdentityTransform.from_embeddings(embeddings),
    )
    check_env_specs(env)
    spec = env.observation_spec["agents", "observation"]
    assert isinstance(spec, Bounded) and spec.shape == (2, 3, 4)
    torch.testing.assert_close(spec.space.low[0, :, 2:], embeddings)
    torch.testing.assert_close(spec.space.high[0, :, 2:], embeddings)
    torch.testing.assert_close(spec.space.low[0, :, :2], torch.full((3, 2), -100.0))


def test_unbounded_observation_spec_stays_unbounded():
    env = TransformedEnv(TypedAgentsEnv([0, 1], num_envs=2), AgentIdentityTransform.one_hot(2))
    check_env_specs(env)
    spec = env.observation_spec["agents", "observation"]
    assert isinstance(spec, Unbounded) and spec.shape == (2, 2, 4)


def test_transform_on_collected_data():
    transform = AgentIdentityTransform.one_hot(3)
    data = TensorDict({("agents", "observation"): torch.zeros(5, 3, 2)}, batch_size=[5])
    out = transform(data)
    torch.testing.assert_close(out["agents", "observation"][..., 2:], torch.eye(3).expand(5, 3, 3))


def test_factories():
    torch.testing.assert_close(AgentIdentityTransform.one_hot(3).features, torch.eye(3))
    torch.testing.assert_close(
        AgentIdentityTransform.from_groups(torch.tensor([1, 0, 1])).features,
        torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]),
    )


def test_encoder_embeddings_as_features():
    encoder = IdentityEncoder(n_agents=3, latent_dim=2)
    transform = AgentIdentityTransform.from_encoder(encoder, out_key=("agents", "identity"))
    env = TransformedEnv(TypedAgentsEnv([0, 1, 1], num_envs=2), transform)
    check_env_specs(env)
    expected = encoder(TensorDict({("agents", "agent_id"): torch.eye(3)}, []))["agents", "identity", "loc"]
    torch.testing.assert_close(env.reset()["agents", "identity"][1], expected.detach())


def test_bad_input():
    with pytest.raises(ValueError, match=r"holds features for 3 agents, but the observation spec .* \(2, 4, 2\)"):
        TransformedEnv(
            TypedAgentsEnv([0, 0, 1, 1], num_envs=2), AgentIdentityTransform.one_hot(3)
        ).observation_spec
    with pytest.raises(ValueError, match=r"holds features for 3 agents, but the observation at"):
        AgentIdentityTransform.one_hot(3)(
            TensorDict({("agents", "observation"): torch.zeros(5, 4, 2)}, batch_size=[5])
        )
    with pytest.raises(ValueError, match="no observation spec at in_key"):
        TransformedEnv(
            TypedAgentsEnv([0, 1], num_envs=2),
            AgentIdentityTransform.one_hot(2, in_key=("agents", "obs")),
        ).observation_spec
    with pytest.raises(ValueError, match="features must be finite"):
        AgentIdentityTransform(torch.tensor([[float("inf")]]))
    with pytest.raises(ValueError, match=r"features must have shape \(n_agents, n_features\)"):
        AgentIdentityTransform(torch.ones(3))
    with pytest.raises(ValueError, match="groups must use every id"):
        AgentIdentityTransform.from_groups([0, 2])
    with pytest.raises(ValueError, match="n_agents must be an int >= 1"):
        AgentIdentityTransform.one_hot(0)
