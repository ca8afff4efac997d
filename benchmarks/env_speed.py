"""Environment speed: env-steps per second of our presets, through TorchRL and raw VMAS.

For every preset and number of vectorised environments, four ways of stepping the same
scenario with uniformly random moves (the 5 discrete moves: no-op, -x, +x, -y, +y):

- ``make_env rollout``: ``make_env(name, n).rollout(steps)``, i.e. TorchRL's ``VmasEnv`` with
  the ``StepCounter``, discrete-action lookup and ``RewardSum`` transforms, what users get;
- ``VmasEnv rollout``: a bare ``VmasEnv`` over the same scenario with continuous actions
  (the 5 moves as forces) and VMAS's own time limit;
- ``VmasEnv, VMAS discrete``: the same with VMAS's own discrete actions (9 moves, converted
  agent by agent inside VMAS), which ``make_env`` replaces by one table lookup;
- ``raw vmas step``: ``vmas.make_env(...).step(actions)`` in a Python loop, no TorchRL.

An env-step is one step of one environment (all agents). Each cell is the median over
``--rounds`` interleaved rounds of ``--steps`` steps, episodes resetting every 50 steps.

    python benchmarks/env_speed.py                      # bps-1, bps-2 at 64, 600, 4096 envs
    python benchmarks/env_speed.py --threads 1          # on a CPU shared with other jobs
    python benchmarks/env_speed.py --device cuda --num-envs 4096 32768
"""
from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import torch
import vmas
from torchrl.envs.libs.vmas import VmasEnv

from experiments.config import SweepConfig, add_arguments
from experiments.reporting import markdown_header, markdown_row
from experiments.timing import device_label, timed
from torchrl_seps.devices import resolve_device
from torchrl_seps.scenarios import FIVE_MOVES, PRESETS, make_env
from torchrl_seps.training import TrainerConfig


def make_runners(name: str, num_envs: int, steps: int, device: torch.device) -> dict[str, Callable[[], None]]:
    """One callable per column; each runs ``steps`` env-steps of ``num_envs`` environments."""
    preset = PRESETS[name]
    kwargs = preset.scenario.validate_config(**preset.kwargs)
    max_steps = preset.max_steps

    env = make_env(name, num_envs, device=device, seed=0)
    env.rollout(3)

    bare = VmasEnv(
        preset.scenario(), num_envs=num_envs, device=device, continuous_actions=True,
        max_steps=max_steps, seed=0, **kwargs,
    )
    bare.rollout(3)
    bare_discrete = VmasEnv(
        preset.scenario(), num_envs=num_envs, device=device, continuous_actions=False,
        max_steps=max_steps, seed=0, **kwargs,
    )
    bare_discrete.rollout(3)
    moves = FIVE_MOVES.to(device)
    n_agents = sum(kwargs["groups"])

    def bare_policy(td):
        idx = torch.randint(0, len(moves), (num_envs, n_agents), device=device)
        td["agents", "action"] = moves[idx]
        return td

    raw = vmas.make_env(
        preset.scenario(), num_envs=num_envs, device=device, continuous_actions=True,
        max_steps=max_steps, seed=0, **kwargs,
    )

    def run_make_env() -> None:
        env.rollout(steps, break_when_any_done=False)

    def run_bare() -> None:
        bare.rollout(steps, policy=bare_policy, break_when_any_done=False)

    def run_bare_discrete() -> None:
        bare_discrete.rollout(steps, break_when_any_done=False)

    def run_raw() -> None:
        raw.reset()
        for t in range(steps):
            idx = torch.randint(0, len(moves), (n_agents, num_envs), device=device)
            raw.step(list(moves[idx]))
            if (t + 1) % max_steps == 0:
                raw.reset()

    return {
        "make_env rollout": run_make_env,
        "VmasEnv rollout": run_bare,
        "VmasEnv, VMAS discrete": run_bare_discrete,
        "raw vmas step": run_raw,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["bps-1", "bps-2"])
    parser.add_argument("--num-envs", nargs="+", type=int, default=[64, 600, 4096])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    add_arguments(parser, TrainerConfig, ["device"])
    add_arguments(parser, SweepConfig, ["threads"])
    args = parser.parse_args()
    device = resolve_device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    print(f"# env-steps/s, median of {args.rounds} rounds x {args.steps} steps, random moves "
          f"({device_label(device)})")
    print(f"# torch {torch.__version__}, vmas {vmas.__version__}")
    header = ["preset", "agents", "envs", "make_env rollout", "VmasEnv rollout", "VmasEnv, VMAS discrete", "raw vmas step"]
    print(markdown_header(header), flush=True)
    for name in args.presets:
        n_agents = sum(PRESETS[name].kwargs["groups"])
        for num_envs in args.num_envs:
            runners = make_runners(name, num_envs, args.steps, device)
            times: dict[str, list[float]] = {key: [] for key in runners}
            for _ in range(args.rounds):
                for key, run in runners.items():
                    times[key].append(timed(run, device))
            cells = [f"{num_envs * args.steps / statistics.median(t) / 1e3:.1f}k" for t in times.values()]
            print(markdown_row([name, n_agents, num_envs, *cells]), flush=True)


if __name__ == "__main__":
    main()
