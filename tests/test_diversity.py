"""System Neural Diversity against a plain per-agent, per-pair re-implementation."""
from __future__ import annotations

import itertools

import pytest
import torch
from tensordict import TensorDict
from torch.distributions import Normal

from torchrl_seps.diversity import action_distance, system_neural_diversity
from torchrl_seps.policies import make_actor
from torchrl_seps.scenarios import make_env
from torchrl_seps.training import TrainerConfig, make_trainer


@pytest.fixture(scope="module")
def env():
    return make_env("rotnav-2x4", 4, seed=0)


def plain_snd(actor, observations, n_agents, features=None):
    """Each agent alone on each observation (the others see zeros), total variation by hand."""
    probs = torch.zeros(len(observations), n_agents, 5)
    with torch.no_grad():
        for m, obs in enumerate(observations):
            for i in range(n_agents):
                x = torch.zeros(n_agents, obs.numel() + (0 if features is None else n_agents))
                x[i] = obs if features is None else torch.cat([obs, features[i]])
                probs[m, i] = actor.get_dist(_td(x)).probs[i]
    distances = [
        sum(0.5 * (probs[m, i] - probs[m, j]).abs().sum().item() for m in range(len(observations)))
        / len(observations)
        for i, j in itertools.combinations(range(n_agents), 2)
    ]
    return sum(distances) / len(distances)


def _td(x):
    return TensorDict({("agents", "observation"): x}, batch_size=[])


def test_zero_for_full_sharing_positive_for_distinct_networks(env):
    obs = env.reset()["agents", "observation"]
    assert system_neural_diversity(make_actor(env, [0] * 8), obs, 8) == 0.0
    assert system_neural_diversity(make_actor(env, list(range(8))), obs, 8) > 0.05


@pytest.mark.parametrize("groups", [list(range(8)), [0, 0, 0, 0, 1, 1, 1, 1]])
def test_matches_a_plain_reimplementation(env, groups):
    actor = make_actor(env, groups, num_cells=16)
    obs = env.reset()["agents", "observation"][:2]  # 2 envs x 8 agents: 16 shared observations
    expected = plain_snd(actor, obs.reshape(-1, obs.shape[-1]), 8)
    assert system_neural_diversity(actor, obs, 8) == pytest.approx(expected, rel=1e-5)
    if groups[0] == groups[3]:  # two groups of 4: 16 of the 28 pairs differ
        probs = actor.get_dist(_td(obs[0, 0].expand(8, -1))).probs
        tv = 0.5 * (probs[0] - probs[4]).abs().sum().item()
        assert system_neural_diversity(actor, obs[0, 0], 8) == pytest.approx(tv * 16 / 28, rel=1e-5)


def test_subsampling_spreads_over_the_set(env):
    actor = make_actor(env, list(range(8)), num_cells=16)
    obs = env.reset()["agents", "observation"]  # 32 observations
    every_other = obs.reshape(-1, obs.shape[-1])[torch.linspace(0, 31, 4).long()]
    assert system_neural_diversity(actor, obs, 8, max_observations=4) == pytest.approx(
        system_neural_diversity(actor, every_other, 8, max_observations=None))


def test_wasserstein_between_gaussians():
    loc = torch.tensor([[[0.0, 0.0], [3.0, 4.0]]])
    scale = torch.tensor([[[1.0, 1.0], [1.0, 2.0]]])
    distance = action_distance(Normal(loc, scale))
    assert distance[0, 0, 1].item() == pytest.approx((9 + 16 + 1) ** 0.5)
    assert distance[0, 1, 0] == distance[0, 0, 1] and distance[0, 0, 0] == 0


def test_fups_with_ids_is_diverse_through_its_ids():
    config = TrainerConfig(preset="rotnav-2x4", num_envs=2, rollout_steps=10, frames=40, minibatches=2,
                           num_cells=16, eval_envs=2)
    trainers = {method: make_trainer(method, 0, config) for method in ("fups", "fups_id")}
    for trainer in trainers.values():
        trainer.collector.shutdown()
    batch = trainers["fups_id"].env.rollout(5, trainers["fups_id"].actor)
    observations = batch["agents", "observation"]
    snd = trainers["fups_id"].system_neural_diversity(batch)
    raw = observations[..., :-8]
    expected = plain_snd(trainers["fups_id"].actor, raw.reshape(-1, raw.shape[-1]), 8,
                         features=torch.eye(8))
    assert snd == pytest.approx(expected, rel=1e-5) and snd > 0
    fups_batch = trainers["fups"].env.rollout(5, trainers["fups"].actor)
    assert trainers["fups"].system_neural_diversity(fups_batch) == 0.0


def test_bad_arguments(env):
    actor = make_actor(env, [0] * 8)
    with pytest.raises(TypeError, match="actor must be"):
        system_neural_diversity(torch.nn.Linear(2, 2), torch.zeros(3, 18), 8)
    with pytest.raises(ValueError, match="n_agents must be an int >= 2"):
        system_neural_diversity(actor, torch.zeros(3, 18), 1)
    with pytest.raises(TypeError, match="dist must be"):
        action_distance(torch.distributions.Bernoulli(probs=torch.ones(2, 2) / 2))
