"""Identification: collect transitions, fit the identity model, embed the agents, cluster them.

:func:`identify_groups` runs the whole SePS pre-training stage on any TorchRL multi-agent
environment and returns an :class:`IdentificationResult`. The stages are also available one by
one: :func:`collect_transitions`, :func:`identity_model`, :func:`fit_identity` and
:class:`~torchrl_seps.clustering.AgentClustering`. Their settings and defaults are those of one
:class:`IdentificationOptions`; the entries they read, those of one :class:`GroupKeys`.
"""
from __future__ import annotations

import copy
import itertools
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import clone
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torchrl.collectors import Collector
from torchrl.data import Binary, Categorical, MultiCategorical, MultiOneHot, OneHot
from torchrl.envs import EnvBase

from torchrl_seps._checks import (
    check_bool,
    check_float,
    check_fraction,
    check_instance,
    check_int,
    check_options,
)
from torchrl_seps.clustering import AgentClustering, PartitionTree
from torchrl_seps.model_selection import (
    TRAJECTORY_KEY,
    HeldOutEvidence,
    TiedErrors,
    agent_unit_errors,
    choose_partition,
    split_heldout,
)
from torchrl_seps.modules.identity import IdentityDecoder, IdentityEncoder
from torchrl_seps.objectives.identity import TARGETS, IdentityLoss
from torchrl_seps.plotting import plot_embeddings

__all__ = [
    "FitHistory",
    "GroupKeys",
    "IdentificationOptions",
    "IdentificationResult",
    "collect_transitions",
    "fit_identity",
    "identify_from_transitions",
    "identify_groups",
    "identity_model",
]

logger = logging.getLogger(__name__)

# Steps of the environment per collector batch: progress is reported once per batch.
_STEPS_PER_BATCH = 50
#: Share of the fitting trajectories kept aside to stop the fit on (:func:`fit_identity`).
VALIDATION_FRACTION = 0.15


@dataclass(frozen=True)
class IdentificationOptions:
    """The settings of an identification, with their defaults, checked when built.

    One object serves every caller: :func:`identify_groups`, :func:`identify_from_transitions`,
    :func:`identity_model`, :func:`fit_identity` and
    :class:`~torchrl_seps.schedule.SePSSchedule` take it as ``options`` and, as plain keyword
    arguments, any of its fields to replace (``identify_groups(env, frames=25_600, seed=0)``).
    Each reads the fields of its stages.

    Attributes:
        frames (int): frames (environment steps times batched envs) to collect, or for
            :class:`~torchrl_seps.schedule.SePSSchedule` the frames of the recent batches each
            identification fits on. Defaults to ``12_800`` (e.g. 64 VMAS envs for 200 steps).
        n_groups (int, optional): the number of groups; ``None`` chooses it on held-out data.
        latent_dim (int): identity latent size. Defaults to ``5``.
        targets (sequence of str): what the decoder reconstructs. Defaults to
            ``("next_observation", "reward")``.
        kl_weight (float): KL weight. Defaults to ``1e-4``.
        epochs (int): passes over the data, at most. Defaults to ``16``.
        batch_size (int): frames per update. Defaults to ``256``.
        lr (float): Adam learning rate. Defaults to ``1e-2``.
        agents_per_frame (int, optional): agents of every frame an update fits on, drawn at
            random in larger teams (:func:`fit_identity`); ``None`` takes every agent.
            Defaults to ``64``.
        heldout_fraction (float): share of the trajectories held out to choose K. Defaults to
            ``0.25``.
        alpha (float): level of the held-out test: the chance, for a K as good as one identity
            per agent (K = N), of being judged worse. Defaults to ``0.01``: a spurious split
            costs sample efficiency on every task where sharing is right, so sharing needs
            strong evidence against it.
        clustering (AgentClustering, optional): the k-means settings (``n_init``) used when
            ``n_groups`` is given; its ``n_groups`` is overridden by ``n_groups`` and its
            ``random_state`` by ``seed``. Defaults to ``AgentClustering()``.
        seed (int, optional): seeds the env, the random policy, the model, the held-out split,
            k-means and the bootstrap; ``None`` leaves them unseeded.
        progress (bool): show progress bars (tqdm) for collection and fitting. Defaults to
            ``False``.

    Examples:
        >>> options = IdentificationOptions(epochs=4, seed=0)
        >>> options.frames, options.epochs
        (12800, 4)
        >>> IdentificationOptions(alpha=1.0)
        Traceback (most recent call last):
        ...
        ValueError: alpha must be a float in (0, 1), got alpha=1.0.
    """

    frames: int = 12_800
    n_groups: int | None = None
    latent_dim: int = 5
    targets: Sequence[str] = TARGETS
    kl_weight: float = 1e-4
    epochs: int = 16
    batch_size: int = 256
    lr: float = 1e-2
    agents_per_frame: int | None = 64
    heldout_fraction: float = 0.25
    alpha: float = 0.01
    clustering: AgentClustering | None = None
    seed: int | None = None
    progress: bool = False

    def __post_init__(self) -> None:
        check_int("frames", self.frames)
        check_int("n_groups", self.n_groups, minimum=None, optional=True)  # its range: by N
        check_int("latent_dim", self.latent_dim)
        check_int("epochs", self.epochs)
        check_int("batch_size", self.batch_size)
        check_float("lr", self.lr, positive=True)
        check_int("agents_per_frame", self.agents_per_frame, optional=True)
        check_fraction("heldout_fraction", self.heldout_fraction)
        check_fraction("alpha", self.alpha)
        if self.clustering is not None:
            check_instance("clustering", self.clustering, AgentClustering, "an AgentClustering")
        check_int("seed", self.seed, minimum=None, optional=True)
        check_bool("progress", self.progress)

    @classmethod
    def resolve(
        cls, options: IdentificationOptions | None, settings: dict[str, Any], owner: str
    ) -> IdentificationOptions:
        """``options`` (the defaults when ``None``) with ``settings`` replacing its fields,
        checked; ``owner`` names the caller in the error for a setting that is not a field.

        Examples:
            >>> IdentificationOptions.resolve(IdentificationOptions(seed=0), {"frames": 256}, "f")
            IdentificationOptions(frames=256, ..., seed=0, progress=False)
            >>> IdentificationOptions.resolve(None, {"frame": 256}, "identify_groups")
            Traceback (most recent call last):
            ...
            TypeError: identify_groups got unexpected keyword argument(s) ['frame']; valid ones are [...]
        """
        if options is None:
            options = cls()
        check_instance("options", options, cls, "an IdentificationOptions")
        if not settings:
            return options
        check_options(owner, settings, [spec.name for spec in fields(cls)])
        return replace(options, **settings)

    def check_agents(self, n_agents: int) -> None:
        """Checks the settings whose range depends on the number of agents: ``n_groups`` in
        ``1..n_agents``.

        Examples:
            >>> IdentificationOptions(n_groups=4).check_agents(3)
            Traceback (most recent call last):
            ...
            ValueError: n_groups must be an int in 1..n_agents=3 (or None: chosen automatically), got n_groups=4.
        """
        if self.n_groups is not None and not 1 <= self.n_groups <= n_agents:
            raise ValueError(
                f"n_groups must be an int in 1..n_agents={n_agents} (or None: chosen "
                f"automatically), got n_groups={self.n_groups}."
            )
        if self.clustering is not None:
            self.clustering.validate_params(n_agents)

    def seeded(self, offset: int) -> IdentificationOptions:
        """A copy whose seed is ``seed + offset`` (unseeded stays unseeded)."""
        return self if self.seed is None else replace(self, seed=self.seed + offset)


@dataclass(frozen=True)
class GroupKeys:
    """The entries of one agent group of a multi-agent env that identification reads.

    :meth:`of` checks the env once; every stage then reads the keys from here.

    Attributes:
        group (str): the agent group (a key of ``env.group_map``).
        observation, action, reward (tuple[str, str]): ``(group, "observation")``, ...

    Examples:
        >>> from torchrl.envs.libs.vmas import VmasEnv
        >>> keys = GroupKeys.of(VmasEnv("navigation", num_envs=2, n_agents=2, seed=0))
        >>> keys.group, keys.transitions[2]
        ('agents', ('next', 'agents', 'observation'))
    """

    group: str
    observation: tuple[str, str]
    action: tuple[str, str]
    reward: tuple[str, str]

    @classmethod
    def named(cls, group: str) -> GroupKeys:
        return cls(group, (group, "observation"), (group, "action"), (group, "reward"))

    @property
    def transitions(self) -> list[NestedKey]:
        """The entries of a transition, as a collector's batch holds them: each agent's
        observation and action, the next observation and reward, and the trajectory ids."""
        return [
            self.observation, self.action, ("next", *self.observation), ("next", *self.reward),
            TRAJECTORY_KEY,
        ]

    @classmethod
    def of(cls, env: EnvBase, group: str | None = None) -> GroupKeys:
        """Checks that ``env`` is a multi-agent env with ``group``'s per-agent observation,
        action and reward, and returns their keys (``group=None``: the env's only agent group)."""
        check_instance("env", env, EnvBase, "a torchrl EnvBase")
        specs = {
            "observation": env.full_observation_spec,
            "action": env.full_action_spec,
            "reward": env.full_reward_spec,
        }
        if group is None:
            groups = _agent_groups(specs)
            if len(groups) != 1:
                raise ValueError(
                    f"group=None needs an env with exactly one agent group, but env has "
                    f"{len(groups)}: {groups}; pass group= to choose the agents to identify "
                    "(agents of different groups never share a network)."
                )
            group = groups[0]
        check_instance("group", group, str, "a str (a key of env.group_map)")
        keys = cls.named(group)
        for leaf, spec in specs.items():
            key = getattr(keys, leaf)
            if key not in spec.keys(True, True):
                raise ValueError(
                    f"env has no {leaf} entry {key} for group={group!r}; its agent groups are "
                    f"{_agent_groups(specs)} and its {leaf} keys "
                    f"{sorted(map(str, spec.keys(True, True)))}."
                )
            if len(spec[key].shape) < len(env.batch_size) + 1:
                raise ValueError(
                    f"the {leaf} spec at {key} has shape {tuple(spec[key].shape)}; expected a "
                    f"per-agent entry of shape (*{tuple(env.batch_size)}, n_agents, ...)."
                )
            if -1 in spec[key].shape:
                raise ValueError(
                    f"the agents of group {group!r} have {leaf} specs of different shapes "
                    f"({key}: {tuple(spec[key].shape)}, -1 where they differ); identification "
                    "fits one model to every agent of a group: give them one spec (pad the "
                    "entries) or put agents of different specs in different groups."
                )
        mask = (group, "action_mask")
        if mask in specs["observation"].keys(True, True) or mask in specs["action"].keys(True, True):
            raise ValueError(
                f"env has an action mask {mask}; identification fits every agent's transitions "
                "as if its sampled action had been applied and does not honour masks: identify "
                "on an env without masked actions."
            )
        return keys


def _agent_groups(specs: dict[str, Any]) -> list[str]:
    """The env's agent groups: top-level entries with an observation, an action and a reward."""
    return [
        name for name in specs["action"].keys()
        if isinstance(name, str)
        and all(getattr(GroupKeys.named(name), leaf) in spec.keys(True, True) for leaf, spec in specs.items())
    ]


def _check_finite(data: TensorDictBase, keys: Sequence[tuple]) -> None:
    for key in keys:
        value = data.get(key)
        if value.dtype.is_floating_point and not torch.isfinite(value).all():
            bad = int((~torch.isfinite(value)).sum())
            raise ValueError(
                f"the collected {key} holds {bad} NaN or infinite values out of "
                f"{value.numel()}; expected finite data from the environment."
            )


def collect_transitions(
    env: EnvBase,
    frames: int,
    *,
    policy: Callable[[TensorDictBase], TensorDictBase] | None = None,
    group: str | None = None,
    progress: bool = False,
) -> TensorDictBase:
    """Collects ``frames`` transitions of every agent of ``group`` with a TorchRL ``Collector``.

    Each row of the result is one step of one environment: the agents' observation and action,
    and under ``"next"`` the observation and reward that followed them. The next observation is
    the one the step produced, read from the collector's ``("next", ...)`` entries, so a step that
    ended an episode (done, terminated or truncated) keeps its own final observation: the first
    observation of the following episode is never paired with the last one of the previous.
    The env is left open: a batched env (``SerialEnv``, ``ParallelEnv``) can be used and closed
    afterwards as before.

    Args:
        env (EnvBase): a multi-agent environment with per-agent entries ``(group,
            "observation")``, ``(group, "action")`` and ``(group, "reward")``, as VMAS and the
            other TorchRL multi-agent wrappers provide.
        frames (int): number of frames (environment steps times batched environments); rounded
            up to whole collector batches of at most 50 steps of the batched environment.

    Keyword Args:
        policy (callable, optional): the policy that acts; ``None`` (the default) acts uniformly
            at random from the action spec.
        group (str, optional): the agent group (a key of ``env.group_map``). Defaults to
            the env's only agent group.
        progress (bool, optional): show a progress bar (tqdm). Defaults to ``False``.

    Returns:
        a TensorDict of batch size ``[frames]`` holding ``(group, "observation")``,
        ``(group, "action")``, ``("next", group, "observation")`` and ``("next", group,
        "reward")``, each of shape ``(frames, n_agents, ...)``, and the collector's trajectory
        id of every frame, ``("collector", "traj_ids")``.

    Raises:
        TypeError, ValueError: on a wrong env, a missing entry, a non-positive ``frames``, or
            collected data holding NaN or infinite values.

    Examples:
        >>> from torchrl.envs.libs.vmas import VmasEnv
        >>> env = VmasEnv("navigation", num_envs=4, n_agents=2, seed=0)
        >>> data = collect_transitions(env, frames=40)
        >>> data.batch_size, data["next", "agents", "reward"].shape
        (torch.Size([40]), torch.Size([40, 2, 1]))
    """
    keys = GroupKeys.of(env, group)
    check_int("frames", frames)
    return _collect(env, keys, frames, policy, progress)


def _collect(
    env: EnvBase, keys: GroupKeys, frames: int, policy: Callable | None, progress: bool
) -> TensorDictBase:
    """:func:`collect_transitions` of a checked env."""
    n_envs = max(1, env.batch_size.numel())
    steps = math.ceil(frames / n_envs)
    n_batches = math.ceil(steps / _STEPS_PER_BATCH)
    steps_per_batch = math.ceil(steps / n_batches)
    collector = Collector(  # endless: a collector that reaches total_frames closes the env
        env,
        policy,
        frames_per_batch=steps_per_batch * n_envs,
        total_frames=-1,
        auto_register_policy_transforms=False,
    )
    wanted = keys.transitions
    batches = []
    bar = _progress_bar(progress, total=n_batches * steps_per_batch * n_envs, desc="collect")
    try:
        for batch in itertools.islice(collector, n_batches):
            batch = batch.select(*wanted).reshape(-1)
            _check_finite(batch, wanted)
            batches.append(batch)
            if bar is not None:
                bar.update(batch.numel())
    finally:
        collector.shutdown(close_env=False)
        if bar is not None:
            bar.close()
    return torch.cat(batches)


def identity_model(
    env: EnvBase,
    options: IdentificationOptions | None = None,
    *,
    group: str | None = None,
    **settings: Any,
) -> IdentityLoss:
    """Builds the identity encoder, decoder and loss that fit ``env``'s agents of ``group``.

    Sizes come from the env's specs: the number of agents and the observation size from the
    observation spec, the reward size from the reward spec, and the action encoding from the
    action spec (a ``Categorical`` action is one-hot encoded; ``OneHot`` and continuous actions
    are used as they are). The modules are placed on the env's device.

    Args:
        env (EnvBase): a multi-agent env with per-agent entries under ``group``.
        options (IdentificationOptions, optional): its ``latent_dim``, ``targets`` and
            ``kl_weight`` are used. Defaults to ``IdentificationOptions()``.

    Keyword Args:
        group (str, optional): the agent group (a key of ``env.group_map``). Defaults to
            the env's only agent group.
        **settings: fields of :class:`IdentificationOptions` replacing those of ``options``.

    Returns:
        an :class:`~torchrl_seps.objectives.IdentityLoss` holding the encoder and decoder.

    Examples:
        >>> from torchrl.envs.libs.vmas import VmasEnv
        >>> env = VmasEnv("navigation", num_envs=2, n_agents=3, continuous_actions=False, seed=0)
        >>> loss = identity_model(env, latent_dim=3)
        >>> loss.encoder.n_agents, loss.encoder.latent_dim, loss.decoder.observation_dim
        (3, 3, 18)
    """
    options = IdentificationOptions.resolve(options, settings, "identity_model")
    return _identity_model(env, GroupKeys.of(env, group), options)


def _identity_model(env: EnvBase, keys: GroupKeys, options: IdentificationOptions) -> IdentityLoss:
    """:func:`identity_model` of a checked env."""
    group = keys.group
    n_batch = len(env.batch_size)
    obs_spec = env.full_observation_spec[keys.observation]
    if len(obs_spec.shape) != n_batch + 2:
        raise ValueError(
            f"the observation spec at {keys.observation} has shape {tuple(obs_spec.shape)}; "
            f"expected (*{tuple(env.batch_size)}, n_agents, n_features)."
        )
    n_agents, obs_dim = obs_spec.shape[-2:]
    reward_spec = env.full_reward_spec[keys.reward]
    reward_dim = reward_spec.shape[-1] if len(reward_spec.shape) == n_batch + 2 else 1
    action_spec = env.full_action_spec[keys.action]
    if isinstance(action_spec, (MultiCategorical, MultiOneHot, Binary)):
        raise TypeError(
            f"the action spec at {keys.action} is a {type(action_spec).__name__}; supported "
            "are Categorical, OneHot and continuous actions."
        )
    categorical = isinstance(action_spec, Categorical)
    if categorical:
        action_dim = action_spec.space.n
    elif isinstance(action_spec, OneHot) or action_spec.dtype.is_floating_point:
        action_dim = action_spec.shape[-1]
    else:
        raise TypeError(
            f"the action spec at {keys.action} is a {type(action_spec).__name__} of dtype "
            f"{action_spec.dtype}; supported are Categorical, OneHot and continuous actions."
        )
    encoder = IdentityEncoder(
        n_agents,
        options.latent_dim,
        in_keys=[(group, "agent_id")],
        out_keys=[(group, "identity", "loc"), (group, "identity", "scale")],
    )
    decoder = IdentityDecoder(
        options.latent_dim,
        obs_dim,
        action_dim,
        categorical_actions=categorical,
        reward_dim=reward_dim,
        in_keys=[(group, "identity", "latent"), keys.observation, keys.action],
        out_keys=[(group, "identity", "next_observation"), (group, "identity", "reward")],
    )
    loss = IdentityLoss(encoder, decoder, targets=options.targets, kl_weight=options.kl_weight)
    loss.set_keys(observation=keys.observation, reward=keys.reward, agent_index=(group, "agent_index"))
    return loss.to(env.device) if env.device is not None else loss


@dataclass
class FitHistory:
    """How :func:`fit_identity` went.

    Attributes:
        loss (list[float]): mean training loss of the updates of every epoch run.
        validation (list[float]): after every epoch, the mean reconstruction error on the
            validation data with every agent's latent at its embedding (empty without
            validation data).
        best_epoch (int): the epoch (from 1) whose parameters were kept: the one of lowest
            validation loss, or the last without validation data.
    """

    loss: list[float]
    validation: list[float]
    best_epoch: int


def fit_identity(
    loss: IdentityLoss,
    data: TensorDictBase,
    options: IdentificationOptions | None = None,
    *,
    validation: TensorDictBase | None = None,
    patience: int = 3,
    **settings: Any,
) -> FitHistory:
    """Fits the identity model of ``loss`` to ``data`` with Adam.

    The loss's standardisation statistics are first set from ``data``
    (:meth:`~torchrl_seps.objectives.IdentityLoss.set_statistics`). Each epoch visits the frames
    once in a random order, ``batch_size`` frames per update. In teams of more than
    ``agents_per_frame`` agents, every frame of an update contributes that many of its agents,
    drawn at random without replacement for each frame and update, so an update costs the same
    for any team size and the fit grows with the number of agents only through the encoder;
    smaller teams contribute every agent of every frame.

    With ``validation`` data (transitions of other trajectories), the model's error on them is
    measured after every epoch, with each agent's latent at its embedding; the fit stops once
    ``patience`` epochs in a row have not improved on the best, and the parameters of the best
    epoch are kept. A decoder that starts to memorise the training trajectories (their layouts,
    say) stops there, before its predictions come to depend on the latent in ways that do not
    hold on other trajectories. Without it, all ``epochs`` are run.

    Args:
        loss (IdentityLoss): the model to fit, e.g. from :func:`identity_model`.
        data (TensorDictBase): frames from :func:`collect_transitions`, at least ``batch_size``.
        options (IdentificationOptions, optional): its ``epochs`` (at most), ``batch_size``,
            ``lr`` (Adam), ``agents_per_frame`` and ``progress`` are used. Defaults to
            ``IdentificationOptions()``.

    Keyword Args:
        validation (TensorDictBase, optional): frames to stop on, as ``data``; at most 2**18
            (frame, agent) pairs of them are used, evenly spaced. Defaults to ``None``.
        patience (int, optional): epochs without a better validation loss before stopping.
            Defaults to ``3``.
        **settings: fields of :class:`IdentificationOptions` replacing those of ``options``.

    Returns:
        a :class:`FitHistory`.

    Raises:
        ValueError: when ``data`` holds fewer than ``batch_size`` frames, or NaN / inf values.

    Examples:
        >>> from torchrl.envs.libs.vmas import VmasEnv
        >>> env = VmasEnv("navigation", num_envs=4, n_agents=2, seed=0)
        >>> loss = identity_model(env)
        >>> history = fit_identity(loss, collect_transitions(env, frames=64), epochs=2, batch_size=32)
        >>> len(history.loss), history.best_epoch
        (2, 2)
    """
    options = IdentificationOptions.resolve(options, settings, "fit_identity")
    epochs, batch_size, agents_per_frame = options.epochs, options.batch_size, options.agents_per_frame
    check_instance("loss", loss, IdentityLoss, "an IdentityLoss")
    for name, value in [("data", data), ("validation", validation)]:
        if (value is not None or name == "data") and (
            not isinstance(value, TensorDictBase) or value.ndim != 1
        ):
            raise TypeError(
                f"{name} must be a TensorDict with one batch dimension (frames), as "
                f"collect_transitions returns; got {type(value).__name__}"
                + (f" of batch size {tuple(value.batch_size)}." if isinstance(value, TensorDictBase) else ".")
            )
    check_int("patience", patience)
    n_frames = data.shape[0]
    if n_frames < batch_size:
        raise ValueError(
            f"too few frames to fit: data holds {n_frames} frames, expected at least "
            f"batch_size={batch_size}."
        )
    loss.set_statistics(data)
    data = data.select(*loss.in_keys)
    if validation is not None:
        loss.check_finite(validation)
        validation = _evenly_spaced(validation.select(*loss.in_keys), _VALIDATION_ROWS)
    sample = agents_per_frame is not None and agents_per_frame < loss.encoder.n_agents
    optimizer = torch.optim.Adam(loss.parameters(), lr=options.lr)
    n_batches = n_frames // batch_size  # the remainder of a shuffled epoch is left out
    history = FitHistory(loss=[], validation=[], best_epoch=0)
    best_state = None
    bar = _progress_bar(options.progress, total=epochs * n_batches, desc="fit identity")
    try:
        for epoch in range(1, epochs + 1):
            order = torch.randperm(n_frames)
            total = 0.0
            for b in range(n_batches):
                frames = order[b * batch_size : (b + 1) * batch_size]
                if sample:
                    batch = _agent_sample(data, frames, agents_per_frame, loss.tensor_keys.agent_index)
                else:
                    batch = data[frames]
                out = loss(batch)
                value = out["loss_reconstruction"] + out["loss_kl"]
                optimizer.zero_grad()
                value.backward()
                optimizer.step()
                total += value.item()
                if bar is not None:
                    bar.update(1)
            history.loss.append(total / n_batches)
            if validation is None:
                history.best_epoch = epoch
                logger.debug("identity epoch %d: loss %.4f", epoch, history.loss[-1])
                continue
            history.validation.append(_validation_loss(loss, validation))
            logger.debug(
                "identity epoch %d: loss %.4f, validation %.4f",
                epoch, history.loss[-1], history.validation[-1],
            )
            if history.validation[-1] < min(history.validation[:-1], default=math.inf):
                history.best_epoch = epoch
                best_state = copy.deepcopy(loss.state_dict())
            elif epoch - history.best_epoch >= patience:
                break
    finally:
        if bar is not None:
            bar.close()
    if best_state is not None:
        loss.load_state_dict(best_state)
    return history


# (frame, agent) pairs of validation data scored after every epoch, at most
_VALIDATION_ROWS = 2**18


def _evenly_spaced(data: TensorDictBase, max_rows: int) -> TensorDictBase:
    """Evenly spaced frames of ``data``, at most ``max_rows`` (frame, agent) pairs of them."""
    n_agents = next(iter(data.values(True, True))).shape[1]
    step = -(-data.shape[0] * n_agents // max_rows)
    return data[::step] if step > 1 else data


@torch.no_grad()
def _validation_loss(loss: IdentityLoss, data: TensorDictBase) -> float:
    """Mean reconstruction error over ``data`` with every agent's latent at its embedding."""
    embeddings, _ = loss.encoder.agent_distribution()
    unit = torch.zeros(data.shape[0], dtype=torch.long)
    return agent_unit_errors(loss, data, unit, embeddings, 1).sum().item() / data.shape[0] / embeddings.shape[0]


def _agent_sample(data: TensorDictBase, frames: torch.Tensor, size: int, index_key: NestedKey) -> TensorDictBase:
    """``size`` agents of each of ``frames``, drawn without replacement for each frame, from
    ``data`` whose every entry is per agent; the agents' index goes to ``index_key``."""
    first = next(iter(data.values(True, True)))
    index = torch.rand(frames.numel(), first.shape[1], device=data.device).topk(size, dim=-1).indices
    rows = frames.to(data.device).unsqueeze(-1)
    out = data.apply(lambda value: value[rows, index], batch_size=[frames.numel()])
    out.set(index_key, index)
    return out


@dataclass
class IdentificationResult:
    """What :func:`identify_groups` found, the evidence for it, and how long each stage took.

    Attributes:
        groups (LongTensor): canonical group of each agent, shape ``[N]``.
        n_groups (int): number of groups.
        embeddings (Tensor): each agent's identity embedding (encoder mean), shape ``[N, latent]``.
        scales (Tensor): each agent's posterior standard deviation, shape ``[N, latent]``.
        decision (str): how K was chosen, in words: ``"given"``, or the held-out test's
            sentence (:meth:`HeldOutEvidence.describe`).
        evidence (HeldOutEvidence or None): held-out loss per candidate K with its
            uncertainty, the reference, the best and the chosen K; ``None`` when K was given.
        loss_curve (list[float]): mean training loss per epoch run.
        validation_curve (list[float]): validation loss after every epoch run
            (:class:`FitHistory`).
        epochs (int): the epoch whose parameters were kept.
        timings (dict[str, float]): seconds spent in ``"collect"``, ``"fit"`` and ``"cluster"``
            (k-means and the held-out test).
        frames (int): frames collected (fitted on and held out).
        heldout_frames (int): frames held out to choose K (0 when K was given).
        encoder (IdentityEncoder): the fitted encoder.
        clustering (AgentClustering): the k-means settings (used when K is given).

    Examples:
        >>> from torchrl.envs.libs.vmas import VmasEnv
        >>> env = VmasEnv("navigation", num_envs=4, n_agents=3, seed=0)
        >>> result = identify_groups(env, frames=256, epochs=1, batch_size=32, n_groups=2, seed=0)
        >>> result.n_groups, result.groups.shape, result.embeddings.shape
        (2, torch.Size([3]), torch.Size([3, 5]))
        >>> result.decision, result.evidence, result.heldout_frames  # K given: nothing held out
        ('given', None, 0)
        >>> result.frames
        256
    """

    groups: torch.Tensor
    n_groups: int
    embeddings: torch.Tensor
    scales: torch.Tensor
    decision: str
    evidence: HeldOutEvidence | None
    loss_curve: list[float]
    validation_curve: list[float]
    epochs: int
    timings: dict[str, float]
    frames: int
    heldout_frames: int
    encoder: IdentityEncoder = field(repr=False)
    clustering: AgentClustering = field(repr=False)

    @property
    def total_time(self) -> float:
        """Seconds from the start of collection to the end of clustering."""
        return sum(self.timings.values())

    def plot(self, path: str | Path, types: Sequence[int] | torch.Tensor | None = None,
             title: str | None = None) -> Path:
        """Saves the embeddings in 2-D (see :func:`~torchrl_seps.plotting.plot_embeddings`) and,
        when K was chosen, the held-out loss of every candidate K beside them."""
        return plot_embeddings(self.embeddings, self.groups, path, types=types, evidence=self.evidence,
                               title=title)


def identify_groups(
    env: EnvBase,
    options: IdentificationOptions | None = None,
    *,
    policy: Callable[[TensorDictBase], TensorDictBase] | None = None,
    group: str | None = None,
    **settings: Any,
) -> IdentificationResult:
    """Finds groups of agents that behave alike: collect, fit, embed, cluster, choose K.

    1. :func:`collect_transitions`: ``frames`` frames from ``env`` under ``policy`` (uniformly
       random by default);
    2. when K is to be chosen, :func:`~torchrl_seps.model_selection.split_heldout` holds out
       ``heldout_fraction`` of the trajectories;
    3. :func:`fit_identity`: the identity model of :func:`identity_model` (encoder, decoder,
       :class:`~torchrl_seps.objectives.IdentityLoss`) fitted on the rest, for at most
       ``epochs`` epochs: :data:`VALIDATION_FRACTION` of its trajectories are kept aside, and
       the fit stops once 3 epochs in a row have not lowered the error on them;
    4. each agent's embedding is its encoder mean;
    5. K given: k-means with K groups. K chosen: Ward's nested partitions of the embeddings
       (:class:`~torchrl_seps.clustering.PartitionTree`) are scored on the held-out
       trajectories with embeddings tied within groups, and the smallest K not worse than
       K = N (one identity per agent) beyond noise wins, found by bisection
       (:mod:`torchrl_seps.model_selection` says how, and what that guarantees).

    The settings (``frames``, ``n_groups``, ``epochs``, ``seed``, ...) and their defaults are
    those of :class:`IdentificationOptions`: pass one as ``options``, or any of its fields as
    keyword arguments, or both (the keywords replace the fields of ``options``). With a
    ``seed``, the env, the random policy, the model, the held-out split, k-means and the
    bootstrap are seeded, and the global random state is restored afterwards.

    Cost. Collection is the env's. The fit costs the same for any team larger than
    ``agents_per_frame`` (64 agents of every frame per update), and choosing K about
    ``2 log2 K`` candidates of at most 4 decoder passes over the held-out frames, each linear
    in the number of agents.

    Every argument is checked, and the model is built from the env's specs, before any frame is
    collected.

    .. note:: On a CPU whose cores other processes keep busy, torch's intra-op threads
        oversubscribe them: fitting this small model with two threads was measured ten times
        slower than with one on a shared 2-core machine. ``torch.set_num_threads(1)`` before the
        call avoids that.

    Args:
        env (EnvBase): a TorchRL multi-agent env with per-agent entries under ``group``.
        options (IdentificationOptions, optional): the settings. Defaults to
            ``IdentificationOptions()``.

    Keyword Args:
        policy (callable, optional): the acting policy; ``None`` acts at random.
        group (str, optional): the agent group (a key of ``env.group_map``). Defaults to
            the env's only agent group.
        **settings: fields of :class:`IdentificationOptions` replacing those of ``options``,
            e.g. ``frames=25_600, seed=0``.

    Returns:
        an :class:`IdentificationResult`.

    Examples:
        >>> from torchrl.envs.libs.vmas import VmasEnv
        >>> env = VmasEnv("balance", num_envs=4, n_agents=3, seed=0)
        >>> result = identify_groups(env, frames=256, epochs=1, batch_size=32, seed=0)
        >>> result.groups.shape, result.embeddings.shape
        (torch.Size([3]), torch.Size([3, 5]))
        >>> result.evidence.ks  # K = 1 was not worse than the reference, K = N
        [1, 3]
        >>> sorted(result.timings)
        ['cluster', 'collect', 'fit']
    """
    options = IdentificationOptions.resolve(options, settings, "identify_groups")
    keys = GroupKeys.of(env, group)
    if options.frames < options.batch_size:
        raise ValueError(
            f"too few frames to fit: frames={options.frames}, expected at least "
            f"batch_size={options.batch_size}."
        )
    clustering = _clustering(options)
    with torch.random.fork_rng(devices=[]):
        if options.seed is not None:
            torch.manual_seed(options.seed)
            env.set_seed(options.seed)
        loss = _identity_model(env, keys, options)
        clustering.validate_params(loss.encoder.n_agents)
        start = time.perf_counter()
        data = _collect(env, keys, options.frames, policy, options.progress)
        collect_time = time.perf_counter() - start
        logger.info("collected %d frames in %.1f s", data.shape[0], collect_time)
        result = identify_from_transitions(loss, data, options)
    result.timings = {"collect": collect_time, **result.timings}
    return result


def identify_from_transitions(
    loss: IdentityLoss,
    data: TensorDictBase,
    options: IdentificationOptions | None = None,
    **settings: Any,
) -> IdentificationResult:
    """Steps 2 to 5 of :func:`identify_groups` on transitions already collected, e.g. the
    batches of a policy being trained.

    Args:
        loss (IdentityLoss): the identity model to fit, e.g. from :func:`identity_model`.
        data (TensorDictBase): frames as :func:`collect_transitions` returns them; the held-out
            split uses their ``("collector", "traj_ids")`` (without it, blocks of consecutive
            frames).
        options (IdentificationOptions, optional): the settings, as :func:`identify_groups`
            reads them, less those of the data and the model (``frames``, ``latent_dim``,
            ``targets``, ``kl_weight``), which ``data`` and ``loss`` fix. ``seed`` seeds the
            held-out split, k-means and the bootstrap; the model's initialisation and batches
            follow torch's global random state.

    Keyword Args:
        **settings: fields of :class:`IdentificationOptions` replacing those of ``options``.

    Returns:
        an :class:`IdentificationResult`, with timings ``"fit"`` and ``"cluster"``.

    Examples:
        >>> from torchrl.envs.libs.vmas import VmasEnv
        >>> env = VmasEnv("navigation", num_envs=8, n_agents=3, seed=0)
        >>> data = collect_transitions(env, frames=400)
        >>> result = identify_from_transitions(identity_model(env), data, epochs=2, batch_size=32, seed=0)
        >>> result.frames, result.evidence.ks  # K = 1 and the reference, K = N, were scored
        (400, [1, 3])
    """
    options = IdentificationOptions.resolve(options, settings, "identify_from_transitions")
    check_instance("loss", loss, IdentityLoss, "an IdentityLoss")
    clustering = _clustering(options)
    clustering.validate_params(loss.encoder.n_agents)
    timings = {}
    start = time.perf_counter()
    fit_data, heldout, unit = data, None, None
    if options.n_groups is None:
        fit_data, heldout, unit = split_heldout(data, options.heldout_fraction, seed=options.seed)
    fit_data, validation, _ = split_heldout(fit_data, VALIDATION_FRACTION, seed=options.seed)
    history = fit_identity(
        loss, fit_data, replace(options, batch_size=min(options.batch_size, fit_data.shape[0])),
        validation=validation,
    )
    timings["fit"] = time.perf_counter() - start
    logger.info(
        "fitted the identity model in %.1f s: epoch %d of %d kept, training loss %.4f",
        timings["fit"], history.best_epoch, len(history.loss), history.loss[history.best_epoch - 1],
    )

    start = time.perf_counter()
    with torch.no_grad():
        embeddings, scales = loss.encoder.agent_distribution()
    if heldout is None:
        groups, evidence = clustering.fit(embeddings.cpu()).labels_, None
        decision = clustering.decision_
    else:
        groups, evidence = _choose_on_heldout(loss, heldout, unit, embeddings, options.alpha, options.seed)
        decision = f"held-out: {evidence.describe()}"
    timings["cluster"] = time.perf_counter() - start
    groups = torch.as_tensor(groups, dtype=torch.long)
    logger.info("found %d groups (%s) in %.1f s", int(groups.max()) + 1, decision, timings["cluster"])
    return IdentificationResult(
        groups=groups,
        n_groups=int(groups.max()) + 1,
        embeddings=embeddings.detach().cpu(),
        scales=scales.detach().cpu(),
        decision=decision,
        evidence=evidence,
        loss_curve=history.loss,
        validation_curve=history.validation,
        epochs=history.best_epoch,
        timings=timings,
        frames=data.shape[0],
        heldout_frames=0 if heldout is None else heldout.shape[0],
        encoder=loss.encoder,
        clustering=clustering,
    )


def _clustering(options: IdentificationOptions) -> AgentClustering:
    """A copy of ``options.clustering`` (default ``AgentClustering()``) with its ``n_groups``
    and ``seed`` set."""
    clustering = AgentClustering() if options.clustering is None else options.clustering
    clustering = clone(clustering).set_params(n_groups=options.n_groups)
    if options.seed is not None:
        clustering.set_params(random_state=options.seed)
    return clustering


def _choose_on_heldout(
    loss: IdentityLoss,
    heldout: TensorDictBase,
    unit: torch.Tensor,
    embeddings: torch.Tensor,
    alpha: float,
    seed: int | None,
) -> tuple[np.ndarray, HeldOutEvidence]:
    """Ward's nested partitions of the embeddings, searched on held-out data by bisection."""
    scorer = TiedErrors(loss, heldout, unit, embeddings)
    return choose_partition(scorer, PartitionTree(embeddings.cpu()), alpha=alpha, seed=seed)


def _progress_bar(progress: bool, total: int, desc: str):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False)
