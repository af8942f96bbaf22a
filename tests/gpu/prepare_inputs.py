"""Prepare what the GPU check needs but the GPU machines lack: Boost and nlohmann-json headers.

The GPU machines have torch, meson and ninja but no Boost and no network. The SDK needs only
header-only libraries there (Boost.DLL, nlohmann-json), so this script copies exactly the
headers the GPU build includes — found by asking the compiler (`-M`) on every translation
unit of a `-Dgpu_check=true` build — into build-gpu-inputs/include (about 2 MB), to travel
with the working tree. Run it here (Debian, with the packages), then tests/gpu/run.sh there.

    .venv/bin/python tests/gpu/prepare_inputs.py
"""
import json
import os
import shlex
import shutil
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROBE = os.path.join(ROOT, "build-gpu-probe")
OUT = os.path.join(ROOT, "build-gpu-inputs", "include")
VENDORED = ("/usr/include/boost/", "/usr/include/nlohmann/")


def run(cmd, **kw):
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def headers_of(build_dir):
    with open(os.path.join(build_dir, "compile_commands.json")) as f:
        commands = json.load(f)
    found = set()
    for c in commands:
        args = shlex.split(c["command"])
        # Drop the output and dependency-file options; ask for the full dependency list.
        cleaned, skip = [], False
        for a in args:
            if skip:
                skip = False
                continue
            if a in ("-o", "-MF", "-MQ", "-MT"):
                skip = True
                continue
            if a in ("-MD", "-MMD", "-c"):
                continue
            cleaned.append(a)
        out = subprocess.run(cleaned + ["-M"], cwd=c["directory"], check=True,
                             capture_output=True, text=True).stdout
        for token in out.replace("\\\n", " ").split():
            if token.endswith(":"):
                continue
            found.add(os.path.normpath(os.path.join(c["directory"], token)))
    return found


def main() -> int:
    python = os.path.join(ROOT, ".venv", "bin", "python")
    if os.path.exists(PROBE):
        shutil.rmtree(PROBE)
    run(["meson", "setup", PROBE, "-Dpython=" + python, "-Dtests=disabled", "-Dhost=disabled",
         "-Dgpu_check=true"], cwd=ROOT, stdout=subprocess.DEVNULL)
    needed = sorted(h for h in headers_of(PROBE) if h.startswith(VENDORED))
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    total = 0
    for h in needed:
        target = os.path.join(OUT, os.path.relpath(h, "/usr/include"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(h, target)
        total += os.path.getsize(h)
    print(f"copied {len(needed)} headers ({total / 1e6:.1f} MB) into {OUT}")

    # Prove the set is complete: configure against it and check that no translation unit
    # still reaches into /usr/include/boost or /usr/include/nlohmann.
    shutil.rmtree(PROBE)
    run(["meson", "setup", PROBE, "-Dpython=" + python, "-Dtests=disabled", "-Dhost=disabled",
         "-Dgpu_check=true", "-Dvendor_include=" + OUT], cwd=ROOT, stdout=subprocess.DEVNULL)
    leaked = sorted(h for h in headers_of(PROBE) if h.startswith(VENDORED))
    shutil.rmtree(PROBE)
    if leaked:
        print("still taken from the system:", *leaked[:10], sep="\n  ")
        return 1
    print("complete: the GPU build takes every Boost and nlohmann header from", OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
