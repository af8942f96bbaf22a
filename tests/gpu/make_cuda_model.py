"""Compile the GPU check's model with this machine's torch, on its GPU.

Writes OUT/model.pt2 (python/aotiplug packager) and OUT/model.data.pt (inputs, eager
outputs, two weight sets and the eager outputs of the second; all on the CPU). With
--op-library (the test op library, tests/fixtures/ops): also OUT/extern.pt2, the test
model whose extern kernels call that library's ops, on the GPU, and OUT/extern.data.pt
(inputs and eager outputs, on the CPU). --device cpu checks this script without a GPU.
"""
import argparse
import os
import sys
import time

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))
sys.path.insert(0, os.path.join(HERE, "..", "fixtures"))


class GpuMlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(1024, 2048)
        self.fc2 = nn.Linear(2048, 1024)
        self.norm = nn.LayerNorm(1024)

    def forward(self, x):
        return self.norm(self.fc2(torch.nn.functional.gelu(self.fc1(x))))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--op-library", default="")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    from aotiplug import package_model

    os.makedirs(args.out, exist_ok=True)
    device = torch.device(args.device)
    if args.op_library:
        # The models with extern kernels (tests/fixtures/models.py), on this device.
        import models
        models.register_test_op_fakes(args.op_library)
        spec = models.EXTERN_FIXTURES["extern_ops"]()
        model = spec["model"].to(device).eval()
        inputs = tuple(t.to(device) for t in spec["inputs"])
        start = time.time()
        package_model(model, inputs, os.path.join(args.out, "extern.pt2"),
                      dynamic_shapes=spec["dynamic_shapes"], op_libraries=[args.op_library])
        print(f"compiled the extern-kernel model in {time.time() - start:.1f} s", flush=True)
        with torch.no_grad():
            outputs = list(model(*inputs))
        torch.save({"inputs": [t.cpu() for t in inputs], "outputs": [t.detach().cpu() for t in outputs]},
                   os.path.join(args.out, "extern.data.pt"))
        if args.device == "cpu":
            return 0  # the rest is CUDA only
    torch.manual_seed(0)
    model = GpuMlp().to(device).eval()
    x = torch.randn(32, 1024, device=device)
    start = time.time()
    package_model(model, (x,), os.path.join(args.out, "model.pt2"))
    print(f"compiled the CUDA model in {time.time() - start:.1f} s", flush=True)
    # The same model as most users package it: plain aoti_compile_and_package, a dynamic
    # batch, no aotiplug metadata (its input checks come from the wrapper source).
    start = time.time()
    batch = torch.export.Dim("batch", min=1, max=256)
    with torch.no_grad():
        ep = torch.export.export(model, (x,), dynamic_shapes={"x": {0: batch}})
    torch._inductor.aoti_compile_and_package(ep, package_path=os.path.join(args.out, "plain.pt2"))
    print(f"compiled the plain CUDA package in {time.time() - start:.1f} s", flush=True)
    with torch.no_grad():
        state_a = {k: v.detach().clone() for k, v in model.state_dict().items()}
        outputs = [model(x)]
        g = torch.Generator(device="cpu").manual_seed(7)
        state_b = {k: (torch.rand(v.shape, generator=g) * 0.2 - 0.1).to(device) for k, v in state_a.items()}
        model.load_state_dict(state_b)
        outputs_b = [model(x)]
    cpu = lambda ts: [t.detach().cpu() for t in ts]
    torch.save({
        "inputs": cpu([x]),
        "outputs": cpu(outputs),
        "weights_a": {k: v.cpu() for k, v in state_a.items()},
        "weights_b": {k: v.cpu() for k, v in state_b.items()},
        "outputs_b": cpu(outputs_b),
        "device_name": torch.cuda.get_device_name(0),
        "torch_version": str(torch.__version__),
    }, os.path.join(args.out, "model.data.pt"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
