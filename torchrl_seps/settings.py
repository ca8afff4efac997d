"""The settings of a training run, without torch: what a command line is built from.

:class:`TrainerSettings` holds the fields of :class:`~torchrl_seps.training.TrainerConfig`
(their defaults and help) and what follows from them alone; ``TrainerConfig`` adds the checks and
the identification settings, which need torch. This module imports neither torch nor TorchRL, so
that ``benchmarks/vmas_seps.py --help`` and its usage errors answer at once.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["ACTIVATIONS", "EVAL_POLICIES", "GRID_WORLD_SETTINGS", "METHODS", "PRESET_NAMES", "TrainerSettings", "parse_keyword_arguments",
           "preset_settings", "vmas_settings"]

#: The grouping methods compared: ``nops`` one network per agent, ``fups`` one for all,
#: ``fups_id`` one for all with the one-hot agent id appended to every observation, ``seps``
#: groups found by identification (:class:`TrainerSettings`'s ``id_policy``), ``oracle`` the
#: scenario's true (hidden) agent types as groups.
METHODS = ("nops", "fups", "fups_id", "seps", "oracle")

#: The activations of the hidden layers of actor and critic (TrainerSettings' ``activation``).
ACTIVATIONS = ("tanh", "relu")

#: How an evaluation acts (TrainerSettings' ``eval_policy``): each agent's most likely action, or
#: actions sampled from the policy as in training.
EVAL_POLICIES = ("mode", "sample")

#: The names of :func:`~torchrl_seps.scenarios.list_presets`, in its order (the project's
#: scenarios with hidden agent types), for a help text built before torch loads.
PRESET_NAMES = (
    "bps-1", "bps-2", "bps-3", "bps-4", "bps-5", "bps-6", "bps-homogeneous",
    "rotnav-2x4", "rotnav-4x5", "rotnav-homogeneous", "bps-3x80", "bps-10x100",
    "lbf-8x8-3p-2f", "lbf-10x10-6p-3f", "lbf-15x15-9p-4f", "lbf-8x8-3p-2f-coop",
    "lbf-10x10-6p-3f-homogeneous",
    "crware-tiny-4ag", "crware-tiny-4ag-hard", "crware-small-8ag", "crware-medium-16ag",
    "crware-tiny-4ag-1colour",
)


#: The training settings of the grid-world presets (``lbf-`` and ``crware-``) where they differ
#: from :class:`TrainerSettings`' defaults, which are the VMAS presets'. The batched grid worlds
#: step hundreds of envs about as fast as forty, so a batch is 256 envs x 25 steps; ReLU layers
#: cost a fraction of tanh's on the CPU and learn the warehouse several times faster; a small
#: entropy bonus; a PPO clip of 0.1, with which far fewer warehouse runs collapse to never
#: delivering than with 0.2; evaluations sample actions, as training does (a warehouse's most
#: likely actions deadlock its robots). Measured in benchmarks/README.md, "Grid-world training".
GRID_WORLD_SETTINGS: dict[str, Any] = {
    "num_envs": 256, "rollout_steps": 25, "activation": "relu", "entropy_coeff": 0.001,
    "clip_epsilon": 0.1, "eval_every": 20, "eval_policy": "sample",
}


def vmas_settings() -> dict[str, Any]:
    """The VMAS presets' values of the settings :data:`GRID_WORLD_SETTINGS` changes
    (:class:`TrainerSettings`' defaults): what the grid worlds trained with before they had their own.

    Examples:
        >>> vmas_settings()["num_envs"], vmas_settings()["activation"]
        (40, 'tanh')
    """
    return {spec.name: spec.default for spec in fields(TrainerSettings) if spec.name in GRID_WORLD_SETTINGS}


def preset_settings(preset: str) -> dict[str, Any]:
    """The training settings of ``preset`` that differ from :class:`TrainerSettings`'
    defaults: :data:`GRID_WORLD_SETTINGS` for the grid worlds, none for VMAS scenarios.

    Examples:
        >>> preset_settings("crware-tiny-4ag")["num_envs"], preset_settings("bps-1")
        (256, {})
    """
    return dict(GRID_WORLD_SETTINGS) if preset.startswith(("lbf-", "crware-")) else {}


def _setting(default: Any, help: str, **command_line: Any):
    """A field with its help and, for a command line built from the fields, its ``choices``,
    ``type`` (where the default is ``None``), ``nargs`` and ``metavar``."""
    return field(default=default, metadata={"help": help, **command_line})


def parse_keyword_arguments(pairs: list[str] | None, name: str = "--scenario-kwargs") -> dict[str, Any]:
    """``["n_agents=4", "shaping=True"]`` as keyword arguments: each value a Python literal
    (number, bool, None, string, tuple, ...) or else the string itself.

    Examples:
        >>> parse_keyword_arguments(["n_agents=4", "mode=fast", "groups=(2, 2)"])
        {'n_agents': 4, 'mode': 'fast', 'groups': (2, 2)}
        >>> parse_keyword_arguments(["n_agents"])
        Traceback (most recent call last):
        ...
        ValueError: --scenario-kwargs takes KEY=VALUE pairs, got 'n_agents'.
    """
    kwargs = {}
    for pair in pairs or ():
        key, equals, text = pair.partition("=")
        if not equals or not key.isidentifier():
            raise ValueError(f"{name} takes KEY=VALUE pairs, got {pair!r}.")
        try:
            kwargs[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            kwargs[key] = text
    return kwargs


@dataclass
class TrainerSettings:
    """The fields of :class:`~torchrl_seps.training.TrainerConfig`: scenario, algorithm,
    networks, SePS's identification, evaluation and device, each with its default and help.

    Examples:
        >>> settings = TrainerSettings(preset="balance", scenario_kwargs=["n_agents=4"], num_envs=4,
        ...                            rollout_steps=10)
        >>> settings.frames_per_batch, settings.env_overrides
        (40, {'continuous_actions': False, 'n_agents': 4})
    """

    preset: str = _setting("bps-1", "the scenario: a preset (" + ", ".join(PRESET_NAMES) + ") or any "
                           "VMAS scenario (e.g. balance, navigation; true agent types unknown)")
    scenario_kwargs: list[str] | None = _setting(
        None, "keyword arguments of the scenario, or of the --env factory (e.g. n_agents=4 "
        "max_steps=100)", nargs="+", type=str, metavar="KEY=VALUE")
    env: str | None = _setting(
        None, "a function building the env instead of --preset, called as function(num_envs=, "
        "seed=, device=, **scenario kwargs) and returning a TorchRL multi-agent EnvBase with a "
        "StepCounter (the episode length)", type=str, metavar="MODULE:FUNCTION")
    group_sizes: list[int] | None = _setting(
        None, "agents per hidden type, overriding the preset's (e.g. 10 10 10)", nargs="+", type=int)
    group: str = _setting("agents", "the agent group trained (a key of the env's group_map)")
    frames: int = _setting(120_000, "environment frames per run; SePS's identification included")
    continuous_actions: bool = _setting(False, "2-D forces instead of the 5 discrete moves")
    algorithm: str = _setting("ppo", "ppo (IPPO, or MAPPO with --centralized-critic) or a2c "
                              "(the paper's: --num-envs 8 --rollout-steps 5)", choices=("ppo", "a2c"))
    centralized_critic: bool = _setting(False, "critics see all agents' observations (MAPPO)")
    num_envs: int = _setting(40, "vectorised environments collected from")
    rollout_steps: int = _setting(50, "steps per env and iteration (frames per batch = "
                                  "num_envs * rollout_steps)")
    lr: float = _setting(3e-4, "Adam learning rate (actor and critic)")
    gamma: float = _setting(0.99, "discount")
    lmbda: float = _setting(0.95, "GAE lambda for PPO; A2C uses 1 (n-step returns)")
    clip_epsilon: float = _setting(0.2, "PPO ratio clip")
    normalize_advantage: bool = _setting(True, "PPO: standardise the advantages of each minibatch")
    entropy_coeff: float = _setting(0.01, "entropy bonus weight")
    critic_coeff: float = _setting(0.5, "critic loss weight")
    max_grad_norm: float = _setting(0.5, "gradient norm clip")
    ppo_epochs: int = _setting(4, "PPO passes over each batch")
    minibatches: int = _setting(4, "PPO minibatches per pass")
    depth: int = _setting(2, "hidden layers of actor and critic")
    num_cells: int = _setting(64, "units per hidden layer")
    activation: str = _setting("tanh", "activation of the hidden layers", choices=ACTIVATIONS)
    # IdentificationOptions.frames (a test keeps the two equal)
    id_frames: int = _setting(12_800, "frames SePS identifies its groups "
                              "from: its first training frames (--id-policy warmup), or a random "
                              "policy's before training, counted in its budget (--id-policy random)")
    id_policy: str = _setting("warmup", "whose frames SePS identifies from: the shared (FuPS) "
                              "policy it trains first, or a random policy", choices=("warmup", "random"))
    regroup_every: int | None = _setting(
        None, "SePS identifies again on its last --id-frames frames every FRAMES frames, and "
        "regroups (warm-started) when the partition changed", type=int, metavar="FRAMES")
    id_epochs: int | None = _setting(None, "identification epochs (its default when unset)", type=int)
    n_groups: int | None = _setting(None, "SePS's K (chosen automatically when unset)", type=int)
    eval_every: int = _setting(5, "iterations between evaluations")
    eval_envs: int = _setting(32, "episodes per evaluation")
    eval_policy: str = _setting("mode", "the policy evaluated: each agent's most likely action (mode) "
                                "or actions sampled as in training (sample)", choices=EVAL_POLICIES)
    device: str = _setting("auto", "cpu, cuda, or auto (CUDA when present)")

    @classmethod
    def for_preset(cls, preset: str, **settings: Any):
        """The settings of ``preset``: its own defaults (:func:`preset_settings`), then
        ``settings``.

        Examples:
            >>> config = TrainerSettings.for_preset("crware-tiny-4ag", ppo_epochs=2)
            >>> config.num_envs, config.rollout_steps, config.ppo_epochs
            (256, 25, 2)
        """
        return cls(preset=preset, **{**preset_settings(preset), **settings})

    @property
    def frames_per_batch(self) -> int:
        return self.num_envs * self.rollout_steps

    @property
    def env_overrides(self) -> dict:
        """Keyword arguments of ``make_env`` (or of the ``env`` factory) beyond the preset's:
        ``continuous_actions``, ``groups`` (``group_sizes``) when set, and ``scenario_kwargs``."""
        overrides: dict[str, Any] = {"continuous_actions": self.continuous_actions}
        if self.group_sizes is not None:
            overrides["groups"] = tuple(self.group_sizes)
        return {**overrides, **parse_keyword_arguments(self.scenario_kwargs)}

    @property
    def scenario(self) -> str:
        """The scenario's name for people: the preset, or the ``env`` factory."""
        return self.preset if self.env is None else self.env
