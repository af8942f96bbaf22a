"""Print where the venv's Triton Inference Server is, one `key=value` per line.

The server comes from PyPI's nvidia-pytriton wheel (installed by ./dev): its
`pytriton/tritonserver/bin/tritonserver`, and its core library, which auditwheel renamed
(`nvidia_pytriton.libs/libtritonserver-<hash>.so`). Prints `error=...` when there is none.
meson runs this with the project venv's python (triton/meson.build).
"""
import glob
import importlib.util
import os
import sys


def main() -> int:
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        print("error=nvidia-pytriton is not installed in " + sys.executable)
        return 0
    root = spec.submodule_search_locations[0]
    server = os.path.join(root, "tritonserver", "bin", "tritonserver")
    if not os.access(server, os.X_OK):
        print("error=no tritonserver program at " + server)
        return 0
    libs = sorted(glob.glob(os.path.join(os.path.dirname(root), "nvidia_pytriton.libs", "libtritonserver*.so*")))
    print("server=" + server)
    print("server_library=" + (libs[0] if libs else ""))
    print("backends=" + os.path.join(root, "tritonserver", "backends"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
