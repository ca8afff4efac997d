"""Sweeps of independent runs that outgrow one process: each finished run is stored at once, a
sweep resumes where it stopped, a run that fails does not stop the others, and the runs can be
Ray tasks.

A sweep is a list of runs, each a call ``function(*arguments)`` that returns a JSON-serialisable
record. :class:`RunStore` keeps one file per finished run (written atomically, so an interrupted
sweep never leaves half a record) and one per failed run (its traceback); :func:`run_tasks`
calls the runs one after another in this process, in several processes of this machine at once,
or as Ray tasks on a local or an existing cluster, and yields each outcome as it finishes. Ray is optional (``pip install -e ".[ray]"``)
and imported only when asked for.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import socket
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torchrl_seps._checks import check_float, check_int

__all__ = ["Outcome", "RunStore", "UnreadableRecord", "import_ray", "run_tasks", "write_atomically"]

RAY_MISSING = (
    "--ray needs Ray, an optional dependency of torchrl-seps: install it with "
    "`pip install -e \".[ray]\"` (or `pip install \"ray>=2.9\"`)."
)


class UnreadableRecord(ValueError):
    """A stored record that cannot be read back (truncated, empty, not a record); names its file."""


class RunStore:
    """A folder of runs: ``<name>.json`` for each finished run, ``<name>.error.txt`` for each
    failed one, ``<name>.claim`` for each run a live process is training.

    A record is written to a temporary file and renamed into place, so a run is either stored
    whole or not at all, whenever the process stops. Storing a run removes the error of an
    earlier attempt, and storing an error removes the record of an earlier attempt: the folder
    holds each run's latest outcome. A record that cannot be read back (a file damaged by hand,
    say) is :meth:`unreadable`, reported by name and treated as not stored; files that are not
    records (names ``is_record`` refuses, such as a ``notes.json``) are ignored.

    :meth:`claim` lets processes that share the folder split its runs: a claim file names the
    claiming process, and a claim whose process is no longer alive on this host (killed, say)
    is stale and taken over.

    Args:
        root (str or Path): the folder; created on the first write.
        is_record (callable, optional): which names are runs' (default: every ``*.json``).
        required (sequence of str): the keys a record must hold to be read back.

    Examples:
        >>> import tempfile
        >>> store = RunStore(tempfile.mkdtemp())
        >>> store.save("fups_seed0", {"rows": [{"frames": 0, "eval_return": -3.5}]})
        >>> store.save_error("seps_seed0", "Traceback ...\\nValueError: boom")
        >>> store.finished(), store.errors()
        (['fups_seed0'], {'seps_seed0': 'Traceback ...\\nValueError: boom'})
        >>> store.load("fups_seed0")["rows"][0]["eval_return"]
        -3.5
        >>> _ = store.record_path("nops_seed0").write_text('{"rows": [')  # a truncated record
        >>> sorted(store.readable()), list(store.unreadable())
        (['fups_seed0'], ['nops_seed0'])
        >>> store.claim("fups_seed1"), store.claim("fups_seed1")  # this process holds it
        (True, True)
    """

    def __init__(
        self, root: str | Path, is_record: Callable[[str], bool] | None = None, required: Sequence[str] = ()
    ) -> None:
        self.root = Path(root)
        self.is_record = is_record if is_record is not None else (lambda name: True)
        self.required = tuple(required)

    def record_path(self, name: str) -> Path:
        return self.root / f"{name}.json"

    def error_path(self, name: str) -> Path:
        return self.root / f"{name}.error.txt"

    def claim_path(self, name: str) -> Path:
        return self.root / f"{name}.claim"

    def save(self, name: str, record: dict[str, Any]) -> None:
        """Stores a finished run's record (anything :mod:`json` writes)."""
        self._write(self.record_path(name), json.dumps(record, indent=1))
        self.error_path(name).unlink(missing_ok=True)

    def save_error(self, name: str, error: str) -> None:
        """Stores a failed run's error (its traceback)."""
        self._write(self.error_path(name), error)
        self.record_path(name).unlink(missing_ok=True)

    def finished(self) -> list[str]:
        """The names of the stored records (readable or not), sorted."""
        names = (path.name.removesuffix(".json") for path in self.root.glob("*.json"))
        return sorted(name for name in names if self.is_record(name))

    def load(self, name: str) -> dict[str, Any]:
        """The record of a finished run; :class:`UnreadableRecord` names the file otherwise."""
        path = self.record_path(name)
        try:
            record = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise UnreadableRecord(f"{path}: cannot be read back ({error})") from None
        missing = [key for key in self.required if not isinstance(record, dict) or key not in record]
        if missing:
            raise UnreadableRecord(f"{path}: is not a run record (it lacks {missing})")
        return record

    def readable(self) -> dict[str, dict[str, Any]]:
        """``{name: record}`` of the records that can be read back."""
        records = {}
        for name in self.finished():
            try:
                records[name] = self.load(name)
            except UnreadableRecord:
                pass
        return records

    def unreadable(self) -> dict[str, str]:
        """``{name: why}`` of the stored records that cannot be read back."""
        found = {}
        for name in self.finished():
            try:
                self.load(name)
            except UnreadableRecord as error:
                found[name] = str(error)
        return found

    def errors(self) -> dict[str, str]:
        """``{name: error}`` of the failed runs."""
        return {name: path.read_text() for path in sorted(self.root.glob("*.error.txt"))
                if self.is_record(name := path.name.removesuffix(".error.txt"))}

    def claim(self, name: str) -> bool:
        """Claims run ``name`` for this process: ``True`` when it holds the claim now (taken,
        already its own, or taken over from a process that is gone), ``False`` when a live
        process holds it."""
        self.root.mkdir(parents=True, exist_ok=True)
        return claim_file(self.claim_path(name))

    def release(self, name: str) -> None:
        """Gives up this process's claim of ``name`` (nothing when another process holds it)."""
        release_file(self.claim_path(name))

    def claimed_by(self, name: str) -> str | None:
        """Who holds a live claim of ``name`` (``"pid@host"``), else ``None``."""
        owner = _claim_owner(self.claim_path(name))
        return None if owner is None or not _alive(*owner) else f"{owner[0]}@{owner[1]}"

    def _write(self, path: Path, text: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomically(path, text.encode())


def write_atomically(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` through a temporary file renamed into place: readers see the
    old file or the new one, never a part."""
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    with open(partial, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, path)


def claim_file(path: Path) -> bool:
    """Creates the claim file ``path`` for this process (see :meth:`RunStore.claim`)."""
    mine = path.with_name(f"{path.name}.{os.getpid()}.new")
    mine.write_text(f"{os.getpid()} {socket.gethostname()}")
    try:
        return _take(path, mine)
    finally:
        mine.unlink(missing_ok=True)


def _take(path: Path, mine: Path) -> bool:
    for _ in range(3):
        try:
            os.link(mine, path)  # creates path, whole, only if it does not exist
        except FileExistsError:
            owner = _claim_owner(path)
            if owner == (os.getpid(), socket.gethostname()):
                return True
            if owner is not None and _alive(*owner):
                return False
            # stale (its process is gone) or half-written: take it over, unless another
            # process did in between
            stale = path.with_name(f"{path.name}.{os.getpid()}.stale")
            try:
                os.replace(path, stale)
                stale.unlink()
            except FileNotFoundError:
                pass
            continue
        return True
    return False


def release_file(path: Path) -> None:
    """Removes the claim file ``path`` when this process holds it."""
    if _claim_owner(path) == (os.getpid(), socket.gethostname()):
        path.unlink(missing_ok=True)


def _claim_owner(path: Path) -> tuple[int, str] | None:
    try:
        pid, host = path.read_text().split(" ", 1)
        return int(pid), host
    except (OSError, ValueError):
        return None


def _alive(pid: int, host: str) -> bool:
    """Whether process ``pid`` of ``host`` runs; a process of another host counts as alive."""
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Outcome:
    """What a run of :func:`run_tasks` gave: its arguments, and its result or its error (the
    traceback as text)."""

    arguments: tuple
    result: Any = None
    error: str | None = None


def import_ray():
    """The ``ray`` module, or a ``ModuleNotFoundError`` that names the extra to install.

    Examples:
        >>> import sys
        >>> saved, sys.modules["ray"] = sys.modules.get("ray"), None  # as if not installed
        >>> try:
        ...     import_ray()
        ... except ModuleNotFoundError as error:
        ...     print(error)
        ... finally:
        ...     _ = sys.modules.pop("ray") if saved is None else sys.modules.update(ray=saved)
        --ray needs Ray, an optional dependency of torchrl-seps: install it with `pip install -e ".[ray]"` (or `pip install "ray>=2.9"`).
    """
    try:
        import ray
    except ImportError:
        raise ModuleNotFoundError(RAY_MISSING, name="ray") from None
    return ray


def run_tasks(
    function: Callable[..., Any],
    arguments: Sequence[tuple],
    *,
    ray: bool = False,
    address: str | None = None,
    cpus_per_run: float = 1.0,
    gpus_per_run: float = 0.0,
    processes: int = 1,
) -> Iterator[Outcome]:
    """Calls ``function(*args)`` for every ``args`` of ``arguments`` and yields each
    :class:`Outcome` as its run finishes.

    A run that raises an ``Exception`` yields its traceback and the others go on; a
    ``KeyboardInterrupt`` stops the sweep (pending Ray tasks are cancelled).

    Args:
        function: one run; a module-level function (Ray pickles it by reference).
        arguments: the arguments of each run.
        ray (bool): one Ray task per run instead of calls in this process, in the order they
            finish; on a local cluster started for the sweep (its CPUs and GPUs those of this
            machine, its workers this process's ``sys.path``), or on the cluster at ``address``.
        address (str, optional): an existing Ray cluster (``"auto"`` or ``"ray://host:10001"``);
            implies ``ray``. Its nodes need torchrl-seps installed.
        cpus_per_run, gpus_per_run (float): the resources of each Ray task; fractions share a
            device (``gpus_per_run=0.25``: four runs per GPU).
        processes (int): without Ray, the runs this machine trains at once, each in a process of
            its own (started with ``spawn``), in the order they finish.

    Examples:
        >>> outcomes = list(run_tasks(lambda a, b: a / b, [(1, 2), (1, 0)]))
        >>> outcomes[0].result, outcomes[1].error.splitlines()[-1]
        (0.5, 'ZeroDivisionError: division by zero')
    """
    check_float("cpus_per_run", cpus_per_run, positive=True)
    check_float("gpus_per_run", gpus_per_run)
    check_int("processes", processes)
    if ray or address is not None:
        yield from _run_on_ray(function, arguments, address, cpus_per_run, gpus_per_run)
        return
    if processes > 1:
        yield from _run_in_processes(function, arguments, processes)
        return
    for args in arguments:
        try:
            yield Outcome(args, result=function(*args))
        except Exception:
            yield Outcome(args, error=traceback.format_exc())


def _traced(function: Callable[..., Any], args: tuple) -> tuple[Any, str | None]:
    """``function(*args)`` and ``None``, or ``None`` and the traceback of its ``Exception``."""
    try:
        return function(*args), None
    except Exception:
        return None, traceback.format_exc()


def _run_in_processes(function, arguments, processes) -> Iterator[Outcome]:
    pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))
    futures = {pool.submit(_traced, function, args): args for args in arguments}
    try:
        for future in as_completed(futures):
            try:
                result, error = future.result()
            except BrokenProcessPool:
                result, error = None, "BrokenProcessPool: a worker process ended abruptly (killed, or out of memory)"
            yield Outcome(futures[future], result=result, error=error)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _run_on_ray(function, arguments, address, cpus_per_run, gpus_per_run) -> Iterator[Outcome]:
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        local = address is None
        # A local cluster's workers import what this process imports (a source checkout too).
        runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}}
        ray.init(address=address, runtime_env=runtime_env if local else None,
                 include_dashboard=False, logging_level="WARNING")
    remote = ray.remote(function).options(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=0)
    pending = {remote.remote(*args): args for args in arguments}
    try:
        while pending:
            [done], _ = ray.wait(list(pending), num_returns=1)
            args = pending.pop(done)
            try:
                yield Outcome(args, result=ray.get(done))
            except Exception as error:  # RayTaskError carries the task's traceback
                yield Outcome(args, error=str(error))
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()
