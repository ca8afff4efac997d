"""Choosing the number of groups from held-out evidence.

The question a grouping must answer is whether knowing an agent's group helps predict its
transitions on data the identity model was not fitted on. :func:`identify_groups
<torchrl_seps.identification.identify_groups>` answers it in three steps:

1. :func:`split_heldout`: whole trajectories (the collector's ``("collector", "traj_ids")``)
   are held out; the identity model is fitted on the others.
2. :func:`tied_heldout_errors`: for every candidate partition (the k-means partition of every
   K in ``1..N``), the fitted model predicts the held-out transitions with the embeddings *tied*
   within groups: the members of a group share one identity (their mean embedding, or each
   member's embedding in turn, whichever predicts better). K = N is the model as fitted; K = 1
   gives every agent one shared identity.
3. :func:`compare_partitions`: the chosen K is the smallest whose held-out loss is not worse
   than that of the finest candidate (K = N: every agent its own identity, the model as fitted)
   beyond the noise of the held-out estimate, judged by a one-sided paired bootstrap over
   held-out trajectories at level ``alpha``. The reference is fixed before the data are seen:
   comparing with the best candidate instead would pick the reference on the same held-out data
   and make K = 1 look worse by chance more often than ``alpha``.

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
- The candidates are k-means partitions of the embeddings; a right K with a wrong k-means
  partition is scored as what it is, a worse partition.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from tensordict import TensorDictBase

from torchrl_seps._checks import check_fraction, check_int
from torchrl_seps.objectives.identity import IdentityLoss

__all__ = ["HeldOutEvidence", "compare_partitions", "split_heldout", "tied_heldout_errors"]

#: Key of the collector's trajectory ids, the unit held out.
TRAJECTORY_KEY = ("collector", "traj_ids")
#: Fewest held-out units for a bootstrap; shorter data are cut into blocks of trajectories.
MIN_HELDOUT_UNITS = 8
# Frames per forward pass of the decoder when scoring held-out data.
_CHUNK = 4096


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


def _agent_unit_errors(
    loss: IdentityLoss, heldout: TensorDictBase, unit: torch.Tensor, latent: torch.Tensor, n_units: int
) -> torch.Tensor:
    """Summed error of every agent over every unit's frames, each agent using its row of
    ``latent``: float64 of shape ``[N, U]``."""
    errors = torch.zeros(latent.shape[0], n_units, dtype=torch.float64)
    for start in range(0, heldout.shape[0], _CHUNK):
        per_frame = loss.reconstruction_error(heldout[start : start + _CHUNK], latent=latent)
        errors.index_add_(1, unit[start : start + _CHUNK], per_frame.double().cpu().T)
    return errors


@torch.no_grad()
def tied_heldout_errors(
    loss: IdentityLoss,
    heldout: TensorDictBase,
    unit: torch.Tensor,
    embeddings: torch.Tensor,
    partitions: Mapping[int, np.ndarray | torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out reconstruction error of every candidate partition, summed per unit.

    Within a group, the members share one identity, in one of two ways, and the one with the
    lower total error counts:

    - *mean*: every member uses the group's mean embedding;
    - *swap*: every member's transitions are predicted with each member's embedding in turn
      (its own included), and the errors averaged.

    Each way fails where the other holds. The mean of scattered embeddings may fall where the
    decoder was never trained, so exchangeable agents whose embeddings scatter would look unlike
    each other; swapping uses only embeddings the decoder was trained with, so it costs nothing
    for exchangeable agents. Within a tight cluster of one type the mean is as good as any
    member, while swapping pays for the cluster's spread. Singletons use their own embedding
    either way, so K = N is the model as fitted.

    The error is :meth:`~torchrl_seps.objectives.IdentityLoss.reconstruction_error`. It costs
    ``N + len(partitions)`` passes of the decoder over the held-out data.

    Args:
        loss (IdentityLoss): the fitted identity model.
        heldout (TensorDictBase): held-out transitions, one batch dimension.
        unit (Tensor): the unit of every held-out frame, ``0..U-1``.
        embeddings (Tensor): every agent's embedding, shape ``[N, latent_dim]``.
        partitions (mapping): candidate K -> labels of shape ``[N]``.

    Returns:
        ``(errors, counts)``: ``errors[c, u]`` is the summed error of candidate ``c`` (in the
        order of ``partitions``) over unit ``u``'s frames and agents, float64 of shape
        ``[C, U]``; ``counts[u]`` the number of (frame, agent) pairs of unit ``u``.
    """
    embeddings = embeddings.to(loss.target_loc)
    n_agents = embeddings.shape[0]
    n_units = int(unit.max()) + 1
    # swapped[i, j, u]: agent i's error on unit u with agent j's embedding
    swapped = torch.stack(
        [
            _agent_unit_errors(loss, heldout, unit, embeddings[j].expand_as(embeddings), n_units)
            for j in range(n_agents)
        ],
        dim=1,
    )
    errors = []
    for labels in partitions.values():
        labels = torch.as_tensor(labels, dtype=torch.long, device=embeddings.device)
        means = torch.zeros(int(labels.max()) + 1, embeddings.shape[-1]).to(embeddings)
        means = means.index_add(0, labels, embeddings) / torch.bincount(labels)[:, None]
        mean = _agent_unit_errors(loss, heldout, unit, means[labels], n_units).sum(0)
        same = (labels[:, None] == labels[None, :]).double().cpu()
        swap = torch.einsum("ij,iju->u", same / same.sum(1, keepdim=True), swapped)
        errors.append(mean if mean.sum() <= swap.sum() else swap)
    counts = torch.bincount(unit, minlength=n_units).double() * n_agents
    return torch.stack(errors), counts


@dataclass
class HeldOutEvidence:
    """How each candidate K fared on held-out data, and the K chosen.

    Attributes:
        ks (list[int]): the candidates' numbers of groups, ascending.
        loss (list[float]): each candidate's mean held-out loss per transition and agent.
        difference_interval (list[tuple[float, float]]): the bootstrap interval, at level
            ``1 - alpha``, of each candidate's loss minus the reference's.
        p_value (list[float]): one-sided bootstrap p-value of "this K is no worse than the
            reference"; below ``alpha``, K is judged worse.
        reference_k (int): the finest candidate (K = N: every agent its own identity).
        best_k (int): the candidate with the lowest held-out loss (for information).
        chosen_k (int): the smallest K not judged worse than ``reference_k``.
        alpha (float): the test's level.
        n_units (int): held-out units (trajectories or blocks) resampled by the bootstrap.
        n_bootstrap (int): bootstrap resamples.
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

    def describe(self) -> str:
        """The decision in one sentence."""
        i = self.ks.index(self.chosen_k)
        reference = self.loss[self.ks.index(self.reference_k)]
        text = (
            f"K={self.chosen_k} is the smallest K whose held-out loss ({self.loss[i]:.4g}) is not "
            f"worse than that of one identity per agent, K={self.reference_k} ({reference:.4g}), "
            f"beyond noise (one-sided paired bootstrap over {self.n_units} held-out "
            f"trajectories, alpha={self.alpha:g}, p={self.p_value[i]:.2f})"
        )
        if i > 0:
            text += (
                f"; K={self.ks[i - 1]} is worse by {self.loss[i - 1] - reference:.3g} "
                f"(p={self.p_value[i - 1]:.3f})"
            )
        return text + "."


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
    n_units = errors.shape[1]
    loss = errors.sum(1) / counts.sum()
    best, reference = int(torch.argmin(loss)), len(ks) - 1
    generator = torch.Generator()
    if seed is not None:
        generator.manual_seed(seed)
    draws = torch.randint(n_units, (n_bootstrap, n_units), generator=generator)
    weights = torch.zeros(n_bootstrap, n_units, dtype=torch.float64)
    weights.scatter_add_(1, draws, torch.ones_like(draws, dtype=torch.float64))
    resampled = (weights @ errors.T) / (weights @ counts)[:, None]  # [B, C]
    difference = resampled - resampled[:, reference:]
    p_value = (difference <= 0).double().mean(0)
    low, high = torch.quantile(difference, torch.tensor([alpha / 2, 1 - alpha / 2], dtype=torch.float64), dim=0)
    chosen = next(c for c in range(len(ks)) if p_value[c] >= alpha)
    return HeldOutEvidence(
        ks=[int(k) for k in ks],
        loss=loss.tolist(),
        difference_interval=list(zip(low.tolist(), high.tolist())),
        p_value=p_value.tolist(),
        reference_k=int(ks[reference]),
        best_k=int(ks[best]),
        chosen_k=int(ks[chosen]),
        alpha=float(alpha),
        n_units=n_units,
        n_bootstrap=n_bootstrap,
    )
