"""The main job, ``benchmarks/vmas_seps.py``, in a tiny configuration."""
from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest
import torch

from benchmarks import vmas_seps
from torchrl_seps.policies import make_actor
from torchrl_seps.scenarios import make_env

METHODS = ["nops", "fups", "fups_id", "seps", "oracle"]


def tiny_args(out: Path, *extra: str) -> list[str]:
    return [
        "--preset", "rotnav-2x4", "--frames", "720", "--num-envs", "4", "--rollout-steps", "10",
        "--id-frames", "320", "--id-epochs", "2", "--eval-envs", "2", "--eval-every", "3",
        "--minibatches", "2", "--ppo-epochs", "1", "--seeds", "0", "1", "--num-cells", "16",
        "--output", str(out), "--no-progress", *extra,
    ]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("vmas_seps")
    result = vmas_seps.main(tiny_args(out))
    return out, result


def test_table_has_a_row_per_method(tiny_run):
    _, result = tiny_run
    lines = result["table"].splitlines()
    assert lines[0].startswith("| method | final return | frames to 90% | final SND |")
    assert [line.split(" | ")[0].strip("| ") for line in lines[2:]] == METHODS
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in lines[2:]}
    assert rows["nops"][7] == "8/8" and rows["fups"][7] == "1/1" and rows["oracle"][7] == "2/2"
    assert rows["oracle"][8].strip(" |") == "1.00/1.00"
    assert rows["fups"][3] == "0.000" and float(rows["nops"][3]) > 0


def test_results_csv_has_every_iteration(tiny_run):
    out, _ = tiny_run
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    for method in METHODS:
        for seed in ("0", "1"):
            run = [r for r in rows if r["method"] == method and r["seed"] == seed]
            frames = [int(r["frames"]) for r in run]
            # SePS identifies from its first 320 training frames: no frames of its own
            assert frames == list(range(0, 721, 40)), (method, seed, frames)
            assert run[0]["eval_return"] != "" and run[-1]["eval_return"] != ""
            evaluated = [r for r in run[1:] if r["eval_return"] != ""]
            assert all(r["snd"] != "" for r in evaluated)
            assert all(r["snd"] == "" for r in run[1:] if r["eval_return"] == "")
            n_groups = [int(r["n_groups"]) for r in run]
            if method == "seps":  # FuPS until 320 frames, then the groups identified
                assert set(n_groups[:8]) == {1} and float(run[0]["ari"]) == 0.0
                assert len(set(n_groups[8:])) == 1
            else:
                assert len(set(n_groups)) == 1
            # frames/s: the frames of a batch over the median iteration time so far
            times = [float(r["time_s"]) for r in run]
            durations = [later - earlier for earlier, later in zip(times, times[1:])]
            for i, r in enumerate(run[1:], start=1):
                assert float(r["fps"]) == pytest.approx(40 / statistics.median(durations[:i]))


def test_summary_json(tiny_run):
    out, _ = tiny_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["preset"] == "rotnav-2x4" and summary["config"]["frames"] == 720
    assert list(summary["methods"]) == METHODS
    seps = summary["methods"]["seps"]
    assert [run["identification_frames"] for run in seps["runs"]] == [0, 0]
    assert [run["identified_at"] for run in seps["runs"]] == [[320], [320]]
    assert all(run["identification_time_s"] > 0 for run in seps["runs"])
    nops, fups = summary["methods"]["nops"], summary["methods"]["fups"]
    assert nops["parameters"] == 8 * fups["parameters"]
    for method in METHODS:
        assert len(summary["methods"][method]["runs"]) == 2
        assert summary["methods"][method]["final_eval_return_std"] >= 0
    ratios = {method: summary["methods"][method]["train_fps"] / fups["train_fps"]
              for method in METHODS if method != "fups"}
    assert summary["throughput"] == {f"{m}_over_fups_fps": pytest.approx(r) for m, r in ratios.items()}


def test_plots_gif_and_checkpoints(tiny_run):
    out, result = tiny_run
    assert (out / "table.md").read_text() == result["table"] + "\n"
    for name in ("learning_curves.png", "snd.png", "seps_groups.png", "seps_embeddings.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert (out / "seps_policy.gif").read_bytes()[:6] == b"GIF89a"
    checkpoint = torch.load(out / "checkpoints" / "oracle_seed1.pt", weights_only=False)
    actor = make_actor(make_env("rotnav-2x4", num_envs=1), groups=[0] * 8, num_cells=16)
    actor.load_state_dict(checkpoint["actor"])  # adopts the saved groups
    nets = [m for m in actor.modules() if hasattr(m, "set_groups")]
    assert nets[0].groups.tolist() == checkpoint["groups"] == [0, 0, 0, 0, 1, 1, 1, 1]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--preset", "bps-9"], "--preset 'bps-9' is unknown"),
        (["--frames", "330"], "fewer than one batch"),
        (["--minibatches", "3"], "must divide the frames per batch"),
        (["--algorithm", "a2c", "--centralized-critic"], "needs --algorithm ppo"),
        (["--group-sizes", "4", "0"], "groups"),
        (["--num-envs", "0"], "--num-envs must be positive"),
        (["--regroup-every", "0"], "--regroup-every must be positive"),
    ],
)
def test_bad_config_fails_before_training(tmp_path, extra, message):
    with pytest.raises(SystemExit, match=message):
        vmas_seps.main(tiny_args(tmp_path / "bad", *extra))
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("extra", [["--methods", "fups", "magic"], ["--algorithm", "sac"]])
def test_bad_choices_are_refused_by_the_parser(tmp_path, capsys, extra):
    with pytest.raises(SystemExit):
        vmas_seps.main(tiny_args(tmp_path / "bad", *extra))
    assert "invalid choice" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_group_sizes_override_the_preset():
    config = vmas_seps.parse_args(["--preset", "bps-1", "--group-sizes", "2", "2"])
    assert config.env_overrides["groups"] == (2, 2)
    assert vmas_seps.parse_args([]).group_sizes is None


def test_a2c_with_continuous_actions_runs(tmp_path):
    result = vmas_seps.main(
        tiny_args(tmp_path, "--algorithm", "a2c", "--methods", "fups", "--seeds", "0",
                  "--continuous-actions", "--no-gif", "--logger", "none")
    )
    assert "| fups |" in result["table"]


def test_seps_from_a_random_policy_spends_its_identification_frames(tmp_path):
    result = vmas_seps.main(tiny_args(tmp_path, "--methods", "seps", "--seeds", "0", "--id-policy",
                                      "random", "--no-gif", "--logger", "none"))
    with open(tmp_path / "results.csv") as f:
        frames = [int(r["frames"]) for r in csv.DictReader(f)]
    assert frames == list(range(320, 721, 40))  # 320 of its 720 frames identify
    assert "| seps |" in result["table"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["methods"]["seps"]["runs"][0]["identified_at"] == [320]


def test_regroup_every_identifies_again(tmp_path):
    vmas_seps.main(tiny_args(tmp_path, "--methods", "seps", "--seeds", "0", "--regroup-every", "200",
                             "--no-gif", "--logger", "none"))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["config"]["regroup_every"] == 200
    assert summary["methods"]["seps"]["runs"][0]["identified_at"] == [320, 520, 720]
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["frames"]) for r in rows] == list(range(0, 721, 40))
    assert (tmp_path / "seps_groups.png").exists()
