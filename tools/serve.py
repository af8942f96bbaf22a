"""`./dev serve [REPO]`: a Triton Inference Server on loopback over a model repository,
served by this build's aotiplug backend and runner plugins, until Ctrl-C.

Without REPO it serves build/serve/repo: the demo model (models/demo.py, compiled with a
dynamic batch of 1..64 on first use) as `demo`, and a weights control model as `control`
(docs/serving.md). Prints the URLs and a request to try.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from triton_server import TritonServer, port_is_free  # noqa: E402

SOURCE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def demo_repository(build: str) -> str:
    repo = os.path.join(build, "serve", "repo")
    package = os.path.join(repo, "demo", "1", "model.pt2")
    stamp = package + ".source"
    with open(os.path.join(SOURCE, "models", "demo.py"), "rb") as f:
        want = hashlib.sha256(f.read()).hexdigest()
    have = open(stamp).read() if os.path.exists(stamp) and os.path.exists(package) else ""
    if have != want:
        os.makedirs(os.path.dirname(package), exist_ok=True)
        print("[serve] compiling the demo model with a dynamic batch (about a minute)", flush=True)
        subprocess.run([sys.executable, os.path.join(SOURCE, "models", "demo.py"), "--out", package,
                        "--max-batch", "64"], check=True, stdout=subprocess.DEVNULL)
        with open(stamp, "w") as f:
            f.write(want)
    with open(os.path.join(repo, "demo", "config.pbtxt"), "w") as f:
        f.write('backend: "aotiplug"\n')
    os.makedirs(os.path.join(repo, "control", "1"), exist_ok=True)
    with open(os.path.join(repo, "control", "config.pbtxt"), "w") as f:
        f.write('backend: "aotiplug"\nparameters { key: "weights_control" value { string_value: "true" } }\n')
    return repo


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repository", nargs="?", help="a model repository (default: the demo's)")
    parser.add_argument("--build", required=True)
    parser.add_argument("--http-port", type=int, default=8000, help="8000 unless taken (then a free one)")
    args = parser.parse_args()
    repo = os.path.abspath(args.repository) if args.repository else demo_repository(args.build)
    os.makedirs(os.path.join(args.build, "serve"), exist_ok=True)
    server = TritonServer(repo, backend_dir=os.path.join(args.build, "triton"),
                          plugin_dir=os.path.join(args.build, "plugins"),
                          log_path=os.path.join(args.build, "serve", "tritonserver.log"))
    ports = (args.http_port, args.http_port + 1, args.http_port + 2)
    print(f"[serve] starting tritonserver over {repo} (log: {server.log_path})", flush=True)
    server.start(timeout=300, ports=ports if all(port_is_free(p) for p in ports) else None)
    import tritonclient.http as http
    client = http.InferenceServerClient(server.http_url)
    models = client.get_model_repository_index()
    client.close()
    print(f"serving  http://{server.http_url}  (gRPC {server.grpc_url}, metrics {server.metrics_url})")
    for m in models:
        print(f"  model {m.get('name')}  version {m.get('version', '-')}  {m.get('state', '')} {m.get('reason', '')}".rstrip())
    served = [m["name"] for m in models if m.get("name") != "control"] or ["MODEL"]
    print(f"try      curl http://{server.http_url}/v2/models/{served[0]}/config")
    print(f"         .venv/bin/python examples/serving/ask.py --url {server.http_url} --model {served[0]}")
    print("Ctrl-C stops the server", flush=True)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    try:
        while not stop and server.alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    status = server.stop()
    print(f"[serve] tritonserver stopped (exit {status})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
