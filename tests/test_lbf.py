"""Level-Based Foraging, checked against the reference package ``lbforaging`` 2.0.0.

Differential tests put the same state into :class:`LevelBasedForaging` and into
``lbforaging``'s ``ForagingEnv``, apply the same joint actions and require identical
positions, food, rewards, episode ends and observations. Spawns, which the reference draws
with its own random numbers, are compared as distributions (chi-square tests).

``lbforaging`` resolves loads in the order of a Python ``set`` of player objects, i.e. by
memory address. The tests give its players hashes equal to their index, which makes that set
yield them in index order; the rules themselves are untouched.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torchrl.envs import check_env_specs

from conftest import cuda_devices
from torchrl_seps.scenarios import agent_types, list_presets, make_env, render_rollout, save_gif
from torchrl_seps.scenarios.foraging import EAST, LOAD, NONE, NORTH, SOUTH, WEST, LevelBasedForaging

lbf = pytest.importorskip("lbforaging.foraging.environment")
chi2_contingency = pytest.importorskip("scipy.stats").chi2_contingency



@pytest.fixture(autouse=True)
def players_hashed_by_index(monkeypatch):
    monkeypatch.setattr(lbf.Player, "__hash__", lambda self: self.seps_index)


def reference(config: dict, seed: int = 0):
    """A reset ``ForagingEnv`` with the same settings as ``LevelBasedForaging(**config)``."""
    n = config["players"]
    levels = config.get("levels")
    low = levels if levels is not None else config.get("min_player_level", 1)
    high = levels if levels is not None else config.get("max_player_level", 2)
    size = config["field_size"]
    env = lbf.ForagingEnv(
        players=n,
        min_player_level=list(low) if not np.isscalar(low) else low,
        max_player_level=list(high) if not np.isscalar(high) else high,
        min_food_level=config.get("min_food_level", 1),
        max_food_level=config.get("max_food_level"),
        field_size=(size, size),
        max_num_food=config["max_num_food"],
        sight=config.get("sight") or size,
        max_episode_steps=10**9,
        force_coop=config.get("force_coop", False),
        normalize_reward=config.get("normalize_reward", True),
        grid_observation=False,
        observe_agent_levels=config.get("observe_agent_levels", True),
        penalty=config.get("penalty", 0.0),
    )
    for i, player in enumerate(env.players):
        player.seps_index = i
    env.reset(seed=seed)
    return env


def put_state(ref, positions, levels, field, food_spawned) -> np.ndarray:
    """Load a state into a reference env; returns its observations ``[players, obs_dim]``."""
    ref.field = np.array(field, dtype=np.int32)
    for player, (r, c), level in zip(ref.players, positions, levels):
        player.position = (int(r), int(c))
        player.level = int(level)
    ref._food_spawned = int(food_spawned)
    ref.current_step = 0
    ref._game_over = False
    ref._gen_valid_moves()
    return np.stack(ref.test_make_gym_obs())


def state_of(ref) -> tuple[list, list, np.ndarray]:
    return [tuple(map(int, p.position)) for p in ref.players], [int(p.level) for p in ref.players], ref.field


class Pair:
    """``num_envs`` reference envs and one batched env, stepped in lockstep and compared;
    ``steps`` counts the env-steps compared."""

    def __init__(self, config: dict, num_envs: int, seed: int = 0):
        self.config = config
        self.steps = 0
        self.refs = [reference(config, seed + e) for e in range(num_envs)]
        self.env = LevelBasedForaging(num_envs=num_envs, seed=seed, **config)

    def set(self, positions, levels, fields, food_spawned):
        """Same state in both; compares the observations of it."""
        ref_obs = np.stack([put_state(*args) for args in zip(self.refs, positions, levels, fields, food_spawned)])
        state = self.env.get_state()
        state["positions"] = torch.as_tensor(np.asarray(positions), dtype=torch.long)
        state["levels"] = torch.as_tensor(np.asarray(levels), dtype=torch.long)
        state["field"] = torch.as_tensor(np.asarray(fields), dtype=torch.long)
        state["food_spawned"] = torch.as_tensor(np.asarray(food_spawned), dtype=torch.long)
        self.td = self.env.set_state(state)
        np.testing.assert_array_equal(self.td["agents", "observation"].numpy(), ref_obs)

    def step(self, actions: np.ndarray, live: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Step every env with ``actions`` ``[E, N]``; compare those in ``live``.

        Returns the reference rewards ``[E, N]`` and episode ends ``[E]``.
        """
        td = self.td.clone()
        td["agents", "action"] = torch.as_tensor(actions, dtype=torch.long)
        out = self.env.step(td)["next"]
        state = self.env.get_state()
        rewards = np.zeros(actions.shape)
        ends = np.zeros(len(self.refs), dtype=bool)
        live_envs = np.flatnonzero(live)
        ref_obs, ref_pos, ref_levels, ref_field = [], [], [], []
        for e in live_envs:
            obs, reward, done, _, _ = self.refs[e].step(list(actions[e]))
            positions, levels, field = state_of(self.refs[e])
            ref_obs.append(np.stack(obs))
            ref_pos.append(positions)
            ref_levels.append(levels)
            ref_field.append(field)
            rewards[e], ends[e] = reward, done
        if len(live_envs):
            np.testing.assert_array_equal(state["positions"].numpy()[live_envs], np.asarray(ref_pos))
            np.testing.assert_array_equal(state["levels"].numpy()[live_envs], np.asarray(ref_levels))
            np.testing.assert_array_equal(state["field"].numpy()[live_envs], np.stack(ref_field))
            np.testing.assert_array_equal(
                out["agents", "reward"].numpy()[live_envs, :, 0], rewards[live_envs].astype(np.float32)
            )
            np.testing.assert_array_equal(out["agents", "observation"].numpy()[live_envs], np.stack(ref_obs))
            # the reference ends the episode when the food is gone (no time limit here)
            np.testing.assert_array_equal(out["terminated"].numpy()[live_envs, 0], ends[live_envs])
            assert not out["truncated"].any()
        self.steps += len(live_envs)
        self.td = out
        return rewards, ends


def random_state(rng, config: dict, num_envs: int):
    """Reachable-looking states: foods off the border, agents never on food, some agents sharing cells."""
    size, n, nf = config["field_size"], config["players"], config["max_num_food"]
    top_level = config.get("max_player_level", 2)
    positions, levels, fields, spawned = [], [], [], []
    for _ in range(num_envs):
        field = np.zeros((size, size), dtype=np.int64)
        for _ in range(rng.integers(1, nf + 1)):
            field[rng.integers(1, size - 1), rng.integers(1, size - 1)] = rng.integers(1, 3 * top_level + 1)
        free = np.argwhere(field == 0)
        cells = free[rng.choice(len(free), size=n, replace=True)]
        if rng.random() < 0.5:  # crowd the agents around a food
            r, c = np.argwhere(field > 0)[0]
            ring = np.array([[r - 1, c], [r + 1, c], [r, c - 1], [r, c + 1]])
            ring = ring[field[ring[:, 0], ring[:, 1]] == 0]  # a neighbour may be another food
            take = rng.integers(0, min(n, len(ring)) + 1)
            cells[:take] = ring[rng.permutation(len(ring))[:take]]
        positions.append(cells.tolist())
        levels.append(rng.integers(1, top_level + 1, size=n).tolist())
        fields.append(field)
        spawned.append(int(field.sum()) + int(rng.integers(0, 4)))
    return positions, levels, fields, spawned


def random_config(rng) -> dict:
    size = int(rng.integers(5, 11))
    return {
        "players": int(rng.integers(2, 7)),
        "field_size": size,
        "max_num_food": int(rng.integers(1, 5)),
        "sight": int(rng.choice([1, 2, 3, size])),
        "max_player_level": int(rng.integers(1, 4)),
        "min_player_level": 1,
        "max_food_level": None,
        "normalize_reward": bool(rng.random() < 0.5),
        "observe_agent_levels": bool(rng.random() < 0.5),
        "penalty": float(rng.choice([0.0, 0.1, 0.25])),
    }


def test_random_states_and_actions_match_the_reference():
    """Thousands of random steps over many random configurations, zero mismatches."""
    rng = np.random.default_rng(1234)
    num_envs, steps, configs = 16, 25, 40
    events = {"loads": 0, "failed": 0, "shared_cell": 0, "ends": 0}
    compared = 0
    for k in range(configs):
        config = random_config(rng)
        config["max_food_level"] = 3 * config["max_player_level"]  # bounds of the random foods
        pair = Pair(config, num_envs, seed=k)
        pair.set(*random_state(rng, config, num_envs))
        live = np.ones(num_envs, dtype=bool)
        for _ in range(steps):
            # LOAD often, so that loads are tried in many configurations of agents and food
            actions = rng.choice(6, size=(num_envs, config["players"]), p=[0.1, 0.15, 0.15, 0.15, 0.15, 0.3])
            food_before = np.stack([ref.field.sum() for ref in pair.refs])
            rewards, ends = pair.step(actions, live)
            food_after = np.stack([ref.field.sum() for ref in pair.refs])
            events["loads"] += int((food_after < food_before)[live].sum())
            events["failed"] += int((rewards < 0)[live].any(1).sum())
            for e in np.flatnonzero(live):
                cells = [p.position for p in pair.refs[e].players]
                events["shared_cell"] += len(set(cells)) < len(cells)
            events["ends"] += int(ends[live].sum())
            live &= ~ends
            if not live.any():
                break
        compared += pair.steps
    # the random play exercised the rules that matter, over thousands of compared steps
    assert all(count > 20 for count in events.values()), events
    assert compared > configs * num_envs * 5, compared


def test_spawned_episodes_match_the_reference():
    """Episodes from resets (ours and the reference's), stepped with the same actions."""
    rng = np.random.default_rng(7)
    cases = [
        dict(players=3, field_size=8, max_num_food=2, levels=(1, 2, 3), observe_agent_levels=False),
        dict(players=6, field_size=10, max_num_food=3, levels=(1, 2, 3, 1, 2, 3), observe_agent_levels=False),
        dict(players=3, field_size=8, max_num_food=2, force_coop=True, penalty=0.1),
        dict(players=4, field_size=7, max_num_food=2, sight=2, normalize_reward=False),
    ]
    for k, config in enumerate(cases):
        num_envs = 32
        pair = Pair(config, num_envs, seed=100 + k)
        pair.env.reset()
        # our spawn, loaded into the reference (its own spawn draws other random numbers)
        state = pair.env.get_state()
        # the reward normaliser is the food spawned (lbforaging: the field's sum after a spawn)
        assert state["food_spawned"].tolist() == state["field"].sum((1, 2)).tolist()
        pair.set(state["positions"].numpy(), state["levels"].numpy(), state["field"].numpy(),
                 state["food_spawned"].numpy())
        live = np.ones(num_envs, dtype=bool)
        for _ in range(50):
            actions = rng.integers(0, 6, size=(num_envs, config["players"]))
            _, ends = pair.step(actions, live)
            live &= ~ends
        assert pair.steps > num_envs * 10, (config, pair.steps)  # most episodes last a while


# --------------------------------------------------------------------------- forced edge cases


def one_env_pair(config):
    return Pair(config, num_envs=1)


def run_case(config, positions, levels, field, actions_seq, food_spawned=None):
    """One forced state, a sequence of joint actions; returns the reference rewards per step."""
    pair = one_env_pair(config)
    field = np.asarray(field)
    pair.set([positions], [levels], [field], [food_spawned or int(field.sum())])
    out = []
    for actions in actions_seq:
        rewards, _ = pair.step(np.asarray([actions]), np.ones(1, dtype=bool))
        out.append(rewards[0])
    return pair, out


def grid(size, foods):
    field = np.zeros((size, size), dtype=np.int64)
    for (r, c), level in foods.items():
        field[r, c] = level
    return field


BASE = dict(field_size=6, max_num_food=3, max_player_level=3, max_food_level=6)


def test_two_agents_into_one_cell_both_stay():
    config = dict(BASE, players=3)
    pair, _ = run_case(config, [(2, 1), (2, 3), (4, 4)], [1, 1, 1], grid(6, {(4, 2): 1}),
                       [[EAST, WEST, NONE]])
    assert pair.env.get_state()["positions"][0].tolist() == [[2, 1], [2, 3], [4, 4]]


def test_blocked_agent_and_agent_moving_in_share_a_cell():
    # agent 1 is blocked by agent 2 (both claim (3, 3)); agent 0 moves into agent 1's cell
    config = dict(BASE, players=3)
    pair, _ = run_case(config, [(2, 2), (2, 3), (4, 3)], [1, 1, 1], grid(6, {(1, 1): 1}),
                       [[EAST, SOUTH, NORTH], [NONE, NONE, NONE]])
    assert pair.env.get_state()["positions"][0].tolist() == [[2, 3], [2, 3], [4, 3]]


def test_swap_and_invalid_moves():
    config = dict(BASE, players=3)
    pair, _ = run_case(config, [(0, 0), (0, 1), (2, 1)], [1, 1, 1], grid(6, {(2, 2): 1}),
                       [[EAST, WEST, EAST], [NORTH, WEST, LOAD]])  # swap, onto food, off grid
    assert pair.env.get_state()["positions"][0].tolist() == [[0, 1], [0, 0], [2, 1]]


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("penalty", [0.0, 0.3])
def test_load_too_low_then_exactly_enough(normalize, penalty):
    config = dict(BASE, players=3, normalize_reward=normalize, penalty=penalty)
    field = grid(6, {(2, 2): 3, (4, 4): 1})
    # levels 1 + 1 < 3 fails; then 1 + 2 == 3 succeeds with agent 2 joining
    _, rewards = run_case(config, [(1, 2), (2, 1), (2, 3)], [1, 1, 2], field,
                          [[LOAD, LOAD, NONE], [LOAD, NONE, LOAD]])
    assert rewards[0][0] == -penalty and rewards[0][2] == 0
    assert rewards[1][0] > 0 and rewards[1][2] > 0 and rewards[1][1] == 0


def test_several_foods_adjacent():
    # agent 0 touches foods north and east; agents 1 and 2 each touch one of them
    config = dict(BASE, players=3, penalty=0.1)
    field = grid(6, {(1, 2): 2, (2, 3): 1})
    cases = [
        [LOAD, LOAD, LOAD],
        [LOAD, NONE, LOAD],
        [NONE, LOAD, LOAD],
        [LOAD, LOAD, NONE],
    ]
    for actions in cases:
        run_case(config, [(2, 2), (1, 1), (3, 3)], [1, 1, 1], field, [actions, actions])
    # two foods both adjacent to two agents standing in one cell
    run_case(config, [(2, 2), (2, 2), (3, 3)], [1, 2, 1], field, [[LOAD, LOAD, LOAD]])
    # agent 1's first food is north (level 1), but agent 0, first in index order, takes it
    # into its group at the food east of agent 1 (level 2): that food goes, the other stays
    pair, rewards = run_case(config, [(3, 3), (2, 2), (0, 0)], [1, 1, 1], grid(6, {(1, 2): 1, (2, 3): 2}),
                             [[LOAD, LOAD, NONE], [NONE, NONE, NONE]])
    assert rewards[0][0] > 0 and rewards[0][1] > 0
    assert pair.env.get_state()["field"][0].nonzero().tolist() == [[1, 2]]


@pytest.mark.parametrize("observe", [True, False])
def test_sight_at_the_border(observe):
    # agent 0 in the corner: foods visible within 2 cells, agents within 4 (lbforaging's window)
    config = dict(BASE, field_size=8, players=4, sight=2, observe_agent_levels=observe)
    field = grid(8, {(2, 2): 1, (3, 1): 1, (1, 3): 2})
    pair, _ = run_case(config, [(0, 0), (4, 4), (5, 0), (7, 7)], [1, 2, 3, 1], field,
                       [[NONE, NONE, NONE, NONE], [SOUTH, WEST, NORTH, NORTH]])
    obs = pair.td["agents", "observation"][0, 0]
    assert obs.shape[0] == 3 * 3 + (3 if observe else 2) * 4


def test_episode_terminates_when_food_is_gone():
    config = dict(BASE, players=2)
    pair, _ = run_case(config, [(1, 2), (3, 3)], [1, 1], grid(6, {(2, 2): 1}), [[LOAD, NONE]])
    assert pair.td["terminated"].item() and pair.td["done"].item()


def test_levels_beyond_eight_bits():
    # foods up to level 300: the grid takes a wider integer type than the presets' int8
    config = dict(BASE, players=3, max_player_level=200, max_food_level=300)
    pair, rewards = run_case(config, [(1, 2), (2, 1), (4, 4)], [100, 200, 1], grid(6, {(2, 2): 250, (4, 1): 299}),
                             [[LOAD, LOAD, NONE], [NONE, NONE, NONE]])
    assert rewards[0][0] > 0 and rewards[0][1] > 0
    assert pair.env.get_state()["field"][0].tolist()[4][1] == 299


def test_set_state_rejects_a_food_level_the_grid_cannot_hold():
    env = LevelBasedForaging(num_envs=1, players=2, field_size=5, max_num_food=1, seed=0)  # foods up to 4
    env.reset()
    state = env.get_state()
    state["field"][0] = 0
    state["field"][0, 2, 2] = 200
    with pytest.raises(ValueError, match="up to 127"):
        env.set_state(state)


# --------------------------------------------------------------------------- spawns


def spawn_counts_reference(config, resets, seed=0):
    ref = reference(config, seed)
    rows = []
    for _ in range(resets):
        before = [p.position for p in ref.players]
        ref.reset()
        rows.append(
            ([tuple(map(int, p.position)) for p in ref.players], [int(p.level) for p in ref.players],
             ref.field.copy(), [p.position == b for p, b in zip(ref.players, before)])
        )
    return rows


def spawn_counts_ours(config, resets, seed=0):
    env = LevelBasedForaging(num_envs=resets, seed=seed, **config)
    env.reset()
    before = env.get_state()["positions"]
    env.reset()
    state = env.get_state()
    rows = []
    for e in range(resets):
        positions = [tuple(p) for p in state["positions"][e].tolist()]
        same = (state["positions"][e] == before[e]).all(-1).tolist()
        rows.append((positions, state["levels"][e].tolist(), state["field"][e].numpy(), same))
    return rows


def features(rows, size):
    """Categorical statistics of spawns: name -> list of category labels."""
    out = {"agent0 cell": [], "agent1 cell": [], "food cells": [], "food levels": [],
           "levels": [], "number of foods": [], "cell repeated": [], "agents adjacent to food": []}
    for positions, levels, field, same in rows:
        out["agent0 cell"].append(positions[0][0] * size + positions[0][1])
        out["agent1 cell"].append(positions[1][0] * size + positions[1][1])
        out["food cells"] += (np.flatnonzero(field.ravel())).tolist()
        out["food levels"] += field[field > 0].tolist()
        out["levels"] += [10 * i + lvl for i, lvl in enumerate(levels)]
        out["number of foods"].append(int((field > 0).sum()))
        out["cell repeated"].append(sum(same))
        near = 0
        for r, c in positions:
            near += any(0 <= r + dr < size and 0 <= c + dc < size and field[r + dr, c + dc] > 0
                        for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)))
        out["agents adjacent to food"].append(near)
    return out


SPAWN_CASES = [
    dict(players=5, field_size=5, max_num_food=1),  # crowded: previous cells matter
    dict(players=3, field_size=7, max_num_food=3, min_player_level=[1, 1, 2], max_player_level=[1, 3, 2]),
    dict(players=3, field_size=6, max_num_food=2, force_coop=True, max_player_level=3),
    dict(players=2, field_size=9, max_num_food=4, min_food_level=[1, 2, 1, 3], max_food_level=[1, 4, 2, 3]),
    dict(players=4, field_size=6, max_num_food=3, min_food_level=2, max_food_level=4),  # same bounds for all
]


@pytest.mark.parametrize("config", SPAWN_CASES)
def test_spawn_distributions_match_the_reference(config):
    resets, size = 4000, config["field_size"]
    ours = features(spawn_counts_ours(config, resets), size)
    theirs = features(spawn_counts_reference(config, resets), size)
    for name in ours:
        labels = sorted(set(ours[name]) | set(theirs[name]))
        table = np.array([[lst.count(v) for v in labels] for lst in (ours[name], theirs[name])])
        if len(labels) == 1:
            continue  # a constant, equal in both
        p = chi2_contingency(table).pvalue
        assert p > 1e-4, (name, labels, table.tolist(), p)


# --------------------------------------------------------------------------- presets and specs

LBF_PRESETS = {
    # name: (players, size, foods, levels, coop)
    "lbf-8x8-3p-2f": (3, 8, 2, [1, 2, 3], False),
    "lbf-10x10-6p-3f": (6, 10, 3, [1, 2, 3] * 2, False),
    "lbf-15x15-9p-4f": (9, 15, 4, [1, 2, 3] * 3, False),
    "lbf-8x8-3p-2f-coop": (3, 8, 2, [1, 2, 3], True),
    "lbf-10x10-6p-3f-homogeneous": (6, 10, 3, [1] * 6, False),
}


def test_presets_are_listed():
    assert set(LBF_PRESETS) <= set(list_presets())


@pytest.mark.parametrize("name", list(LBF_PRESETS))
def test_lbf_presets(name):
    players, size, foods, levels, coop = LBF_PRESETS[name]
    env = make_env(name, num_envs=3, seed=0)
    check_env_specs(env)
    assert env.full_observation_spec["agents", "observation"].shape == (3, players, 3 * foods + 2 * players)
    assert env.full_action_spec["agents", "action"].space.n == 6
    types = {lvl: k for k, lvl in enumerate(dict.fromkeys(levels))}
    assert agent_types(env).tolist() == [types[lvl] for lvl in levels]
    assert env.base_env.get_state()["levels"].tolist() == [levels] * 3
    td = env.rollout(60, break_when_any_done=False)
    # 50-step time limit (truncation), food exhausted is termination
    done, truncated = td["next", "done"][..., 0], td["next", "truncated"][..., 0]
    assert (done | ~truncated).all()
    assert (truncated[:, 49] | td["next", "terminated"][:, :50, 0].any(1)).all()
    if coop:
        top = sum(sorted(levels)[:3])
        field = env.base_env.get_state()["field"]
        assert set(field[field > 0].tolist()) <= {top}


@pytest.mark.parametrize("device", cuda_devices())
def test_preset_matches_the_reference_for_fifty_steps(device):
    """make_env's preset through a whole episode, with the reference loaded from its reset."""
    env = make_env("lbf-10x10-6p-3f", num_envs=8, seed=3, device=device)
    td = env.reset()
    base = env.base_env
    state = base.get_state().cpu()
    config = dict(players=6, field_size=10, max_num_food=3, levels=[1, 2, 3] * 2, observe_agent_levels=False)
    refs = [reference(config, e) for e in range(8)]
    for e, ref in enumerate(refs):
        obs = put_state(ref, state["positions"][e].tolist(), state["levels"][e].tolist(),
                        state["field"][e].numpy(), int(state["food_spawned"][e]))
        np.testing.assert_array_equal(td["agents", "observation"][e].cpu().numpy(), obs)
    rng = np.random.default_rng(0)
    live = np.ones(8, dtype=bool)
    for t in range(50):
        actions = rng.integers(0, 6, size=(8, 6))
        td["agents", "action"] = torch.as_tensor(actions, device=device)
        out = env.step(td)["next"]
        cpu = out.cpu()
        for e, ref in enumerate(refs):
            if not live[e]:
                continue
            ref._max_episode_steps = 50  # the reference's own time limit
            obs, reward, done, _, _ = ref.step(list(actions[e]))
            np.testing.assert_array_equal(cpu["agents", "observation"][e].numpy(), np.stack(obs))
            np.testing.assert_array_equal(cpu["agents", "reward"][e, :, 0].numpy(), np.float32(reward))
            assert bool(cpu["done"][e]) == bool(done)
            live[e] = not done
        td = out


@pytest.mark.parametrize("settings, error, match", [
    (dict(players=10), ValueError, "fit on the 3 x 3 grid"),
    (dict(players=9), ValueError, "free cell"),
    (dict(max_num_food=10), ValueError, "max_num_food"),
    (dict(levels=[1, 2]), ValueError, "levels must have 3 entries"),
    (dict(levels=[1, 2, 3], max_player_level=3), ValueError, "max_player_level must be None"),
    (dict(min_food_level=3, max_food_level=2), ValueError, "min_food_level must not exceed"),
    (dict(penalty=-1.0), ValueError, "penalty"),
    (dict(force_coop=1), TypeError, "force_coop must be True or False"),
    (dict(sight=0), ValueError, "sight"),
])
def test_bad_settings_are_refused(settings, error, match):
    with pytest.raises(error, match=match):
        LevelBasedForaging(num_envs=1, **{**dict(players=3, field_size=3, max_num_food=1), **settings})


def test_make_env_rejects_bad_lbf_settings():
    with pytest.raises(ValueError, match="continuous_actions"):
        make_env("lbf-8x8-3p-2f", num_envs=2, continuous_actions=True)
    with pytest.raises(ValueError, match="levels"):
        make_env("lbf-8x8-3p-2f", num_envs=2, levels=[1, 2])
    with pytest.raises(TypeError, match="groups"):
        make_env("lbf-8x8-3p-2f", num_envs=2, groups=(1, 2))
    with pytest.raises(TypeError, match="sight"):
        make_env("lbf-8x8-3p-2f", num_envs=2, sight=2.5)


def test_one_hot_actions_and_render(tmp_path):
    env = make_env("lbf-8x8-3p-2f", num_envs=2, seed=0, categorical_actions=False)
    check_env_specs(env)
    frames = render_rollout(env, max_steps=3, env_index=1)
    assert len(frames) == 4 and frames[0].dtype == np.uint8 and frames[0].shape[-1] == 3
    assert save_gif(frames, tmp_path / "lbf.gif")


@pytest.mark.parametrize("sight", [2, None])
def test_partial_reset(sight):
    """Resetting some envs leaves the others alone; every observation is the reference's."""
    from tensordict import TensorDict

    config = dict(players=3, field_size=7, max_num_food=2, sight=sight)
    env = LevelBasedForaging(num_envs=6, seed=0, **config)
    td = env.reset()
    for _ in range(3):
        td = env.step(env.rand_action(td))["next"]
    before = env.get_state()
    mask = torch.tensor([True, False, True, False, False, True])
    out = env.reset(TensorDict({"_reset": mask[:, None]}, batch_size=[6]))
    after = env.get_state()
    assert (after["positions"][~mask] == before["positions"][~mask]).all()
    assert (after["field"][~mask] == before["field"][~mask]).all()
    refs = [reference(config, e) for e in range(6)]
    for e, ref in enumerate(refs):
        obs = put_state(ref, after["positions"][e].tolist(), after["levels"][e].tolist(),
                        after["field"][e].numpy(), int(after["food_spawned"][e]))
        if mask[e]:  # TorchRL takes the other envs' entries from before the reset
            np.testing.assert_array_equal(out["agents", "observation"][e].numpy(), obs)
    actions = env.rand_action(td)["agents", "action"]
    td["agents", "action"] = actions
    step = env.step(td)["next"]
    for e, ref in enumerate(refs):
        obs, reward, _, _, _ = ref.step(actions[e].tolist())
        np.testing.assert_array_equal(step["agents", "observation"][e].numpy(), np.stack(obs))
        np.testing.assert_array_equal(step["agents", "reward"][e, :, 0].numpy(), np.float32(reward))


@pytest.mark.parametrize("categorical", [True, False])
@pytest.mark.parametrize("bad", ["-1", "6", "float", "zero row", "two-hot"])
def test_bad_actions_are_refused_and_leave_the_state(categorical, bad):
    env = LevelBasedForaging(num_envs=2, players=2, field_size=5, max_num_food=1, seed=0,
                             categorical_actions=categorical)
    td = env.reset()
    before = env.get_state()
    index = torch.zeros(2, 2, dtype=torch.long)
    if categorical:
        action = {"-1": index - 1, "6": index + 6, "float": index + 2.7}.get(bad)
    else:
        hot = torch.nn.functional.one_hot(index, 6)
        action = {"zero row": hot * 0, "two-hot": hot + torch.nn.functional.one_hot(index + 1, 6)}.get(bad)
    if action is None:
        pytest.skip("not an input of this action kind")
    td["agents", "action"] = action
    with pytest.raises((ValueError, TypeError), match=r"\('agents', 'action'\)"):
        env.step(td)
    assert (env.get_state() == before).all()


def _valid_lbf_state():
    env = LevelBasedForaging(num_envs=1, players=2, field_size=6, max_num_food=2, max_player_level=3, seed=0)
    state = env.get_state()
    state["positions"][0] = torch.tensor([[1, 2], [3, 3]])
    state["levels"][0] = torch.tensor([1, 2])
    state["field"][0] = 0
    state["field"][0, 2, 2] = 2
    state["food_spawned"][0] = 2
    return env, state


@pytest.mark.parametrize("key, index, value, rule", [
    ("levels", (0, 0), 0, "levels"),
    ("levels", (0, 1), 9, "levels"),
    ("field", (0, 3, 3), -1, "food levels >= 0"),
    ("field", (0, 0, 3), 1, "border"),
    ("food_spawned", 0, 0, "food_spawned"),
    ("food_spawned", 0, 1, "food_spawned"),
    ("positions", (0, 0), torch.tensor([2, 2]), "agent on a food"),
])
def test_set_state_refuses_unreachable_states(key, index, value, rule):
    env, state = _valid_lbf_state()
    env.set_state(state)  # the valid state is accepted
    state[key][index] = value
    with pytest.raises(ValueError, match=rule):
        env.set_state(state)


def test_set_state_refuses_bool_positions():
    env, state = _valid_lbf_state()
    state["positions"] = state["positions"].bool()
    with pytest.raises(ValueError, match="positions.*integer"):
        env.set_state(state)
