#!/usr/bin/env bash
# tests/gpu/run.sh — the GPU check, for a GPU machine with torch, meson and ninja but no
# Boost and no network (docs/gpu.md). Prepare first, on a development machine:
#     .venv/bin/python tests/gpu/prepare_inputs.py     # -> build-gpu-inputs/include
# then run this with build-gpu-inputs travelling along. It builds the project, compiles a
# small CUDA model with that machine's torch, runs it through the host pieces and the CUDA
# plugin, checks against eager on the GPU, times run() against upstream's
# AOTIModelContainerRunnerCuda, hot-swaps weights on the GPU, and writes everything to
# $OUT/gpu_results.json (plus the log, $OUT/gpu_log.txt). Then, with the nvidia-pytriton wheel
# among the inputs, it serves the CUDA package from a real tritonserver through the aotiplug
# backend (tests/gpu/triton_check.py -> $OUT/triton_gpu_results.json). Exit 0 when every
# check passed.
set -uo pipefail
cd "$(dirname "$(readlink -f "$0")")/../.."
OUT=${OUT:-$PWD/build-gpu/out}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_log.txt") 2>&1
T0=$(date +%s)
step() { echo "== [$(( $(date +%s) - T0 )) s] $*"; }

# The Python with torch: $PYTHON, else this checkout's venv (./dev setup), else python3.
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
elif [ -x "$PWD/.venv/bin/python" ]; then PY=$PWD/.venv/bin/python
else PY=$(command -v python3 || command -v python); fi
step "torch on this machine ($PY)"
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")' || exit 1
VENDOR=$PWD/build-gpu-inputs/include
if [ ! -d "$VENDOR/boost" ]; then
  echo "missing $VENDOR: run tests/gpu/prepare_inputs.py on a development machine first"
  exit 2
fi

# The host library (the plugin loader) needs libelf: the headers came with the inputs, the
# library is this machine's own runtime, linked under the name the linker looks for.
LIBELF=$( (/sbin/ldconfig -p 2>/dev/null || ldconfig -p) | awk '/libelf\.so\.1 .*x86-64/ {print $NF; exit}')
mkdir -p build-gpu-inputs/lib && rm -f build-gpu-inputs/lib/libelf.so
if [ -n "$LIBELF" ]; then
  ln -s "$LIBELF" build-gpu-inputs/lib/libelf.so
  echo "libelf: $LIBELF (the plugins are loaded through the host's PluginLoader)"
else
  echo "libelf: none on this machine (the plugins are loaded with plain dlopen)"
fi

# The Triton server for the backend's GPU check: the nvidia-pytriton wheel that travelled
# with the inputs (prepare_inputs.py), unpacked here; meson finds it through PYTHONPATH.
WHEEL=$(ls build-gpu-inputs/wheels/nvidia_pytriton-*.whl 2>/dev/null | head -n 1)
if [ -n "$WHEEL" ]; then
  rm -rf build-gpu/pytriton && mkdir -p build-gpu && "$PY" -m zipfile -e "$WHEEL" build-gpu/pytriton || exit 1
  chmod +x build-gpu/pytriton/pytriton/tritonserver/bin/tritonserver
  export PYTHONPATH=$PWD/build-gpu/pytriton${PYTHONPATH:+:$PYTHONPATH}
  echo "tritonserver: from $WHEEL"
fi

step "configure and build (meson + ninja)"
rm -rf build-gpu/meson-private build-gpu/build.ninja
# ISA-L and Zydis are not on the GPU machines, and their headers do not travel: the CRC
# comes from Boost.CRC, the CPU-feature check from AOTI_CPU_ISA alone.
meson setup build-gpu --reconfigure -Dpython="$PY" -Dtests=disabled -Dbench=disabled \
  -Dgpu_check=true -Dvendor_include="$VENDOR" -Dbuildtype=release -Dwerror=false \
  -Disal=disabled -Dzydis=disabled \
  || meson setup build-gpu -Dpython="$PY" -Dtests=disabled -Dbench=disabled \
  -Dgpu_check=true -Dvendor_include="$VENDOR" -Dbuildtype=release -Disal=disabled -Dzydis=disabled || exit 1
ninja -C build-gpu || exit 1
# The loader refuses plugin files and directories others may write (docs/reliability.md).
chmod -R go-w build-gpu/plugins build-gpu/tests/gpu

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  step "no GPU here: the build works; nothing to run"
  build-gpu/tests/gpu/gpu_check --out "$OUT/gpu_results.json"
  exit 4
fi

step "compile the CUDA model with this machine's torch"
TORCHINDUCTOR_CACHE_DIR=$PWD/build-gpu/inductor "$PY" tests/gpu/make_cuda_model.py --out build-gpu/gpu-model \
  --op-library "$PWD/build-gpu/tests/gpu/libaotiplug_test_ops.so" || exit 1

step "run, compare, time, swap"
build-gpu/tests/gpu/gpu_check --plugins build-gpu/plugins --package build-gpu/gpu-model/model.pt2 \
  --plain build-gpu/gpu-model/plain.pt2 --data build-gpu/gpu-model/model.data.pt \
  --extern build-gpu/gpu-model/extern.pt2 --extern-data build-gpu/gpu-model/extern.data.pt \
  --op-library "$PWD/build-gpu/tests/gpu/libaotiplug_test_ops.so" --out "$OUT/gpu_results.json"
rc=$?

if [ -f build-gpu/triton/aotiplug/libtriton_aotiplug.so ]; then
  step "the Triton backend on the GPU (KIND_GPU, CUDA shared memory, batching, weight swap)"
  "$PY" tests/gpu/triton_check.py --backends build-gpu/triton --plugins "$PWD/build-gpu/plugins" \
    --package build-gpu/gpu-model/plain.pt2 --data build-gpu/gpu-model/model.data.pt \
    --out "$OUT/triton_gpu_results.json"
  trc=$?
  [ "$rc" -eq 0 ] && rc=$trc
else
  step "no Triton backend built (no nvidia-pytriton wheel in build-gpu-inputs/wheels): its GPU check did not run"
fi
step "done (exit $rc); results in $OUT/gpu_results.json and $OUT/triton_gpu_results.json"
exit $rc
