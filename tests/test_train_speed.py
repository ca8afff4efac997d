"""``benchmarks/train_speed.py``: the side-by-side training-speed table, in a tiny configuration."""
from __future__ import annotations

import pytest
from threads import one_thread  # noqa: F401

from benchmarks import train_speed


def rows_of(table: str) -> list[list[str]]:
    return [line.strip("| ").split(" | ") for line in table.splitlines()[2:]]


def assert_consistent(frames: int, iteration: str, fps: str):
    """Both columns are rounded to whole numbers: the iteration took ms +- 0.5 for its frames."""
    milliseconds = float(iteration.removesuffix(" ms"))
    assert frames * 1e3 / (milliseconds + 0.5) - 0.5 <= float(fps) <= frames * 1e3 / (milliseconds - 0.5) + 0.5


def test_table_has_a_row_per_method_relative_to_fups():
    rows = rows_of(train_speed.main(["--methods", "fups", "oracle", "nops", "--num-envs", "2", "--rounds", "2"]))
    assert [(r[0], r[1], r[2]) for r in rows] == [("2 x 50, 4 x 4, tanh", "fups", "1"),
                                                  ("2 x 50, 4 x 4, tanh", "oracle", "3"),
                                                  ("2 x 50, 4 x 4, tanh", "nops", "15")]
    assert rows[0][5] == "1.00x"
    for _, method, _, iteration, fps, ratio in rows:
        # 2 envs x 50 steps per iteration; frames/s is the median of each round's, and the
        # median iteration the batch over it
        assert_consistent(100, iteration, fps)
        assert float(ratio.removesuffix("x")) > 0


def test_other_settings_are_timed_in_the_same_rounds():
    """A grid world takes the main job's grid-world settings; --against times other settings too."""
    rows = rows_of(train_speed.main(["--preset", "lbf-8x8-3p-2f", "--num-envs", "4", "--rollout-steps", "4",
                                     "--methods", "fups", "--rounds", "2", "--against", "num_envs=2",
                                     "ppo_epochs=1"]))
    assert [(r[0], r[1]) for r in rows] == [("4 x 4, 4 x 4, relu", "fups"), ("2 x 4, 1 x 4, relu", "fups")]
    assert_consistent(8, rows[1][3], rows[1][4])


@pytest.mark.parametrize("argv, message", [
    (["--methods", "seps", "oracle"], "must include fups"),
    (["--preset", "bps-9"], "--preset 'bps-9' is unknown"),
    (["--num-envs", "0"], "--num-envs must be an int >= 1"),
    (["--against", "num_envs"], "--against takes KEY=VALUE pairs"),
    (["--against", "num_envs=0"], "--num-envs must be an int >= 1"),
    (["--against", "envs=4"], "envs is not a setting"),
])
def test_bad_options_fail_with_a_message(capsys, argv, message):
    with pytest.raises(SystemExit):
        train_speed.main(argv)
    assert message in capsys.readouterr().err
