"""Prepare what the GPU check needs but the GPU machines lack: Boost, nlohmann-json and
libelf headers, and the Triton server's wheel.

The GPU machines have torch, meson and ninja but no Boost and no network. The SDK needs only
header-only libraries there (Boost.DLL, nlohmann-json); the host library (the plugin loader)
also needs libelf, whose runtime (libelf.so.1) the machines have but not its headers. So
this script copies exactly the headers the GPU build includes — found by asking the compiler (`-M`) on every translation
unit of a `-Dgpu_check=true` build — into build-gpu-inputs/include (about 2 MB), to travel
with the working tree. The nvidia-pytriton wheel (requirements-server.txt; 55 MB) goes into
build-gpu-inputs/wheels, for the Triton backend's GPU check. Run it here (Debian, with the
packages), then tests/gpu/run.sh there.

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
LIB = os.path.join(ROOT, "build-gpu-inputs", "lib")
VENDORED = ("/usr/include/boost/", "/usr/include/nlohmann/", "/usr/include/libelf.h",
            "/usr/include/gelf.h", "/usr/include/elfutils/")
# Built where the CLI cannot be (no Boost.Program_options): not part of the GPU build.
NOT_ON_GPU = ("/host/cli/", "/host/conformance/")


def run(cmd, **kw):
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def headers_of(build_dir):
    with open(os.path.join(build_dir, "compile_commands.json")) as f:
        commands = json.load(f)
    found = set()
    for c in commands:
        if any(part in c["file"] for part in NOT_ON_GPU):
            continue
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


def system_libelf() -> str:
    """The path of this machine's libelf.so.1, from the dynamic loader's cache."""
    out = subprocess.run(["/sbin/ldconfig", "-p"], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.strip().startswith("libelf.so.1 ") and "x86-64" in line:
            return line.split("=>")[-1].strip()
    raise SystemExit("no libelf.so.1 on this machine (Debian: libelf1)")


def main() -> int:
    python = os.path.join(ROOT, ".venv", "bin", "python")
    if os.path.exists(PROBE):
        shutil.rmtree(PROBE)
    # As the GPU machines build it: without ISA-L and Zydis, which they do not have (the CRC
    # then comes from Boost.CRC, whose headers must travel too).
    run(["meson", "setup", PROBE, "-Dpython=" + python, "-Dtests=disabled", "-Dbench=disabled",
         "-Dhost=enabled", "-Dgpu_check=true", "-Disal=disabled", "-Dzydis=disabled"],
        cwd=ROOT, stdout=subprocess.DEVNULL)
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
    # libelf is linked as run.sh links it there: <inputs>/lib/libelf.so -> this machine's
    # libelf.so.1 (removed afterwards; run.sh makes its own).
    shutil.rmtree(PROBE)
    os.makedirs(LIB, exist_ok=True)
    link = os.path.join(LIB, "libelf.so")
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(system_libelf(), link)
    try:
        run(["meson", "setup", PROBE, "-Dpython=" + python, "-Dtests=disabled", "-Dbench=disabled",
             "-Dgpu_check=true", "-Dvendor_include=" + OUT, "-Disal=disabled", "-Dzydis=disabled"],
            cwd=ROOT, stdout=subprocess.DEVNULL)
        with open(os.path.join(PROBE, "meson-logs", "meson-log.txt")) as f:
            log = f.read()
        if "Library elf found: YES" not in log:
            print("the GPU build did not find libelf through", LIB)
            return 1
        leaked = sorted(h for h in headers_of(PROBE) if h.startswith(VENDORED))
    finally:
        os.remove(link)
        shutil.rmtree(PROBE)
    if leaked:
        print("still taken from the system:", *leaked[:10], sep="\n  ")
        return 1
    print("complete: the GPU build takes every Boost, nlohmann and libelf header from", OUT)

    # The Triton server for the backend's GPU check (run.sh unpacks it there).
    wheels = os.path.join(ROOT, "build-gpu-inputs", "wheels")
    os.makedirs(wheels, exist_ok=True)
    if not any(n.startswith("nvidia_pytriton-") for n in os.listdir(wheels)):
        run([python, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
             "-r", os.path.join(ROOT, "requirements-server.txt"), "-d", wheels])
    print("the Triton server's wheel:", *os.listdir(wheels))
    return 0


if __name__ == "__main__":
    sys.exit(main())
