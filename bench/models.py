"""The benchmark models (compiled by make_models.py into the build tree).

tiny    one small linear layer: per-call overhead dominates
medium  an MLP with 4.2 MB of weights
large   one 2048 x 4096 linear layer, 32 MB of weights: the weight-swap memory benchmark
tiny_batch, medium_batch
        tiny and medium with dimension 0 a dynamic batch of 1..64, packaged by plain
        torch._inductor.aoti_compile_and_package: the serving benchmark's models
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
    if name.endswith("_batch"):
        # An example of several rows: torch.export specializes a dimension of size 1.
        model, (x,) = build(name[: -len("_batch")])
        return model, (x.repeat(4, 1)[:max(4, x.shape[0])],)
    if name == "tiny":
        return Tiny().eval(), (torch.randn(1, 16),)
    if name == "medium":
        return Medium().eval(), (torch.randn(16, 512),)
    if name == "large":
        return Large().eval(), (torch.randn(4, 4096),)
    raise KeyError(name)


NAMES = ["tiny", "medium", "large", "tiny_batch", "medium_batch"]
# Packaged by plain aoti_compile_and_package with a dynamic batch (what most users bring).
PLAIN_BATCH = {"tiny_batch", "medium_batch"}
