from __future__ import annotations

import math
import operator
import statistics

import numpy as np
import pytest

from experiments import reporting, sweeps
from torchrl_seps import plotting


def rows_from(curves: dict[str, list[list[float]]], frames: list[int]):
    return [
        {"method": method, "seed": seed, "frames": f, "eval_return": value}
        for method, seeds in curves.items()
        for seed, values in enumerate(seeds)
        for f, value in zip(frames, values)
    ]


def test_learning_curves_mean_and_band_over_seeds():
    seeds = [[0.0, 1.0, 4.0], [2.0, 2.0, 5.0], [4.0, 6.0, 9.0]]
    rows = rows_from({"seps": seeds}, [0, 100, 200])
    rows.append({"method": "seps", "seed": 0, "frames": 50, "eval_return": None})  # skipped
    frames, curve, band = reporting.learning_curves(rows)["seps"]
    assert frames.tolist() == [0, 100, 200]
    for t in range(3):
        column = [s[t] for s in seeds]
        assert curve[t] == pytest.approx(statistics.mean(column))
        assert band[t] == pytest.approx(1.96 * statistics.stdev(column) / math.sqrt(3))


def test_learning_curves_stop_at_the_shortest_seed():
    rows = rows_from({"fups": [[1.0, 2.0, 3.0]]}, [0, 10, 20])
    rows += rows_from({"fups": [[9.0, 9.0]]}, [0, 10])
    for r in rows[3:]:
        r["seed"] = 1
    frames, curve, band = reporting.learning_curves(rows)["fups"]
    assert frames.tolist() == [0, 10] and curve.tolist() == [5.0, 5.5]


def test_frames_to_threshold_measures_from_the_start():
    frames = np.array([0, 10, 20, 30])
    curves = {
        "good": (frames, np.array([-100.0, -60.0, -15.0, -10.0]), None),
        "slow": (frames, np.array([-100.0, -90.0, -80.0, -19.0]), None),
        "bad": (frames, np.array([-100.0, -100.0, -100.0, -100.0]), None),
    }
    # start -100, best final -10: threshold -100 + 0.9 * 90 = -19
    assert reporting.frames_to_threshold(curves) == {"good": 20, "slow": 30, "bad": None}


def test_markdown_table_and_plot(tmp_path):
    table = reporting.markdown_table(["a", "b"], [[1, 2], [3, 4]])
    assert table.splitlines()[2:] == ["| 1 | 2 |", "| 3 | 4 |"]
    curves = reporting.learning_curves(rows_from({"x": [[1.0, 2.0], [2.0, 3.0]]}, [0, 5]))
    path = plotting.plot_learning_curves(curves, tmp_path / "curves.png", title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_store_reports_unreadable_records_and_ignores_other_files(tmp_path):
    from experiments.sweeps import RunStore, UnreadableRecord

    store = RunStore(tmp_path, is_record=lambda name: name.startswith("run"), required=("rows",))
    store.save("run_a", {"rows": [1]})
    (tmp_path / "run_b.json").write_text('{"rows": [')  # truncated
    (tmp_path / "run_c.json").write_text("")
    (tmp_path / "notes.json").write_text("{}")
    assert store.finished() == ["run_a", "run_b", "run_c"]
    assert list(store.readable()) == ["run_a"] and sorted(store.unreadable()) == ["run_b", "run_c"]
    with pytest.raises(UnreadableRecord, match="run_b.json"):
        store.load("run_b")


def test_run_store_claims_split_runs_between_live_processes(tmp_path):
    import os
    import socket
    import subprocess

    from experiments.sweeps import RunStore

    store = RunStore(tmp_path)
    other = subprocess.Popen(["sleep", "30"])  # a live process holding a claim
    try:
        store.claim_path("a").write_text(f"{other.pid} {socket.gethostname()}")
        assert not store.claim("a") and store.claimed_by("a") == f"{other.pid}@{socket.gethostname()}"
    finally:
        other.kill()
        other.wait()
    assert store.claim("a")  # its process is gone (kill -9): the stale claim is taken over
    assert store.claim_path("a").read_text().split()[0] == str(os.getpid())
    store.release("a")
    assert not store.claim_path("a").exists()


def test_runs_in_processes_yield_results_and_errors_like_runs_in_this_process():
    arguments = [(1, 2), (1, 0), (3, 4)]
    in_process = list(sweeps.run_tasks(operator.truediv, arguments))
    in_processes = sorted(sweeps.run_tasks(operator.truediv, arguments, processes=2),
                          key=lambda outcome: arguments.index(outcome.arguments))
    assert [o.result for o in in_processes] == [o.result for o in in_process] == [0.5, None, 0.75]
    assert in_processes[1].error.splitlines()[-1] == "ZeroDivisionError: division by zero"
