"""Compare NoPS, FuPS, FuPS+id and SePS on a multi-agent scenario, with hidden agent types or not.

Every method trains the same actor-critic (TorchRL's PPO or A2C losses, a ``Collector`` over a
vectorised VMAS env); the actor and the critic are ``GroupedMultiAgentMLP``s and the methods
differ only in their groups:

- ``nops``: one network per agent, ``groups = range(N)``;
- ``fups``: one network for all agents, ``groups = [0] * N``;
- ``fups_id``: one network, the one-hot agent id appended to every observation;
- ``seps``: groups found by identification (an identity encoder-decoder fitted on transitions,
  then k-means with K chosen automatically): by default on its own first ``--id-frames`` training
  frames as FuPS, after which every group continues from the shared network (``--id-policy
  random``: on a random policy's frames before training, counted in its budget);
  ``--regroup-every`` identifies again during training;
- ``oracle``: the scenario's true (hidden) agent types as groups, the grouping SePS aims at.

The scenario is a preset of ``torchrl_seps.scenarios`` (agent types known), any VMAS scenario
(``--preset balance --scenario-kwargs n_agents=4``), or a user's env (``--env module:function``,
called with ``num_envs``, ``seed``, ``device`` and ``make_env``'s keyword arguments, returning a
TorchRL multi-agent ``EnvBase`` with a ``StepCounter``). Where the true agent types are unknown,
the oracle is not run and the ARI not computed: the table says ``n/a: types unknown``.

Examples::

    python benchmarks/vmas_seps.py                  # the default comparison, 7-10 min on 2 CPU cores
    python benchmarks/vmas_seps.py --help           # every option
    python benchmarks/vmas_seps.py --preset bps-3 --frames 10_000_000 --seeds 0 1 2 \
        --num-envs 600 --device auto                # paper scale, GPU recommended
    python benchmarks/vmas_seps.py --preset balance --scenario-kwargs n_agents=4   # VMAS's own
    python benchmarks/vmas_seps.py --env my_envs:make_team   # my_envs.make_team(num_envs=, seed=, ...)
    python benchmarks/vmas_seps.py --resume         # after a Ctrl-C: trains the runs not stored yet
    python benchmarks/vmas_seps.py --ray --cpus-per-run 1   # one Ray task per run

Outputs, in ``--output``: ``results.csv`` (one row per method, seed and iteration, with the
number of groups, their ARI against the true types and, at evaluations, the policy's System
Neural Diversity, ``snd``, on the iteration's observations),
``summary.json`` (the resolved config and one summary per method), ``table.md`` (the printed
table), ``per_seed.md`` (each run's final return), ``learning_curves.png``,
``training_curves.png``, ``snd.png``, ``seps_groups.png`` (SePS's K and ARI over frames),
``seps_embeddings.png``, ``checkpoints/`` and
``seps_policy.gif``, and ``runs/``: each run's rows, summary and settings
(``<method>_seed<seed>.json``), stored the moment it finishes, or its error
(``<method>_seed<seed>.error.txt``); the report is built from them (``--report-only`` rebuilds
it alone). With several ``--preset``, each preset's sweep goes to ``--output/<preset>``. The
last line printed lists every file written. Training frames/s is the
frames of one batch over the median time of an iteration (collection and update; evaluation and
identification excluded), so a burst of load on a shared machine does not decide a comparison;
the runs train one after another, so the script quotes no speed ratios between methods
(``benchmarks/train_speed.py`` measures them side by side). The progress bar's speed is frames
over wall time, evaluations included.
With ``--logger`` each run also logs its hyperparameters and, per iteration, returns, frames/s,
collection and update time, losses and gradient norm to ``logs/``.

The training core (``TrainerConfig``, ``make_trainer``, the update and the evaluation) is
``torchrl_seps.training``; this file is one comparison with it: a run, its loop, the sweep, the
report and the command line. The experiment machinery it uses (``SweepConfig`` and the command
line, run storage and Ray, summaries and tables) is in ``benchmarks/experiments/``.
"""
from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from experiments.config import SweepConfig, add_arguments, given_flags
from torchrl_seps.settings import GRID_WORLD_SETTINGS, METHODS, PRESET_NAMES, TrainerSettings, preset_settings

# ---------------------------------------------------------------------------------------------
# Command line: built from torch-free settings, so that --help and usage errors answer before
# torch and TorchRL load (several seconds)
# ---------------------------------------------------------------------------------------------

#: The sections of ``--help``: the flags of TrainerSettings' and SweepConfig's fields (a
#: TrainerSettings field not listed here is a training flag).
SECTIONS = {
    "scenario": ["scenario_kwargs", "group_sizes", "group", "continuous_actions"],
    "training": ["frames", "algorithm", "centralized_critic", "num_envs", "rollout_steps", "lr", "gamma",
                 "lmbda", "clip_epsilon", "normalize_advantage", "entropy_coeff", "critic_coeff",
                 "max_grad_norm", "ppo_epochs", "minibatches", "depth", "num_cells", "activation", "device"],
    "SePS": ["id_frames", "id_policy", "regroup_every", "id_epochs", "n_groups"],
    "evaluation": ["eval_every", "eval_envs", "eval_policy"],
    "output": ["output", "logger", "gif", "progress"],
    "sweep": ["methods", "seeds", "threads"],
}


class CommandLine(argparse.ArgumentParser):
    """An argument parser whose usage errors are two lines: what is wrong, then where the
    options are listed (not the whole usage block)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n(`{self.prog} --help` lists every option)\n")


def make_parser() -> CommandLine:
    """The command line: the fields of ``TrainerSettings`` and ``SweepConfig`` as flags, in
    sections, with the sweep's own flags."""
    parser = CommandLine(prog=Path(__file__).name, description=__doc__.split("\n\n")[0],
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    groups = {name: parser.add_argument_group(name) for name in SECTIONS}
    which = groups["scenario"].add_mutually_exclusive_group()
    which.add_argument("--preset", nargs="+", default=[TrainerSettings.preset], metavar="NAME",
                       help=f"scenarios: presets ({', '.join(PRESET_NAMES)}) or VMAS scenario names "
                            "(e.g. balance, navigation: true agent types unknown); with several, each "
                            "sweep goes to --output/<preset>")
    add_arguments(which, TrainerSettings, ["env"])
    placed = {name for names in SECTIONS.values() for name in names} | {"preset", "env"}
    sweep_fields = {spec.name for spec in fields(SweepConfig)}
    for section, names in SECTIONS.items():
        add_arguments(groups[section], SweepConfig if set(names) <= sweep_fields else TrainerSettings, names)
    add_arguments(groups["training"], TrainerSettings,
                  [spec.name for spec in fields(TrainerSettings) if spec.name not in placed])
    for action in parser._actions:
        if action.dest in GRID_WORLD_SETTINGS:
            action.help += f"; {GRID_WORLD_SETTINGS[action.dest]} for the grid-world presets (lbf-, crware-)"
    sweep = groups["sweep"]
    sweep.add_argument("--resume", action="store_true",
                       help="skip the runs --output/runs already holds (same settings required)")
    sweep.add_argument("--report-only", action="store_true",
                       help="train nothing: rebuild the report from the runs --output/runs holds")
    sweep.add_argument("--jobs", type=int, default=1,
                       help="runs trained at once, each in a process of its own with --threads threads")
    sweep.add_argument("--ray", action="store_true",
                       help="one Ray task per run, on a local Ray cluster started for the sweep")
    sweep.add_argument("--ray-address", default=None,
                       help="run the Ray tasks on this existing cluster (implies --ray)")
    sweep.add_argument("--cpus-per-run", type=float, default=None, help="CPUs of each Ray task (1 when unset)")
    sweep.add_argument("--gpus-per-run", type=float, default=None,
                       help="GPUs of each Ray task, fractions share one (0 when unset)")
    return parser


if __name__ == "__main__":
    make_parser().parse_args()  # answers --help and usage errors; main() parses again

import csv  # noqa: E402  (the imports below take seconds: torch, TorchRL)
import io  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Iterator, Sequence  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import asdict, dataclass, field, replace  # noqa: E402

import torch  # noqa: E402
from torchrl.envs import EnvBase  # noqa: E402
from torchrl.envs.utils import ExplorationType, set_exploration_type  # noqa: E402
from torchrl.record.loggers import Logger, get_logger  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from experiments import reporting  # noqa: E402
from experiments.config import check_output, from_args  # noqa: E402
from experiments.sweeps import (  # noqa: E402
    RunStore,
    UnreadableRecord,
    claim_file,
    import_ray,
    release_file,
    run_tasks,
    write_atomically,
)
from torchrl_seps._checks import check_int  # noqa: E402
from torchrl_seps.clustering import adjusted_rand_index  # noqa: E402
from torchrl_seps.identification import IdentificationResult  # noqa: E402
from torchrl_seps.plotting import plot_learning_curves, plot_panels  # noqa: E402
from torchrl_seps.policies import make_actor  # noqa: E402
from torchrl_seps.scenarios import episode_length, render_rollout, save_gif  # noqa: E402
from torchrl_seps.training import (  # noqa: E402
    Iteration,
    TrainerConfig,
    build_env,
    evaluate,
    make_trainer,
    team_return_of_finished_episodes,
    true_types,
)
from torchrl_seps.transforms import AgentIdentityTransform

# A run's settings are a TrainerConfig (torchrl_seps.training), a sweep's a SweepConfig
# (experiments.config): each field a flag of the command line.

# ---------------------------------------------------------------------------------------------
# One run: build the trainer (env, groups, actor and critic, loss, collector), train, evaluate
# ---------------------------------------------------------------------------------------------


@dataclass
class RunSummary:
    """The figures of one method and seed, as ``summary.json`` lists them."""

    method: str
    seed: int
    final_eval_return: float
    final_snd: float
    frames: int
    identification_frames: int
    train_time_s: float
    identification_time_s: float
    train_fps: float
    parameters: int
    groups: list[int]
    n_groups: int
    ari: float | None  # None where the true agent types are unknown
    identified_at: list[int]  # frames of the run at which SePS identified its groups
    checkpoint: str
    outputs: list[str] = field(default_factory=list)  # files the run wrote, relative to --output


@dataclass
class FinishedRun:
    """What the report reads of a run: a row per evaluation or iteration (``results.csv``;
    whatever columns the rows have) and its summary. A sweep stores it as soon as the run ends
    (:meth:`record`, ``runs/<method>_seed<seed>.json``)."""

    rows: list[dict]
    summary: RunSummary

    def record(self, config: TrainerConfig, settings: SweepConfig) -> dict:
        """The stored form: the rows, the summary and the settings the run trained with."""
        return {"config": stored_settings(config, settings), "rows": self.rows, "summary": asdict(self.summary)}

    @classmethod
    def from_record(cls, record: dict) -> FinishedRun:
        return cls(record["rows"], RunSummary(**record["summary"]))


@dataclass
class RunResult(FinishedRun):
    """One run: its rows and summary, and what the SePS figures draw (the identification, the
    trained actor on its eval env)."""

    identification: IdentificationResult | None
    actor: torch.nn.Module
    eval_env: EnvBase
    true_types: torch.Tensor | None


def stored_settings(config: TrainerConfig, settings: SweepConfig) -> dict:
    """A run's settings as its record, its checkpoint and ``summary.json`` hold them: the
    trainer's and the sweep's, in one mapping."""
    return {**asdict(config), **asdict(settings)}


def split_settings(stored: dict) -> tuple[TrainerConfig, SweepConfig]:
    """The trainer's and the sweep's settings of :func:`stored_settings` (the trainer's defaults
    for settings that records stored before them lack)."""
    sweep_names = {spec.name for spec in fields(SweepConfig)}
    return (TrainerConfig(**{key: value for key, value in stored.items() if key not in sweep_names}),
            SweepConfig(**{key: value for key, value in stored.items() if key in sweep_names}))


def run(method: str, seed: int, config: TrainerConfig, settings: SweepConfig, out: Path) -> RunResult:
    """Trains one method with one seed, logging every iteration."""
    trainer = make_trainer(method, seed, config, progress=settings.progress)
    actor, eval_env, group = trainer.actor, trainer.eval_env, config.group
    max_steps = episode_length(eval_env)
    logger = None
    if settings.logger != "none":
        shutil.rmtree(out / "logs" / run_name(method, seed), ignore_errors=True)  # a rerun's logs start clean
        logger = get_logger(settings.logger, str(out / "logs"), run_name(method, seed))
        logger.log_hparams({"method": method, "seed": seed, **stored_settings(config, settings)})

    frames, iteration_times = trainer.identification_frames, []
    identified_at = [frames] if trainer.identification is not None else []
    bar = tqdm(total=config.frames, initial=frames, desc=f"{method} seed {seed}",
               unit="frames", disable=not settings.progress, file=sys.stderr)
    types = true_types(trainer.env)

    def grouping() -> dict:
        return {"n_groups": len(set(trainer.groups)),
                "ari": None if types is None else adjusted_rand_index(trainer.groups, types)}

    def evaluation() -> float:
        return evaluate(eval_env, actor, max_steps, group=group, policy=config.eval_policy)

    rows = [row(method, seed, 0, frames, None, evaluation(), 0.0, 0.0, **grouping())]
    for number, iteration in enumerate(trainer.iterations(), start=1):
        iteration_times.append(iteration.time)
        frames += iteration.batch.numel()
        if iteration.identification is not None:
            identified_at.append(frames)
        evaluated = number % config.eval_every == 0 or frames + config.frames_per_batch > config.frames
        train_return = team_return_of_finished_episodes(iteration.batch, group=group)
        eval_return = evaluation() if evaluated else None
        snd = trainer.system_neural_diversity(iteration.batch) if evaluated else None
        # The median iteration is robust to the bursts of a shared machine; the mean is not.
        fps = config.frames_per_batch / statistics.median(iteration_times)
        rows.append(row(method, seed, number, frames, train_return, eval_return,
                        sum(iteration_times), fps, snd=snd, **grouping()))
        if logger is not None:
            log_iteration(logger, rows[-1], iteration)
        bar.update(iteration.batch.numel())  # the bar's speed: frames over wall time, evaluations included
        bar.set_postfix(ret=f"{eval_return if evaluated else train_return or math.nan:.1f}")
    bar.close()
    trainer.collector.shutdown()

    checkpoint = save_checkpoint(out, method, seed, trainer.groups, actor, trainer.critic,
                                 stored_settings(config, settings))
    identification = trainer.identification
    summary = RunSummary(
        method=method,
        seed=seed,
        final_eval_return=rows[-1]["eval_return"],
        final_snd=rows[-1]["snd"],
        frames=frames,
        identification_frames=trainer.identification_frames,
        train_time_s=sum(iteration_times),
        identification_time_s=trainer.identification_time,
        train_fps=rows[-1]["fps"],
        parameters=trainer.n_parameters,
        groups=trainer.groups,
        identified_at=identified_at,
        checkpoint=str(checkpoint),
        outputs=[str(checkpoint.relative_to(out))] + ([f"logs/{run_name(method, seed)}"] if logger is not None else []),
        **grouping(),
    )
    return RunResult(rows, summary, identification, actor, eval_env,
                     None if types is None else torch.tensor(types))


def save_checkpoint(out: Path, method: str, seed: int, groups: list[int], actor: torch.nn.Module,
                    critic: torch.nn.Module, settings: dict) -> Path:
    """``checkpoints/<method>_seed<seed>.pt``, written atomically: the actor's and the critic's
    weights, the method, seed and groups, and the run's settings (:func:`load_actor` rebuilds
    the actor from it)."""
    path = out / "checkpoints" / f"{run_name(method, seed)}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save({"method": method, "seed": seed, "groups": list(groups), "actor": actor.state_dict(),
                "critic": critic.state_dict(), "config": settings}, buffer)
    write_atomically(path, buffer.getvalue())
    return path


def load_actor(path: str | Path, num_envs: int = 1, device: str = "cpu") -> tuple[torch.nn.Module, EnvBase]:
    """The trained actor of a checkpoint (:func:`save_checkpoint`) and an env of ``num_envs`` it
    acts in (with the one-hot agent ids of ``fups_id``)."""
    checkpoint = torch.load(path, map_location=device, weights_only=False)
    missing = [key for key in ("method", "groups", "actor", "config") if key not in checkpoint]
    if missing:
        raise ValueError(f"{path} is not a checkpoint of this benchmark (it lacks {missing}).")
    config = split_settings(checkpoint["config"])[0]
    env = build_env(config, num_envs, device=device)
    if checkpoint["method"] == "fups_id":
        env.append_transform(AgentIdentityTransform.one_hot(env.n_agents, in_key=(config.group, "observation")))
    actor = make_actor(env, checkpoint["groups"], device=device, **config.network())
    actor.load_state_dict(checkpoint["actor"])
    return actor, env


def sweep_run(method: str, seed: int, config: TrainerConfig, settings: SweepConfig, out: Path,
              since: float | None = None) -> dict:
    """One run of a sweep, in this process or in a Ray worker: claims the run in the store (a
    run another live process trains, or one stored since ``since``, the sweep's start as
    ``time.time()``, is skipped: ``{"skipped": why}``),
    trains, writes the SePS figures of the first seed, stores the run's record
    (:meth:`FinishedRun.record`) or its error, and returns the record."""
    store, name = run_store(out), run_name(method, seed)
    if not store.claim(name):
        return {"skipped": f"trained by process {store.claimed_by(name) or '?'}"}
    try:
        path = store.record_path(name)
        if since is not None and path.exists() and path.stat().st_mtime >= since:
            return {"skipped": "stored by another process during this sweep"}
        if settings.threads is not None:
            torch.set_num_threads(settings.threads)
        try:
            with torchrl_warnings_only():
                result = run(method, seed, config, settings, out)
            if result.identification is not None and seed == settings.seeds[0]:
                result.summary.outputs += write_seps_figures(config, settings, result, out)
        except Exception:
            store.save_error(name, traceback.format_exc())
            raise
        record = result.record(config, settings)
        store.save(name, record)
        return record
    finally:
        store.release(name)


RUN_NAME = re.compile(rf"({'|'.join(METHODS)})_seed\d+")


def run_store(out: Path) -> RunStore:
    """The store of a sweep's runs, ``out/runs``: records named ``<method>_seed<seed>``, each
    with its settings, rows and summary; other files there are not runs."""
    return RunStore(Path(out) / "runs", is_record=lambda name: RUN_NAME.fullmatch(name) is not None,
                    required=("config", "rows", "summary"))


@contextmanager
def torchrl_warnings_only() -> Iterator[None]:
    """TorchRL's warnings and errors only: its info lines (a storage initialised, ...) would
    break the progress bars."""
    torchrl_logger = logging.getLogger("torchrl")
    level = torchrl_logger.level
    torchrl_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        torchrl_logger.setLevel(level)


def run_name(method: str, seed: int) -> str:
    return f"{method}_seed{seed}"


def row(method, seed, iteration, frames, train_return, eval_return, time_s, fps, *,
        snd=None, n_groups, ari) -> dict:
    return dict(method=method, seed=seed, iteration=iteration, frames=frames,
                train_return=train_return, eval_return=eval_return, time_s=time_s, fps=fps,
                snd=snd, n_groups=n_groups, ari=ari)


def log_iteration(logger: Logger, values: dict, iteration: Iteration) -> None:
    """Returns, frames/s, timings, and the mean over gradient steps of each loss and the
    gradient norm, at the run's frames so far."""
    step = values["frames"]
    scalars = {key: values[key] for key in ("train_return", "eval_return", "fps", "snd", "n_groups", "ari")}
    scalars |= {"collection_time": iteration.collection_time, "update_time": iteration.update_time}
    scalars |= {key: value.mean().item() for key, value in iteration.losses.items()
                if key.startswith("loss_") or key == "grad_norm"}
    for key, value in scalars.items():
        if value is not None:
            logger.log_scalar(key, value, step=step)


# ---------------------------------------------------------------------------------------------
# Report: a summary of every method over seeds, then its files (csv, json, table, figures)
# ---------------------------------------------------------------------------------------------


@dataclass
class Comparison:
    """The methods compared over seeds: ``summary.json``'s ``methods``, the table, and each
    run's final return in a table of methods by seeds (``per_seed.md``)."""

    methods: dict[str, dict]
    table: str
    per_seed: str


FINAL_TRAIN_ITERATIONS = 5  # iterations whose training returns average into the final one


def summarize(methods: Sequence[str], runs: Sequence[FinishedRun],
              skipped: dict[str, str] | None = None) -> Comparison:
    """Each method's return, speed, size and groups over its seeds (the ``methods`` with a
    finished run), and a row saying why for each method ``skipped`` (``{method: reason}``).
    The final return is the last evaluation's (the
    deterministic policy); the final training return averages the finished training episodes
    (the stochastic policy) of the last ``FINAL_TRAIN_ITERATIONS`` iterations that had some."""
    curves = reporting.learning_curves(r for run_ in runs for r in run_.rows)
    to_threshold = reporting.frames_to_threshold(curves)
    compared = {}
    for method in methods:
        summaries = [run_.summary for run_ in runs if run_.summary.method == method]
        if not summaries:
            continue
        ret_mean, ret_std = reporting.mean_std([s.final_eval_return for s in summaries])
        train_mean, train_std = reporting.mean_std([
            reporting.final_mean(run_.rows, "train_return", FINAL_TRAIN_ITERATIONS)
            for run_ in runs if run_.summary.method == method
        ])
        compared[method] = {
            "final_eval_return_mean": ret_mean,
            "final_eval_return_std": ret_std,
            "final_train_return_mean": train_mean,
            "final_train_return_std": train_std,
            "final_snd_mean": reporting.mean_std([s.final_snd for s in summaries])[0],
            "frames_to_90pct": to_threshold.get(method),
            "wall_time_s": sum(s.train_time_s + s.identification_time_s for s in summaries) / len(summaries),
            "train_fps": sum(s.train_fps for s in summaries) / len(summaries),
            "parameters": summaries[0].parameters,
            "n_groups": [s.n_groups for s in summaries],
            "ari": [s.ari for s in summaries],
            "runs": [asdict(s) for s in summaries],
        }
    header = ["method", "final return", "final training return", "frames to 90%", "final SND", "wall time",
              "frames/s", "parameters", "groups found", "ARI"]
    table = reporting.markdown_table(
        header,
        [
            [
                m,
                f"{s['final_eval_return_mean']:.1f} ± {s['final_eval_return_std']:.1f}",
                f"{s['final_train_return_mean']:.2f} ± {s['final_train_return_std']:.2f}",
                "-" if s["frames_to_90pct"] is None else f"{s['frames_to_90pct']:,}",
                f"{s['final_snd_mean']:.3f}",
                f"{s['wall_time_s']:.0f} s",
                f"{s['train_fps']:.0f}",
                f"{s['parameters']:,}",
                "/".join(map(str, s["n_groups"])),
                TYPES_UNKNOWN if None in s["ari"] else "/".join(f"{a:.2f}" for a in s["ari"]),
            ]
            for m, s in compared.items()
        ] + [[m, reason, *["-"] * (len(header) - 2)] for m, reason in (skipped or {}).items()],
    )
    return Comparison(compared, table, per_seed_table(runs))


def per_seed_table(runs: Sequence[FinishedRun]) -> str:
    """The final return of every run, a row per method and a column per seed ("-": not run)."""
    final = {(run_.summary.method, run_.summary.seed): run_.summary.final_eval_return for run_ in runs}
    methods = list(dict.fromkeys(method for method, _ in final))
    seeds = sorted({seed for _, seed in final})
    return reporting.markdown_table(
        ["method", *(f"seed {seed}" for seed in seeds)],
        [[m, *(f"{final[m, s]:.2f}" if (m, s) in final else "-" for s in seeds)] for m in methods],
    )


TYPES_UNKNOWN = "n/a: types unknown"


def write_results(settings: dict, runs: Sequence[FinishedRun], comparison: Comparison,
                  failed: dict[str, str], out: Path) -> list[str]:
    """``results.csv`` (every row of every run), ``summary.json`` (with the last line of each
    failed run's error), ``table.md`` and ``per_seed.md``; returns their names."""
    rows = [r for run_ in runs for r in run_.rows]
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(key for r in rows for key in r)))
        writer.writeheader()
        writer.writerows(rows)
    with open(out / "summary.json", "w") as f:
        json.dump({"config": settings, "methods": comparison.methods,
                   "failed": {name: last_line(error) for name, error in failed.items()}}, f, indent=2)
    (out / "table.md").write_text(comparison.table + "\n")
    (out / "per_seed.md").write_text(comparison.per_seed + "\n")
    return ["results.csv", "summary.json", "table.md", "per_seed.md"]


def write_figures(config: TrainerConfig, settings: SweepConfig, runs: Sequence[FinishedRun], out: Path) -> list[str]:
    """``learning_curves.png`` (evaluation returns), ``training_curves.png`` (returns of the
    training episodes) and ``snd.png`` of every finished run, ``seps_groups.png`` of the SePS
    runs; returns the names written."""
    title = f"{config.scenario}, {config.algorithm.upper()}, {len(settings.seeds)} seed(s)"
    rows = [r for run_ in runs for r in run_.rows]
    plot_learning_curves(reporting.learning_curves(rows), out / "learning_curves.png", title=title)
    plot_learning_curves(reporting.learning_curves(rows, value="train_return"), out / "training_curves.png",
                         title=title, ylabel="training return (finished episodes, stochastic policy)")
    plot_learning_curves(reporting.learning_curves(rows, value="snd"), out / "snd.png",
                         title=title, ylabel="System Neural Diversity (total variation)")
    written = ["learning_curves.png", "training_curves.png", "snd.png"]
    seps_runs = [run_ for run_ in runs if run_.summary.method == "seps"]
    if seps_runs:
        plot_seps_groups(seps_runs, out / "seps_groups.png", title=f"SePS, {title}")
        written.append("seps_groups.png")
    return written


def write_seps_figures(config: TrainerConfig, settings: SweepConfig, seps: RunResult, out: Path) -> list[str]:
    """``seps_embeddings.png`` and ``seps_policy.gif`` of a SePS run (no GIF of an env that
    cannot render); returns the names written."""
    seps.identification.plot(out / "seps_embeddings.png", types=seps.true_types,
                             title=f"SePS's identity embeddings, {config.scenario}, seed {seps.summary.seed}")
    written = ["seps_embeddings.png"]
    if settings.gif:
        try:
            with set_exploration_type(ExplorationType.DETERMINISTIC):
                frames = render_rollout(seps.eval_env, seps.actor)
        except (AttributeError, NotImplementedError) as error:
            print(f"no seps_policy.gif: {config.scenario!r} cannot render ({error})", file=sys.stderr)
        else:
            save_gif(frames, out / "seps_policy.gif")
            written.append("seps_policy.gif")
    return written


def last_line(error: str) -> str:
    """The exception of a traceback."""
    return error.strip().splitlines()[-1] if error.strip() else "?"


def plot_seps_groups(seps_runs: Sequence[FinishedRun], path: Path, title: str) -> None:
    """Evaluation return, K and ARI against the true types (where known) over frames, one line
    per seed, the identifications marked."""
    panels = {}
    for ylabel, key in (("evaluation return", "eval_return"), ("groups K", "n_groups"),
                        ("ARI vs true types", "ari")):
        lines = {f"seed {run_.summary.seed}": points
                 for run_ in seps_runs
                 if (points := tuple(zip(*[(r["frames"], r[key]) for r in run_.rows if r[key] is not None])))}
        if lines:
            panels[ylabel] = lines
    marks = sorted({frames for run_ in seps_runs for frames in run_.summary.identified_at})
    plot_panels(panels, path, title=title, marks=marks, marks_label="SePS identifies its groups",
                integer_panels=["groups K"])


# ---------------------------------------------------------------------------------------------
# Sweep: every (method, seed) of every preset, each run stored as it finishes; resume; rebuild
# ---------------------------------------------------------------------------------------------

@dataclass
class Sweep:
    """One preset's runs: the settings they train with (``config``) and the sweep's
    (``settings``: which methods and seeds, where), its store (``runs/``) and the runs finished
    or failed. Runs stored with other sweep settings (other methods, seeds, progress, ...) but
    the same ``config`` belong to the same sweep."""

    config: TrainerConfig
    settings: SweepConfig
    finished: dict[str, FinishedRun]
    failed: dict[str, str]
    skipped: dict[str, str] = field(default_factory=dict)  # methods not run: {method: why}

    @property
    def store(self) -> RunStore:
        return run_store(Path(self.settings.output))

    def names(self) -> list[str]:
        return [run_name(method, seed) for seed in self.settings.seeds for method in self.settings.methods]


@dataclass
class SweepOptions:
    """How the runs are executed: the flags beyond :class:`TrainerConfig`'s and
    :class:`SweepConfig`'s."""

    resume: bool
    report_only: bool
    ray: bool
    ray_address: str | None
    cpus_per_run: float | None
    gpus_per_run: float | None
    jobs: int = 1


def run_sweeps(sweeps: list[Sweep], options: SweepOptions) -> bool:
    """Trains every run of every sweep not finished yet, storing each as it ends, one line of
    progress per run. Returns ``False`` when interrupted (Ctrl-C), ``True`` otherwise."""
    by_output = {sweep.settings.output: sweep for sweep in sweeps}
    started = time.time()
    tasks = [
        (method, seed, sweep.config,
         replace(sweep.settings, progress=sweep.settings.progress and not options.ray and options.jobs == 1),
         Path(sweep.settings.output).resolve(), started)
        for sweep in sweeps for seed in sweep.settings.seeds for method in sweep.settings.methods
        if run_name(method, seed) not in sweep.finished
    ]
    outcomes = run_tasks(sweep_run, tasks, ray=options.ray, address=options.ray_address,
                         cpus_per_run=options.cpus_per_run or 1.0, gpus_per_run=options.gpus_per_run or 0.0,
                         processes=options.jobs)
    try:
        for number, outcome in enumerate(outcomes, start=1):
            method, seed, config, settings, *_ = outcome.arguments
            sweep, name = by_output[settings.output], run_name(method, seed)
            if outcome.error is not None:
                sweep.failed[name] = outcome.error
                status = f"FAILED, {last_line(outcome.error)} (traceback in {sweep.store.error_path(name)})"
            elif "skipped" in outcome.result:
                status = f"skipped, {outcome.result['skipped']}"
            else:
                sweep.failed.pop(name, None)
                finished = sweep.finished[name] = FinishedRun.from_record(outcome.result)
                status = (f"final return {finished.summary.final_eval_return:.1f}, "
                          f"{finished.summary.train_time_s + finished.summary.identification_time_s:.0f} s")
            print(f"[{number}/{len(tasks)}] {config.scenario} {method} seed {seed}: {status}", flush=True)
    except KeyboardInterrupt:
        return False
    return True


def resumed(sweep: Sweep, flag: str = "--resume") -> dict[str, FinishedRun]:
    """The finished runs of ``sweep`` in its store; fails if one trained with other settings.
    A record that cannot be read back is reported by name and counts as not stored."""
    store, finished = sweep.store, {}
    for name in sorted(set(store.finished()) & set(sweep.names())):
        try:
            record = store.load(name)
        except UnreadableRecord as error:
            print(f"{flag}: {error}; the run counts as not stored", file=sys.stderr)
            continue
        check_same_settings(sweep.config, record["config"], f"{flag}: {store.record_path(name)}")
        finished[name] = FinishedRun.from_record(record)
    return finished


def check_same_settings(expected: TrainerConfig, stored: dict, where: str) -> None:
    """Fails unless the run whose settings ``stored`` holds trained with ``expected`` (the
    sweep's settings may differ)."""
    seen, wanted = asdict(split_settings(stored)[0]), asdict(expected)
    differ = [key for key in wanted if json.dumps(wanted[key]) != json.dumps(seen[key])]
    if differ:
        raise SystemExit(
            f"error: {where} was trained with other settings ("
            + ", ".join(f"{key}: {seen[key]!r} there, {wanted[key]!r} here" for key in differ)
            + "); use the same settings or another --output."
        )


def rebuilt(out: Path) -> Sweep:
    """The sweep of the runs ``out/runs/`` holds, whatever their methods and seeds, in the order
    of methods of the sweep that stored them. Records that cannot be read back count as failed
    runs (their error says why); files that are not records are ignored."""
    if out.exists() and not out.is_dir():
        raise SystemExit(f"error: --report-only: --output {out} is a file, not a sweep's folder.")
    store = run_store(out)
    records, unreadable = store.readable(), store.unreadable()
    for error in unreadable.values():
        print(f"--report-only: {error}", file=sys.stderr)
    if not records:
        raise SystemExit(f"error: --report-only: {store.root} holds no finished run that can be read back.")
    config, settings = split_settings(next(iter(records.values()))["config"])
    for name, record in records.items():
        check_same_settings(config, record["config"], f"--report-only: {store.record_path(name)}")
    runs = {name: FinishedRun.from_record(record) for name, record in records.items()}
    stored_methods = {s.method for s in (run_.summary for run_ in runs.values())}
    order = list(dict.fromkeys([*settings.methods, *METHODS]))
    settings = replace(
        settings, output=str(out),
        methods=[m for m in order if m in stored_methods],
        seeds=sorted({run_.summary.seed for run_ in runs.values()}),
    )
    return Sweep(config, settings, runs, {**store.errors(), **unreadable})


def reloaded(sweep: Sweep) -> None:
    """Reads ``sweep``'s runs back from its store, so that its report also covers the runs that
    other processes sharing the folder stored."""
    sweep.finished = resumed(sweep, "report")
    errors = sweep.store.errors()
    sweep.failed = {name: errors[name] for name in sweep.names()
                    if name in errors and name not in sweep.finished}
    sweep.failed |= {name: why for name, why in sweep.store.unreadable().items() if name in sweep.names()}


def report_locked(sweep: Sweep, wait_s: float = 300.0) -> dict:
    """:func:`report`, holding the folder's report claim so that two processes never write
    its files at once (waiting up to ``wait_s`` for another process's report)."""
    lock = Path(sweep.settings.output) / "report.claim"
    deadline = time.monotonic() + wait_s
    while not claim_file(lock):
        if time.monotonic() > deadline:
            raise SystemExit(f"error: {lock} is held by a live process; the report was not written.")
        time.sleep(0.5)
    try:
        reloaded(sweep)
        return report(sweep)
    finally:
        release_file(lock)


def report(sweep: Sweep) -> dict:
    """The table of a sweep's finished runs, written with ``results.csv``, ``summary.json`` and
    the figures (:func:`write_figures`), and printed with its failed runs."""
    config, settings, out = sweep.config, sweep.settings, Path(sweep.settings.output)
    runs = [sweep.finished[name] for name in sweep.names() if name in sweep.finished]
    if len(settings.methods) > 1 or len(settings.seeds) > 1:
        print(f"\n{config.scenario}: {len(runs)} of {len(sweep.names())} runs finished")
    if not runs:
        return {"config": config, "settings": settings, "table": "", "failed": sweep.failed}
    comparison = summarize(settings.methods, runs, sweep.skipped)
    written = write_results(stored_settings(config, settings), runs, comparison, sweep.failed, out)
    written += write_figures(config, settings, runs, out)
    print(comparison.table)
    if len(settings.seeds) > 1:
        print("\nfinal return per seed:\n" + comparison.per_seed)
    for name, error in sweep.failed.items():
        print(f"failed: {name}: {last_line(error)}")
    written += [output for run_ in runs for output in run_.summary.outputs]
    written += [f"runs/{name}.json" for name in sweep.names() if name in sweep.finished]
    print(f"\nresults in {out}/: {listed(written)}")
    return {"config": config, "settings": settings, "table": comparison.table, "failed": sweep.failed}


def listed(names: Sequence[str]) -> str:
    """The files of ``names``, those in a folder counted per folder (one per run).

    Examples:
        >>> listed(["table.md", "checkpoints/a.pt", "seps_policy.gif", "checkpoints/b.pt"])
        'table.md, seps_policy.gif, checkpoints/ (2 runs)'
    """
    files, folders = [], Counter()
    for name in dict.fromkeys(names):
        folder, slash, _ = name.partition("/")
        if slash:
            folders[folder] += 1
        else:
            files.append(name)
    return ", ".join([*files, *(f"{folder}/ ({count} run{'s' * (count != 1)})" for folder, count in folders.items())])


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> tuple[list[Sweep], SweepOptions]:
    """One sweep per preset (each in ``--output``/<preset> when there are several), and how to
    run them."""
    parser = make_parser()
    args = parser.parse_args(argv)
    given = given_flags(parser, argv)
    if (args.ray or args.ray_address is not None) and "threads" not in given:
        args.threads = None  # a Ray task trains with as many threads as its --cpus-per-run
    presets = list(dict.fromkeys(args.preset))
    sweeps = [
        Sweep(from_args(TrainerConfig, args, preset=preset,
                        **{name: value for name, value in preset_settings(preset).items() if name not in given}),
              from_args(SweepConfig, args,
                        output=args.output if len(presets) == 1 else str(Path(args.output) / preset)),
              {}, {})
        for preset in presets
    ]
    options = SweepOptions(args.resume, args.report_only, args.ray or args.ray_address is not None,
                           args.ray_address, args.cpus_per_run, args.gpus_per_run, args.jobs)
    return sweeps, options


def validate(sweeps: list[Sweep], options: SweepOptions) -> None:
    """Fails with a clear message before any training starts; leaves out the methods whose
    inputs the scenario lacks (:func:`skip_methods_without_inputs`)."""
    try:
        for sweep in sweeps:
            sweep.settings.validate()
            skip_methods_without_inputs(sweep)
            sweep.config.validate(sweep.settings.methods)
        check_int("--jobs", options.jobs)
        if options.ray and options.jobs != 1:
            raise ValueError("--jobs runs several runs on this machine; with --ray, Ray places them (--cpus-per-run).")
        if not options.ray and (options.cpus_per_run, options.gpus_per_run) != (None, None):
            raise ValueError("--cpus-per-run and --gpus-per-run set the resources of Ray tasks: they need --ray.")
        if options.ray:
            import_ray()
        for sweep in sweeps:
            check_output(sweep.settings.output)
    except (TypeError, ValueError, ModuleNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None


def skip_methods_without_inputs(sweep: Sweep) -> None:
    """The oracle trains on the true agent types: where they are unknown (VMAS's own scenarios,
    most ``--env`` factories) it is left out of the sweep, and the table says why."""
    if "oracle" in sweep.settings.methods and len(sweep.settings.methods) > 1:
        try:
            env = build_env(sweep.config, num_envs=1, seed=0)
        except (TypeError, ValueError):
            return  # the config's validate() says what is wrong
        if true_types(env) is None:
            sweep.skipped["oracle"] = TYPES_UNKNOWN
            sweep.settings = replace(sweep.settings, methods=[m for m in sweep.settings.methods if m != "oracle"])


def main(argv: list[str] | None = None) -> dict:
    """Runs the sweep of the command line (or rebuilds its report) and returns its report; with
    several presets, ``{preset: report}``."""
    sweeps, options = parse_args(argv)
    completed = True
    if options.report_only:
        sweeps = [rebuilt(Path(sweep.settings.output)) for sweep in sweeps]
        reports = {sweep.config.scenario: report(sweep) for sweep in sweeps}
    else:
        validate(sweeps, options)
        for sweep in sweeps:
            Path(sweep.settings.output).mkdir(parents=True, exist_ok=True)
            if options.resume:
                sweep.finished = resumed(sweep)
        completed = run_sweeps(sweeps, options)
        reports = {sweep.config.scenario: report_locked(sweep) for sweep in sweeps}
    if not completed:
        raise SystemExit("\ninterrupted: every finished run is stored and reported above; "
                         "the same command with --resume trains the others.")
    failed = sorted(name for sweep in sweeps for name in sweep.failed)
    if failed:
        raise SystemExit(f"error: {len(failed)} run(s) failed or unreadable: {', '.join(failed)} "
                         "(errors above and in --output/runs/).")
    return next(iter(reports.values())) if len(reports) == 1 else reports


if __name__ == "__main__":
    main()
