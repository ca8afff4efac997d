"""Choosing the number of groups from held-out evidence.

The question a grouping must answer is whether knowing an agent's group helps predict its
transitions on data the identity model was not fitted on. :func:`choose_partition`, which
:func:`identify_groups <torchrl_seps.identification.identify_groups>` calls, answers it in
three steps:

1. :func:`split_heldout`: whole trajectories (the collector's ``("collector", "traj_ids")``)
   are held out; the identity model is fitted on the others.
2. :class:`TiedErrors`: a candidate partition (Ward's nested partitions of the embeddings,
   :class:`~torchrl_seps.clustering.PartitionTree`) is scored by the fitted model's error on the
   held-out transitions with the embeddings *tied* within groups: the members of a group share
   one identity, their mean embedding or each member's embedding in turn. K = N is the model
   as fitted; K = 1 gives every agent one shared identity. Each target feature's error is
   weighed by how well K = N predicts it (a Gaussian log-likelihood).
3. The chosen K is the smallest whose held-out loss, with either way of tying, is not worse
   than that of the finest candidate (K = N: every agent its own identity, the model as
   fitted) beyond the noise of the held-out estimate, judged by a one-sided paired bootstrap
   over held-out trajectories at level ``alpha`` (:func:`compare_partitions`). The reference
   is fixed before the data are seen:
   comparing with the best candidate instead would pick the reference on the same held-out data
   and make K = 1 look worse by chance more often than ``alpha``.

Cost. Scoring a candidate takes one pass of the decoder over the held-out data for the mean
way and, where that is worse, ``max_partners - 1`` more for the swap way; each pass is
linear in the number of agents. Because the candidates are nested, a merge of two distinct
types made at some K is kept at every smaller K, so "not worse than K = N" holds from the
true K upwards and fails below it. The default ``search="bisection"`` uses this: it scores
K = 1, 2, 4, ... until one is not worse, then bisects between the last two, about
``2 log2 K`` candidates. ``search="exhaustive"`` scores every K in ``1..N`` and takes the
smallest not worse, at ``N`` times the cost; both agree wherever the test's verdict is
monotone in K.

What this guarantees, and what it does not:

- Exchangeable agents give K = 1: per-agent embeddings can only fit the noise of the training
  trajectories, so on held-out trajectories they predict no better than one shared identity,
  and K = 1 is kept unless the bootstrap finds it worse than K = N by chance (a rate of about
  ``alpha``).
  No threshold on distances between embeddings is involved, so neither the scale of the latent
  space nor the KL weight moves the decision.
- Agents that differ in what the identity model predicts (next observation and reward given
  observation and action, under the collecting policy) are kept apart once the held-out data
  show the difference: tying them raises the held-out loss, and the evidence against a merge
  grows with the held-out data. Differences that never show in those transitions (e.g. a type
  the random policy never exercises) cannot be found, by this or any rule on the same data.
- The candidates are cuts of one tree of the embeddings; a right K with a wrong cut is scored
  as what it is, a worse partition.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from tensordict import TensorDictBase

from torchrl_seps._checks import check_fraction, check_int
from torchrl_seps.clustering import PartitionTree
from torchrl_seps.objectives.identity import IdentityLoss

__all__ = [
    "HeldOutEvidence",
    "TiedErrors",
    "agent_unit_errors",
    "choose_partition",
    "compare_partitions",
    "split_heldout",
    "tied_heldout_errors",
]

#: Key of the collector's trajectory ids, the unit held out.
TRAJECTORY_KEY = ("collector", "traj_ids")
#: Fewest held-out units for a bootstrap; shorter data are cut into blocks of trajectories.
MIN_HELDOUT_UNITS = 8
# (frame, agent) pairs per forward pass of the decoder when scoring held-out data.
_CHUNK_ROWS = 2**15
#: Searches of :func:`choose_partition`.
SEARCHES = ("bisection", "exhaustive")
#: How :class:`TiedErrors` weighs the target features.
WEIGHTINGS = ("likelihood", "loss")
# Smallest per-feature mean squared error the likelihood weighting divides by: targets are
# standardised, so 1 is a feature the model does not predict at all and a feature predicted
# better than this weighs at most 100 times as much
_MSE_FLOOR = 1e-2


def _units(data: TensorDictBase, n_units: int) -> torch.Tensor:
    """Unit index of every frame: its trajectory, or a block of consecutive frames of its
    trajectory when there are fewer than ``n_units`` trajectories."""
    n_frames = data.shape[0]
    traj = data.get(TRAJECTORY_KEY, None)
    traj = torch.zeros(n_frames, dtype=torch.long) if traj is None else traj.reshape(n_frames).cpu()
    _, traj = torch.unique(traj, return_inverse=True)
    n_traj = int(traj.max()) + 1
    if n_traj >= n_units:
        return traj
    order = torch.sort(traj, stable=True).indices  # frames of a trajectory stay in time order
    length = torch.bincount(traj, minlength=n_traj)
    start = torch.cumsum(length, 0) - length
    position = torch.empty(n_frames, dtype=torch.long)
    position[order] = torch.arange(n_frames) - start[traj[order]]
    blocks = math.ceil(n_units / n_traj)
    return traj * blocks + position * blocks // length[traj]


def split_heldout(
    data: TensorDictBase, fraction: float = 0.25, *, seed: int | None = None
) -> tuple[TensorDictBase, TensorDictBase, torch.Tensor]:
    """Splits transitions into a part to fit on and a held-out part, by whole trajectories.

    The unit is the trajectory of the collector's ``("collector", "traj_ids")`` entry, so no
    episode is split between the two parts. When fewer than ``MIN_HELDOUT_UNITS / fraction``
    trajectories are present (few long episodes, or data without trajectory ids), trajectories
    are cut into blocks of consecutive frames to reach that many units.

    Args:
        data (TensorDictBase): transitions with one batch dimension, e.g. from
            :func:`~torchrl_seps.identification.collect_transitions`.
        fraction (float, optional): share of the units held out, in ``(0, 1)``. Defaults to
            ``0.25``.

    Keyword Args:
        seed (int, optional): seed of the choice of held-out units.

    Returns:
        ``(fit, heldout, unit)``: the two parts, and the unit (``0..n-1``) of every held-out
        frame.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> data = TensorDict({("collector", "traj_ids"): torch.arange(200) // 5}, [200])
        >>> fit, heldout, unit = split_heldout(data, 0.25, seed=0)  # 40 trajectories of 5 frames
        >>> fit.shape, heldout.shape, unit.unique().numel()
        (torch.Size([150]), torch.Size([50]), 10)
    """
    if not isinstance(data, TensorDictBase) or data.ndim != 1:
        raise TypeError("data must be a TensorDict with one batch dimension (frames).")
    check_fraction("heldout_fraction", fraction)
    units = _units(data, math.ceil(MIN_HELDOUT_UNITS / fraction))
    _, units = torch.unique(units, return_inverse=True)
    n_units = int(units.max()) + 1
    if n_units < 2:
        raise ValueError(f"cannot hold out part of {data.shape[0]} frame(s): need at least 2.")
    n_heldout = min(n_units - 1, max(1, round(fraction * n_units)))
    generator = torch.Generator()
    if seed is not None:
        generator.manual_seed(seed)
    heldout_units = torch.randperm(n_units, generator=generator)[:n_heldout]
    is_heldout = torch.isin(units, heldout_units)
    _, heldout_unit = torch.unique(units[is_heldout], return_inverse=True)
    mask = is_heldout.to(data.device)
    return data[~mask], data[mask], heldout_unit


def agent_unit_errors(
    loss: IdentityLoss,
    heldout: TensorDictBase,
    unit: torch.Tensor,
    latent: torch.Tensor,
    n_units: int,
    feature_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Summed reconstruction error of every agent over every unit's frames, each agent using
    its row of ``latent``: float64 of shape ``[N, U]``. The decoder runs over chunks of about
    2**15 (frame, agent) pairs, which keep its activations in the CPU's caches."""
    errors = torch.zeros(latent.shape[0], n_units, dtype=torch.float64)
    chunk = max(1, _CHUNK_ROWS // latent.shape[0])
    for start in range(0, heldout.shape[0], chunk):
        per_frame = loss.reconstruction_error(
            heldout[start : start + chunk], latent=latent, feature_weights=feature_weights
        )
        errors.index_add_(1, unit[start : start + chunk], per_frame.double().cpu().T)
    return errors


def feature_mse(loss: IdentityLoss, heldout: TensorDictBase, latent: torch.Tensor) -> torch.Tensor:
    """Mean squared error of every standardised target feature over ``heldout``'s transitions
    and agents, each agent using its row of ``latent``: float64 of shape ``[features]``."""
    total = 0.0
    chunk = max(1, _CHUNK_ROWS // latent.shape[0])
    for start in range(0, heldout.shape[0], chunk):
        errors = loss.squared_errors(heldout[start : start + chunk], latent=latent)
        total = total + errors.flatten(0, -2).double().sum(0).cpu()
    return total / (heldout.shape[0] * latent.shape[0])


class TiedErrors:
    """The held-out error of candidate partitions, with identities tied within groups.

    Within a group, the members share one identity, in one of two ways, and the one with the
    lower total error counts:

    - *mean*: every member uses the group's mean embedding;
    - *swap*: every member's transitions are predicted with other members' embeddings in turn
      (its own included), and the errors averaged. In a group of at most ``max_partners``
      members every member is a partner; in a larger one the partners are ``max_partners``
      members spread evenly over the group by cyclic shifts of its members in agent order
      (shift 0, the member itself, included), so every member serves as a partner equally
      often.

    Each way fails where the other holds. The mean of scattered embeddings may fall where the
    decoder was never trained, so exchangeable agents whose embeddings scatter would look unlike
    each other; swapping uses only embeddings the decoder was trained with, so it costs nothing
    for exchangeable agents. Within a tight cluster of one type the mean is as good as any
    member, while swapping pays for the cluster's spread. Singletons use their own embedding
    either way, so K = N is the model as fitted (:attr:`reference`).

    The error is :meth:`~torchrl_seps.objectives.IdentityLoss.reconstruction_error` with one
    weight per target feature. With ``weighting="likelihood"`` (the default) a feature weighs
    one over K = N's mean squared error on it over the held-out data (floored at 0.01 of the
    feature's variance), divided by the number of features: the error becomes a Gaussian
    log-likelihood with each feature's noise measured, and K = N scores 1. A difference that
    shows in a few features the model predicts well (the velocity that an action sets) then
    counts as much as it is certain, instead of drowning in features it cannot predict (a
    shared reward). The weights come from K = N alone, fixed before any candidate is scored.
    ``weighting="loss"`` keeps the training loss's weights (every target weighs one, spread
    over its features). Building the scorer costs two passes of the decoder over the held-out
    data (the weights and the reference); a candidate costs one more for the mean and one per
    partner beyond the member itself, at most ``max_partners`` in all, each pass linear in the
    number of agents.

    Args:
        loss (IdentityLoss): the fitted identity model.
        heldout (TensorDictBase): held-out transitions, one batch dimension.
        unit (Tensor): the unit of every held-out frame, ``0..U-1``.
        embeddings (Tensor): every agent's embedding, shape ``[N, latent_dim]``.

    Keyword Args:
        max_partners (int, optional): members whose embeddings each member is predicted with,
            itself included. Defaults to ``4``.
        weighting (str, optional): ``"likelihood"`` or ``"loss"`` (see above). Defaults to
            ``"likelihood"``.

    Attributes:
        reference (Tensor): K = N's error per unit, float64 of shape ``[U]``.
        counts (Tensor): (frame, agent) pairs per unit, float64 of shape ``[U]``.
        feature_weights (Tensor or None): the weight of every target feature (``None`` with
            ``weighting="loss"``: the loss's own).
    """

    def __init__(
        self,
        loss: IdentityLoss,
        heldout: TensorDictBase,
        unit: torch.Tensor,
        embeddings: torch.Tensor,
        *,
        max_partners: int = 4,
        weighting: str = "likelihood",
    ) -> None:
        self.max_partners = check_int("max_partners", max_partners)
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}.")
        self._loss, self._heldout, self._unit = loss, heldout, unit
        self._embeddings = embeddings.to(loss.target_loc)
        self.n_agents = self._embeddings.shape[0]
        self.n_units = int(unit.max()) + 1
        with torch.no_grad():
            self.feature_weights = None
            if weighting == "likelihood":
                mse = feature_mse(loss, heldout, self._embeddings).clamp(min=_MSE_FLOOR)
                self.feature_weights = (1.0 / (mse * mse.numel())).to(loss.target_loc)
            self._own = self._errors(self._embeddings)  # [N, U]
        self.reference = self._own.sum(0)
        self.counts = torch.bincount(unit, minlength=self.n_units).double() * self.n_agents

    def _errors(self, latent: torch.Tensor) -> torch.Tensor:
        return agent_unit_errors(
            self._loss, self._heldout, self._unit, latent, self.n_units, self.feature_weights
        )

    def _labels(self, labels: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.as_tensor(labels, dtype=torch.long, device=self._embeddings.device)
        if labels.shape != (self.n_agents,) or (labels.numel() and int(labels.min()) < 0):
            raise ValueError(
                f"labels must hold a group in 0..K-1 for each of the {self.n_agents} agents, got "
                f"shape {tuple(labels.shape)}."
            )
        return labels, torch.bincount(labels)

    @torch.no_grad()
    def mean(self, labels: np.ndarray | torch.Tensor) -> torch.Tensor:
        """The error per unit with every member using its group's mean embedding, float64 of
        shape ``[U]``."""
        labels, sizes = self._labels(labels)
        if int(sizes.max()) == 1:
            return self.reference.clone()
        means = torch.zeros(sizes.numel(), self._embeddings.shape[-1]).to(self._embeddings)
        means = means.index_add(0, labels, self._embeddings) / sizes.clamp(min=1)[:, None]
        return self._errors(means[labels]).sum(0)

    @torch.no_grad()
    def swap(self, labels: np.ndarray | torch.Tensor) -> torch.Tensor:
        """The error per unit with every member predicted with its partners' embeddings in
        turn, float64 of shape ``[U]``."""
        labels, sizes = self._labels(labels)
        order = torch.sort(labels, stable=True).indices  # members of each group, in agent order
        start = torch.cumsum(sizes, 0) - sizes
        rank = torch.empty_like(labels)
        rank[order] = torch.arange(self.n_agents, device=labels.device) - start[labels[order]]
        partners = sizes.clamp(max=self.max_partners)  # per group
        total = self._own / partners[labels].double().cpu()[:, None]  # shift 0: the member itself
        for s in range(1, int(partners.max())):
            shift = torch.where(sizes <= self.max_partners, s, s * sizes // self.max_partners)
            partner = order[start[labels] + (rank + shift[labels]) % sizes[labels].clamp(min=1)]
            weight = torch.where(s < partners, 1.0 / partners.clamp(min=1), 0.0)[labels]
            total += weight.double().cpu()[:, None] * self._errors(self._embeddings[partner])
        return total.sum(0)

    def __call__(self, labels: np.ndarray | torch.Tensor) -> torch.Tensor:
        """The error per unit of the partition ``labels`` (``0..K-1`` of shape ``[N]``): the
        way of tying, mean or swap, with the lower total; float64 of shape ``[U]``."""
        mean, swap = self.mean(labels), self.swap(labels)
        return mean if mean.sum() <= swap.sum() else swap


@torch.no_grad()
def tied_heldout_errors(
    loss: IdentityLoss,
    heldout: TensorDictBase,
    unit: torch.Tensor,
    embeddings: torch.Tensor,
    partitions: Mapping[int, np.ndarray | torch.Tensor],
    *,
    max_partners: int = 4,
    weighting: str = "likelihood",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out error of every candidate partition, summed per unit (:class:`TiedErrors`).

    Args:
        loss (IdentityLoss): the fitted identity model.
        heldout (TensorDictBase): held-out transitions, one batch dimension.
        unit (Tensor): the unit of every held-out frame, ``0..U-1``.
        embeddings (Tensor): every agent's embedding, shape ``[N, latent_dim]``.
        partitions (mapping): candidate K -> labels of shape ``[N]``.

    Keyword Args:
        max_partners (int, optional): as :class:`TiedErrors`. Defaults to ``4``.
        weighting (str, optional): as :class:`TiedErrors`. Defaults to ``"likelihood"``.

    Returns:
        ``(errors, counts)``: ``errors[c, u]`` is the summed error of candidate ``c`` (in the
        order of ``partitions``) over unit ``u``'s frames and agents, float64 of shape
        ``[C, U]``; ``counts[u]`` the number of (frame, agent) pairs of unit ``u``.
    """
    scorer = TiedErrors(loss, heldout, unit, embeddings, max_partners=max_partners, weighting=weighting)
    return torch.stack([scorer(labels) for labels in partitions.values()]), scorer.counts


@dataclass
class HeldOutEvidence:
    """How each scored candidate K fared on held-out data, and the K chosen.

    Attributes:
        ks (list[int]): the scored candidates' numbers of groups, ascending (every K in
            ``1..N`` for an exhaustive search, the visited ones for a bisection).
        loss (list[float]): each candidate's mean held-out loss per transition and agent.
        difference_interval (list[tuple[float, float]]): the bootstrap interval, at level
            ``1 - alpha``, of each candidate's loss minus the reference's.
        p_value (list[float]): one-sided bootstrap p-value of "this K is no worse than the
            reference"; below ``alpha``, K is judged worse.
        reference_k (int): the finest candidate (K = N: every agent its own identity).
        best_k (int): the scored candidate with the lowest held-out loss (for information).
        chosen_k (int): the smallest K not judged worse than ``reference_k``.
        alpha (float): the test's level.
        n_units (int): held-out units (trajectories or blocks) resampled by the bootstrap.
        n_bootstrap (int): bootstrap resamples.
        search (str): how the candidates were visited: ``"bisection"``, ``"exhaustive"``, or
            ``"given"`` (:func:`compare_partitions` on given candidates).
    """

    ks: list[int]
    loss: list[float]
    difference_interval: list[tuple[float, float]]
    p_value: list[float]
    reference_k: int
    best_k: int
    chosen_k: int
    alpha: float
    n_units: int
    n_bootstrap: int
    search: str = "given"

    def describe(self) -> str:
        """The decision in one sentence."""
        i = self.ks.index(self.chosen_k)
        reference = self.loss[self.ks.index(self.reference_k)]
        text = (
            f"K={self.chosen_k} is the smallest K whose held-out loss ({self.loss[i]:.4g}) is not "
            f"worse than that of one identity per agent, K={self.reference_k} ({reference:.4g}), "
            f"beyond noise (one-sided paired bootstrap over {self.n_units} held-out "
            f"trajectories, alpha={self.alpha:g}, p={self.p_value[i]:.2f}"
        )
        if self.search != "given":
            text += f"; {self.search} search, {len(self.ks)} candidates scored"
        text += ")"
        if i > 0:
            text += (
                f"; K={self.ks[i - 1]} is worse by {self.loss[i - 1] - reference:.3g} "
                f"(p={self.p_value[i - 1]:.3f})"
            )
        return text + "."


class _PairedBootstrap:
    """Resamples of the held-out units, shared by every candidate (paired), against a reference."""

    def __init__(
        self, reference: torch.Tensor, counts: torch.Tensor, alpha: float, n_bootstrap: int, seed: int | None
    ) -> None:
        self.alpha = alpha
        self.n_bootstrap = n_bootstrap
        self.counts = counts
        self.n_units = counts.numel()
        generator = torch.Generator()
        if seed is not None:
            generator.manual_seed(seed)
        draws = torch.randint(self.n_units, (n_bootstrap, self.n_units), generator=generator)
        self.weights = torch.zeros(n_bootstrap, self.n_units, dtype=torch.float64)
        self.weights.scatter_add_(1, draws, torch.ones_like(draws, dtype=torch.float64))
        self.resampled_counts = self.weights @ counts
        self.reference = self._resample(reference)

    def _resample(self, errors: torch.Tensor) -> torch.Tensor:
        return (self.weights @ errors) / self.resampled_counts

    def compare(self, errors: torch.Tensor) -> tuple[float, float, tuple[float, float]]:
        """A candidate's mean loss, its p-value and the interval of its excess over the reference."""
        difference = self._resample(errors) - self.reference
        levels = torch.tensor([self.alpha / 2, 1 - self.alpha / 2], dtype=torch.float64)
        low, high = torch.quantile(difference, levels).tolist()
        p_value = (difference <= 0).double().mean().item()
        return (errors.sum() / self.counts.sum()).item(), p_value, (low, high)


def _evidence(
    scored: dict[int, tuple[float, float, tuple[float, float]]],
    chosen: int,
    bootstrap: _PairedBootstrap,
    search: str,
) -> HeldOutEvidence:
    ks = sorted(scored)
    loss = [scored[k][0] for k in ks]
    return HeldOutEvidence(
        ks=ks,
        loss=loss,
        difference_interval=[scored[k][2] for k in ks],
        p_value=[scored[k][1] for k in ks],
        reference_k=ks[-1],
        best_k=ks[int(np.argmin(loss))],
        chosen_k=int(chosen),
        alpha=float(bootstrap.alpha),
        n_units=bootstrap.n_units,
        n_bootstrap=bootstrap.n_bootstrap,
        search=search,
    )


def compare_partitions(
    errors: torch.Tensor,
    counts: torch.Tensor,
    ks: list[int],
    *,
    alpha: float = 0.01,
    n_bootstrap: int = 2000,
    seed: int | None = None,
) -> HeldOutEvidence:
    """Chooses the smallest K not worse than the finest candidate on held-out data, beyond noise.

    The loss of candidate ``c`` is ``errors[c].sum() / counts.sum()``. The reference is the last
    candidate (the largest K, e.g. K = N: every agent its own identity). The bootstrap resamples
    the held-out units with replacement, the same resample for every candidate (paired), and
    recomputes each candidate's loss minus the reference's. A candidate is worse when that
    difference is positive in more than ``1 - alpha`` of the resamples.

    Args:
        errors (Tensor): summed held-out error per candidate and unit, shape ``[C, U]``.
        counts (Tensor): (frame, agent) pairs per unit, shape ``[U]``.
        ks (list[int]): the number of groups of each candidate.

    Keyword Args:
        alpha (float, optional): the level of the one-sided test. Defaults to ``0.01``.
        n_bootstrap (int, optional): resamples. Defaults to ``2000``.
        seed (int, optional): seed of the resampling.

    Examples:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> noise = torch.rand(40, generator=g)
        >>> errors = torch.stack([noise + 1.0, noise + 0.2, noise + 0.2 + 0.01 * torch.randn(40, generator=g)])
        >>> evidence = compare_partitions(errors, torch.ones(40), ks=[1, 2, 3], seed=0)
        >>> evidence.chosen_k, evidence.p_value[0]
        (2, 0.0)
    """
    errors = torch.as_tensor(errors, dtype=torch.float64)
    counts = torch.as_tensor(counts, dtype=torch.float64)
    if errors.ndim != 2 or counts.shape != errors.shape[1:] or len(ks) != errors.shape[0]:
        raise ValueError(
            f"errors must have shape (len(ks), n_units) and counts (n_units,); got "
            f"{tuple(errors.shape)}, {tuple(counts.shape)} and {len(ks)} ks."
        )
    if list(ks) != sorted(set(ks)):
        raise ValueError(f"ks must be strictly increasing, got {list(ks)}.")
    check_fraction("alpha", alpha)
    check_int("n_bootstrap", n_bootstrap)
    bootstrap = _PairedBootstrap(errors[-1], counts, alpha, n_bootstrap, seed)
    scored = {int(k): bootstrap.compare(row) for k, row in zip(ks, errors)}
    chosen = next(k for k in scored if scored[k][1] >= alpha)
    return _evidence(scored, chosen, bootstrap, "given")


def choose_partition(
    scorer: TiedErrors,
    tree: PartitionTree,
    *,
    alpha: float = 0.01,
    search: Literal["bisection", "exhaustive"] = "bisection",
    n_bootstrap: int = 2000,
    seed: int | None = None,
) -> tuple[np.ndarray, HeldOutEvidence]:
    """The smallest cut of ``tree`` whose held-out loss is not worse than K = N's, beyond noise.

    A candidate K is the cut of ``tree`` into K groups, judged against K = N
    (``scorer.reference``) by the paired bootstrap of :func:`compare_partitions`, with one set of
    resamples for every candidate. It passes when one of the two ways of tying identities
    within groups (:class:`TiedErrors`) is not worse: the mean first, then, only where the mean
    is worse, the swap. Where both are worse the evidence reports the one with the lower loss.

    - ``"bisection"`` (the default): K = 1, 2, 4, ... until a K is not worse (or K reaches N),
      then bisection between the last worse K and it. About ``2 log2 K`` candidates are scored.
    - ``"exhaustive"``: every K in ``1..N``; the smallest not worse.

    The two agree whenever "not worse" holds for every K from some K* up and for none below,
    as it does for nested candidates when the types are recovered (see the module
    documentation).

    Args:
        scorer (TiedErrors): the fitted model's held-out errors.
        tree (PartitionTree): the nested candidates, over the same agents.

    Keyword Args:
        alpha (float, optional): the level of the one-sided test. Defaults to ``0.01``.
        search (str, optional): ``"bisection"`` or ``"exhaustive"``.
        n_bootstrap (int, optional): resamples. Defaults to ``2000``.
        seed (int, optional): seed of the resampling.

    Returns:
        ``(labels, evidence)``: the chosen partition (canonical labels of shape ``[N]``) and the
        :class:`HeldOutEvidence` of the candidates scored.
    """
    check_fraction("alpha", alpha)
    check_int("n_bootstrap", n_bootstrap)
    if search not in SEARCHES:
        raise ValueError(f"search must be one of {SEARCHES}, got {search!r}.")
    n = scorer.n_agents
    if tree.n_agents != n:
        raise ValueError(f"tree has {tree.n_agents} agents but scorer {n}.")
    bootstrap = _PairedBootstrap(scorer.reference, scorer.counts, alpha, n_bootstrap, seed)
    scored = {n: bootstrap.compare(scorer.reference)}

    def adequate(k: int) -> bool:
        if k not in scored:
            labels = tree.cut(k)
            scored[k] = bootstrap.compare(scorer.mean(labels))
            if scored[k][1] < alpha:  # the mean way is worse: try the swap way
                swap = bootstrap.compare(scorer.swap(labels))
                if swap[1] >= alpha or swap[0] < scored[k][0]:
                    scored[k] = swap
        return scored[k][1] >= alpha

    if search == "exhaustive":
        chosen = min(k for k in range(1, n + 1) if adequate(k))
    else:
        worse, chosen, k = 0, n, 1  # invariants: K=worse is worse (0: none), K=chosen is not
        while k < n:
            if adequate(k):
                chosen = k
                break
            worse, k = k, 2 * k
        while chosen - worse > 1:
            middle = (worse + chosen) // 2
            if adequate(middle):
                chosen = middle
            else:
                worse = middle
    return tree.cut(chosen), _evidence(scored, chosen, bootstrap, search)
