"""Forward+backward cost of K parameter sets for N agents, against one shared MLP.

For every configuration (N agents, group sizes) the script times one forward and backward pass
of four networks on the same input, in interleaved rounds (so they share the machine's noise),
and reports the median time, the ratio to one shared MLP (the median over rounds of the ratio
measured within each round, which a busy machine's drift between rounds does not move), and the
peak memory of one pass:

- ``shared``: one plain ``nn.Sequential`` MLP applied to all agents (FuPS);
- ``torchrl_unshared``: TorchRL's ``MultiAgentMLP(share_params=False)`` (N parameter sets);
- ``grouped``: ``GroupedMultiAgentMLP`` with the configuration's groups;
- ``every_group``: every group's network on every agent, then each agent's output selected
  (the scheme of the original SePS code, K times the compute).

Peak memory is ``torch.cuda.max_memory_allocated`` on CUDA; on the CPU (Linux) it is the peak
resident set size of a fresh process during one pass, above its size just before the pass.

Run ``python benchmarks/grouped_mlp.py`` (``--device cuda`` on a GPU).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

import torch
from torch import nn
from torchrl.modules import MultiAgentMLP

from experiments.config import add_arguments
from experiments.reporting import markdown_header, markdown_row
from experiments.timing import device_label, peak_memory_mb, reset_peak_memory, timed
from torchrl_seps import GroupedMultiAgentMLP
from torchrl_seps.devices import resolve_device
from torchrl_seps.training import TrainerConfig

N_INPUTS, N_OUTPUTS, NUM_CELLS, DEPTH = 14, 5, 64, 2
CONFIGS = {  # name: group sizes, agents of a group adjacent unless "interleaved"
    "N=30 K=5 equal": [6] * 5,
    "N=30 K=5 interleaved": [6] * 5,
    "N=30 K=5 sizes 3,3,3,12,9": [3, 3, 3, 12, 9],
    "N=15 K=3 equal": [5] * 3,
    "N=30 K=30": [1] * 30,
}
METHODS = ["shared", "torchrl_unshared", "grouped", "every_group"]


def groups_of(config: str) -> list[int]:
    sizes = CONFIGS[config]
    if "interleaved" in config:
        return [agent % len(sizes) for agent in range(sum(sizes))]
    return [group for group, size in enumerate(sizes) for _ in range(size)]


class EveryGroupMLP(nn.Module):
    """K networks each run on all N agents; agent i then keeps network ``groups[i]``'s output."""

    def __init__(self, groups: list[int]):
        super().__init__()
        self.inner = GroupedMultiAgentMLP(  # only its K stacked parameter sets are used
            N_INPUTS, N_OUTPUTS, len(groups), groups=groups, centralized=False,
            depth=DEPTH, num_cells=NUM_CELLS,
        )
        self.register_buffer("agents", torch.arange(len(groups)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inner = self.inner
        weights = inner._stacked_weights()
        all_outputs = torch.stack(  # [K, *batch, N, out]
            [
                inner._call_group({name: w[g] for name, w in weights.items()}, x)
                for g in range(inner.n_groups)
            ]
        )
        return all_outputs[inner.groups, ..., self.agents, :].movedim(0, -2)


def build(method: str, config: str, device: torch.device) -> nn.Module:
    groups = groups_of(config)
    n_agents = len(groups)
    if method == "shared":
        net = nn.Sequential(
            nn.Linear(N_INPUTS, NUM_CELLS), nn.Tanh(),
            nn.Linear(NUM_CELLS, NUM_CELLS), nn.Tanh(),
            nn.Linear(NUM_CELLS, N_OUTPUTS),
        )
    elif method == "torchrl_unshared":
        net = MultiAgentMLP(
            N_INPUTS, N_OUTPUTS, n_agents, centralized=False, share_params=False,
            depth=DEPTH, num_cells=NUM_CELLS,
        )
    elif method == "grouped":
        net = GroupedMultiAgentMLP(
            N_INPUTS, N_OUTPUTS, n_agents, groups=groups, centralized=False,
            depth=DEPTH, num_cells=NUM_CELLS,
        )
    elif method == "every_group":
        net = EveryGroupMLP(groups)
    else:
        raise ValueError(f"unknown method {method!r}, expected one of {METHODS}")
    return net.to(device)


def step(net: nn.Module, x: torch.Tensor) -> None:
    net.zero_grad(set_to_none=True)
    net(x).sum().backward()


def time_methods(config: str, args, device: torch.device) -> dict[str, list[float]]:
    """Milliseconds of one forward+backward pass in every round, methods interleaved."""
    x = torch.randn(args.batch, len(groups_of(config)), N_INPUTS, device=device)
    nets = {method: build(method, config, device) for method in METHODS}
    for net in nets.values():
        for _ in range(3):
            step(net, x)
    samples: dict[str, list[float]] = {method: [] for method in METHODS}
    for _ in range(args.rounds):
        for method, net in nets.items():
            seconds = timed(lambda: [step(net, x) for _ in range(args.iters)], device)
            samples[method].append(seconds / args.iters * 1e3)
    return samples


def paired_ratio(samples: dict[str, list[float]], method: str, reference: str) -> float:
    """Median over rounds of ``method``'s time divided by ``reference``'s in the same round."""
    return statistics.median(a / b for a, b in zip(samples[method], samples[reference]))


def pass_memory_mb(method: str, config: str, args, device: torch.device) -> float:
    """Peak memory of one forward+backward pass (see the module docstring)."""
    if device.type == "cuda":
        return step_memory_mb(method, config, args.batch, device)
    command = [sys.executable, __file__, "--rss-child", json.dumps([method, config, args.batch])]
    return float(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def step_memory_mb(method: str, config: str, batch: int, device: torch.device) -> float:
    """Memory one forward+backward pass adds to what its network and input hold, in MiB."""
    net = build(method, config, device)
    x = torch.randn(batch, len(groups_of(config)), N_INPUTS, device=device)
    base = reset_peak_memory(device)
    step(net, x)
    return peak_memory_mb(device) - base


def rss_child(spec: str) -> None:
    method, config, batch = json.loads(spec)
    print(step_memory_mb(method, config, batch, torch.device("cpu")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser, TrainerConfig, ["device"])
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=25, help="interleaved timing rounds")
    parser.add_argument("--iters", type=int, default=3, help="passes per method and round")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--rss-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        return rss_child(args.rss_child)
    device = resolve_device(args.device)
    print(f"# batch {args.batch}, {N_INPUTS} inputs, {DEPTH}x{NUM_CELLS} Tanh, {N_OUTPUTS} outputs;"
          f" {device_label(device)}; torch {torch.__version__}; {args.rounds} interleaved rounds x {args.iters}"
          " passes; median time, median paired ratio to shared, peak memory")
    print(markdown_header(["configuration", *METHODS]))
    results = {}
    for config in args.configs:
        samples = time_methods(config, args, device)
        memory = {m: pass_memory_mb(m, config, args, device) for m in METHODS}
        results[config] = samples
        cells = [
            f"{statistics.median(samples[m]):.2f} ms "
            f"({paired_ratio(samples, m, 'shared'):.2f}x, {memory[m]:.0f} MB)"
            for m in METHODS
        ]
        print(markdown_row([config, *cells]), flush=True)
    print_targets(results)


def print_targets(results: dict[str, dict[str, list[float]]]) -> None:
    print("\ntargets (paired ratios):")
    for config, samples in results.items():
        ratio = paired_ratio(samples, "grouped", "shared")
        print(f"  {config}: grouped / shared = {ratio:.2f} (target <= 1.10: "
              f"{'met' if ratio <= 1.10 else 'NOT met'})")
        if "K=5" in config:
            speedup = paired_ratio(samples, "every_group", "grouped")
            print(f"  {config}: every_group / grouped = {speedup:.1f} (target >= 4: "
                  f"{'met' if speedup >= 4 else 'NOT met'})")
        if "K=30" in config:
            ratio = paired_ratio(samples, "grouped", "torchrl_unshared")
            print(f"  {config}: grouped / torchrl_unshared = {ratio:.2f} (target <= 1.00: "
                  f"{'met' if ratio <= 1.0 else 'NOT met'})")


if __name__ == "__main__":
    main()
