"""The experiment machinery that only the benchmarks use: sweep settings and the command line
(:mod:`.config`), run storage and Ray (:mod:`.sweeps`), summaries and tables (:mod:`.reporting`),
timing and peak memory (:mod:`.timing`).

The scripts of ``benchmarks/`` import it as ``experiments`` (their own folder is on the path when
they run; ``pyproject.toml`` puts it there for the tests).
"""
