"""Merge main-job results.csv files (renaming methods) into one table with the benchmarks'
reporting functions (benchmarks/experiments/reporting.py): final return mean ± std, frames to
90% (threshold over all merged methods), final SND, ARI per seed.

Usage, from the repository root:
    PYTHONPATH=. python docs/results/bps-1-schedule/merge.py OUT.md DIR[:method=newname] ...
"""
import csv
import sys

from benchmarks.experiments import reporting
rows = []
for spec in sys.argv[2:]:
    folder, *renames = spec.split(":")
    ren = dict(r.split("=") for r in renames)
    for r in csv.DictReader(open(f"{folder}/results.csv")):
        r["method"] = ren.get(r["method"], r["method"])
        for k in ("frames", "seed"):
            r[k] = int(r[k])
        for k in ("eval_return", "snd", "ari", "n_groups"):
            r[k] = float(r[k]) if r[k] != "" else None
        rows.append(r)
curves = reporting.learning_curves(rows)
reach = reporting.frames_to_threshold(curves)
table = []
for method in dict.fromkeys(r["method"] for r in rows):
    runs = {}
    for r in rows:
        if r["method"] == method:
            runs.setdefault(r["seed"], []).append(r)
    last = [sorted(v, key=lambda r: r["frames"])[-1] for v in runs.values()]
    m, s = reporting.mean_std([r["eval_return"] for r in last])
    snd = reporting.mean_std([r["snd"] for r in last])
    table.append([method, f"{m:.1f} ± {s:.1f}", "-" if reach[method] is None else f"{reach[method]:,}",
                  f"{snd[0]:.3f} ± {snd[1]:.3f}", "/".join(str(int(r["n_groups"])) for r in last),
                  "/".join(f"{r['ari']:.2f}" for r in last)])
text = reporting.markdown_table(["method", "final return", "frames to 90%", "final SND", "groups", "ARI"], table)
open(sys.argv[1], "w").write(text + "\n")
print(text)
