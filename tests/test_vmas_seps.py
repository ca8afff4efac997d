"""The main job, ``benchmarks/vmas_seps.py``, in a tiny configuration."""
from __future__ import annotations

import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import torch

from benchmarks import vmas_seps
from experiments.config import SweepConfig
from torchrl_seps.policies import make_actor
from torchrl_seps.scenarios import list_presets, make_env
from torchrl_seps.settings import GRID_WORLD_SETTINGS, TrainerSettings
from torchrl_seps.training import TrainerConfig

METHODS = ["nops", "fups", "fups_id", "seps", "oracle"]


def tiny_args(out: Path, *extra: str) -> list[str]:
    scenario = [] if "--env" in extra else ["--preset", "rotnav-2x4"]  # --env replaces --preset
    return [
        *scenario, "--frames", "720", "--num-envs", "4", "--rollout-steps", "10",
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
    assert lines[0].startswith("| method | final return | final training return | frames to 90% | final SND |")
    assert [line.split(" | ")[0].strip("| ") for line in lines[2:]] == METHODS
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in lines[2:]}
    assert rows["nops"][8] == "8/8" and rows["fups"][8] == "1/1" and rows["oracle"][8] == "2/2"
    assert rows["oracle"][9].strip(" |") == "1.00/1.00"
    assert rows["fups"][4] == "0.000" and float(rows["nops"][4]) > 0


def test_final_training_return_averages_the_last_training_returns(tiny_run):
    out, result = tiny_run
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in result["table"].splitlines()[2:]}
    with open(out / "results.csv") as f:
        table = list(csv.DictReader(f))
    for method in METHODS:
        per_seed = []
        for seed in ("0", "1"):
            values = [float(r["train_return"]) for r in table
                      if r["method"] == method and r["seed"] == seed and r["train_return"]]
            assert values, "every run has finished training episodes"
            per_seed.append(sum(values[-5:]) / len(values[-5:]))
        mean = sum(per_seed) / 2
        std = (sum((v - mean) ** 2 for v in per_seed)) ** 0.5  # sample std of two values
        assert rows[method][2] == f"{mean:.2f} ± {std:.2f}"


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
    assert "throughput" not in summary  # runs made one after another: no speed ratios


def test_per_seed_table_gives_each_runs_last_evaluation(tiny_run):
    out, _ = tiny_run
    last = {run: rows[-1][2] for run, rows in returns(out).items()}  # results.csv's final eval_return
    table = without_measured((out / "per_seed.md").read_text())
    assert table[0] == ["method", "seed 0", "seed 1"]
    assert [row[0] for row in table[2:]] == list(METHODS)
    for method, *cells in table[2:]:
        assert cells == [f"{float(last[method, seed]):.2f}" for seed in ("0", "1")]


def test_plots_gif_and_checkpoints(tiny_run):
    out, result = tiny_run
    assert (out / "table.md").read_text() == result["table"] + "\n"
    for name in ("learning_curves.png", "training_curves.png", "snd.png", "seps_groups.png", "seps_embeddings.png"):
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
        (["--frames", "330"], r"--frames must be >= 360 \(SePS identifies from --id-frames 320, then trains "
                              r"one batch of num_envs \* rollout_steps = 40\), got 330"),
        (["--frames", "-5", "--methods", "fups"], r"--frames must be an int >= 1, got --frames=-5"),
        (["--frames", "20", "--methods", "fups"], r"--frames must be >= 40 \(one batch .*\), got 20"),
        (["--scenario-kwargs", "n_agents"], "--scenario-kwargs takes KEY=VALUE pairs, got 'n_agents'"),
        (["--preset", "balance", "--methods", "oracle"], "--methods oracle needs the true agent types, "
                                                         "unknown for 'balance'"),
        (["--preset", "balance", "--scenario-kwargs", "max_steps=None"], "needs a StepCounter"),
        (["--env", "env_factories"], "--env must be MODULE:FUNCTION, got 'env_factories'"),
        (["--env", "env_factories:nothing"], "module 'env_factories' has no function 'nothing'"),
        (["--env", "no_such_module:f"], "cannot import 'no_such_module'"),
        (["--env", "env_factories:not_an_env"], "must return a TorchRL EnvBase, got str"),
        (["--minibatches", "3"], "must divide the frames per batch"),
        (["--algorithm", "a2c", "--centralized-critic"], "needs --algorithm ppo"),
        (["--group-sizes", "4", "0"], "groups"),
        (["--num-envs", "0"], "--num-envs must be an int >= 1"),
        (["--regroup-every", "0"], "--regroup-every must be an int >= 1"),
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
    error = capsys.readouterr().err.splitlines()
    assert error[0].startswith("vmas_seps.py: error: argument ") and "invalid choice" in error[0]
    assert error[1:] == ["(`vmas_seps.py --help` lists every option)"]  # no usage block
    assert not (tmp_path / "bad").exists()


def test_env_and_preset_are_exclusive(capsys):
    with pytest.raises(SystemExit):
        vmas_seps.parse_args(["--preset", "bps-1", "--env", "env_factories:rotnav"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_help_lists_the_presets_in_sections():
    text = vmas_seps.make_parser().format_help()
    headings = [line[:-1] for line in text.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert headings == ["options", "scenario", "training", "SePS", "evaluation", "output", "sweep"]
    assert all(name in text.replace("-\n", "-").replace("\n", " ").replace(" " * 24, "")
               for name in list_presets())
    flags = {option for action in vmas_seps.make_parser()._actions for option in action.option_strings}
    for spec in [*fields(TrainerSettings), *fields(SweepConfig)]:
        assert "--" + spec.name.replace("_", "-") in flags, spec.name


def test_help_and_usage_errors_answer_before_torch_loads():
    """``--help`` and a usage error exit before the script imports torch (seconds)."""
    root = Path(__file__).resolve().parents[1]
    check = ("import runpy, sys\n"
             "for argv in (['--help'], ['--methods', 'magic']):\n"
             "    sys.argv = ['vmas_seps.py', *argv]\n"
             "    try:\n"
             "        runpy.run_path('benchmarks/vmas_seps.py', run_name='__main__')\n"
             "    except SystemExit:\n"
             "        pass\n"
             "    assert 'torch' not in sys.modules, argv\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "benchmarks")])}
    done = subprocess.run([sys.executable, "-c", check], cwd=root, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "sweep:" in done.stdout and "error: argument --methods" in done.stderr


def test_group_sizes_override_the_preset():
    [sweep], _ = vmas_seps.parse_args(["--preset", "bps-1", "--group-sizes", "2", "2"])
    assert sweep.config.env_overrides["groups"] == (2, 2)
    assert vmas_seps.parse_args([])[0][0].config.group_sizes is None


def test_grid_world_presets_take_their_settings_unless_a_flag_sets_them():
    [crware], _ = vmas_seps.parse_args(["--preset", "crware-tiny-4ag", "--num-envs", "40"])
    assert (crware.config.num_envs, crware.config.rollout_steps) == (40, GRID_WORLD_SETTINGS["rollout_steps"])
    bps, lbf = (sweep.config for sweep in vmas_seps.parse_args(["--preset", "bps-1", "lbf-8x8-3p-2f"])[0])
    assert bps == TrainerConfig(preset="bps-1")
    assert lbf == TrainerConfig(preset="lbf-8x8-3p-2f", **GRID_WORLD_SETTINGS)
    [explicit], _ = vmas_seps.parse_args(["--preset", "lbf-8x8-3p-2f", "--entropy-coeff", "0.01"])
    assert explicit.config.entropy_coeff == 0.01  # the TrainerSettings default, given as a flag


def test_a_vmas_scenario_runs_every_method_whose_inputs_exist(tmp_path, capsys):
    """VMAS's own balance: no true agent types, so no oracle and no ARI, said so in the table."""
    result = vmas_seps.main(tiny_args(tmp_path, "--preset", "balance", "--scenario-kwargs", "n_agents=3",
                                      "max_steps=10", "--methods", "fups", "seps", "oracle", "--seeds", "0",
                                      "--logger", "none"))
    rows = {row[0]: row for row in without_measured(result["table"])[2:]}
    assert list(rows) == ["fups", "seps", "oracle"]
    assert rows["oracle"][1:] == ["n/a: types unknown"] + ["-"] * 6
    assert rows["fups"][-2:] == ["1", "n/a: types unknown"] and rows["seps"][-1] == "n/a: types unknown"
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["ari"] for r in rows} == {""} and {r["method"] for r in rows} == {"fups", "seps"}
    assert max(int(r["frames"]) for r in rows) == 720
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["config"]["scenario_kwargs"] == ["n_agents=3", "max_steps=10"]
    assert len(summary["methods"]["seps"]["runs"][0]["groups"]) == 3
    printed = capsys.readouterr().out
    assert ("results in " + str(tmp_path) + "/: results.csv, summary.json, table.md, per_seed.md, learning_curves.png, "
            "training_curves.png, snd.png, seps_groups.png, seps_embeddings.png, seps_policy.gif, "
            "checkpoints/ (2 runs), runs/ (2 runs)") in printed


def test_an_env_factory_trains_as_the_preset_it_builds(tiny_run, tmp_path, capsys):
    reference, _ = tiny_run
    vmas_seps.main(tiny_args(tmp_path, "--env", "env_factories:rotnav", "--methods", "fups", "oracle",
                             "--seeds", "0", "--no-gif"))
    for method in ("fups", "oracle"):
        assert returns(tmp_path)[(method, "0")] == returns(reference)[(method, "0")]
    printed = capsys.readouterr().out
    assert "[1/2] env_factories:rotnav fups seed 0" in printed
    assert ("results.csv, summary.json, table.md, per_seed.md, learning_curves.png, training_curves.png, "
            "snd.png, checkpoints/ (2 runs), logs/ (2 runs), runs/ (2 runs)") in printed
    with pytest.raises(SystemExit, match="other settings.*env: 'env_factories:rotnav' there, None here"):
        vmas_seps.main(tiny_args(tmp_path, "--methods", "fups", "--seeds", "0", "--resume"))


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


# ---------------------------------------------------------------------------------------------
# Sweeps: each run stored as it finishes, resume, report rebuilding, failures, Ray
# ---------------------------------------------------------------------------------------------

MEASURED = ("wall time", "frames/s")  # columns that differ between any two runs of the same sweep


def without_measured(table: str) -> list[list[str]]:
    """The table's cells, less the columns of times and speeds."""
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()]
    keep = [i for i, name in enumerate(rows[0]) if name not in MEASURED]
    return [[row[i] for i in keep] for row in rows]


def returns(out: Path) -> dict[tuple[str, str], list[tuple[str, str, str]]]:
    """``{(method, seed): [(frames, train_return, eval_return), ...]}`` of ``results.csv``."""
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    runs: dict = {}
    for r in rows:
        runs.setdefault((r["method"], r["seed"]), []).append((r["frames"], r["train_return"], r["eval_return"]))
    return runs


class CountingRun:
    """``vmas_seps.run`` that counts its calls, and raises ``exception`` at call ``fail_at``."""

    def __init__(self, exception: BaseException | None = None, fail_at: int | None = None):
        self.real, self.calls, self.exception, self.fail_at = vmas_seps.run, [], exception, fail_at

    def __call__(self, method, seed, config, settings, out):
        self.calls.append((method, seed))
        if len(self.calls) == self.fail_at:
            raise self.exception
        return self.real(method, seed, config, settings, out)


def test_an_interrupted_sweep_resumes_to_the_same_table(tiny_run, tmp_path, monkeypatch):
    reference, _ = tiny_run
    out, uninterrupted = tmp_path / "sweep", tmp_path / "uninterrupted"
    args = tiny_args(out, "--methods", "fups", "oracle", "--no-gif")
    interrupted = CountingRun(KeyboardInterrupt(), fail_at=4)  # Ctrl-C during the 4th run
    monkeypatch.setattr(vmas_seps, "run", interrupted)
    with pytest.raises(SystemExit, match="--resume"):
        vmas_seps.main(args)
    assert sorted(path.name for path in (out / "runs").iterdir()) == [
        "fups_seed0.json", "fups_seed1.json", "oracle_seed0.json"]
    partial = without_measured((out / "table.md").read_text())  # the 3 finished runs are reported
    assert [row[0] for row in partial[2:]] == ["fups", "oracle"] and partial[3][-2:] == ["2", "1.00"]
    per_seed = without_measured((out / "per_seed.md").read_text())
    assert per_seed[3][0] == "oracle" and per_seed[3][2] == "-"  # oracle seed 1: not run yet

    resumed = CountingRun()
    monkeypatch.setattr(vmas_seps, "run", resumed)
    final = vmas_seps.main([*args, "--resume"])
    assert resumed.calls == [("oracle", 1)]  # the interrupted run, redone
    assert returns(out) == {run: rows for run, rows in returns(reference).items() if run[0] in ("fups", "oracle")}
    # the uninterrupted sweep's table: its stored runs, reported alone (see the report-only test)
    for name in ("fups_seed0", "fups_seed1", "oracle_seed0", "oracle_seed1"):
        (uninterrupted / "runs").mkdir(parents=True, exist_ok=True)
        shutil.copy(reference / "runs" / f"{name}.json", uninterrupted / "runs")
    expected = vmas_seps.main(["--output", str(uninterrupted), "--report-only"])
    assert without_measured(final["table"]) == without_measured(expected["table"])


def test_resume_refuses_runs_of_other_settings(tiny_run, tmp_path):
    reference, _ = tiny_run
    shutil.copytree(reference / "runs", tmp_path / "runs")
    with pytest.raises(SystemExit, match="other settings.*frames: 720 there, 800 here"):
        vmas_seps.main(tiny_args(tmp_path, "--resume", "--frames", "800"))


def test_report_only_rebuilds_the_report_from_the_stored_runs(tiny_run, tmp_path):
    reference, result = tiny_run
    shutil.copytree(reference / "runs", tmp_path / "runs")
    rebuilt = vmas_seps.main(["--output", str(tmp_path), "--report-only"])
    assert rebuilt["table"] == result["table"]
    assert (tmp_path / "results.csv").read_text() == (reference / "results.csv").read_text()
    assert json.loads((tmp_path / "summary.json").read_text())["methods"] == json.loads(
        (reference / "summary.json").read_text())["methods"]

    (tmp_path / "runs" / "seps_seed1.json").unlink()  # whatever runs the folder holds
    rebuilt = vmas_seps.main(["--output", str(tmp_path), "--report-only"])
    seps = json.loads((reference / "summary.json").read_text())["methods"]["seps"]["runs"][0]
    row = next(r for r in without_measured(rebuilt["table"]) if r[0] == "seps")
    assert row[1] == f"{seps['final_eval_return']:.1f} ± 0.0" and row[-2:] == [str(seps["n_groups"]), f"{seps['ari']:.2f}"]
    assert ("seps", "1") not in returns(tmp_path) and returns(tmp_path)[("seps", "0")] == returns(reference)[("seps", "0")]


def test_report_only_needs_stored_runs(tmp_path):
    with pytest.raises(SystemExit, match="holds no finished run"):
        vmas_seps.main(["--output", str(tmp_path), "--report-only"])


def test_a_failing_run_is_reported_and_the_sweep_goes_on(tiny_run, tmp_path, monkeypatch, capsys):
    reference, _ = tiny_run
    args = tiny_args(tmp_path, "--methods", "seps", "fups", "--seeds", "0", "--no-gif")
    monkeypatch.setattr(vmas_seps, "run", CountingRun(RuntimeError("boom"), fail_at=1))
    with pytest.raises(SystemExit, match=r"1 run\(s\) failed or unreadable: seps_seed0"):
        vmas_seps.main(args)  # the sweep goes on, reports, then exits non-zero
    result = {"table": (tmp_path / "table.md").read_text()}
    assert "RuntimeError: boom" in (tmp_path / "runs" / "seps_seed0.error.txt").read_text()
    assert json.loads((tmp_path / "summary.json").read_text())["failed"] == {"seps_seed0": "RuntimeError: boom"}
    assert [row[0] for row in without_measured(result["table"])[2:]] == ["fups"]
    assert returns(tmp_path)[("fups", "0")] == returns(reference)[("fups", "0")]
    printed = capsys.readouterr().out
    assert "[1/2] rotnav-2x4 seps seed 0: FAILED, RuntimeError: boom" in printed and "[2/2]" in printed

    retried = CountingRun(ValueError("again"), fail_at=1)  # --resume retries failed runs only
    monkeypatch.setattr(vmas_seps, "run", retried)
    with pytest.raises(SystemExit, match="seps_seed0"):
        vmas_seps.main([*args, "--resume"])
    assert retried.calls == [("seps", 0)]
    assert "ValueError: again" in (tmp_path / "runs" / "seps_seed0.error.txt").read_text()


def test_ray_without_ray_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(SystemExit, match=r'pip install -e "\.\[ray\]"'):
        vmas_seps.main(tiny_args(tmp_path / "out", "--ray"))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, threads", [([], 1), (["--ray"], None), (["--ray", "--threads", "2"], 2),
                                            (["--jobs", "2"], 1)])
def test_runs_train_with_one_thread_unless_ray_gives_them_cpus(argv, threads):
    [sweep], _ = vmas_seps.parse_args(argv)
    assert sweep.settings.threads == threads


def test_ray_resources_need_ray(tmp_path):
    with pytest.raises(SystemExit, match="need --ray"):
        vmas_seps.main(tiny_args(tmp_path / "out", "--cpus-per-run", "2"))


def test_several_presets_sweep_into_one_folder_each(tiny_run, tmp_path):
    reference, _ = tiny_run
    sweeps, _ = vmas_seps.parse_args(["--preset", "bps-1", "bps-4", "--output", "x"])
    assert [(s.config.preset, s.settings.output) for s in sweeps] == [("bps-1", str(Path("x", "bps-1"))),
                                                                      ("bps-4", str(Path("x", "bps-4")))]
    reports = vmas_seps.main(tiny_args(tmp_path, "--preset", "rotnav-2x4", "rotnav-homogeneous",
                                       "--methods", "fups", "--seeds", "0", "--no-gif"))
    assert list(reports) == ["rotnav-2x4", "rotnav-homogeneous"]
    assert returns(tmp_path / "rotnav-2x4")[("fups", "0")] == returns(reference)[("fups", "0")]
    assert json.loads((tmp_path / "rotnav-homogeneous" / "summary.json").read_text())["config"]["preset"] == "rotnav-homogeneous"


def test_ray_tasks_return_the_sequential_runs(tiny_run, tmp_path):
    """One small sweep on a local Ray cluster (2 CPUs, a run per CPU): the same returns. Runs where
    the ray extra is installed (`pip install -e ".[test,ray]"`); CI installs only the test extra."""
    pytest.importorskip("ray")
    reference, _ = tiny_run
    result = vmas_seps.main(tiny_args(tmp_path, "--methods", "fups", "seps", "--seeds", "1",
                                      "--no-gif", "--ray", "--cpus-per-run", "1"))
    assert not result["failed"]
    for method in ("fups", "seps"):
        assert returns(tmp_path)[(method, "1")] == returns(reference)[(method, "1")]


def test_jobs_train_runs_in_processes_with_the_sequential_returns(tiny_run, tmp_path):
    reference, _ = tiny_run
    result = vmas_seps.main(tiny_args(tmp_path, "--methods", "fups", "seps", "--no-gif", "--jobs", "2"))
    assert not result["failed"]
    for run in [("fups", "0"), ("fups", "1"), ("seps", "0"), ("seps", "1")]:
        assert returns(tmp_path)[run] == returns(reference)[run]


def test_report_only_names_an_unreadable_record_and_ignores_other_files(tiny_run, tmp_path, capsys):
    reference, result = tiny_run
    shutil.copytree(reference / "runs", tmp_path / "runs")
    (tmp_path / "runs" / "notes.json").write_text('{"not": "a run"}')
    (tmp_path / "runs" / "fups_seed1.json").write_text('{"config": {')  # truncated
    with pytest.raises(SystemExit, match="fups_seed1"):
        vmas_seps.main(["--output", str(tmp_path), "--report-only"])
    assert "fups_seed1.json: cannot be read back" in capsys.readouterr().err
    table = without_measured((tmp_path / "table.md").read_text())
    assert [row[0] for row in table[2:]] == [row[0] for row in without_measured(result["table"])[2:]]
    assert "fups_seed1" in json.loads((tmp_path / "summary.json").read_text())["failed"]


def test_a_run_claimed_by_a_live_process_is_left_to_it(tiny_run, tmp_path, monkeypatch):
    import socket
    import subprocess

    reference, _ = tiny_run
    args = tiny_args(tmp_path, "--methods", "fups", "--no-gif")
    (tmp_path / "runs").mkdir(parents=True)
    other = subprocess.Popen(["sleep", "60"])  # another sweep's process, training fups seed 1
    try:
        (tmp_path / "runs" / "fups_seed1.claim").write_text(f"{other.pid} {socket.gethostname()}")
        counting = CountingRun()
        monkeypatch.setattr(vmas_seps, "run", counting)
        vmas_seps.main(args)
        assert counting.calls == [("fups", 0)]
        # it stores its run; the report of whoever finishes last covers both
        shutil.copy(reference / "runs" / "fups_seed1.json", tmp_path / "runs")
    finally:
        other.kill()
        other.wait()
    (tmp_path / "runs" / "fups_seed1.claim").unlink()
    final = vmas_seps.main([*args, "--resume"])
    assert counting.calls == [("fups", 0)] and returns(tmp_path) == {
        run: rows for run, rows in returns(reference).items() if run[0] == "fups"}
    assert final["table"].count("| fups |") == 1


def test_checkpoints_rebuild_their_actor(tiny_run):
    reference, _ = tiny_run
    for method in ("fups_id", "seps"):
        checkpoint = torch.load(reference / "checkpoints" / f"{method}_seed0.pt", weights_only=False)
        assert checkpoint["method"] == method and len(checkpoint["groups"]) == 8
        actor, env = vmas_seps.load_actor(reference / "checkpoints" / f"{method}_seed0.pt", num_envs=2)
        td = actor(env.reset())
        assert td["agents", "action"].shape == (2, 8)
    assert not list((reference / "checkpoints").glob("*.partial"))
