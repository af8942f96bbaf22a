"""Times PyTorch eager on the benchmark models, for the side-by-side table (run by the
benchmark program itself, so all numbers come from one run on one machine).

Prints JSON: {"tiny": {"median_us":..., "p10_us":..., "p90_us":...}, ...}
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--iters", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("names", nargs="+")
    args = p.parse_args()
    import torch
    import models

    torch.set_num_threads(args.threads)
    out = {}
    for name in args.names:
        model, inputs = models.build(name)
        with torch.inference_mode():
            for _ in range(50):
                model(*inputs)
            times = []
            for _ in range(args.iters):
                t0 = time.perf_counter_ns()
                model(*inputs)
                times.append((time.perf_counter_ns() - t0) / 1000.0)
        times.sort()
        q = lambda f: times[min(len(times) - 1, int(f * len(times)))]
        out[name] = {"median_us": q(0.5), "p10_us": q(0.1), "p90_us": q(0.9), "p99_us": q(0.99)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
