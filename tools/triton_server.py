"""Start and stop a real Triton Inference Server on loopback, for the aotiplug backend.

Used by the Triton tests (tests/triton), `./dev serve` and the serving benchmark. The server
is the `tritonserver` of PyPI's nvidia-pytriton wheel in the project venv (see
tools/triton_config.py). Ports are picked free on 127.0.0.1; the server is stopped by its
pid (SIGTERM, then SIGKILL after a bounded wait); every wait is bounded.

    with TritonServer(repo, backend_dir=..., plugin_dir=...) as server:
        client = tritonclient.http.InferenceServerClient(server.http_url)
"""
from __future__ import annotations

import glob
import importlib.util
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request


def find_server() -> str:
    """The tritonserver program of the venv's nvidia-pytriton; raises when there is none."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("nvidia-pytriton is not installed (./dev setup installs it)")
    server = os.path.join(spec.submodule_search_locations[0], "tritonserver", "bin", "tritonserver")
    if not os.access(server, os.X_OK):
        raise FileNotFoundError("no tritonserver program at " + server)
    return server


def server_library() -> str:
    """Triton's core library in the wheel (renamed by auditwheel)."""
    spec = importlib.util.find_spec("pytriton")
    root = os.path.dirname(spec.submodule_search_locations[0])
    libs = sorted(glob.glob(os.path.join(root, "nvidia_pytriton.libs", "libtritonserver*.so*")))
    if not libs:
        raise FileNotFoundError("no libtritonserver in " + root)
    return libs[0]


def port_is_free(port: int) -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class TritonServer:
    """One tritonserver process over a model repository."""

    def __init__(self, repository: str, *, backend_dir: str, plugin_dir: str | None = None,
                 log_path: str, explicit: bool = False, load: tuple[str, ...] = (),
                 extra_args: tuple[str, ...] = (), env: dict | None = None, verbose: bool = False):
        self.repository = repository
        self.backend_dir = backend_dir
        self.plugin_dir = plugin_dir
        self.log_path = log_path
        self.explicit = explicit
        self.load = load
        self.extra_args = extra_args
        self.env = env
        self.verbose = verbose
        self.process: subprocess.Popen | None = None
        open(log_path, "wb").close()  # this server's log only (each start appends to it)
        self.http_port = self.grpc_port = self.metrics_port = 0

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def command(self) -> list[str]:
        cmd = [find_server(), f"--model-repository={self.repository}",
               f"--backend-directory={self.backend_dir}",
               "--http-address=127.0.0.1", f"--http-port={self.http_port}",
               "--grpc-address=127.0.0.1", f"--grpc-port={self.grpc_port}",
               "--metrics-address=127.0.0.1", f"--metrics-port={self.metrics_port}",
               "--allow-metrics=true", "--allow-gpu-metrics=false",
               # A client that keeps its connection open holds a stopping server this long.
               "--exit-timeout-secs=10"]
        if self.plugin_dir:
            cmd.append(f"--backend-config=aotiplug,plugin-dir={self.plugin_dir}")
        if self.explicit:
            cmd.append("--model-control-mode=explicit")
            cmd += [f"--load-model={m}" for m in self.load]
        if self.verbose:
            cmd.append("--log-verbose=1")
        return cmd + list(self.extra_args)

    def start(self, timeout: float = 120.0, ports: tuple[int, int, int] | None = None) -> "TritonServer":
        """Starts the server and waits until it is ready. `ports` (HTTP, gRPC, metrics) are
        tried first when given; otherwise, and on a port taken meanwhile, free ones."""
        for attempt in range(3):
            self.http_port, self.grpc_port, self.metrics_port = ports if ports and attempt == 0 else free_ports(3)
            env = dict(os.environ, **(self.env or {}))
            with open(self.log_path, "ab") as log:
                log.write(("\n== " + " ".join(self.command()) + "\n").encode())
                log.flush()
                self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                                env=env, start_new_session=True)
            if self._wait_ready(timeout):
                return self
            text = self.log_text()
            self.stop()
            if "ddress already in use" not in text[-4000:] or attempt == 2:
                raise RuntimeError(f"tritonserver did not become ready in {timeout:.0f} s; its log "
                                   f"({self.log_path}) ends:\n{text[-6000:]}")
        raise AssertionError("unreachable")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if self.ready():
                return True
            time.sleep(0.2)
        return False

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 30.0) -> int | None:
        """Stops the server by its pid; returns its exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        return self.process.returncode

    def log_text(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def metrics(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=10) as r:
            return r.read().decode()

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
