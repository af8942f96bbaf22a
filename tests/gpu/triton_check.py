"""The Triton backend on a GPU: part of the GPU check (docs/gpu.md, docs/serving.md).

Serves a CUDA package (a plain aoti_compile_and_package one with a dynamic batch) from a real
tritonserver with two KIND_GPU instances, and checks: the instances share one executor on
cuda:0; inference over HTTP matches PyTorch eager on the GPU; concurrent clients are batched;
inputs and outputs in CUDA shared memory (GPU buffers handed to the backend, outputs written
on the device and the stream synchronized before the response); a weight swap through the
control model; a bad request refused. Only urllib and torch: the GPU machines have no
tritonclient and no network.

    python tests/gpu/triton_check.py --backends B --plugins P --package plain.pt2 \\
        --data model.data.pt --out results.json [--device cpu]

--device cpu runs the same checks (without CUDA shared memory) on a CPU package, so the
script itself is tested on machines without a GPU.
"""
from __future__ import annotations

import argparse
import base64
import ctypes
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
from triton_server import TritonServer  # noqa: E402


def post(url, body: bytes, headers=None):
    req = urllib.request.Request(url, data=body, headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def get_json(url):
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.loads(r.read())


def infer(base, model, inputs, outputs=None, params=None):
    """Binary-tensor HTTP inference: inputs {name: tensor on the CPU} or {name: (region, nbytes, shape)}."""
    header = {"inputs": [], "outputs": []}
    blobs = []
    for name, value in inputs.items():
        if isinstance(value, tuple):  # shared memory
            region, nbytes, shape = value
            header["inputs"].append({"name": name, "shape": shape, "datatype": "FP32",
                                     "parameters": {"shared_memory_region": region, "shared_memory_byte_size": nbytes}})
        else:
            data = value.contiguous().numpy().tobytes()
            header["inputs"].append({"name": name, "shape": list(value.shape), "datatype": "FP32",
                                     "parameters": {"binary_data_size": len(data)}})
            blobs.append(data)
    for name, region in (outputs or {}).items():
        p = {"binary_data": True} if region is None else {"shared_memory_region": region[0],
                                                           "shared_memory_byte_size": region[1]}
        header["outputs"].append({"name": name, "parameters": p})
    if params:
        header["parameters"] = params
    head = json.dumps(header).encode()
    status, headers, body = post(f"{base}/v2/models/{model}/infer", head + b"".join(blobs),
                                 {"Inference-Header-Content-Length": str(len(head))})
    if status != 200:
        return status, body.decode(errors="replace"), {}
    size = int(headers.get("Inference-Header-Content-Length", len(body)))
    meta = json.loads(body[:size])
    out, offset = {}, size
    for o in meta.get("outputs", []):
        n = o.get("parameters", {}).get("binary_data_size")
        if n:
            out[o["name"]] = torch.frombuffer(bytearray(body[offset:offset + n]), dtype=torch.float32).reshape(o["shape"])
            offset += n
    return status, meta, out


def control(base, action, model, weights=None, version=None):
    inputs = [{"name": "action", "shape": [1], "datatype": "BYTES", "data": [action]},
              {"name": "model", "shape": [1], "datatype": "BYTES", "data": [model]}]
    if weights:
        inputs.append({"name": "weights", "shape": [1], "datatype": "BYTES", "data": [weights]})
    if version:
        inputs.append({"name": "version", "shape": [1], "datatype": "BYTES", "data": [version]})
    status, _, body = post(f"{base}/v2/models/control/infer", json.dumps({"inputs": inputs}).encode(),
                           {"Content-Type": "application/json"})
    return status, json.loads(body)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", required=True)
    parser.add_argument("--plugins", required=True)
    parser.add_argument("--package", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    gpu = args.device == "cuda"
    data = torch.load(args.data, weights_only=False)
    x, want, want_b = data["inputs"][0], data["outputs"][0], data["outputs_b"][0]
    tol = 2e-3 if gpu else 1e-4
    results = {"checks": {}, "device": args.device}

    def check(name, fn):
        t = time.time()
        try:
            detail = fn()
            results["checks"][name] = {"ok": True, "detail": detail, "seconds": round(time.time() - t, 2)}
        except Exception as e:  # noqa: BLE001 - every failure is recorded
            results["checks"][name] = {"ok": False, "error": f"{type(e).__name__}: {e}",
                                       "trace": traceback.format_exc()[-2000:]}
        print(f"  {name}: {'ok' if results['checks'][name]['ok'] else 'FAILED'} "
              f"{results['checks'][name].get('detail', results['checks'][name].get('error'))}", flush=True)

    tmp = tempfile.mkdtemp(prefix="aotiplug-triton-gpu-")
    kind = "KIND_GPU" if gpu else "KIND_CPU"
    repo = os.path.join(tmp, "repo")
    os.makedirs(os.path.join(repo, "m", "1"))
    shutil.copy(args.package, os.path.join(repo, "m", "1", "model.pt2"))
    torch.save(data["weights_b"], os.path.join(repo, "m", "weights_b.pt"))
    with open(os.path.join(repo, "m", "config.pbtxt"), "w") as f:
        f.write(f'backend: "aotiplug"\ninstance_group [{{ kind: {kind}, count: 2 }}]\n')
    os.makedirs(os.path.join(repo, "control", "1"))
    with open(os.path.join(repo, "control", "config.pbtxt"), "w") as f:
        f.write('backend: "aotiplug"\nparameters { key: "weights_control" value { string_value: "true" } }\n')
    server = TritonServer(repo, backend_dir=args.backends, plugin_dir=args.plugins,
                          log_path=os.path.join(os.path.dirname(os.path.abspath(args.out)), "triton_gpu_server.log"),
                          env={"XDG_CACHE_HOME": os.path.join(tmp, "cache")})
    try:
        server.start(timeout=300)
        base = f"http://{server.http_url}"
        device = "cuda:0" if gpu else "cpu"

        def instances():
            config = get_json(f"{base}/v2/models/m/config")
            log = server.log_text()
            assert config["instance_group"][0]["kind"] == kind, config["instance_group"]
            assert f"instances {device} x2" in log, "no 'instances ... x2' line in the server log"
            assert log.count(f"of model 'm' runs on {device}") == 2, "two instances should run on " + device
            return {"max_batch_size": config["max_batch_size"], "kind": kind}
        check("two_instances_one_executor", instances)

        def system_memory():
            status, meta, out = infer(base, "m", {meta_input(base): x}, {meta_output(base): None})
            assert status == 200, meta
            diff = float((out[meta_output(base)] - want).abs().max())
            assert diff < tol, f"max abs difference from eager {diff}"
            return {"max_abs_diff": diff, "weights_version": meta["parameters"]["weights_version"]}
        check("infer_matches_eager", system_memory)

        def batching():
            errors, diffs = [], []

            def client(c):
                for i in range(8):
                    row = (c * 8 + i) % x.shape[0]
                    status, meta, out = infer(base, "m", {meta_input(base): x[row:row + 1]}, {meta_output(base): None})
                    if status != 200:
                        errors.append(meta)
                    else:
                        diffs.append(float((out[meta_output(base)][0] - want[row]).abs().max()))
            threads = [threading.Thread(target=client, args=(c,)) for c in range(16)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(300)
            stats = get_json(f"{base}/v2/models/m/stats")["model_stats"][0]
            sizes = sorted({int(b["batch_size"]) for b in stats["batch_stats"]})
            assert not errors, errors[:3]
            assert max(diffs) < tol, f"max abs difference from eager {max(diffs)}"
            assert sizes[-1] > 1, f"no batch of more than one row: {sizes}"
            return {"requests": len(diffs), "batch_sizes": sizes, "max_abs_diff": max(diffs)}
        check("concurrent_clients_batched", batching)

        if gpu:
            def cuda_shared_memory():
                # Regions from this process's own cudaMalloc, through the CUDA runtime torch
                # has loaded (same primary context), registered with Triton by their
                # cudaIpcMemHandle_t. Not torch's storages: the caching allocator hands out
                # pieces of larger blocks, and _share_cuda_()'s handle is torch's own format
                # (a type byte before the 64 bytes), which Triton refuses.
                rt = ctypes.CDLL(f"libcudart.so.{torch.version.cuda.split('.')[0]}")
                rt.cudaMalloc.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t]
                rt.cudaIpcGetMemHandle.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
                rt.cudaMemcpy.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
                rt.cudaFree.argtypes = [ctypes.c_void_p]
                device_to_device = 3
                xin = x.to("cuda:0").contiguous()
                yout = torch.full(tuple(want.shape), float("nan"), device="cuda:0")
                torch.cuda.synchronize()
                regions = {}
                try:
                    for name, t in (("in", xin), ("out", yout)):
                        ptr = ctypes.c_void_p()
                        assert rt.cudaMalloc(ctypes.byref(ptr), t.nbytes) == 0, f"cudaMalloc for {name}"
                        regions[name] = ptr
                        handle = ctypes.create_string_buffer(64)
                        assert rt.cudaIpcGetMemHandle(handle, ptr) == 0, f"cudaIpcGetMemHandle for {name}"
                        body = json.dumps({"raw_handle": {"b64": base64.b64encode(handle.raw).decode()},
                                           "device_id": 0, "byte_size": t.nbytes}).encode()
                        status, _, text = post(f"{base}/v2/cudasharedmemory/region/{name}/register", body,
                                               {"Content-Type": "application/json"})
                        assert status == 200, f"registering {name}: {text[:300]}"
                    assert rt.cudaMemcpy(regions["in"], xin.data_ptr(), xin.nbytes, device_to_device) == 0
                    assert rt.cudaMemcpy(regions["out"], yout.data_ptr(), yout.nbytes, device_to_device) == 0
                    status, meta, _ = infer(base, "m", {meta_input(base): ("in", xin.nbytes, list(xin.shape))},
                                            {meta_output(base): ("out", yout.nbytes)})
                    assert status == 200, meta
                    assert rt.cudaMemcpy(yout.data_ptr(), regions["out"], yout.nbytes, device_to_device) == 0
                    torch.cuda.synchronize()
                    diff = float((yout.cpu() - want).abs().max())
                    assert diff < tol, f"max abs difference from eager {diff}"
                finally:
                    post(f"{base}/v2/cudasharedmemory/unregister", b"")
                    for ptr in regions.values():
                        rt.cudaFree(ptr)
                return {"max_abs_diff": diff}
            check("cuda_shared_memory_in_and_out", cuda_shared_memory)

        def weight_swap():
            status, reply = control(base, "swap", "m", "weights_b.pt", "b")
            assert status == 200, reply
            status, meta, out = infer(base, "m", {meta_input(base): x}, {meta_output(base): None})
            assert status == 200 and meta["parameters"]["weights_version"] == "b", meta
            diff = float((out[meta_output(base)] - want_b).abs().max())
            assert diff < tol, f"max abs difference from eager with weights b {diff}"
            return {"max_abs_diff": diff}
        check("weight_swap", weight_swap)

        def bad_request():
            status, meta, _ = infer(base, "m", {meta_input(base): x[:, :7]}, {meta_output(base): None})
            assert status == 400, (status, meta)
            status, meta, _ = infer(base, "m", {meta_input(base): x}, {meta_output(base): None})
            assert status == 200, meta
            return {"refused": True}
        check("bad_request_refused_server_serves_on", bad_request)
    except Exception as e:  # noqa: BLE001 - the server did not start
        results["error"] = f"{type(e).__name__}: {e}"
        print(results["error"], flush=True)
    finally:
        results["server_exit"] = server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    results["ok"] = "error" not in results and all(c["ok"] for c in results["checks"].values())
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    return 0 if results["ok"] else 3


_names = {}


def meta_input(base):
    if "in" not in _names:
        meta = get_json(f"{base}/v2/models/m")
        _names["in"], _names["out"] = meta["inputs"][0]["name"], meta["outputs"][0]["name"]
    return _names["in"]


def meta_output(base):
    meta_input(base)
    return _names["out"]


if __name__ == "__main__":
    sys.exit(main())
