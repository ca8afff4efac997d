"""Scenarios whose agents have hidden types, and ``make_env`` to use them with TorchRL.

- :class:`BlindParticleSpread`: the agents' types differ in what they are rewarded for.
- :class:`RotatedNavigation`: the agents' types differ in how their actions move them.
- :class:`LevelBasedForaging`: a batched torch grid world (not VMAS) whose agents differ in
  hidden levels, i.e. in what they can load.
- :class:`ColouredWarehouse`: the coloured robotic warehouse (C-RWARE), a batched torch grid
  world whose agents differ in colour: which shelves reward them and how their actions act.
- :func:`make_env`, :func:`list_presets`, :func:`agent_types`: named tasks (``"bps-1"`` ..
  ``"bps-6"``, ``"rotnav-2x4"``, ``"lbf-8x8-3p-2f"``, ...) as TorchRL environments, and their
  ground truth.
- :func:`render_rollout`, :func:`save_gif`: watch a rollout, agents coloured by type.
"""
from __future__ import annotations

from torchrl_seps.scenarios.actions import FIVE_MOVES, BoundedActionCheck, DiscreteActionTable
from torchrl_seps.scenarios.blind_spread import BlindParticleSpread
from torchrl_seps.scenarios.foraging import LevelBasedForaging
from torchrl_seps.scenarios.presets import PRESETS, Preset, agent_types, list_presets, make_env
from torchrl_seps.scenarios.render import episode_length, render_rollout, save_gif
from torchrl_seps.scenarios.rotated_navigation import RotatedNavigation
from torchrl_seps.scenarios.warehouse import ColouredWarehouse

__all__ = [
    "BlindParticleSpread",
    "ColouredWarehouse",
    "LevelBasedForaging",
    "RotatedNavigation",
    "BoundedActionCheck",
    "DiscreteActionTable",
    "FIVE_MOVES",
    "PRESETS",
    "Preset",
    "agent_types",
    "episode_length",
    "list_presets",
    "make_env",
    "render_rollout",
    "save_gif",
]
