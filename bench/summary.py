"""Print the benchmark results (aotiplug-bench JSON) as the table of docs/performance.md,
with each target and whether it was met."""
import json
import sys


def main() -> int:
    r = json.load(open(sys.argv[1]))
    rows = []

    def row(what, value, target, ok):
        rows.append((what, value, target, "" if ok is None else "met" if ok else "MISSED"))

    # A run with --only has some sections: print those.
    if "per_call" in r:
        pc = r["per_call"]
        for name in ["tiny", "medium"]:
            p = pc[name]
            e = (pc.get("eager") or {}).get(name, {})
            rows.append((f"1. run() {name}: ours / upstream / eager (median µs)",
                         f"{p['ours_executor_us']['median']:.3f} / {p['upstream_runner_us']['median']:.3f} / "
                         f"{e.get('median_us', float('nan')):.2f}", "", ""))
        t = pc["tiny"]["ratio_executor_vs_upstream"]
        row("1. tiny: ours / upstream runner", f"{t:.3f}x ({pc['tiny']['overhead_executor_us'] * 1000:+.0f} ns)",
            "<= 1.0x", t <= 1.0)
    if "open_to_first_output" in r:
        o = r["open_to_first_output"]
        row("2. open -> first output: ours / upstream loader",
            f"{o['ratio']:.3f}x ({o['ours_ms']['median']:.2f} vs {o['upstream_ms']['median']:.2f} ms)", "<= 0.85x",
            o["ratio"] <= 0.85)
        if "second_open" in o:  # (docs/performance.md)
            s2 = o["second_open"]
            row("2. second open (one already open): ours / upstream loader",
                f"{s2['ratio']:.3f}x ({s2['ours_ms']['median']:.2f} vs {s2['upstream_ms']['median']:.2f} ms)",
                "<= 0.3x", s2["ratio"] <= 0.3)
    if "swap" in r:
        s = r["swap"]["latency"]
        row("3. run() p99 during swaps / steady p99",
            f"{s['p99_ratio']:.2f}x ({s['during_swaps_us']['p99']:.1f} vs {s['steady_us']['p99']:.1f} µs, "
            f"{s['during_swaps_us']['swaps']} swaps)", "<= 1.2x", s["p99_ratio"] <= 1.2)
        if "upstream" in s:
            u = s["upstream"]
            row("3. upstream runner, the same swap loop: p99 during / steady",
                f"{u['p99_ratio']:.2f}x ({u['during_swaps_us']['p99']:.1f} vs {u['steady_us']['p99']:.1f} µs, "
                f"{u['during_swaps_us']['swaps']} swaps); ours / upstream during swaps: "
                f"{s['during_swaps_us']['p99'] / u['during_swaps_us']['p99']:.2f}x p99", "", None)
        pw = s["during_swaps_us"]["process_weights_us"]["median"]
        row("3. processWeights median / one run (steady median)",
            f"{pw / s['steady_us']['median']:.2f}x ({pw:.0f} vs {s['steady_us']['median']:.0f} µs)", "<= 1x",
            pw <= s["steady_us"]["median"])
        m = r["swap"]["memory"]
        row("3. memory a swap adds / weight size: ours (upstream)",
            f"{m['ours_ratio']:.2f}x ({m['upstream_ratio']:.2f}x)", "<= 1.1x", m["ours_ratio"] <= 1.1)
    if "throughput" in r:
        tp = r["throughput"]
        row("4. throughput 2 threads x 2 models / 1 x 1", f"{tp['scaling_2x2_vs_1x1']:.2f}x", ">= 1.8x",
            tp["scaling_2x2_vs_1x1"] >= 1.8)
    if "plugin_scan" in r:
        ps = r["plugin_scan"]
        row("5. scan + load 100 plugins (median, verdicts cached)",
            f"{ps['ms']['median']:.1f} ms ({ps['loaded']} loaded or fallback, {ps['rejected']} rejected; "
            f"first start, scanned in a child: {ps.get('first_scan_ms', 0):.0f} ms)", "<= 50 ms",
            ps["ms"]["median"] <= 50)
    if "serving" in r:
        sv, tg = r["serving"], r["serving"]["targets"]
        for short in ("tiny", "medium"):
            for c in ("1", "4", "16"):
                o, a = sv[short]["ours"][c], sv[short]["python_aoti"][c]
                rows.append((f"6. serve {short} c={c}: ours / Python+aoti_load_package (infer/s; p50, p99 µs)",
                             f"{o['infer_per_s']:.0f} / {a['infer_per_s']:.0f}; {o['p50_us']:.0f}, {o['p99_us']:.0f} / "
                             f"{a['p50_us']:.0f}, {a['p99_us']:.0f}", "", ""))
        if "rounds_c16" in sv["medium"]:
            row("6. medium c=16 rounds: throughput vs Python; p99 vs Python; batching on / off",
                ", ".join(f"{x['throughput_vs_python']:.2f}x; {x['p99_vs_python']:.2f}x; {x['dynamic_batching_on_vs_off']:.2f}x"
                          for x in sv["medium"]["rounds_c16"]), "", None)
        row("6. medium c=16 throughput: ours / Python backend", f"{tg['medium_c16_throughput_vs_python']:.2f}x",
            ">= 1.5x", tg["medium_c16_throughput_vs_python"] >= 1.5)
        row("6. medium c=16 p99: ours / Python backend", f"{tg['medium_c16_p99_vs_python']:.2f}x", "<= 0.7x",
            tg["medium_c16_p99_vs_python"] <= 0.7)
        row("6. medium c=16 dynamic batching on / off", f"{tg['medium_c16_dynamic_batching_on_vs_off']:.2f}x",
            ">= 3x", tg["medium_c16_dynamic_batching_on_vs_off"] >= 3)
        row("6. tiny c=1 serving overhead over in-process (client p50; server's own)",
            f"{tg['tiny_c1_overhead_us']:.0f} µs ({tg['tiny_c1_server_overhead_us']:.0f} µs in the server)",
            "<= 100 µs", tg["tiny_c1_overhead_us"] <= 100)
        if "tiny_c1_one_cpu_overhead_us" in tg:
            one = tg["tiny_c1_one_cpu_overhead_us"]
            rows.append(("6. the same, server and client pinned to one CPU: dynamic batching; none",
                         f"{one['dynamic_batching']:.0f} µs; {one['no_dynamic_batching']:.0f} µs", "", ""))
        for label, m in (("tiny c=1", sv["tiny"]["ours"]["1"]), ("medium c=16", sv["medium"]["ours"]["16"]),
                         ("medium c=16, no dynamic batching", sv["medium"].get("ours_no_dynamic_batching_c16")),
                         ("medium c=16, Python backend", sv["medium"]["python_aoti"]["16"])):
            if m and "cpu" in m:
                cpu = m["cpu"]
                client = "client" if "client" in sv["settings"] else "perf_analyzer"
                rows.append((f"6. CPU per request, {label}: server (kernel share; model), {client}; cores busy",
                             f"{cpu['server_us']:.0f} µs ({cpu['server_kernel_share']:.0%}; {cpu['model_us']:.0f} µs), "
                             f"{cpu['client_us']:.0f} µs; {cpu['cores_busy']:.2f} of {sv['settings'].get('cores', '?')}", "", ""))
        check = sv["medium"].get("perf_analyzer_c16")
        if check:
            o, a = check["ours"], check["python_aoti"]
            rows.append(("6. cross-check, perf_analyzer as the client: medium c=16, ours / Python (infer/s; p99 µs)",
                         f"{o['infer_per_s']:.0f} / {a['infer_per_s']:.0f} = {o['infer_per_s'] / a['infer_per_s']:.2f}x; "
                         f"{o['p99_us']:.0f} / {a['p99_us']:.0f} = {o['p99_us'] / a['p99_us']:.2f}x", "", ""))
        sw = sv["medium"]["swap"]
        rounds = sw.get("rounds")
        row("6. medium c=4 p99 during swaps / steady (failed requests)" + (", the median round" if rounds else ""),
            f"{tg['swap_p99_ratio']:.2f}x ({sw['during_swaps']['p99_us']:.0f} vs {sw['steady']['p99_us']:.0f} µs, "
            f"{sw['swaps']} swaps, {tg['swap_failed_requests']} failed requests, "
            f"{tg.get('swap_failed_swaps', '?')} failed swaps)", "<= 1.3x, 0, 0",
            tg["swap_p99_ratio"] <= 1.3 and tg["swap_failed_requests"] == 0 and tg.get("swap_failed_swaps") == 0)
        if "paced" in sw:
            row(f"6. the same, one swap every {sw['paced']['interval_ms']:.0f} ms",
                f"{sw['paced']['p99_ratio']:.2f}x ({sw['paced']['during_swaps']['p99_us']:.0f} µs, "
                f"{sw['paced']['swaps']} swaps)", "", None)
        if rounds:
            row(f"6. swap rounds: back to back / one every {sw['paced']['interval_ms']:.0f} ms (steady p99)",
                ", ".join(f"{x['p99_ratio']:.2f}x / {x['paced_p99_ratio']:.2f}x ({x['steady_p99_us']:.0f} µs)"
                          for x in rounds), "", None)
    width = max(len(w) for w, *_ in rows)
    for what, value, target, verdict in rows:
        print(f"{what:<{width}}  {value:<48} {target:<9} {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
