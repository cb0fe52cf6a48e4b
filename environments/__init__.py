"""Task environments (installed as `omni_rl.environments`; `environments` is a taken PyPI name).

An environment turns a data source into prompts and picks the verifier per row. Here:

- `adapters`: one adapter per public dataset format (`mmpr`, `clevr`, `screenspot`, `librispeech`, `video_mcq`,
  `audio_qa`), each mapping a source record to one of our rows (or an MPO pair) with its verifier and
  `verifier_kwargs`, or rejecting it with a reason; registered in `adapters.ADAPTERS`.
- `convert`: runs an adapter over a whole JSON / JSONL / CSV / TSV / Parquet file or saved `datasets` directory
  (`omni-rl convert ADAPTER SRC OUT`), writing the rows and a rejects file; `records`: reading the sources and
  resolving their media (paths, embedded bytes, audio arrays).
- `mapping`: column mappings (which column holds which role an adapter reads, media path templates, option columns,
  answer indices) and presets (an adapter plus the mapping of one published layout, registered in `PRESETS`).

The built-in synthetic task suite lives in `omni_rl.data.synthetic` (one generator per task, registered in `TASKS`).
Multi-turn / tool environments are not implemented. Importing this package imports nothing.
"""
