"""Tests of the scenarios with hidden agent types and of ``make_env``.

Expected values are computed here by hand from the specification (the preset table, the
observation layout, the reward formula, the physics), not by calling the scenario's code.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import vmas
from torchrl.envs import check_env_specs
from torchrl.envs.utils import step_mdp

from torchrl_seps.scenarios import (
    FIVE_MOVES,
    BlindParticleSpread,
    RotatedNavigation,
    agent_types,
    list_presets,
    make_env,
    render_rollout,
    save_gif,
)
from torchrl_seps.scenarios import presets as presets_module

# name: (agents per type, observation size, observation permuted per type) -- from the spec.
SPEC = {
    "bps-1": ([5, 5, 5], 10, False),
    "bps-2": ([10, 10, 10], 10, False),
    "bps-3": ([6, 6, 6, 6, 6], 14, False),
    "bps-4": ([3, 3, 3, 12, 9], 14, False),
    "bps-5": ([5, 5, 5], 10, True),
    "bps-6": ([6, 6, 6, 6, 6], 14, True),
    "bps-homogeneous": ([15], 10, False),
    "rotnav-2x4": ([4, 4], 4, False),
    "rotnav-4x5": ([5, 5, 5, 5], 4, False),
    "rotnav-homogeneous": ([8], 4, False),
    "bps-3x80": ([80] * 3, 10, False),
    "bps-10x100": ([100] * 10, 24, False),
}
UNPERMUTED_BPS = ["bps-1", "bps-2", "bps-3", "bps-4", "bps-10x100"]


def colours_of(groups: list[int]) -> list[int]:
    """Type of every agent, assigned in index order (plain loop)."""
    out = []
    for colour, size in enumerate(groups):
        out += [colour] * size
    return out


def scenario_of(env):
    return env.base_env.scenario


def bps_raw_obs(agent, landmarks) -> torch.Tensor:
    """[vel, pos, landmark_0 - pos, landmark_1 - pos, ...] for every env, by hand."""
    pos, vel = agent.state.pos, agent.state.vel
    return torch.cat([vel, pos] + [lm.state.pos - pos for lm in landmarks], dim=-1)


def step_with(env, td, actions: torch.Tensor):
    td = td.clone()
    td["agents", "action"] = actions
    return env.step(td)


# --------------------------------------------------------------------------- presets


def test_list_presets():
    presets = list_presets()
    assert list(presets)[: len(SPEC)] == list(SPEC)  # then the lbf- presets (tests/test_lbf.py)
    assert all(isinstance(d, str) and d for d in presets.values())
    with_vmas = list_presets(vmas_scenarios=True)
    assert "navigation" in with_vmas and "simple_spread" in with_vmas
    assert list(with_vmas)[: len(SPEC)] == list(SPEC)


@pytest.mark.parametrize("name", list(SPEC))
def test_preset_specs(name):
    groups, obs_dim, _ = SPEC[name]
    env = make_env(name, num_envs=2, seed=0)
    check_env_specs(env)
    n_agents = sum(groups)
    assert env.full_observation_spec["agents", "observation"].shape == (2, n_agents, obs_dim)
    action_spec = env.full_action_spec["agents", "action"]
    assert action_spec.shape == (2, n_agents) and action_spec.space.n == 5
    assert env.full_reward_spec["agents", "reward"].shape == (2, n_agents, 1)
    assert set(env.full_done_spec.keys()) == {"done", "terminated", "truncated"}
    assert agent_types(env).tolist() == colours_of(groups)
    assert agent_types(env).dtype == torch.long
    # agent names put every agent in the single group "agents"
    assert list(env.base_env.group_map) == ["agents"]


@pytest.mark.parametrize("overrides", [{"continuous_actions": True}, {"categorical_actions": False}])
def test_action_variants_pass_specs(overrides):
    env = make_env("rotnav-2x4", num_envs=2, seed=0, **overrides)
    check_env_specs(env)
    spec = env.full_action_spec["agents", "action"]
    expected = (2, 8, 2) if "continuous_actions" in overrides else (2, 8, 5)
    assert spec.shape == expected


def test_episodes_last_50_steps_and_returns_are_summed():
    env = make_env("bps-1", num_envs=2, seed=0)
    td = env.rollout(60, break_when_any_done=False)
    done = td["next", "done"][:, :, 0]
    assert done[:, 49].all() and not done[:, :49].any() and not done[:, 50:59].any()
    # a time limit: truncated, not terminated
    torch.testing.assert_close(td["next", "truncated"][..., 0], done)
    assert not td["next", "terminated"].any()
    assert td["step_count"][:, :50, 0].tolist() == [list(range(50))] * 2
    rewards = td["next", "agents", "reward"]
    returns = td["next", "agents", "episode_reward"]
    torch.testing.assert_close(returns[:, 49], rewards[:, :50].sum(1))
    # the return restarts with the new episode
    torch.testing.assert_close(returns[:, 55], rewards[:, 50:56].sum(1))


def test_vmas_scenario_names():
    env = make_env("navigation", num_envs=2, seed=0, n_agents=2)
    check_env_specs(env)
    assert agent_types(env) is None
    td = env.rollout(3)
    assert ("agents", "episode_reward") in td["next"].keys(True)


def test_vmas_scenario_with_several_agent_groups():
    """simple_tag has 3 adversaries and 1 good agent, in two TorchRL groups."""
    env = make_env("simple_tag", num_envs=2, seed=0, max_steps=5)
    check_env_specs(env)
    td = env.rollout(5)
    for group, n in (("adversary", 3), ("agent", 1)):
        rewards = td["next", group, "reward"]
        assert rewards.shape == (2, 5, n, 1)
        torch.testing.assert_close(td["next", group, "episode_reward"][:, -1], rewards.sum(1))


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "name, kwargs, error, words",
    [
        ("bps-7", {}, ValueError, ["bps-7", "bps-1", "rotnav-4x5", "navigation"]),
        (7, {}, TypeError, ["name", "7"]),
        ("bps-1", {"groups": []}, ValueError, ["groups", "[]"]),
        ("bps-1", {"groups": [3, 0]}, ValueError, ["groups", "[3, 0]", ">= 1"]),
        ("bps-1", {"groups": [3, -2]}, ValueError, ["groups", "[3, -2]"]),
        ("bps-1", {"groups": [2.5, 3]}, TypeError, ["groups", "2.5"]),
        ("bps-1", {"groups": "555"}, TypeError, ["groups", "555"]),
        ("bps-1", {"n_landmarks": 2}, ValueError, ["n_landmarks", "3", "2"]),
        ("bps-1", {"obs_permutations": [list(range(10))] * 2}, ValueError, ["obs_permutations", "3", "2"]),
        ("bps-1", {"obs_permutations": [list(range(9))] * 3}, ValueError, ["obs_permutations[0]", "length 10", "9"]),
        ("bps-1", {"obs_permutations": [[0] * 10] * 3}, ValueError, ["permutation of range(10)"]),
        ("bps-1", {"landmark_spawn": -1.0}, ValueError, ["landmark_spawn", "-1.0"]),
        ("bps-1", {"colour_count": 3}, TypeError, ["colour_count", "groups"]),
        ("rotnav-4x5", {"angles": (0, 90)}, ValueError, ["angles", "4", "2"]),
        ("rotnav-2x4", {"step_size": 0}, ValueError, ["step_size", "0"]),
        ("bps-1", {"max_steps": 0}, ValueError, ["max_steps", "0"]),
        ("bps-1", {"continuous_actions": "yes"}, TypeError, ["continuous_actions", "yes"]),
    ],
)
def test_invalid_settings_fail_before_building(monkeypatch, name, kwargs, error, words):
    def must_not_build(*args, **kw):
        raise AssertionError("an environment was built before the settings were checked")

    monkeypatch.setattr(presets_module, "VmasEnv", must_not_build)
    with pytest.raises(error) as info:
        make_env(name, num_envs=2, **kwargs)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


@pytest.mark.parametrize(
    "num_envs, error", [(0, ValueError), (-3, ValueError), (2.0, TypeError), (True, TypeError)]
)
def test_invalid_num_envs(num_envs, error):
    with pytest.raises(error, match="num_envs"):
        make_env("bps-1", num_envs=num_envs)


def test_scenario_rejects_bad_settings_through_vmas_too():
    with pytest.raises(ValueError, match="groups"):
        vmas.make_env(BlindParticleSpread(), num_envs=2, groups=[])
    with pytest.raises(TypeError, match="unexpected keyword"):
        vmas.make_env(RotatedNavigation(), num_envs=2, n_agents=3)


# --------------------------------------------------------------------------- BPS


@pytest.mark.parametrize("name", UNPERMUTED_BPS)
def test_bps_blindness(name):
    """Agents of different colours in the same state observe exactly the same thing."""
    groups = SPEC[name][0]
    env = make_env(name, num_envs=2, seed=0)
    env.reset()
    world = scenario_of(env).world
    colours = colours_of(groups)
    a, b = 0, len(colours) - 1  # first and last agent: different colours
    assert colours[a] != colours[b]
    pos = torch.tensor([[0.3, -0.2], [-0.7, 0.9]])
    vel = torch.tensor([[0.1, 0.05], [-0.2, 0.0]])
    for i in (a, b):
        world.agents[i].set_pos(pos, batch_index=None)
        world.agents[i].set_vel(vel, batch_index=None)
    scenario = scenario_of(env)
    obs_a = scenario.observation(world.agents[a])
    obs_b = scenario.observation(world.agents[b])
    torch.testing.assert_close(obs_a, obs_b, rtol=0, atol=0)
    # and every agent's observation is the colour-free layout [vel, pos, landmarks - pos]
    for i, agent in enumerate(world.agents):
        torch.testing.assert_close(
            scenario.observation(agent), bps_raw_obs(agent, world.landmarks)
        )


@pytest.mark.parametrize("name", ["bps-1", "bps-4", "bps-5", "bps-homogeneous", "bps-3x80"])
def test_bps_reward_by_colour(name):
    """reward_i = -0.5 * distance(agent i, landmark of agent i's colour), after real steps."""
    groups = SPEC[name][0]
    colours = colours_of(groups)
    env = make_env(name, num_envs=3, seed=1)
    td = env.reset()
    world = scenario_of(env).world
    for _ in range(4):
        td = env.step(env.rand_action(td))
        reward = td["next", "agents", "reward"][..., 0]  # [envs, agents]
        for i, agent in enumerate(world.agents):
            landmark = world.landmarks[colours[i]].state.pos
            expected = -0.5 * ((agent.state.pos - landmark) ** 2).sum(-1).sqrt()
            torch.testing.assert_close(reward[:, i], expected)
        td = step_mdp(td)


def test_bps_reward_depends_on_colour_only():
    env = make_env("bps-1", num_envs=2, seed=0)
    env.reset()
    scenario = scenario_of(env)
    world = scenario.world
    spot = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
    for agent in world.agents:
        agent.set_pos(spot, batch_index=None)
    rewards = torch.stack([scenario.reward(agent) for agent in world.agents], dim=1)
    # same state: agents of one colour agree, agents of different colours do not
    for lo, hi in [(0, 5), (5, 10), (10, 15)]:
        assert torch.equal(rewards[:, lo:hi], rewards[:, lo:lo + 1].expand(-1, 5))
    assert not torch.allclose(rewards[:, 0], rewards[:, 5])
    assert not torch.allclose(rewards[:, 5], rewards[:, 10])


def test_bps_physics_and_five_moves():
    """A move u gives force 5u, mass 1, dt 0.1, drag 0.25 (particle environments)."""
    env = make_env("bps-1", num_envs=2, seed=0)
    td = env.reset()
    world = scenario_of(env).world
    before = torch.stack([a.state.pos for a in world.agents], 1).clone()
    # agent i takes move i % 5: no-op, -x, +x, -y, +y
    moves = torch.arange(15) % 5
    td = step_with(env, td, moves.expand(2, 15))
    after = torch.stack([a.state.pos for a in world.agents], 1)
    direction = {0: (0.0, 0.0), 1: (-1.0, 0.0), 2: (1.0, 0.0), 3: (0.0, -1.0), 4: (0.0, 1.0)}
    expected_vel = torch.tensor([direction[m] for m in moves.tolist()]) * 5.0 * 0.1
    torch.testing.assert_close(after - before, (expected_vel * 0.1).expand(2, -1, -1))
    # the observation carries that velocity in its first two entries
    obs = td["next", "agents", "observation"]
    torch.testing.assert_close(obs[..., :2], expected_vel.expand(2, -1, -1))
    # second step, no-op: velocity decays by the drag
    td = step_with(env, step_mdp(td), torch.zeros(2, 15, dtype=torch.long))
    obs = td["next", "agents", "observation"]
    torch.testing.assert_close(obs[..., :2], 0.75 * expected_vel.expand(2, -1, -1))


def test_bps_one_hot_actions_match_categorical():
    moves = torch.randint(0, 5, (2, 15))
    outs = []
    # VMAS draws from one random stream per process: run one environment after the other
    for categorical, action in ((True, moves), (False, torch.nn.functional.one_hot(moves, 5))):
        env = make_env("bps-1", num_envs=2, seed=3, categorical_actions=categorical)
        td = env.reset()
        outs.append(step_with(env, td, action)["next", "agents", "observation"])
    torch.testing.assert_close(outs[0], outs[1])


@pytest.mark.parametrize("name", ["bps-5", "bps-6"])
def test_permutation_presets_permute(name):
    groups, obs_dim, _ = SPEC[name]
    colours = colours_of(groups)
    env = make_env(name, num_envs=2, seed=0)
    env.reset()
    scenario = scenario_of(env)
    world = scenario.world
    perms = scenario.obs_permutations
    assert len(perms) == len(groups) and len(set(perms)) == len(groups)
    for perm in perms:
        assert sorted(perm) == list(range(obs_dim)) and list(perm) != list(range(obs_dim))
    for i, agent in enumerate(world.agents):
        raw = bps_raw_obs(agent, world.landmarks)
        expected = torch.stack([raw[:, j] for j in perms[colours[i]]], dim=-1)
        torch.testing.assert_close(scenario.observation(agent), expected)
    # the permutations are fixed: a new environment (other seed) has the same ones
    assert scenario_of(make_env(name, num_envs=2, seed=5)).obs_permutations == perms


def test_explicit_permutations():
    reverse = list(range(9, -1, -1))
    identity = list(range(10))
    env = make_env("bps-1", num_envs=2, seed=0, obs_permutations=[identity, reverse, identity])
    env.reset()
    scenario = scenario_of(env)
    agent = scenario.world.agents[5]  # colour 1
    raw = bps_raw_obs(agent, scenario.world.landmarks)
    torch.testing.assert_close(scenario.observation(agent), raw.flip(-1))


def test_homogeneous_controls_have_one_type():
    for name in ["bps-homogeneous", "rotnav-homogeneous"]:
        env = make_env(name, num_envs=2, seed=0)
        types = agent_types(env)
        assert types.unique().tolist() == [0]
    scenario = scenario_of(make_env("bps-homogeneous", num_envs=2, seed=0))
    assert len(scenario.world.landmarks) == 3  # two decoys keep bps-1's observation size


# --------------------------------------------------------------------------- rotated navigation

# displacement (in units of step_size) of every type for the moves -x, +x, -y, +y, by hand
ROTATED_MOVES = {
    "rotnav-2x4": {
        0: [(-1, 0), (1, 0), (0, -1), (0, 1)],  # 0 degrees
        1: [(1, 0), (-1, 0), (0, 1), (0, -1)],  # 180 degrees
    },
    "rotnav-4x5": {
        0: [(-1, 0), (1, 0), (0, -1), (0, 1)],  # 0
        1: [(0, -1), (0, 1), (1, 0), (-1, 0)],  # 90 counter-clockwise
        2: [(1, 0), (-1, 0), (0, 1), (0, -1)],  # 180
        3: [(0, 1), (0, -1), (-1, 0), (1, 0)],  # 270
    },
}


@pytest.mark.parametrize("name", list(ROTATED_MOVES))
def test_rotated_dynamics(name):
    groups = SPEC[name][0]
    colours = colours_of(groups)
    n = len(colours)
    env = make_env(name, num_envs=2, seed=0)
    td = env.reset()
    for move in range(5):
        obs = td["agents", "observation"]
        td = step_with(env, td, torch.full((2, n), move))
        next_obs = td["next", "agents", "observation"]
        for i in range(n):
            expected = (0.0, 0.0) if move == 0 else ROTATED_MOVES[name][colours[i]][move - 1]
            shift = 0.15 * torch.tensor(expected, dtype=torch.float32)
            torch.testing.assert_close(next_obs[:, i, :2] - obs[:, i, :2], shift.expand(2, 2))
            torch.testing.assert_close(next_obs[:, i, 2:] - obs[:, i, 2:], -shift.expand(2, 2))
        td = step_mdp(td)


def test_rotated_same_obs_and_action_give_type_dependent_next_obs():
    env = make_env("rotnav-2x4", num_envs=2, seed=0)
    td = env.reset()
    scenario = scenario_of(env)
    world = scenario.world
    spot = torch.tensor([[0.2, 0.1], [-0.4, 0.3]])
    for i in (0, 7):  # type 0 and type 1
        world.agents[i].set_pos(spot, batch_index=None)
    obs = [scenario.observation(world.agents[i]) for i in (0, 7)]
    torch.testing.assert_close(obs[0], obs[1], rtol=0, atol=0)
    td = step_with(env, td, torch.full((2, 8), 2))  # everyone +x
    next_obs = td["next", "agents", "observation"]
    torch.testing.assert_close(next_obs[:, 0, :2], spot + torch.tensor([0.15, 0.0]))
    torch.testing.assert_close(next_obs[:, 7, :2], spot - torch.tensor([0.15, 0.0]))


def test_rotated_reward_is_the_same_function_for_all_types():
    env = make_env("rotnav-4x5", num_envs=3, seed=2)
    td = env.rollout(5)
    obs = td["next", "agents", "observation"]
    reward = td["next", "agents", "reward"][..., 0]
    goal_rel = obs[..., 2:4]
    torch.testing.assert_close(reward, -0.5 * goal_rel.norm(dim=-1))
    # obs = [pos, goal - pos]: pos + rel is the goal, the same for every agent of an env
    goal = obs[..., :2] + goal_rel
    torch.testing.assert_close(goal, goal[:, :, :1].expand_as(goal))


def test_rotated_custom_angles():
    env = make_env("rotnav-2x4", num_envs=2, seed=0, angles=(0.0, 90.0))
    td = env.reset()
    td = step_with(env, td, torch.full((2, 8), 2))  # +x
    shift = td["next", "agents", "observation"][..., :2] - td["agents", "observation"][..., :2]
    torch.testing.assert_close(shift[:, 7], torch.tensor([[0.0, 0.15]] * 2))


# --------------------------------------------------------------------------- resets and seeds


def rollout_positions(env, steps: int, reset_plan: dict[int, list[bool]]) -> list[torch.Tensor]:
    """Positions after each step, with fixed actions and partial resets at given steps."""
    generator = torch.Generator().manual_seed(0)
    td = env.reset()
    n_envs, n_agents = td["agents", "observation"].shape[:2]
    world = scenario_of(env).world
    out = []
    for t in range(steps):
        actions = torch.randint(0, 5, (n_envs, n_agents), generator=generator)
        td = step_mdp(step_with(env, td, actions))
        if t in reset_plan:
            td["_reset"] = torch.tensor(reset_plan[t]).unsqueeze(-1)
            td = env.reset(td)
        out.append(torch.stack([a.state.pos for a in world.agents], 1).clone())
    return out


def test_partial_reset_touches_only_selected_envs():
    env = make_env("bps-1", num_envs=3, seed=4)
    td = env.reset()
    for _ in range(3):
        td = step_mdp(env.step(env.rand_action(td)))
    world = scenario_of(env).world
    agents_before = torch.stack([a.state.pos for a in world.agents], 1).clone()
    landmarks_before = torch.stack([lm.state.pos for lm in world.landmarks], 1).clone()
    returns_before = td["agents", "episode_reward"].clone()
    td["_reset"] = torch.tensor([[False], [True], [False]])
    td = env.reset(td)
    agents_after = torch.stack([a.state.pos for a in world.agents], 1)
    landmarks_after = torch.stack([lm.state.pos for lm in world.landmarks], 1)
    kept = torch.tensor([0, 2])
    torch.testing.assert_close(agents_after[kept], agents_before[kept])
    torch.testing.assert_close(landmarks_after[kept], landmarks_before[kept])
    assert not torch.allclose(agents_after[1], agents_before[1])
    assert agents_after[1].abs().max() <= 1.0 and landmarks_after[1].abs().max() <= 3.0
    assert (td["agents", "episode_reward"][1] == 0).all()
    torch.testing.assert_close(td["agents", "episode_reward"][kept], returns_before[kept])
    # the reset env's observation is computed from its new state
    agent = world.agents[0]
    torch.testing.assert_close(
        td["agents", "observation"][:, 0], bps_raw_obs(agent, world.landmarks)
    )


@pytest.mark.parametrize("name", ["bps-1", "rotnav-4x5"])
def test_seeding_and_partial_resets_are_reproducible(name):
    plan = {2: [False, True, False], 4: [True, False, True]}
    runs = [rollout_positions(make_env(name, num_envs=3, seed=s), 6, plan) for s in (7, 7, 8)]
    for a, b in zip(runs[0], runs[1]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(runs[0][0], runs[2][0])


def test_spawn_regions():
    env = make_env("bps-2", num_envs=64, seed=0)
    env.reset()
    world = scenario_of(env).world
    agents = torch.stack([a.state.pos for a in world.agents])
    landmarks = torch.stack([lm.state.pos for lm in world.landmarks])
    assert agents.abs().max() <= 1.0 and agents.abs().max() > 0.9
    assert landmarks.abs().max() <= 3.0 and landmarks.abs().max() > 2.5


# --------------------------------------------------------------------------- agent_types


def test_agent_types_accepts_envs_and_scenarios():
    env = make_env("bps-4", num_envs=2)
    expected = colours_of([3, 3, 3, 12, 9])
    assert agent_types(env).tolist() == expected
    assert agent_types(env.base_env).tolist() == expected
    assert agent_types(scenario_of(env)).tolist() == expected
    raw = vmas.make_env(BlindParticleSpread(), num_envs=2, groups=(1, 2))
    assert agent_types(raw).tolist() == [0, 1, 1]
    types = agent_types(env)
    types[0] = 9  # a copy: the environment is not affected
    assert agent_types(env)[0] == 0
    with pytest.raises(TypeError, match="VMAS"):
        agent_types("bps-1")


def test_types_never_in_observations_or_info():
    env = make_env("bps-1", num_envs=2, seed=0)
    td = env.rollout(2)
    keys = {k for k in td.keys(True, True)}
    assert not any("type" in str(k) or "colour" in str(k) or "info" in str(k) for k in keys)


# --------------------------------------------------------------------------- rendering


def _render_or_skip(env, **kwargs) -> np.ndarray:
    try:
        return env.render(mode="rgb_array", **kwargs)
    except Exception as err:  # no OpenGL / EGL on this machine
        pytest.skip(f"VMAS rendering unavailable here: {type(err).__name__}: {err}")


def _pixel(frame: np.ndarray, bounds, xy) -> np.ndarray:
    """Pixel at world coordinates ``xy`` given viewer bounds (x_min, x_max, y_min, y_max)."""
    x_min, x_max, y_min, y_max = bounds
    h, w = frame.shape[:2]
    col = int(round((xy[0] - x_min) / (x_max - x_min) * (w - 1)))
    row = int(round((y_max - xy[1]) / (y_max - y_min) * (h - 1)))
    return frame[row, col].astype(int)


def test_render_colours_by_type():
    env = make_env("bps-1", num_envs=2, seed=0)
    env.reset()
    world = scenario_of(env).world
    # colour c's agents at (c - 1, 0.8), landmark c at (c - 1, -1.5), env 1 is drawn
    for i, colour in enumerate(colours_of([5, 5, 5])):
        world.agents[i].set_pos(torch.tensor([colour - 1.0, 0.8]), batch_index=1)
    for c, landmark in enumerate(world.landmarks):
        landmark.set_pos(torch.tensor([c - 1.0, -1.5]), batch_index=1)
    frame = _render_or_skip(env, env_index=1)
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8
    bounds = env.viewer.bounds.tolist()
    background = _pixel(frame, bounds, (2.5, 2.5))
    agent_px = [_pixel(frame, bounds, (c - 1.0, 0.8)) for c in range(3)]
    landmark_px = [_pixel(frame, bounds, (c - 1.0, -1.5)) for c in range(3)]
    for px in agent_px + landmark_px:
        assert np.abs(px - background).sum() > 60  # something is drawn there
    for group in (agent_px, landmark_px):
        for a in range(3):
            for b in range(a + 1, 3):
                assert np.abs(group[a] - group[b]).sum() > 60  # types look different
    # agents look like the landmark of their colour more than like any other landmark
    for c in range(3):
        distances = [np.abs(agent_px[c] - landmark_px[k]).sum() for k in range(3)]
        assert int(np.argmin(distances)) == c, distances


def test_render_rollout_and_gif(tmp_path):
    env = make_env("rotnav-2x4", num_envs=2, seed=0)
    _render_or_skip(env)
    frames = render_rollout(env, max_steps=3, env_index=1)
    assert len(frames) == 4
    assert all(f.dtype == np.uint8 and f.ndim == 3 and f.shape[2] == 3 for f in frames)
    assert any(not np.array_equal(frames[0], f) for f in frames[1:])  # agents moved
    path = save_gif(frames, tmp_path / "rollout.gif", fps=5)
    from PIL import Image

    with Image.open(path) as gif:
        assert gif.n_frames == 4
    with pytest.raises(ValueError, match="frames"):
        save_gif([np.zeros((4, 4), dtype=np.uint8)], tmp_path / "bad.gif")
    # by default, one episode: the time limit of the environment
    assert len(render_rollout(make_env("rotnav-2x4", num_envs=2, max_steps=4))) == 5


def test_five_moves_table():
    assert FIVE_MOVES.tolist() == [[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]]
    assert math.isclose(float(FIVE_MOVES.abs().sum()), 4.0)


# --------------------------------------------------------------------------- the world


@pytest.mark.parametrize("name", ["bps-1", "rotnav-4x5"])
def test_collision_free_world_steps_as_vmas_s_own_world(monkeypatch, name):
    """The same seeded rollout under VMAS's World and under the world that skips the pair pass."""
    from torchrl_seps import _compat
    from torchrl_seps.scenarios import _base

    def rollout():
        env = make_env(name, num_envs=3, seed=5)
        torch.manual_seed(0)
        return env.rollout(20, break_when_any_done=False)

    ours = rollout()
    assert type(scenario_of(make_env(name, num_envs=1)).world) is _compat.CollisionFreeWorld
    monkeypatch.setattr(_base, "CollisionFreeWorld", vmas.simulator.core.World)
    theirs = rollout()
    assert type(scenario_of(make_env(name, num_envs=1)).world) is vmas.simulator.core.World
    for key in [("next", "agents", "observation"), ("next", "agents", "reward")]:
        torch.testing.assert_close(ours[key], theirs[key], rtol=0, atol=0)
    assert issubclass(_compat.CollisionFreeWorld, vmas.simulator.core.World)


def test_collision_free_world_still_collides_what_collides():
    """Two overlapping colliding spheres are pushed apart exactly as in VMAS's own World."""
    from vmas.simulator.core import Agent, Sphere, World

    from torchrl_seps._compat import CollisionFreeWorld

    def push(world_class):
        world = world_class(batch_dim=1, device="cpu")
        for i in range(2):
            world.add_agent(Agent(name=f"agent_{i}", shape=Sphere(0.1), collide=True))
        world.reset(None)
        world.agents[0].set_pos(torch.tensor([[0.0, 0.0]]), batch_index=None)
        world.agents[1].set_pos(torch.tensor([[0.05, 0.0]]), batch_index=None)
        for agent in world.agents:
            agent.action.u = torch.zeros(1, 2)
        world.step()
        return torch.stack([agent.state.vel for agent in world.agents])

    moved = push(CollisionFreeWorld)
    torch.testing.assert_close(moved, push(World), rtol=0, atol=0)
    assert moved[0, 0, 0] < 0 < moved[1, 0, 0]
