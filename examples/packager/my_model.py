"""A model of your own, as aotiplug-package takes it: FILE.py:NAME names an nn.Module class
(made with no arguments), a function returning a module, or a module object.

    .venv/bin/aotiplug-package examples/packager/my_model.py:Net \
        --input float32:8,16 --dynamic-batch 1..64 -o net.pt2
"""
import torch


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.LayerNorm(32), torch.nn.Linear(32, 4))

    def forward(self, x):
        return torch.softmax(self.body(x), dim=-1)
