"""`omni-rl` command line.

    omni-rl run [stage=image_rl] [key=value ...]      train one curriculum stage (Hydra overrides)
    omni-rl run curriculum=nemotron_omni [key=value ...]   every stage in order on one model, resumable
    omni-rl show-config [key=value ...]               print the composed config (every key, with defaults)
    omni-rl verify --verifier NAME --answer A --response R [--kwargs JSON]
    omni-rl verify --input rows.jsonl --output scores.jsonl     batch scoring in a worker pool with deadlines
    omni-rl verify --plugin my_pkg.rewards ...         first import a module whose @register_verifier names rows use
    omni-rl plot RUN_DIR                               reward / clip / mismatch / timing PNGs
    omni-rl doctor                                     versions, devices, and whether vLLM starts
    omni-rl filter [stage=image_rl] [key=value ...]   pass rate of the initial policy per prompt; keep rows in a band
    omni-rl build-preferences [key=value ...]         rejection sampling -> (chosen, rejected) pairs for MPO
    omni-rl convert ADAPTER SRC OUT                    a public dataset (MMPR, CLEVR, ScreenSpot, ...) -> our rows

Heavy libraries are imported inside each subcommand, so `omni-rl --help` is instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EPILOG = """examples:
  omni-rl run                                   # image RL on the tiny omni model + synthetic image suite
  omni-rl run stage=image_rl rollout.n=8 trainer.lr=1e-4 run.steps=10
  omni-rl run stage=text_rl_1 run.resume=true
  omni-rl run curriculum=nemotron_omni          # mpo -> text_rl_1 -> image_rl -> omni_rl -> text_rl_2
  omni-rl verify --verifier mathruler --answer "1/2" --response "<think>...</think> \\boxed{0.5}"
  omni-rl plot outputs/image_rl
  omni-rl filter stage=image_rl data.path=my_rows.jsonl filter.n=8 rollout.num_workers=2
  omni-rl build-preferences data.path=my_rows.jsonl preferences.n=16
  omni-rl convert screenspot screenspot_web.json data/screenspot.jsonl
"""


class UserError(Exception):
    """An error caused by input the user can fix; printed without a traceback."""


def _parse_json_arg(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # a bare string answer such as B or 1/2


def cmd_verify(args: argparse.Namespace) -> int:
    from omni_rl.verifiers import PluginError, get_verifier, load_plugins, reward

    try:
        load_plugins(args.plugin)  # the command line names code; a row or --verifier only names a verifier
    except PluginError as e:
        raise UserError(str(e)) from e
    if args.input:
        return _verify_batch(args)
    if args.verifier is None or args.response is None or (args.answer is None and not args.unanswerable):
        raise UserError("verify needs --verifier, --answer (or --unanswerable) and --response (or --input "
                        "FILE.jsonl for a batch)")
    try:
        kwargs = json.loads(args.kwargs) if args.kwargs else {}
    except json.JSONDecodeError as e:
        raise UserError(f"--kwargs must be a JSON object, got {args.kwargs!r}: {e}") from e
    if not isinstance(kwargs, dict):
        raise UserError(f"--kwargs must be a JSON object, got {type(kwargs).__name__}")
    try:
        get_verifier(args.verifier)
    except (KeyError, ValueError, ImportError) as e:
        raise UserError(str(e)) from e
    answer = None if args.answer is None else _parse_json_arg(args.answer, "--answer")
    res = reward(args.response, args.verifier, answer, format_weight=args.format_weight,
                 unanswerable=args.unanswerable, **kwargs)
    print(json.dumps({"verifier": args.verifier, "outcome": res.outcome, "format": res.format,
                      "reward": res.reward, "error": res.error}))
    return 0


def _verify_batch(args: argparse.Namespace) -> int:
    from omni_rl.verifiers import verifier_exists
    from omni_rl.verifiers.pool import score_batch

    src = Path(args.input)
    if not src.is_file():
        raise UserError(f"--input {src} does not exist")
    out = Path(args.output) if args.output else src.with_suffix(".scores.jsonl")
    items, rejects = [], []
    for lineno, line in enumerate(src.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError(f"bad_type:row: expected a JSON object, got {type(row).__name__}")
            missing = [k for k in ("verifier", "answer", "response") if k not in row]
            if missing:
                raise ValueError(f"missing field(s) {missing}")
            if not isinstance(row["verifier"], str) or not row["verifier"].strip():
                raise ValueError(f"bad_type:verifier: expected a non-empty string, got {row['verifier']!r:.80}")
            if not verifier_exists(row["verifier"]):  # imports nothing: a row names a verifier, never code
                raise ValueError(f"unknown_verifier:{row['verifier']}")
            if not isinstance(row.get("unanswerable", False), bool):
                raise ValueError(f"unanswerable must be true or false, got {row['unanswerable']!r:.80}")
        except (json.JSONDecodeError, ValueError) as e:
            rejects.append({"line": lineno, "reason": str(e)})
            continue
        row["_line"] = lineno
        items.append(row)
    results, stats = score_batch(
        items, num_workers=args.workers, timeout_s=args.timeout, format_weight=args.format_weight
    )
    with out.open("w") as f:
        for row, res in zip(items, results):
            f.write(json.dumps({"line": row["_line"], "id": row.get("id"), "verifier": row["verifier"],
                                "outcome": res.outcome, "format": res.format, "reward": res.reward,
                                "error": res.error}) + "\n")
        for rej in rejects:
            f.write(json.dumps({"line": rej["line"], "rejected": rej["reason"]}) + "\n")
    n_rows = len(items) + len(rejects)
    mean = sum(r.reward for r in results) / max(1, len(results))
    print(f"rows {n_rows} = scored {len(items)} + rejected {len(rejects)}; mean reward {mean:.4f}; "
          f"verifier errors {stats['errors']}, timeouts {stats['timeouts']}; "
          f"{len(items) / max(stats['seconds'], 1e-9):.0f} scores/s -> {out}")
    for rej in rejects:
        print(f"  rejected line {rej['line']}: {rej['reason']}")
    return 0


def _compose(overrides: Sequence[str]) -> Any:
    from omni_rl.config import ConfigError, compose_config

    try:
        return compose_config(overrides)
    except ConfigError as e:
        raise UserError(str(e)) from e


def cmd_run(args: argparse.Namespace) -> int:
    curriculum = [o for o in args.overrides if o.split("=", 1)[0] == "curriculum"]
    if curriculum:
        return _run_curriculum(curriculum[-1].split("=", 1)[1],
                               [o for o in args.overrides if o.split("=", 1)[0] != "curriculum"])
    cfg = _compose(args.overrides)
    if cfg.run.dry_run:
        from rich.console import Console

        from omni_rl.controller.dry_run import dry_run

        return dry_run(cfg, Console(highlight=False, soft_wrap=True))
    from omni_rl.controller import run_stage
    from omni_rl.verifiers import PluginError

    try:
        run_stage(cfg)
    except (FileExistsError, FileNotFoundError, PluginError) as e:  # run dir / model / data / plugin: the user fixes
        raise UserError(str(e)) from e
    return 0


def _run_curriculum(name: str, overrides: list[str]) -> int:
    """`run.output_dir` names the curriculum's dir (default outputs/curriculum_<name>); every other override goes to
    every stage."""
    from omni_rl.config import ConfigError, compose_config
    from omni_rl.controller.curriculum import run_curriculum
    from omni_rl.jobs.store import JobConfigMismatch

    out = [o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0].lstrip("+") == "run.output_dir"]
    rest = [o for o in overrides if o.split("=", 1)[0].lstrip("+") not in ("run.output_dir", "stage")]
    try:
        if compose_config(rest).run.dry_run:
            from omni_rl.controller.curriculum import dry_run_curriculum

            return dry_run_curriculum(name, rest)
        run_curriculum(name, rest, output_dir=out[-1] if out else None)
    except (ConfigError, JobConfigMismatch, FileExistsError, FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from e
    return 0


def cmd_show_config(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf

    cfg = _compose(args.overrides)
    print(OmegaConf.to_yaml(OmegaConf.structured(cfg)))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from omni_rl.logging.plots import plot_run

    run_dir = Path(args.run_dir)
    if not (run_dir / "metrics.jsonl").is_file():
        raise UserError(f"{run_dir} has no metrics.jsonl; pass the run directory printed by `omni-rl run`")
    for path in plot_run(run_dir):
        print(path)
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from omni_rl.environments.convert import UnknownAdapterError, convert, summary
    from omni_rl.environments.mapping import from_args

    try:
        mapping = from_args(args.field, media_template=args.media_template, answer_index=args.answer_index,
                            mapping_file=args.mapping)
        res = convert(args.adapter, args.src, args.out, source=args.source, media_root=args.media_root,
                      rejects_path=args.rejects, check_media=not args.no_check_media, bbox_format=args.bbox_format,
                      mapping=mapping)
    except (UnknownAdapterError, FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from e
    print(f"convert {args.adapter}: {summary(args.adapter, res)}")
    return 0


CONVERT_HELP = """Convert a public dataset into our rows (docs/data.md, "Converting public datasets"). SRC: a .json
file (an array of records, or an object holding them under questions / data / annotations), .jsonl, .csv / .tsv (a
header line; empty cells are missing values), .parquet, or a directory written by datasets.Dataset.save_to_disk.
OUT: a .jsonl file that `omni-rl run data.path=OUT` reads. Every record ends in OUT or in the rejects file (its
index and the reason); the command prints records_in = converted + rejected. Relative media paths of SRC resolve
against --media-root; embedded images / audio are written to <OUT stem>_media/ next to OUT.

Columns named otherwise than an adapter reads: --field ROLE=COLUMN (repeatable) puts COLUMN where the adapter reads
ROLE (each adapter's roles are listed below). options, bbox and id take several columns (options=a0,a1,a2 or a
glob such as options='a?'; the options become A, B, ...); --media-template '{{}}.mp4' turns the media column's
value into a path under --media-root ('**/{{}}.mp4': in any folder below it); --answer-index 0|1 reads the answer
as an option index (digit strings too) counted from 0 or 1. --mapping FILE.yaml holds the same (keys fields,
media_template, answer_index, bbox_format); flags override the file, the file overrides a preset.

adapters:
{adapters}

presets (ADAPTER may name one: an adapter with the column mapping of one published layout):
{presets}

examples:
  omni-rl convert clevr CLEVR_v1.0/questions/CLEVR_val_questions.json data/clevr.jsonl \\
      --media-root CLEVR_v1.0/images/val
  omni-rl convert screenspot screenspot_web.json data/screenspot.jsonl --media-root screenspot_imgs
  omni-rl convert librispeech librispeech_dev_clean/ data/asr.jsonl
  omni-rl convert mmpr MMPR/annotations/SUBSET.jsonl data/pairs.jsonl --media-root IMAGE_ROOT
      # IMAGE_ROOT: the subset's image root as MMPR's meta.json gives it; then stage=mpo data.path=data/pairs.jsonl
  omni-rl convert video_mcq qa.csv data/video.jsonl --field video=vid --field options=a0,a1,a2,a3,a4 \\
      --answer-index 0 --media-template '{{}}.mp4' --media-root videos
  omni-rl convert audio_qa clips.json data/aqa.jsonl --field audio=audio_id --media-root clips
  omni-rl convert nextqa_csv nextqa/val.csv data/nextqa.jsonl --media-root NExTVideo
  omni-rl convert video_mcq test.parquet data/video.jsonl --mapping my_layout.yaml --media-root videos"""


def cmd_doctor(args: argparse.Namespace) -> int:
    from omni_rl.doctor import run_doctor

    return run_doctor(check_vllm=not args.no_vllm)


def cmd_job(name: str):
    def _cmd(args: argparse.Namespace) -> int:
        spec = JOBS[name]
        overrides = list(args.overrides)
        if not any(o.split("=", 1)[0].lstrip("+") == "run.output_dir" for o in overrides):
            overrides.append(f"run.output_dir={spec.output_dir}")
        cfg = _compose(overrides)
        import importlib

        from omni_rl.jobs.store import JobConfigMismatch

        module, function = spec.runner.split(":")
        job = getattr(importlib.import_module(f"omni_rl.jobs.{module}"), function)  # a name from JOBS, never input
        try:
            return job(cfg)
        except (JobConfigMismatch, FileNotFoundError, ValueError) as e:
            raise UserError(str(e)) from e

    return _cmd


@dataclass(frozen=True)
class Job:
    """An offline job's subcommand: `runner` is `module:function` in `omni_rl.jobs` (imported when the subcommand
    runs, so `--help` stays instant), called with the composed config and returning the exit code."""

    runner: str
    output_dir: str  # the default run.output_dir
    help: str
    description: str


JOBS = {
    "filter": Job("filter:run_filter", "outputs/${run.name}_filter",
               "offline pass-rate filter: n rollouts per prompt, keep rows whose pass rate is in a band",
               """Offline pass-rate filtering with the stage's initial policy (the model `omni-rl run` would start
from). Every row gets filter.n rollouts (rollout.* sampling); a rollout passes when its verifier outcome is
>= filter.success_threshold (per verifier: filter.verifier_thresholds); pass rate = passes / n. Rows are kept when
their pass rate is inside the first matching band (filter.bands, then filter.band_preset: keep_all, image_rl
(< 0.8), omni_rl (0.1-0.9, audio QA 0.3-0.7)).

Outputs in run.output_dir (default outputs/<stage>_filter): scores.jsonl, kept.jsonl, rejects.jsonl, report.json,
report.md, plots/pass_rate.png. Re-running the same command resumes; other settings on a non-empty dir are refused
(filter.overwrite=true starts over). Changing only the bands re-bands without generating.

examples:
  omni-rl filter stage=image_rl
  omni-rl filter stage=image_rl data.path=rows.jsonl rollout.num_workers=2 run.output_dir=outputs/f1
  omni-rl filter data.path=outputs/f1/kept.jsonl filter.rescore_only=true filter.band_preset=omni_rl \
      run.output_dir=outputs/f1_rebanded
  omni-rl filter 'filter.bands=[{modality:[audio],low:0.3,high:0.7}]' +filter.verifier_thresholds.asr=0.8"""),
    "build-preferences": Job("preferences:run_build_preferences", "outputs/${run.name}_preferences",
                             "rejection sampling: n candidates per prompt -> (chosen, rejected) pairs for MPO",
                          """Rejection sampling for MPO with the stage's initial policy. Every row gets
preferences.n candidates; accepted: score >= preferences.accept_threshold, rejected: score <
preferences.reject_threshold; identical responses count once; up to preferences.max_pairs_per_prompt pairs per
prompt (best accepted with worst rejected first). preferences.from_filter=DIR reuses the responses of a filter run
made with filter.keep_responses=true instead of generating.

Outputs in run.output_dir (default outputs/<stage>_preferences): candidates.jsonl, pairs.jsonl, rejects.jsonl,
report.json, report.md. Resumable like `omni-rl filter`.

examples:
  omni-rl build-preferences
  omni-rl build-preferences data.path=rows.jsonl preferences.n=16 preferences.max_pairs_per_prompt=4
  omni-rl build-preferences preferences.from_filter=outputs/image_rl_filter"""),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="omni-rl",
        description="RL post-training for omni-modal models: MPO + GSPO curriculum on Ray + vLLM.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    r = sub.add_parser("run", help="train one curriculum stage, or a whole curriculum (Hydra overrides: key=value ...)",
                       description="Train one stage. Overrides are Hydra `key=value` pairs over configs/ "
                       "(see `omni-rl show-config`). Default: stage=image_rl on the tiny omni model. "
                       "With curriculum=NAME (configs/curriculum/NAME.yaml, or a YAML path) it runs the "
                       "curriculum's stages in order, each from the previous stage's final/, filtering before "
                       "the stages that ask for it; the other overrides go to every stage; re-running the same "
                       "command resumes it (finished stages are skipped). Summary: curriculum.md, curriculum.png.")
    r.add_argument("overrides", nargs="*", help="e.g. stage=image_rl rollout.n=8 trainer.lr=1e-4 run.resume=true")
    r.set_defaults(func=cmd_run)

    s = sub.add_parser("show-config", help="print the composed config with all defaults")
    s.add_argument("overrides", nargs="*")
    s.set_defaults(func=cmd_show_config)

    v = sub.add_parser("verify", help="score one response (or a JSONL batch) with a verifier",
                       description="Score one response, or a JSONL file of {verifier, answer, response, "
                       "verifier_kwargs?, unanswerable?} rows in a process pool with a per-item deadline.")
    v.add_argument("--verifier", help="registered name: built in (string-match, mathruler, multiple-choice, "
                   "gui-coordinate, asr, format), an entry-point plugin, or one a --plugin module registers")
    v.add_argument("--answer", help="ground truth; parsed as JSON when it is valid JSON (e.g. [120, 40]), "
                   "else taken as a string")
    v.add_argument("--response", help="the full model response text")
    v.add_argument("--kwargs", help='verifier kwargs as a JSON object, e.g. \'{"coord_space": "norm1000"}\'')
    v.add_argument("--unanswerable", action="store_true", help="the prompt cannot be answered: the response scores "
                   "1 when its final answer abstains, 0 otherwise (a row's \"unanswerable\": true in batch mode)")
    v.add_argument("--format-weight", type=float, default=0.1, help="w in (1-w)*outcome + w*format (default 0.1)")
    v.add_argument("--input", help="batch mode: JSONL rows with verifier/answer/response[/verifier_kwargs/"
                   "unanswerable]")
    v.add_argument("--output", help="batch mode: where to write scores (default INPUT.scores.jsonl)")
    v.add_argument("--workers", type=int, default=2, help="batch mode: worker processes (default 2)")
    v.add_argument("--timeout", type=float, default=3.0, help="batch mode: per-item deadline in s (default 3)")
    v.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import MODULE first: its @register_verifier names become usable (repeatable)")
    v.set_defaults(func=cmd_verify)

    pl = sub.add_parser("plot", help="write reward / pass-rate / timing PNGs for a run directory")
    pl.add_argument("run_dir")
    pl.set_defaults(func=cmd_plot)

    d = sub.add_parser("doctor", help="report versions, devices and whether vLLM can start")
    d.add_argument("--no-vllm", action="store_true", help="skip starting a vLLM engine on a tiny model")
    d.set_defaults(func=cmd_doctor)

    from omni_rl.environments.adapters import ADAPTERS, BBOX_FORMATS, describe_adapters  # stdlib-only modules
    from omni_rl.environments.mapping import PRESETS, describe_presets

    c = sub.add_parser("convert", help="convert a public dataset (MMPR, CLEVR, ScreenSpot, LibriSpeech, video / "
                       "audio QA) into our rows",
                       description=CONVERT_HELP.format(adapters=describe_adapters(), presets=describe_presets()),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("adapter", metavar="ADAPTER", help=f"an adapter ({', '.join(ADAPTERS)}) or a preset "
                   f"({', '.join(PRESETS)})")
    c.add_argument("src", metavar="SRC", help="the public dataset file or saved dataset directory")
    c.add_argument("out", metavar="OUT", help="the rows file to write (.jsonl)")
    c.add_argument("--source", help="the `source` name written into every row (default: the adapter's name)")
    c.add_argument("--media-root", help="folder relative media paths of SRC resolve against (default: SRC's folder, "
                   "or SRC itself for a dataset directory)")
    c.add_argument("--rejects", help="where to write the rejected records (default: <OUT stem>.rejects.jsonl)")
    c.add_argument("--bbox-format", choices=BBOX_FORMATS,
                   help="screenspot: how a list of 4 numbers is read (default: the preset's, else auto: [0, 1] boxes "
                   "and records with img_size are x1,y1,x2,y2; other pixel boxes x,y,w,h)")
    c.add_argument("--field", action="append", default=[], metavar="ROLE=COLUMN",
                   help="read ROLE from COLUMN (repeatable), e.g. --field video=videoID --field question=QuestionText; "
                   "options / bbox / id take several columns (options=a0,a1,a2,a3,a4 or options='a?'; id=video,qid "
                   "joins them with _)")
    c.add_argument("--media-template", metavar="TEMPLATE",
                   help="make the media path from the media column's value: '{}.mp4' turns 4010069381 into "
                   "4010069381.mp4 (relative to --media-root); '**/{}.mp4' finds it in any folder below --media-root")
    c.add_argument("--answer-index", type=int, choices=(0, 1),
                   help="the answer column holds option indices (integers or digit strings) counted from 0 or 1; "
                   "default: JSON integers are 0-based, strings are letters (A-E) or option texts")
    c.add_argument("--mapping", metavar="FILE.yaml",
                   help="the column mapping as YAML: fields (role: column or list), media_template, answer_index, "
                   "bbox_format; flags given too override it")
    c.add_argument("--no-check-media", action="store_true",
                   help="only check that media files exist (default: decode each once, like the loader)")
    c.set_defaults(func=cmd_convert)

    for name, job in JOBS.items():
        n = sub.add_parser(name, help=job.help, description=job.description,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        n.add_argument("overrides", nargs="*", help="Hydra key=value overrides (see `omni-rl show-config`)")
        n.set_defaults(func=cmd_job(name))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as e:
        print(f"omni-rl {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"omni-rl {args.command}: interrupted; the checkpoints and records written so far stay (re-run with "
              "run.resume=true, or re-run the same curriculum / job command, to continue)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
