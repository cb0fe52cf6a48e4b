"""Offline data jobs: pass-rate filtering (`omni-rl filter`) and rejection sampling (`omni-rl build-preferences`)."""
