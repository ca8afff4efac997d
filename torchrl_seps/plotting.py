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

# Line styles and markers cycled over the curves of one figure, so that curves that coincide
# (e.g. FuPS and FuPS+id early on) stay told apart; markers over the true types of agents.
_LINE_STYLES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
#: Beyond this many agents, the embedding plot labels only one agent per group (the rest are
#: unreadable blobs of digits).
MAX_LABELLED_AGENTS = 12


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
    Each curve has its own line style, width and marker (the markers of curves staggered), so
    that curves that coincide stay visible.

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
    for i, (method, (frames, curve, band)) in enumerate(curves.items()):
        # earlier curves drawn wider, so that a later one drawn over them leaves them visible
        (line,) = ax.plot(frames, curve, label=method, ls=_LINE_STYLES[i % len(_LINE_STYLES)],
                          lw=1.2 + 0.6 * (len(curves) - 1 - i), marker=_MARKERS[i % len(_MARKERS)], ms=5,
                          markevery=_every(len(frames), i, len(curves)))
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


def _every(n_points: int, index: int, n_curves: int) -> tuple[int, int]:
    """``markevery`` of the ``index``-th of ``n_curves`` curves of ``n_points`` points: about 10
    markers, each curve's at other points, so that coinciding curves show all theirs."""
    step = max(n_curves, n_points // 10)
    return (index * max(1, step // n_curves) % step, step)


def plot_panels(
    panels: Mapping[str, Mapping[str, tuple[Sequence[float], Sequence[float]]]],
    path: str | Path,
    *,
    title: str = "",
    marks: Sequence[float] = (),
    marks_label: str = "",
    integer_panels: Sequence[str] = (),
) -> Path:
    """Saves stacked panels sharing x = environment frames: ``panels[ylabel][label] = (frames,
    values)`` draws one line per label (e.g. per seed) in the panel of that y label; ``marks``
    are frames drawn as vertical dotted lines in every panel (e.g. identifications), named
    ``marks_label`` in the legend. The panels named in ``integer_panels`` (e.g. a count) have
    integer ticks only.

    Returns:
        the path written.

    Examples:
        >>> import tempfile
        >>> panels = {"K": {"seed 0": ([0, 10, 20], [1, 2, 2])}, "ARI": {"seed 0": ([0, 10, 20], [0, 1, 1])}}
        >>> plot_panels(panels, tempfile.mktemp(suffix=".png"), marks=[10], marks_label="identified",
        ...             integer_panels=["K"]).exists()
        True
    """
    from matplotlib.ticker import MaxNLocator

    fig = _figure(7, 2.5 * len(panels) + 0.5)
    axes = [fig.add_subplot(len(panels), 1, i + 1) for i in range(len(panels))]
    for ax, (ylabel, lines) in zip(axes, panels.items()):
        for label, (frames, values) in lines.items():
            ax.plot(frames, values, label=label, marker=".", ms=3)
        for i, frame in enumerate(marks):
            ax.axvline(frame, color="grey", ls=":", lw=0.8, label=(marks_label or None) if i == 0 else None)
        if ylabel in integer_panels:  # half a unit of margin: a constant count still gets its tick
            values = [v for _, line_values in lines.values() for v in line_values]
            ax.set_ylim(min(values) - 0.5, max(values) + 0.5)
            ax.yaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
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
    share of variance each explains): colour = the group found, marker = the true type when
    ``types`` are given, both explained in legends (each group with its agents). With
    ``evidence``, a second panel shows how much worse than one identity per agent (K = N) each
    candidate K predicted the held-out data, with its bootstrap interval, and marks the K chosen.

    Up to :data:`MAX_LABELLED_AGENTS` agents, each point is labelled with its agent index; beyond,
    the legend's lists of agents say who is where.

    Returns:
        the path written.

    Examples:
        >>> import tempfile, torch
        >>> path = plot_embeddings(torch.randn(4, 3), [0, 0, 1, 1], tempfile.mktemp(suffix=".png"),
        ...                        types=[0, 0, 1, 1], title="seed 0")
        >>> path.exists()
        True
    """
    from sklearn.decomposition import PCA

    x = torch.as_tensor(embeddings).detach().cpu().double().numpy()
    if x.ndim != 2:
        raise ValueError(f"embeddings must have shape (n_agents, n_features), got {x.shape}.")
    n_agents = x.shape[0]
    groups = torch.as_tensor(groups).tolist()
    types = None if types is None else torch.as_tensor(types).tolist()
    for name, labels in (("group", groups), ("true type", types)):
        if labels is not None and len(labels) != n_agents:
            raise ValueError(
                f"{name} labels must have one entry per agent ({n_agents}), got {len(labels)}."
            )
    xy, explained = np.zeros((n_agents, 2)), np.zeros(2)
    n_components = min(2, n_agents, x.shape[1])
    if n_agents > 1:
        pca = PCA(n_components=n_components)
        xy[:, :n_components] = pca.fit_transform(x)
        explained[:n_components] = pca.explained_variance_ratio_
    n_panels = 1 + (evidence is not None)
    fig = _figure(6.5 + 5 * (n_panels - 1), 5)
    ax = fig.add_subplot(1, n_panels, 1)
    _draw_embeddings(ax, xy, groups, types)
    ax.set_xlabel(f"PC 1 ({explained[0]:.0%} of variance)")
    ax.set_ylabel(f"PC 2 ({explained[1]:.0%} of variance)")
    ax.set_title("identity embeddings: colour = group found"
                 + (", marker = true type" if types is not None else ""))
    if evidence is not None:
        _draw_evidence(fig.add_subplot(1, n_panels, n_panels), evidence)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path


def _draw_embeddings(ax: Axes, xy: np.ndarray, groups: list[int], types: list[int] | None) -> None:
    """The points, coloured by group and shaped by type, with a legend of each."""
    from matplotlib.lines import Line2D

    colours = _colours(max(groups) + 1)
    shapes = types if types is not None else [0] * len(groups)
    for group in sorted(set(groups)):
        for shape in sorted(set(shapes)):
            members = [i for i in range(len(groups)) if groups[i] == group and shapes[i] == shape]
            if members:
                ax.scatter(xy[members, 0], xy[members, 1], color=colours[group], s=45,
                           marker=_MARKERS[shape % len(_MARKERS)], edgecolors="black", linewidths=0.4)
    if len(groups) <= MAX_LABELLED_AGENTS:
        for agent, point in enumerate(xy):
            ax.annotate(str(agent), point, fontsize=7, xytext=(4, 4), textcoords="offset points")
    handles = [Line2D([], [], ls="", marker="o", color=colours[group], markeredgecolor="black",
                      label=f"group {group}: agents {_ranges([i for i, g in enumerate(groups) if g == group])}")
               for group in sorted(set(groups))]
    if types is not None:
        handles += [Line2D([], [], ls="", marker=_MARKERS[t % len(_MARKERS)], color="white",
                           markeredgecolor="black", label=f"true type {t}") for t in sorted(set(types))]
    ax.legend(handles=handles, fontsize=7, loc="best", framealpha=0.8)


def _colours(n: int) -> list:
    """``n`` distinct colours: tab10's, tab20's, or evenly spread over a colour map."""
    from matplotlib import colormaps

    if n <= 10:
        return list(colormaps["tab10"].colors[:n])
    if n <= 20:
        return list(colormaps["tab20"].colors[:n])
    return [colormaps["turbo"](i / (n - 1)) for i in range(n)]


def _ranges(agents: Sequence[int], max_chars: int = 28) -> str:
    """Sorted agent indices as ranges, ``"0-4, 7, 9-10"``, cut at about ``max_chars``.

    Examples:
        >>> _ranges([0, 1, 2, 3, 4, 7, 9, 10])
        '0-4, 7, 9-10'
    """
    parts, start = [], None
    for previous, agent in zip([None, *agents], [*agents, None]):
        if start is None:
            start = agent
        elif agent is None or agent != previous + 1:
            parts.append(str(start) if start == previous else f"{start}-{previous}")
            start = agent
    text = ", ".join(parts)
    return text if len(text) <= max_chars else text[: max_chars - 3].rsplit(",", 1)[0] + ", ..."


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
