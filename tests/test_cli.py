"""CLI surface: help, verify (single + batch accounting), not-yet commands, config errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def omni(*args, check=False):
    return subprocess.run([sys.executable, "-m", "omni_rl.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300, check=check)


def test_help_lists_subcommands():
    out = omni("--help", check=True).stdout
    for sub in ("run", "verify", "plot", "doctor", "filter", "build-preferences", "show-config"):
        assert sub in out


def test_every_job_subcommand_names_a_runner_that_exists():
    import importlib

    from omni_rl.cli import JOBS, build_parser

    assert set(JOBS) == {"filter", "build-preferences"}
    parser_help = build_parser().format_help()
    for name, job in JOBS.items():
        module, function = job.runner.split(":")
        assert callable(getattr(importlib.import_module(f"omni_rl.jobs.{module}"), function)), name
        assert name in parser_help and job.output_dir.startswith("outputs/${run.name}_")


def test_verify_single_prints_outcome_format_reward():
    out = omni("verify", "--verifier", "mathruler", "--answer", "1/2", "--response",
               "<think>half</think> \\boxed{0.5}", check=True).stdout
    row = json.loads(out.strip().splitlines()[-1])
    # outcome 1, format 1 -> reward (1-0.1)*1 + 0.1*1 = 1.0
    assert (row["outcome"], row["format"], row["reward"]) == (1.0, 1.0, 1.0)


def test_verify_single_wrong_answer_gets_format_credit_only():
    out = omni("verify", "--verifier", "multiple-choice", "--answer", "B", "--response",
               "<think>x</think> \\boxed{C}", check=True).stdout
    row = json.loads(out.strip().splitlines()[-1])
    assert row["outcome"] == 0.0 and row["format"] == 1.0
    assert row["reward"] == pytest.approx(0.1, abs=1e-9)


def test_verify_unknown_verifier_lists_known():
    p = omni("verify", "--verifier", "nope", "--answer", "1", "--response", "1")
    assert p.returncode == 2
    assert "mathruler" in p.stderr and "nope" in p.stderr


def test_verify_batch_accounts_for_every_row(tmp_path):
    out = tmp_path / "scores.jsonl"
    p = omni("verify", "--input", str(ROOT / "omni_rl/samples/verify_samples.jsonl"), "--output", str(out),
             "--timeout", "2", check=True)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 15  # 13 scorable + 1 malformed JSON + 1 missing field
    rejected = [r for r in rows if "rejected" in r]
    assert [r["line"] for r in rejected] == [14, 15]
    by_id = {r["id"]: r for r in rows if "id" in r}
    assert by_id["m1"]["reward"] == 1.0
    assert by_id["m3"]["outcome"] == 0.0
    assert by_id["m4"]["outcome"] == 0.0          # exponent tower: bounded, scores 0
    assert by_id["h1"]["outcome"] == 0.0          # code payload never evaluated
    assert "rows 15 = scored 13 + rejected 2" in p.stdout


def test_verify_unanswerable_flag_and_rows(tmp_path):
    # --unanswerable: abstaining scores outcome 1 (no --answer needed); answering scores 0, format 1 -> 0.1
    out = omni("verify", "--verifier", "mathruler", "--unanswerable", "--response",
               "<think>no triangle</think> \\boxed{cannot be determined}", check=True).stdout
    row = json.loads(out.strip().splitlines()[-1])
    assert (row["outcome"], row["format"], row["reward"]) == (1.0, 1.0, 1.0)
    out = omni("verify", "--verifier", "mathruler", "--answer", "5", "--unanswerable", "--response",
               "<think>x</think> \\boxed{5}", check=True).stdout
    row = json.loads(out.strip().splitlines()[-1])
    assert row["outcome"] == 0.0 and row["reward"] == pytest.approx(0.1, abs=1e-9)
    rows = [{"id": "u1", "verifier": "string-match", "answer": "red", "unanswerable": True,
             "response": "<think>x</think> \\boxed{The image does not show a triangle}"},
            {"id": "u2", "verifier": "string-match", "answer": "red", "unanswerable": True,
             "response": "<think>x</think> \\boxed{red}"},
            {"id": "a1", "verifier": "string-match", "answer": "red",
             "response": "<think>x</think> \\boxed{not enough information}"},
            {"id": "bad", "verifier": "string-match", "answer": "red", "unanswerable": "yes", "response": "red"}]
    src = tmp_path / "rows.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    p = omni("verify", "--input", str(src), "--output", str(tmp_path / "s.jsonl"), "--workers", "1", check=True)
    got = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [(r["id"], r["reward"]) for r in got if "id" in r] == [("u1", 1.0), ("u2", pytest.approx(0.1, abs=1e-9)),
                                                                 ("a1", pytest.approx(0.1, abs=1e-9))]
    assert got[-1]["line"] == 4 and "unanswerable must be true or false" in got[-1]["rejected"]
    assert "rows 4 = scored 3 + rejected 1" in p.stdout


def test_job_help_explains_options_and_outputs():
    for cmd, words in (("filter", ["filter.n", "filter.band_preset", "kept.jsonl", "report.md", "resumes"]),
                       ("build-preferences", ["preferences.n", "pairs.jsonl", "preferences.from_filter"])):
        p = omni(cmd, "--help")
        assert p.returncode == 0 and all(w in p.stdout for w in words), (cmd, p.stdout)


def test_job_bad_settings_are_clear_errors(tmp_path):
    p = omni("filter", "filter.band_preset=nope", f"run.output_dir={tmp_path / 'f'}")
    assert p.returncode == 2 and "filter.band_preset='nope'" in p.stderr and "Traceback" not in p.stderr
    p = omni("build-preferences", "preferences.reject_threshold=0.9", "preferences.accept_threshold=0.5")
    assert p.returncode == 2 and "preferences.reject_threshold=0.9" in p.stderr and "Traceback" not in p.stderr
    p = omni("build-preferences", f"preferences.from_filter={tmp_path}", f"run.output_dir={tmp_path / 'p'}")
    assert p.returncode == 2 and "is not a filter output dir" in p.stderr and not (tmp_path / "p").exists()
    p = omni("filter", "model.path=/no/such/model", f"run.output_dir={tmp_path / 'f'}")
    assert p.returncode == 2 and "/no/such/model" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "f").exists()  # nothing recorded: the corrected command starts cleanly


def test_run_with_bad_override_is_a_clear_error():
    p = omni("run", "trainer.lrr=3")
    assert p.returncode == 2 and "lrr" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("command", ["run", "show-config"])
def test_override_of_the_wrong_type_names_key_type_and_value(command):
    p = omni(command, "trainer.lr=abc")
    assert p.returncode == 2 and p.stdout == "", p.stdout
    assert p.stderr == (f"omni-rl {command}: error: trainer.lr: expected a float, got 'abc'; pass a float, e.g. "
                        "trainer.lr=1e-05 (its default). `omni-rl show-config` prints every key's value\n")


def test_doctor_reports_versions_without_starting_vllm():
    p = omni("doctor", "--no-vllm")
    assert p.returncode == 0, p.stdout + p.stderr
    for name in ("torch", "vllm", "ray", "transformers", "jiwer"):
        line = next(ln for ln in p.stdout.splitlines() if ln.startswith(name + " "))
        assert "NOT IMPORTABLE" not in line and "?" not in line, line
    assert "doctor: all good" in p.stdout


def test_verify_batch_rejects_rows_naming_code(tmp_path, import_trap):
    """A row's verifier naming a module or function is rejected as unknown_verifier, counted, not scored, and
    nothing is imported (the trap module is importable by the command: its folder is on PYTHONPATH)."""
    rows = [{"id": "ok", "verifier": "mathruler", "answer": "2", "response": "<think>x</think> \\boxed{2}"}]
    rows += [{"id": f"h{i}", "verifier": name, "answer": "print(1)", "response": "__import__('os').getcwd()"}
             for i, name in enumerate(import_trap.names)]
    src, out = tmp_path / "rows.jsonl", tmp_path / "scores.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows) + "[1, 2]\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(import_trap.dir), str(ROOT)])}
    p = subprocess.run([sys.executable, "-m", "omni_rl.cli", "verify", "--input", str(src), "--output", str(out),
                        "--workers", "1"], capture_output=True, text=True, cwd=ROOT, timeout=300, env=env, check=True)
    got = [json.loads(line) for line in out.read_text().splitlines()]
    n = len(import_trap.names)
    assert [r.get("id") for r in got if "rejected" not in r] == ["ok"] and got[0]["reward"] == 1.0
    assert [r["rejected"] for r in got[1:]] == [f"unknown_verifier:{name}" for name in import_trap.names] + [
        "bad_type:row: expected a JSON object, got list"]
    assert f"rows {n + 2} = scored 1 + rejected {n + 1}" in p.stdout
    name = f"{import_trap.module}:score"  # --verifier is a name too
    p = subprocess.run([sys.executable, "-m", "omni_rl.cli", "verify", "--verifier", name, "--answer", "1",
                        "--response", "x"], capture_output=True, text=True, cwd=ROOT, timeout=300, env=env)
    assert p.returncode == 2 and f"unknown verifier {name!r}" in p.stderr
    import_trap.assert_not_imported()


def test_verify_plugin_flag(tmp_path):
    (tmp_path / "cli_plugin_mod.py").write_text(
        "from omni_rl.verifiers import register_verifier\n\n"
        "@register_verifier('always-third')\ndef third(response, answer, **kwargs):\n    return 1 / 3\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "omni_rl.cli", "verify", *args], capture_output=True, text=True,
                              cwd=ROOT, timeout=300, env=env)

    assert run("--verifier", "always-third", "--answer", "1", "--response", "x").returncode == 2  # not configured
    p = run("--plugin", "cli_plugin_mod", "--verifier", "always-third", "--answer", "1", "--response", "x")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.splitlines()[-1])["outcome"] == pytest.approx(1 / 3, abs=1e-12)
    src = tmp_path / "rows.jsonl"
    src.write_text(json.dumps({"id": "r", "verifier": "always-third", "answer": 1, "response": "x"}) + "\n")
    p = run("--plugin", "cli_plugin_mod", "--input", str(src), "--output", str(tmp_path / "s.jsonl"), "--workers", "1")
    assert p.returncode == 0, p.stderr
    assert json.loads((tmp_path / "s.jsonl").read_text())["outcome"] == pytest.approx(1 / 3, abs=1e-12)  # in a worker
    p = run("--plugin", "no_such_plugin_xyz", "--verifier", "mathruler", "--answer", "1", "--response", "x")
    assert p.returncode == 2 and "verifier plugin 'no_such_plugin_xyz' failed to import" in p.stderr
