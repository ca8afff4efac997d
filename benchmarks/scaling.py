"""How identification and training scale with the number of agents.

**Identification.** Blind-Particle Spread with bps-1's three colours of ``N / 3`` agents each
(``make_env("bps-1", num_envs=64, groups=(N/3,) * 3)``) for every ``N`` of ``--agents``, and the
1,000-agent ten-colour preset ``bps-10x100``, each identified by ``identify_groups`` at its
defaults (12,800 random-policy frames). For each: seconds per stage (collect, fit, choose K),
the K found, the adjusted Rand index against the colours and the peak resident memory. The
exponent of a stage is the least-squares slope of log seconds against log N over the agents in
``--fit-range``: 1 is linear.

**Training.** The main job's training iterations (``torchrl_seps.training``, the main job's
defaults unless flags say otherwise) for each method of ``--methods`` at each N of
``--train-agents``: agent-steps per second (frames of a batch times N over the median
iteration: collection and PPO update, no evaluation), the peak resident memory and the
parameters of actor and critic. SePS trains with the groups it identified from a random policy
before training (``id_policy="random"``), so its iterations are timed with its own K. Within a
round the methods run one after the other, and rounds repeat, so ratios compare runs made side
by side; each figure is the median over rounds.

Every run is a fresh process with ``--threads`` torch threads (1 by default). Run
``python benchmarks/scaling.py`` (about 40 minutes on a 2-core CPU), ``--part identification``
or ``--part training`` for one half; ``--plot FILE`` draws the identification stages against N.
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

from experiments.config import SweepConfig, add_arguments, from_args
from experiments.reporting import markdown_table
from experiments.timing import peak_memory_mb
from torchrl_seps import identify_groups
from torchrl_seps.clustering import adjusted_rand_index
from torchrl_seps.devices import resolve_device
from torchrl_seps.scenarios import agent_types, make_env
from torchrl_seps.training import TrainerConfig, make_trainer

SHARED = ("num_envs", "rollout_steps", "algorithm", "device")  # TrainerConfig's; and SweepConfig's threads
STAGES = ("collect", "fit", "cluster")
ID_ENVS = 64  # as benchmarks/identification.py
LARGE_PRESET = "bps-10x100"


def _groups(n_agents: int) -> tuple[int, ...]:
    return (n_agents // 3,) * 3


def identify_child(n_agents: int | None, seed: int) -> dict:
    """One identification; ``n_agents=None`` identifies the large preset."""
    if n_agents is None:
        env = make_env(LARGE_PRESET, num_envs=ID_ENVS, seed=seed)
    else:
        env = make_env("bps-1", num_envs=ID_ENVS, seed=seed, groups=_groups(n_agents))
    start = time.perf_counter()
    result = identify_groups(env, seed=seed)
    total = time.perf_counter() - start
    return {
        **result.timings,
        "total": total,
        "k": result.n_groups,
        "ari": adjusted_rand_index(agent_types(env), result.groups),
        "scored": len(result.evidence.ks),
        "peak_mb": peak_memory_mb(torch.device("cpu")),
    }


def train_child(n_agents: int, method: str, config: TrainerConfig, iterations: int) -> dict:
    """Training iterations of one method; SePS identifies from a random policy first."""
    trainer = make_trainer(method, 0, config)
    times = [it.time for it in itertools.islice(trainer.iterations(), iterations + 1)][1:]
    trainer.collector.shutdown()
    return {
        "agent_steps_per_s": config.frames_per_batch * n_agents / statistics.median(times),
        "peak_mb": peak_memory_mb(resolve_device(config.device)),
        "parameters": trainer.n_parameters,
        "n_groups": len(set(trainer.groups)),
    }


def _run_child(argv: list[str], child: list[str]) -> dict:
    result = subprocess.run([sys.executable, __file__, *argv, "--child", *child],
                            check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def exponent(agents: list[int], seconds: list[float]) -> float:
    """Least-squares slope of log seconds against log agents.

    Examples:
        >>> round(exponent([10, 20, 40], [1.0, 2.0, 4.0]), 6)
        1.0
    """
    return float(np.polyfit(np.log(agents), np.log(seconds), 1)[0])


def identification_part(args: argparse.Namespace, argv: list[str]) -> None:
    rows, medians = [], {}
    for n_agents in [*args.agents, *([None] if args.large else [])]:
        runs = []
        for seed in range(args.seeds):
            runs.append(_run_child(argv, ["identify", str(n_agents or 0), str(seed)]))
            label = n_agents or LARGE_PRESET
            print(f"identify {label} seed {seed}: K={runs[-1]['k']} ARI {runs[-1]['ari']:.3f} "
                  f"{runs[-1]['total']:.1f}s", file=sys.stderr, flush=True)
        median = {key: statistics.median(run[key] for run in runs)
                  for key in [*STAGES, "total", "peak_mb", "scored"]}
        if n_agents is not None:
            medians[n_agents] = median
        rows.append([
            n_agents or f"1000 ({LARGE_PRESET}, 10 colours)", ", ".join(str(r["k"]) for r in runs),
            f"{sum(r['ari'] == 1.0 for r in runs)} / {len(runs)}", f"{median['scored']:.0f}",
            *(f"{median[stage]:.1f}" for stage in STAGES), f"{median['total']:.1f}",
            f"{median['peak_mb']:.0f}",
        ])
    print(f"\n### Identification against the number of agents ({args.seeds} seed(s), {ID_ENVS} envs, "
          f"12,800 frames, median seconds, torch threads {args.threads})\n")
    print(markdown_table(["agents", "K found", "ARI 1 / seeds", "candidates scored", "collect s",
                          "fit s", "choose K s", "total s", "peak memory MB"], rows))
    low, high = args.fit_range
    fitted = sorted(n for n in medians if low <= n <= high)
    if len(fitted) >= 2:
        print(f"\nExponent of seconds against N over N = {fitted[0]}..{fitted[-1]}: " + ", ".join(
            f"{stage} {exponent(fitted, [medians[n][stage] for n in fitted]):.2f}"
            for stage in [*STAGES, "total"]) + " (choose K is the 'cluster' stage)")
    if args.plot:
        _plot(medians, fitted, args.plot)


def _plot(medians: dict[int, dict], fitted: list[int], path: str) -> None:
    """Each stage's median seconds against N (log-log), with its exponent over ``fitted``."""
    import matplotlib.pyplot as plt

    agents = sorted(medians)
    fig, ax = plt.subplots(figsize=(6, 5))
    for stage, label in zip(STAGES, ["collect (the env)", "fit", "choose K"]):
        slope = exponent(fitted, [medians[n][stage] for n in fitted])
        ax.loglog(agents, [medians[n][stage] for n in agents], "o-",
                  label=f"{label}: exponent {slope:.2f} over N = {fitted[0]}..{fitted[-1]}")
    ax.axvspan(fitted[0], fitted[-1], color="0.92", zorder=0)
    ax.set_xlabel("agents (three colours; shaded: the range of the fitted exponents)")
    ax.set_ylabel("seconds (median over seeds)")
    ax.set_title("Identification cost against team size")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"\nplot: {path}")


def training_part(args: argparse.Namespace, argv: list[str]) -> None:
    rows = []
    for n_agents in args.train_agents:
        runs = {method: [] for method in args.methods}
        for _, method in itertools.product(range(args.rounds), args.methods):
            runs[method].append(_run_child(argv, ["train", str(n_agents), method]))
            print(f"train {n_agents} {method}: {runs[method][-1]['agent_steps_per_s']:.0f} "
                  "agent-steps/s", file=sys.stderr, flush=True)
        fups = statistics.median(r["agent_steps_per_s"] for r in runs["fups"]) if "fups" in runs else None
        for method, results in runs.items():
            speed = statistics.median(r["agent_steps_per_s"] for r in results)
            rows.append([
                n_agents, method, results[0]["n_groups"], f"{speed:,.0f}",
                f"{speed / fups:.2f}" if fups else "",
                f"{statistics.median(r['peak_mb'] for r in results):.0f}",
                f"{results[0]['parameters']:,}",
            ])
    print(f"\n### Training against the number of agents ({args.num_envs} envs x {args.rollout_steps} "
          f"steps per iteration, {args.algorithm.upper()}, median of {args.rounds} round(s) of "
          f"{args.iterations} timed iterations, device {resolve_device(args.device)}, torch "
          f"threads {args.threads})\n")
    print(markdown_table(["agents", "method", "groups", "agent-steps/s", "relative to fups",
                          "peak memory MB", "parameters"], rows))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--part", choices=("identification", "training", "both"), default="both")
    parser.add_argument("--agents", type=int, nargs="+", default=[15, 30, 60, 120, 240, 480, 960],
                        help="identification: agents, three colours of agents / 3")
    parser.add_argument("--seeds", type=int, default=1, help="identification seeds per size")
    parser.add_argument("--large", action=argparse.BooleanOptionalAction, default=True,
                        help=f"identification: also the 1,000-agent preset {LARGE_PRESET}")
    parser.add_argument("--fit-range", type=int, nargs=2, default=[60, 480],
                        help="agents over which the exponents are fitted")
    parser.add_argument("--plot", default=None, help="file for the identification plot")
    parser.add_argument("--train-agents", type=int, nargs="+", default=[15, 60, 240, 960],
                        help="training: agents, three colours of agents / 3")
    parser.add_argument("--methods", nargs="+", default=["nops", "fups", "seps"],
                        choices=["nops", "fups", "fups_id", "seps", "oracle"])
    parser.add_argument("--rounds", type=int, default=2, help="training rounds (methods alternate)")
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations per run")
    add_arguments(parser, TrainerConfig, SHARED)
    add_arguments(parser, SweepConfig, ["threads"])
    parser.set_defaults(threads=1)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    for name in ("agents", "train_agents"):
        if any(n < 3 or n % 3 for n in getattr(args, name)):
            parser.error(f"--{name.replace('_', '-')} must be multiples of 3 (three colours), "
                         f"got {getattr(args, name)}")
    torch.set_num_threads(args.threads)
    if args.child:
        kind, first, second = args.child
        if kind == "identify":
            out = identify_child(int(first) or None, int(second))
        else:
            n_agents = int(first)
            config = from_args(TrainerConfig, args, preset="bps-1", group_sizes=list(_groups(n_agents)),
                               id_policy="random", frames=10**12, eval_envs=2)
            out = train_child(n_agents, second, config, args.iterations)
        print(json.dumps(out))
        return
    print(f"torch {torch.__version__}, {args.threads} thread(s)", file=sys.stderr)
    if args.part in ("identification", "both"):
        identification_part(args, argv)
    if args.part in ("training", "both"):
        training_part(args, argv)


if __name__ == "__main__":
    main()
