"""The coloured warehouse, checked against the reference package ``rware`` 2.0.0.

Differential tests put the same state into :class:`ColouredWarehouse` (one colour) and into
``rware``'s ``Warehouse``, apply the same joint actions and require identical positions,
directions, carried shelves, shelf positions, requests, rewards, episode ends and
observations. The reference's draws of new requests are injected: both envs get the same
uniform number per env and step and map it to the same candidate. Spawns, which the
reference draws with its own random numbers, are compared as distributions.

``rware`` breaks ties between equally long queues of agents by the order in which
``networkx`` lists a predecessor, which for a small part of a large graph is the order of a
Python set of ``(x, y)`` tuples (fixed by tuple hashes). The tests make ``networkx`` list
subgraph nodes in graph order (a node filter without a ``nodes`` set); the rules of the
reference are untouched. The colour mechanics are checked against their definition.
"""
from __future__ import annotations

import collections

import numpy as np
import pytest
import torch
from torchrl.envs import check_env_specs

from conftest import cuda_devices
from torchrl_seps.scenarios import agent_types, list_presets, make_env, render_rollout, save_gif
from torchrl_seps.scenarios.warehouse import (
    FORWARD, LEFT, NOOP, RIGHT, TOGGLE_LOAD, ColouredWarehouse,
)

warehouse = pytest.importorskip("rware.warehouse")
nx_filters = pytest.importorskip("networkx.classes.filters")
chi2_contingency = pytest.importorskip("scipy.stats").chi2_contingency

UP, DOWN, WEST, EAST = range(4)


class _GraphOrderNodes:
    """A node filter of ``networkx`` subgraphs without a ``nodes`` set: graph-order iteration."""

    def __init__(self, nodes):
        self._members = set(nodes)

    def __call__(self, node):
        return node in self._members


@pytest.fixture(autouse=True)
def subgraphs_in_graph_order(monkeypatch):
    monkeypatch.setattr(nx_filters, "show_nodes", _GraphOrderNodes)


class _InjectedDraws:
    """Stands in for the reference's ``np_random``: ``choice`` takes the candidate at ``u``."""

    def __init__(self):
        self.u = np.float32(0.0)

    def choice(self, candidates):
        return candidates[int(np.floor(self.u * np.float32(len(candidates))))]


def reference(config: dict, seed: int = 0):
    env = warehouse.Warehouse(
        shelf_columns=config["shelf_columns"], column_height=config.get("column_height", 8),
        shelf_rows=config["shelf_rows"], n_agents=config["n_agents"], msg_bits=0,
        sensor_range=config.get("sensor_range", 1),
        request_queue_size=config.get("request_queue_size") or config["n_agents"],
        max_inactivity_steps=None, max_steps=None, reward_type=warehouse.RewardType.INDIVIDUAL,
    )
    env.reset(seed=seed)
    return env


def put_state(ref, state: dict) -> np.ndarray:
    """Load one env's state (numpy arrays of :meth:`get_state`) into a reference env."""
    for shelf, (r, c) in zip(ref.shelfs, state["shelf_positions"]):
        shelf.x, shelf.y = int(c), int(r)
    for agent, (r, c), d, carry in zip(ref.agents, state["positions"], state["directions"], state["carrying"]):
        agent.x, agent.y = int(c), int(r)
        agent.dir = warehouse.Direction(int(d))
        agent.carrying_shelf = ref.shelfs[carry] if carry >= 0 else None
    ref.request_queue = [ref.shelfs[i] for i in np.flatnonzero(state["requested"])]
    ref._recalc_grid()
    return np.stack([ref._make_obs(agent) for agent in ref.agents])


def state_of(ref) -> dict:
    return {
        "positions": np.array([[a.y, a.x] for a in ref.agents]),
        "directions": np.array([a.dir.value for a in ref.agents]),
        "carrying": np.array([a.carrying_shelf.id - 1 if a.carrying_shelf else -1 for a in ref.agents]),
        "shelf_positions": np.array([[s.y, s.x] for s in ref.shelfs]),
        "requested": np.isin(np.arange(len(ref.shelfs)), [s.id - 1 for s in ref.request_queue]),
    }


def classify(state: dict, actions: np.ndarray, rows: int, cols: int) -> dict:
    """Conflict events of one env's step, from its state and actions (one colour)."""
    cells = {tuple(p): i for i, p in enumerate(state["positions"].tolist())}
    target = []
    for (r, c), d, a in zip(state["positions"].tolist(), state["directions"], actions):
        if a == FORWARD:
            dr, dc = [(-1, 0), (1, 0), (0, -1), (0, 1)][d]
            target.append((min(max(r + dr, 0), rows - 1), min(max(c + dc, 0), cols - 1)))
        else:
            target.append((r, c))
    events = {}
    moving = [i for i, t in enumerate(target) if t != tuple(state["positions"][i])]
    claimed = [target[i] for i in moving]
    events["two onto one cell"] = len(claimed) - len(set(claimed))
    events["into an occupied cell"] = sum(target[i] in cells for i in moving)
    events["head-on swap"] = sum(
        target[i] in cells and target[cells[target[i]]] == tuple(state["positions"][i]) for i in moving
    ) // 2
    for i in moving:  # cycles of 3 or more: follow the claims back to i
        j, seen = i, 0
        while target[j] in cells and target[j] != tuple(state["positions"][j]) and seen < len(target):
            j, seen = cells[target[j]], seen + 1
            if j == i and seen >= 3:
                events["agents on a cycle of 4+"] = events.get("agents on a cycle of 4+", 0) + 1
                break
    events["toggle load"] = int(sum(a == TOGGLE_LOAD for a in actions))
    events["carrying and moving"] = int(sum(state["carrying"][i] >= 0 for i in moving))
    return events


class Pair:
    """``num_envs`` reference envs and one batched env, stepped in lockstep and compared.

    ``steps`` counts the env-steps compared, ``events`` the conflict events of the steps
    (:func:`classify`) and the deliveries.
    """

    def __init__(self, config: dict, num_envs: int, seed: int = 0):
        self.refs = [reference(config, seed + e) for e in range(num_envs)]
        self.draws = [_InjectedDraws() for _ in self.refs]
        for ref, draws in zip(self.refs, self.draws):
            ref._np_random = draws
        self.env = ColouredWarehouse(num_envs=num_envs, n_colours=1, seed=seed, **config)
        self.uniform = torch.zeros(num_envs)
        self.env._uniform = lambda: self.uniform.clone()
        self.rng = np.random.default_rng(seed)
        self.steps = 0
        self.events: collections.Counter = collections.Counter()

    def set(self, states: list[dict]) -> None:
        """Same state in both; compares the observations of it."""
        ref_obs = np.stack([put_state(ref, s) for ref, s in zip(self.refs, states)])
        state = self.env.get_state()
        for key in ("positions", "directions", "carrying", "shelf_positions", "requested"):
            state[key] = torch.as_tensor(np.stack([s[key] for s in states]))
        self.td = self.env.set_state(state)
        np.testing.assert_array_equal(self.td["agents", "observation"].numpy(), ref_obs)

    def step(self, actions: np.ndarray) -> np.ndarray:
        """Step every env with ``actions`` ``[E, N]``, compare; returns the rewards ``[E, N]``."""
        u = self.rng.random(len(self.refs)).astype(np.float32)
        self.uniform = torch.from_numpy(u)
        before = [state_of(ref) for ref in self.refs]
        td = self.td.clone()
        td["agents", "action"] = torch.as_tensor(actions, dtype=torch.long)
        out = self.env.step(td)["next"]
        ours = self.env.get_state()
        rewards = np.zeros(actions.shape, dtype=np.float32)
        for e, ref in enumerate(self.refs):
            self.draws[e].u = u[e]
            obs, reward, done, truncated, _ = ref.step(list(actions[e]))
            theirs = state_of(ref)
            for key, value in theirs.items():
                np.testing.assert_array_equal(ours[key][e].numpy(), value, err_msg=key)
            np.testing.assert_array_equal(out["agents", "observation"][e].numpy(), np.stack(obs))
            rewards[e] = reward
            assert not done and not truncated and not out["done"][e]
            self.events.update(classify(before[e], actions[e], ref.grid_size[0], ref.grid_size[1]))
            self.events["deliveries"] += int(sum(reward))
        np.testing.assert_array_equal(out["agents", "reward"][..., 0].numpy(), rewards)
        self.steps += len(self.refs)
        self.td = out
        return rewards


def random_state(rng, env: ColouredWarehouse, crowd: bool) -> dict:
    """A reachable-looking state: agents on distinct cells, some carrying shelves from anywhere.

    With ``crowd`` the agents are packed into a box at the goals or at a random place,
    where claims conflict; carried shelves are then often requested.
    """
    rows, cols, n = env.rows, env.cols, env.n_agents
    if crowd:
        h, w = 4, 5
        top = rows - h if rng.random() < 0.5 else int(rng.integers(0, rows - h + 1))
        left = int(rng.integers(0, cols - w + 1)) if rng.random() < 0.5 else cols // 2 - 3
        box = [(r, c) for r in range(top, top + h) for c in range(max(left, 0), min(left + w, cols))]
        cells = [box[k] for k in rng.choice(len(box), size=min(n, len(box)), replace=False)]
        free = [(r, c) for r in range(rows) for c in range(cols) if (r, c) not in cells]
        cells += [free[k] for k in rng.choice(len(free), size=n - len(cells), replace=False)]
    else:
        flat = rng.choice(rows * cols, size=n, replace=False)
        cells = [(int(k // cols), int(k % cols)) for k in flat]
    shelf_pos = env._shelf_home.numpy().copy()
    standing = {tuple(p): s for s, p in enumerate(shelf_pos.tolist())}
    carrying = np.full(n, -1)
    for i, cell in enumerate(cells):
        if rng.random() < 0.5:
            continue
        if cell in standing:
            carrying[i] = standing.pop(cell)
        else:
            spare = [s for p, s in standing.items() if p not in cells]
            s = int(rng.choice(spare))
            standing.pop(tuple(shelf_pos[s].tolist()))
            shelf_pos[s] = cell
            carrying[i] = s
    requested = np.zeros(env.n_shelves, dtype=bool)
    requested[rng.choice(env.n_shelves, size=env.request_queue_size, replace=False)] = True
    if crowd:  # request the carried shelves, keeping the queue's size
        for s in carrying[carrying >= 0]:
            if not requested[s] and rng.random() < 0.7:
                requested[rng.choice(np.flatnonzero(requested))] = False
                requested[s] = True
    return {
        "positions": np.array(cells), "directions": rng.integers(0, 4, size=n),
        "carrying": carrying, "shelf_positions": shelf_pos, "requested": requested,
    }


CONFIGS = [
    dict(n_agents=4, shelf_rows=1, shelf_columns=3),  # rware-tiny-4ag
    dict(n_agents=10, shelf_rows=1, shelf_columns=3, request_queue_size=5),  # crowded
    dict(n_agents=8, shelf_rows=2, shelf_columns=3, column_height=3),
    dict(n_agents=6, shelf_rows=1, shelf_columns=3, column_height=2, request_queue_size=2),
    dict(n_agents=12, shelf_rows=2, shelf_columns=5, sensor_range=2),
]


CONFLICTS = ("two onto one cell", "into an occupied cell", "head-on swap", "agents on a cycle of 4+",
             "toggle load", "carrying and moving", "deliveries")


@pytest.mark.parametrize("config", CONFIGS)
def test_random_states_and_actions_match_the_reference(config):
    """Random reachable states, random actions (FORWARD often), zero mismatches; the random play
    reached every conflict rule several times."""
    rng = np.random.default_rng(config["n_agents"])
    num_envs, rounds, steps = 16, 6, 12
    pair = Pair(config, num_envs, seed=config["n_agents"])
    for k in range(rounds):
        pair.set([random_state(rng, pair.env, crowd=k % 2 == 0) for _ in range(num_envs)])
        for _ in range(steps):
            actions = rng.choice(5, size=(num_envs, config["n_agents"]), p=[0.1, 0.5, 0.1, 0.1, 0.2])
            pair.step(actions)
    assert pair.steps == num_envs * rounds * steps
    assert all(pair.events[name] >= 5 for name in CONFLICTS), pair.events


def test_episodes_from_resets_match_the_reference():
    """Our spawns loaded into the reference, then whole stretches of random play."""
    rng = np.random.default_rng(5)
    config = dict(n_agents=4, shelf_rows=1, shelf_columns=3)
    pair = Pair(config, num_envs=8, seed=11)
    pair.env.reset()
    state = pair.env.get_state()
    pair.set([{k: v[e].numpy() for k, v in state.items()} for e in range(8)])
    for _ in range(150):
        pair.step(rng.integers(0, 5, size=(8, 4)))
    assert pair.steps == 8 * 150 and pair.events["toggle load"] > 0


# --------------------------------------------------------------------------- forced cases

TINY = dict(n_agents=4, shelf_rows=1, shelf_columns=3)


def forced(config: dict, agents: list[tuple], actions_seq: list[list[int]], carry=None, requested=()):
    """One env: agents ``(row, col, direction)``, optional carried shelves picked from their cells
    or moved there; returns the pair after the actions, compared at every step."""
    pair = Pair(config, num_envs=1)
    env = pair.env
    n = config["n_agents"]
    shelf_pos = env._shelf_home.numpy().copy()
    carrying = np.full(n, -1)
    for i, s in (carry or {}).items():
        shelf_pos[s] = agents[i][:2]
        carrying[i] = s
    req = np.zeros(env.n_shelves, dtype=bool)
    req[list(requested)] = True
    spare = [s for s in range(env.n_shelves) if not req[s]]
    req[spare[: env.request_queue_size - int(req.sum())]] = True
    pair.set([{
        "positions": np.array([a[:2] for a in agents]), "directions": np.array([a[2] for a in agents]),
        "carrying": carrying, "shelf_positions": shelf_pos, "requested": req,
    }])
    for actions in actions_seq:
        pair.step(np.array([actions]))
    return pair


def positions(pair) -> list:
    return pair.env.get_state()["positions"][0].tolist()


def test_head_on_swap_moves_nobody():
    pair = forced(TINY, [(0, 1, EAST), (0, 2, WEST), (5, 0, UP), (5, 9, UP)], [[FORWARD, FORWARD, NOOP, NOOP]])
    assert positions(pair)[:2] == [[0, 1], [0, 2]]


def test_chain_into_a_vacated_cell_and_blocked_chain():
    # 0 -> 1 -> 2 -> free: all move; then 2 faces the wall, 1 and 0 queue behind it
    pair = forced(TINY, [(0, 0, EAST), (0, 1, EAST), (0, 2, EAST), (5, 9, UP)],
                  [[FORWARD, FORWARD, FORWARD, NOOP], [FORWARD, FORWARD, NOOP, NOOP]])
    assert positions(pair)[:3] == [[0, 1], [0, 2], [0, 3]]


@pytest.mark.parametrize("last", [FORWARD, NOOP, LEFT])
def test_rotation_cycle_moves_every_agent_on_it(last):
    # four agents around a square (a grid has no odd cycles); with the fourth staying, the
    # other three are a chain into its cell: blocked; with it leaving sideways, a chain into (1, 0)
    agents = [(0, 0, EAST), (0, 1, DOWN), (1, 1, WEST), (1, 0, UP)]
    pair = forced(TINY, agents, [[FORWARD, FORWARD, FORWARD, last]])
    moved = [p != list(a[:2]) for p, a in zip(positions(pair), agents)]
    assert moved == ([True] * 4 if last == FORWARD else [False] * 4)
    agents[3] = (5, 9, UP)
    pair = forced(TINY, agents, [[FORWARD, FORWARD, FORWARD, last]])
    assert positions(pair)[:3] == [[0, 1], [1, 1], [1, 0]]


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_two_agents_onto_one_cell(order):
    # equally long queues: the agent named first wins; a longer queue wins whatever the order
    a, b = order
    agents = [None] * 4
    agents[a], agents[b] = (0, 1, EAST), (1, 2, UP)
    agents[2], agents[3] = (5, 9, UP), (1, 3, WEST)  # agent 3 queues behind the agent at (1, 2)
    pair = forced(TINY, agents, [[FORWARD, FORWARD, NOOP, NOOP]])
    assert sum(p != list(q[:2]) for p, q in zip(positions(pair), agents)) == 1
    forced(TINY, agents, [[FORWARD, FORWARD, NOOP, FORWARD]])


def test_toggling_under_a_shelf_lane():
    # agent 0 under shelf 0 at (1, 1): picks it up, moves onto the corridor, cannot put it down
    # there, comes back and puts it down; agent 1 carries shelf 9 and is stopped by the shelf
    # lane; agent 2 carries a shelf behind agent 3 carrying one: they move as a chain
    home = ColouredWarehouse(num_envs=1, n_colours=1, **TINY)._shelf_home.tolist()
    assert home[0] == [1, 1] and home[5] == [2, 2]
    pair = forced(
        TINY, [(1, 1, WEST), (2, 3, WEST), (0, 5, EAST), (0, 6, EAST)],
        [[TOGGLE_LOAD, FORWARD, FORWARD, FORWARD], [FORWARD, TOGGLE_LOAD, FORWARD, FORWARD],
         [TOGGLE_LOAD, NOOP, NOOP, NOOP], [RIGHT, RIGHT, LEFT, TOGGLE_LOAD], [RIGHT, NOOP, NOOP, NOOP],
         [FORWARD, NOOP, NOOP, NOOP], [TOGGLE_LOAD, NOOP, NOOP, NOOP]],
        carry={1: 30, 2: 20, 3: 21},
    )
    state = pair.env.get_state()
    assert state["carrying"][0].tolist() == [-1, 30, 20, 21]


def test_delivery_then_a_new_request():
    # agent 0 carries requested shelf 5 onto the goal; agent 1 carries an unrequested one
    pair = forced(TINY, [(9, 4, DOWN), (9, 5, DOWN), (0, 0, UP), (0, 9, UP)],
                  [[FORWARD, FORWARD, NOOP, NOOP], [NOOP, NOOP, NOOP, NOOP]],
                  carry={0: 5, 1: 6}, requested=(5,))
    state = pair.env.get_state()
    assert not state["requested"][0, 5] and state["requested"][0].sum() == 4


def test_two_deliveries_in_one_step():
    """Both goals deliver at once: requests are served goal by goal, with various draws."""
    pair = Pair(TINY, num_envs=32, seed=4)
    shelf_pos = pair.env._shelf_home.numpy().copy()
    shelf_pos[[5, 6]] = [[9, 4], [9, 5]]
    requested = np.zeros(pair.env.n_shelves, dtype=bool)
    requested[[5, 6, 0, 1]] = True
    state = {
        "positions": np.array([[9, 4], [9, 5], [0, 0], [0, 9]]), "directions": np.array([DOWN] * 4),
        "carrying": np.array([5, 6, -1, -1]), "shelf_positions": shelf_pos, "requested": requested,
    }
    pair.set([state] * 32)
    rewards = pair.step(np.tile([FORWARD, FORWARD, NOOP, NOOP], (32, 1)))
    assert (rewards[:, :2] == 1).all()
    # a delivered shelf may be requested again at once by the second goal's draw
    pair.step(np.tile([NOOP, NOOP, NOOP, NOOP], (32, 1)))


# --------------------------------------------------------------------------- episodes, spawns


@pytest.mark.parametrize("device", cuda_devices())
def test_make_env_episode_ends_with_the_reference_after_500_steps(device):
    """A whole episode from our reset, on every device: observations, rewards and the end."""
    env = make_env("crware-tiny-4ag-1colour", num_envs=2, seed=3, device=device)
    td = env.reset()
    state = env.base_env.get_state().cpu()
    refs = [reference(TINY, e) for e in range(2)]
    for e, ref in enumerate(refs):
        ref.max_steps = 500
        obs = put_state(ref, {k: v[e].numpy() for k, v in state.items()})
        np.testing.assert_array_equal(td["agents", "observation"][e].cpu().numpy(), obs)
    rng = np.random.default_rng(0)
    same = [True, True]  # until a delivery draws a new request (not injected here)
    for t in range(500):
        actions = rng.integers(0, 5, size=(2, 4))
        td["agents", "action"] = torch.as_tensor(actions, device=device)
        out = env.step(td)["next"]
        cpu = out.cpu()
        for e, ref in enumerate(refs):
            obs, reward, done, _, _ = ref.step(list(actions[e]))
            if same[e]:
                np.testing.assert_array_equal(cpu["agents", "reward"][e, :, 0].numpy(), np.float32(reward))
                same[e] = not any(reward)
            if same[e]:
                np.testing.assert_array_equal(cpu["agents", "observation"][e].numpy(), np.stack(obs))
            assert bool(cpu["done"][e]) == done == (t == 499)
            assert bool(cpu["truncated"][e]) == done and not cpu["terminated"][e]
        if t < 499:
            td = out


def reset_samples_reference(config: dict, resets: int) -> dict:
    ref = reference(config, seed=0)
    out = {"cells": [], "directions": [], "requested": []}
    for _ in range(resets):
        ref.reset()
        state = state_of(ref)
        out["cells"] += (state["positions"] @ [ref.grid_size[1], 1]).tolist()
        out["directions"] += state["directions"].tolist()
        out["requested"] += np.flatnonzero(state["requested"]).tolist()
    return out


def reset_samples_ours(config: dict, resets: int, n_colours: int = 1) -> dict:
    env = ColouredWarehouse(num_envs=resets, n_colours=n_colours, seed=0, **config)
    env.reset()
    state = env.get_state()
    return {
        "cells": (state["positions"][..., 0] * env.cols + state["positions"][..., 1]).flatten().tolist(),
        "directions": state["directions"].flatten().tolist(),
        "requested": state["requested"].nonzero()[:, 1].tolist(),
        "colours": state["shelf_colours"].flatten().tolist(),
        "distinct cells": [len({tuple(c) for c in p}) for p in state["positions"].tolist()],
    }


def test_spawn_distributions_match_the_reference():
    config = dict(n_agents=6, shelf_rows=1, shelf_columns=3, column_height=2, request_queue_size=3)
    resets = 3000
    ours, theirs = reset_samples_ours(config, resets), reset_samples_reference(config, resets)
    for name in theirs:
        labels = sorted(set(ours[name]) | set(theirs[name]))
        table = np.array([[lst.count(v) for v in labels] for lst in (ours[name], theirs[name])])
        p = chi2_contingency(table).pvalue
        assert p > 1e-4, (name, table.tolist(), p)
    env = ColouredWarehouse(num_envs=1, n_colours=1, **config)
    assert ours["requested"].count(0) > 0 and len(ours["requested"]) == 3 * resets
    assert max(ours["requested"]) < env.n_shelves


def test_new_requests_are_uniform_over_unrequested_shelves():
    """Our own draw (not injected): shelf 5 delivered again and again, new requests counted."""
    env = ColouredWarehouse(num_envs=2000, n_colours=1, seed=1, **TINY)
    state = env.get_state()
    state["positions"][:] = torch.tensor([[9, 4], [0, 0], [0, 9], [5, 9]])
    state["directions"][:] = torch.tensor([DOWN, UP, UP, UP])
    state["carrying"][:] = torch.tensor([5, -1, -1, -1])
    state["shelf_positions"][:, 5] = torch.tensor([9, 4])
    state["requested"][:] = False
    state["requested"][:, [5, 0, 1, 2]] = True
    td = env.set_state(state)
    td["agents", "action"] = torch.tensor([FORWARD, NOOP, NOOP, NOOP]).expand(2000, 4)
    env.step(td)
    after = env.get_state()["requested"]
    assert (after.sum(1) == 4).all() and not after[:, [5]].any() and after[:, :3].all()
    new = after.clone()
    new[:, :3] = False
    counts = new.sum(0)[3:].numpy()  # shelves 3..31 except 5: 28 candidates
    counts = np.delete(counts, 2)
    p = chi2_contingency(np.stack([counts, np.full_like(counts, counts.sum() // len(counts))])).pvalue
    assert len(counts) == 28 and p > 1e-4, (counts, p)


# --------------------------------------------------------------------------- colour mechanics


def test_rotated_actions_are_the_one_colour_actions_rolled():
    """Colour c choosing a acts as one colour choosing roll(arange(5), c)[a]."""
    rng = np.random.default_rng(3)
    config = dict(n_agents=6, shelf_rows=1, shelf_columns=3)
    two = ColouredWarehouse(num_envs=32, n_colours=3, seed=0, **config)
    one = ColouredWarehouse(num_envs=32, n_colours=1, seed=0, **config)
    two.reset()
    assert two.agent_types.tolist() == [0, 0, 1, 1, 2, 2]
    state = two.get_state()
    state["shelf_colours"][:] = 0
    td_two, td_one = two.set_state(state), one.set_state(state)
    table = np.stack([np.roll(np.arange(5), c) for c in range(3)])
    assert table[1].tolist() == [4, 0, 1, 2, 3]
    for _ in range(100):
        a = rng.integers(0, 5, size=(32, 6))
        td_two["agents", "action"] = torch.as_tensor(a)
        td_one["agents", "action"] = torch.as_tensor(table[two.agent_types.numpy()][np.arange(6), a])
        td_two, td_one = two.step(td_two)["next"], one.step(td_one)["next"]
        for key in ("positions", "directions", "carrying", "shelf_positions"):
            assert torch.equal(two.get_state()[key], one.get_state()[key]), key
        state = one.get_state()  # requests are drawn by each env: align them
        state["shelf_colours"] = two.get_state()["shelf_colours"]
        state["requested"] = two.get_state()["requested"]
        td_one = one.set_state(state)


def test_colour_observation_is_the_one_colour_observation_with_a_one_hot():
    env = ColouredWarehouse(num_envs=16, n_colours=2, seed=0, **TINY)
    one = ColouredWarehouse(num_envs=16, n_colours=1, seed=0, **TINY)
    td = env.reset()
    for _ in range(20):
        td = env.step(env.rand_action(td))["next"]
    state = env.get_state()
    obs = td["agents", "observation"]
    assert obs.shape[-1] == 80
    colours = state["shelf_colours"]
    state["shelf_colours"] = torch.zeros_like(colours)
    plain = one.set_state(state)["agents", "observation"]
    cells = obs[..., 8:].reshape(16, 4, 9, 8)
    # colour one-hot summed is rware's has-shelf bit; everything else is unchanged
    collapsed = torch.cat([cells[..., :5], cells[..., 5:7].sum(-1, keepdim=True), cells[..., 7:]], -1)
    assert torch.equal(torch.cat([obs[..., :8], collapsed.flatten(-2)], -1), plain)
    # the one-hot names the colour of the shelf in the agent's own cell (the centre)
    pos = state["positions"]
    shelf_at = {}
    for e in range(16):
        for s, (r, c) in enumerate(state["shelf_positions"][e].tolist()):
            shelf_at[e, r, c] = s
        for i in range(4):
            s = shelf_at.get((e, *pos[e, i].tolist()))
            centre = cells[e, i, 4, 5:7].tolist()
            assert centre == ([0, 0] if s is None else [float(colours[e, s] == 0), float(colours[e, s] == 1)])


@pytest.mark.parametrize("own", [True, False])
def test_reward_only_for_own_colour(own):
    env = ColouredWarehouse(num_envs=1, n_colours=2, seed=0, **TINY)
    state = env.get_state()
    state["positions"][0] = torch.tensor([[9, 4], [0, 0], [0, 9], [9, 5]])
    state["directions"][0] = DOWN
    state["carrying"][0] = torch.tensor([5, -1, -1, 6])
    state["shelf_positions"][0, 5] = torch.tensor([9, 4])
    state["shelf_positions"][0, 6] = torch.tensor([9, 5])
    state["shelf_colours"][0, 5] = 0 if own else 1  # agent 0 has colour 0
    state["shelf_colours"][0, 6] = 1 if own else 0  # agent 3 has colour 1
    state["requested"][0] = False
    state["requested"][0, [5, 6, 7, 8]] = True
    td = env.set_state(state)
    # FORWARD is action 1 for colour 0 and action 2 for colour 1
    td["agents", "action"] = torch.tensor([[1, 0, 0, 2]])
    out = env.step(td)["next"]
    expected = [1.0, 0.0, 0.0, 1.0] if own else [0.0] * 4
    assert out["agents", "reward"].flatten().tolist() == expected
    assert not env.get_state()["requested"][0, [5, 6]].any()  # served either way


def test_shelf_colours_are_uniform_and_agents_in_blocks():
    samples = reset_samples_ours(dict(n_agents=8, shelf_rows=1, shelf_columns=3), 500, n_colours=3)
    counts = np.bincount(samples["colours"], minlength=3)
    assert chi2_contingency(np.stack([counts, np.full(3, counts.sum() // 3)])).pvalue > 1e-4
    assert min(samples["distinct cells"]) == 8
    env = ColouredWarehouse(num_envs=1, n_agents=7, n_colours=3, shelf_rows=1, shelf_columns=3)
    assert env.agent_types.tolist() == [0, 0, 0, 1, 1, 2, 2]


# --------------------------------------------------------------------------- presets and specs

CRWARE_PRESETS = {
    # name: (agents, colours, rows, cols, request queue)
    "crware-tiny-4ag": (4, 2, 11, 10, 4),
    "crware-tiny-4ag-hard": (4, 2, 11, 10, 2),
    "crware-small-8ag": (8, 2, 20, 10, 8),
    "crware-medium-16ag": (16, 2, 20, 16, 16),
    "crware-tiny-4ag-1colour": (4, 1, 11, 10, 4),
}


@pytest.mark.parametrize("name", list(CRWARE_PRESETS))
def test_crware_presets(name):
    n, colours, rows, cols, queue = CRWARE_PRESETS[name]
    assert name in list_presets()
    env = make_env(name, num_envs=2, seed=0)
    check_env_specs(env)
    base = env.base_env
    assert (base.rows, base.cols, base.request_queue_size) == (rows, cols, queue)
    assert env.full_observation_spec["agents", "observation"].shape == (2, n, 71 + 9 * (colours - 1))
    assert agent_types(env).tolist() == (torch.arange(n) * colours // n).tolist()
    td = env.rollout(3)
    assert td["next", "agents", "episode_reward"].shape == (2, 3, n, 1)


def test_make_env_rejects_bad_crware_settings():
    with pytest.raises(ValueError, match="continuous_actions"):
        make_env("crware-tiny-4ag", num_envs=2, continuous_actions=True)
    with pytest.raises(ValueError, match="shelf_columns"):
        make_env("crware-tiny-4ag", num_envs=2, shelf_columns=4)
    with pytest.raises(TypeError, match="levels"):
        make_env("crware-tiny-4ag", num_envs=2, levels=(1, 2))
    with pytest.raises(ValueError, match="n_colours"):
        ColouredWarehouse(num_envs=1, n_agents=2, n_colours=3, shelf_rows=1, shelf_columns=3)
    with pytest.raises(ValueError, match="request_queue_size"):
        ColouredWarehouse(num_envs=1, n_agents=2, request_queue_size=32, shelf_rows=1, shelf_columns=3)


def test_one_hot_actions_partial_reset_and_render(tmp_path):
    from tensordict import TensorDict

    env = make_env("crware-tiny-4ag", num_envs=3, seed=0, categorical_actions=False)
    check_env_specs(env)
    frames = render_rollout(env, max_steps=3, env_index=1)
    assert len(frames) == 4 and frames[0].dtype == np.uint8 and frames[0].shape[-1] == 3
    assert save_gif(frames, tmp_path / "crware.gif")
    base = env.base_env
    before = base.get_state()
    mask = torch.tensor([True, False, True])
    out = base.reset(TensorDict({"_reset": mask[:, None]}, batch_size=[3]))
    after = base.get_state()
    assert torch.equal(after["positions"][1], before["positions"][1])
    assert (after["carrying"][mask] == -1).all()
    fresh = ColouredWarehouse(num_envs=3, n_agents=4, shelf_rows=1, shelf_columns=3, seed=0)
    expected = fresh.set_state(after)["agents", "observation"]
    assert torch.equal(out["agents", "observation"][mask], expected[mask])


def _shared_cell(s):
    s["positions"][0, 1] = s["positions"][0, 0]


def _carried_twice(s):
    s["positions"][0] = torch.tensor([[0, 3], [0, 4]])
    s["shelf_positions"][0, 0] = torch.tensor([0, 3])
    s["carrying"][0] = torch.tensor([0, 0])


def _stacked_shelves(s):
    s["shelf_positions"][0, 1] = s["shelf_positions"][0, 0]


def _all_requested(s):
    s["requested"][0] = True


@pytest.mark.parametrize("change, rule", [
    (_shared_cell, "positions.*own cell"),
    (_stacked_shelves, "shelf_positions.*own cell"),
    (_carried_twice, "carrying.*two agents"),
    (_all_requested, "request_queue_size"),
])
def test_set_state_refuses_unreachable_states(change, rule):
    env = ColouredWarehouse(num_envs=1, n_agents=2, shelf_rows=1, shelf_columns=3, n_colours=1,
                            column_height=2, seed=0)
    env.reset()
    state = env.get_state()
    env.set_state(state.clone())  # a state play reached is accepted
    change(state)
    with pytest.raises(ValueError, match=rule):
        env.set_state(state)


@pytest.mark.parametrize("action", [torch.tensor([[5, 0]]), torch.tensor([[-1, 0]]), torch.tensor([[1.5, 0]])])
def test_bad_actions_are_refused(action):
    env = ColouredWarehouse(num_envs=1, n_agents=2, shelf_rows=1, shelf_columns=3, column_height=2, seed=0)
    td = env.reset()
    td["agents", "action"] = action
    with pytest.raises((ValueError, TypeError), match=r"\('agents', 'action'\)"):
        env.step(td)
