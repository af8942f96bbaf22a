"""aotiplug-package: compile a module's nn.Module into a .pt2 package aotiplug checks and runs.

    aotiplug-package my_model.py:Net --input float32:8,16 --dynamic-batch 1..64 -o net.pt2

TARGET names the model: `path/to/file.py:NAME` or `package.module:NAME`, where NAME is an
nn.Module subclass (made with no arguments), a function returning a module (called with
none), or a module object. Example inputs come from `--input DTYPE:SHAPE` (repeatable; random
values, seeded) or from `--inputs FILE` (a torch.save'd tensor, list or tuple of tensors).

Exit codes: 0 ok, 1 the model could not be loaded, exported or compiled, 2 bad arguments.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import re
import sys
from typing import Any, Sequence

_SHAPE = re.compile(r"^([a-z0-9_]+):(\d+(?:,\d+)*)?$")
_RANGE = re.compile(r"^(\d+)\.\.(\d+)$")
_DYNAMIC = re.compile(r"^(\d+)\.(\d+)=(\d+)\.\.(\d+)$")


class UsageError(Exception):
    """A bad command line (exit 2)."""


def _load_target(target: str):
    import torch

    if ":" not in target:
        raise UsageError(f"TARGET must be FILE.py:NAME or module:NAME, not '{target}'")
    where, name = target.rsplit(":", 1)
    if where.endswith(".py"):
        if not os.path.isfile(where):
            raise UsageError(f"model file {where} does not exist")
        spec = importlib.util.spec_from_file_location("aotiplug_user_model", where)
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, os.path.dirname(os.path.abspath(where)))
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    if not hasattr(module, name):
        raise UsageError(f"{where} has no '{name}'")
    obj = getattr(module, name)
    if isinstance(obj, type) and issubclass(obj, torch.nn.Module):
        obj = obj()
    elif callable(obj) and not isinstance(obj, torch.nn.Module):
        obj = obj()
    if not isinstance(obj, torch.nn.Module):
        raise UsageError(f"{target} is not an nn.Module, a subclass of one, or a function returning one "
                         f"(got {type(obj).__name__})")
    return obj


def _dtype(name: str):
    import torch

    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise UsageError(f"'{name}' is not a torch dtype (float32, float16, bfloat16, int64, int32, bool, ...)")
    return dtype


def _example_inputs(specs: Sequence[str], inputs_file: str | None, seed: int) -> list:
    import torch

    if inputs_file:
        if specs:
            raise UsageError("give --input or --inputs, not both")
        if not os.path.isfile(inputs_file):
            raise UsageError(f"inputs file {inputs_file} does not exist")
        loaded = torch.load(inputs_file, weights_only=True)
        tensors = [loaded] if isinstance(loaded, torch.Tensor) else list(loaded)
        if not tensors or not all(isinstance(t, torch.Tensor) for t in tensors):
            raise UsageError(f"inputs file {inputs_file} must hold a tensor or a list/tuple of tensors")
        return tensors
    if not specs:
        raise UsageError("give the example inputs: --input DTYPE:SHAPE (repeatable) or --inputs FILE")
    gen = torch.Generator().manual_seed(seed)
    out = []
    for text in specs:
        m = _SHAPE.match(text)
        if not m:
            raise UsageError(f"--input {text}: expected DTYPE:SHAPE, e.g. float32:8,16 (or float32: for a scalar)")
        dtype = _dtype(m.group(1))
        shape = [int(d) for d in m.group(2).split(",")] if m.group(2) else []
        if dtype.is_floating_point:
            t = torch.randn(shape, generator=gen).to(dtype)
        elif dtype == torch.bool:
            t = torch.rand(shape, generator=gen) > 0.5
        else:
            t = torch.randint(0, 10, shape, generator=gen).to(dtype)
        out.append(t)
    return out


def _dynamic_shapes(inputs: list, batch: str | None, dims: Sequence[str]) -> Any:
    from torch.export import Dim

    if not batch and not dims:
        return None
    shapes: list[dict] = [{} for _ in inputs]
    if batch:
        m = _RANGE.match(batch)
        if not m:
            raise UsageError(f"--dynamic-batch {batch}: expected MIN..MAX, e.g. 1..64")
        lo, hi = int(m.group(1)), int(m.group(2))
        shared = Dim("batch", min=lo, max=hi)
        for i, t in enumerate(inputs):
            if t.dim() == 0:
                raise UsageError(f"--dynamic-batch: input {i} is a scalar, it has no batch dimension")
            shapes[i][0] = shared
    for text in dims:
        m = _DYNAMIC.match(text)
        if not m:
            raise UsageError(f"--dynamic {text}: expected INPUT.DIM=MIN..MAX, e.g. 0.1=2..128")
        i, d, lo, hi = (int(g) for g in m.groups())
        if i >= len(inputs):
            raise UsageError(f"--dynamic {text}: there are {len(inputs)} inputs")
        if d >= inputs[i].dim():
            raise UsageError(f"--dynamic {text}: input {i} has {inputs[i].dim()} dimensions")
        shapes[i][d] = Dim(f"input{i}_dim{d}", min=lo, max=hi)
    return tuple(s or None for s in shapes)


def _describe(spec: dict) -> str:
    dims = []
    for size, lo, hi in zip(spec["sizes"], spec["min"], spec["max"]):
        dims.append(str(size) if size >= 0 else f"-1 ({lo}..{'' if hi < 0 else hi})")
    return f"{spec['name']}: {spec['dtype']} [{', '.join(dims)}]"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="aotiplug-package",
        description="Compile a PyTorch nn.Module with AOTInductor into a .pt2 package that records "
                    "its input and output specs, sample inputs and eager reference outputs, "
                    "for `aotiplug run` (and still loadable by torch._inductor.aoti_load_package).",
        epilog="Exit codes: 0 ok, 1 the model could not be loaded, exported or compiled, 2 bad arguments.")
    parser.add_argument("target", help="FILE.py:NAME or module:NAME (an nn.Module class, a function returning one, or a module)")
    parser.add_argument("-o", "--output", required=True, help="the .pt2 to write")
    parser.add_argument("--input", action="append", default=[], metavar="DTYPE:SHAPE",
                        help="an example input, e.g. float32:8,16 (repeatable, in order; random values)")
    parser.add_argument("--inputs", metavar="FILE", help="example inputs: a torch.save'd tensor or list/tuple of tensors")
    parser.add_argument("--dynamic-batch", metavar="MIN..MAX", help="dimension 0 of every input is one dynamic batch size in this range")
    parser.add_argument("--dynamic", action="append", default=[], metavar="INPUT.DIM=MIN..MAX",
                        help="a dynamic dimension of one input, e.g. 0.1=2..128 (repeatable)")
    parser.add_argument("--state-dict", metavar="FILE", help="load these weights (a torch.save'd state_dict) into the module first")
    parser.add_argument("--name", default="model", help="the model's name inside the package (default: model)")
    parser.add_argument("--op-library", action="append", default=[], metavar="PATH",
                        help="a library registering custom operators the model calls (loaded, and named in the package); repeatable")
    parser.add_argument("--no-swappable-weights", action="store_true",
                        help="let Inductor inline small weights into the code (faster, but a weight swap misses them)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random example inputs (default 0)")
    args = parser.parse_args(argv)
    try:
        import torch
        from .package import package_model

        if not args.output.endswith(".pt2"):
            raise UsageError(f"--output {args.output}: a package's name ends in .pt2")
        for library in args.op_library:
            if not os.path.isfile(library):
                raise UsageError(f"op library {library} does not exist")
            torch.ops.load_library(library)
        model = _load_target(args.target)
        if args.state_dict:
            model.load_state_dict(torch.load(args.state_dict, weights_only=True))
        inputs = _example_inputs(args.input, args.inputs, args.seed)
        dynamic = _dynamic_shapes(inputs, args.dynamic_batch, args.dynamic)
        print(f"aotiplug-package: exporting and compiling {args.target} (torch {torch.__version__}; "
              "this takes a while)", file=sys.stderr, flush=True)
        specs = package_model(model, inputs, args.output, dynamic_shapes=dynamic, model_name=args.name,
                              swappable_weights=not args.no_swappable_weights, op_libraries=args.op_library)
    except UsageError as e:
        parser.print_usage(sys.stderr)
        print(f"aotiplug-package: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # export or compile failed: say what, not a stack trace
        print(f"aotiplug-package: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.output} (model '{args.name}')")
    for kind in ("inputs", "outputs"):
        for spec in specs[kind]:
            print(f"  {kind[:-1]:6} {_describe(spec)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
