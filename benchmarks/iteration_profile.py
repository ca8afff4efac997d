"""Where the time of one training iteration goes: collection (the env's step, the policy, the
collector's own work) and the update (advantages, minibatch sampling, loss forward, backward,
gradient step), for each of several settings of the main job, side by side.

The update's phases are timed by the library (TorchRL's ``timeit`` in
:func:`~torchrl_seps.training.update`); the env's step and the policy's forward are wrapped here.
Each setting's trainer (FuPS) runs ``--rounds`` iterations after one warm-up, the settings in
interleaved rounds; the table gives milliseconds per iteration and microseconds per frame.

Run ``python benchmarks/iteration_profile.py`` (crware-tiny-4ag with the VMAS presets' settings,
:func:`~torchrl_seps.settings.vmas_settings`, against the main job's grid-world settings);
``--setting`` takes other settings, each a list of ``FIELD=VALUE``.
"""
from __future__ import annotations

import argparse
import time
from collections import defaultdict
from dataclasses import fields

import torch
from torchrl import timeit

from experiments.config import count
from experiments.reporting import markdown_table
from torchrl_seps.settings import parse_keyword_arguments, vmas_settings
from torchrl_seps.training import Trainer, TrainerConfig, make_trainer

PHASES = ("collection: env step", "collection: policy", "collection: other",
          "update: advantages", "update: minibatch sampling", "update: loss forward", "update: backward",
          "update: gradient step", "update: other", "between collection and update")


def label(config: TrainerConfig) -> str:
    """Batch, PPO passes and activation of ``config``."""
    return (f"{config.num_envs} x {config.rollout_steps}, {config.ppo_epochs} x {config.minibatches}, "
            f"{config.activation}")


def timed(name: str, function):
    def wrapped(*args, **kwargs):
        with timeit(name):
            return function(*args, **kwargs)
    return wrapped


def instrumented(trainer: Trainer) -> Trainer:
    """The trainer with its env's step and its policy's forward timed."""
    trainer.env._step = timed("collection: env step", trainer.env._step)
    trainer.collector.policy.forward = timed("collection: policy", trainer.collector.policy.forward)
    return trainer


def profile(trainer: Trainer, iterations) -> dict[str, float]:
    """Seconds per phase of one iteration of ``trainer``."""
    timeit.erase()
    start = time.perf_counter()
    iteration = next(iterations)
    total = time.perf_counter() - start
    spent = timeit.todict(percall=False)
    phases = {name: spent.get(name, 0.0) for name in PHASES}
    phases["collection: other"] = iteration.collection_time - phases["collection: env step"] - phases["collection: policy"]
    phases["update: other"] = iteration.update_time - sum(v for k, v in phases.items() if k.startswith("update:"))
    phases["between collection and update"] = total - iteration.collection_time - iteration.update_time
    phases["total"] = total
    return phases


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--preset", default="crware-tiny-4ag")
    parser.add_argument("--setting", nargs="*", action="append", metavar="FIELD=VALUE",
                        help="one setting (repeat the flag for more): TrainerConfig fields changed "
                             "from the main job's settings of the preset; none: those settings")
    parser.add_argument("--rounds", type=count, default=5)
    parser.add_argument("--threads", type=count, default=1)
    args = parser.parse_args(argv)
    settings = args.setting or [[f"{name}={value}" for name, value in vmas_settings().items()], []]
    names = {spec.name for spec in fields(TrainerConfig)}
    configs = []
    for changed in settings:
        try:
            overrides = parse_keyword_arguments(changed, "--setting")
            unknown = sorted(set(overrides) - names)
            if unknown:
                raise ValueError(f"--setting: {', '.join(unknown)} is not a setting of TrainerConfig.")
            configs.append(TrainerConfig.for_preset(args.preset, frames=10**12, eval_envs=1, **overrides))
            configs[-1].validate(["fups"])
        except (TypeError, ValueError) as error:
            parser.error(str(error))
    torch.set_num_threads(args.threads)
    trainers = [instrumented(make_trainer("fups", 0, config)) for config in configs]
    iterations = [trainer.iterations() for trainer in trainers]
    for each in iterations:
        next(each)  # warm-up
    sums = [defaultdict(float) for _ in configs]
    for _ in range(args.rounds):
        for index, trainer in enumerate(trainers):
            for phase, seconds in profile(trainer, iterations[index]).items():
                sums[index][phase] += seconds / args.rounds
    for trainer in trainers:
        trainer.collector.shutdown()

    columns = [label(c) for c in configs]
    rows = []
    for phase in (*PHASES, "total"):
        cells = []
        for config, spent in zip(configs, sums):
            cells.append(f"{spent[phase] * 1e3:.0f} ms ({spent[phase] / config.frames_per_batch * 1e6:.1f} us)")
        rows.append([phase, *cells])
    rows.append(["training frames/s", *(f"{c.frames_per_batch / s['total']:,.0f}" for c, s in zip(configs, sums))])
    table = markdown_table(["per iteration (per frame)", *columns], rows)
    print(f"# {args.preset}, FuPS, mean of {args.rounds} interleaved iterations, torch threads {args.threads}")
    print(table)
    return table


if __name__ == "__main__":
    main()
