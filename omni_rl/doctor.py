"""`omni-rl doctor`: what is installed, what hardware is visible, and whether a vLLM engine starts here."""

from __future__ import annotations

import importlib
import os
import platform
import subprocess
import sys
import time

PACKAGES = ("torch", "torchvision", "vllm", "ray", "transformers", "datasets", "hydra", "wandb", "trl",
            "math_verify", "jiwer")

# Started in a subprocess so a crashing / hanging engine cannot take the doctor down with it.
VLLM_PROBE = r"""
import os, sys, time
import torch
if not torch.cuda.is_available():  # CPU engine settings for a tiny model (see docs/rollout.md)
    for k, v in {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1",
                 "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "VLLM_CPU_OMP_THREADS_BIND": "nobind"}.items():
        os.environ.setdefault(k, v)
from omni_rl.models import build_tiny_model
path = build_tiny_model("text")
t0 = time.perf_counter()
from vllm import LLM, SamplingParams
llm = LLM(model=str(path), dtype="float32", enforce_eager=True, max_model_len=256, seed=0)
out = llm.generate(["hello"], SamplingParams(max_tokens=4, temperature=0.0), use_tqdm=False)
print(f"VLLM_OK {time.perf_counter() - t0:.1f}s tokens={list(out[0].outputs[0].token_ids)}")
"""


def _version(name: str) -> str:
    try:
        mod = importlib.import_module(name)
    except Exception as e:  # noqa: BLE001 - doctor reports every failure mode as text
        return f"NOT IMPORTABLE ({type(e).__name__}: {str(e).splitlines()[0][:100]})"
    version = getattr(mod, "__version__", None)
    if version is None:
        from importlib.metadata import PackageNotFoundError, version as dist_version

        try:
            version = dist_version(name.replace("_", "-"))
        except PackageNotFoundError:
            version = "?"
    return str(version)


def run_doctor(*, check_vllm: bool = True) -> int:
    ok = True
    print(f"python        {sys.version.split()[0]} ({sys.executable})")
    print(f"platform      {platform.platform()}  cpus={os.cpu_count()}")
    for name in PACKAGES:
        v = _version(name)
        ok &= not v.startswith("NOT")
        print(f"{name:<14}{v}")
    import torch

    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            print(f"gpu {i}         {p.name}, {p.total_memory / 2**30:.0f} GiB")
    else:
        flags = " ".join(f for f in ("avx2", "avx512f") if f in open("/proc/cpuinfo").read()) \
            if os.path.exists("/proc/cpuinfo") else "?"
        print(f"gpu           none (CPU mode; cpu flags: {flags})")
    if check_vllm:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", VLLM_PROBE], capture_output=True, text=True, timeout=600)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("VLLM_OK")), None)
        if line:
            print(f"vllm start    OK: engine up and generated ({line.split(' ', 1)[1]}; "
                  f"probe total {time.perf_counter() - t0:.1f}s)")
        else:
            ok = False
            tail = "\n    ".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
            print(f"vllm start    FAILED (exit {proc.returncode}):\n    {tail}")
    print("doctor: all good" if ok else "doctor: problems found (see above)")
    return 0 if ok else 1
