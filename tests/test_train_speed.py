"""``benchmarks/train_speed.py``: the side-by-side training-speed table, in a tiny configuration."""
from __future__ import annotations

import pytest
from threads import one_thread  # noqa: F401

from benchmarks import train_speed


def test_table_has_a_row_per_method_relative_to_fups():
    table = train_speed.main(["--methods", "fups", "oracle", "nops", "--num-envs", "2",
                              "--rounds", "2"])
    rows = [line.strip("| ").split(" | ") for line in table.splitlines()[2:]]
    assert [(r[0], r[1]) for r in rows] == [("fups", "1"), ("oracle", "3"), ("nops", "15")]
    assert rows[0][4] == "1.00x"
    for method, _, iteration, fps, ratio in rows:
        # 2 envs x 50 steps per iteration
        # frames/s is printed as an integer: within 1% or its rounding
        assert float(fps) == pytest.approx(100 / (float(iteration.removesuffix(" ms")) / 1e3), rel=0.01, abs=0.5)
        assert float(ratio.removesuffix("x")) > 0


@pytest.mark.parametrize("argv, message", [
    (["--methods", "seps", "oracle"], "must include fups"),
    (["--preset", "bps-9"], "--preset 'bps-9' is unknown"),
    (["--num-envs", "0"], "--num-envs must be an int >= 1"),
])
def test_bad_options_fail_with_a_message(capsys, argv, message):
    with pytest.raises(SystemExit):
        train_speed.main(argv)
    assert message in capsys.readouterr().err
