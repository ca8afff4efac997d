"""The training core of a grouping comparison: one trainer config, one trainer per method and seed.

Every method trains the same actor-critic (TorchRL's PPO or A2C losses, a ``Collector`` over a
vectorised env) on one agent group of the env (:class:`TrainerConfig`'s ``group``); the actor and
the critic are :class:`~torchrl_seps.GroupedMultiAgentMLP` s and the methods differ only in their
groups of agents (:data:`METHODS`). A script composes the pieces::

    config = TrainerConfig(preset="bps-1")
    trainer = make_trainer("seps", seed=0, config=config)   # SePS starts as FuPS
    for iteration in trainer.iterations():                  # collect a batch, update on it; SePS
        ...                                                  # regroups on schedule; log, evaluate

SePS follows :class:`~torchrl_seps.schedule.SePSSchedule`: by default (``id_policy="warmup"``)
it trains as FuPS for its first ``id_frames`` frames, identifies the groups from those batches
and continues with every group warm-started from the shared network
(:func:`~torchrl_seps.schedule.regroup`); with ``id_policy="random"`` it identifies before
training from a random policy's frames, counted in its budget. ``regroup_every`` identifies again
during training. Both identify with the settings :meth:`TrainerConfig.identification` gives, one
:class:`~torchrl_seps.identification.IdentificationOptions`.

``benchmarks/vmas_seps.py`` is such a script: it runs a sweep of methods and seeds, and builds
its command line from :class:`TrainerConfig` and its own sweep settings.
"""
from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tensordict import TensorDictBase
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer
from torchrl.data.replay_buffers.samplers import SamplerWithoutReplacement
from torchrl.envs import EnvBase
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.objectives import A2CLoss, LossModule, ValueEstimators
from torchrl.objectives.multiagent import IPPOLoss, MAPPOLoss

from torchrl_seps._checks import (
    check_bool,
    check_float,
    check_instance,
    check_int,
    check_interval,
    check_unique,
)
from torchrl_seps.devices import resolve_device
from torchrl_seps.diversity import system_neural_diversity
from torchrl_seps.identification import GroupKeys, IdentificationOptions, IdentificationResult, identify_groups
from torchrl_seps.policies import make_actor, make_critic
from torchrl_seps.schedule import SePSSchedule
from torchrl_seps.scenarios import PRESETS, agent_types, make_env
from torchrl_seps.transforms import AgentIdentityTransform

__all__ = [
    "METHODS",
    "TrainerConfig",
    "Iteration",
    "Trainer",
    "choose_groups",
    "evaluate",
    "make_loss",
    "make_schedule",
    "make_trainer",
    "team_return_of_finished_episodes",
    "update",
]

#: The grouping methods compared: ``nops`` one network per agent, ``fups`` one for all,
#: ``fups_id`` one for all with the one-hot agent id appended to every observation, ``seps``
#: groups found by identification (:class:`TrainerConfig`'s ``id_policy``), ``oracle`` the
#: scenario's true (hidden) agent types as groups.
METHODS = ("nops", "fups", "fups_id", "seps", "oracle")


def _setting(default: Any, help: str, **command_line: Any):
    """A :class:`TrainerConfig` field with its help and, for a command line built from the
    fields, its ``choices``, ``type`` (where the default is ``None``), ``nargs`` and ``metavar``."""
    return field(default=default, metadata={"help": help, **command_line})


@dataclass
class TrainerConfig:
    """What one training run needs: scenario, algorithm, networks, SePS's identification,
    evaluation and device. Nothing about sweeps: which methods and seeds run, and where their
    results go, are the caller's.

    Each field's metadata holds its help (and for a command line its ``choices``, ``type`` and
    ``metavar``): ``benchmarks/vmas_seps.py`` makes every field a ``--kebab-case`` flag.

    Examples:
        >>> config = TrainerConfig(preset="rotnav-2x4", num_envs=4, rollout_steps=10)
        >>> config.frames_per_batch
        40
        >>> config.validate()
        >>> TrainerConfig(num_envs=0).validate()
        Traceback (most recent call last):
        ...
        ValueError: --num-envs must be an int >= 1, got --num-envs=0.
    """

    preset: str = _setting("bps-1", "scenario preset (torchrl_seps.scenarios.list_presets())")
    group_sizes: list[int] | None = _setting(
        None, "agents per hidden type, overriding the preset's (e.g. 10 10 10)", nargs="+", type=int)
    group: str = _setting("agents", "the agent group trained (a key of the env's group_map)")
    frames: int = _setting(120_000, "environment frames per run; SePS's identification included")
    continuous_actions: bool = _setting(False, "2-D forces instead of the 5 discrete moves")
    algorithm: str = _setting("ppo", "ppo (IPPO, or MAPPO with --centralized-critic) or a2c "
                              "(the paper's: --num-envs 8 --rollout-steps 5)", choices=("ppo", "a2c"))
    centralized_critic: bool = _setting(False, "critics see all agents' observations (MAPPO)")
    num_envs: int = _setting(40, "vectorised environments collected from")
    rollout_steps: int = _setting(50, "steps per env and iteration (frames per batch = "
                                  "num_envs * rollout_steps)")
    lr: float = _setting(3e-4, "Adam learning rate (actor and critic)")
    gamma: float = _setting(0.99, "discount")
    lmbda: float = _setting(0.95, "GAE lambda for PPO; A2C uses 1 (n-step returns)")
    clip_epsilon: float = _setting(0.2, "PPO ratio clip")
    entropy_coeff: float = _setting(0.01, "entropy bonus weight")
    critic_coeff: float = _setting(0.5, "critic loss weight")
    max_grad_norm: float = _setting(0.5, "gradient norm clip")
    ppo_epochs: int = _setting(4, "PPO passes over each batch")
    minibatches: int = _setting(4, "PPO minibatches per pass")
    depth: int = _setting(2, "hidden layers of actor and critic")
    num_cells: int = _setting(64, "units per hidden layer")
    id_frames: int = _setting(IdentificationOptions.frames, "frames SePS identifies its groups "
                              "from: its first training frames (--id-policy warmup), or a random "
                              "policy's before training, counted in its budget (--id-policy random)")
    id_policy: str = _setting("warmup", "whose frames SePS identifies from: the shared (FuPS) "
                              "policy it trains first, or a random policy", choices=("warmup", "random"))
    regroup_every: int | None = _setting(
        None, "SePS identifies again on its last --id-frames frames every FRAMES frames, and "
        "regroups (warm-started) when the partition changed", type=int, metavar="FRAMES")
    id_epochs: int | None = _setting(None, "identification epochs (its default when unset)", type=int)
    n_groups: int | None = _setting(None, "SePS's K (chosen automatically when unset)", type=int)
    eval_every: int = _setting(5, "iterations between evaluations")
    eval_envs: int = _setting(32, "episodes per evaluation (deterministic policy)")
    device: str = _setting("auto", "cpu, cuda, or auto (CUDA when present)")

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

    def identification(self, seed: int, progress: bool = False) -> IdentificationOptions:
        """The settings of SePS's identifications in a run with ``seed``: ``id_frames``,
        ``id_epochs`` (when set) and ``n_groups``, the other defaults of
        :class:`~torchrl_seps.identification.IdentificationOptions`."""
        epochs = {} if self.id_epochs is None else {"epochs": self.id_epochs}
        return IdentificationOptions(
            frames=self.id_frames, n_groups=self.n_groups, seed=seed, progress=progress, **epochs
        )

    def validate(self, methods: Sequence[str] = METHODS) -> None:
        """Fails with a clear message before any training starts: every field's type and range
        (``TypeError`` / ``ValueError`` naming its flag, the value seen and what is allowed);
        ``methods`` are those to be trained (no repeats; the frame budget must leave SePS a
        batch after its identification)."""
        check_instance("--methods", methods, Sequence, "a sequence of method names")
        unknown = sorted(set(methods) - set(METHODS))
        if unknown or not methods or isinstance(methods, str):
            raise ValueError(f"--methods must be among {list(METHODS)}, got {list(methods)}.")
        check_unique("--methods", methods)
        for name in ("preset", "group", "algorithm", "id_policy", "device"):
            check_instance(_flag(name), getattr(self, name), str, "a str")
        for name in ("continuous_actions", "centralized_critic"):
            check_bool(_flag(name), getattr(self, name))
        if self.preset not in PRESETS:
            raise ValueError(f"--preset {self.preset!r} is unknown; presets: {list(PRESETS)}.")
        if self.algorithm not in ("ppo", "a2c"):
            raise ValueError(f"--algorithm must be 'ppo' or 'a2c', got {self.algorithm!r}.")
        if self.centralized_critic and self.algorithm != "ppo":
            raise ValueError("--centralized-critic (MAPPO) needs --algorithm ppo.")
        if self.id_policy not in ("warmup", "random"):
            raise ValueError(f"--id-policy must be 'warmup' or 'random', got {self.id_policy!r}.")
        for name in ("frames", "num_envs", "rollout_steps", "ppo_epochs", "minibatches", "eval_every",
                     "eval_envs", "depth", "num_cells", "id_frames"):
            check_int(_flag(name), getattr(self, name))
        for name in ("regroup_every", "id_epochs", "n_groups"):
            check_int(_flag(name), getattr(self, name), optional=True)
        check_float("--lr", self.lr, positive=True)
        check_interval("--gamma", self.gamma, 0, 1, open_low=True)
        check_interval("--lmbda", self.lmbda, 0, 1)
        check_interval("--clip-epsilon", self.clip_epsilon, 0, 1, open_low=True)
        check_float("--entropy-coeff", self.entropy_coeff)
        check_float("--critic-coeff", self.critic_coeff, positive=True)
        check_float("--max-grad-norm", self.max_grad_norm, positive=True)
        try:
            device = resolve_device(self.device)
        except ValueError as error:
            raise ValueError(f"--{error}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {self.device!r} needs CUDA, which this machine does not have.")
        env = make_env(self.preset, num_envs=1, **self.env_overrides)  # checks the scenario settings
        try:
            keys = GroupKeys.of(env, self.group)  # the group's per-agent entries
        except ValueError as error:
            raise ValueError(f"--group {self.group!r}: {error}") from None
        n_agents = env.full_observation_spec[keys.observation].shape[len(env.batch_size)]
        env.close()
        if self.n_groups is not None and self.n_groups > n_agents:
            raise ValueError(f"--n-groups must be an int in 1..{n_agents} (the agents), got {self.n_groups}.")
        if self.frames_per_batch % self.minibatches:
            raise ValueError(
                f"--minibatches ({self.minibatches}) must divide the frames per batch "
                f"(num_envs * rollout_steps = {self.frames_per_batch})."
            )
        seps_frames = self.frames - (self.id_frames if "seps" in methods else 0)
        if seps_frames < self.frames_per_batch:
            raise ValueError(
                f"--frames ({self.frames}) leaves {seps_frames} training frames"
                f"{' after SePS identification' if 'seps' in methods else ''}: fewer than one "
                f"batch (num_envs * rollout_steps = {self.frames_per_batch})."
            )


def _flag(name: str) -> str:
    """The command-line flag of a config field."""
    return "--" + name.replace("_", "-")


def choose_groups(
    method: str, env: EnvBase, config: TrainerConfig, seed: int, progress: bool = False
) -> tuple[list[int], IdentificationResult | None]:
    """The groups a method starts training with; for SePS identifying from a random policy also
    the identification result (else ``None``). SePS with a warm-up starts as FuPS."""
    n_agents = env.n_agents
    if method == "nops":
        return list(range(n_agents)), None
    if method in ("fups", "fups_id") or (method == "seps" and config.id_policy == "warmup"):
        return [0] * n_agents, None
    if method == "oracle":
        return agent_types(env).tolist(), None
    result = identify_groups(env, config.identification(seed, progress), group=config.group)
    return result.groups.tolist(), result


def make_schedule(method: str, env: EnvBase, config: TrainerConfig, seed: int) -> SePSSchedule | None:
    """SePS's schedule of identifications during training (``None`` for other methods, and for
    SePS identifying once from a random policy)."""
    warm_up = config.id_policy == "warmup"
    if method != "seps" or (not warm_up and config.regroup_every is None):
        return None
    return SePSSchedule(
        env, config.identification(seed), regroup_every=config.regroup_every, warm_up=warm_up,
        group=config.group,
    )


def make_loss(config: TrainerConfig, actor: torch.nn.Module, critic: torch.nn.Module) -> LossModule:
    """IPPO (MAPPO with a centralised critic) or A2C over the entries of the agent group
    ``config.group``, with MAGAE."""
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
    group = config.group
    loss.set_keys(
        reward=(group, "reward"),
        action=(group, "action"),
        sample_log_prob=(group, "action_log_prob"),
        value=(group, "state_value"),
        advantage=(group, "advantage"),
        value_target=(group, "value_target"),
    )
    lmbda = 1.0 if config.algorithm == "a2c" else config.lmbda
    loss.make_value_estimator(ValueEstimators.MAGAE, gamma=config.gamma, lmbda=lmbda)
    return loss


def make_minibatch_buffer(config: TrainerConfig, device: torch.device) -> TensorDictReplayBuffer:
    """Holds one batch of transitions and serves it back in shuffled minibatches (PPO)."""
    return TensorDictReplayBuffer(
        storage=LazyTensorStorage(config.frames_per_batch, device=device),
        sampler=SamplerWithoutReplacement(),
        batch_size=config.frames_per_batch // config.minibatches,
    )


def update(loss: LossModule, optim: torch.optim.Optimizer, batch: TensorDictBase,
           buffer: TensorDictReplayBuffer, config: TrainerConfig) -> TensorDictBase:
    """One iteration's gradient steps: PPO epochs over shuffled minibatches, or one A2C step.

    Returns:
        the losses of every gradient step, stacked, each with the gradient norm before clipping
        (``"grad_norm"``).
    """
    with torch.no_grad():
        loss.value_estimator(
            batch, params=loss.critic_network_params, target_params=loss.target_critic_network_params
        )
    if config.algorithm == "a2c":
        minibatches = [batch.reshape(-1)]
    else:
        buffer.extend(batch.reshape(-1))
        minibatches = (buffer.sample() for _ in range(config.ppo_epochs * config.minibatches))
    steps = []
    for minibatch in minibatches:
        losses = loss(minibatch)
        total = sum(value for key, value in losses.items() if key.startswith("loss_"))
        total.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(loss.parameters(), config.max_grad_norm)
        optim.step()
        optim.zero_grad()
        steps.append(losses.detach().set("grad_norm", grad_norm.detach()))
    return torch.stack(steps)


@torch.no_grad()
def evaluate(env: EnvBase, actor: torch.nn.Module, max_steps: int, *, group: str) -> float:
    """Mean team return (sum over the agents of ``group``) of one deterministic episode per env."""
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        rollout = env.rollout(max_steps, actor, break_when_any_done=False)
    return rollout["next", group, "reward"].sum(dim=(1, 2, 3)).mean().item()


def team_return_of_finished_episodes(batch: TensorDictBase, *, group: str) -> float | None:
    """Mean team return (sum over the agents of ``group``) of the episodes that ended in a
    collected batch, if any."""
    done = batch["next", "done"].squeeze(-1)
    if not done.any():
        return None
    episode = batch["next", group, "episode_reward"].sum(dim=(-2, -1))
    return episode[done].mean().item()


@dataclass
class Iteration:
    """One training iteration: the batch collected, the update's losses and their timings.

    Attributes:
        batch: the transitions collected, shape ``[num_envs, rollout_steps]``.
        losses: the losses of every gradient step, stacked, with ``"grad_norm"`` (see :func:`update`).
        collection_time: seconds spent collecting the batch.
        update_time: seconds spent on the gradient steps, SePS's scheduled identification (if
            any) and the collector's policy update.
        identification: SePS's identification run after this batch's update, if any.
    """

    batch: TensorDictBase
    losses: TensorDictBase
    collection_time: float
    update_time: float
    identification: IdentificationResult | None = None

    @property
    def time(self) -> float:
        """Seconds of the iteration: collection and update."""
        return self.collection_time + self.update_time


@dataclass
class Trainer:
    """Everything one method and seed trains with, built by :func:`make_trainer`.

    Examples:
        >>> config = TrainerConfig(preset="rotnav-2x4", num_envs=2, rollout_steps=10, frames=40,
        ...                        minibatches=2, num_cells=16, eval_envs=2)
        >>> trainer = make_trainer("oracle", seed=0, config=config)
        >>> trainer.groups, trainer.n_parameters
        ([0, 0, 0, 0, 1, 1, 1, 1], 1612)
        >>> [iteration.batch.numel() for iteration in trainer.iterations()]
        [20, 20]
        >>> trainer.collector.shutdown()
    """

    env: EnvBase
    eval_env: EnvBase
    groups: list[int]
    identification: IdentificationResult | None  # SePS's latest, else None
    identification_frames: int  # frames SePS's identification collected before training
    actor: torch.nn.Module
    critic: torch.nn.Module
    loss: LossModule
    optim: torch.optim.Optimizer
    buffer: TensorDictReplayBuffer
    collector: Collector
    config: TrainerConfig
    schedule: SePSSchedule | None = None  # SePS's identifications during training
    agent_features: torch.Tensor | None = None  # per-agent features the env appends (FuPS+id)
    identifications: list[IdentificationResult] = field(default_factory=list)  # SePS's, in order

    def __post_init__(self) -> None:
        if self.identification is not None and not self.identifications:
            self.identifications.append(self.identification)

    @property
    def n_parameters(self) -> int:
        """Parameters of the actor and the critic together."""
        return sum(p.numel() for net in (self.actor, self.critic) for p in net.parameters())

    @property
    def identification_time(self) -> float:
        """Seconds SePS spent identifying, before training and during it."""
        return sum(result.total_time for result in self.identifications)

    def train_step(self, batch: TensorDictBase) -> TensorDictBase:
        """One training iteration on a collected batch: the update, SePS's scheduled
        identification and regrouping, then the collector's policy."""
        losses = update(self.loss, self.optim, batch, self.buffer, self.config)
        if self.schedule is not None:
            result = self.schedule.observe(
                batch, [self.actor, self.critic], loss=self.loss, optimizer=self.optim
            )
            if result is not None:
                self.identification, self.groups = result, list(self.schedule.groups)
                self.identifications.append(result)
        self.collector.update_policy_weights_()
        return losses

    def system_neural_diversity(self, batch: TensorDictBase) -> float:
        """SND of the actor on the agents' observations of ``batch``
        (:func:`~torchrl_seps.diversity.system_neural_diversity`; FuPS+id's appended ids are
        replaced by each agent's own)."""
        observations = batch[self.config.group, "observation"]
        if self.agent_features is not None:
            observations = observations[..., : -self.agent_features.shape[-1]]
        return system_neural_diversity(
            self.actor, observations, self.env.n_agents, agent_features=self.agent_features
        )

    def iterations(self) -> Iterator[Iteration]:
        """Collects a batch and trains on it, until the collector's frames are spent.

        Time the caller spends between two iterations (evaluation, logging) is in neither's
        timings.
        """
        start = time.perf_counter()
        for batch in self.collector:
            collected = time.perf_counter()
            identifications = len(self.schedule.history) if self.schedule is not None else 0
            losses = self.train_step(batch)
            identified = self.schedule is not None and len(self.schedule.history) > identifications
            yield Iteration(batch, losses, collected - start, time.perf_counter() - collected,
                            self.identification if identified else None)
            start = time.perf_counter()


def make_trainer(method: str, seed: int, config: TrainerConfig, *, progress: bool = False) -> Trainer:
    """Env, groups (SePS: identification), actor, critic, loss, optimizer and collector.

    ``progress`` shows the progress bars of SePS's identification from a random policy."""
    torch.manual_seed(seed)
    device = resolve_device(config.device)
    env_options = dict(device=device, **config.env_overrides)
    env = make_env(config.preset, config.num_envs, seed=seed, **env_options)
    eval_env = make_env(config.preset, config.eval_envs, seed=seed + 10_000, **env_options)
    groups, identification = choose_groups(method, env, config, seed, progress)
    schedule = make_schedule(method, env, config, seed)
    agent_features = None
    if method == "fups_id":
        observation = (config.group, "observation")
        identity = AgentIdentityTransform.one_hot(env.n_agents, in_key=observation)
        agent_features = identity.features
        env.append_transform(identity)
        eval_env.append_transform(AgentIdentityTransform.one_hot(env.n_agents, in_key=observation))
    model = dict(group=config.group, depth=config.depth, num_cells=config.num_cells, device=device)
    actor = make_actor(env, groups, **model)
    critic = make_critic(env, groups, centralized=config.centralized_critic, **model)
    loss = make_loss(config, actor, critic)
    identification_frames = identification.frames if identification is not None else 0
    training_frames = config.frames - identification_frames
    collector = Collector(
        env,
        actor,
        frames_per_batch=config.frames_per_batch,
        total_frames=training_frames // config.frames_per_batch * config.frames_per_batch,
        device=device,
        auto_register_policy_transforms=False,
    )
    return Trainer(
        env, eval_env, groups, identification, identification_frames, actor, critic, loss,
        optim=torch.optim.Adam(loss.parameters(), lr=config.lr, eps=1e-5),
        buffer=make_minibatch_buffer(config, device), collector=collector, config=config,
        schedule=schedule, agent_features=agent_features,
    )
