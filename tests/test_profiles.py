"""``benchmarks/iteration_profile.py`` and ``benchmarks/thread_policy.py`` in tiny configurations."""
from __future__ import annotations

import re

import pytest
from threads import one_thread  # noqa: F401

from benchmarks import iteration_profile, thread_policy


def rows_of(table: str) -> dict[str, list[str]]:
    return {cells[0]: cells[1:] for cells in (line.strip("| ").split(" | ") for line in table.splitlines()[2:])}


def per_frame(cell: str) -> float:
    return float(re.fullmatch(r"\d+ ms \(([\d.]+) us\)", cell).group(1))


def test_every_phase_of_an_iteration_is_timed():
    table = iteration_profile.main(["--preset", "lbf-8x8-3p-2f", "--rounds", "2",
                                    "--setting", "num_envs=4", "rollout_steps=4",
                                    "--setting", "num_envs=2", "rollout_steps=4", "minibatches=1"])
    header = table.splitlines()[0].strip("| ").split(" | ")
    assert header[1:] == ["4 x 4, 4 x 4, relu", "2 x 4, 4 x 1, relu"]
    rows = rows_of(table)
    for column in range(2):
        phases = {name: per_frame(rows[name][column]) for name in iteration_profile.PHASES}
        # each timer fires: the env's step, the policy and the library's update phases
        for name in ("collection: env step", "collection: policy", "update: advantages", "update: loss forward",
                     "update: backward", "update: gradient step"):
            assert phases[name] > 0, name
        total = per_frame(rows["total"][column])
        assert sum(phases.values()) == pytest.approx(total, abs=0.05 * len(phases))
        assert float(rows["training frames/s"][column].replace(",", "")) == pytest.approx(1e6 / total, rel=0.02)


def test_thread_table_shares_are_relative_to_the_quiet_machine():
    table = thread_policy.main(["--presets", "lbf-8x8-3p-2f", "--threads", "1", "--competing", "0", "1",
                                "--rounds", "2", "--identifications", "0"])
    (name, cells), = rows_of(table).items()
    assert name == "lbf-8x8-3p-2f training"
    threads, quiet, loaded = cells
    share = re.fullmatch(r"([\d,]+) \((\d+)%\)", loaded)
    assert threads == "1"
    assert int(share.group(2)) == pytest.approx(100 * int(share.group(1).replace(",", "")) / int(quiet.replace(",", "")),
                                                abs=1)


@pytest.mark.parametrize("script, argv, message", [
    (iteration_profile, ["--setting", "envs=4"], "envs is not a setting"),
    (iteration_profile, ["--rounds", "0"], "must be an int >= 1"),
    (thread_policy, ["--competing", "1", "2"], "--competing must start with 0"),
    (thread_policy, ["--threads", "0"], "must be an int >= 1"),
])
def test_bad_options_fail_with_a_message(capsys, script, argv, message):
    with pytest.raises(SystemExit):
        script.main(argv)
    assert message in capsys.readouterr().err
