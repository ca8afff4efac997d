"""Named tasks with hidden agent types, and :func:`make_env` to build any of them for TorchRL.

================== ======== ======== ===== ========================================================
preset             agents   types    obs   what differs between types
================== ======== ======== ===== ========================================================
bps-1              15       3 (5x3)  10    reward (own-colour landmark)
bps-2              30       3 (10x3) 10    reward
bps-3              30       5 (6x5)  14    reward
bps-4              30       5        14    reward; unequal groups 3, 3, 3, 12, 9
bps-5              15       3 (5x3)  10    reward and a per-colour permutation of the observation
bps-6              30       5 (6x5)  14    reward and a per-colour permutation of the observation
bps-homogeneous    15       1        10    nothing: one colour, 2 decoy landmarks (control of bps-1)
rotnav-2x4         8        2 (4x2)  4     dynamics: controls rotated by 0 / 180 degrees
rotnav-4x5         20       4 (5x4)  4     dynamics: controls rotated by 0 / 90 / 180 / 270 degrees
rotnav-homogeneous 8        1        4     nothing (control of rotnav-2x4)
bps-3x80           240      3 (80x3) 10    reward (bps-1's colours, 80 agents each)
bps-10x100         1000     10       24    reward; 10 colours of 100 agents
lbf-8x8-3p-2f      3        3 (1x3)  12    ability: hidden levels 1, 2, 3 (level-based foraging)
lbf-10x10-6p-3f    6        3 (2x3)  21    ability: hidden levels (i % 3) + 1
lbf-15x15-9p-4f    9        3 (3x3)  30    ability: hidden levels (i % 3) + 1
lbf-8x8-3p-2f-coop 3        3 (1x3)  12    ability; every food needs all three agents
lbf-10x10-6p-3f-   6        1        21    nothing: all level 1 (control of lbf-10x10-6p-3f)
homogeneous
crware-tiny-4ag    4        2 (2x2)  80    goal (own-colour shelves) and dynamics (rotated actions)
crware-tiny-4ag-   4        2 (2x2)  80    the same, 2 requests at once instead of 4
hard
crware-small-8ag   8        2 (4x2)  80    goal and dynamics; 2 shelf rows, 80 shelves
crware-medium-16ag 16       2 (8x2)  80    goal and dynamics; 2 x 5 shelf blocks, 144 shelves
crware-tiny-4ag-   4        1        71    nothing: rware-tiny-4ag-v2 (control of crware-tiny-4ag)
1colour
================== ======== ======== ===== ========================================================

The ``crware-`` presets have 500-step episodes, all others 50-step ones. Through :func:`make_env` the VMAS presets have 5 discrete
actions (no-op, -x, +x, -y, +y) unless ``continuous_actions=True``; the ``lbf-`` presets are
:class:`~torchrl_seps.scenarios.LevelBasedForaging` grid worlds (batched torch, not VMAS) with
6 discrete actions (none, north, south, west, east, load), full sight, no penalty, food levels
from 1 to the sum of the three lowest agent levels, and agent levels fixed by index and
absent from observations. The ``crware-`` presets are
:class:`~torchrl_seps.scenarios.ColouredWarehouse` grid worlds (batched torch) with 5 discrete
actions (noop, forward, left, right, toggle load; rotated per colour), ``rware``'s tiny /
small / medium layouts (column height 8), sensor range 1 and one request per agent (half as
many for ``-hard``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import vmas
from torchrl.envs import EnvBase, RewardSum, StepCounter, TransformedEnv
from torchrl.envs.libs.vmas import VmasEnv

from torchrl_seps._checks import check_bool, check_int

from torchrl_seps.scenarios._base import TypedScenario
from torchrl_seps.scenarios.actions import FIVE_MOVES, BoundedActionCheck, DiscreteActionTable
from torchrl_seps.scenarios.blind_spread import BlindParticleSpread
from torchrl_seps.scenarios.foraging import LevelBasedForaging
from torchrl_seps.scenarios._grid import GridWorld
from torchrl_seps.scenarios.rotated_navigation import RotatedNavigation
from torchrl_seps.scenarios.warehouse import ColouredWarehouse

__all__ = ["Preset", "PRESETS", "list_presets", "make_env", "agent_types"]


@dataclass(frozen=True)
class Preset:
    """A named scenario configuration.

    Attributes:
        scenario (type): the :class:`~vmas.simulator.scenario.BaseScenario` class, or a
            TorchRL :class:`~torchrl.envs.EnvBase` class built directly (the grid worlds).
        kwargs (dict): its keyword arguments.
        description (str): one line for people.
        max_steps (int): episode length.
    """

    scenario: type[TypedScenario] | type[EnvBase]
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    max_steps: int = 50


PRESETS: dict[str, Preset] = {
    "bps-1": Preset(
        BlindParticleSpread, {"groups": (5, 5, 5)}, "Blind-Particle Spread, 15 agents, 3 colours"
    ),
    "bps-2": Preset(
        BlindParticleSpread,
        {"groups": (10, 10, 10)},
        "Blind-Particle Spread, 30 agents, 3 colours",
    ),
    "bps-3": Preset(
        BlindParticleSpread,
        {"groups": (6, 6, 6, 6, 6)},
        "Blind-Particle Spread, 30 agents, 5 colours",
    ),
    "bps-4": Preset(
        BlindParticleSpread,
        {"groups": (3, 3, 3, 12, 9)},
        "Blind-Particle Spread, 30 agents, 5 colours of unequal sizes",
    ),
    "bps-5": Preset(
        BlindParticleSpread,
        {"groups": (5, 5, 5), "permute_obs": True},
        "Blind-Particle Spread, 15 agents, 3 colours, observation permuted per colour",
    ),
    "bps-6": Preset(
        BlindParticleSpread,
        {"groups": (6, 6, 6, 6, 6), "permute_obs": True},
        "Blind-Particle Spread, 30 agents, 5 colours, observation permuted per colour",
    ),
    "bps-homogeneous": Preset(
        BlindParticleSpread,
        {"groups": (15,), "n_landmarks": 3},
        "Blind-Particle Spread control, 15 agents, 1 colour (landmark 0), 2 decoy landmarks",
    ),
    "rotnav-2x4": Preset(
        RotatedNavigation,
        {"groups": (4, 4)},
        "Rotated-controls navigation, 8 agents, 2 types (controls rotated by 0 / 180 deg)",
    ),
    "rotnav-4x5": Preset(
        RotatedNavigation,
        {"groups": (5, 5, 5, 5)},
        "Rotated-controls navigation, 20 agents, 4 types (0 / 90 / 180 / 270 deg)",
    ),
    "rotnav-homogeneous": Preset(
        RotatedNavigation,
        {"groups": (8,)},
        "Rotated-controls navigation control, 8 agents, 1 type",
    ),
    "bps-3x80": Preset(
        BlindParticleSpread,
        {"groups": (80, 80, 80)},
        "Blind-Particle Spread, 240 agents, 3 colours",
    ),
    "bps-10x100": Preset(
        BlindParticleSpread,
        {"groups": (100,) * 10},
        "Blind-Particle Spread, 1,000 agents, 10 colours",
    ),
}


def _lbf(players: int, size: int, foods: int, levels: list[int], coop: bool = False) -> dict:
    return dict(players=players, field_size=size, max_num_food=foods, levels=tuple(levels),
                observe_agent_levels=False, force_coop=coop)


PRESETS.update({
    "lbf-8x8-3p-2f": Preset(
        LevelBasedForaging, _lbf(3, 8, 2, [1, 2, 3]),
        "Level-based foraging 8x8, 3 agents of hidden levels 1, 2, 3, 2 foods",
    ),
    "lbf-10x10-6p-3f": Preset(
        LevelBasedForaging, _lbf(6, 10, 3, [1, 2, 3] * 2),
        "Level-based foraging 10x10, 6 agents of hidden levels (i % 3) + 1, 3 foods",
    ),
    "lbf-15x15-9p-4f": Preset(
        LevelBasedForaging, _lbf(9, 15, 4, [1, 2, 3] * 3),
        "Level-based foraging 15x15, 9 agents of hidden levels (i % 3) + 1, 4 foods",
    ),
    "lbf-8x8-3p-2f-coop": Preset(
        LevelBasedForaging, _lbf(3, 8, 2, [1, 2, 3], coop=True),
        "Level-based foraging 8x8, 3 agents of hidden levels 1, 2, 3, 2 foods of level 6",
    ),
    "lbf-10x10-6p-3f-homogeneous": Preset(
        LevelBasedForaging, _lbf(6, 10, 3, [1] * 6),
        "Level-based foraging control, 10x10, 6 agents all of level 1, 3 foods",
    ),
})



def _crware(agents: int, rows: int, columns: int, colours: int = 2, queue: int | None = None) -> dict:
    return dict(n_agents=agents, shelf_rows=rows, shelf_columns=columns, n_colours=colours,
                request_queue_size=queue)


PRESETS.update({
    "crware-tiny-4ag": Preset(
        ColouredWarehouse, _crware(4, 1, 3), "Coloured warehouse (rware tiny), 4 agents of 2 colours",
        max_steps=500,
    ),
    "crware-tiny-4ag-hard": Preset(
        ColouredWarehouse, _crware(4, 1, 3, queue=2),
        "Coloured warehouse (rware tiny, hard: 2 requests), 4 agents of 2 colours", max_steps=500,
    ),
    "crware-small-8ag": Preset(
        ColouredWarehouse, _crware(8, 2, 3), "Coloured warehouse (rware small), 8 agents of 2 colours",
        max_steps=500,
    ),
    "crware-medium-16ag": Preset(
        ColouredWarehouse, _crware(16, 2, 5),
        "Coloured warehouse (rware medium), 16 agents of 2 colours", max_steps=500,
    ),
    "crware-tiny-4ag-1colour": Preset(
        ColouredWarehouse, _crware(4, 1, 3, colours=1),
        "Coloured warehouse control, one colour: rware-tiny-4ag-v2", max_steps=500,
    ),
})

_VMAS_SCENARIOS: tuple[str, ...] = tuple(
    sorted({*vmas.scenarios, *vmas.mpe_scenarios, *vmas.debug_scenarios})
)
#: Episode length used for VMAS's own scenarios (they have none by default).
VMAS_MAX_STEPS = 100


def list_presets(vmas_scenarios: bool = False) -> dict[str, str]:
    """Names of the tasks :func:`make_env` builds, with a one-line description.

    Args:
        vmas_scenarios (bool): also list VMAS's own scenario names (described as such).

    Returns:
        dict[str, str]: ``{name: description}``, our presets first, in a fixed order.

    Examples:
        >>> names = list(list_presets())
        >>> names[:3], len(names)
        (['bps-1', 'bps-2', 'bps-3'], 22)
        >>> list_presets()["rotnav-2x4"]
        'Rotated-controls navigation, 8 agents, 2 types (controls rotated by 0 / 180 deg)'
        >>> "navigation" in list_presets(vmas_scenarios=True)
        True
    """
    out = {name: preset.description for name, preset in PRESETS.items()}
    if vmas_scenarios:
        out.update({name: "VMAS scenario (no hidden types)" for name in _VMAS_SCENARIOS})
    return out


_ENV_KWARGS = ("max_steps", "continuous_actions", "categorical_actions")


def _check_env_args(name: Any, num_envs: Any, device: Any, seed: Any) -> torch.device:
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__} {name!r}")
    check_int("num_envs", num_envs)
    check_int("seed", seed, minimum=None, optional=True)
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must name a torch device, got {device!r}") from err


def make_env(
    name: str,
    num_envs: int,
    device: str | torch.device = "cpu",
    seed: int | None = None,
    **overrides: Any,
) -> TransformedEnv:
    """Build a batched TorchRL environment for a preset or a VMAS scenario.

    Returns a :class:`~torchrl.envs.TransformedEnv` over a
    :class:`~torchrl.envs.libs.vmas.VmasEnv` with ``num_envs`` copies of the task, and a
    :class:`~torchrl.envs.transforms.RewardSum` that writes each agent's running episode
    return to ``("agents", "episode_reward")``. Agents are in one group ``"agents"``: keys
    ``("agents", "observation")``, ``("agents", "action")``, ``("agents", "reward")``, and
    ``"done"`` / ``"terminated"`` / ``"truncated"`` at the root. A VMAS scenario whose agents
    TorchRL puts in several groups (e.g. ``simple_tag``'s ``"adversary"`` and ``"agent"``) keeps
    them, each with its own ``(group, "episode_reward")``; pass ``group=`` to
    :func:`~torchrl_seps.identify_groups` to identify one of them.

    The episode length is a time limit, kept by a :class:`~torchrl.envs.transforms.StepCounter`
    (root ``"step_count"``): the last step is ``truncated`` and ``done`` but not
    ``terminated``, so value estimators bootstrap through it. (VMAS's own ``max_steps`` would
    report it as ``terminated``.)

    For our presets, discrete actions (the default) are the 5 moves no-op, -x, +x, -y, +y,
    as integers in ``[0, 5)`` of shape ``[num_envs, n_agents]``: the simulator runs in
    continuous mode and a :class:`~torchrl_seps.scenarios.DiscreteActionTable` maps the
    moves, for all agents at once. VMAS's own scenarios keep VMAS's discrete actions.

    Args:
        name (str): a preset of :func:`list_presets` (``"bps-1"`` .. ``"bps-6"``,
            ``"bps-homogeneous"``, ``"rotnav-2x4"``, ``"rotnav-4x5"``,
            ``"rotnav-homogeneous"``, ``"lbf-8x8-3p-2f"``, ...) or a VMAS scenario name
            (``"navigation"``, ...). The ``lbf-`` presets build a
            :class:`~torchrl_seps.scenarios.LevelBasedForaging` (6 discrete actions, no
            ``continuous_actions``) instead of a ``VmasEnv``; food exhausted is
            ``terminated``, the 50-step limit ``truncated``. The ``crware-`` presets build a
            :class:`~torchrl_seps.scenarios.ColouredWarehouse` (5 discrete actions), with
            a 500-step limit.
        num_envs (int): number of vectorised environments (the batch size).
        device: torch device of the simulation. Default ``"cpu"``.
        seed (int, optional): seed of the simulator's random numbers (spawn positions).
            VMAS draws them from one stream per process, shared by all its environments:
            the same seed and the same sequence of calls give the same episodes.

    Keyword Args:
        max_steps (int, optional): episode length; default 50 for presets, 100 for VMAS
            scenarios (``None`` means endless).
        continuous_actions (bool): 2-D continuous forces in ``[-1, 1]`` instead of discrete
            moves. Default ``False``.
        categorical_actions (bool): integer (``True``) or one-hot (``False``) discrete
            actions. Default ``True``.
        **scenario_kwargs: anything else reaches the scenario and overrides the preset,
            e.g. ``groups=(2, 2)`` or ``landmark_spawn=2.0`` (see
            :class:`~torchrl_seps.scenarios.BlindParticleSpread` and
            :class:`~torchrl_seps.scenarios.RotatedNavigation`).

    Raises:
        ValueError: for an unknown name (the message lists the valid ones) or an invalid
            setting; ``TypeError`` for a wrongly typed or unknown setting. Both are raised
            before anything is built.

    Examples:
        >>> env = make_env("bps-1", num_envs=2, seed=0)
        >>> env.full_observation_spec["agents", "observation"].shape
        torch.Size([2, 15, 10])
        >>> td = env.rollout(50)
        >>> td["next", "truncated"][:, -1].all().item()  # 50-step episodes
        True
        >>> td["next", "terminated"].any().item()
        False
        >>> td["next", "agents", "episode_reward"].shape
        torch.Size([2, 50, 15, 1])
        >>> agent_types(env)
        tensor([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2])
        >>> make_env("bps-7", num_envs=2)
        Traceback (most recent call last):
        ...
        ValueError: unknown environment 'bps-7'; presets: bps-1, bps-2, ...
    """
    torch_device = _check_env_args(name, num_envs, device, seed)
    env_kwargs = {k: overrides.pop(k) for k in _ENV_KWARGS if k in overrides}
    continuous = env_kwargs.get("continuous_actions", False)
    categorical = env_kwargs.get("categorical_actions", True)
    check_bool("continuous_actions", continuous)
    check_bool("categorical_actions", categorical)
    preset = PRESETS.get(name)
    if preset is None and name not in _VMAS_SCENARIOS:
        raise ValueError(
            f"unknown environment {name!r}; presets: {', '.join(PRESETS)}; "
            f"VMAS scenarios: {', '.join(_VMAS_SCENARIOS)}"
        )
    max_steps = env_kwargs.get(
        "max_steps", preset.max_steps if preset is not None else VMAS_MAX_STEPS
    )
    check_int("max_steps", max_steps, optional=True)

    if preset is not None and issubclass(preset.scenario, EnvBase):
        # a batched torch grid world: its own discrete actions
        if continuous:
            raise ValueError(f"continuous_actions must be False for {name!r} (a grid world), got True")
        scenario_kwargs = preset.scenario.validate_config(**{**preset.kwargs, **overrides})
        base = preset.scenario(
            num_envs=num_envs, device=torch_device, seed=seed, categorical_actions=categorical,
            **scenario_kwargs,
        )
        actions = None
    elif preset is None:
        base = VmasEnv(
            name,
            num_envs=num_envs,
            device=torch_device,
            continuous_actions=continuous,
            categorical_actions=categorical,
            seed=seed,
            **overrides,
        )
        actions = None
    else:
        scenario_kwargs = preset.scenario.validate_config(**{**preset.kwargs, **overrides})
        base = VmasEnv(
            preset.scenario(),
            num_envs=num_envs,
            device=torch_device,
            continuous_actions=True,
            seed=seed,
            **scenario_kwargs,
        )
        actions = BoundedActionCheck() if continuous else DiscreteActionTable(FIVE_MOVES, categorical=categorical)
    env = TransformedEnv(base)
    if max_steps is not None:
        env.append_transform(StepCounter(max_steps=max_steps))
    if actions is not None:
        env.append_transform(actions)
    rewards = [key for key in base.full_reward_spec.keys(True, True) if isinstance(key, tuple)]
    env.append_transform(
        RewardSum(in_keys=rewards, out_keys=[(*key[:-1], "episode_reward") for key in rewards])
    )
    return env


def _scenario_of(env: Any) -> Any:
    """The VMAS scenario behind a TorchRL env, a VMAS environment, or a scenario itself."""
    if isinstance(env, TransformedEnv):
        env = env.base_env
    if isinstance(env, GridWorld):
        return env
    # VmasEnv forwards unknown attributes to the wrapped vmas Environment.
    scenario = getattr(env, "scenario", env)
    if not isinstance(scenario, vmas.simulator.scenario.BaseScenario):
        raise TypeError(
            "agent_types needs a VMAS-based environment or scenario or a batched grid world, "
            f"got {type(env).__name__}"
        )
    return scenario


def agent_types(env: Any) -> torch.Tensor | None:
    """The hidden ground-truth type of every agent, for evaluation only.

    Args:
        env: an environment from :func:`make_env` (or any TorchRL env over a VMAS env or a
            :class:`~torchrl_seps.scenarios.LevelBasedForaging` or
            :class:`~torchrl_seps.scenarios.ColouredWarehouse`), a ``vmas`` environment, or a
            scenario instance.

    Returns:
        torch.Tensor or None: ``LongTensor [n_agents]`` on the CPU, types numbered from 0 in
        agent order; ``None`` for a scenario without hidden types (VMAS's own scenarios).

    Examples:
        >>> agent_types(make_env("bps-4", num_envs=2)).bincount().tolist()
        [3, 3, 3, 12, 9]
        >>> agent_types(make_env("navigation", num_envs=2)) is None
        True
        >>> agent_types(make_env("lbf-10x10-6p-3f", num_envs=2)).tolist()  # levels 1, 2, 3, 1, 2, 3
        [0, 1, 2, 0, 1, 2]
        >>> agent_types(make_env("crware-tiny-4ag", num_envs=2)).tolist()  # colours
        [0, 0, 1, 1]
    """
    scenario = _scenario_of(env)
    types = getattr(scenario, "agent_types", None)
    if not isinstance(types, torch.Tensor):
        return None
    return types.detach().to("cpu", copy=True)
