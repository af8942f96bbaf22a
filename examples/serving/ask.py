"""Ask a Triton server for one inference with tritonclient, as any client would.

Waits (at most --wait seconds) for the model to be ready, reads its inputs from the server's
model metadata, and sends either the inputs of a sample file (--sample, as export_model.py
writes, in the model's input order: then the outputs are compared with PyTorch eager's) or
zeros of the right shapes.

    python examples/serving/ask.py --url 127.0.0.1:8000 --model classifier [--sample FILE]
"""
import argparse
import sys
import time

import numpy as np
import torch
import tritonclient.http as httpclient
from tritonclient.utils import triton_to_np_dtype


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="127.0.0.1:8000")
    parser.add_argument("--model", required=True)
    parser.add_argument("--sample", help="a torch.save'd {'inputs': [...], 'outputs': [...]}")
    parser.add_argument("--wait", type=float, default=120)
    args = parser.parse_args()
    client = httpclient.InferenceServerClient(args.url)
    deadline = time.monotonic() + args.wait
    while True:
        try:
            if client.is_model_ready(args.model):
                break
        except Exception:  # noqa: BLE001 - not up yet
            pass
        if time.monotonic() > deadline:
            print(f"model {args.model} is not ready at {args.url} after {args.wait:.0f} s", file=sys.stderr)
            return 1
        time.sleep(0.5)

    sample = torch.load(args.sample) if args.sample else None
    metadata = client.get_model_metadata(args.model)
    inputs = []
    for i, spec in enumerate(metadata["inputs"]):
        if sample is not None:
            array = sample["inputs"][i].numpy()
        else:
            shape = [1 if d == -1 else d for d in spec["shape"]]
            array = np.zeros(shape, dtype=triton_to_np_dtype(spec["datatype"]))
        tensor = httpclient.InferInput(spec["name"], list(array.shape), spec["datatype"])
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    result = client.infer(args.model, inputs)
    print(f"model {args.model}, weights {result.get_response()['parameters']['weights_version']}")
    ok = True
    for i, spec in enumerate(metadata["outputs"]):
        y = result.as_numpy(spec["name"])
        line = f"  {spec['name']} {spec['datatype']} {list(y.shape)}"
        if sample is not None:
            diff = float(np.abs(y - sample["outputs"][i].numpy()).max())
            ok = ok and diff < 1e-4
            line += f"  max abs difference from eager {diff:.2e}"
        print(line)
    client.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
