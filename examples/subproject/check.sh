#!/usr/bin/env bash
# Builds examples/subproject with this checkout as its subprojects/aotiplug, then lists the
# plugins the subproject built. Run by .ci/run after ./dev setup (needs the checkout's .venv).
set -euo pipefail
ROOT=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
WORK=${1:-$ROOT/build-subproject}
rm -rf "$WORK" && mkdir -p "$WORK/subprojects"
cp "$ROOT/examples/subproject/meson.build" "$ROOT/examples/subproject/list_plugins.cpp" "$WORK/"
ln -s "$ROOT" "$WORK/subprojects/aotiplug"
meson setup "$WORK/build" "$WORK"
ninja -C "$WORK/build"
"$WORK/build/list-plugins" "$WORK/build/subprojects/aotiplug/plugins"
