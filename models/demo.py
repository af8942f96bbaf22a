"""The model the demo runs: a small image classifier, compiled on first use and cached.

`aotiplug run` with no package compiles this file with the venv's torch (through
python/aotiplug/package.py), caches the .pt2, and runs it through the CPU plugin. The
package carries its sample input and PyTorch eager's outputs for it, so the demo can show
that the compiled model agrees with eager.

    python models/demo.py --out demo.pt2
    python models/demo.py --out demo.pt2 --max-batch 64   # dimension 0 a batch of 1..64 (./dev serve)
"""
import argparse
import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))


class DemoClassifier(nn.Module):
    """conv -> batchnorm -> relu -> conv -> pool -> linear -> softmax over 10 classes."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
        )
        self.classifier = nn.Linear(16 * 4 * 4, 10)

    def forward(self, image):
        x = self.features(image).flatten(1)
        return torch.softmax(self.classifier(x), dim=1)


def build():
    torch.manual_seed(0)
    model = DemoClassifier().eval()
    image = torch.rand(2, 1, 28, 28)
    return model, (image,)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="where to write the .pt2")
    parser.add_argument("--max-batch", type=int, default=0,
                        help="compile dimension 0 as a dynamic batch of 1..N (default: static)")
    args = parser.parse_args()
    from aotiplug import package_model

    model, inputs = build()
    dynamic = None
    if args.max_batch > 0:
        dynamic = {"image": {0: torch.export.Dim("batch", min=1, max=args.max_batch)}}
    tmp = os.path.splitext(args.out)[0] + ".partial.pt2"
    package_model(model, inputs, tmp, dynamic_shapes=dynamic)
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
