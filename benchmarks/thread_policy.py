"""Torch's intra-op threads on a shared CPU: the main job's training iterations and SePS's
identification with 1 or 2 threads, while 0, 1 or 2 other CPU-bound processes run.

The competing processes are busy loops started by this script. Each cell of the table is the
median iteration time of ``--rounds`` training iterations (collection and update; the main job's
settings of the preset: :meth:`~torchrl_seps.settings.TrainerSettings.for_preset`) or the
median time of ``--identifications`` identifications from random-policy frames, and its share of
the same threads' quiet-machine speed. On a 2-core machine one thread keeps its speed while one
other process runs; two threads then wait on each other (the main job's ``--threads`` default is
1 for that reason, with ``--jobs`` to train several runs at once).

Run ``python benchmarks/thread_policy.py`` (bps-1 and crware-tiny-4ag, about 3 minutes).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from collections.abc import Iterator

import torch

from experiments.config import count
from experiments.reporting import markdown_table
from torchrl_seps.identification import identify_groups
from torchrl_seps.scenarios import make_env
from torchrl_seps.training import TrainerConfig, make_trainer


@contextmanager
def competing(processes: int) -> Iterator[None]:
    """``processes`` busy loops in other processes while the block runs."""
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        time.sleep(0.5 if busy else 0.0)  # let the scheduler see them
        yield
    finally:
        for process in busy:
            process.kill()
            process.wait()


def iteration_seconds(preset: str, rounds: int) -> tuple[float, int]:
    """Median seconds of a training iteration of FuPS with the main job's settings of ``preset``,
    and the frames of its batch."""
    config = TrainerConfig.for_preset(preset, frames=10**12, eval_envs=1)
    trainer = make_trainer("fups", 0, config)
    iterations = trainer.iterations()
    next(iterations)  # warm-up
    seconds = [next(iterations).time for _ in range(rounds)]
    trainer.collector.shutdown()
    return statistics.median(seconds), config.frames_per_batch


def identification_seconds(preset: str, repeats: int) -> float:
    """Median seconds of SePS's identification (default options, random-policy frames)."""
    config = TrainerConfig(preset=preset)
    env = make_env(preset, num_envs=config.num_envs, seed=0)
    seconds = []
    for seed in range(repeats):
        start = time.perf_counter()
        identify_groups(env, config.identification(seed))
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["bps-1", "crware-tiny-4ag"])
    parser.add_argument("--threads", nargs="+", type=count, default=[1, 2])
    parser.add_argument("--competing", nargs="+", type=int, default=[0, 1, 2],
                        help="numbers of busy processes beside the measured one, from 0")
    parser.add_argument("--rounds", type=count, default=8, help="timed training iterations per cell")
    parser.add_argument("--identifications", type=int, default=1,
                        help="timed identifications per cell (bps-1's; 0 for none)")
    args = parser.parse_args(argv)
    if args.competing[0] != 0 or min(args.competing) < 0:
        parser.error(f"--competing must start with 0 (the quiet machine) and have no negative "
                     f"entries, got {args.competing}")
    if args.identifications < 0:
        parser.error(f"--identifications must be an int >= 0, got {args.identifications}")

    jobs = [(f"{preset} training", lambda p=preset: iteration_seconds(p, args.rounds))
            for preset in args.presets]
    if args.identifications:
        jobs.append(("bps-1 identification", lambda: (identification_seconds("bps-1", args.identifications), None)))
    rows = []
    for name, measure in jobs:
        for threads in args.threads:
            torch.set_num_threads(threads)
            cells, quiet = [], None
            for processes in args.competing:
                with competing(processes):
                    seconds, frames = measure()
                speed = frames / seconds if frames else seconds
                quiet = speed if quiet is None else quiet
                share = speed / quiet if frames else quiet / speed
                cells.append(f"{speed:,.0f}" if frames else f"{speed:.1f} s")
                cells[-1] += "" if processes == args.competing[0] else f" ({share:.0%})"
                print(f"{name}, {threads} thread(s), {processes} competing: {cells[-1]}", file=sys.stderr)
            rows.append([name, threads, *cells])
    table = markdown_table(
        ["measured", "torch threads", *(f"{n} competing" for n in args.competing)], rows)
    print("# training: median frames/s of an iteration; identification: median seconds; in brackets "
          "the share of the speed with no competing process")
    print(table)
    return table


if __name__ == "__main__":
    main()
