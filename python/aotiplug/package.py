"""Compile a PyTorch module into an AOTInductor .pt2 package that aotiplug can check.

`package_model()` does what `torch._inductor.aoti_compile_and_package` does, and records
what the C++ side needs to validate inputs *before* the model library sees them:

* in the AOTI metadata (`aot_inductor.metadata`, stored in `<hash>.wrapper_metadata.json`):
  `aotiplug.inputs` / `aotiplug.outputs`, JSON lists of tensor specs
  `{"name", "dtype", "sizes" (-1 for a dynamic dim), "min", "max", "layout", "strides"
  (-1 where a stride depends on dynamic sizes)}`, and
  `aotiplug.constants`, FQN -> `{"dtype", "sizes"}` of every weight (the model library's
  C ABI does not tell constant shapes, and weights compiled outside the .so have no values
  to read them from);
* the example inputs as `data/sample_inputs/<model>.pt` (torch.save of a list), the place
  torch.export's own archives use;
* the eager outputs on those inputs as `data/aotiplug/<model>/reference_outputs.pt`, so a
  host can show that its outputs match PyTorch eager. (Not under `extra/`: upstream's
  `aoti_load_package` reads every `extra/` entry as UTF-8 text, and would refuse the
  package. aotiplug still reads `extra/aotiplug/` in packages made before.)

Packages made by plain `aoti_compile_and_package` also run in aotiplug, with the same input
checks (derived from the model's generated wrapper source), but no example inputs.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from typing import Any, Iterable, Sequence

import torch
from torch.export.pt2_archive._package import PT2ArchiveReader, PT2ArchiveWriter

SPEC_FORMAT = "1"


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _layout(t: torch.Tensor) -> str:
    """How the compiled code expects the tensor laid out."""
    try:
        if t.is_contiguous():
            return "contiguous"
        if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last):
            return "channels_last"
    except Exception:  # symbolic strides we cannot decide on
        return "contiguous"
    return "strided"


def _bound(value: Any, unbounded: int) -> int:
    """A range end as an int; `unbounded` for an infinite one (sympy's oo, torch's int_oo)."""
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError, AttributeError):
        return unbounded


def tensor_spec(name: str, value: Any, ranges: dict | None = None) -> dict:
    """Spec of one tensor (a real or fake tensor; symbolic sizes become -1)."""
    sizes, mins, maxs, symbols = [], [], [], []
    for s in value.shape:
        if isinstance(s, int):
            sizes.append(s)
            mins.append(s)
            maxs.append(s)
            symbols.append("")
            continue
        sizes.append(-1)
        # The size's symbolic expression ("s27", "2*s27"): dimensions with the same one
        # must be given the same size. The compiled code reads each symbol from the first
        # input that has it and trusts every other input to agree.
        symbols.append(str(s.node.expr))
        lo, hi = 0, -1
        if ranges is not None:
            for sym, vr in ranges.items():
                if str(sym) == str(s.node.expr):
                    # Unbounded ends (data-dependent sizes): 0 and -1, "no bound".
                    lo = max(_bound(vr.lower, 0), 0)
                    hi = _bound(vr.upper, -1)
        mins.append(lo)
        maxs.append(hi)
    # The strides the compiled code is specialized for (-1 where they depend on dynamic sizes).
    strides = []
    try:
        for st in value.stride():
            strides.append(st if isinstance(st, int) else -1)
    except Exception:  # a layout without strides
        strides = [-1] * len(sizes)
    return {
        "name": name,
        "dtype": _dtype_name(value.dtype),
        "sizes": sizes,
        "min": mins,
        "max": maxs,
        "layout": _layout(value),
        "strides": strides,
        "symbols": symbols,
        "device": value.device.type,
    }


def _specs(ep: torch.export.ExportedProgram) -> tuple[list[dict], list[dict]]:
    from torch.export.graph_signature import InputKind, OutputKind

    placeholders = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    ranges = ep.range_constraints
    inputs = []
    for spec in ep.graph_signature.input_specs:
        if spec.kind != InputKind.USER_INPUT:
            continue
        node = placeholders[spec.arg.name]
        val = node.meta.get("val")
        if isinstance(val, torch.Tensor):
            inputs.append(tensor_spec(spec.arg.name, val, ranges))
    output_node = next(n for n in ep.graph.nodes if n.op == "output")
    outputs = []
    for i, spec in enumerate(ep.graph_signature.output_specs):
        if spec.kind != OutputKind.USER_OUTPUT:
            continue
        arg = output_node.args[0][i]
        val = getattr(arg, "meta", {}).get("val")
        if isinstance(val, torch.Tensor):
            outputs.append(tensor_spec(spec.arg.name, val, ranges))
    return inputs, outputs


def _constant_specs(ep: torch.export.ExportedProgram) -> dict:
    """FQN -> {dtype, sizes} of every weight, buffer and tensor constant."""
    out = {}
    for fqn, value in list(ep.state_dict.items()) + list(ep.constants.items()):
        if isinstance(value, torch.Tensor):
            out[fqn] = {"dtype": _dtype_name(value.dtype), "sizes": list(value.shape)}
    return out


def _flat_outputs(out: Any) -> list[torch.Tensor]:
    flat, _ = torch.utils._pytree.tree_flatten(out)
    return [t for t in flat if isinstance(t, torch.Tensor)]


def _save(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def package_model(
    model: torch.nn.Module,
    example_inputs: Sequence[torch.Tensor],
    path: str | os.PathLike,
    *,
    dynamic_shapes: Any = None,
    inductor_configs: dict | None = None,
    model_name: str = "model",
    reference_inputs: Iterable[torch.Tensor] | None = None,
    swappable_weights: bool = True,
    op_libraries: Sequence[str] = (),
) -> dict:
    """Export, compile and package `model`; returns the recorded specs.

    op_libraries: the libraries registering operators the model calls as extern kernels
    (TORCH_LIBRARY); their file names are recorded (aotiplug.op_libraries), so that a host
    that opens the package without them can say which it needs.

    swappable_weights: keep every weight a model constant (Inductor's
    always_keep_tensor_constants), so that all of them can be replaced at run time.

    reference_inputs: inputs for the stored sample inputs and eager reference outputs
    (default: example_inputs).
    """
    model = model.eval()
    example_inputs = tuple(example_inputs)
    with torch.no_grad():
        ep = torch.export.export(model, example_inputs, dynamic_shapes=dynamic_shapes)
    in_specs, out_specs = _specs(ep)
    configs = dict(inductor_configs or {})
    if swappable_weights:
        # Inductor otherwise inlines small weights (a short bias, a scale) into the
        # generated kernels as literals, and a weight swap silently misses them.
        configs.setdefault("always_keep_tensor_constants", True)
    metadata = dict(configs.pop("aot_inductor.metadata", {}))
    metadata.update({
        "aotiplug.format": SPEC_FORMAT,
        "aotiplug.inputs": json.dumps(in_specs),
        "aotiplug.outputs": json.dumps(out_specs),
        "aotiplug.constants": json.dumps(_constant_specs(ep)),
        "aotiplug.torch_version": torch.__version__,
    })
    if op_libraries:
        metadata["aotiplug.op_libraries"] = json.dumps([os.path.basename(str(p)) for p in op_libraries])
    configs["aot_inductor.metadata"] = metadata

    sample = tuple(reference_inputs) if reference_inputs is not None else example_inputs
    with torch.no_grad():
        reference = _flat_outputs(model(*sample))

    path = os.fspath(path)
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "compiled", os.path.basename(path))
        final = os.path.join(tmp, os.path.basename(path))
        os.makedirs(os.path.dirname(raw))
        torch._inductor.aoti_compile_and_package(ep, package_path=raw, inductor_configs=configs)
        # Rewrite the archive with torch's own writer, adding the samples.
        with PT2ArchiveReader(raw) as reader, PT2ArchiveWriter(final) as writer:
            for name in reader.get_file_names():
                if model_name != "model" and name.startswith("data/aotinductor/model/"):
                    out_name = "data/aotinductor/" + model_name + "/" + name[len("data/aotinductor/model/"):]
                else:
                    out_name = name
                writer.write_bytes(out_name, reader.read_bytes(name))
            # Saved on the CPU so any host can read them; hosts move them to the device.
            writer.write_bytes(f"data/sample_inputs/{model_name}.pt",
                               _save([t.detach().cpu() for t in sample]))
            writer.write_bytes(f"data/aotiplug/{model_name}/reference_outputs.pt",
                               _save([t.detach().cpu().contiguous() for t in reference]))
        shutil.move(final, path)
    return {"inputs": in_specs, "outputs": out_specs}
