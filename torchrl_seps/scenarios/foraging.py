"""Level-Based Foraging (LBF) as a batched TorchRL environment, in pure torch.

:class:`LevelBasedForaging` steps ``num_envs`` grid worlds at once, on the CPU or a GPU, with
the rules, spawns, vector observations and rewards of ``lbforaging`` 2.0.0's ``ForagingEnv``
(the tests compare the two step for step). Agents and foods have levels; a food is eaten when
agents adjacent to it choose LOAD in the same step and their levels add up to at least the
food's. With ``levels=`` fixed per agent and ``observe_agent_levels=False`` it is the hidden
fixed-level variant of the SePS paper: agents differ in ability and nobody sees it.

Rules of a step, in order (row 0 is the top, NORTH decreases the row):

1. An action that is not valid in the current state becomes NONE: a move off the grid or
   onto a food, or LOAD with no food among the four neighbours.
2. Every agent claims a cell: the one it moves to, or its own for NONE and LOAD. An agent
   moves only if no other agent claims the same cell; two agents may end in one cell when
   one of them was blocked and the other moved in.
3. Loading agents are taken in agent index order. Each picks the first neighbouring food
   (north, south, west, east) and joins all still-loading agents adjacent to that food; if
   their levels add up to at least the food's level, the food disappears and each gets
   ``level * food_level``, divided by ``(sum of their levels) * (total food level spawned
   this episode)`` when ``normalize_reward``; otherwise each loses ``penalty``.
4. The episode terminates when no food is left. ``lbforaging`` also ends it after its
   ``max_episode_steps``; here that time limit is a truncation kept by a
   :class:`~torchrl.envs.transforms.StepCounter` (see :func:`~torchrl_seps.scenarios.make_env`).

``lbforaging`` processes loading agents in the order of a Python ``set`` of player objects,
which depends on memory addresses; the result differs from index order only when a loading
agent is adjacent to several foods, which no episode started by a reset can reach (spawned
foods are never two cells apart). Index order makes this env deterministic.

Spawns (on reset): agents one at a time, uniformly on cells that hold no agent (after the
first reset, also not the cell any not-yet-placed agent held in the previous episode, as in
``lbforaging``); then foods one at a time, uniformly on inner cells (not on the border) with
no food in their 3x3 neighbourhood or two cells away in a straight line, and no agent.
``lbforaging`` gives up after 1000 rejected draws; here a food is skipped only when no cell
is left. Agent levels: ``lbforaging`` shuffles its per-agent level bounds over the agents at
every reset, so even ``min_player_level = max_player_level = [1, 2, 3]`` does not keep a level
with an agent; ``levels=`` does (the paper's variant), and without it the levels are drawn as
``lbforaging`` draws them.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase

from torchrl_seps._checks import check_bool, check_float, check_int, check_ints, check_options, is_int
from torchrl_seps.clustering import canonical_labels
from torchrl_seps.scenarios._base import type_color
from torchrl_seps.scenarios._grid import GridWorld

__all__ = ["LevelBasedForaging", "NONE", "NORTH", "SOUTH", "WEST", "EAST", "LOAD"]

#: Action indices, as in ``lbforaging``.
NONE, NORTH, SOUTH, WEST, EAST, LOAD = range(6)
N_ACTIONS = 6

_OPTIONS = (
    "players", "field_size", "max_num_food", "sight", "levels", "min_player_level",
    "max_player_level", "min_food_level", "max_food_level", "force_coop", "normalize_reward",
    "observe_agent_levels", "penalty",
)


def _same(values: torch.Tensor) -> torch.Tensor:
    """``out[i, j, e] = values[e, i] == values[e, j]`` for ``values`` ``[E, N]``: pairwise
    comparisons with the batch innermost, which vectorises (several times faster on a CPU
    than comparing ``[E, N, 1]`` with ``[E, 1, N]``)."""
    v = values.t().contiguous()
    return v[:, None] == v[None]


class LevelBasedForaging(GridWorld):
    """``num_envs`` Level-Based Foraging grid worlds, stepped together in torch.

    Agents are in one group ``"agents"``: ``("agents", "observation")`` (float32
    ``[num_envs, players, obs_dim]``), ``("agents", "action")`` (6 actions: NONE, NORTH,
    SOUTH, WEST, EAST, LOAD), ``("agents", "reward")`` and root ``done`` / ``terminated`` /
    ``truncated``. The env itself never truncates: give it a time limit with a
    :class:`~torchrl.envs.transforms.StepCounter`, as :func:`~torchrl_seps.scenarios.make_env`
    does (50 steps, as ``lbforaging``'s registered tasks).

    The observation of agent ``i`` is ``lbforaging``'s vector observation: for each of
    ``max_num_food`` slots ``(row, col, level)`` of a visible food, in row-major order, then
    ``-1, -1, 0`` for the unused slots; then for each agent slot ``(row, col, level)``
    (``(row, col)`` without ``observe_agent_levels``) of a visible agent, agent ``i`` first
    and the others in index order, ``-1`` (and level 0) for the unused slots. Coordinates are
    relative to the corner of the agent's sight window, ``max(own position - sight, 0)``:
    absolute coordinates under full sight. Foods are visible within ``sight`` cells in both
    axes; agents within ``[corner, corner + 2 * sight]`` (so, as in ``lbforaging``, an agent
    near the top or left border sees agents farther than ``sight`` in that direction).

    Args:
        num_envs (int): number of environments (the batch size).
        players (int): agents per environment.
        field_size (int or (int, int)): grid rows and columns.
        max_num_food (int): foods spawned per episode.
        sight (int, optional): sight range; default the larger side of the grid (full sight).
        levels (sequence of int, optional): fixed level of every agent, kept across resets
            (the hidden-level variant). When ``None``, every reset draws the levels as
            ``lbforaging`` does, from ``min_player_level`` / ``max_player_level``.
        min_player_level, max_player_level (int or sequence of int): bounds of the drawn
            levels (per agent; ``lbforaging`` shuffles the per-agent bounds over the agents
            at every reset). Default 1 and 2. Not allowed together with ``levels``.
        min_food_level (int or sequence of int): lowest food level (per food slot). Default 1.
        max_food_level (int or sequence of int, optional): highest food level; default the
            sum of the three lowest agent levels of the episode.
        force_coop (bool): every food has the highest level.
        normalize_reward (bool): divide rewards as in rule 3 (all agents' rewards of an
            episode then add up to at most 1). Default ``True``.
        observe_agent_levels (bool): include agent levels in observations. Default ``True``.
        penalty (float): subtracted from every agent of a failed load. Default 0.
        categorical_actions (bool): integer (``True``) or one-hot actions. Default ``True``.
        device: torch device. Default ``"cpu"``.
        seed (int, optional): seed of the spawns.

    Attributes:
        agent_types (torch.Tensor or None): with fixed ``levels``, the hidden type of every
            agent (its level, numbered from 0 by first appearance in agent order); else
            ``None``.

    Examples:
        >>> from torchrl.envs import check_env_specs
        >>> env = LevelBasedForaging(num_envs=4, players=3, field_size=8, max_num_food=2,
        ...                          levels=[1, 2, 3], observe_agent_levels=False, seed=0)
        >>> env.full_observation_spec["agents", "observation"].shape  # 2 x 3 + 3 x 2
        torch.Size([4, 3, 12])
        >>> check_env_specs(env)
        >>> td = env.rollout(10)
        >>> td["next", "agents", "reward"].shape
        torch.Size([4, 10, 3, 1])
        >>> env.get_state()["levels"][0].tolist(), env.agent_types.tolist()
        ([1, 2, 3], [0, 1, 2])
    """

    def __init__(
        self,
        num_envs: int,
        players: int,
        field_size: int | tuple[int, int],
        max_num_food: int,
        sight: int | None = None,
        levels: Sequence[int] | None = None,
        min_player_level: int | Sequence[int] | None = None,
        max_player_level: int | Sequence[int] | None = None,
        min_food_level: int | Sequence[int] = 1,
        max_food_level: int | Sequence[int] | None = None,
        force_coop: bool = False,
        normalize_reward: bool = True,
        observe_agent_levels: bool = True,
        penalty: float = 0.0,
        categorical_actions: bool = True,
        device: str | torch.device = "cpu",
        seed: int | None = None,
    ) -> None:
        config = self.validate_config(
            players=players, field_size=field_size, max_num_food=max_num_food, sight=sight,
            levels=levels, min_player_level=min_player_level,
            max_player_level=max_player_level, min_food_level=min_food_level,
            max_food_level=max_food_level, force_coop=force_coop,
            normalize_reward=normalize_reward, observe_agent_levels=observe_agent_levels,
            penalty=penalty,
        )
        super().__init__(num_envs, config["players"], N_ACTIONS, categorical_actions, device)
        self.rows, self.cols = config["field_size"]
        self.max_num_food: int = config["max_num_food"]
        self.sight: int = config["sight"]
        self.force_coop: bool = config["force_coop"]
        self.normalize_reward: bool = config["normalize_reward"]
        self.observe_agent_levels: bool = config["observe_agent_levels"]
        self.penalty: float = config["penalty"]
        self.fixed_levels: tuple[int, ...] | None = config["levels"]
        n, dev = self.n_agents, self.device
        if self.fixed_levels is not None:
            low = high = self.fixed_levels
            self.agent_types: torch.Tensor | None = torch.as_tensor(canonical_labels(self.fixed_levels))
        else:
            low, high = config["min_player_level"], config["max_player_level"]
            self.agent_types = None
        self._min_level = torch.tensor(low, device=dev)
        self._max_level = torch.tensor(high, device=dev)
        self._min_food = torch.tensor(config["min_food_level"], device=dev)
        top_food = (
            max(config["max_food_level"]) if config["max_food_level"] is not None
            else sum(sorted(high)[:3])
        )
        self._make_tables(config, top_food)

        # state: agents' cells, levels, grid, the remaining foods' cells (ascending, then
        # nowhere), the total food level spawned in the episode
        self._cells = torch.zeros(num_envs, n, dtype=torch.long, device=dev)  # cell 0: a wall
        self._levels = self._min_level.expand(num_envs, n).clone()
        self._grid = self._empty_grid.expand(num_envs, -1).clone()
        self._food_cells = torch.full((num_envs, self.max_num_food), self._nowhere, device=dev)
        self._food_spawned = torch.zeros(num_envs, dtype=torch.long, device=dev)

        per_agent = 3 if self.observe_agent_levels else 2
        low_obs = [-1, -1, 0] * self.max_num_food + [-1, -1, 0][:per_agent] * n
        high_obs = [self.rows - 1, self.cols - 1, top_food] * self.max_num_food + (
            [self.rows - 1, self.cols - 1, max(high)][:per_agent] * n
        )
        self._make_specs(low_obs, high_obs)
        self.set_seed(seed)

    def _make_tables(self, config: dict[str, Any], top_food: int) -> None:
        """The constant tables of the grid, the spawns and the observation."""
        n, dev = self.n_agents, self.device
        # The state's grid is the field padded by a wall of -1 and flattened, W cells per row,
        # then one more cell, "nowhere" (index P), that always holds 0: the cell of an empty
        # food slot, and where a spawn that found no room puts its food.
        R, C, W = self.rows, self.cols, self.cols + 2
        P = (R + 2) * W
        self._width, self._nowhere = W, P
        self._around = torch.tensor([-W, W, -1, 1], device=dev)  # north, south, west, east
        self._shift = torch.tensor([0, -W, W, -1, 1, 0], device=dev)  # of every action
        rows = torch.arange(-1, R + 1)[:, None].expand(R + 2, W)
        cols = torch.arange(-1, C + 1)[None, :].expand(R + 2, W)
        # (row, col) of every cell, (-1, -1) for nowhere
        self._rc = torch.cat([torch.stack([rows, cols], -1).reshape(P, 2), torch.tensor([[-1, -1]])]).to(dev)
        # lbforaging searches north only below row 1, west only right of column 1
        self._searched = torch.stack([rows > 1, rows < R - 1, cols > 1, cols < C - 1], -1).view(P, 4).to(dev)
        inside = (rows >= 0) & (rows < R) & (cols >= 0) & (cols < C)
        inner = (rows >= 1) & (rows < R - 1) & (cols >= 1) & (cols < C - 1)
        nowhere = torch.tensor([1])
        # spawns: 1 where no agent may go (walls) and where no food may go (also the border)
        self._no_agent = torch.cat([(~inside).long().flatten(), nowhere]).to(dev)
        self._no_food = torch.cat([(~inner).long().flatten(), nowhere]).to(dev)
        # the grid in the smallest integer type that holds every food level: a small grid
        # stays in the CPU's cache
        dtype = next(d for d in (torch.int8, torch.int16, torch.int32, torch.int64) if top_food <= torch.iinfo(d).max)
        self._empty_grid = torch.cat([-(~inside).long().flatten(), nowhere - 1]).to(dev, dtype)
        self._exclusion = self._exclusion_table().to(dev)
        self._food_top, self._shuffle_food_bounds, self._food_range = self._food_bounds(config)
        # observer i lists itself first, then the others in index order
        self._order = torch.tensor(
            [i for k in range(n) for i in [k] + [j for j in range(n) if j != k]], device=dev
        )  # [n * n], one row of n per observer
        self._obs_index = self._full_sight_index().to(dev)

    # ------------------------------------------------------------------------ configuration

    @classmethod
    def validate_config(cls, **kwargs: Any) -> dict[str, Any]:
        """The game's settings, checked (:meth:`GridWorld.validate_config`), complete, normalised
        and with defaults.

        Examples:
            >>> cfg = LevelBasedForaging.validate_config(players=3, field_size=8, max_num_food=2)
            >>> cfg["field_size"], cfg["sight"], cfg["min_player_level"]
            ((8, 8), 8, (1, 1, 1))
            >>> LevelBasedForaging.validate_config(players=3, field_size=8, max_num_food=2,
            ...                                    levels=[1, 2])
            Traceback (most recent call last):
            ...
            ValueError: levels must have 3 entries, got 2: [1, 2]
        """
        check_options(cls.__name__, kwargs, _OPTIONS, required=("players", "field_size", "max_num_food"))
        players = check_int("players", kwargs["players"])
        size = kwargs["field_size"]
        if is_int(size):
            size = (size, size)
        if not (isinstance(size, Sequence) and len(size) == 2 and all(map(is_int, size))):
            raise TypeError(f"field_size must be an int or (rows, cols), got {size!r}")
        if min(size) < 3:
            raise ValueError(f"field_size must be at least 3 x 3, got {tuple(size)}")
        rows, cols = int(size[0]), int(size[1])
        foods = check_int("max_num_food", kwargs["max_num_food"])
        if foods > rows * cols:
            raise ValueError(f"max_num_food must fit on the {rows} x {cols} grid, got {foods}")
        sight = kwargs.get("sight")
        sight = max(rows, cols) if sight is None else check_int("sight", sight)
        if players > rows * cols:
            raise ValueError(f"players must fit on the {rows} x {cols} grid, got {players}")
        if players == rows * cols:
            raise ValueError(
                f"players must leave a free cell on the {rows} x {cols} grid (a reset places each "
                f"agent on a cell that no agent holds), got {players}"
            )
        levels = kwargs.get("levels")
        low, high = kwargs.get("min_player_level"), kwargs.get("max_player_level")
        if levels is not None:
            if low is not None or high is not None:
                raise ValueError(
                    "levels fixes every agent's level; min_player_level and "
                    f"max_player_level must be None with it, got {low!r} and {high!r}"
                )
            levels = check_ints("levels", levels, players)
            low = high = levels
        else:
            low = check_ints("min_player_level", 1 if low is None else low, players)
            high = check_ints("max_player_level", 2 if high is None else high, players)
            bad = [i for i in range(players) if low[i] > high[i]]
            if bad:
                raise ValueError(
                    f"min_player_level must not exceed max_player_level, got {low!r} and "
                    f"{high!r} (agent {bad[0]})"
                )
        min_food = check_ints("min_food_level", kwargs.get("min_food_level", 1), foods)
        max_food = kwargs.get("max_food_level")
        if max_food is not None:
            max_food = check_ints("max_food_level", max_food, foods)
            if any(a > b for a, b in zip(min_food, max_food)):
                raise ValueError(
                    f"min_food_level must not exceed max_food_level, got {min_food!r} and "
                    f"{max_food!r}"
                )
        flags = {
            name: check_bool(name, kwargs.get(name, default))
            for name, default in (("force_coop", False), ("normalize_reward", True),
                                  ("observe_agent_levels", True))
        }
        penalty = check_float("penalty", kwargs.get("penalty", 0.0))
        return {
            "players": players, "field_size": (rows, cols), "max_num_food": foods,
            "sight": sight, "levels": levels if levels is None else tuple(levels),
            "min_player_level": None if levels is not None else low,
            "max_player_level": None if levels is not None else high,
            "min_food_level": min_food,
            "max_food_level": max_food, **flags, "penalty": penalty,
        }

    # ------------------------------------------------------------------------ state

    def get_state(self) -> TensorDict:
        """A copy of the game state of every environment.

        Returns:
            TensorDict: ``positions`` ``[num_envs, players, 2]`` (row, col), ``levels``
            ``[num_envs, players]``, ``field`` ``[num_envs, rows, cols]`` (food level per
            cell, 0 for none) and ``food_spawned`` ``[num_envs]`` (total food level spawned
            this episode, the normaliser of rewards), all ``int64``.
        """
        return TensorDict(
            {
                "positions": self._pos,
                "levels": self._levels.clone(),
                "field": self._field.long(),
                "food_spawned": self._food_spawned.clone(),
            },
            batch_size=self.batch_size,
            device=self.device,
        )

    def set_state(self, state: TensorDictBase) -> TensorDict:
        """Replace the game state (all four entries of :meth:`get_state`) and observe it.

        The state must be one that play can reach, else a ``ValueError`` states the rule it
        breaks: integer (not bool) entries; agents in the grid and never on a food; levels
        within the agents' level bounds (the fixed ``levels`` when set); food levels ``>= 0``,
        foods not on the border, at most ``max_num_food`` of them; ``food_spawned >= 1`` and at
        least the food left on the field. Step counters of transforms are not touched.

        Returns:
            TensorDict: the observation of the new state, as :meth:`reset` returns it.

        Examples:
            >>> env = LevelBasedForaging(num_envs=1, players=2, field_size=5, max_num_food=1,
            ...                          normalize_reward=False, seed=0)
            >>> state = env.get_state()
            >>> state["positions"][0] = torch.tensor([[1, 2], [3, 2]])
            >>> state["levels"][0] = torch.tensor([1, 1])
            >>> state["field"][0] = 0
            >>> state["field"][0, 2, 2] = 2
            >>> state["food_spawned"][0] = 2
            >>> td = env.set_state(state)
            >>> td["agents", "observation"][0, 0].tolist()  # food, self, the other agent
            [2.0, 2.0, 2.0, 1.0, 2.0, 1.0, 3.0, 2.0, 1.0]
            >>> td["agents", "action"] = torch.tensor([[LOAD, LOAD]])
            >>> out = env.step(td)["next"]
            >>> out["agents", "reward"].flatten().tolist(), out["terminated"].item()
            ([2.0, 2.0], True)
        """
        expected = {
            "positions": (self.num_envs, self.n_agents, 2),
            "levels": (self.num_envs, self.n_agents),
            "field": (self.num_envs, self.rows, self.cols),
            "food_spawned": (self.num_envs,),
        }
        values = self._state_values(state, expected)
        self._check_state(values)
        self._cells, self._levels = self._cell(values["positions"]), values["levels"].clone()
        self._grid, self._food_spawned = self._padded(values["field"]).to(self._grid.dtype), values["food_spawned"].clone()
        self._food_cells = self._food_list(self._grid)
        return self._observe()

    def _check_state(self, values: dict[str, torch.Tensor]) -> None:
        """Refuses a state no episode reaches, stating the rule it breaks."""
        field, levels, spawned = values["field"], values["levels"], values["food_spawned"]
        highest, limit = field.max().item(), torch.iinfo(self._grid.dtype).max
        if highest > limit:
            raise ValueError(f"state['field'] holds a food of level {highest}; this env stores food levels up to {limit}")
        refuse = self._refuse
        if self.fixed_levels is not None:
            refuse(levels != self._min_level, "levels", f"must be the fixed levels {list(self.fixed_levels)}")
        else:
            low, high = int(self._min_level.min()), int(self._max_level.max())
            refuse((levels < low) | (levels > high), "levels", f"must lie in [{low}, {high}]")
        refuse(field < 0, "field", "must hold food levels >= 0 (0: no food)")
        foods = field > 0
        refuse(foods.flatten(1).sum(1) > self.max_num_food, "field", f"must hold at most max_num_food={self.max_num_food} foods")
        border = torch.ones_like(foods)
        border[:, 1:-1, 1:-1] = False
        refuse(foods & border, "field", "must not hold a food on the border (foods spawn on inner cells)")
        rows, cols = values["positions"].unbind(-1)
        under = field.flatten(1).gather(1, rows * self.cols + cols)
        refuse(under > 0, "positions", "must not put an agent on a food")
        total = field.flatten(1).sum(1)
        refuse((spawned < 1) | (spawned < total), "food_spawned",
               "must be >= 1 and >= the total food level on the field (foods only disappear)")

    # ------------------------------------------------------------------------ reset

    def _exclusion_table(self) -> torch.Tensor:
        """For every cell of the grid, the cells a food there keeps other foods out of (its
        3x3 neighbourhood and 2 cells away in line), ``[P + 1, 13]``; nowhere where that cell
        is off the grid, and for nowhere itself."""
        R, W, P = self.rows, self._width, self._nowhere
        offsets = torch.tensor(
            [[dr, dc] for dr in range(-1, 2) for dc in range(-1, 2)] + [[-2, 0], [2, 0], [0, -2], [0, 2]]
        )
        cells = torch.stack(torch.meshgrid(torch.arange(R + 2), torch.arange(W), indexing="ij"), -1)
        near = cells.view(-1, 1, 2) + offsets
        on_grid = (near[..., 0] >= 0) & (near[..., 0] < R + 2) & (near[..., 1] >= 0) & (near[..., 1] < W)
        table = torch.where(on_grid, near[..., 0] * W + near[..., 1], P)
        return torch.cat([table, torch.full((1, len(offsets)), P)])

    def _food_bounds(self, config: dict[str, Any]) -> tuple[torch.Tensor | None, bool, tuple[int, int] | None]:
        """The foods' highest levels when they are the same in every episode (else ``None``);
        whether the per-food bounds differ (then a spawn shuffles them over the foods); and
        the bounds ``(low, high)`` when every food of every episode has the same."""
        top = config["max_food_level"]
        if top is None and self.fixed_levels is not None:
            top = [sum(sorted(self.fixed_levels)[:3])] * self.max_num_food
        low = top if self.force_coop and top is not None else config["min_food_level"]
        shuffle = len(set(low)) > 1 or (top is not None and len(set(top)) > 1)
        same = None if shuffle or top is None else (low[0], top[0])
        return (None if top is None else torch.tensor(top, device=self.device)), shuffle, same

    def _full_sight_index(self) -> torch.Tensor:
        """Where every entry of the observations under full sight is in the row that
        :meth:`_observation` gathers them from: (row, col) of the food slots, then of the
        agents, then the food slots' levels, then the agents' levels."""
        n, nf = self.n_agents, self.max_num_food
        food_level, agent_level = 2 * (nf + n), 2 * (nf + n) + nf
        index = []
        for k in range(n):
            for f in range(nf):
                index += [2 * f, 2 * f + 1, food_level + f]
            for j in self._order[k * n : (k + 1) * n].tolist():
                index += [2 * (nf + j), 2 * (nf + j) + 1]
                if self.observe_agent_levels:
                    index.append(agent_level + j)
        return torch.tensor(index)

    @property
    def _pos(self) -> torch.Tensor:
        """The agents' positions ``[E, N, 2]`` (row, col)."""
        return self._rc.index_select(0, self._cells.flatten()).view(self.num_envs, self.n_agents, 2)

    @property
    def _field(self) -> torch.Tensor:
        """The field ``[E, rows, cols]`` (food level per cell, 0 for none), a view of the grid."""
        return self._grid[:, : self._nowhere].view(self.num_envs, self.rows + 2, self._width)[:, 1:-1, 1:-1]

    @staticmethod
    def _padded(field: torch.Tensor) -> torch.Tensor:
        """The grid of ``field`` ``[E, rows, cols]``: padded by a wall of -1, flattened, and
        nowhere (0) after it."""
        pad = torch.nn.functional.pad
        return pad(pad(field, (1, 1, 1, 1), value=-1).flatten(1), (0, 1), value=0)

    def _food_list(self, grid: torch.Tensor) -> torch.Tensor:
        """Cells of the foods of ``grid`` ``[E, P + 1]``, ascending, then nowhere, to
        ``max_num_food`` entries."""
        P = self._nowhere
        key = torch.where(grid[:, :P] > 0, torch.arange(P, 0, -1, device=grid.device), 0)
        top = key.topk(self.max_num_food, dim=1).values  # P - cell, descending
        return torch.where(top > 0, P - top, P)

    def _cell(self, pos: torch.Tensor) -> torch.Tensor:
        """Cells of the grid of positions ``[..., 2]`` (row, col)."""
        return (pos[..., 0] + 1) * self._width + (pos[..., 1] + 1)

    def _uniform_int(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """Integers uniform in ``[low, high]`` (elementwise)."""
        u = torch.rand(low.shape, generator=self._rng, device=self.device)
        return low + torch.minimum((u * (high - low + 1)).long(), high - low)

    def _spawn(self, which: torch.Tensor) -> None:
        E, N, nf, dev, P = which.numel(), self.n_agents, self.max_num_food, self.device, self._nowhere
        # one uniform score in [0, 1) per cell and draw: a draw takes the allowed cell of
        # highest score, the highest of score - (number of reasons against the cell), which is
        # negative where a cell is not allowed (nowhere never is)
        scores = torch.rand(E, N + nf, P + 1, generator=self._rng, device=dev).unbind(1)
        one = torch.ones(E, 1, dtype=torch.long, device=dev)
        minus_one = -one
        # agents, one at a time, on cells that no agent holds: the new cells of the agents
        # placed before, the previous cells of the others and its own (before the first
        # episode, the previous cells are a wall's)
        old = self._cells.index_select(0, which)
        held = self._no_agent.expand(E, P + 1).scatter_add(1, old, one.expand(E, N))
        cells = []
        for i, old_i in enumerate(old.split(1, 1)):
            cells.append((scores[i] - held).argmax(1, keepdim=True))
            held.scatter_add_(1, cells[-1], one)
            held.scatter_add_(1, old_i, minus_one)
        # levels: lbforaging shuffles the per-agent bounds over the agents
        if self.fixed_levels is not None:
            levels = self._min_level.expand(E, N)
        else:
            perm = torch.rand(E, N, generator=self._rng, device=dev).argsort(1)
            levels = self._uniform_int(self._min_level[perm], self._max_level[perm])
        # foods, one at a time, on inner cells away from other foods and from agents;
        # blocked > 0 where a food may not go
        food_levels = self._food_levels(levels).to(self._grid.dtype)
        blocked = held + self._no_food
        grid = self._empty_grid.expand(E, P + 1).clone()
        ones = one.expand(E, self._exclusion.shape[1])
        food_cells = []
        for k in range(nf):
            best = (scores[N + k] - blocked).max(1, keepdim=True)
            cell = torch.where(best.values >= 0, best.indices, P)  # nowhere: no room left
            grid.scatter_(1, cell, food_levels[:, k : k + 1])
            blocked.scatter_add_(1, self._exclusion.index_select(0, cell.flatten()), ones)
            food_cells.append(cell)
        grid[:, P] = 0
        food_cells = torch.cat(food_cells, 1).sort(1).values
        self._cells.index_copy_(0, which, torch.cat(cells, 1))
        self._levels.index_copy_(0, which, levels)
        self._grid.index_copy_(0, which, grid)
        self._food_cells.index_copy_(0, which, food_cells)
        self._food_spawned.index_copy_(0, which, grid.gather(1, food_cells).sum(1))

    def _food_levels(self, levels: torch.Tensor) -> torch.Tensor:
        """Levels ``[E, max_num_food]`` of an episode's foods, for agents of ``levels`` ``[E, N]``."""
        E, nf = levels.shape[0], self.max_num_food
        if self._food_range is not None:
            low, high = self._food_range
            return torch.randint(low, high + 1, (E, nf), generator=self._rng, device=self.device)
        if self._food_top is not None:
            top = self._food_top.expand(E, nf)
        else:  # the sum of the three lowest agent levels
            top = levels.sort(1).values[:, :3].sum(1, keepdim=True).expand(E, nf)
        low = top if self.force_coop else self._min_food.expand(E, nf)
        if self._shuffle_food_bounds:
            perm = torch.rand(E, nf, generator=self._rng, device=self.device).argsort(1)
            low, top = low.gather(1, perm), top.gather(1, perm)
        return self._uniform_int(low, top)

    # ------------------------------------------------------------------------ step

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = self._actions(tensordict)
        cell = self._cells
        # 1-2. every agent claims a cell: its target if that holds 0 (no wall, no food; an
        # agent's own cell holds 0, so NONE and LOAD claim it), else its own; a claimed cell
        # is taken only by its single claimant
        target = cell + torch.take(self._shift, action)
        target = torch.where(self._grid.gather(1, target) == 0, target, cell)
        claims = _same(target).sum(1).t()
        cell = torch.where(claims == 1, target, cell)
        self._cells = cell
        # 3. loading
        reward = self._load(action == LOAD, cell)
        # 4. termination: no food left
        terminated = self._food_cells[:, :1] == self._nowhere
        return self._step_output(reward, terminated)

    def _load(self, loading: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """Rule 3 for the agents choosing LOAD (``loading``), at grid cells ``cell``; returns
        the rewards ``[E, N]``."""
        E, N = self.num_envs, self.n_agents
        reward = torch.zeros(E, N, dtype=torch.float64, device=self.device)
        # LOAD with no food among the four neighbours is NONE
        around = cell[..., None] + self._around  # [E, N, 4]: north, south, west, east
        near = self._grid.gather(1, around.flatten(1)).view(E, N, 4) > 0
        loading = loading & near.any(-1)
        envs = loading.any(1).nonzero().squeeze(1)
        if not envs.numel():
            return reward
        # from here on only the envs where some agent loads (a few in a hundred under random
        # actions)
        loading, cell, around, near, levels, spawned, grid = (
            x.index_select(0, envs)
            for x in (loading, cell, around, near, self._levels, self._food_spawned, self._grid)
        )
        # every agent's first food, in lbforaging's search order and bounds
        hit = near & self._searched.index_select(0, cell.flatten()).view(near.shape)
        food_cell = around.gather(2, hit.long().argmax(-1, keepdim=True))[..., 0]
        # where every loading agent touches exactly one food and finds it, the groups are the
        # agents sharing a food, and index order does not matter
        hard = (loading & ((near.sum(-1) != 1) | ~hit.any(-1))).any(1).nonzero().squeeze(1)
        if hard.numel():
            in_order = self._load_in_order(
                *(x.index_select(0, hard) for x in (loading, cell, hit, food_cell, grid, levels, spawned))
            )
        loaded = self._load_groups(loading, food_cell, grid, levels, spawned)
        if hard.numel():
            loaded.index_copy_(0, hard, in_order[0])
            grid.index_copy_(0, hard, in_order[1])
        # the foods left
        foods = self._food_cells.index_select(0, envs)
        foods = torch.where(grid.gather(1, foods) > 0, foods, self._nowhere).sort(1).values
        self._grid.index_copy_(0, envs, grid)
        self._food_cells.index_copy_(0, envs, foods)
        return reward.index_copy_(0, envs, loaded)

    def _share(self, levels: torch.Tensor, food: torch.Tensor, total: torch.Tensor, spawned: torch.Tensor) -> torch.Tensor:
        """The reward ``[E, N]`` of agents of ``levels`` in groups of level ``total`` eating ``food``."""
        share = (levels * food).double()
        if self.normalize_reward:
            share = share / (total * spawned[:, None]).clamp(min=1).double()
        return share

    def _load_groups(self, loading, food_cell, grid, levels, spawned) -> torch.Tensor:
        """Rule 3 where each loading agent has one food: removes the eaten foods from ``grid``
        and returns the rewards ``[E, N]``."""
        loaders = torch.where(loading, levels, 0).t()
        total = (_same(food_cell) * loaders).sum(1).t()  # level of every agent's group
        food = grid.gather(1, food_cell)
        success = loading & (total >= food)
        reward = torch.where(success, self._share(levels, food, total, spawned), 0.0)
        if self.penalty:
            reward = torch.where(loading & ~success, -self.penalty, reward)
        grid.scatter_(1, torch.where(success, food_cell, self._nowhere), 0)
        return reward

    def _load_in_order(self, loading, cell, hit, food_cell, grid, levels, spawned) -> tuple[torch.Tensor, torch.Tensor]:
        """Rule 3 agent by agent (agents at grid cells ``cell``): rewards ``[E, N]`` and the
        new grid. An agent still loading at its turn has all its foods: an eaten food's
        loading neighbours were all in the group that ate it."""
        E, N = loading.shape
        W = self._width
        rows = torch.arange(E, device=self.device)
        found = hit.any(-1)
        fr, fc = food_cell // W, food_cell % W
        r, c = cell // W, cell % W
        # adjacent[e, i, j]: agent j is next to agent i's food
        adjacent = ((r[:, None, :] - fr[..., None]).abs() + (c[:, None, :] - fc[..., None]).abs()) == 1
        out = torch.zeros(E, N, dtype=torch.float64, device=self.device)
        remaining = loading.clone()
        for i in range(N):
            go = remaining[:, i] & found[:, i]
            food = grid[rows, food_cell[:, i]]
            group = adjacent[:, i] & remaining & go[:, None]
            total = (levels * group).sum(1, keepdim=True)
            success = go & (total[:, 0] >= food)
            share = self._share(levels, food[:, None], total, spawned)
            out = torch.where(group & success[:, None], share, out)
            out = torch.where(group & ~success[:, None], out - self.penalty, out)
            grid[rows, food_cell[:, i]] = torch.where(success, 0, food)
            remaining = remaining & ~group
            remaining[:, i] = False
        return out, grid

    # ------------------------------------------------------------------------ observation

    def _observation(self) -> torch.Tensor:
        N, nf, E = self.n_agents, self.max_num_food, self.num_envs
        cells = torch.cat([self._food_cells, self._cells], 1)  # foods first, then agents
        rc = self._rc.index_select(0, cells.flatten()).view(E, nf + N, 2)
        food_lvl = self._grid.gather(1, self._food_cells)  # 0 for an empty slot
        if self.sight >= max(self.rows, self.cols) - 1:
            # full sight: every corner is (0, 0) and everything is seen
            rows = [rc.flatten(1), food_lvl] + ([self._levels] if self.observe_agent_levels else [])
            source = torch.cat(rows, 1).to(torch.float32)
            return source.index_select(1, self._obs_index).view(E, N, self.obs_dim)
        s, dev = self.sight, self.device
        food_pos, pos, levels = rc[:, :nf], rc[:, nf:], self._levels
        corner = (pos - s).clamp(min=0)  # [E, N, 2]
        fill = torch.tensor([-1, -1, 0], device=dev)
        rel = food_pos[:, None] - corner[:, :, None]  # [E, N, nf, 2]
        ahead = food_pos[:, None] - pos[:, :, None]
        exists = self._food_cells < self._nowhere
        seen = exists[:, None] & (rel >= 0).all(-1) & (ahead <= s).all(-1)
        values = torch.cat([rel, food_lvl[:, None, :, None].expand(E, N, nf, 1)], -1)
        foods = self._compact(values, seen, nf, fill)  # [E, N, nf, 3]
        # [E, N, N, 2]: for every observer, itself first, then the others in index order
        other = pos.index_select(1, self._order).view(E, N, N, 2)
        rel = other - corner[:, :, None]
        seen = ((rel >= 0) & (rel <= 2 * s)).all(-1)
        values = rel
        if self.observe_agent_levels:
            values = torch.cat([rel, levels.index_select(1, self._order).view(E, N, N, 1)], -1)
        agents = self._compact(values, seen, N, fill[: values.shape[-1]])
        return torch.cat([foods.flatten(2), agents.flatten(2)], -1).to(torch.float32)

    @staticmethod
    def _compact(values: torch.Tensor, keep: torch.Tensor, slots: int, fill: torch.Tensor) -> torch.Tensor:
        """Move the kept entries of ``values`` ``[E, N, M, d]`` to the front, in order."""
        E, N, M, d = values.shape
        slot = torch.where(keep, keep.long().cumsum(-1) - 1, torch.full_like(keep, slots, dtype=torch.long))
        slot = slot.clamp(max=slots)
        out = fill.expand(E, N, slots + 1, d).clone()
        out.scatter_(2, slot[..., None].expand(E, N, M, d), values)
        return out[:, :, :slots]

    # ------------------------------------------------------------------------ rendering

    def render(self, mode: str = "rgb_array", env_index: int = 0, cell: int = 48) -> np.ndarray:
        """Draw environment ``env_index`` as an RGB image ``[H, W, 3]`` (``uint8``).

        Foods are green squares, agents discs in the colour of their hidden type (grey
        without fixed levels); both are labelled with their level.

        Examples:
            >>> env = LevelBasedForaging(num_envs=2, players=3, field_size=6, max_num_food=2,
            ...                          levels=[1, 2, 3], seed=0)
            >>> _ = env.reset()
            >>> env.render(mode="rgb_array", env_index=1).shape
            (289, 289, 3)
        """
        image, draw = self._canvas(mode, env_index, self.rows, self.cols, cell)
        field = self._field[env_index].cpu()
        for r, c in field.nonzero().tolist():
            box = [c * cell + 6, r * cell + 6, (c + 1) * cell - 6, (r + 1) * cell - 6]
            draw.rectangle(box, fill=(60, 170, 75))
            draw.text((c * cell + cell // 2, r * cell + cell // 2), str(int(field[r, c])),
                      fill=(255, 255, 255), anchor="mm")
        n_types = 1 if self.agent_types is None else int(self.agent_types.max()) + 1
        for i, ((r, c), level) in enumerate(
            zip(self._pos[env_index].tolist(), self._levels[env_index].tolist())
        ):
            kind = 0 if self.agent_types is None else int(self.agent_types[i])
            rgb = (0.45, 0.45, 0.45) if self.agent_types is None else type_color(kind, n_types)
            box = [c * cell + 8, r * cell + 8, (c + 1) * cell - 8, (r + 1) * cell - 8]
            draw.ellipse(box, fill=tuple(int(255 * v) for v in rgb), outline=(0, 0, 0))
            draw.text((c * cell + cell // 2, r * cell + cell // 2), str(level),
                      fill=(0, 0, 0), anchor="mm")
        return np.asarray(image, dtype=np.uint8)
