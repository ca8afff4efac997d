"""The TorchRL-style example, ``benchmarks/example/seps_ippo.py``, for a few tiny iterations."""
import csv
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("hydra")

EXAMPLE = Path(__file__).resolve().parents[1] / "benchmarks" / "example" / "seps_ippo.py"
TINY = [
    "env.num_envs=8", "env.max_steps=20", "collector.rollout_steps=20",
    "collector.total_frames=480", "seps.id_frames=160", "train.num_epochs=1",
    "train.minibatches=2", "eval.interval=1", "eval.episodes=2", "model.num_cells=16",
]


def run_example(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *TINY, *overrides, f"hydra.run.dir={tmp_path}"],
        capture_output=True, text=True, timeout=300,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )


def logged(tmp_path: Path, name: str) -> list[float]:
    """The values a CSV logger wrote for one scalar, in the order of the iterations."""
    (path,) = tmp_path.glob(f"seps_ippo/*/scalars/{name}.csv")
    with path.open() as file:
        return [float(row[1]) for row in csv.reader(file)]


@pytest.mark.parametrize("method", ["nops", "fups", "fups_id", "oracle"])
def test_each_baseline_trains_logs_and_evaluates(tmp_path, method):
    done = run_example(tmp_path, f"method={method}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(logged(tmp_path, "train/loss_objective")) == 3  # 480 frames / 160 per batch
    assert len(logged(tmp_path, "eval/team_return")) == 3
    assert "identified" not in done.stdout


def test_seps_identifies_once_after_its_warm_up(tmp_path):
    done = run_example(tmp_path, "method=seps")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("identified") == 1  # at 160 frames, the end of the first batch
    (n_groups,) = logged(tmp_path, "seps/n_groups")
    assert 1 <= n_groups <= 15
    (ari,) = logged(tmp_path, "seps/ari")
    assert -1 <= ari <= 1


def test_an_unknown_method_is_refused(tmp_path):
    done = run_example(tmp_path, "method=shared")
    assert done.returncode != 0
    assert "method must be one of" in done.stderr
