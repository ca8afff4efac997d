"""Summaries and tables of a comparison of grouping methods: one row per evaluation.

Its figures are in :mod:`torchrl_seps.plotting`.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from statistics import mean, stdev

import numpy as np


def learning_curves(
    rows: Iterable[Mapping], value: str = "eval_return"
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Mean curve of every method over seeds, with a 95% normal confidence half-width.

    ``rows`` hold ``method``, ``seed``, ``frames`` and ``value``; rows whose ``value`` is missing
    (``None`` or NaN) are skipped. Seeds are aligned by evaluation index (every seed of a method
    evaluates at the same frames); curves stop at the shortest seed.

    Returns:
        ``{method: (frames, mean, half_width)}``; ``half_width`` is 0 with a single seed.

    Examples:
        >>> rows = [
        ...     {"method": "fups", "seed": s, "frames": f, "eval_return": r}
        ...     for s, rs in enumerate([[1.0, 3.0], [3.0, 5.0]]) for f, r in zip([0, 10], rs)
        ... ]
        >>> frames, curve, band = learning_curves(rows)["fups"]
        >>> frames.tolist(), curve.tolist(), [round(b, 2) for b in band.tolist()]
        ([0, 10], [2.0, 4.0], [1.96, 1.96])
    """
    per_run: dict[str, dict[int, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if row.get(value) is None or (isinstance(row[value], float) and math.isnan(row[value])):
            continue
        per_run[row["method"]][row["seed"]].append((int(row["frames"]), float(row[value])))
    curves = {}
    for method, seeds in per_run.items():
        length = min(len(points) for points in seeds.values())
        runs = [sorted(points)[:length] for points in seeds.values()]
        frames = np.array([frame for frame, _ in runs[0]])
        values = np.array([[v for _, v in run] for run in runs])  # [seeds, evaluations]
        half_width = np.zeros(length)
        if len(runs) > 1:
            half_width = 1.96 * values.std(axis=0, ddof=1) / math.sqrt(len(runs))
        curves[method] = (frames, values.mean(axis=0), half_width)
    return curves


def frames_to_threshold(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]], fraction: float = 0.9
) -> dict[str, int | None]:
    """Frames each method's mean curve needs to reach ``fraction`` of the best final improvement.

    Returns can be negative, so "90% of the best" is measured from the start:
    ``threshold = start + fraction * (best_final - start)``, where ``start`` is the mean first
    evaluation over methods and ``best_final`` the highest final mean return. ``None`` marks a
    method that never reaches it.

    Examples:
        >>> curves = {
        ...     "a": (np.array([0, 10, 20]), np.array([-10.0, -5.0, 0.0]), None),
        ...     "b": (np.array([0, 10, 20]), np.array([-10.0, -1.0, -0.5]), None),
        ... }
        >>> frames_to_threshold(curves)  # threshold -1.0
        {'a': 20, 'b': 10}
    """
    start = mean(float(curve[0]) for _, curve, _ in curves.values())
    best = max(float(curve[-1]) for _, curve, _ in curves.values())
    threshold = start + fraction * (best - start)
    reached = {}
    for method, (frames, curve, _) in curves.items():
        hits = np.flatnonzero(curve >= threshold)
        reached[method] = int(frames[hits[0]]) if hits.size else None
    return reached


def final_mean(rows: Sequence[Mapping], value: str, last: int = 5) -> float:
    """Mean of the last ``last`` present values of ``value`` in ``rows`` (NaN when none is).

    Examples:
        >>> rows = [{"train_return": v} for v in [0.0, None, 1.0, 2.0, 3.0]]
        >>> final_mean(rows, "train_return", last=2)
        2.5
    """
    values = [float(r[value]) for r in rows if r.get(value) is not None and not math.isnan(float(r[value]))]
    return mean(values[-last:]) if values else math.nan


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value).

    Examples:
        >>> mean_std([1.0, 3.0])
        (2.0, 1.4142135623730951)
    """
    return mean(values), (stdev(values) if len(values) > 1 else 0.0)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    """A GitHub-flavoured markdown table.

    Examples:
        >>> print(markdown_table(["method", "return"], [["fups", "-3.0"]]))
        | method | return |
        |---|---|
        | fups | -3.0 |
    """
    return "\n".join([markdown_header(header), *(markdown_row(row) for row in rows)])


def markdown_header(header: Sequence[str]) -> str:
    """The first two lines of a :func:`markdown_table`, for a table printed a row at a time.

    Examples:
        >>> print(markdown_header(["method", "return"]))
        | method | return |
        |---|---|
    """
    return markdown_row(header) + "\n|" + "---|" * len(header)


def markdown_row(cells: Sequence) -> str:
    """One row of a :func:`markdown_table`.

    Examples:
        >>> markdown_row(["fups", -3.0])
        '| fups | -3.0 |'
    """
    return "| " + " | ".join(str(cell) for cell in cells) + " |"
