"""The coloured robotic warehouse (C-RWARE) as a batched TorchRL environment, in pure torch.

:class:`ColouredWarehouse` steps ``num_envs`` warehouses at once, on the CPU or a GPU. With
one colour it follows ``rware`` 2.0.0's ``Warehouse`` (``msg_bits=0``, individual rewards,
the flattened vector observation) step for step; the tests compare the two. Colours make the
agents differ in goal and in dynamics, as in the SePS paper's C-RWARE:

- agent ``i`` of ``n_agents`` has colour ``i * n_colours // n_agents`` (contiguous blocks:
  4 agents, 2 colours -> ``[0, 0, 1, 1]``), which it does not observe;
- every shelf gets a colour, uniformly at random at every reset;
- delivering a requested shelf gives +1 to the delivering agent only if the shelf has the
  agent's colour (the request is served, and replaced, either way);
- colour ``c`` applies action ``roll(arange(5), c)[a]`` when it chooses ``a``: its action
  indices are rotated, so each colour has its own transition function.

The layout (row 0 at the top; ``x`` is the column, ``y`` the row): ``shelf_rows`` blocks of
``column_height`` rows and ``shelf_columns`` blocks of 2 columns of shelves, separated by
one-cell corridors ("highways"), a corridor row at the top and two at the bottom; the bottom
row holds the two goal cells in its middle, and the two middle columns are corridors for
``column_height + 2`` rows above it. Grid size: ``(column_height + 1) * shelf_rows + 2`` rows,
``3 * shelf_columns + 1`` columns. Every non-corridor cell starts with a shelf; shelves are
numbered in row-major order of those cells.

Actions: NOOP, FORWARD, LEFT (turn counter-clockwise), RIGHT (turn clockwise), TOGGLE_LOAD
(pick up the shelf under the agent, or put the carried shelf down, on a shelf cell only).
Directions: UP, DOWN, LEFT, RIGHT. Rules of a step, in order (``rware``'s):

1. Every agent claims a cell: the one ahead (clipped to the grid) for FORWARD, its own
   otherwise. An agent carrying a shelf that moves onto a cell with a shelf stays, unless
   that cell holds an agent that carries its shelf.
2. Claims form a graph of moves, one edge per agent (own cell -> claimed cell). In every
   connected part: a cycle of two agents (a head-on swap) moves nobody; a longer cycle moves
   exactly the agents on it; an agent that stays (a cycle of one) stays and blocks the agents
   queued behind it; a part that ends in a free cell moves the agents of its longest chain
   into that cell and nobody else. Between equally long chains, the chain whose agent was
   named first wins: agents are taken in index order, each naming its own cell and then its
   claimed cell, and a cell is ranked by when it was first named. (``rware`` takes the first
   predecessor that ``networkx`` lists, which is that order when ``networkx`` iterates the
   graph's nodes; for small parts of a large graph it iterates a Python set of cell tuples
   instead, an order fixed by tuple hashes.)
3. Moving agents move with their shelf; turning agents turn; TOGGLE_LOAD picks up the shelf
   under a free agent, or puts the carried shelf down when the agent is not on a corridor.
4. Goals in order: a requested shelf carried onto a goal is delivered; the request goes to a
   shelf drawn uniformly among those not requested, and the delivering agent gets its reward.

The episode never terminates; ``rware`` ends it after ``max_steps`` (500 for its registered
tasks), which :func:`~torchrl_seps.scenarios.make_env` keeps as a truncation with a
:class:`~torchrl.envs.transforms.StepCounter`. Spawns (on reset): shelves at their cells,
agents on distinct cells drawn uniformly (shelf cells included) with uniform directions,
``request_queue_size`` distinct requested shelves drawn uniformly.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase

from torchrl_seps._checks import check_int, check_options
from torchrl_seps.scenarios._base import type_color
from torchrl_seps.scenarios._grid import GridWorld

__all__ = ["ColouredWarehouse", "NOOP", "FORWARD", "LEFT", "RIGHT", "TOGGLE_LOAD"]

#: Action indices, as in ``rware``.
NOOP, FORWARD, LEFT, RIGHT, TOGGLE_LOAD = range(5)
N_ACTIONS = 5
#: Directions, as in ``rware``: UP, DOWN, LEFT, RIGHT.
UP, DOWN, WEST, EAST = range(4)
# (row, col) displacement of FORWARD per direction
_AHEAD = torch.tensor([[-1, 0], [1, 0], [0, -1], [0, 1]])
# direction after turning LEFT / RIGHT, per direction
_TURN_LEFT = torch.tensor([WEST, EAST, DOWN, UP])
_TURN_RIGHT = torch.tensor([EAST, WEST, UP, DOWN])

_OPTIONS = (
    "n_agents", "shelf_rows", "shelf_columns", "column_height", "n_colours",
    "request_queue_size", "sensor_range",
)


def _repeated(values: torch.Tensor) -> torch.Tensor:
    """``[E]``: whether a row of ``values`` ``[E, M]`` holds a value twice."""
    ordered = values.sort(1).values
    return (ordered[:, 1:] == ordered[:, :-1]).any(1)


def _layout(shelf_rows: int, shelf_columns: int, column_height: int) -> tuple[torch.Tensor, list]:
    """Corridor mask ``[rows, cols]`` and the goal cells ``[(row, col), ...]`` of ``rware``."""
    rows, cols = (column_height + 1) * shelf_rows + 2, 3 * shelf_columns + 1
    y = torch.arange(rows)[:, None]
    x = torch.arange(cols)[None, :]
    middle = (x == cols // 2 - 1) | (x == cols // 2)
    highway = (
        (x % 3 == 0) | (y % (column_height + 1) == 0) | (y == rows - 1)
        | ((y > rows - (column_height + 3)) & middle)
    )
    return highway, [(rows - 1, cols // 2 - 1), (rows - 1, cols // 2)]


class ColouredWarehouse(GridWorld):
    """``num_envs`` coloured robotic warehouses, stepped together in torch.

    Agents are in one group ``"agents"``: ``("agents", "observation")`` (float32
    ``[num_envs, n_agents, obs_dim]``), ``("agents", "action")`` (5 actions: NOOP, FORWARD,
    LEFT, RIGHT, TOGGLE_LOAD, rotated per colour), ``("agents", "reward")`` and root
    ``done`` / ``terminated`` / ``truncated`` (never set by the env itself: give it a time
    limit with a :class:`~torchrl.envs.transforms.StepCounter`, as
    :func:`~torchrl_seps.scenarios.make_env` does, 500 steps).

    The observation of an agent is ``rware``'s flattened one with a shelf colour one-hot:
    its column, row, whether it carries a shelf, its direction (one-hot over 4), whether it
    is on a corridor; then for each of the ``(2 * sensor_range + 1) ** 2`` cells around it
    (row by row, its own in the middle; cells off the grid are empty): whether an agent is
    there, that agent's direction (one-hot; ``1, 0, 0, 0`` without agent), the colour of the
    shelf there (one-hot over ``n_colours``, zeros without shelf) and whether that shelf is
    requested. ``8 + 9 * (6 + n_colours)`` entries at sensor range 1: 71 with one colour
    (``rware``'s, where the colour one-hot is its has-shelf bit), 80 with two.

    Args:
        num_envs (int): number of environments (the batch size).
        n_agents (int): agents per environment.
        shelf_rows (int): blocks of shelves from top to bottom (``rware``'s tiny: 1,
            small and medium: 2).
        shelf_columns (int): blocks of shelves from left to right, odd (tiny and small: 3,
            medium: 5).
        column_height (int): shelf rows per block. Default 8.
        n_colours (int): number of colours. Default 2; 1 is ``rware``.
        request_queue_size (int, optional): shelves requested at once. Default ``n_agents``
            (``rware``'s normal difficulty; easy is ``2 * n_agents``, hard ``n_agents // 2``).
        sensor_range (int): cells seen in each direction. Default 1.
        categorical_actions (bool): integer (``True``) or one-hot actions. Default ``True``.
        device: torch device. Default ``"cpu"``.
        seed (int, optional): seed of the spawns and of the new requests.

    Attributes:
        agent_types (torch.Tensor): the colour of every agent, ``LongTensor [n_agents]``.
        colours (torch.Tensor): the same, on the env's device.

    Examples:
        >>> from torchrl.envs import check_env_specs
        >>> env = ColouredWarehouse(num_envs=4, n_agents=4, shelf_rows=1, shelf_columns=3, seed=0)
        >>> env.agent_types.tolist(), (env.rows, env.cols), env.n_shelves
        ([0, 0, 1, 1], (11, 10), 32)
        >>> env.full_observation_spec["agents", "observation"].shape  # 8 + 9 * (6 + 2)
        torch.Size([4, 4, 80])
        >>> check_env_specs(env)
        >>> td = env.rollout(10)
        >>> td["next", "agents", "reward"].shape
        torch.Size([4, 10, 4, 1])
    """

    def __init__(
        self,
        num_envs: int,
        n_agents: int,
        shelf_rows: int,
        shelf_columns: int,
        column_height: int = 8,
        n_colours: int = 2,
        request_queue_size: int | None = None,
        sensor_range: int = 1,
        categorical_actions: bool = True,
        device: str | torch.device = "cpu",
        seed: int | None = None,
    ) -> None:
        config = self.validate_config(
            n_agents=n_agents, shelf_rows=shelf_rows, shelf_columns=shelf_columns,
            column_height=column_height, n_colours=n_colours,
            request_queue_size=request_queue_size, sensor_range=sensor_range,
        )
        super().__init__(num_envs, config["n_agents"], N_ACTIONS, categorical_actions, device)
        n, dev = self.n_agents, self.device
        self.n_colours: int = config["n_colours"]
        self.request_queue_size: int = config["request_queue_size"]
        self.sensor_range: int = config["sensor_range"]
        highway, goals = _layout(config["shelf_rows"], config["shelf_columns"], config["column_height"])
        self.rows, self.cols = highway.shape
        self.n_shelves = int((~highway).sum())
        self._highway = highway.to(dev)
        # cells are numbered on the grid padded by the sensor range, so that a sensed cell
        # off the grid is an empty cell of the padding
        r = self.sensor_range
        self._padded_cols = self.cols + 2 * r
        self._n_cells = (self.rows + 2 * r) * self._padded_cols
        self._highway_cells = torch.nn.functional.pad(highway, (r, r, r, r)).flatten().to(dev)
        self.goals: list[tuple[int, int]] = goals
        self._shelf_home = (~highway).nonzero().to(dev)  # [S, 2], row-major
        self.agent_types = torch.arange(n) * self.n_colours // n
        self.colours = self.agent_types.to(dev)
        # colour c applies roll(arange(5), c)[a] for action a
        rotation = torch.stack([torch.arange(N_ACTIONS).roll(c) for c in range(self.n_colours)])
        self._rotation = rotation[self.agent_types].to(dev)  # [N, 5]
        self._ahead = _AHEAD.to(dev)
        self._turn_left, self._turn_right = _TURN_LEFT.to(dev), _TURN_RIGHT.to(dev)
        self._cell_codes, self._own_codes = self._code_tables()
        window = torch.tensor([[dy, dx] for dy in range(-r, r + 1) for dx in range(-r, r + 1)])
        self._window = window.to(dev)  # [K, 2]

        # state
        E, S = self.num_envs, self.n_shelves
        self._pos = torch.zeros(E, n, 2, dtype=torch.long, device=dev)
        self._dir = torch.zeros(E, n, dtype=torch.long, device=dev)
        self._carry = torch.full((E, n), -1, dtype=torch.long, device=dev)
        self._shelf_pos = self._shelf_home.expand(E, S, 2).clone()
        self._shelf_colour = torch.zeros(E, S, dtype=torch.long, device=dev)
        self._requested = torch.zeros(E, S, dtype=torch.bool, device=dev)
        self._state_grids: tuple[torch.Tensor, torch.Tensor] | None = None

        cell = [1.0] + [1.0] * 4 + [1.0] * self.n_colours + [1.0]
        high = [self.cols - 1, self.rows - 1, 1, 1, 1, 1, 1, 1] + cell * len(window)
        self._make_specs([0.0] * len(high), high)
        self.set_seed(seed)

    # ------------------------------------------------------------------------ configuration

    @classmethod
    def validate_config(cls, **kwargs: Any) -> dict[str, Any]:
        """The warehouse's settings, checked (:meth:`GridWorld.validate_config`), complete and with
        defaults.

        Examples:
            >>> cfg = ColouredWarehouse.validate_config(n_agents=4, shelf_rows=1, shelf_columns=3)
            >>> cfg["request_queue_size"], cfg["n_colours"], cfg["column_height"]
            (4, 2, 8)
            >>> ColouredWarehouse.validate_config(n_agents=4, shelf_rows=1, shelf_columns=2)
            Traceback (most recent call last):
            ...
            ValueError: shelf_columns must be odd, got 2
        """
        check_options(cls.__name__, kwargs, _OPTIONS, required=("n_agents", "shelf_rows", "shelf_columns"))
        out = {name: check_int(name, kwargs[name]) for name in ("n_agents", "shelf_rows", "shelf_columns")}
        if out["shelf_columns"] % 2 == 0:
            raise ValueError(f"shelf_columns must be odd, got {out['shelf_columns']}")
        out["column_height"] = check_int("column_height", kwargs.get("column_height", 8))
        out["n_colours"] = check_int("n_colours", kwargs.get("n_colours", 2))
        if out["n_colours"] > out["n_agents"]:
            raise ValueError(
                f"n_colours must not exceed n_agents ({out['n_agents']}), got {out['n_colours']}"
            )
        out["sensor_range"] = check_int("sensor_range", kwargs.get("sensor_range", 1))
        highway, _ = _layout(out["shelf_rows"], out["shelf_columns"], out["column_height"])
        cells, shelves = highway.numel(), int((~highway).sum())
        if out["n_agents"] > cells:
            raise ValueError(f"n_agents must fit on the {cells} cells of the warehouse, got {out['n_agents']}")
        queue = kwargs.get("request_queue_size")
        queue = out["n_agents"] if queue is None else check_int("request_queue_size", queue)
        if queue >= shelves:
            raise ValueError(f"request_queue_size must be below the {shelves} shelves, got {queue}")
        out["request_queue_size"] = queue
        return out

    # ------------------------------------------------------------------------ state

    def get_state(self) -> TensorDict:
        """A copy of the game state of every environment.

        Returns:
            TensorDict: ``positions`` ``[num_envs, n_agents, 2]`` (row, col), ``directions``
            ``[num_envs, n_agents]``, ``carrying`` ``[num_envs, n_agents]`` (index of the
            carried shelf, -1 for none), ``shelf_positions`` ``[num_envs, n_shelves, 2]``,
            ``shelf_colours`` ``[num_envs, n_shelves]`` (all ``int64``) and ``requested``
            ``[num_envs, n_shelves]`` (``bool``).
        """
        return TensorDict(
            {
                "positions": self._pos.clone(),
                "directions": self._dir.clone(),
                "carrying": self._carry.clone(),
                "shelf_positions": self._shelf_pos.clone(),
                "shelf_colours": self._shelf_colour.clone(),
                "requested": self._requested.clone(),
            },
            batch_size=self.batch_size,
            device=self.device,
        )

    def set_state(self, state: TensorDictBase) -> TensorDict:
        """Replace the game state (all entries of :meth:`get_state`) and observe it.

        The state must be one that play can reach, else a ``ValueError`` states the rule it
        breaks: integer entries (``requested`` bool); agents on distinct cells, at most one
        shelf per cell, shelves that no agent carries off the highway; a carried shelf at its
        agent's cell and carried by that agent alone; at most ``request_queue_size`` requests.
        Step counters of transforms are not touched.

        Returns:
            TensorDict: the observation of the new state, as :meth:`reset` returns it.

        Examples:
            >>> env = ColouredWarehouse(num_envs=1, n_agents=2, shelf_rows=1, shelf_columns=3,
            ...                         n_colours=1, column_height=2, seed=0)
            >>> (env.rows, env.cols), env.goals, env.n_shelves
            ((5, 10), [(4, 4), (4, 5)], 8)
            >>> state = env.get_state()
            >>> state["positions"][0] = torch.tensor([[3, 4], [0, 3]])  # row, col
            >>> state["directions"][0] = torch.tensor([1, 0])  # DOWN, UP
            >>> state["carrying"][0] = torch.tensor([2, -1])
            >>> state["shelf_positions"][0, 2] = torch.tensor([3, 4])
            >>> state["requested"][0] = False
            >>> state["requested"][0, 2] = True
            >>> td = env.set_state(state)
            >>> td["agents", "action"] = torch.tensor([[FORWARD, NOOP]])
            >>> out = env.step(td)["next"]
            >>> out["agents", "reward"].flatten().tolist()  # agent 0 delivers shelf 2
            [1.0, 0.0]
            >>> env.get_state()["requested"][0].sum().item(), env.get_state()["requested"][0, 2].item()
            (1, False)
        """
        E, N, S = self.num_envs, self.n_agents, self.n_shelves
        expected = {
            "positions": (E, N, 2), "directions": (E, N), "carrying": (E, N),
            "shelf_positions": (E, S, 2), "shelf_colours": (E, S), "requested": (E, S),
        }
        values = self._state_values(state, expected, flags=("requested",))
        self._check_state(values)
        carry = values["carrying"]
        self._pos, self._dir, self._carry = values["positions"], values["directions"], carry
        self._shelf_pos, self._shelf_colour = values["shelf_positions"], values["shelf_colours"]
        self._requested = values["requested"]
        return self._observe()

    # ------------------------------------------------------------------------ reset

    def _check_state(self, values: dict[str, torch.Tensor]) -> None:
        """Refuses a state no episode reaches, stating the rule it breaks."""
        E, N, S = self.num_envs, self.n_agents, self.n_shelves
        refuse = self._refuse
        bounds = {"directions": 4, "carrying": S, "shelf_colours": self.n_colours}
        for key, top in bounds.items():
            low = -1 if key == "carrying" else 0
            refuse((values[key] < low) | (values[key] >= top), key, f"must lie in [{low}, {top})")
        pos, shelf_pos, carry = values["positions"], values["shelf_positions"], values["carrying"]
        refuse(_repeated(self._flat(pos)), "positions", "must put every agent on its own cell")
        refuse(_repeated(self._flat(shelf_pos)), "shelf_positions", "must put every shelf on its own cell")
        refuse(_repeated(torch.where(carry >= 0, carry, -1 - torch.arange(N, device=carry.device))),
               "carrying", "must not name one shelf for two agents")
        held = shelf_pos.gather(1, carry.clamp(min=0)[..., None].expand(E, N, 2))
        refuse((held != pos).any(-1) & (carry >= 0), "shelf_positions", "of a carried shelf must be its agent's position")
        carried = torch.zeros(E, S + 1, dtype=torch.bool, device=carry.device)
        carried.scatter_(1, torch.where(carry >= 0, carry, S), True)
        on_highway = self._highway_cells.gather(0, self._flat(shelf_pos).flatten()).view(E, S)
        refuse(on_highway & ~carried[:, :S], "shelf_positions",
               "must not put a shelf that no agent carries on a highway cell (shelves are dropped off it)")
        requests = values["requested"].sum(1)
        refuse(requests > self.request_queue_size, "requested",
               f"must request at most request_queue_size={self.request_queue_size} shelves")

    def _spawn(self, which: torch.Tensor) -> None:
        E, N, S, dev = which.numel(), self.n_agents, self.n_shelves, self.device
        cells = torch.rand(E, self.rows * self.cols, generator=self._rng, device=dev).argsort(1)[:, :N]
        self._pos[which] = torch.stack([cells // self.cols, cells % self.cols], -1)
        self._dir[which] = torch.randint(4, (E, N), generator=self._rng, device=dev)
        self._carry[which] = -1
        self._shelf_pos[which] = self._shelf_home
        self._shelf_colour[which] = torch.randint(self.n_colours, (E, S), generator=self._rng, device=dev)
        chosen = torch.rand(E, S, generator=self._rng, device=dev).argsort(1)[:, : self.request_queue_size]
        requested = torch.zeros(E, S, dtype=torch.bool, device=dev)
        self._requested[which] = requested.scatter_(1, chosen, True)

    # ------------------------------------------------------------------------ step

    def _grids(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Agent and shelf number + 1 per padded cell ``[E, n_cells]`` (0: none), of the state
        the last observation was made of (every change of state ends with an observation)."""
        if self._state_grids is None:
            self._state_grids = self._make_grids()
        return self._state_grids

    def _make_grids(self) -> tuple[torch.Tensor, torch.Tensor]:
        E, N, S, dev = self.num_envs, self.n_agents, self.n_shelves, self.device
        agents = torch.zeros(E, self._n_cells, dtype=torch.long, device=dev)
        agent_id = torch.arange(1, N + 1, device=dev).expand(E, N)
        agents.scatter_reduce_(1, self._flat(self._pos), agent_id, "amax")
        shelves = torch.zeros(E, self._n_cells, dtype=torch.long, device=dev)
        shelf_id = torch.arange(1, S + 1, device=dev).expand(E, S)
        shelves.scatter_reduce_(1, self._flat(self._shelf_pos), shelf_id, "amax")
        return agents, shelves

    def _flat(self, pos: torch.Tensor) -> torch.Tensor:
        """Padded cell number of positions ``[..., 2]`` (row, col)."""
        r = self.sensor_range
        return (pos[..., 0] + r) * self._padded_cols + (pos[..., 1] + r)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        E, N, dev = self.num_envs, self.n_agents, self.device
        action = self._rotation.expand(E, N, N_ACTIONS).gather(2, self._actions(tensordict)[..., None])[..., 0]
        agents, shelves = self._grids()
        pos, direction, carrying = self._pos, self._dir, self._carry >= 0
        cell = self._flat(pos)
        # 1. claims
        ahead = pos + self._ahead.index_select(0, direction.flatten()).view(E, N, 2)
        ahead[..., 0].clamp_(0, self.rows - 1)
        ahead[..., 1].clamp_(0, self.cols - 1)
        target = torch.where((action == FORWARD)[..., None], ahead, pos)
        target_cell = self._flat(target)
        occupant = agents.gather(1, target_cell) - 1  # -1: no agent there
        occupant_carries = (occupant >= 0) & carrying.gather(1, occupant.clamp(min=0))
        blocked = carrying & (target_cell != cell) & (shelves.gather(1, target_cell) > 0) & ~occupant_carries
        target = torch.where(blocked[..., None], pos, target)
        target_cell = torch.where(blocked, cell, target_cell)
        # 2. which claims are granted
        moves = self._resolve(cell, target_cell, occupant)
        # 3. moves, turns, loads
        self._pos = torch.where(moves[..., None], target, pos)
        turned = torch.where(action == LEFT, self._turn_left.gather(0, direction.flatten()).view(E, N), direction)
        self._dir = torch.where(action == RIGHT, self._turn_right.gather(0, direction.flatten()).view(E, N), turned)
        toggle = action == TOGGLE_LOAD
        under = shelves.gather(1, cell) - 1
        pick = toggle & ~carrying & (under >= 0)
        drop = toggle & carrying & ~self._highway_cells.gather(0, cell.flatten()).view(E, N)
        self._carry = torch.where(pick, under, torch.where(drop, -1, self._carry))
        carried = self._carry >= 0
        padded = torch.cat([self._shelf_pos, self._shelf_pos.new_zeros(E, 1, 2)], 1)
        index = torch.where(carried, self._carry, self.n_shelves)[..., None].expand(E, N, 2)
        self._shelf_pos = padded.scatter(1, index, self._pos)[:, : self.n_shelves]
        # 4. deliveries, goal by goal
        reward = torch.zeros(E, N, device=dev)
        for row, col in self.goals:
            reward = self._deliver(row, col, carried, reward)
        return self._step_output(reward, torch.zeros(E, 1, dtype=torch.bool, device=dev))

    def _resolve(self, cell: torch.Tensor, target_cell: torch.Tensor, occupant: torch.Tensor) -> torch.Tensor:
        """Rule 2: which agents move, ``[E, N]`` bool."""
        E, N, dev = self.num_envs, self.n_agents, self.device
        index = torch.arange(N, device=dev)
        me = index.expand(E, N)
        moving = target_cell != cell
        succ = torch.where(moving, occupant, me)  # next agent along the claims; -1: a free cell
        # cycles: the length of the cycle through an agent, 0 when it is on none
        cycle = torch.zeros(E, N, dtype=torch.long, device=dev)
        walk = succ
        for k in range(1, N + 1):
            cycle = torch.where((walk == me) & (cycle == 0), k, cycle)
            walk = torch.where(walk >= 0, succ.gather(1, walk.clamp(min=0)), -1)
        to_free = walk < 0  # the agent's claims end in a free cell
        # longest chains into free cells: height of the queue behind every agent
        height = torch.zeros(E, N + 1, dtype=torch.long, device=dev)
        slot = torch.where(to_free & (succ >= 0), succ, N)
        for _ in range(N):
            height = torch.zeros(E, N + 1, dtype=torch.long, device=dev).scatter_reduce(
                1, slot, height[:, :N] + 1, "amax"
            )
        # rank of every agent's cell by when it was first named (own cell 2i, claimed 2i + 1)
        claimed_by = cell[:, :, None] == target_cell[:, None, :]  # [E, i, j]: j claims i's cell
        first_claim = torch.where(claimed_by, 2 * index + 1, 2 * N).min(-1).values
        first_named = torch.minimum(first_claim, 2 * me)
        key = height[:, :N] * (2 * N + 1) + (2 * N - first_named)
        key = torch.where(to_free, key, -1)
        # the best key among the agents claiming the same cell
        rivals = target_cell[:, :, None] == target_cell[:, None, :]
        best = to_free & (torch.where(rivals, key[:, None, :], -1).amax(-1) == key)
        chosen = best & (succ < 0)
        for _ in range(N - 1):
            chosen = best & ((succ < 0) | chosen.gather(1, succ.clamp(min=0)))
        on_cycle = (cycle == 1) | (cycle >= 3)
        return moving & (chosen | on_cycle)

    def _deliver(self, row: int, col: int, carried: torch.Tensor, reward: torch.Tensor) -> torch.Tensor:
        """Rule 4 at the goal ``(row, col)``; returns the rewards."""
        at_goal = (self._pos[..., 0] == row) & (self._pos[..., 1] == col) & carried  # [E, N]
        shelf = torch.where(at_goal, self._carry, -1).amax(1, keepdim=True)  # [E, 1]
        index = shelf.clamp(min=0)
        delivered = (shelf >= 0) & self._requested.gather(1, index)  # [E, 1]
        if not delivered.any():
            return reward
        # the new request: uniform among the shelves not requested (the delivered one is)
        free = ~self._requested
        u = self._uniform()
        pick = (u * free.sum(1)).long().clamp(max=self.n_shelves - 1)
        new = (free.long().cumsum(1) <= pick[:, None]).sum(1, keepdim=True).clamp(max=self.n_shelves - 1)
        requested = self._requested.scatter(1, index, self._requested.gather(1, index) & ~delivered)
        self._requested = requested.scatter(1, new, requested.gather(1, new) | delivered)
        own = self._shelf_colour.gather(1, index) == self.colours
        return reward + (at_goal & own & delivered).float()

    def _code_tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Observation rows of a sensed cell and of an agent's own flags, by their codes."""
        C = self.n_colours
        eye = torch.eye(4)
        agent_rows = [torch.cat([torch.zeros(1), eye[0]])] + [torch.cat([torch.ones(1), eye[d]]) for d in range(4)]
        shelf_rows = [torch.zeros(C + 1)] + [
            torch.cat([torch.eye(C)[c], torch.tensor([float(req)])]) for c in range(C) for req in (0, 1)
        ]
        cells = torch.stack([torch.cat([a, s]) for a in agent_rows for s in shelf_rows])
        own = torch.stack([
            torch.cat([torch.tensor([float(carrying)]), eye[d], torch.tensor([float(corridor)])])
            for carrying in (0, 1) for d in range(4) for corridor in (0, 1)
        ])
        return cells.to(self.device), own.to(self.device)

    def _uniform(self) -> torch.Tensor:
        """One uniform number in ``[0, 1)`` per env: the draw of a new request."""
        return torch.rand(self.num_envs, generator=self._rng, device=self.device)

    # ------------------------------------------------------------------------ observation

    def _observation(self) -> torch.Tensor:
        E, N = self.num_envs, self.n_agents
        pos, direction, carry = self._pos, self._dir, self._carry
        self._state_grids = agents, shelves = self._make_grids()
        seen = self._flat(pos[:, :, None, :] + self._window).flatten(1)  # [E, N * K]
        agent = agents.gather(1, seen) - 1
        shelf = shelves.gather(1, seen) - 1
        # what a cell shows, as a row of self._cell_codes: 0 / 1 + direction, then 0 / 1 +
        # 2 * colour + requested
        agent_code = torch.where(agent >= 0, direction.gather(1, agent.clamp(min=0)) + 1, 0)
        shelf_state = 2 * self._shelf_colour + self._requested.long()
        shelf_code = torch.where(shelf >= 0, shelf_state.gather(1, shelf.clamp(min=0)) + 1, 0)
        code = agent_code * (2 * self.n_colours + 1) + shelf_code
        sensors = self._cell_codes.index_select(0, code.flatten()).view(E, N, -1)
        corridor = self._highway_cells.gather(0, self._flat(pos).flatten()).view(E, N)
        own_code = ((carry >= 0).long() * 4 + direction) * 2 + corridor.long()
        own = self._own_codes.index_select(0, own_code.flatten()).view(E, N, -1)
        return torch.cat([pos.flip(-1).float(), own, sensors], -1)

    # ------------------------------------------------------------------------ rendering

    def render(self, mode: str = "rgb_array", env_index: int = 0, cell: int = 24) -> np.ndarray:
        """Draw environment ``env_index`` as an RGB image ``[H, W, 3]`` (``uint8``).

        Corridors are light grey, goals dark grey; shelves are squares in their colour,
        requested ones with a thick black border; agents are discs in their colour with a
        line towards their direction (a carried shelf is drawn under its agent).

        Examples:
            >>> env = ColouredWarehouse(num_envs=2, n_agents=4, shelf_rows=1, shelf_columns=3, seed=0)
            >>> _ = env.reset()
            >>> env.render(mode="rgb_array", env_index=1).shape
            (265, 241, 3)
        """
        image, draw = self._canvas(mode, env_index, self.rows, self.cols, cell)
        rgb = lambda c: tuple(int(255 * v) for v in type_color(int(c), self.n_colours))
        box = lambda r, c, m: [c * cell + m, r * cell + m, (c + 1) * cell - m, (r + 1) * cell - m]
        for r, c in self._highway.nonzero().tolist():
            draw.rectangle(box(r, c, 1), fill=(225, 225, 225))
        for r, c in self.goals:
            draw.rectangle(box(r, c, 1), fill=(90, 90, 90))
        shelf_pos = self._shelf_pos[env_index].tolist()
        colours, requested = self._shelf_colour[env_index].tolist(), self._requested[env_index].tolist()
        for (r, c), colour, wanted in zip(shelf_pos, colours, requested):
            draw.rectangle(box(r, c, 3), fill=rgb(colour), outline=(0, 0, 0), width=3 if wanted else 1)
        for (r, c), d, colour in zip(self._pos[env_index].tolist(), self._dir[env_index].tolist(),
                                     self.agent_types.tolist()):
            draw.ellipse(box(r, c, 6), fill=rgb(colour), outline=(0, 0, 0), width=2)
            dr, dc = _AHEAD[d].tolist()
            mid = ((c + 0.5) * cell, (r + 0.5) * cell)
            draw.line([mid, (mid[0] + dc * cell / 2, mid[1] + dr * cell / 2)], fill=(0, 0, 0), width=2)
        return np.asarray(image, dtype=np.uint8)
