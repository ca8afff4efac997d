"""Bad inputs against the library, the envs and the main job: how each one is answered.

Every probe is a call that must be refused, with the words its error must contain (the
argument, the rule). A probe counts as

- ``clear``: a ``ValueError``, ``TypeError``, ``KeyError`` or ``SystemExit`` at the call whose
  message holds those words;
- ``late``: one of those, but whose message does not name the problem;
- ``silent``: no error at all (the bad input was accepted);
- ``raw``: any other exception (an ``IndexError``, ``AssertionError``, ``JSONDecodeError``...).

It uses only interfaces that predate the checks, so the same script measures an older
checkout (``PYTHONPATH=<checkout>:<checkout>/benchmarks python benchmarks/probes.py``).

    python benchmarks/probes.py            # the counts
    python benchmarks/probes.py --verbose  # every probe that is not clear
"""
from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import warnings
from pathlib import Path

import torch
from tensordict import TensorDict
from torchrl.data import Categorical, Composite, Unbounded
from torchrl.envs import EnvBase

warnings.filterwarnings("ignore")
from torchrl_seps import GroupedMultiAgentMLP  # noqa: E402
from torchrl_seps.identification import GroupKeys  # noqa: E402
from torchrl_seps.scenarios import LevelBasedForaging, make_env  # noqa: E402
from torchrl_seps.scenarios.warehouse import ColouredWarehouse  # noqa: E402
from torchrl_seps.schedule import SePSSchedule, regroup  # noqa: E402
from torchrl_seps.training import TrainerConfig  # noqa: E402

import vmas_seps  # noqa: E402
from experiments.config import SweepConfig  # noqa: E402

PROBES: list[tuple[str, callable, tuple[str, ...]]] = []


def probe(name: str, *words: str):
    def register(fn):
        PROBES.append((name, fn, words))
        return fn
    return register


# ------------------------------------------------------------------ actions of the envs

def grid_envs():
    yield "lbf", lambda cat: LevelBasedForaging(num_envs=2, players=2, field_size=5, max_num_food=1, seed=0, categorical_actions=cat), 6
    yield "rware", lambda cat: ColouredWarehouse(num_envs=2, n_agents=2, shelf_rows=1, shelf_columns=3, column_height=2, seed=0, categorical_actions=cat), 5
    yield "bps-1", lambda cat: make_env("bps-1", num_envs=2, categorical_actions=cat), 5


def step_with(make, cat, action):
    env = make(cat)
    td = env.reset()
    td["agents", "action"] = action
    env.step(td)


for env_name, make, n in grid_envs():
    N = 15 if env_name == "bps-1" else 2
    bad_indices = {"-1": -1, "-2": -2, f"{n}": n, f"{n + 1}": n + 1, "100": 100}
    for label, value in bad_indices.items():
        action = torch.zeros(2, N, dtype=torch.long)
        action[0, 0] = value
        PROBES.append((f"{env_name} action {label}", lambda m=make, a=action: step_with(m, True, a), ("action", "[0,")))
    for label, action in {
        "float 2.7": torch.full((2, N), 2.7), "float 1.0": torch.ones(2, N), "bool": torch.ones(2, N, dtype=torch.bool),
        "nan": torch.full((2, N), float("nan")),
    }.items():
        PROBES.append((f"{env_name} action {label}", lambda m=make, a=action: step_with(m, True, a), ("action", "integer")))
    for label, rows in {
        "all-zero row": lambda N=N, n=n: torch.zeros(2, N, n, dtype=torch.long),
        "two-hot row": lambda N=N, n=n: torch.nn.functional.one_hot(torch.zeros(2, N, dtype=torch.long), n) + torch.nn.functional.one_hot(torch.ones(2, N, dtype=torch.long), n),
        "negative entry": lambda N=N, n=n: torch.nn.functional.one_hot(torch.zeros(2, N, dtype=torch.long), n) * -1,
        "entry 2": lambda N=N, n=n: torch.nn.functional.one_hot(torch.zeros(2, N, dtype=torch.long), n) * 2,
        "halves": lambda N=N, n=n: torch.full((2, N, n), 1.0 / n),
        "wrong width": lambda N=N, n=n: torch.nn.functional.one_hot(torch.zeros(2, N, dtype=torch.long), n + 1),
    }.items():
        PROBES.append((f"{env_name} one-hot {label}", lambda m=make, r=rows: step_with(m, False, r()), ("action", "one-hot")))


def step_continuous(value: float) -> None:
    env = make_env("bps-1", num_envs=2, continuous_actions=True)
    td = env.reset()
    td["agents", "action"] = torch.full((2, 15, 2), value)
    env.step(td)


for _value in ("nan", "inf"):
    PROBES.append((f"bps-1 continuous {_value} action", lambda v=float(_value): step_continuous(v), ("action", "finite")))


# ------------------------------------------------------------------ set_state

def lbf():
    env = LevelBasedForaging(num_envs=1, players=2, field_size=6, max_num_food=2, max_player_level=3, seed=0)
    state = env.get_state()
    state["positions"][0] = torch.tensor([[1, 2], [3, 3]])
    state["levels"][0] = torch.tensor([1, 2])
    state["field"][0] = 0
    state["field"][0, 2, 2] = 2
    state["food_spawned"][0] = 2
    env.set_state(state)  # a valid state
    return env, state


def lbf_case(name, change, *words):
    def fn():
        env, state = lbf()
        change(state)
        env.set_state(state)
    PROBES.append((f"lbf set_state {name}", fn, words))


def setitem(key, index, value):
    def change(state):
        state[key][index] = value
    return change


lbf_case("level 0", setitem("levels", (0, 0), 0), "levels")
lbf_case("level -1", setitem("levels", (0, 1), -1), "levels")
lbf_case("level above max", setitem("levels", (0, 1), 9), "levels")
lbf_case("negative food", setitem("field", (0, 3, 3), -1), "field")
lbf_case("food_spawned 0", setitem("food_spawned", 0, 0), "food_spawned")
lbf_case("food_spawned -5", setitem("food_spawned", 0, -5), "food_spawned")
lbf_case("food_spawned below the field's food", setitem("food_spawned", 0, 1), "food_spawned")
lbf_case("agent on a food", setitem("positions", (0, 0), torch.tensor([2, 2])), "positions", "food")
lbf_case("food on the top border", setitem("field", (0, 0, 3), 1), "field", "border")
lbf_case("food on the left border", setitem("field", (0, 3, 0), 1), "field", "border")
lbf_case("food on the corner", setitem("field", (0, 5, 5), 1), "field", "border")
lbf_case("too many foods", lambda s: s["field"][0, 1:5, 1:5].fill_(1), "field")
lbf_case("position off the grid", setitem("positions", (0, 0), torch.tensor([6, 0])), "positions")
lbf_case("negative position", setitem("positions", (0, 1), torch.tensor([-1, 0])), "positions")
lbf_case("bool positions", lambda s: s.set("positions", s["positions"].bool()), "positions")
lbf_case("float levels", lambda s: s.set("levels", s["levels"].float()), "levels")
lbf_case("bool field", lambda s: s.set("field", s["field"].bool()), "field")
lbf_case("missing key", lambda s: s.del_("food_spawned"), "food_spawned")


@probe("lbf set_state wrong shape", "positions")
def _():
    env, state = lbf()
    env.set_state(TensorDict({**state.to_dict(), "positions": torch.zeros(1, 3, 2, dtype=torch.long)}, batch_size=[1]))


@probe("lbf set_state a dict", "state")
def _():
    env, state = lbf()
    env.set_state(state.to_dict())


@probe("lbf fixed levels set_state other levels", "levels")
def _():
    env = LevelBasedForaging(num_envs=1, players=2, field_size=6, max_num_food=1, levels=[1, 2], seed=0)
    env.reset()
    state = env.get_state()
    state["levels"][0] = torch.tensor([2, 1])
    env.set_state(state)


def rware():
    env = ColouredWarehouse(num_envs=1, n_agents=2, shelf_rows=1, shelf_columns=3, n_colours=1, column_height=2, seed=0)
    env.reset()
    return env, env.get_state()


def rware_case(name, change, *words):
    def fn():
        env, state = rware()
        change(state)
        env.set_state(state)
    PROBES.append((f"rware set_state {name}", fn, words))


def two_agents_one_cell(s):
    s["positions"][0, 1] = s["positions"][0, 0]


def two_shelves_one_cell(s):
    s["shelf_positions"][0, 1] = s["shelf_positions"][0, 0]


def shelf_carried_twice(s):
    s["positions"][0] = torch.tensor([[0, 3], [0, 4]])
    s["shelf_positions"][0, 0] = torch.tensor([0, 3])
    s["carrying"][0] = torch.tensor([0, 0])


def too_many_requests(s):
    s["requested"][0] = True


def standing_shelf_on_highway(s):
    s["shelf_positions"][0, 0] = torch.tensor([4, 0])


rware_case("two agents on one cell", two_agents_one_cell, "positions", "own cell")
rware_case("two shelves on one cell", two_shelves_one_cell, "shelf_positions", "own cell")
rware_case("one shelf carried by two agents", shelf_carried_twice, "carrying")
rware_case("more requests than the queue", too_many_requests, "requested", "request_queue_size")
rware_case("standing shelf on the highway", standing_shelf_on_highway, "shelf_positions", "highway")
rware_case("direction 4", setitem("directions", (0, 0), 4), "directions")
rware_case("direction -1", setitem("directions", (0, 0), -1), "directions")
rware_case("carrying -2", setitem("carrying", (0, 0), -2), "carrying")
rware_case("carrying past the shelves", setitem("carrying", (0, 0), 99), "carrying")
rware_case("shelf colour 3", setitem("shelf_colours", (0, 0), 3), "shelf_colours")
rware_case("carried shelf elsewhere", setitem("carrying", (0, 0), 0), "shelf_positions")
rware_case("agent off the grid", setitem("positions", (0, 0), torch.tensor([0, 99])), "positions")
rware_case("bool positions", lambda s: s.set("positions", s["positions"].bool()), "positions")
rware_case("float directions", lambda s: s.set("directions", s["directions"].float()), "directions")


# ------------------------------------------------------------------ configs

TRAINER_BAD = {
    "lr": [0, -1e-3, float("nan"), float("inf"), "0.1"],
    "gamma": [0, 5, -1, 1.5, float("nan")],
    "lmbda": [-0.1, 1.5, float("nan")],
    "clip_epsilon": [0, -1, 2],
    "entropy_coeff": [-1, float("nan")],
    "critic_coeff": [0, -1],
    "max_grad_norm": [0, -1, float("nan")],
    "frames": [0, -5, 1.5],
    "num_envs": [0, 8.5, True, "8"],
    "rollout_steps": [0, 2.5],
    "ppo_epochs": [0, -1],
    "minibatches": [0, 3],
    "depth": [0, -1],
    "num_cells": [0, 1.5],
    "activation": ["gelu", 1],
    "eval_policy": ["greedy", None],
    "id_frames": [0, -1, 1.5],
    "id_policy": ["x"],
    "regroup_every": [0, -10],
    "id_epochs": [0, -1, 1.5],
    "n_groups": [0, 50, -1, 2.5],
    "eval_every": [0],
    "eval_envs": [0],
    "device": ["gpu", "cuda:x"],
    "algorithm": ["sac"],
    "preset": ["nope"],
    "group": ["x"],
    "group_sizes": [[0, 5], [], ["a"]],
    "continuous_actions": ["yes"],
    "centralized_critic": ["yes"],
    "normalize_advantage": [1],
}
for field_name, values in TRAINER_BAD.items():
    flag = "--" + field_name.replace("_", "-")
    words = ("minibatches",) if (field_name, values) == ("minibatches", 3) else (flag if field_name not in ("group_sizes",) else "group",)
    for value in values:
        PROBES.append((f"TrainerConfig {field_name}={value!r}",
                       lambda f=field_name, v=value: TrainerConfig(**{f: v}).validate(), words))

PROBES.append(("TrainerConfig centralized critic with a2c",
               lambda: TrainerConfig(centralized_critic=True, algorithm="a2c").validate(), ("--centralized-critic",)))
PROBES.append(("TrainerConfig device cuda without CUDA" if not torch.cuda.is_available() else "TrainerConfig device cuda:99",
               lambda: TrainerConfig(device="cuda" if not torch.cuda.is_available() else "cuda:99").validate(), ("--device",)))
PROBES.append(("TrainerConfig methods repeated", lambda: TrainerConfig().validate(["fups", "fups"]), ("--methods",)))
PROBES.append(("TrainerConfig methods unknown", lambda: TrainerConfig().validate(["fups", "x"]), ("--methods",)))

SWEEP_BAD = {
    "seeds": [[0, 0], [-1], [], [1.5], [True]],
    "methods": [["fups", "fups"], ["nope"]],
    "threads": [0, -1, 1.5],
    "logger": ["x"],
    "gif": ["yes"],
    "progress": [1],
}
for field_name, values in SWEEP_BAD.items():
    for value in values:
        def fn(f=field_name, v=value):
            settings = SweepConfig(**{f: v})
            settings.validate()
            TrainerConfig().validate(settings.methods)
        PROBES.append((f"SweepConfig {field_name}={value!r}", fn, ("--" + field_name,)))


@probe("SweepConfig output is a file", "--output")
def _():
    with tempfile.NamedTemporaryFile() as f:
        vmas_seps.validate(*vmas_seps.parse_args(["--output", f.name]))


@probe("SweepConfig output under a file", "--output")
def _():
    with tempfile.NamedTemporaryFile() as f:
        vmas_seps.validate(*vmas_seps.parse_args(["--output", f.name + "/sub"]))


# ------------------------------------------------------------------ the main job's command line

CLI_BAD = [
    (["--seeds", "0", "0"], "--seeds"), (["--seeds", "-1"], "--seeds"), (["--n-groups", "50"], "--n-groups"),
    (["--id-epochs", "0"], "--id-epochs"), (["--num-envs", "8.5"], "--num-envs"), (["--gamma", "5"], "--gamma"),
    (["--clip-epsilon", "-1"], "--clip-epsilon"), (["--max-grad-norm", "0"], "--max-grad-norm"),
    (["--lr", "0"], "--lr"), (["--lmbda", "2"], "--lmbda"), (["--threads", "0"], "--threads"),
    (["--methods", "fups", "fups"], "--methods"), (["--methods", "x"], "--methods"),
    (["--id-frames", "0"], "--id-frames"), (["--regroup-every", "0"], "--regroup-every"),
    (["--device", "gpu"], "--device"), (["--preset", "nope"], "--preset"), (["--entropy-coeff", "-1"], "--entropy-coeff"),
    (["--frames", "10"], "--frames"), (["--minibatches", "7"], "--minibatches"), (["--eval-envs", "0"], "--eval-envs"),
    (["--cpus-per-run", "2"], "--cpus-per-run"), (["--group-sizes", "0"], "group"),
    (["--jobs", "0"], "--jobs"), (["--jobs", "2", "--ray"], "--jobs"), (["--activation", "gelu"], "--activation"),
]
for argv, flag in CLI_BAD:
    def fn(a=argv):
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            try:
                vmas_seps.validate(*vmas_seps.parse_args(a))
            except SystemExit as error:
                raise SystemExit(f"{error.code} {stderr.getvalue()}") from None
    PROBES.append((f"vmas_seps {' '.join(argv)}", fn, (flag,)))


# ------------------------------------------------------------------ SePS's schedule, regroup

def navigation():
    from torchrl.envs.libs.vmas import VmasEnv
    return VmasEnv("navigation", num_envs=2, n_agents=3, continuous_actions=False, seed=0)


for settings, word in [({"bogus": 1}, "bogus"), ({"n_groups": 5}, "n_groups"), ({"n_groups": 0}, "n_groups"),
                       ({"warm_up": "no"}, "warm_up"), ({"regroup_every": 0}, "regroup_every"),
                       ({"frames": 0}, "frames"), ({"epochs": 0}, "epochs"), ({"lr": -1.0}, "lr"),
                       ({"group": "x"}, "group"), ({"heldout_fraction": 1.5}, "heldout_fraction")]:
    PROBES.append((f"SePSSchedule {settings}", lambda s=settings: SePSSchedule(navigation(), **s), (word,)))


@probe("regroup with a second module of other agents (atomic)", "groups")
def _():
    a = GroupedMultiAgentMLP(3, 2, 4, groups=[0, 0, 0, 0], centralized=False, depth=1, num_cells=8)
    b = GroupedMultiAgentMLP(3, 2, 5, groups=[0] * 5, centralized=False, depth=1, num_cells=8)
    try:
        regroup([0, 0, 1, 1], [a, b])
    except (TypeError, ValueError) as error:
        if a.n_groups != 1:
            raise RuntimeError("the first module was regrouped before the second failed") from error
        raise


# ------------------------------------------------------------------ identification through wrappers

class SpecOnlyEnv(EnvBase):
    """An env of specs only, for the checks identification makes of an env."""

    def __init__(self, observation, mask=False):
        super().__init__(batch_size=[2])
        agents = {"observation": observation}
        if mask:
            agents["action_mask"] = Categorical(2, shape=(2, 3, 5), dtype=torch.bool)
        self.observation_spec = Composite(agents=Composite(agents, shape=(2, 3)), shape=(2,))
        self.action_spec = Composite(agents=Composite(action=Categorical(5, shape=(2, 3)), shape=(2, 3)), shape=(2,))
        self.reward_spec = Composite(agents=Composite(reward=Unbounded(shape=(2, 3, 1)), shape=(2, 3)), shape=(2,))

    def _reset(self, td):
        raise NotImplementedError

    def _step(self, td):
        raise NotImplementedError

    def _set_seed(self, seed):
        pass


@probe("identification: agents with observations of different sizes", "different", "observation")
def _():
    per_agent = [Unbounded(shape=(2, size)) for size in (4, 4, 6)]
    GroupKeys.of(SpecOnlyEnv(torch.stack(per_agent, 1)))


@probe("identification: an env with an action mask", "action mask")
def _():
    GroupKeys.of(SpecOnlyEnv(Unbounded(shape=(2, 3, 4)), mask=True))


# ------------------------------------------------------------------ a sweep's storage

def stored_sweep(files: dict[str, str]) -> Path:
    out = Path(tempfile.mkdtemp())
    (out / "runs").mkdir()
    for name, text in files.items():
        (out / "runs" / name).write_text(text)
    return out


def resume_probe(files):
    out = stored_sweep(files)
    sweeps, _ = vmas_seps.parse_args(["--output", str(out), "--methods", "fups", "--seeds", "0"])
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        finished = vmas_seps.resumed(sweeps[0])
    if finished:
        raise RuntimeError("a damaged record was read as a finished run")
    if "fups_seed0" not in stderr.getvalue():
        return "silent"
    raise ValueError(stderr.getvalue())  # reported by name (and retrained): the clear answer


def report_only_probe(files):
    out = stored_sweep(files)
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            vmas_seps.main(["--output", str(out), "--report-only"])
        except SystemExit as error:
            raise SystemExit(f"{error} {stderr.getvalue()}") from None


DAMAGED = {"truncated": '{"config": {"preset": "bps-1"}, "rows": [', "empty": "", "binary": "\x00\x01\x02",
           "a list": "[1, 2]", "no config": '{"rows": [], "summary": {}}'}
for label, text in DAMAGED.items():
    PROBES.append((f"--resume with a {label} record", lambda t=text: resume_probe({"fups_seed0.json": t}), ("fups_seed0",)))
    PROBES.append((f"--report-only with a {label} record", lambda t=text: report_only_probe({"fups_seed0.json": t}), ("fups_seed0",)))
PROBES.append(("--report-only with only notes.json", lambda: report_only_probe({"notes.json": '{"a": 1}'}), ("no finished run",)))


@probe("--report-only on a file", "--output")
def _():
    with tempfile.NamedTemporaryFile() as f:
        with contextlib.redirect_stdout(io.StringIO()):
            vmas_seps.main(["--output", f.name, "--report-only"])


# ------------------------------------------------------------------ running them

def outcome(fn, words) -> tuple[str, str]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            answer = fn()
    except (ValueError, TypeError, KeyError, SystemExit) as error:
        message = str(error)
        kind = "clear" if all(w.lower() in message.lower() for w in words) else "late"
        return kind, f"{type(error).__name__}: {message}"[:300]
    except Exception as error:  # noqa: BLE001 - a raw traceback is what is being counted
        return "raw", f"{type(error).__name__}: {error}"[:300]
    return "silent", "accepted" if answer is None else str(answer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--verbose", action="store_true", help="list every probe that is not clear")
    args = parser.parse_args()
    torch.set_num_threads(1)
    counts = {"clear": 0, "late": 0, "silent": 0, "raw": 0}
    for name, fn, words in PROBES:
        kind, message = outcome(fn, words)
        counts[kind] += 1
        if args.verbose and kind != "clear":
            print(f"{kind:6} {name}: {message}")
    print(f"{len(PROBES)} bad inputs: " + ", ".join(f"{kind} {n}" for kind, n in counts.items()))
    print("| clear error at call | late error | silent accept | raw traceback |\n|---|---|---|---|")
    print(f"| {counts['clear']} | {counts['late']} | {counts['silent']} | {counts['raw']} |")


if __name__ == "__main__":
    main()
