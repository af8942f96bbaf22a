"""Draw the benchmark results (aotiplug-bench JSON) as one PNG for docs/performance.md.

    .venv/bin/python bench/plot.py build/bench/results.json docs/performance.png
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> int:
    results = json.load(open(sys.argv[1]))
    out = sys.argv[2]
    missing = [k for k in ["per_call", "open_to_first_output", "swap", "throughput", "plugin_scan"]
               if k not in results]
    if missing:  # a run with --only
        print(f"plot.py: no plot, the results lack {', '.join(missing)} (a run with --only)")
        return 0
    serving = results.get("serving")
    fig, axes = plt.subplots(3 if serving else 2, 3, figsize=(15, 12 if serving else 8))
    fig.suptitle("aotiplug vs upstream (medians; bars p10-p90)")

    def bars(ax, labels, stats, title, unit):
        med = [s["median"] for s in stats]
        lo = [s["median"] - s["p10"] for s in stats]
        hi = [s["p90"] - s["median"] for s in stats]
        ax.bar(labels, med, yerr=[lo, hi], capsize=4, color=["#4c72b0", "#55a868", "#c44e52", "#8172b2"][: len(labels)])
        ax.set_title(title)
        ax.set_ylabel(unit)

    pc = results["per_call"]
    eager = pc.get("eager") or {}
    for ax, name in zip(axes[0][:2], ["tiny", "medium"]):
        labels = ["ours\n(executor)", "ours\n(runner)", "upstream\nrunner"]
        stats = [pc[name]["ours_executor_us"], pc[name]["ours_runner_us"], pc[name]["upstream_runner_us"]]
        if name in eager:
            labels.append("eager\n(Python)")
            e = eager[name]
            stats.append({"median": e["median_us"], "p10": e["p10_us"], "p90": e["p90_us"]})
        bars(ax, labels, stats, f"1. run(), {name} model", "µs per call")

    o = results["open_to_first_output"]
    bars(axes[0][2], ["ours", "upstream\nloader"], [o["ours_ms"], o["upstream_ms"]],
         "2. package open -> first output", "ms")

    sl = results["swap"]["latency"]
    ax = axes[1][0]
    x = ["p50", "p99"]
    if "upstream" in sl:
        # ours steady, ours during swaps, upstream steady, upstream during swaps
        u = sl["upstream"]
        series = [("ours steady", sl["steady_us"]), ("ours, swaps", sl["during_swaps_us"]),
                  ("upstream steady", u["steady_us"]), ("upstream, swaps", u["during_swaps_us"])]
        for i, (label, st) in enumerate(series):
            ax.bar([i * 0.2, 1 + i * 0.2], [st["median"], st["p99"]], width=0.2, label=label)
        ax.set_xticks([0.3, 1.3], x)
    else:
        ax.bar([0, 1], [sl["steady_us"]["median"], sl["steady_us"]["p99"]], width=0.4, label="steady")
        ax.bar([0.4, 1.4], [sl["during_swaps_us"]["median"], sl["during_swaps_us"]["p99"]], width=0.4,
               label="during swaps")
        ax.set_xticks([0.2, 1.2], x)
    ax.set_title("3. run() while weights are swapped")
    ax.set_ylabel("µs")
    ax.legend()

    m = results["swap"]["memory"]
    ax = axes[1][1]
    ax.bar(["ours", "upstream\n(copy)"], [m["ours_ratio"], m["upstream_ratio"]], color=["#4c72b0", "#c44e52"])
    ax.axhline(1.1, color="gray", linestyle="--", label="target 1.1x")
    ax.set_title("3. memory a swap adds / weight size")
    ax.legend()

    t = results["throughput"]["configs"]
    ax = axes[1][2]
    ax.bar([f"{c['threads']} thr\n{c['num_models']} model(s)" for c in t], [c["runs_per_s"] for c in t])
    ax.set_title("4. throughput, medium model")
    ax.set_ylabel("runs/s")

    if serving:
        concurrency = [1, 4, 16]
        for ax, short in zip(axes[2][:2], ["tiny", "medium"]):
            for side, label, color in (("ours", "aotiplug backend", "#4c72b0"),
                                       ("python_aoti", "Python backend + aoti_load_package", "#c44e52")):
                ax.plot(concurrency, [serving[short][side][str(c)]["infer_per_s"] for c in concurrency],
                        marker="o", label=label, color=color)
            b = [serving[short]["ours"][str(c)]["anchor_b"]["infer_per_s"] for c in concurrency]
            ax.plot(concurrency, b, marker="x", linestyle="--", color="gray", label="executor in-process, same batches")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")  # the in-process line is far above both servers on the tiny model
            ax.set_xticks(concurrency, [str(c) for c in concurrency])
            ax.set_xlabel("concurrent clients")
            ax.set_ylabel("infer/s")
            ax.set_title(f"6. serving throughput, {short} model (Triton 2.51, HTTP)")
            ax.legend(fontsize=8)
        ax = axes[2][2]
        p99 = [[serving["medium"][side][str(c)]["p99_us"] / 1000 for c in concurrency] for side in ("ours", "python_aoti")]
        x = range(len(concurrency))
        ax.bar([i - 0.2 for i in x], p99[0], width=0.4, label="aotiplug backend", color="#4c72b0")
        ax.bar([i + 0.2 for i in x], p99[1], width=0.4, label="Python backend", color="#c44e52")
        ax.set_xticks(list(x), [f"c={c}" for c in concurrency])
        ax.set_ylabel("ms")
        ax.set_title("6. serving p99 latency, medium model")
        ax.legend(fontsize=8)

    fig.tight_layout()
    fig.savefig(out, dpi=90)
    print("wrote", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
