"""Controllers: one readable loop per stage kind. The only layer that drives Ray."""


def run_stage(cfg):  # noqa: ANN001 - OmniRLConfig; imported lazily to keep `import omni_rl.controller` light
    """Dispatch on `cfg.run.kind`."""
    if cfg.run.kind == "rl":
        from omni_rl.controller.rl import train_rl

        return train_rl(cfg)
    raise ValueError(f"run.kind={cfg.run.kind!r} is not available yet (known now: rl)")
