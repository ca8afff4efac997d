"""Training throughput and peak memory of NoPS, FuPS and SePS as the number of agents grows.

Each (agents, method) pair is one short run of the main job's training loop
(``benchmarks/vmas_seps.py``) in a fresh process, on Blind-Particle Spread with three colours of
``agents / 3`` agents each. It reports training frames per second (collection and PPO updates,
without evaluation or identification), SePS's identification time and groups, the parameter count
and the peak resident memory of the process (CPU) or the peak CUDA memory (GPU).

Run ``python benchmarks/scaling.py`` (``--device cuda`` on a GPU).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import vmas_seps  # noqa: E402  (the main job, beside this file)

from torchrl_seps.reporting import markdown_table  # noqa: E402


def child(spec: str) -> None:
    """One run, in this process; prints its figures as JSON."""
    agents, method, args = json.loads(spec)
    if args["threads"]:
        torch.set_num_threads(args["threads"])
    frames = args["iterations"] * args["num_envs"] * 50
    if method == "seps":  # identification rounds its frames up to whole env steps
        frames += vmas_seps.Config.id_frames + args["num_envs"] * 50 - 1
    config = vmas_seps.Config(
        preset="bps-1", group_sizes=[agents // 3] * 3, methods=[method], seeds=[0], frames=frames,
        num_envs=args["num_envs"], eval_every=10**9, eval_envs=2, device=args["device"],
        logger="none", gif=False, progress=False,
    )
    with tempfile.TemporaryDirectory() as out:
        summary = vmas_seps.run(method, 0, config, Path(out))["summary"]
    device = vmas_seps.resolve_device(args["device"])
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        with open("/proc/self/status") as f:
            peak = int(next(line for line in f if line.startswith("VmHWM:")).split()[1]) / 1024
    print(json.dumps({**summary, "peak_mb": peak}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, nargs="+", default=[15, 30, 60, 120])
    parser.add_argument("--methods", nargs="+", default=["nops", "fups", "seps"],
                        choices=vmas_seps.METHODS)
    parser.add_argument("--num-envs", type=int, default=40)
    parser.add_argument("--iterations", type=int, default=4, help="training iterations per run")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)
    settings = {k: getattr(args, k) for k in ("num_envs", "iterations", "device", "threads")}
    rows = []
    for agents in args.agents:
        for method in args.methods:
            spec = json.dumps([agents, method, settings])
            result = subprocess.run([sys.executable, __file__, "--child", spec], check=True,
                                    capture_output=True, text=True)
            s = json.loads(result.stdout.strip().splitlines()[-1])
            rows.append([
                agents, method, s["n_groups"], f"{s['train_fps']:.0f}", f"{s['peak_mb']:.0f}",
                f"{s['parameters']:,}", f"{s['identification_time_s']:.1f}",
            ])
            print(f"{agents} agents, {method}: {s['train_fps']:.0f} frames/s", file=sys.stderr)
    print(f"# bps-1 colours scaled up, {args.num_envs} envs x 50 steps per iteration, "
          f"{args.iterations} PPO iterations, device {args.device}, torch threads "
          f"{args.threads or torch.get_num_threads()}")
    print(markdown_table(["agents", "method", "groups", "train frames/s", "peak memory (MB)",
                          "parameters", "identification (s)"], rows))


if __name__ == "__main__":
    main()
