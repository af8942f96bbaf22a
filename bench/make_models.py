"""Compile the benchmark models (models.py) into OUT/<name>.pt2, plus OUT/<name>.data.pt with
its example inputs and a second set of weights (for swap benchmarks). Run by meson
(bench/meson.build)."""
import argparse
import concurrent.futures
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "python"))


def build_one(name, out):
    # One inductor cache per model: two workers must never write the same cache entry.
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(out, ".inductor-cache", name)
    import torch
    import models
    from aotiplug import package_model

    torch.set_num_threads(1)
    model, inputs = models.build(name)
    if name in models.PLAIN_BATCH:
        batch = torch.export.Dim("batch", min=1, max=64)
        with torch.no_grad():
            ep = torch.export.export(model, inputs, dynamic_shapes=({0: batch},))
        torch._inductor.aoti_compile_and_package(ep, package_path=os.path.join(out, name + ".pt2"))
    else:
        package_model(model, inputs, os.path.join(out, name + ".pt2"))
    g = torch.Generator().manual_seed(99)
    other = {k: torch.rand(v.shape, generator=g) * 0.1 for k, v in model.state_dict().items()}
    torch.save({"inputs": list(inputs), "weights_b": other}, os.path.join(out, name + ".data.pt"))
    return name


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--stamp", required=True)
    p.add_argument("--torch-version", default="")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    import models
    with concurrent.futures.ProcessPoolExecutor(max_workers=2) as pool:
        for name in pool.map(build_one, models.NAMES, [args.out] * len(models.NAMES)):
            print("[bench models]", name, flush=True)
    open(args.stamp, "w").write("ok\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
