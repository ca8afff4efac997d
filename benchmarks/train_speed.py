"""Training frames/s of each method, side by side: the main job's iterations in interleaved rounds.

The main job (``benchmarks/vmas_seps.py``) trains one method after another, so on a shared
machine its frames/s ratios also measure how the load moved between runs. Here every method's
trainer is built first (SePS with ``--id-policy random`` runs its identification there, untimed),
then each round runs one training iteration (collection of a batch and its update) of every
trainer in turn. Each row's ratio to the first row is the median over rounds of the ratio of
frames/s within a round. SePS with its default warm-up trains as FuPS for its first
``--id-frames`` frames (7 rounds at the defaults) and identifies inside one round, which the
median leaves out: with the default 30 rounds, most rounds time its groups.

The settings are the main job's for the preset (a grid world's own:
:func:`~torchrl_seps.settings.preset_settings`), and its flags where given. ``--against``
also times the same methods with other settings in the same rounds (``--against num_envs=40
ppo_epochs=4``), or with the VMAS presets' values of the settings a grid world changes
(``--against vmas``).

Run ``python benchmarks/train_speed.py`` (bps-1, 40 envs x 50 steps);
``python benchmarks/train_speed.py --preset crware-tiny-4ag --methods fups --rounds 10 --against
vmas`` compares the grid-world settings with the VMAS ones.
"""
from __future__ import annotations

import argparse
import statistics
from dataclasses import fields, replace

import torch

from experiments.config import SweepConfig, add_arguments, count, from_args, given_flags
from experiments.reporting import markdown_table
from iteration_profile import label
from torchrl_seps.devices import resolve_device
from torchrl_seps.settings import parse_keyword_arguments, preset_settings, vmas_settings
from torchrl_seps.training import TrainerConfig, make_trainer

SHARED = ("preset", "group_sizes", "num_envs", "rollout_steps", "ppo_epochs", "minibatches", "algorithm",
          "centralized_critic", "num_cells", "id_frames", "id_policy", "device")  # TrainerConfig's


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_arguments(parser, TrainerConfig, SHARED)
    add_arguments(parser, SweepConfig, ["methods", "threads"])
    parser.add_argument("--rounds", type=count, default=30, help="timed rounds (one more warms up)")
    parser.add_argument("--against", nargs="+", metavar="FIELD=VALUE",
                        help="also time every method with these settings changed; vmas: the VMAS "
                             "presets' values of the settings a grid world changes")
    args = parser.parse_args(argv)
    if "fups" not in args.methods:
        parser.error("--methods must include fups, the reference of the ratios")
    given = given_flags(parser, argv)
    unset = {name: value for name, value in preset_settings(args.preset).items() if name not in given}
    config = from_args(TrainerConfig, args, frames=10**12, **unset)  # the collectors never run out
    configs = [config]
    try:
        if args.against:
            changed = (vmas_settings() if args.against == ["vmas"]
                       else parse_keyword_arguments(args.against, "--against"))
            unknown = sorted(set(changed) - {spec.name for spec in fields(TrainerConfig)})
            if unknown:
                raise ValueError(f"--against: {', '.join(unknown)} is not a setting of TrainerConfig.")
            configs.append(replace(config, **changed))
        for each in configs:
            each.validate(args.methods)
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    trainers = {(index, method): make_trainer(method, 0, each)
                for index, each in enumerate(configs) for method in args.methods}
    iterations = {key: trainer.iterations() for key, trainer in trainers.items()}
    speeds = {key: [] for key in trainers}
    for round_ in range(args.rounds + 1):
        for key in trainers:
            seconds = next(iterations[key]).time
            if round_:
                speeds[key].append(configs[key[0]].frames_per_batch / seconds)
    for trainer in trainers.values():
        trainer.collector.shutdown()

    reference = speeds[(0, "fups")]
    rows = []
    for (index, method), fps in speeds.items():
        each = configs[index]
        ratio = statistics.median(s / r for s, r in zip(fps, reference))
        median = statistics.median(fps)
        rows.append([label(each), method, len(set(trainers[(index, method)].groups)),
                     f"{each.frames_per_batch / median * 1e3:.0f} ms", f"{median:.0f}", f"{ratio:.2f}x"])
    table = markdown_table(
        ["envs x steps, epochs x minibatches", "method", "groups", "iteration (median)", "train frames/s",
         "frames/s relative to the first row"],
        rows,
    )
    print(f"# {config.preset}, {args.rounds} interleaved rounds, device {resolve_device(config.device)}, "
          f"torch threads {torch.get_num_threads()}")
    print(table)
    return table


if __name__ == "__main__":
    main()
