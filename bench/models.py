"""The benchmark models (compiled by make_models.py into the build tree).

tiny    one small linear layer: per-call overhead dominates
medium  an MLP with 4.2 MB of weights
large   one 2048 x 4096 linear layer, 32 MB of weights: the weight-swap memory benchmark
"""
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x):
        return torch.relu(self.fc(x))


class Medium(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(512, 1024)
        self.fc2 = nn.Linear(1024, 512)
        self.fc3 = nn.Linear(512, 10)

    def forward(self, x):
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class Large(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4096, 2048)

    def forward(self, x):
        return self.fc(x)


def build(name):
    torch.manual_seed(0)
    if name == "tiny":
        return Tiny().eval(), (torch.randn(1, 16),)
    if name == "medium":
        return Medium().eval(), (torch.randn(16, 512),)
    if name == "large":
        return Large().eval(), (torch.randn(4, 4096),)
    raise KeyError(name)


NAMES = ["tiny", "medium", "large"]
