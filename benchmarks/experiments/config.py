"""The settings of a sweep, and the command line of the main job and the benchmarks.

A run trains with a :class:`~torchrl_seps.training.TrainerConfig` (the library's: scenario,
algorithm, networks, identification, evaluation, device). A sweep adds :class:`SweepConfig`:
which methods and seeds it runs, where its results go, and how its runs log and show progress.
Both are dataclasses whose fields carry their help in their metadata; :func:`add_arguments`
makes fields ``--kebab-case`` flags with their defaults, so a flag means the same in every
script that takes it.
"""
from __future__ import annotations

import argparse
import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from torchrl_seps.settings import METHODS

__all__ = ["LOGGERS", "SweepConfig", "add_arguments", "count", "from_args", "given_flags"]

LOGGERS = ("csv", "tensorboard", "wandb", "none")


@dataclass
class SweepConfig:
    """What a sweep adds to its runs' :class:`~torchrl_seps.training.TrainerConfig`: the runs,
    where they go, and how they log and show progress. A sweep resumed or reported with other
    values of these still holds the same runs.

    Examples:
        >>> SweepConfig().methods
        ['nops', 'fups', 'fups_id', 'seps', 'oracle']
        >>> SweepConfig(seeds=[]).validate()
        Traceback (most recent call last):
        ...
        ValueError: --seeds needs at least one seed.
    """

    methods: list[str] = field(default_factory=lambda: list(METHODS),
                               metadata={"help": "methods to compare", "choices": METHODS})
    seeds: list[int] = field(default_factory=lambda: [0, 1], metadata={"help": "one run per method and seed"})
    threads: int | None = field(default=1, metadata={
        "help": "torch CPU threads of each run: one keeps its speed on a CPU shared with other "
                "processes (benchmarks/thread_policy.py); --jobs trains several runs at once; with Ray, "
                "the run's --cpus-per-run unless given", "type": int})
    output: str = field(default="runs/vmas_seps", metadata={"help": "output folder"})
    logger: str = field(default="csv", metadata={"help": "TorchRL logger for per-run scalars",
                                                 "choices": LOGGERS})
    gif: bool = field(default=True, metadata={"help": "save a GIF of the trained SePS policy"})
    progress: bool = field(default=True, metadata={"help": "progress bars"})

    def validate(self) -> None:
        """Fails with a clear message before any training starts (the methods are the
        trainer's to check: :meth:`~torchrl_seps.training.TrainerConfig.validate`)."""
        # imported here: the checks load torch, which --help does without
        from torchrl_seps._checks import check_bool, check_instance, check_int, check_unique

        if self.logger not in LOGGERS:
            raise ValueError(f"--logger must be csv, tensorboard, wandb or none, got {self.logger!r}.")
        check_instance("--seeds", self.seeds, (list, tuple), "a list of ints")
        if not self.seeds:
            raise ValueError("--seeds needs at least one seed.")
        for seed in self.seeds:
            check_int("--seeds", seed, minimum=0)
        check_unique("--seeds", self.seeds)
        check_instance("--methods", self.methods, (list, tuple), "a list of method names")
        check_unique("--methods", self.methods)
        check_int("--threads", self.threads, optional=True)
        check_bool("--gif", self.gif)
        check_bool("--progress", self.progress)
        check_output(self.output)


def check_output(output: Any) -> Path:
    """An output folder that exists or can be made: not a file, nor under one, and writable
    (the nearest existing folder above it, when it does not exist yet)."""
    from torchrl_seps._checks import check_instance

    check_instance("--output", output, (str, Path), "a folder path")
    path = Path(output)
    if str(output) == "":
        raise ValueError("--output must name a folder, got ''.")
    existing = next(p for p in (path, *path.parents) if p.exists() or p == Path(p.anchor or "."))
    if not existing.is_dir():
        raise ValueError(f"--output must be a folder, but {existing} is a file (--output={output}).")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"--output {output}: {existing} is not writable.")
    return path


def add_arguments(parser: argparse.ArgumentParser, config_class: type, names: Sequence[str] | None = None) -> None:
    """Adds the named fields of the dataclass ``config_class`` (all by default) to ``parser`` as
    ``--kebab-case`` flags, with their defaults, help and the command-line settings of their
    metadata: a bool is a ``--x`` / ``--no-x`` pair, a list takes one or more values.

    Examples:
        >>> parser = argparse.ArgumentParser()
        >>> add_arguments(parser, SweepConfig, ["seeds", "gif"])
        >>> args = parser.parse_args(["--seeds", "3", "4", "--no-gif"])
        >>> args.seeds, args.gif
        ([3, 4], False)
    """
    defaults = config_class()
    specs = {spec.name: spec for spec in fields(config_class)}
    for name in specs if names is None else names:
        default = getattr(defaults, name)
        settings = dict(specs[name].metadata)
        if isinstance(default, bool):
            settings["action"] = argparse.BooleanOptionalAction
        elif isinstance(default, list):
            settings = {"nargs": "+", "type": type(default[0]), **settings}
        elif default is not None:
            settings.setdefault("type", type(default))
        parser.add_argument("--" + name.replace("_", "-"), default=default, **settings)


def from_args(config_class: type, args: argparse.Namespace, **settings: Any) -> Any:
    """The ``config_class`` of parsed flags (those :func:`add_arguments` added), then ``settings``."""
    parsed = {spec.name: getattr(args, spec.name) for spec in fields(config_class) if hasattr(args, spec.name)}
    return config_class(**{**parsed, **settings})


def count(text: str) -> int:
    """An argparse ``type``: an int >= 1 (rounds, repeats, threads).

    Examples:
        >>> count("3")
        3
    """
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"must be an int >= 1, got {text!r}")
    return value


def given_flags(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> set[str]:
    """The destinations of the flags ``argv`` gives (not those left at their defaults): where a
    preset's own settings (:func:`~torchrl_seps.settings.preset_settings`) yield to the flags.

    Examples:
        >>> parser = argparse.ArgumentParser()
        >>> add_arguments(parser, SweepConfig, ["seeds", "threads"])
        >>> given_flags(parser, ["--threads", "1"])
        {'threads'}
    """
    explicit = copy.deepcopy(parser)
    for action in explicit._actions:
        action.default = argparse.SUPPRESS
    return set(vars(explicit.parse_args(argv)))
