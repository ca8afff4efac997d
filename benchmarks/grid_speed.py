"""Grid-world speed: our batched torch envs against their reference packages.

For every preset and number of environments, uniformly random actions:

- ``make_env step loop``: ``make_env(name, n)``, i.e. :class:`LevelBasedForaging` or
  :class:`ColouredWarehouse` with the ``StepCounter`` and ``RewardSum`` transforms, as users
  get it, stepped as a collector steps it: ``env.step_and_maybe_reset(td)`` in a loop,
  keeping nothing, with random actions drawn before the clock starts (as the reference's are);
- ``make_env rollout``: ``make_env(name, n).rollout(steps)``, the same steps with TorchRL's
  random policy drawing the actions, and the trajectory stacked into one TensorDict at the end
  (a copy of every observation, which at 1024 envs costs about as much as the steps
  themselves);
- ``reference, serial loop``: ``n`` copies of the reference stepped one after the other in a
  Python loop, with a reset whenever an episode ends: ``lbforaging``'s ``ForagingEnv`` for the
  ``lbf-`` presets (same settings: hidden fixed levels expressed as ``min_player_level =
  max_player_level``, ``observe_agent_levels=False``), ``rware``'s ``Warehouse`` for the
  ``crware-`` presets (same layout, agents and request queue; ``rware`` has no colours). It
  runs one env at a time, so its rate does not depend on ``n``; TorchRL's ``ParallelEnv``
  could at most multiply it by the number of cores (2 here).

An env-step is one step of one environment (all agents). Each cell is the median over
``--rounds`` interleaved rounds; a round of our env is ``--steps`` steps of all ``n`` envs,
one of the reference is ``--ref-steps`` env-steps in total. The ratios divide each of our
columns by the reference's.

    python benchmarks/grid_speed.py --presets lbf-8x8-3p-2f  # at 1, 64, 1024 envs
    python benchmarks/grid_speed.py --threads 1               # the crware- presets
    python benchmarks/grid_speed.py --device cuda --num-envs 1024 16384
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from experiments.config import SweepConfig, add_arguments
from experiments.reporting import markdown_header, markdown_row
from experiments.timing import device_label, timed
from torchrl_seps.scenarios import PRESETS, ColouredWarehouse, LevelBasedForaging, make_env

PRESETS_DEFAULT = ["crware-tiny-4ag", "crware-small-8ag", "crware-medium-16ag"]


def _foraging(kw: dict, max_steps: int):
    from lbforaging.foraging.environment import ForagingEnv

    levels = list(kw["levels"])
    return ForagingEnv(
        players=kw["players"], min_player_level=levels, max_player_level=levels,
        min_food_level=1, max_food_level=None, field_size=(kw["field_size"],) * 2,
        max_num_food=kw["max_num_food"], sight=kw["field_size"], max_episode_steps=max_steps,
        force_coop=kw["force_coop"], observe_agent_levels=False,
    )


def _warehouse(kw: dict, max_steps: int):
    from rware.warehouse import RewardType, Warehouse

    return Warehouse(
        shelf_columns=kw["shelf_columns"], column_height=8, shelf_rows=kw["shelf_rows"],
        n_agents=kw["n_agents"], msg_bits=0, sensor_range=1,
        request_queue_size=kw["request_queue_size"] or kw["n_agents"], max_inactivity_steps=None,
        max_steps=max_steps, reward_type=RewardType.INDIVIDUAL,
    )


REFERENCES = {LevelBasedForaging: ("lbforaging", _foraging), ColouredWarehouse: ("rware", _warehouse)}


def reference_envs(name: str, num_envs: int, seed: int = 0) -> list:
    preset = PRESETS[name]
    _, build = REFERENCES[preset.scenario]
    envs = []
    for e in range(num_envs):
        env = build(preset.kwargs, preset.max_steps)
        env.reset(seed=seed + e)
        envs.append(env)
    return envs


def time_reference(envs: list, total_steps: int, n_actions: int, rng: np.random.Generator) -> float:
    """Seconds for ``total_steps`` env-steps, cycling through ``envs``."""
    n_agents = envs[0].n_agents
    actions = rng.integers(0, n_actions, size=(total_steps, n_agents)).tolist()
    start = time.perf_counter()
    for t in range(total_steps):
        env = envs[t % len(envs)]
        _, _, done, _, _ = env.step(actions[t])
        if done:
            env.reset()
    return time.perf_counter() - start


def step_loop(env, actions: list) -> None:
    """Steps of ``env`` with the joint actions ``actions`` (TensorDicts), as a collector takes
    them, keeping nothing."""
    td = env.reset()
    for action in actions:
        _, td = env.step_and_maybe_reset(td.update(action))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=PRESETS_DEFAULT)
    parser.add_argument("--num-envs", nargs="+", type=int, default=[1, 64, 1024])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--ref-steps", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    add_arguments(parser, SweepConfig, ["threads"])
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    from importlib.metadata import version

    packages = sorted({REFERENCES[PRESETS[name].scenario][0] for name in args.presets})
    print(f"# env-steps/s, median of {args.rounds} rounds, random actions ({device_label(device)})")
    print(f"# torch {torch.__version__}, " + ", ".join(f"{p} {version(p)}" for p in packages))
    print(markdown_header([
        "preset", "agents", "envs", "make_env step loop", "make_env rollout", "reference, serial loop",
        "ratio, step loop", "ratio, rollout",
    ]), flush=True)
    rng = np.random.default_rng(0)
    for name in args.presets:
        for num_envs in args.num_envs:
            env = make_env(name, num_envs, device=device, seed=0)
            n_agents, n_actions = env.base_env.n_agents, env.base_env.n_actions
            env.rollout(3)
            refs = reference_envs(name, num_envs)
            loop, rollout, theirs = [], [], []
            for _ in range(args.rounds):
                frames = num_envs * args.steps
                actions = [env.full_action_spec.rand() for _ in range(args.steps)]
                loop.append(frames / timed(lambda: step_loop(env, actions), device))
                rollout.append(frames / timed(lambda: env.rollout(args.steps, break_when_any_done=False), device))
                theirs.append(args.ref_steps / time_reference(refs, args.ref_steps, n_actions, rng))
            a, b, c = (statistics.median(x) for x in (loop, rollout, theirs))
            print(markdown_row([
                name, n_agents, num_envs, f"{a / 1e3:.1f}k", f"{b / 1e3:.1f}k", f"{c / 1e3:.1f}k",
                f"{a / c:.1f}x", f"{b / c:.1f}x",
            ]), flush=True)


if __name__ == "__main__":
    main()
