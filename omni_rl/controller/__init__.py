"""Controllers: one readable loop per stage kind. The only layer that drives Ray."""


def run_stage(cfg):  # noqa: ANN001 - OmniRLConfig; imported lazily to keep `import omni_rl.controller` light
    """Dispatch on `cfg.run.kind`, after importing the verifier plugin modules the config lists (`verify.plugins`)."""
    from omni_rl.wiring.groups import build_objective
    from omni_rl.verifiers import load_plugins

    load_plugins(cfg.verify.plugins)  # before any row is validated: rows may name the verifiers they register
    build_objective(cfg)  # an unknown algorithm.name, or one that trains another run.kind, stops the run here
    if cfg.run.kind == "rl":
        from omni_rl.controller.rl import train_rl

        return train_rl(cfg)
    if cfg.run.kind == "preference":
        from omni_rl.controller.preference import train_preference

        return train_preference(cfg)
    raise ValueError(f"run.kind={cfg.run.kind!r}: known kinds are rl and preference")
