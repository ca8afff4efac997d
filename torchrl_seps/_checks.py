"""Argument checks of the package, at its public boundaries: the one vocabulary of its modules,
scenarios and envs.

Each check takes the argument's name first, then the value (``check_int("epochs", epochs)``,
``check_options(owner, kwargs, valid)``). It raises ``TypeError`` for a value of the wrong type
and ``ValueError`` for a value out of range, naming the argument, the value seen and what was
expected; it returns the value normalised (a Python ``int``, ``float``, tuple or tensor).
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tensordict.utils import NestedKey

GroupsLike = Sequence[int] | torch.Tensor


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer and not a bool.

    Examples:
        >>> is_int(3), is_int(True), is_int(3.0)
        (True, False, False)
    """
    return not isinstance(value, bool) and isinstance(value, numbers.Integral)


def check_int(
    name: str, value: Any, *, minimum: int | None = 1, optional: bool = False
) -> int | None:
    """An int (not a bool) ``>= minimum`` (any with ``minimum=None``); ``None`` too when ``optional``.

    Examples:
        >>> check_int("epochs", 3)
        3
        >>> check_int("epochs", 0)
        Traceback (most recent call last):
        ...
        ValueError: epochs must be an int >= 1, got epochs=0.
    """
    if optional and value is None:
        return None
    if not is_int(value):
        raise TypeError(
            f"{name} must be an int{' or None' if optional else ''}, got {value!r} of type "
            f"{type(value).__name__}."
        )
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {name}={value}.")
    return int(value)


def check_ints(name: str, value: Any, length: int, *, minimum: int = 1) -> tuple[int, ...]:
    """An int broadcast to ``length`` entries, or a sequence of exactly ``length`` ints, each
    ``>= minimum``, as a tuple.

    Examples:
        >>> check_ints("levels", 2, 3), check_ints("levels", [1, 2, 3], 3)
        ((2, 2, 2), (1, 2, 3))
        >>> check_ints("levels", [1, 2], 3)
        Traceback (most recent call last):
        ...
        ValueError: levels must have 3 entries, got 2: [1, 2]
    """
    if is_int(value):
        value = [value] * length
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(
            f"{name} must be an int or a sequence of {length} ints, "
            f"got {type(value).__name__} {value!r}"
        )
    if len(value) != length:
        raise ValueError(f"{name} must have {length} entries, got {len(value)}: {value!r}")
    for v in value:
        if not is_int(v):
            raise TypeError(f"{name} must contain ints, got {v!r} in {value!r}")
        if v < minimum:
            raise ValueError(f"every entry of {name} must be >= {minimum}, got {value!r}")
    return tuple(int(v) for v in value)


def check_float(name: str, value: Any, *, positive: bool = False) -> float:
    """A finite real number (not a bool), ``> 0`` when ``positive``, else ``>= 0``.

    Examples:
        >>> check_float("lr", 1e-3, positive=True)
        0.001
        >>> check_float("lr", 0, positive=True)
        Traceback (most recent call last):
        ...
        ValueError: lr must be a float > 0, got lr=0.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise TypeError(f"{name} must be a finite float, got {value!r}.")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be a float {'> 0' if positive else '>= 0'}, got {name}={value}.")
    return float(value)


def check_fraction(name: str, value: Any) -> float:
    """A float strictly between 0 and 1.

    Examples:
        >>> check_fraction("alpha", 1.0)
        Traceback (most recent call last):
        ...
        ValueError: alpha must be a float in (0, 1), got alpha=1.0.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < 1:
        raise ValueError(f"{name} must be a float in (0, 1), got {name}={value!r}.")
    return float(value)


def check_interval(
    name: str, value: Any, low: float, high: float, *, open_low: bool = False, open_high: bool = False
) -> float:
    """A finite real number (not a bool) in the interval from ``low`` to ``high``, each end
    included unless ``open_low`` / ``open_high``.

    Examples:
        >>> check_interval("gamma", 0.99, 0, 1, open_low=True)
        0.99
        >>> check_interval("gamma", 5, 0, 1, open_low=True)
        Traceback (most recent call last):
        ...
        ValueError: gamma must be a float in (0, 1], got gamma=5.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise TypeError(f"{name} must be a finite float, got {value!r}.")
    interval = f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
    if value < low or value > high or (open_low and value == low) or (open_high and value == high):
        raise ValueError(f"{name} must be a float in {interval}, got {name}={value!r}.")
    return float(value)


def check_unique(name: str, values: Sequence[Any]) -> list[Any]:
    """A sequence without repeated entries, as a list.

    Examples:
        >>> check_unique("seeds", [0, 1, 0])
        Traceback (most recent call last):
        ...
        ValueError: seeds must not repeat an entry, got [0, 1, 0] (0 twice).
    """
    seen: set = set()
    for v in values:
        if v in seen:
            raise ValueError(f"{name} must not repeat an entry, got {list(values)!r} ({v!r} twice).")
        seen.add(v)
    return list(values)


def check_bool(name: str, value: Any, *, optional: bool = False) -> bool | None:
    """``True`` or ``False`` (``None`` too when ``optional``)."""
    if (optional and value is None) or isinstance(value, bool):
        return value
    raise TypeError(f"{name} must be True or False, got {value!r}.")


def check_instance(name: str, value: Any, cls: type, what: str | None = None) -> Any:
    """An instance of ``cls``; ``what`` names the expected kind (default: the class's name).

    Examples:
        >>> check_instance("n", "3", int, "an int")
        Traceback (most recent call last):
        ...
        TypeError: n must be an int, got str.
    """
    if not isinstance(value, cls):
        expected = what if what is not None else f"a {cls.__name__}"
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__}.")
    return value


def check_keys(name: str, keys: Sequence[NestedKey], expected: int) -> list[NestedKey]:
    """Exactly ``expected`` tensordict keys, as a list."""
    keys = list(keys)
    if len(keys) != expected:
        raise ValueError(f"{name} must hold {expected} keys, got {len(keys)}: {name}={keys}.")
    return keys


def check_matrix(name: str, x: Any) -> np.ndarray:
    """A finite numeric ``(n_agents, n_features)`` array, both at least 1, as float64 numpy.

    Examples:
        >>> check_matrix("embeddings", torch.zeros(3))
        Traceback (most recent call last):
        ...
        ValueError: embeddings must have shape (n_agents, n_features) with both >= 1, got (3,).
    """
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    try:
        x = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a numeric (n_agents, n_features) array.") from err
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(
            f"{name} must have shape (n_agents, n_features) with both >= 1, got {x.shape}."
        )
    check_finite(name, x)
    return x


def check_finite(name: str, x: np.ndarray | torch.Tensor) -> None:
    """Refuses NaN and infinite entries, saying how many there are."""
    finite = torch.isfinite(x) if isinstance(x, torch.Tensor) else np.isfinite(x)
    if not finite.all():
        raise ValueError(f"{name} must be finite, got {int((~finite).sum())} NaN or infinite values.")


def validate_groups(groups: GroupsLike, n_agents: int) -> torch.Tensor:
    """Checks a group assignment and returns it as a CPU ``LongTensor`` of shape ``[n_agents]``.

    A valid assignment gives every agent an integer id in ``0..K-1`` and uses every id in that
    range at least once, so that ``K = max(groups) + 1`` parameter sets are all in use.

    Examples:
        >>> validate_groups([0, 1, 1, 0], n_agents=4)
        tensor([0, 1, 1, 0])
        >>> validate_groups([0, 2, 2], n_agents=3)
        Traceback (most recent call last):
        ...
        ValueError: groups must use every id in 0..2 (K = 3 parameter sets), but no agent has id(s) [1]; got groups=[0, 2, 2].
    """
    if isinstance(groups, torch.Tensor):
        if groups.dtype.is_floating_point or groups.dtype.is_complex or groups.dtype == torch.bool:
            raise TypeError(f"groups must hold integer ids, got a tensor of dtype {groups.dtype}.")
        if groups.ndim != 1:
            raise ValueError(
                f"groups must be one-dimensional (one id per agent), got shape {tuple(groups.shape)}."
            )
        ids = groups.detach().to("cpu", torch.long)
    elif isinstance(groups, Sequence) and not isinstance(groups, (str, bytes)):
        bad = [g for g in groups if isinstance(g, bool) or not isinstance(g, int)]
        if bad:
            raise TypeError(
                f"groups must hold Python or torch integers, got {bad[0]!r} of type "
                f"{type(bad[0]).__name__} in groups={list(groups)}."
            )
        ids = torch.tensor(list(groups), dtype=torch.long)
    else:
        raise TypeError(
            f"groups must be a sequence of ints or a LongTensor, got {type(groups).__name__}."
        )
    if ids.numel() != n_agents:
        raise ValueError(
            f"groups must have one id per agent (length n_agents={n_agents}), "
            f"got length {ids.numel()}: groups={ids.tolist()}."
        )
    if (ids < 0).any():
        raise ValueError(f"groups must be non-negative ids, got groups={ids.tolist()}.")
    n_groups = int(ids.max()) + 1
    unused = sorted(set(range(n_groups)) - set(ids.tolist()))
    if unused:
        raise ValueError(
            f"groups must use every id in 0..{n_groups - 1} (K = {n_groups} parameter sets), "
            f"but no agent has id(s) {unused}; got groups={ids.tolist()}."
        )
    return ids


def check_group_sizes(name: str, groups: Any) -> tuple[int, ...]:
    """A non-empty sequence of group sizes (agents per type), each at least 1, as a tuple.

    Examples:
        >>> check_group_sizes("groups", [5, 5, 5])
        (5, 5, 5)
    """
    if isinstance(groups, (str, bytes)) or not isinstance(groups, Sequence):
        raise TypeError(
            f"{name} must be a sequence of positive ints (agents per type), "
            f"got {type(groups).__name__} {groups!r}"
        )
    if len(groups) == 0:
        raise ValueError(f"{name} must contain at least one group size, got {groups!r}")
    for size in groups:
        if not is_int(size):
            raise TypeError(
                f"{name} must contain ints (agents per type), got {size!r} in {groups!r}"
            )
        if size < 1:
            raise ValueError(f"every entry of {name} must be >= 1, got {groups!r}")
    return tuple(int(size) for size in groups)


def check_options(
    owner: str, kwargs: dict[str, Any], valid: Sequence[str], *, required: Sequence[str] = ()
) -> None:
    """Refuses keyword arguments that ``owner`` (a scenario, say) does not know, and requires
    those of ``required``.

    Examples:
        >>> check_options("Game", {"size": 3, "speed": 1}, ["size"])
        Traceback (most recent call last):
        ...
        TypeError: Game got unexpected keyword argument(s) ['speed']; valid ones are ['size']
        >>> check_options("Game", {}, ["size"], required=["size"])
        Traceback (most recent call last):
        ...
        TypeError: Game needs size
    """
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise TypeError(
            f"{owner} got unexpected keyword argument(s) {unknown}; "
            f"valid ones are {sorted(valid)}"
        )
    for name in required:
        if name not in kwargs:
            raise TypeError(f"{owner} needs {name}")


def check_actions(
    name: str, action: torch.Tensor, n_actions: int, categorical: bool, shape: Sequence[int] | None = None
) -> torch.Tensor:
    """Discrete actions as indices (a ``LongTensor``): integer indices in ``[0, n_actions)``
    (``categorical``), or one-hot rows of ``n_actions`` entries, each 0 or 1 and exactly one 1;
    ``shape`` (optional) is the shape of the indices. One min / max reduction per check, cheap
    enough to run on every step.

    Examples:
        >>> check_actions("action", torch.tensor([[0, 4]]), 5, True)
        tensor([[0, 4]])
        >>> check_actions("action", torch.tensor([[0, 0, 1], [0, 1, 0]]), 3, False)
        tensor([2, 1])
        >>> check_actions("action", torch.tensor([-1, 2]), 5, True)
        Traceback (most recent call last):
        ...
        ValueError: action must hold action indices in [0, 5) (integers 0..4), got values in [-1, 2].
    """
    if not isinstance(action, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(action).__name__}.")
    if categorical:
        if action.dtype.is_floating_point or action.dtype.is_complex or action.dtype == torch.bool:
            raise TypeError(f"{name} must hold integer action indices, got a tensor of dtype {action.dtype}.")
        index = action
    else:
        if action.ndim == 0 or action.shape[-1] != n_actions:
            raise ValueError(
                f"{name} must be one-hot rows of {n_actions} entries, got shape {tuple(action.shape)}."
            )
        rows = action.detach()
        # non-negative entries summing to 1 with a largest of 1: one 1, the rest 0
        bad = rows.sum(-1) != 1
        if rows.dtype != torch.bool:
            bad = bad | (rows.amax(-1) != 1) | (rows.amin(-1) < 0)
        if bool(bad.any()):
            raise ValueError(
                f"{name} must be one-hot rows of {n_actions} entries (each 0 or 1, exactly one 1 per "
                "row), got a row that is not."
            )
        index = action.to(torch.uint8).argmax(-1) if action.dtype == torch.bool else action.argmax(-1)
    if shape is not None and tuple(index.shape) != tuple(shape):
        raise ValueError(
            f"{name} must have shape {tuple(shape) if categorical else (*shape, n_actions)}, "
            f"got {tuple(action.shape)}."
        )
    if categorical and index.numel():
        low, high = torch.aminmax(index.detach())
        low, high = low.item(), high.item()  # compared as Python ints: cheaper than 0-d tensors
        if low < 0 or high >= n_actions:
            raise ValueError(
                f"{name} must hold action indices in [0, {n_actions}) (integers 0..{n_actions - 1}), "
                f"got values in [{low}, {high}]."
            )
    return index.long()
