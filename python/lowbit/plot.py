"""Plots of an accuracy sweep (the JSON written by `lowbit eval --sweep ... --json`).

    python -m lowbit.plot SWEEP.json OUT.png      (or OUT.svg)
    python python/lowbit/plot.py SWEEP.json OUT.png   (without the compiled package)

Two panels against bits per weight (whole weights.bin / number of weights): mean KL divergence
from the fp32 model (log scale) and the perplexity change in % (symmetric log scale, since 8-bit
deltas can be slightly negative and 1-bit ones are thousands of %). One line per quantizer and
grouping; error bars are the 95% intervals the harness reports.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict


def _series(rows):
    """Groups the quantized rows by (quantizer, group), each sorted by bits per weight."""
    lines = defaultdict(list)
    for r in rows:
        if not r.get("quantizer"):
            continue  # the fp32 reference
        lines[(r["quantizer"], str(r["group"]))].append(r)
    for pts in lines.values():
        pts.sort(key=lambda r: r["bits_per_weight"])
    return dict(sorted(lines.items(), key=lambda kv: (kv[0][0], kv[0][1] != "row", kv[0][1].zfill(4))))


def plot_sweep(json_path: str, out_path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(json_path) as f:
        sweep = json.load(f)
    rows = sweep["rows"]
    fig, (ax_kl, ax_ppl) = plt.subplots(1, 2, figsize=(12, 4.8))
    styles = {"rtn": "--", "search": "-"}
    markers = {"row": "o", "32": "s", "64": "^", "128": "D", "256": "v"}
    for (quantizer, group), pts in _series(rows).items():
        x = [p["bits_per_weight"] for p in pts]
        label = f"{quantizer}, {'per row' if group == 'row' else 'g' + group}"
        kw = dict(linestyle=styles.get(quantizer, "-"), marker=markers.get(group, "x"), label=label, capsize=2)
        kl = [max(p["result"]["kl_mean"]["value"], 1e-9) for p in pts]
        kl_err = [
            [k - max(p["result"]["kl_mean"]["lo"], 1e-9) for k, p in zip(kl, pts)],
            [p["result"]["kl_mean"]["hi"] - k for k, p in zip(kl, pts)],
        ]
        ax_kl.errorbar(x, kl, yerr=kl_err, **kw)
        d = [p["result"]["delta_ppl_pct"]["value"] for p in pts]
        d_err = [
            [v - p["result"]["delta_ppl_pct"]["lo"] for v, p in zip(d, pts)],
            [p["result"]["delta_ppl_pct"]["hi"] - v for v, p in zip(d, pts)],
        ]
        ax_ppl.errorbar(x, d, yerr=d_err, **kw)
    ax_kl.set_yscale("log")
    ax_kl.set_ylabel("mean KL(P_fp32 || P_quant), nats")
    ax_ppl.set_yscale("symlog", linthresh=0.1)
    ax_ppl.set_ylabel("perplexity change vs fp32, %")
    ax_ppl.axhline(0, color="gray", linewidth=0.8)
    for ax in (ax_kl, ax_ppl):
        ax.set_xlabel("bits per weight (whole file)")
        ax.grid(True, which="both", alpha=0.3)
    ax_ppl.legend(fontsize=8)
    model = sweep.get("hf_dir", "").rstrip("/").split("/")[-1]
    text = sweep.get("text", "").split("/")[-1]
    ref = rows[0]["result"] if rows else {}
    tokens = ref.get("tokens", 0)
    ppl = ref.get("ppl_quant", {}).get("value", float("nan"))
    fig.suptitle(f"{model} on {text}: ctx {sweep.get('ctx')}, {tokens} scored tokens, fp32 ppl {ppl:.3f}")
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m lowbit.plot SWEEP.json OUT.png|svg", file=sys.stderr)
        return 2
    plot_sweep(argv[0], argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
