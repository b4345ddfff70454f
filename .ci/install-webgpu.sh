#!/usr/bin/env bash
# For a machine where the WGSL tests find no WebGPU adapter (the runtime's error names this file):
# installs what the WGSL verification tier needs on Debian 12 (as root, or through sudo) — Mesa's
# lavapipe Vulkan driver (the CPU "GPU" that Deno's wgpu-based WebGPU runs on) and the Vulkan
# loader, the same packages as the README's first block — then probes the adapter and prints it.
# CI does not call it: .ci/run runs the README's block. Idempotent: apt-get install is a no-op when
# the packages are already present.
#
# The adapter probe at the end needs the npm dependencies (node_modules/deno), so it runs only
# when node_modules/.bin/deno exists; call this script again after `npm ci`, or pass
# --probe-only to skip apt and just probe, or --no-probe to install only.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mode="${1:-all}"

if [[ "$mode" != "--probe-only" ]]; then
  as_root=()
  if [[ "$(id -u)" != "0" ]]; then
    if ! command -v sudo >/dev/null; then
      echo "install-webgpu.sh: apt-get install needs root (or sudo)" >&2
      exit 2
    fi
    as_root=(sudo)
  fi
  "${as_root[@]}" apt-get update
  # mesa-vulkan-drivers: lavapipe (llvmpipe adapter, has shader-f16).
  # libvulkan1: the Vulkan loader wgpu dlopens (libvulkan.so.1); without it wgpu finds no adapter.
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends mesa-vulkan-drivers libvulkan1
fi

[[ "$mode" == "--no-probe" ]] && exit 0

deno_bin="${DCAGEN_DENO:-$repo_root/node_modules/.bin/deno}"
if [[ ! -x "$deno_bin" ]]; then
  echo "install-webgpu.sh: $deno_bin not found; run 'npm ci' then '$0 --probe-only' to probe the adapter" >&2
  exit 0
fi

# Mesa warns on stderr when XDG_RUNTIME_DIR is unset or unwritable; give it a private folder.
runtime_dir="$(mktemp -d)"
export XDG_RUNTIME_DIR="$runtime_dir"
probe="$(mktemp --suffix=.js)"
trap 'rm -rf "$probe" "$runtime_dir"' EXIT
cat >"$probe" <<'JS'
const adapter = await navigator.gpu?.requestAdapter({ powerPreference: "high-performance" });
if (!adapter) { console.error("no WebGPU adapter"); Deno.exit(3); }
const i = adapter.info;
// The WGSL tier's f16 kernels need it; lavapipe has it, wgpu's GL fallback (no Vulkan ICD) does not.
if (!adapter.features.has("shader-f16")) console.error("warning: adapter has no shader-f16; f16 WGSL jobs will be UnavailableError");
console.log(`WebGPU adapter: ${i.vendor} / ${i.architecture} / ${i.device} / ${i.description}; features: ${[...adapter.features].sort().join(",")}`);
JS
"$deno_bin" run --no-prompt --no-config --no-lock --quiet "$probe"
