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

import importlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from tensordict import TensorDictBase
from torchrl import timeit
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
from torchrl_seps.scenarios import agent_types, episode_length, list_presets, make_env
from torchrl_seps.settings import ACTIVATIONS, EVAL_POLICIES, METHODS, TrainerSettings
from torchrl_seps.transforms import AgentIdentityTransform

__all__ = [
    "METHODS",
    "TrainerConfig",
    "Iteration",
    "Trainer",
    "build_env",
    "choose_groups",
    "evaluate",
    "make_loss",
    "make_schedule",
    "make_trainer",
    "team_return_of_finished_episodes",
    "true_types",
    "update",
]

@dataclass
class TrainerConfig(TrainerSettings):
    """What one training run needs: scenario, algorithm, networks, SePS's identification,
    evaluation and device. Nothing about sweeps: which methods and seeds run, and where their
    results go, are the caller's.

    The fields, their defaults and help are :class:`~torchrl_seps.settings.TrainerSettings`'
    (torch-free, for a command line built before torch loads): ``benchmarks/vmas_seps.py`` makes
    every field a ``--kebab-case`` flag.

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

    def identification(self, seed: int, progress: bool = False) -> IdentificationOptions:
        """The settings of SePS's identifications in a run with ``seed``: ``id_frames``,
        ``id_epochs`` (when set) and ``n_groups``, the other defaults of
        :class:`~torchrl_seps.identification.IdentificationOptions`."""
        epochs = {} if self.id_epochs is None else {"epochs": self.id_epochs}
        return IdentificationOptions(
            frames=self.id_frames, n_groups=self.n_groups, seed=seed, progress=progress, **epochs
        )

    def network(self) -> dict:
        """The keyword arguments of :func:`~torchrl_seps.policies.make_actor` and
        :func:`~torchrl_seps.policies.make_critic` that this config sets."""
        activation = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[self.activation]
        return dict(group=self.group, depth=self.depth, num_cells=self.num_cells, activation_class=activation)

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
        for name in ("preset", "group", "algorithm", "id_policy", "activation", "eval_policy", "device"):
            check_instance(_flag(name), getattr(self, name), str, "a str")
        if self.env is not None:
            check_instance("--env", self.env, str, "a str, MODULE:FUNCTION")
        for name in ("continuous_actions", "centralized_critic", "normalize_advantage"):
            check_bool(_flag(name), getattr(self, name))
        if self.env is None and self.preset not in list_presets(vmas_scenarios=True):
            raise ValueError(f"--preset {self.preset!r} is unknown; presets: {list(list_presets())}, "
                             "or any VMAS scenario name.")
        if self.algorithm not in ("ppo", "a2c"):
            raise ValueError(f"--algorithm must be 'ppo' or 'a2c', got {self.algorithm!r}.")
        if self.centralized_critic and self.algorithm != "ppo":
            raise ValueError("--centralized-critic (MAPPO) needs --algorithm ppo.")
        if self.eval_policy not in EVAL_POLICIES:
            raise ValueError(f"--eval-policy must be one of {list(EVAL_POLICIES)}, got {self.eval_policy!r}.")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"--activation must be one of {list(ACTIVATIONS)}, got {self.activation!r}.")
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
        env = build_env(self, num_envs=1, seed=0)  # checks the scenario settings
        try:
            if episode_length(env) is None:
                raise ValueError(f"{self.scenario!r} has no episode length: its env needs a StepCounter("
                                 "max_steps=...) transform (e.g. --scenario-kwargs max_steps=100).")
            if "oracle" in methods and true_types(env) is None:
                raise ValueError(f"--methods oracle needs the true agent types, unknown for {self.scenario!r}.")
            try:
                keys = GroupKeys.of(env, self.group)  # the group's per-agent entries
            except ValueError as error:
                raise ValueError(f"--group {self.group!r}: {error}") from None
            n_agents = env.full_observation_spec[keys.observation].shape[len(env.batch_size)]
        finally:
            env.close()
        if self.n_groups is not None and self.n_groups > n_agents:
            raise ValueError(f"--n-groups must be an int in 1..{n_agents} (the agents), got {self.n_groups}.")
        if self.frames_per_batch % self.minibatches:
            raise ValueError(
                f"--minibatches ({self.minibatches}) must divide the frames per batch "
                f"(num_envs * rollout_steps = {self.frames_per_batch})."
            )
        seps = "seps" in methods
        needed = self.frames_per_batch + (self.id_frames if seps else 0)
        if self.frames < needed:
            raise ValueError(
                f"--frames must be >= {needed} ("
                + (f"SePS identifies from --id-frames {self.id_frames}, then trains " if seps else "")
                + f"one batch of num_envs * rollout_steps = {self.frames_per_batch}), got {self.frames}."
            )


def _flag(name: str) -> str:
    """The command-line flag of a config field."""
    return "--" + name.replace("_", "-")


def load_env_factory(spec: str) -> Callable[..., EnvBase]:
    """The function ``"module:function"`` names (:class:`TrainerConfig`'s ``env``)."""
    module_name, colon, name = spec.partition(":")
    if not colon or not module_name or not name:
        raise ValueError(f"--env must be MODULE:FUNCTION, got {spec!r}.")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"--env {spec!r}: cannot import {module_name!r} ({error}).") from None
    factory = getattr(module, name, None)
    if not callable(factory):
        raise ValueError(f"--env {spec!r}: module {module_name!r} has no function {name!r}.")
    return factory


def build_env(config: TrainerSettings, num_envs: int, *, seed: int | None = None,
              device: str | torch.device = "cpu") -> EnvBase:
    """The env of ``config``: its ``env`` factory's, or :func:`~torchrl_seps.scenarios.make_env`'s
    of its preset, with its ``env_overrides``; both are called with the same keyword arguments."""
    if config.env is None:
        return make_env(config.preset, num_envs, device=device, seed=seed, **config.env_overrides)
    env = load_env_factory(config.env)(num_envs=num_envs, seed=seed, device=device, **config.env_overrides)
    if not isinstance(env, EnvBase):
        raise TypeError(f"--env {config.env!r} must return a TorchRL EnvBase, got {type(env).__name__}.")
    return env


def true_types(env: EnvBase) -> list[int] | None:
    """The env's hidden agent types (:func:`~torchrl_seps.scenarios.agent_types`), or ``None``
    where they are unknown: VMAS's own scenarios, an env that is neither VMAS nor a grid world."""
    try:
        types = agent_types(env)
    except TypeError:
        return None
    return None if types is None else types.tolist()


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
        return true_types(env), None
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
            critic_coeff=config.critic_coeff, loss_critic_type="l2",
            normalize_advantage=config.normalize_advantage,
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
    Each phase is timed with TorchRL's ``timeit`` (``timeit.todict()``; ``benchmarks/iteration_profile.py``).

    Returns:
        the losses of every gradient step, stacked, each with the gradient norm before clipping
        (``"grad_norm"``).
    """
    with torch.no_grad(), timeit("update: advantages"):
        loss.value_estimator(
            batch, params=loss.critic_network_params, target_params=loss.target_critic_network_params
        )
    if config.algorithm == "a2c":
        minibatches = [batch.reshape(-1)]
    else:
        buffer.extend(batch.reshape(-1))
        minibatches = [None] * (config.ppo_epochs * config.minibatches)
    steps = []
    for minibatch in minibatches:
        if minibatch is None:
            with timeit("update: minibatch sampling"):
                minibatch = buffer.sample()
        with timeit("update: loss forward"):
            losses = loss(minibatch)
            total = sum(value for key, value in losses.items() if key.startswith("loss_"))
        with timeit("update: backward"):
            total.backward()
        with timeit("update: gradient step"):
            grad_norm = torch.nn.utils.clip_grad_norm_(loss.parameters(), config.max_grad_norm)
            optim.step()
            optim.zero_grad()
        steps.append(losses.detach().set("grad_norm", grad_norm.detach()))
    return torch.stack(steps)


@torch.no_grad()
def evaluate(env: EnvBase, actor: torch.nn.Module, max_steps: int, *, group: str, policy: str = "mode") -> float:
    """Mean team return (sum over the agents of ``group``) of one episode per env, each agent
    taking its most likely action (``policy="mode"``) or sampling its action (``"sample"``)."""
    if policy not in EVAL_POLICIES:
        raise ValueError(f"policy must be one of {list(EVAL_POLICIES)}, got {policy!r}.")
    exploration = ExplorationType.DETERMINISTIC if policy == "mode" else ExplorationType.RANDOM
    with set_exploration_type(exploration):
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
    env = build_env(config, config.num_envs, seed=seed, device=device)
    eval_env = build_env(config, config.eval_envs, seed=seed + 10_000, device=device)
    groups, identification = choose_groups(method, env, config, seed, progress)
    schedule = make_schedule(method, env, config, seed)
    agent_features = None
    if method == "fups_id":
        observation = (config.group, "observation")
        identity = AgentIdentityTransform.one_hot(env.n_agents, in_key=observation)
        agent_features = identity.features
        env.append_transform(identity)
        eval_env.append_transform(AgentIdentityTransform.one_hot(env.n_agents, in_key=observation))
    actor = make_actor(env, groups, device=device, **config.network())
    critic = make_critic(env, groups, centralized=config.centralized_critic, device=device, **config.network())
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
