"""Training frames/s of each method, side by side: the main job's iterations in interleaved rounds.

The main job (``benchmarks/vmas_seps.py``) trains one method after another, so on a shared
machine its frames/s ratios also measure how the load moved between runs. Here every method's
trainer is built first (SePS runs its identification, untimed), then each round runs one training
iteration (collection of a batch and its PPO update) of every method in turn. Each method's ratio
to FuPS is the median over rounds of the ratio of iteration times within a round.

Run ``python benchmarks/train_speed.py`` (the main job's defaults: bps-1, 40 envs x 50 steps);
``--preset``, ``--num-envs`` and ``--threads`` as in the main job.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import vmas_seps  # noqa: E402  (the main job, beside this file)

from torchrl_seps.reporting import markdown_table  # noqa: E402


def iteration_time(trainer: vmas_seps.Trainer, batches) -> float:
    """Seconds of one training iteration: collect a batch, then update on it."""
    start = time.perf_counter()
    trainer.train_step(next(batches))
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="bps-1")
    parser.add_argument("--methods", nargs="+", default=list(vmas_seps.METHODS),
                        choices=vmas_seps.METHODS)
    parser.add_argument("--num-envs", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=30, help="timed rounds (one more warms up)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if "fups" not in args.methods:
        parser.error("--methods must include fups, the reference of the ratios")
    if args.threads:
        torch.set_num_threads(args.threads)
    config = vmas_seps.Config(
        preset=args.preset, methods=args.methods, num_envs=args.num_envs, device=args.device,
        progress=False,
        frames=10**12,  # the collectors never run out
    )
    try:
        config.validate()
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    trainers = {method: vmas_seps.make_trainer(method, 0, config) for method in args.methods}
    batches = {method: iter(trainer.collector) for method, trainer in trainers.items()}
    times = {method: [] for method in trainers}
    for round_ in range(args.rounds + 1):
        for method, trainer in trainers.items():
            seconds = iteration_time(trainer, batches[method])
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
    print(f"# {args.preset}, {args.num_envs} envs x {config.rollout_steps} steps per iteration, "
          f"{args.rounds} interleaved rounds, device {args.device}, torch threads "
          f"{torch.get_num_threads()}")
    print(table)
    return table


if __name__ == "__main__":
    main()
