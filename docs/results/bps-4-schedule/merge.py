"""bps-4, 3 seeds, 240k frames: SePS with the FuPS warm-up (this folder's results.csv) beside the
earlier runs of the other methods and of SePS with random-policy identification
(docs/results/bps-4; FuPS seed 1 rerun with the current code gives the same return, -1475.4).

Usage, from the repository root:
    PYTHONPATH=. python docs/results/bps-4-schedule/merge.py OUT.png docs/results/bps-4-schedule/results.csv
"""
import csv, glob, sys
import numpy as np
from benchmarks.experiments import reporting
from torchrl_seps.plotting import plot_learning_curves

def load(path, rename=None):
    out = []
    for r in csv.DictReader(open(path)):
        r = {k: v for k, v in r.items()}
        r["method"] = (rename or {}).get(r["method"], r["method"])
        r["seed"], r["frames"] = int(r["seed"]), int(r["frames"])
        r["eval_return"] = float(r["eval_return"]) if r["eval_return"] else None
        for k in ("ari", "n_groups", "snd"):
            r[k] = float(r[k]) if r.get(k) not in (None, "") else None
        out.append(r)
    return out

rows = load("docs/results/bps-4/results.csv", {"seps": "seps_random_id"})
new = []
for path in sys.argv[2:]:
    new += [r for r in load(path) if r["method"] == "seps"]
rows += new
curves = reporting.learning_curves(rows)
reach = reporting.frames_to_threshold(curves)
table = []
for method in ["nops", "fups", "fups_id", "seps", "seps_random_id", "oracle"]:
    runs = {}
    for r in rows:
        if r["method"] == method and r["eval_return"] is not None:
            runs.setdefault(r["seed"], []).append(r)
    last = [max(v, key=lambda r: r["frames"]) for _, v in sorted(runs.items())]
    m, s = reporting.mean_std([r["eval_return"] for r in last])
    ari = "/".join(f"{r['ari']:.2f}" for r in last) if last[0]["ari"] is not None else "-"
    table.append([method, f"{m:.1f} ± {s:.1f}", "-" if reach[method] is None else f"{reach[method]:,}", ari])
print(reporting.markdown_table(["method", "final return", "frames to 90%", "ARI"], table))
f_s, c_s, _ = curves["seps"]; f_f, c_f, _ = curves["fups"]
common = sorted(set(f_s.tolist()) & set(f_f.tolist()))
diff = [(f, float(c_s[list(f_s).index(f)] - c_f[list(f_f).index(f)])) for f in common]
print("seps - fups at common evaluation frames:", [(f, round(d, 1)) for f, d in diff])
plot_learning_curves(curves, sys.argv[1], title="bps-4, PPO, 3 seeds: SePS with FuPS warm-up vs earlier runs")
start = np.mean([float(c[0]) for _, c, _ in curves.values()])
best = max(float(c[-1]) for _, c, _ in curves.values())
thr = start + 0.9 * (best - start)
print("threshold", round(thr, 1))
for m in ("seps", "oracle", "seps_random_id"):
    f, c, _ = curves[m]
    print(m, [(int(a), round(float(b), 1)) for a, b in zip(f, c) if 50000 <= a <= 90000 or a in (62880, 72880, 82880)])
