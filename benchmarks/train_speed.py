"""Training frames/s of each method, side by side: the main job's iterations in interleaved rounds.

The main job (``benchmarks/vmas_seps.py``) trains one method after another, so on a shared
machine its frames/s ratios also measure how the load moved between runs. Here every method's
trainer is built first (SePS with ``--id-policy random`` runs its identification there, untimed),
then each round runs one training iteration (collection of a batch and its PPO update) of every
method in turn. Each method's ratio to FuPS is the median over rounds of the ratio of iteration
times within a round. SePS with its default warm-up trains as FuPS for its first ``--id-frames``
frames (7 rounds at the defaults) and identifies inside one round, which the median leaves out:
with the default 30 rounds, most rounds time its groups.

Run ``python benchmarks/train_speed.py`` (the main job's defaults: bps-1, 40 envs x 50 steps);
the settings it shares with the main job take the main job's flags.
"""
from __future__ import annotations

import argparse
import statistics

import torch

from experiments.config import SweepConfig, add_arguments, from_args
from experiments.reporting import markdown_table
from torchrl_seps.devices import resolve_device
from torchrl_seps.training import TrainerConfig, make_trainer

SHARED = ("preset", "group_sizes", "num_envs", "rollout_steps", "algorithm", "centralized_critic",
          "id_frames", "id_policy", "device")  # TrainerConfig's; with SweepConfig's methods, threads


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_arguments(parser, TrainerConfig, SHARED)
    add_arguments(parser, SweepConfig, ["methods", "threads"])
    parser.add_argument("--rounds", type=int, default=30, help="timed rounds (one more warms up)")
    args = parser.parse_args(argv)
    if "fups" not in args.methods:
        parser.error("--methods must include fups, the reference of the ratios")
    config = from_args(TrainerConfig, args, frames=10**12)  # the collectors never run out
    try:
        config.validate(args.methods)
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    trainers = {method: make_trainer(method, 0, config) for method in args.methods}
    iterations = {method: trainer.iterations() for method, trainer in trainers.items()}
    times = {method: [] for method in trainers}
    for round_ in range(args.rounds + 1):
        for method in trainers:
            seconds = next(iterations[method]).time
            if round_:
                times[method].append(seconds)
    for trainer in trainers.values():
        trainer.collector.shutdown()

    rows = []
    for method, seconds in times.items():
        median = statistics.median(seconds)
        ratio = statistics.median(f / s for f, s in zip(times["fups"], seconds))
        rows.append([method, len(set(trainers[method].groups)), f"{median * 1e3:.0f} ms",
                     f"{config.frames_per_batch / median:.0f}", f"{ratio:.2f}x"])
    table = markdown_table(
        ["method", "groups", "iteration (median)", "train frames/s", "frames/s relative to fups"],
        rows,
    )
    print(f"# {config.preset}, {config.num_envs} envs x {config.rollout_steps} steps per iteration, "
          f"{args.rounds} interleaved rounds, device {resolve_device(config.device)}, torch threads "
          f"{torch.get_num_threads()}")
    print(table)
    return table


if __name__ == "__main__":
    main()
