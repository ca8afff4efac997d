"""SePS as it trains: a shared (FuPS) warm-up, identification on its own batches, groups that
take over warm-started, and regrouping during training.

Two pieces fit into any TorchRL loop (a ``Collector``, a loss, an optimizer):

- :func:`regroup` moves the grouped networks to new groups *in place of the running training*:
  every new group starts from the parameter set most of its members used
  (:func:`~torchrl_seps.modules.grouped_mlp.warm_start_sources`), the optimizer's state
  (Adam's moments and step) follows the parameters it belonged to, and the loss is rebound to
  the new parameters. Nothing is re-initialised: every agent's output, and the next gradient
  step into identical groups, are unchanged.
- :class:`SePSSchedule` keeps the policy's recent batches and, when due, identifies the groups
  from them (:func:`~torchrl_seps.identification.identify_from_transitions`) and regroups::

    schedule = SePSSchedule(env, frames=12_800, regroup_every=40_000, seed=0)
    for batch in collector:                      # actor and critic start with one group (FuPS)
        ...                                      # the update on batch
        schedule.observe(batch, [actor, critic], loss=loss, optimizer=optim)
        collector.update_policy_weights_()
"""
from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence

import torch
from tensordict import TensorDictBase
from torch import nn
from torchrl.envs import EnvBase
from torchrl.objectives import LossModule

from torchrl_seps._checks import GroupsLike, check_bool, check_instance, check_int, validate_groups
from torchrl_seps._compat import delayed_loss_networks, rebind_loss_parameters
from torchrl_seps.identification import (
    GroupKeys,
    IdentificationOptions,
    IdentificationResult,
    identify_from_transitions,
    identity_model,
)
from torchrl_seps.modules.grouped_mlp import GroupedMultiAgentMLP, warm_start_sources

__all__ = ["SePSSchedule", "grouped_networks", "regroup"]

logger = logging.getLogger(__name__)

def grouped_networks(modules: Sequence[nn.Module]) -> list[GroupedMultiAgentMLP]:
    """Every :class:`~torchrl_seps.GroupedMultiAgentMLP` inside ``modules``, each once.

    Examples:
        >>> from torchrl_seps import GroupedMultiAgentMLP
        >>> mlp = GroupedMultiAgentMLP(3, 2, 4, groups=[0, 0, 1, 1], centralized=False, depth=1, num_cells=8)
        >>> len(grouped_networks([nn.Sequential(mlp, nn.Tanh()), mlp]))
        1
    """
    found = {}
    for module in modules:
        check_instance("modules", module, nn.Module, "a sequence of nn.Module")
        found |= {id(m): m for m in module.modules() if isinstance(m, GroupedMultiAgentMLP)}
    return list(found.values())


def regroup(
    groups: GroupsLike,
    modules: Sequence[nn.Module],
    *,
    loss: LossModule | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> None:
    """Moves every grouped network in ``modules`` to ``groups`` with a warm start, and carries
    the optimizer's state and the loss along.

    Each :class:`~torchrl_seps.GroupedMultiAgentMLP` found in ``modules`` is regrouped with
    ``set_groups(groups, warm_start=True)``: new group ``g`` starts as a copy of old set
    ``source[g]`` (:func:`~torchrl_seps.modules.grouped_mlp.warm_start_sources`), so a group that
    splits starts both halves from its old set and every agent's output is unchanged. Then:

    - ``optimizer``: each new parameter replaces its old one in the parameter groups, and its
      state is the old state gathered the same way (``exp_avg[source]``, ``exp_avg_sq[source]``;
      state entries without the group dimension, such as Adam's ``step``, are copied);
    - ``loss``: a TorchRL loss holds its own references to the parameters
      (``actor_network_params``, ``critic_network_params``, ...); each network that holds a
      regrouped module is converted again (:meth:`~torchrl.objectives.LossModule.convert_to_functional`),
      and the loss's caches of detached parameters are cleared.

    A collector acting with the same actor object sees the new groups at once; call its
    ``update_policy_weights_()`` afterwards as after any update.

    Args:
        groups (sequence of int or LongTensor): the new group of every agent.
        modules (sequence of nn.Module): the actor, the critic, ... holding grouped networks.

    Keyword Args:
        loss (LossModule, optional): the loss training them. Losses with separate target
            parameters (``delay_actor``, ``delay_value``) are not supported.
        optimizer (torch.optim.Optimizer, optional): the optimizer training them.

    Examples:
        >>> from torchrl_seps import GroupedMultiAgentMLP
        >>> mlp = GroupedMultiAgentMLP(3, 2, 4, groups=[0, 0, 0, 0], centralized=False, depth=1, num_cells=8)
        >>> optim = torch.optim.Adam(mlp.parameters())
        >>> mlp(torch.randn(5, 4, 3)).sum().backward(); optim.step()
        >>> x = torch.randn(5, 4, 3)
        >>> before = mlp(x)
        >>> regroup([0, 0, 1, 1], [mlp], optimizer=optim)
        >>> mlp.n_groups, torch.allclose(mlp(x), before, atol=1e-6)  # up to float rounding
        (2, True)
        >>> [state["exp_avg"].shape[0] for state in optim.state.values()]
        [2, 2, 2, 2]
    """
    networks = grouped_networks(modules)
    if not networks:
        raise ValueError("modules hold no GroupedMultiAgentMLP to regroup.")
    if loss is not None:
        _check_loss(loss)
    # every network's groups checked before any is changed: a failure leaves all as they were
    checked = [validate_groups(groups, net.n_agents) for net in networks]
    replaced: dict[nn.Parameter, tuple[nn.Parameter, list[int]]] = {}
    for net, ids in zip(networks, checked):
        source = warm_start_sources(net.groups, ids)
        old = dict(net.params.items(True, True))
        net.set_groups(ids, warm_start=True)
        for key, param in net.params.items(True, True):
            replaced[old[key]] = (param, source)
    if optimizer is not None:
        _migrate_optimizer(optimizer, replaced)
    if loss is not None:
        rebind_loss_parameters(loss, networks)


def _check_loss(loss: LossModule) -> None:
    check_instance("loss", loss, LossModule, "a torchrl LossModule")
    delayed = delayed_loss_networks(loss)
    if delayed:
        raise ValueError(
            f"loss holds separate target parameters for {delayed}; regroup supports losses "
            "without target networks (delay_actor=False, delay_value=False)."
        )


def _migrate_optimizer(
    optimizer: torch.optim.Optimizer, replaced: dict[nn.Parameter, tuple[nn.Parameter, list[int]]]
) -> None:
    """Puts each new parameter in its old one's place, with the old state gathered by source."""
    for param_group in optimizer.param_groups:
        param_group["params"] = [replaced.get(p, (p,))[0] for p in param_group["params"]]
    for old, (new, source) in replaced.items():
        state = optimizer.state.pop(old, None)
        if state is None:
            continue
        optimizer.state[new] = {
            name: value[source].clone() if _per_group(value, old) else value
            for name, value in state.items()
        }


def _per_group(value, param: torch.Tensor) -> bool:
    return isinstance(value, torch.Tensor) and value.shape == param.shape


class SePSSchedule:
    """When to identify the groups and regroup, from the batches of the policy being trained.

    The grouped networks start with one group (FuPS). :meth:`observe` takes every collected
    batch after its update: it keeps the transitions (each agent's observation, action, next
    observation and reward, and the collector's trajectory ids) of the most recent batches
    covering ``options.frames`` frames, and

    - with ``warm_up=True``, once ``options.frames`` frames have been observed, fits a fresh
      identity model on them, clusters the agents and :func:`regroup` s the networks, optimizer and loss
      (the warm-up costs no frames beyond training: identification reads the training batches);
    - with ``regroup_every``, every ``regroup_every`` frames after the last identification,
      identifies again on the recent batches and regroups when the partition changed.

    ``warm_up=False`` is for groups found before training (e.g. by
    :func:`~torchrl_seps.identification.identify_groups` on a random policy): only regrouping
    runs. Identification runs under a forked random state, so it leaves training's random
    stream as it was.

    Args:
        env (EnvBase): the multi-agent env trained on (its specs size the identity model).
        options (IdentificationOptions, optional): the settings of every identification;
            ``frames`` is the frames of the most recent policy batches each one fits on, and
            identification ``i`` (from 0) is seeded with ``seed + i`` (model, held-out split,
            k-means). Defaults to ``IdentificationOptions()``.

    Keyword Args:
        regroup_every (int, optional): frames between identifications after the first;
            ``None`` (the default) identifies once.
        warm_up (bool, optional): identify after the first ``frames`` frames. Defaults to
            ``True``.
        group (str, optional): the agent group of ``env``. Defaults to its only one.
        **settings: fields of :class:`~torchrl_seps.identification.IdentificationOptions`
            replacing those of ``options`` (``frames``, ``seed``, ``n_groups``, ``epochs``, ...).

    Attributes:
        options (IdentificationOptions): the settings of every identification.
        groups (list[int]): the current groups.
        observed_frames (int): frames of the batches observed so far.
        history (list[tuple[int, IdentificationResult, bool]]): every identification: frames
            observed, its result, whether the networks were regrouped.

    Examples:
        >>> from torchrl.collectors import Collector
        >>> from torchrl.envs.libs.vmas import VmasEnv
        >>> from torchrl_seps.policies import make_actor
        >>> env = VmasEnv("navigation", num_envs=4, n_agents=3, continuous_actions=False, seed=0)
        >>> actor = make_actor(env, [0, 0, 0], num_cells=16)
        >>> schedule = SePSSchedule(env, frames=200, seed=0, n_groups=2, epochs=1, batch_size=32)
        >>> collector = Collector(env, actor, frames_per_batch=100, total_frames=300,
        ...                       auto_register_policy_transforms=False)
        >>> for batch in collector:
        ...     _ = schedule.observe(batch, [actor])
        >>> [(frames, changed) for frames, _, changed in schedule.history]
        [(200, True)]
        >>> actor.module[0].module.n_groups
        2
        >>> collector.shutdown()
    """

    def __init__(
        self,
        env: EnvBase,
        options: IdentificationOptions | None = None,
        *,
        regroup_every: int | None = None,
        warm_up: bool = True,
        group: str | None = None,
        **settings,
    ):
        self.options = IdentificationOptions.resolve(options, settings, "SePSSchedule")
        self.keys = GroupKeys.of(env, group)
        self.options.check_agents(env.full_observation_spec[self.keys.observation].shape[len(env.batch_size)])
        check_int("regroup_every", regroup_every, optional=True)
        check_bool("warm_up", warm_up)
        if not warm_up and regroup_every is None:
            raise ValueError("warm_up=False needs regroup_every: otherwise nothing is scheduled.")
        self.env = env
        self.regroup_every = regroup_every
        self._recent: deque[TensorDictBase] = deque()
        self.observed_frames = 0
        self.next_identification = self.options.frames if warm_up else regroup_every
        self.groups: list[int] | None = None
        self.history: list[tuple[int, IdentificationResult, bool]] = []

    @property
    def recent_frames(self) -> int:
        """Frames of the batches kept for the next identification."""
        return sum(batch.shape[0] for batch in self._recent)

    def observe(
        self,
        batch: TensorDictBase,
        modules: Sequence[nn.Module],
        *,
        loss: LossModule | None = None,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> IdentificationResult | None:
        """Keeps ``batch``'s transitions and, when due, identifies and regroups ``modules``
        (with ``loss`` and ``optimizer``, as :func:`regroup`).

        Returns:
            the identification result when one ran on this call, else ``None``.
        """
        self._keep(batch)
        if self.next_identification is None or self.observed_frames < self.next_identification:
            return None
        result = self._identify()
        groups = result.groups.tolist()
        current = grouped_networks(modules)[0].groups.tolist() if self.groups is None else self.groups
        changed = _partition(groups) != _partition(current)
        if changed:
            regroup(groups, modules, loss=loss, optimizer=optimizer)
            self.groups = groups
        else:
            self.groups = current
        self.history.append((self.observed_frames, result, changed))
        logger.info("identification at %d frames: groups %s (%s)", self.observed_frames, groups,
                    "regrouped" if changed else "unchanged")
        self.next_identification = (
            None if self.regroup_every is None else self.observed_frames + self.regroup_every
        )
        return result

    def _keep(self, batch: TensorDictBase) -> None:
        wanted = self.keys.transitions
        missing = [key for key in wanted if key not in batch.keys(True, True)]
        if missing:
            raise ValueError(
                f"batch lacks {missing}; expected a Collector batch of the env's agents "
                f"(group={self.keys.group!r})."
            )
        flat = batch.select(*wanted).reshape(-1).clone()
        self._recent.append(flat)
        self.observed_frames += flat.shape[0]
        while self.recent_frames - self._recent[0].shape[0] >= self.options.frames:
            self._recent.popleft()

    def _identify(self) -> IdentificationResult:
        data = torch.cat(list(self._recent))
        options = self.options.seeded(len(self.history))
        with torch.random.fork_rng(devices=[]):
            if options.seed is not None:
                torch.manual_seed(options.seed)
            model = identity_model(self.env, options, group=self.keys.group)
            return identify_from_transitions(model, data, options)


def _partition(groups: Sequence[int]) -> set[frozenset[int]]:
    """The groups as a set of agent sets: equal for relabellings of one partition."""
    members: dict[int, set[int]] = {}
    for agent, group in enumerate(groups):
        members.setdefault(group, set()).add(agent)
    return {frozenset(agents) for agents in members.values()}
