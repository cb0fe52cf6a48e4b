"""Task environments (installed as `omni_rl.environments`; `environments` is a taken PyPI name).

An environment turns a data source into prompts and picks the verifier per row. The built-in synthetic task suite
lives in `omni_rl.data.synthetic` (one generator per task, registered in `TASKS`). Multi-turn / tool environments
are not implemented yet; they will live here.
"""
