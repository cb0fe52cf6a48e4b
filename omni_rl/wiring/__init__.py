"""What the stage loops (`omni_rl.controller`) and the offline jobs (`omni_rl.jobs`) both build from the config:
the run dir (`run`), the cache (`cache`), the starting policy (`policy`), the rows (`data`), the verifier pool
(`verifiers`), the worker groups (`groups`) and the start-up clock (`startup`). Below both: it imports neither."""
