"""Import boundaries: the package is cheap to import and never pulls torch / ray / vllm."""

from __future__ import annotations

import subprocess
import sys
import textwrap

HEAVY = ("torch", "ray", "vllm", "transformers")


def _loaded_after(code: str) -> set[str]:
    probe = textwrap.dedent(code) + "\nimport sys\nprint(' '.join(sorted(m.split('.')[0] for m in sys.modules)))\n"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def test_package_import_is_light():
    mods = _loaded_after("import omni_rl.verifiers")
    for heavy in HEAVY + ("sympy", "math_verify", "jiwer", "numpy"):
        assert heavy not in mods, heavy


def test_all_verifiers_and_pool_never_import_torch_ray_vllm():
    mods = _loaded_after("""
        from omni_rl.verifiers import BUILTIN_VERIFIERS, get_verifier, VerifierPool, reward
        from omni_rl.verifiers import mathruler, asr
        for name in BUILTIN_VERIFIERS:
            get_verifier(name)
        mathruler._math_verify()
        asr.normalize_transcript("hello")
        reward(r"<think>x</think> \\boxed{\\sin^2 x + \\cos^2 x}", "mathruler", "1")
    """)
    assert "sympy" in mods  # sanity: the probe really ran the slow path
    for heavy in HEAVY:
        assert heavy not in mods, heavy
