"""What the grid worlds' action check costs in the step loop.

Every step of ``LevelBasedForaging`` and ``ColouredWarehouse`` checks its actions (range,
integer values, one-hot rows) before acting on them. This script times the step loop of
``benchmarks/grid_speed.py`` with the check and with a plain conversion (the same actions cast
to integers, unchecked), alternating the two in paired rounds in one process, and prints the
median over rounds of the checked loop's extra time::

    python benchmarks/action_check_cost.py --rounds 30
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from grid_speed import step_loop

from torchrl_seps.scenarios import make_env
from torchrl_seps.scenarios._grid import GridWorld


def unchecked_actions(self: GridWorld, tensordict) -> torch.Tensor:
    """The joint action as integers, with no check: the conversion alone."""
    action = tensordict.get(("agents", "action")).to(self.device)
    if not self.categorical_actions:
        action = action.long().argmax(-1)
    return action.long().reshape(self.num_envs, self.n_agents)


def paired_overhead(preset: str, num_envs: int, steps: int, rounds: int) -> tuple[float, float, float]:
    """Checked and unchecked env-steps/s (medians) and the median paired overhead in %."""
    env = make_env(preset, num_envs=num_envs, seed=0)
    actions = [env.full_action_spec.rand() for _ in range(steps)]
    checked, times = GridWorld._actions, {"checked": [], "unchecked": []}
    try:
        for r in range(rounds):
            order = [("checked", checked), ("unchecked", unchecked_actions)]
            for label, convert in order[:: 1 if r % 2 else -1]:
                GridWorld._actions = convert
                start = time.perf_counter()
                step_loop(env, actions)
                times[label].append(time.perf_counter() - start)
    finally:
        GridWorld._actions = checked
        env.close()
    overhead = statistics.median(c / u - 1 for c, u in zip(times["checked"], times["unchecked"]))
    speed = {label: steps * num_envs / statistics.median(t) for label, t in times.items()}
    return speed["checked"], speed["unchecked"], 100 * overhead


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["lbf-8x8-3p-2f", "crware-tiny-4ag"])
    parser.add_argument("--num-envs", nargs="+", type=int, default=[64, 1024])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.rounds} paired rounds of {args.steps} steps, torch threads {args.threads}\n")
    print("| preset | envs | env-steps/s checked | env-steps/s unchecked | check's cost (median paired) |")
    print("|---|---|---|---|---|")
    for preset in args.presets:
        for num_envs in args.num_envs:
            checked, unchecked, overhead = paired_overhead(preset, num_envs, args.steps, args.rounds)
            print(f"| {preset} | {num_envs} | {checked / 1e3:.1f}k | {unchecked / 1e3:.1f}k | {overhead:+.1f}% |",
                  flush=True)


if __name__ == "__main__":
    main()
