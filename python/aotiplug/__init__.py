"""Python side of aotiplug: package PyTorch models for the aotiplug C++ host."""
from .package import package_model, tensor_spec  # noqa: F401
