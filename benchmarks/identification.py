"""How well and how fast ``identify_groups`` finds which agents should share, on our presets and
on VMAS's own scenarios (the zoo), whose truth is known without our code.

For every task and seed, the script builds the env with 64 vectorised copies, runs
``identify_groups`` at its defaults (random policy, K chosen on held-out trajectories) and
compares the groups with the truth:

- our presets: the hidden types, ``agent_types(env)``;
- the zoo's exchangeable scenarios (same body, same kind of goal, same reward for every agent):
  one group;
- the zoo's ``het_mass`` (VMAS debug scenario): two agents whose bodies differ in mass (4 and 2,
  each +-1 per episode), so two groups; ``vel_control`` (VMAS debug scenario): three agents
  whose bodies differ (force limited to 1.1, acceleration limited to 1, force limited to 30),
  so three groups.

It prints one table per suite: in how many seeds the result is right (one group for the
exchangeable tasks, ARI 1 against the types otherwise), the K found, how often the
silhouette over 2..N-1 on the same embeddings (the embedding-only rule, which cannot return
1 or N) would be right, and median seconds per stage. ``--sweep`` adds ARI against the frames
collected on bps-2 and bps-4.

Run ``python benchmarks/identification.py`` (about 30 minutes on 2 CPU cores), ``--suite zoo``
for VMAS's scenarios only, ``--suite lbf`` for the level-based foraging presets, ``--suite crware``
for the coloured warehouse presets, ``--seeds 2`` for a quick look, ``--frames`` for more (or
fewer) random-policy frames per identification. ``--threads`` sets torch's
intra-op threads (1 by default: on a busy 2-core machine two threads per process oversubscribe
the cores).
"""
from __future__ import annotations

import argparse
import collections
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from tensordict.utils import NestedKey
from torchrl.envs import EnvBase, SerialEnv, StepCounter, Transform, TransformedEnv
from torchrl.envs.libs.vmas import VmasEnv

from experiments.config import SweepConfig, add_arguments
from experiments.reporting import markdown_table
from torchrl_seps import identify_groups
from torchrl_seps.clustering import AgentClustering, adjusted_rand_index
from torchrl_seps.scenarios import agent_types, make_env
from torchrl_seps.scenarios.presets import VMAS_MAX_STEPS


@dataclass(frozen=True)
class Task:
    """An env to identify, and the grouping that is right for it."""

    label: str
    env: str
    kwargs: dict = field(default_factory=dict)
    truth: tuple[int, ...] | None = None  # None: the preset's hidden types
    why: str = ""
    group: str | None = None  # the env's agent group to identify; None: its only group
    build: Callable[[int, int], EnvBase] | None = None  # (num_envs, seed) -> env; None: make_env

    def make(self, num_envs: int, seed: int) -> EnvBase:
        if self.build is not None:
            return self.build(num_envs, seed)
        return make_env(self.env, num_envs=num_envs, seed=seed, **self.kwargs)


class PerAgentActions(Transform):
    """Each agent's action passes through its own map before it reaches the env.

    ``maps`` is either an integer table ``[n_agents, n_actions]`` (discrete actions: agent ``i``'s
    action ``a`` is sent as ``maps[i, a]``) or a float tensor ``[n_agents, d, d]`` (continuous
    actions: agent ``i``'s ``u`` is sent as ``maps[i] @ u``). Rollouts keep the actions the
    policy chose, so the agents' types live in the env, unobserved.
    """

    def __init__(self, maps: torch.Tensor, action_key: NestedKey = ("agents", "action")) -> None:
        super().__init__(in_keys_inv=[action_key], out_keys_inv=[action_key])
        self.register_buffer("maps", maps)

    def _inv_apply_transform(self, action: torch.Tensor) -> torch.Tensor:
        agents = torch.arange(self.maps.shape[0], device=action.device)
        if self.maps.is_floating_point():
            return torch.einsum("nij,...nj->...ni", self.maps, action)
        return self.maps[agents, action]


# moves of PettingZoo's MPE (no-op, -x, +x, -y, +y) negated, and rotated by 90 degrees
MPE_NEGATED = torch.tensor([0, 2, 1, 4, 3])
MPE_ROTATED = torch.tensor([0, 3, 4, 2, 1])


def _vmas_discrete(rotation: int) -> torch.Tensor:
    """VMAS's 9 discrete moves (x and y each stay, -, +; flat index 3 x + y) rotated by
    ``rotation`` quarter turns: (x, y) -> (-y, x) per quarter."""
    negate = torch.tensor([0, 2, 1])
    x, y = torch.arange(9) // 3, torch.arange(9) % 3
    for _ in range(rotation):
        x, y = negate[y], x
    return 3 * x + y


def _halves(n_agents: int, changed: torch.Tensor, unchanged: torch.Tensor) -> torch.Tensor:
    """The first half of the agents keep ``unchanged``, the second half get ``changed``."""
    return torch.stack([unchanged] * (n_agents // 2) + [changed] * (n_agents - n_agents // 2))


def mpe_spread(kind: str, n_agents: int = 4) -> Callable[[int, int], EnvBase]:
    """PettingZoo's MPE ``simple_spread_v3`` (package ``mpe2``) through TorchRL's
    ``PettingZooWrapper``, batched by a ``SerialEnv``, the second half of the agents with
    negated or rotated moves (``kind``), or none (``"same"``)."""

    def build(num_envs: int, seed: int) -> EnvBase:
        from mpe2 import simple_spread_v3
        from torchrl.envs.libs.pettingzoo import PettingZooWrapper

        def one() -> EnvBase:
            return PettingZooWrapper(
                simple_spread_v3.parallel_env(N=n_agents, max_cycles=25, continuous_actions=False),
                categorical_actions=True,
                group_map=None,
            )

        changed = {"negated": MPE_NEGATED, "rotated": MPE_ROTATED, "same": torch.arange(5)}[kind]
        env = TransformedEnv(
            SerialEnv(min(num_envs, 16), one),
            PerAgentActions(_halves(n_agents, changed, torch.arange(5)), ("agent", "action")),
        )
        env.set_seed(seed)
        return env

    return build


def balance_shuffled_spawns(num_envs: int, seed: int) -> EnvBase:
    """VMAS's ``balance`` (3 agents) with the agents' spawn places under the line shuffled in
    every episode: VMAS puts agent i at the i-th place, always."""
    from vmas.scenarios.balance import Scenario

    class ShuffledSpawns(Scenario):
        def reset_world_at(self, env_index: int | None = None) -> None:
            super().reset_world_at(env_index)
            places = torch.stack([agent.state.pos.clone() for agent in self.world.agents])
            order = torch.rand(places.shape[:2], device=places.device).argsort(0)  # per env
            places = places.gather(0, order.unsqueeze(-1).expand_as(places))
            for agent, place in zip(self.world.agents, places):
                agent.set_pos(place if env_index is None else place[env_index], batch_index=env_index)

    base = VmasEnv(ShuffledSpawns(), num_envs=num_envs, seed=seed, n_agents=3,
                   continuous_actions=False, categorical_actions=True)
    return TransformedEnv(base, StepCounter(max_steps=VMAS_MAX_STEPS))  # as make_env("balance")


def vmas_navigation(kind: str, n_agents: int = 4) -> Callable[[int, int], EnvBase]:
    """VMAS's own ``navigation`` (discrete moves), the second half of the agents with negated
    or rotated moves (``kind``), or none (``"same"``)."""

    def build(num_envs: int, seed: int) -> EnvBase:
        changed = _vmas_discrete({"negated": 2, "rotated": 1, "same": 0}[kind])
        env = make_env("navigation", num_envs=num_envs, seed=seed, n_agents=n_agents)
        env.append_transform(PerAgentActions(_halves(n_agents, changed, torch.arange(9))))
        return env

    return build


PRESETS = [
    Task(name, name)
    for name in ["bps-1", "bps-2", "bps-3", "bps-4", "bps-5", "bps-6", "rotnav-2x4", "rotnav-4x5",
                 "bps-homogeneous", "rotnav-homogeneous"]
]


def _exchangeable(label: str, env: str, n_agents: int, why: str, group: str | None = None, **kwargs) -> Task:
    return Task(label, env, {"n_agents": n_agents, **kwargs}, (0,) * n_agents, why, group)


ZOO = [
    _exchangeable("navigation-4", "navigation", 4, "same body; each agent its own random goal, same reward rule"),
    _exchangeable("navigation-8", "navigation", 8, "as navigation-4, 8 agents"),
    _exchangeable("flocking-6", "flocking", 6, "same body; one shared target, same flocking reward"),
    _exchangeable("sampling-4", "sampling", 4, "same body; one shared field to sample, shared reward"),
    _exchangeable("dispersion-4", "dispersion", 4, "same body; any agent may eat any food, same reward"),
    _exchangeable("simple_spread-3", "simple_spread", 3, "MPE: same body; landmarks covered by any agent, shared reward"),
    _exchangeable("discovery-5", "discovery", 5, "same body; targets found by any agent, same reward rule"),
    _exchangeable("balance-3", "balance", 3, "same body; all lift one package, shared reward"),
    Task("balance-3-shuffled-spawns", "balance", {}, (0, 0, 0),
         "as balance-3, the agents' spawn places under the line shuffled every episode",
         build=balance_shuffled_spawns),
    Task("simple_tag-adversaries", "simple_tag", {}, (0, 0, 0),
         "MPE: the 3 chasers (TorchRL group 'adversary') share body and reward", "adversary"),
    _exchangeable("transport-4", "transport", 4, "same body; all push one package to one goal, shared reward"),
    _exchangeable("wheel-4", "wheel", 4, "same body; all turn one wheel, shared reward"),
    _exchangeable("navigation-4-continuous", "navigation", 4, "as navigation-4, VMAS's continuous actions",
                  continuous_actions=True),
    _exchangeable("navigation-2", "navigation", 2, "small team"),
    _exchangeable("navigation-3", "navigation", 3, "small team"),
    Task("het_mass", "het_mass", {}, (0, 1), "two bodies of different mass (4 and 2, each +-1 per episode)"),
    Task("het_mass-continuous", "het_mass", {"continuous_actions": True}, (0, 1), "as het_mass, continuous actions"),
    Task("vel_control", "vel_control", {}, (0, 1, 2),
         "three bodies behind one velocity controller: force limit 1.1, acceleration limit 1, force limit 30"),
]
# Agents whose moves a wrapper negates or rotates, on two particle envs we did not write
CONTROLS = [
    Task(f"{env}-{kind}", env, {}, (0, 0, 1, 1) if kind != "same" else (0, 0, 0, 0),
         f"{why}; moves of agents 2, 3 {kind if kind != 'same' else 'unchanged (control)'}",
         build=build(kind))
    for env, build, why in [
        ("mpe-simple_spread-4", mpe_spread, "PettingZoo MPE through PettingZooWrapper: the moves show "
         "in 2 of 24 entries (the velocity), as position integrates the previous velocity"),
        ("vmas-navigation-4", vmas_navigation, "VMAS navigation, 9 discrete moves"),
    ]
    for kind in ["negated", "rotated", "same"]
]
# Level-based foraging with hidden fixed levels (types = levels), and its all-level-1 control
LBF = [Task(name, name) for name in ["lbf-8x8-3p-2f", "lbf-10x10-6p-3f", "lbf-15x15-9p-4f",
                                     "lbf-8x8-3p-2f-coop", "lbf-10x10-6p-3f-homogeneous"]]
# Coloured warehouse: colours differ in rewarded shelves and in rotated actions; one-colour control
CRWARE = [Task(name, name) for name in ["crware-tiny-4ag", "crware-small-8ag", "crware-tiny-4ag-1colour"]]
SUITES = {"presets": PRESETS, "zoo": ZOO, "controls": CONTROLS, "lbf": LBF, "crware": CRWARE,
          "all": PRESETS + ZOO + CONTROLS}
NUM_ENVS = 64
FRAMES_SWEEP = [1_600, 3_200, 6_400, 12_800, 25_600]
SWEEP_PRESETS = ["bps-2", "bps-4"]


def run(task: Task, seed: int, plots: str | None = None, **kwargs) -> dict:
    env = task.make(NUM_ENVS, seed)
    truth = agent_types(env) if task.truth is None else torch.tensor(task.truth)
    start = time.perf_counter()
    result = identify_groups(env, seed=seed, group=task.group, **kwargs)
    total = time.perf_counter() - start
    env.close()
    if plots is not None:
        result.plot(f"{plots}/{task.label}_seed{seed}.png", types=truth)
    n_types = int(truth.max()) + 1
    row = {
        "task": task.label,
        "agents": truth.numel(),
        "true_k": n_types,
        "seed": seed,
        "k": result.n_groups,
        "ari": adjusted_rand_index(truth, result.groups),
        "correct": _correct(truth, result.groups),
        "silhouette_correct": _silhouette_correct(truth, result.embeddings, seed),
        "best_k": result.evidence.best_k if result.evidence else None,
        "total": total,
        "frames": result.frames,
        **result.timings,
    }
    print(
        f"  {task.label} seed {seed}: K={row['k']} (best {row['best_k']}) ARI {row['ari']:.3f} "
        f"total {total:.1f}s ({', '.join(f'{k} {v:.1f}s' for k, v in result.timings.items())})",
        file=sys.stderr,
        flush=True,
    )
    return row


def _correct(truth: torch.Tensor, groups) -> bool:
    """One group for one type; otherwise the same partition as the types."""
    if int(truth.max()) == 0:
        return int(torch.as_tensor(groups).max()) == 0
    return adjusted_rand_index(truth, groups) == 1.0


def _silhouette_correct(truth: torch.Tensor, embeddings: torch.Tensor, seed: int) -> bool:
    if truth.numel() < 3:
        return False  # the embedding-only rule refuses fewer than three agents
    return _correct(truth, AgentClustering(random_state=seed).fit_predict(embeddings))


def k_summary(ks: list) -> str:
    counts = collections.Counter(ks)
    return ", ".join(f"{k} ({n}x)" if len(counts) > 1 else str(k) for k, n in sorted(counts.items()))


def task_table(rows: list[dict]) -> str:
    header = ["task", "agents", "true K", "correct / seeds", "K found", "best K on held-out",
              "correct with silhouette (2..N-1)", "collect s", "fit s", "cluster s", "total s"]
    lines = []
    for label, group in groupby(rows, lambda r: r["task"]).items():
        med = {key: statistics.median(r[key] for r in group) for key in ["collect", "fit", "cluster", "total"]}
        first = group[0]
        lines.append([
            label, first["agents"], first["true_k"],
            f"{sum(r['correct'] for r in group)} / {len(group)}", k_summary([r["k"] for r in group]),
            k_summary([r["best_k"] for r in group]),
            f"{sum(r['silhouette_correct'] for r in group)} / {len(group)}",
            f"{med['collect']:.1f}", f"{med['fit']:.1f}", f"{med['cluster']:.1f}", f"{med['total']:.1f}",
        ])
    return markdown_table(header, lines)


def sweep_table(rows: list[dict]) -> str:
    lines = []
    for (label, frames), group in groupby(rows, lambda r: (r["task"], r["frames"])).items():
        lines.append([
            label, frames, f"{sum(r['ari'] == 1.0 for r in group)} / {len(group)}",
            f"{statistics.mean(r['ari'] for r in group):.2f}", k_summary([r["k"] for r in group]),
            f"{statistics.median(r['total'] for r in group):.1f}",
        ])
    return markdown_table(["preset", "frames", "ARI = 1 / seeds", "mean ARI", "K found", "total s"], lines)


def groupby(rows, key):
    out = collections.defaultdict(list)
    for row in rows:
        out[key(row)].append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--suite", choices=list(SUITES), default="all")
    parser.add_argument("--tasks", nargs="*", help="only these task labels")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--sweep", action="store_true", help="ARI against frames on bps-2, bps-4")
    parser.add_argument("--sweep-seeds", type=int, default=5)
    add_arguments(parser, SweepConfig, ["threads"])
    parser.set_defaults(threads=1)  # one per process: two oversubscribe a busy 2-core machine
    parser.add_argument("--plots", default=None, help="folder for every run's embeddings plot")
    parser.add_argument("--frames", type=int, default=12_800,
                        help="random-policy frames each identification collects (identify_groups' default)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {NUM_ENVS} envs", file=sys.stderr)

    tasks = [t for t in SUITES[args.suite] if not args.tasks or t.label in args.tasks]
    if args.plots is not None:
        import pathlib

        pathlib.Path(args.plots).mkdir(parents=True, exist_ok=True)
    rows = [run(task, seed, plots=args.plots, frames=args.frames) for task in tasks for seed in range(args.seeds)]
    for suite in ("presets", "zoo", "controls", "lbf", "crware"):
        suite_rows = [r for r in rows if r["task"] in {t.label for t in SUITES[suite]}]
        if suite_rows:
            print(f"\n### {suite}: automatic K, {args.frames:,} frames ({args.seeds} seeds, {NUM_ENVS} envs)\n")
            print(task_table(suite_rows))

    bps2 = [r for r in rows if r["task"] == "bps-2"]
    if bps2:
        totals = [r["total"] for r in bps2]
        print("\n### bps-2 end to end at the default budget (collect + fit + cluster)\n")
        print(markdown_table(["frames", "threads", "runs", "median s", "max s"], [[
            bps2[0]["frames"], args.threads, len(totals), f"{statistics.median(totals):.1f}",
            f"{max(totals):.1f}",
        ]]))

    if args.sweep:
        sweep = [run(Task(p, p), s, frames=f) for p in SWEEP_PRESETS for f in FRAMES_SWEEP
                 for s in range(args.sweep_seeds)]
        print(f"\n### ARI against frames collected ({args.sweep_seeds} seeds, epochs fixed at 16)\n")
        print(sweep_table(sweep))


if __name__ == "__main__":
    main()
