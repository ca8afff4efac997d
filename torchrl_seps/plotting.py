"""Figures of a comparison: learning curves, and the agents' identity embeddings.

Every figure is drawn on a :class:`matplotlib.figure.Figure` with its own Agg canvas: no display
is needed and matplotlib's global backend is left as the caller set it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from torchrl_seps.model_selection import HeldOutEvidence

__all__ = ["plot_embeddings", "plot_learning_curves", "plot_panels"]


def _figure(width: float, height: float) -> Figure:
    """A figure of that size (inches) on its own Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def plot_learning_curves(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    path: str | Path,
    *,
    title: str = "",
    ylabel: str = "evaluation team return",
) -> Path:
    """Saves the mean curves with their 95% bands (``{method: (frames, mean, half_width)}``, as
    the benchmarks' ``reporting.learning_curves`` gives them), x = environment frames, as an image.

    Returns:
        the path written.

    Examples:
        >>> import tempfile
        >>> curves = {"fups": (np.array([0, 10]), np.array([-3.0, -1.0]), np.zeros(2))}
        >>> plot_learning_curves(curves, tempfile.mktemp(suffix=".png")).exists()
        True
    """
    fig = _figure(7, 4.5)
    ax = fig.add_subplot()
    for method, (frames, curve, band) in curves.items():
        (line,) = ax.plot(frames, curve, label=method)
        ax.fill_between(frames, curve - band, curve + band, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("environment frames")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path


def plot_panels(
    panels: Mapping[str, Mapping[str, tuple[Sequence[float], Sequence[float]]]],
    path: str | Path,
    *,
    title: str = "",
    marks: Sequence[float] = (),
) -> Path:
    """Saves stacked panels sharing x = environment frames: ``panels[ylabel][label] = (frames,
    values)`` draws one line per label (e.g. per seed) in the panel of that y label; ``marks``
    are frames drawn as vertical dotted lines in every panel (e.g. identifications).

    Returns:
        the path written.

    Examples:
        >>> import tempfile
        >>> panels = {"K": {"seed 0": ([0, 10, 20], [1, 2, 2])}, "ARI": {"seed 0": ([0, 10, 20], [0, 1, 1])}}
        >>> plot_panels(panels, tempfile.mktemp(suffix=".png"), marks=[10]).exists()
        True
    """
    fig = _figure(7, 2.5 * len(panels) + 0.5)
    axes = [fig.add_subplot(len(panels), 1, i + 1) for i in range(len(panels))]
    for ax, (ylabel, lines) in zip(axes, panels.items()):
        for label, (frames, values) in lines.items():
            ax.plot(frames, values, label=label, marker=".", ms=3)
        for frame in marks:
            ax.axvline(frame, color="grey", ls=":", lw=0.8)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].set_title(title)
    axes[0].legend(fontsize=8)
    axes[-1].set_xlabel("environment frames")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path


def plot_embeddings(
    embeddings: torch.Tensor,
    groups: Sequence[int] | torch.Tensor,
    path: str | Path,
    *,
    types: Sequence[int] | torch.Tensor | None = None,
    evidence: HeldOutEvidence | None = None,
    title: str | None = None,
) -> Path:
    """Saves a 2-D view of the agents' embeddings (their first two principal components, with the
    share of variance each explains), coloured by group and, when ``types`` (the true types) are
    given, in a second panel by type. With ``evidence``, a last panel shows how much worse than
    one identity per agent (K = N) each candidate K predicted the held-out data, with its bootstrap interval, and
    marks the K chosen.

    Each point is labelled with its agent index.

    Returns:
        the path written.

    Examples:
        >>> import tempfile, torch
        >>> path = plot_embeddings(torch.randn(4, 3), [0, 0, 1, 1], tempfile.mktemp(suffix=".png"),
        ...                        types=[0, 0, 1, 1])
        >>> path.exists()
        True
    """
    from sklearn.decomposition import PCA

    x = torch.as_tensor(embeddings).detach().cpu().double().numpy()
    if x.ndim != 2:
        raise ValueError(f"embeddings must have shape (n_agents, n_features), got {x.shape}.")
    n_agents = x.shape[0]
    panels = [("group", torch.as_tensor(groups).tolist())]
    if types is not None:
        panels.append(("true type", torch.as_tensor(types).tolist()))
    for name, labels in panels:
        if len(labels) != n_agents:
            raise ValueError(
                f"{name} labels must have one entry per agent ({n_agents}), got {len(labels)}."
            )
    xy, explained = np.zeros((n_agents, 2)), np.zeros(2)
    n_components = min(2, n_agents, x.shape[1])
    if n_agents > 1:
        pca = PCA(n_components=n_components)
        xy[:, :n_components] = pca.fit_transform(x)
        explained[:n_components] = pca.explained_variance_ratio_
    n_panels = len(panels) + (evidence is not None)
    fig = _figure(5 * n_panels, 4.5)
    for i, (name, labels) in enumerate(panels):
        ax = fig.add_subplot(1, n_panels, i + 1)
        ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="tab10", vmin=0, vmax=9, s=40)
        for agent in range(n_agents):
            ax.annotate(str(agent), xy[agent], fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_title(f"coloured by {name}")
        ax.set_xlabel(f"PC 1 ({explained[0]:.0%} of variance)")
        ax.set_ylabel(f"PC 2 ({explained[1]:.0%} of variance)")
    if evidence is not None:
        _draw_evidence(fig.add_subplot(1, n_panels, n_panels), evidence)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path


def _draw_evidence(ax: Axes, evidence: HeldOutEvidence) -> None:
    """Held-out loss minus the reference's (K = N), per K, with its bootstrap interval."""
    excess = np.array(evidence.loss) - evidence.loss[evidence.ks.index(evidence.reference_k)]
    low, high = np.array(evidence.difference_interval).T
    ax.errorbar(evidence.ks, excess, yerr=[np.maximum(excess - low, 0), np.maximum(high - excess, 0)],
                fmt="o-", ms=4, capsize=2)
    ax.axvline(evidence.chosen_k, color="tab:green", ls="--", label=f"chosen K={evidence.chosen_k}")
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_yscale("symlog", linthresh=max(1e-4, float(np.abs(np.concatenate([low, high])).max()) * 1e-3))
    ax.set_xlabel("K (k-means partition, one identity per group)")
    ax.set_ylabel(f"held-out loss minus K={evidence.reference_k}'s")
    ax.set_title(f"held-out evidence ({evidence.n_units} trajectories, "
                 f"{1 - evidence.alpha:.0%} intervals)")
    ax.legend()
