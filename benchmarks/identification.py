"""How well and how fast ``identify_groups`` finds the hidden agent types of our presets.

For every preset and seed, the script builds ``make_env(preset, num_envs=64, seed=seed)``, runs
``identify_groups`` at its defaults (random policy, automatic K) and compares the groups with
``agent_types(env)``. It prints three tables:

1. per preset: in how many seeds the groups equal the true types (adjusted Rand index 1.0; for
   the homogeneous controls, one group), the K found, the range over seeds of the largest
   pairwise separation (the K = 1 test returns one group below 20), how often the same
   embeddings clustered with Davies-Bouldin (the SePS authors' criterion) instead of the
   silhouette would be correct, and the median seconds per stage;
2. end-to-end seconds on bps-2 (30 agents) at the default budget;
3. ARI against the number of frames collected, on bps-2 and bps-4.

Run ``python benchmarks/identification.py`` (about 20 minutes on 2 CPU cores);
``--quick`` runs 2 seeds and a short frames sweep. ``--threads`` sets torch's intra-op threads
(1 by default: on a busy 2-core machine two threads per process oversubscribe the cores).
"""
from __future__ import annotations

import argparse
import collections
import inspect
import statistics
import sys
import time

import torch

from torchrl_seps import identify_groups
from torchrl_seps.clustering import AgentClustering, adjusted_rand_index
from torchrl_seps.scenarios import agent_types, make_env

PRESETS = [
    "bps-1", "bps-2", "bps-3", "bps-4", "bps-5", "bps-6",
    "rotnav-2x4", "rotnav-4x5",
    "bps-homogeneous", "rotnav-homogeneous",
]
NUM_ENVS = 64
FRAMES_SWEEP = [1_600, 3_200, 6_400, 12_800, 25_600]
SWEEP_PRESETS = ["bps-2", "bps-4"]


def run(preset: str, seed: int, **kwargs) -> dict:
    env = make_env(preset, num_envs=NUM_ENVS, seed=seed)
    types = agent_types(env)
    start = time.perf_counter()
    result = identify_groups(env, seed=seed, **kwargs)
    total = time.perf_counter() - start
    env.close()
    homogeneous = int(types.max()) == 0
    ari = adjusted_rand_index(types, result.groups)
    # The same embeddings clustered with the SePS authors' criterion, for comparison.
    db = AgentClustering(criterion="davies_bouldin", random_state=seed)
    db_groups = db.fit_predict(result.embeddings, result.scales)
    db_correct = db.n_groups_ == 1 if homogeneous else adjusted_rand_index(types, db_groups) == 1.0
    row = {
        "preset": preset,
        "seed": seed,
        "k": result.n_groups,
        "ari": ari,
        "correct": result.n_groups == 1 if homogeneous else ari == 1.0,
        "db_correct": db_correct,
        "decision": result.decision,
        "separation": float(result.clustering.separation_.max()),
        "total": total,
        "frames": result.frames,
        **result.timings,
    }
    print(
        f"  {preset} seed {seed}: K={row['k']} ({row['decision']}) ARI {ari:.3f} "
        f"total {total:.1f}s ({', '.join(f'{k} {v:.1f}s' for k, v in result.timings.items())})",
        file=sys.stderr,
        flush=True,
    )
    return row


def k_summary(ks: list[int]) -> str:
    counts = collections.Counter(ks)
    return ", ".join(f"{k} ({n}x)" if len(counts) > 1 else str(k) for k, n in sorted(counts.items()))


def preset_table(rows: list[dict]) -> str:
    lines = [
        "| preset | agents | true K | correct / seeds | K found | largest separation "
        "| correct with Davies-Bouldin | collect s | fit s | cluster s | total s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for preset in dict.fromkeys(r["preset"] for r in rows):
        group = [r for r in rows if r["preset"] == preset]
        env = make_env(preset, num_envs=1)
        types = agent_types(env)
        env.close()
        med = {key: statistics.median(r[key] for r in group) for key in ["collect", "fit", "cluster", "total"]}
        lines.append(
            f"| {preset} | {types.numel()} | {int(types.max()) + 1} | "
            f"{sum(r['correct'] for r in group)} / {len(group)} | {k_summary([r['k'] for r in group])} | "
            f"{min(r['separation'] for r in group):.3g} - {max(r['separation'] for r in group):.3g} | "
            f"{sum(r['db_correct'] for r in group)} / {len(group)} | "
            f"{med['collect']:.1f} | {med['fit']:.1f} | {med['cluster']:.1f} | {med['total']:.1f} |"
        )
    return "\n".join(lines)


def sweep_table(rows: list[dict]) -> str:
    lines = [
        "| preset | frames | updates | ARI = 1 / seeds | mean ARI | K found | total s |",
        "|---|---|---|---|---|---|---|",
    ]
    for (preset, frames), group in groupby(rows, lambda r: (r["preset"], r["frames"])).items():
        defaults = inspect.signature(identify_groups).parameters
        updates = defaults["epochs"].default * (frames // defaults["batch_size"].default)
        lines.append(
            f"| {preset} | {frames} | {updates} | {sum(r['ari'] == 1.0 for r in group)} / {len(group)} | "
            f"{statistics.mean(r['ari'] for r in group):.2f} | {k_summary([r['k'] for r in group])} | "
            f"{statistics.median(r['total'] for r in group):.1f} |"
        )
    return "\n".join(lines)


def groupby(rows, key):
    out = collections.defaultdict(list)
    for row in rows:
        out[key(row)].append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--presets", nargs="*", default=PRESETS)
    parser.add_argument("--sweep-seeds", type=int, default=5)
    parser.add_argument("--frames", nargs="*", type=int, default=FRAMES_SWEEP)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="2 seeds, 3 frame budgets")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.sweep_seeds, args.frames = 2, 2, [1_600, 6_400, 12_800]
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {NUM_ENVS} envs", file=sys.stderr)

    rows = [run(p, s) for p in args.presets for s in range(args.seeds)]
    print(f"### Automatic K at the defaults ({args.seeds} seeds, {NUM_ENVS} envs)\n")
    print(preset_table(rows))

    bps2 = [r for r in rows if r["preset"] == "bps-2"]
    if bps2:
        totals = [r["total"] for r in bps2]
        print("\n### bps-2 end to end at the default budget (collect + fit + cluster)\n")
        print("| frames | threads | runs | median s | max s |\n|---|---|---|---|---|")
        print(
            f"| {bps2[0]['frames']} | {args.threads} | {len(totals)} | "
            f"{statistics.median(totals):.1f} | {max(totals):.1f} |"
        )

    if not args.frames:
        return
    sweep = [
        run(p, s, frames=f)
        for p in SWEEP_PRESETS
        for f in args.frames
        for s in range(args.sweep_seeds)
    ]
    print(f"\n### ARI against frames collected ({args.sweep_seeds} seeds, epochs fixed at 16)\n")
    print(sweep_table(sweep))


if __name__ == "__main__":
    main()
