"""Training throughput and peak memory of NoPS, FuPS and SePS as the number of agents grows.

Each (agents, method) pair is one short run of the main job's training iterations
(``torchrl_seps.training``, as ``benchmarks/vmas_seps.py`` trains) in a fresh process, on
Blind-Particle Spread with three colours of ``agents / 3`` agents each. It reports training
frames per second (the frames of a batch over the median iteration: collection and PPO update,
without evaluation or identification), SePS's identification time and groups, the parameter
count and the peak resident memory of the process (CPU) or the peak CUDA memory (GPU).

Run ``python benchmarks/scaling.py`` (``--device cuda`` on a GPU); the settings it shares with
the main job take the main job's flags.
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys

import torch

from torchrl_seps.devices import peak_memory_mb, resolve_device
from torchrl_seps.reporting import markdown_table
from torchrl_seps.training import Config, make_trainer

SHARED = ("methods", "num_envs", "rollout_steps", "algorithm", "centralized_critic", "device",
          "threads")


def child(method: str, config: Config, iterations: int) -> None:
    """One run, in this process; prints its figures as JSON."""
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    trainer = make_trainer(method, 0, config)
    times = [iteration.time for iteration in itertools.islice(trainer.iterations(), iterations)]
    trainer.collector.shutdown()
    identification = trainer.identification
    print(json.dumps({
        "n_groups": len(set(trainer.groups)),
        "train_fps": config.frames_per_batch / statistics.median(times),
        "peak_mb": peak_memory_mb(resolve_device(config.device)),
        "parameters": trainer.n_parameters,
        "identification_time_s": identification.total_time if identification else 0.0,
    }))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--agents", type=int, nargs="+", default=[15, 30, 60, 120],
                        help="agents per run, three colours of agents / 3")
    Config.add_arguments(parser, SHARED)
    parser.set_defaults(methods=["nops", "fups", "seps"])
    parser.add_argument("--iterations", type=int, default=4, help="training iterations per run")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # bps-1's colours, scaled; the collector never runs out
    settings = dict(preset="bps-1", frames=10**12, eval_envs=2, progress=False)
    if args.child:
        agents, method = int(args.child[0]), args.child[1]
        config = Config.from_args(args, **settings, group_sizes=[agents // 3] * 3, methods=[method])
        return child(method, config, args.iterations)
    try:
        Config.from_args(args, **settings).validate()
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    rows = []
    for agents, method in itertools.product(args.agents, args.methods):
        argv_child = [*(argv if argv is not None else sys.argv[1:]), "--child", str(agents), method]
        result = subprocess.run([sys.executable, __file__, *argv_child], check=True,
                                capture_output=True, text=True)
        s = json.loads(result.stdout.strip().splitlines()[-1])
        rows.append([
            agents, method, s["n_groups"], f"{s['train_fps']:.0f}", f"{s['peak_mb']:.0f}",
            f"{s['parameters']:,}", f"{s['identification_time_s']:.1f}",
        ])
        print(f"{agents} agents, {method}: {s['train_fps']:.0f} frames/s", file=sys.stderr)
    print(f"# bps-1 colours scaled up, {args.num_envs} envs x {args.rollout_steps} steps per "
          f"iteration, {args.iterations} {args.algorithm.upper()} iterations, device "
          f"{resolve_device(args.device)}, torch threads {args.threads or torch.get_num_threads()}")
    print(markdown_table(["agents", "method", "groups", "train frames/s", "peak memory (MB)",
                          "parameters", "identification (s)"], rows))


if __name__ == "__main__":
    main()
