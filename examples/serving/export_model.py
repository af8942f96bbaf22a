"""Compile a model with plain torch._inductor.aoti_compile_and_package and put it in a Triton
model repository for the aotiplug backend:

    REPO/classifier/config.pbtxt     backend: "aotiplug"   (the backend completes the rest)
    REPO/classifier/1/model.pt2      the package
    REPO/classifier/sample.pt        inputs and PyTorch eager's outputs for them, in order (for ask.py)

A package from plain aoti_compile_and_package does not record the argument names of
forward(): it is served with AOTInductor's names for its inputs and outputs (here `arg4_1`
and `output0`; aotiplug's packager records the names, see docs/serving.md).

    python examples/serving/export_model.py REPO
"""
import os
import sys

import torch


class Classifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))

    def forward(self, features):
        return torch.softmax(self.net(features), dim=1)


def main() -> int:
    repo = sys.argv[1]
    model_dir = os.path.join(repo, "classifier")
    os.makedirs(os.path.join(model_dir, "1"), exist_ok=True)
    torch.manual_seed(0)
    model = Classifier().eval()
    example = torch.randn(4, 32)
    batch = torch.export.Dim("batch", min=1, max=128)
    program = torch.export.export(model, (example,), dynamic_shapes={"features": {0: batch}})
    torch._inductor.aoti_compile_and_package(program, package_path=os.path.join(model_dir, "1", "model.pt2"))
    with open(os.path.join(model_dir, "config.pbtxt"), "w") as f:
        f.write('backend: "aotiplug"\n')
    with torch.no_grad():
        torch.save({"inputs": [example], "outputs": [model(example)]}, os.path.join(model_dir, "sample.pt"))
    print(f"wrote {model_dir}/1/model.pt2")
    return 0


if __name__ == "__main__":
    sys.exit(main())
