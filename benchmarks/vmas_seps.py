"""Compare NoPS, FuPS, FuPS+id and SePS on a VMAS scenario with hidden agent types.

Every method trains the same actor-critic (TorchRL's PPO or A2C losses, a ``Collector`` over a
vectorised VMAS env); the actor and the critic are ``GroupedMultiAgentMLP``s and the methods
differ only in their groups:

- ``nops``: one network per agent, ``groups = range(N)``;
- ``fups``: one network for all agents, ``groups = [0] * N``;
- ``fups_id``: one network, the one-hot agent id appended to every observation;
- ``seps``: groups found by identification (an identity encoder-decoder fitted on transitions
  collected by a random policy, then k-means with K chosen automatically); its identification
  frames count toward its frame budget;
- ``oracle``: the scenario's true (hidden) agent types as groups, the grouping SePS aims at.

Examples::

    python benchmarks/vmas_seps.py                  # the default comparison, ~7 min on 2 CPU cores
    python benchmarks/vmas_seps.py --help           # every option
    python benchmarks/vmas_seps.py --preset bps-3 --frames 10_000_000 --seeds 0 1 2 \
        --num-envs 600 --device auto                # paper scale, GPU recommended

Outputs, in ``--output``: ``results.csv`` (one row per method, seed and iteration),
``summary.json`` (the resolved config and one summary per method), ``table.md`` (the printed
table), ``learning_curves.png``, ``seps_embeddings.png``, ``checkpoints/`` and
``seps_policy.gif``. Training frames/s is the
frames of one batch over the median time of an iteration (collection and update; evaluation and
identification excluded), so a burst of load on a shared machine does not decide a comparison.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from tensordict import TensorDictBase
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer
from torchrl.data.replay_buffers.samplers import SamplerWithoutReplacement
from torchrl.envs import EnvBase
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.objectives import A2CLoss, LossModule, ValueEstimators
from torchrl.objectives.multiagent import IPPOLoss, MAPPOLoss
from torchrl.record.loggers import get_logger
from tqdm.auto import tqdm

from torchrl_seps import reporting
from torchrl_seps.clustering import adjusted_rand_index
from torchrl_seps.identification import identify_groups
from torchrl_seps.policies import make_actor, make_critic
from torchrl_seps.scenarios import PRESETS, agent_types, make_env, render_rollout, save_gif
from torchrl_seps.transforms import AgentIdentityTransform

METHODS = ("nops", "fups", "fups_id", "seps", "oracle")


def option(default, help: str, **argparse_kwargs):
    """A ``Config`` field with its command-line help and argparse settings."""
    if isinstance(default, list):
        argparse_kwargs = {"nargs": "+", "type": type(default[0]), **argparse_kwargs}
        return field(default_factory=lambda: list(default), metadata={"help": help, **argparse_kwargs})
    if isinstance(default, bool):
        argparse_kwargs["action"] = argparse.BooleanOptionalAction
    elif default is not None:
        argparse_kwargs.setdefault("type", type(default))
    return field(default=default, metadata={"help": help, **argparse_kwargs})


@dataclass
class Config:
    """Every setting of a comparison; each is a command-line option (``--help``)."""

    preset: str = option("bps-1", "scenario preset (torchrl_seps.scenarios.list_presets())")
    group_sizes: list[int] | None = option(
        None, "agents per hidden type, overriding the preset's (e.g. 10 10 10)", nargs="+", type=int)
    methods: list[str] = option(list(METHODS), "methods to compare", choices=METHODS)
    seeds: list[int] = option([0, 1], "one run per method and seed")
    frames: int = option(120_000, "environment frames per run; SePS's identification included")
    continuous_actions: bool = option(False, "2-D forces instead of the 5 discrete moves")
    algorithm: str = option("ppo", "ppo (IPPO, or MAPPO with --centralized-critic) or a2c "
                            "(the paper's: --num-envs 8 --rollout-steps 5)", choices=("ppo", "a2c"))
    centralized_critic: bool = option(False, "critics see all agents' observations (MAPPO)")
    num_envs: int = option(40, "vectorised environments collected from")
    rollout_steps: int = option(50, "steps per env and iteration (frames per batch = "
                                "num_envs * rollout_steps)")
    lr: float = option(3e-4, "Adam learning rate (actor and critic)")
    gamma: float = option(0.99, "discount")
    lmbda: float = option(0.95, "GAE lambda for PPO; A2C uses 1 (n-step returns)")
    clip_epsilon: float = option(0.2, "PPO ratio clip")
    entropy_coeff: float = option(0.01, "entropy bonus weight")
    critic_coeff: float = option(0.5, "critic loss weight")
    max_grad_norm: float = option(0.5, "gradient norm clip")
    ppo_epochs: int = option(4, "PPO passes over each batch")
    minibatches: int = option(4, "PPO minibatches per pass")
    depth: int = option(2, "hidden layers of actor and critic")
    num_cells: int = option(64, "units per hidden layer")
    id_frames: int = option(12_800, "SePS identification frames, counted in its budget")
    id_epochs: int | None = option(None, "identification epochs (its default when unset)", type=int)
    n_groups: int | None = option(None, "SePS's K (chosen automatically when unset)", type=int)
    eval_every: int = option(5, "iterations between evaluations")
    eval_envs: int = option(32, "episodes per evaluation (deterministic policy)")
    device: str = option("auto", "cpu, cuda, or auto (CUDA when present)")
    threads: int | None = option(None, "torch CPU threads (torch's default when unset)", type=int)
    output: str = option("runs/vmas_seps", "output folder")
    logger: str = option("csv", "TorchRL logger for per-run scalars",
                         choices=("csv", "tensorboard", "wandb", "none"))
    gif: bool = option(True, "save a GIF of the trained SePS policy")
    progress: bool = option(True, "progress bars")

    @property
    def frames_per_batch(self) -> int:
        return self.num_envs * self.rollout_steps

    @property
    def env_overrides(self) -> dict:
        """Keyword arguments of ``make_env`` beyond the preset's."""
        overrides = {"continuous_actions": self.continuous_actions}
        if self.group_sizes is not None:
            overrides["groups"] = tuple(self.group_sizes)
        return overrides

    def validate(self) -> None:
        """Fails with a clear message before any training starts."""
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown or not self.methods:
            raise ValueError(f"--methods must be among {list(METHODS)}, got {self.methods}.")
        if self.preset not in PRESETS:
            raise ValueError(f"--preset {self.preset!r} is unknown; presets: {list(PRESETS)}.")
        make_env(self.preset, num_envs=1, **self.env_overrides)  # checks the scenario settings
        if self.algorithm not in ("ppo", "a2c"):
            raise ValueError(f"--algorithm must be 'ppo' or 'a2c', got {self.algorithm!r}.")
        if self.centralized_critic and self.algorithm != "ppo":
            raise ValueError("--centralized-critic (MAPPO) needs --algorithm ppo.")
        if self.logger not in ("csv", "tensorboard", "wandb", "none"):
            raise ValueError(f"--logger must be csv, tensorboard, wandb or none, got {self.logger!r}.")
        if not self.seeds:
            raise ValueError("--seeds needs at least one seed.")
        for name in ("num_envs", "rollout_steps", "ppo_epochs", "minibatches", "eval_every",
                     "eval_envs", "depth", "num_cells"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}.")
        if self.frames_per_batch % self.minibatches:
            raise ValueError(
                f"--minibatches ({self.minibatches}) must divide the frames per batch "
                f"(num_envs * rollout_steps = {self.frames_per_batch})."
            )
        seps_frames = self.frames - (self.id_frames if "seps" in self.methods else 0)
        if seps_frames < self.frames_per_batch:
            raise ValueError(
                f"--frames ({self.frames}) leaves {seps_frames} training frames"
                f"{' after SePS identification' if 'seps' in self.methods else ''}: fewer than one "
                f"batch (num_envs * rollout_steps = {self.frames_per_batch})."
            )


# ---------------------------------------------------------------------------------------------
# One run: env -> groups -> actor and critic -> collector -> loss -> training loop -> evaluation
# ---------------------------------------------------------------------------------------------


def choose_groups(method: str, env: EnvBase, config: Config, seed: int):
    """The groups of a method; for SePS also the identification result (else ``None``)."""
    n_agents = env.n_agents
    if method == "nops":
        return list(range(n_agents)), None
    if method in ("fups", "fups_id"):
        return [0] * n_agents, None
    if method == "oracle":
        return agent_types(env).tolist(), None
    options = {} if config.id_epochs is None else {"epochs": config.id_epochs}
    identification = identify_groups(
        env, frames=config.id_frames, n_groups=config.n_groups, seed=seed,
        progress=config.progress, **options,
    )
    return identification.groups.tolist(), identification


def make_loss(config: Config, actor, critic) -> LossModule:
    if config.algorithm == "a2c":
        loss = A2CLoss(
            actor, critic, entropy_coeff=config.entropy_coeff, critic_coeff=config.critic_coeff,
            loss_critic_type="l2",
        )
    else:
        loss_class = MAPPOLoss if config.centralized_critic else IPPOLoss
        loss = loss_class(
            actor, critic, clip_epsilon=config.clip_epsilon, entropy_coeff=config.entropy_coeff,
            critic_coeff=config.critic_coeff, loss_critic_type="l2", normalize_advantage=True,
        )
    loss.set_keys(
        reward=("agents", "reward"),
        action=("agents", "action"),
        sample_log_prob=("agents", "action_log_prob"),
        value=("agents", "state_value"),
        advantage=("agents", "advantage"),
        value_target=("agents", "value_target"),
    )
    lmbda = 1.0 if config.algorithm == "a2c" else config.lmbda
    loss.make_value_estimator(ValueEstimators.MAGAE, gamma=config.gamma, lmbda=lmbda)
    return loss


def make_minibatch_buffer(config: Config, device: torch.device) -> TensorDictReplayBuffer:
    """Holds one batch of transitions and serves it back in shuffled minibatches (PPO)."""
    return TensorDictReplayBuffer(
        storage=LazyTensorStorage(config.frames_per_batch, device=device),
        sampler=SamplerWithoutReplacement(),
        batch_size=config.frames_per_batch // config.minibatches,
    )


def update(loss: LossModule, optim: torch.optim.Optimizer, batch: TensorDictBase,
           buffer: TensorDictReplayBuffer, config: Config) -> TensorDictBase:
    """One iteration's gradient steps: PPO epochs over shuffled minibatches, or one A2C step."""
    with torch.no_grad():
        loss.value_estimator(
            batch, params=loss.critic_network_params, target_params=loss.target_critic_network_params
        )
    if config.algorithm == "a2c":
        minibatches = [batch.reshape(-1)]
    else:
        buffer.extend(batch.reshape(-1))
        minibatches = (buffer.sample() for _ in range(config.ppo_epochs * config.minibatches))
    for minibatch in minibatches:
        losses = loss(minibatch)
        total = sum(value for key, value in losses.items() if key.startswith("loss_"))
        total.backward()
        torch.nn.utils.clip_grad_norm_(loss.parameters(), config.max_grad_norm)
        optim.step()
        optim.zero_grad()
    return losses.detach()


@torch.no_grad()
def evaluate(env: EnvBase, actor, max_steps: int) -> float:
    """Mean team return (sum over agents) of one deterministic episode per env."""
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        rollout = env.rollout(max_steps, actor, break_when_any_done=False)
    return rollout["next", "agents", "reward"].sum(dim=(1, 2, 3)).mean().item()


def team_return_of_finished_episodes(batch: TensorDictBase) -> float | None:
    """Mean team return of the episodes that ended in a collected batch, if any."""
    done = batch["next", "done"].squeeze(-1)
    if not done.any():
        return None
    episode = batch["next", "agents", "episode_reward"].sum(dim=(-2, -1))
    return episode[done].mean().item()


@dataclass
class Trainer:
    """Everything one method and seed trains with, built by :func:`make_trainer`."""

    env: EnvBase
    eval_env: EnvBase
    groups: list[int]
    identification: object | None  # SePS's IdentificationResult
    id_frames: int  # SePS's identification frames, counted in its budget
    actor: torch.nn.Module
    critic: torch.nn.Module
    loss: LossModule
    optim: torch.optim.Optimizer
    buffer: TensorDictReplayBuffer
    collector: Collector
    config: Config

    def train_step(self, batch: TensorDictBase) -> TensorDictBase:
        """One training iteration on a collected batch: the update, then the collector's policy."""
        losses = update(self.loss, self.optim, batch, self.buffer, self.config)
        self.collector.update_policy_weights_()
        return losses


def make_trainer(method: str, seed: int, config: Config) -> Trainer:
    """Env, groups (SePS: identification), actor, critic, loss, optimizer and collector."""
    torch.manual_seed(seed)
    device = resolve_device(config.device)
    env_options = dict(device=device, **config.env_overrides)
    env = make_env(config.preset, config.num_envs, seed=seed, **env_options)
    eval_env = make_env(config.preset, config.eval_envs, seed=seed + 10_000, **env_options)
    groups, identification = choose_groups(method, env, config, seed)
    if method == "fups_id":
        env.append_transform(AgentIdentityTransform.one_hot(env.n_agents))
        eval_env.append_transform(AgentIdentityTransform.one_hot(env.n_agents))
    model = dict(depth=config.depth, num_cells=config.num_cells, device=device)
    actor = make_actor(env, groups, **model)
    critic = make_critic(env, groups, centralized=config.centralized_critic, **model)
    loss = make_loss(config, actor, critic)
    id_frames = identification.frames if identification is not None else 0
    collector = Collector(
        env,
        actor,
        frames_per_batch=config.frames_per_batch,
        total_frames=(config.frames - id_frames) // config.frames_per_batch * config.frames_per_batch,
        device=device,
        auto_register_policy_transforms=False,
    )
    return Trainer(
        env, eval_env, groups, identification, id_frames, actor, critic, loss,
        optim=torch.optim.Adam(loss.parameters(), lr=config.lr, eps=1e-5),
        buffer=make_minibatch_buffer(config, device), collector=collector, config=config,
    )


def run(method: str, seed: int, config: Config, out: Path) -> dict:
    """Trains one method with one seed; returns its rows and summary."""
    trainer = make_trainer(method, seed, config)
    env, eval_env, actor, critic = trainer.env, trainer.eval_env, trainer.actor, trainer.critic
    groups, identification, id_frames = trainer.groups, trainer.identification, trainer.id_frames
    max_steps = PRESETS[config.preset].max_steps
    true_types = agent_types(env)
    logger = None
    if config.logger != "none":
        logger = get_logger(config.logger, str(out / "logs"), f"{method}_seed{seed}")

    rows, frames, iteration_times = [], id_frames, []
    bar = tqdm(total=config.frames, initial=id_frames, desc=f"{method} seed {seed}",
               unit="frames", disable=not config.progress, file=sys.stderr)
    rows.append(row(method, seed, 0, frames, None, evaluate(eval_env, actor, max_steps), 0.0, 0.0))
    start = time.perf_counter()
    for iteration, batch in enumerate(trainer.collector, start=1):
        losses = trainer.train_step(batch)
        iteration_times.append(time.perf_counter() - start)  # collection and update
        frames += batch.numel()
        evaluated = iteration % config.eval_every == 0 or frames + config.frames_per_batch > config.frames
        train_return = team_return_of_finished_episodes(batch)
        eval_return = evaluate(eval_env, actor, max_steps) if evaluated else None
        # The median iteration is robust to the bursts of a shared machine; the mean is not.
        fps = config.frames_per_batch / statistics.median(iteration_times)
        rows.append(row(method, seed, iteration, frames, train_return, eval_return,
                        sum(iteration_times), fps))
        if logger is not None:
            log_iteration(logger, rows[-1], losses)
        bar.update(batch.numel())
        bar.set_postfix(ret=f"{eval_return if evaluated else train_return or math.nan:.1f}",
                        fps=f"{fps:.0f}")
        start = time.perf_counter()
    bar.close()
    trainer.collector.shutdown()

    checkpoint = out / "checkpoints" / f"{method}_seed{seed}.pt"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"actor": actor.state_dict(), "critic": critic.state_dict(), "groups": groups,
                "config": asdict(config)}, checkpoint)
    summary = {
        "method": method,
        "seed": seed,
        "final_eval_return": rows[-1]["eval_return"],
        "frames": frames,
        "identification_frames": id_frames,
        "train_time_s": sum(iteration_times),
        "identification_time_s": identification.total_time if identification else 0.0,
        "train_fps": rows[-1]["fps"],
        "parameters": sum(p.numel() for p in actor.parameters()) + sum(p.numel() for p in critic.parameters()),
        "groups": groups,
        "n_groups": len(set(groups)),
        "ari": adjusted_rand_index(groups, true_types.tolist()),
        "checkpoint": str(checkpoint),
    }
    return {"rows": rows, "summary": summary, "identification": identification,
            "actor": actor, "eval_env": eval_env, "true_types": true_types}


def row(method, seed, iteration, frames, train_return, eval_return, time_s, fps) -> dict:
    return dict(method=method, seed=seed, iteration=iteration, frames=frames,
                train_return=train_return, eval_return=eval_return, time_s=time_s, fps=fps)


def log_iteration(logger, values: dict, losses: TensorDictBase) -> None:
    step = values["frames"]
    for key in ("train_return", "eval_return", "fps"):
        if values[key] is not None:
            logger.log_scalar(key, values[key], step=step)
    for key, value in losses.items():
        if key.startswith("loss_"):
            logger.log_scalar(key, value.item(), step=step)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# ---------------------------------------------------------------------------------------------
# Report: table, results.csv, summary.json, learning curves, embeddings, GIF
# ---------------------------------------------------------------------------------------------


def report(config: Config, runs: list[dict], out: Path) -> tuple[str, dict[str, float]]:
    """Writes the files of the comparison; returns the table and each method's frames/s over
    FuPS's (empty without FuPS)."""
    rows = [r for run_ in runs for r in run_["rows"]]
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    curves = reporting.learning_curves(rows)
    reporting.plot_learning_curves(
        curves, out / "learning_curves.png",
        title=f"{config.preset}, {config.algorithm.upper()}, {len(config.seeds)} seed(s)",
    )
    to_threshold = reporting.frames_to_threshold(curves)
    methods = {}
    for method in config.methods:
        summaries = [r["summary"] for r in runs if r["summary"]["method"] == method]
        ret_mean, ret_std = reporting.mean_std([s["final_eval_return"] for s in summaries])
        methods[method] = {
            "final_eval_return_mean": ret_mean,
            "final_eval_return_std": ret_std,
            "frames_to_90pct": to_threshold.get(method),
            "wall_time_s": sum(s["train_time_s"] + s["identification_time_s"] for s in summaries) / len(summaries),
            "train_fps": sum(s["train_fps"] for s in summaries) / len(summaries),
            "parameters": summaries[0]["parameters"],
            "n_groups": [s["n_groups"] for s in summaries],
            "ari": [s["ari"] for s in summaries],
            "runs": summaries,
        }
    throughput = {
        f"{method}_over_fups_fps": methods[method]["train_fps"] / methods["fups"]["train_fps"]
        for method in methods
        if method != "fups" and "fups" in methods
    }
    with open(out / "summary.json", "w") as f:
        json.dump({"config": asdict(config), "methods": methods, "throughput": throughput}, f,
                  indent=2)
    table = reporting.markdown_table(
        ["method", "final return", "frames to 90%", "wall time", "frames/s", "parameters",
         "groups found", "ARI"],
        [
            [
                m,
                f"{s['final_eval_return_mean']:.1f} ± {s['final_eval_return_std']:.1f}",
                "-" if s["frames_to_90pct"] is None else f"{s['frames_to_90pct']:,}",
                f"{s['wall_time_s']:.0f} s",
                f"{s['train_fps']:.0f}",
                f"{s['parameters']:,}",
                "/".join(map(str, s["n_groups"])),
                "/".join(f"{a:.2f}" for a in s["ari"]),
            ]
            for m, s in methods.items()
        ],
    )
    (out / "table.md").write_text(table + "\n")
    for run_ in runs:
        if run_["identification"] is not None:
            run_["identification"].plot(out / "seps_embeddings.png", types=run_["true_types"])
            if config.gif:
                with set_exploration_type(ExplorationType.DETERMINISTIC):
                    frames = render_rollout(run_["eval_env"], run_["actor"])
                save_gif(frames, out / "seps_policy.gif")
            break
    return table, throughput


def parse_args(argv: list[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    defaults = Config()
    for spec in fields(Config):
        flag = "--" + spec.name.replace("_", "-")
        parser.add_argument(flag, default=getattr(defaults, spec.name), **spec.metadata)
    return Config(**vars(parser.parse_args(argv)))


def main(argv: list[str] | None = None) -> dict:
    config = parse_args(argv)
    try:
        config.validate()
    except (TypeError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    out = Path(config.output)
    out.mkdir(parents=True, exist_ok=True)
    runs = [run(method, seed, config, out) for seed in config.seeds for method in config.methods]
    table, throughput = report(config, runs, out)
    print(table)
    if throughput:
        print("\ntraining frames/s relative to fups: " + ", ".join(
            f"{key.removesuffix('_over_fups_fps')} {ratio:.2f}x" for key, ratio in throughput.items()
        ))
    print(f"\nresults in {out}/: results.csv, summary.json, table.md, learning_curves.png")
    return {"config": config, "table": table, "throughput": throughput}


if __name__ == "__main__":
    main()
