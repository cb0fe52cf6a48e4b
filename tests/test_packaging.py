"""`pip install .` (a real wheel, not the editable install) ships omni_rl.verifiers / omni_rl.configs and never a
top-level `verifiers` or `environments` package; the verifier registry works from the installed wheel."""

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_layout_and_import(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(ROOT),
                    "-w", str(tmp_path / "whl")], check=True, capture_output=True)
    wheel = next((tmp_path / "whl").glob("omni_rl-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for must in ("omni_rl/verifiers/registry.py", "omni_rl/environments/__init__.py", "omni_rl/configs/config.yaml",
                 "omni_rl/configs/stage/image_rl.yaml", "omni_rl/samples/verify_samples.jsonl", "omni_rl/cli.py"):
        assert must in names, must
    assert not [n for n in names if n.split("/")[0] in ("verifiers", "environments", "configs")]
    # every subpackage of omni_rl/ is shipped (setuptools' package list is explicit)
    missing = [str(p.relative_to(ROOT)) for p in (ROOT / "omni_rl").rglob("*.py")
               if "__pycache__" not in p.parts and str(p.relative_to(ROOT)) not in names]
    assert not missing, missing

    venv.create(tmp_path / "v", with_pip=True)
    py = tmp_path / "v" / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, capture_output=True)
    out = subprocess.run([str(py), "-c", "from omni_rl.verifiers import get_verifier; "
                          "print(get_verifier('multiple-choice')('<think>x</think> The answer is (B).', 'B'))"],
                         cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1.0"
