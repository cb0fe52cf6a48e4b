"""Trainer state on disk without pickle (omni_rl.training.state): the layout round-trips, an FSDP2 resume continues
bit for bit, and a checkpoint dir carrying a pickle payload is refused by the real load paths without running it.

The payload: an object whose `__reduce__` makes unpickling call `open(marker, "w")`. Each test first shows that the
payload is live (unpickling it creates a marker), then that loading the checkpoint raises a clear error and the
marker does not exist."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from training_helpers import run_two_ranks, text_batch

from omni_rl.controller.checkpoint import DRIVER_FILE, RunCheckpointer
from omni_rl.models.families import resolve_family
from omni_rl.training.state import LocalShard, load_state, save_state
from omni_rl.training.worker import TrainerWorker

KW = dict(dtype="float64", micro_batch_size=4, lr=1e-2, warmup_steps=2, num_threads=1)


class Payload:
    """Unpickling this creates `marker` (a stand-in for any code a pickle can run)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def _live_payload(tmp_path: Path) -> Path:
    """The marker a payload would create; asserts first that unpickling such a payload does run it."""
    probe = tmp_path / "probe_marker"
    pickle.loads(pickle.dumps(Payload(probe)))
    assert probe.exists()
    return tmp_path / "marker"


# ------------------------------------------------------------------------------------------------- the layout
def test_state_files_round_trip_every_kind(tmp_path):
    state = {"optimizer": {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.arange(6.).reshape(2, 3)},
                                     2: {"step": torch.tensor(1.0), "exp_avg": torch.zeros(0, 4)}},
                           "param_groups": [{"lr": 0.1 + 0.2, "betas": (0.9, 0.999), "foreach": None,
                                             "amsgrad": False, "params": [0, 1, 2]}]},
             "scheduler": {"last_epoch": 7, "_last_lr": [1e-300, float("inf")], "lr_lambdas": [None]},
             "rng": torch.get_rng_state(), "step": 7, "objective": {}}
    save_state(state, tmp_path / "s", strategy="replicated", rank=0, world_size=1)
    back, meta = load_state(tmp_path / "s")
    assert meta == {"format": "omni-rl-trainer-state/1", "strategy": "replicated", "rank": 0, "world_size": 1}
    assert back.keys() == state.keys() and back["step"] == 7 and back["objective"] == {}
    assert back["optimizer"]["param_groups"] == state["optimizer"]["param_groups"]  # 0.1 + 0.2 exactly, a tuple
    assert isinstance(back["optimizer"]["param_groups"][0]["betas"], tuple)
    assert back["scheduler"] == state["scheduler"]
    assert sorted(back["optimizer"]["state"]) == [0, 2]  # int keys stay int
    for i, entry in state["optimizer"]["state"].items():
        for k, t in entry.items():
            got = back["optimizer"]["state"][i][k]
            assert torch.equal(got, t) and got.dtype == t.dtype, (i, k)
    assert torch.equal(back["rng"], state["rng"])
    doc = json.loads((tmp_path / "s.json").read_text())  # readable: tensors by reference
    entry = doc["state"]["optimizer"]["state"]["__int_keys__"]["0"]
    assert entry["exp_avg"] == {"__tensor__": "optimizer.state.0.exp_avg"}
    with pytest.raises(TypeError, match="a Payload has no JSON / safetensors form"):
        save_state({"x": Payload(tmp_path / "m")}, tmp_path / "bad")


@pytest.mark.parametrize("broken", ["unknown tag", "missing tensor", "not json", "pickled tensors", "nested"])
def test_state_loader_refuses_malformed_files(broken, tmp_path):
    marker = _live_payload(tmp_path)
    save_state({"rng": torch.get_rng_state(), "step": 1}, tmp_path / "s", strategy="replicated", rank=0,
               world_size=1)
    doc = json.loads((tmp_path / "s.json").read_text())
    if broken == "unknown tag":
        doc["state"]["step"] = {"__reduce__": ["os.system", "true"]}
        (tmp_path / "s.json").write_text(json.dumps(doc))
    elif broken == "missing tensor":
        doc["state"]["rng"] = {"__tensor__": "elsewhere"}
        (tmp_path / "s.json").write_text(json.dumps(doc))
    elif broken == "nested":  # deeper than Python's recursion limit
        (tmp_path / "s.json").write_text(json.dumps(doc)[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    elif broken == "not json":
        (tmp_path / "s.json").write_bytes(pickle.dumps(Payload(marker)))
    else:
        (tmp_path / "s.safetensors").write_bytes(pickle.dumps(Payload(marker)))
    message = {"unknown tag": "unknown tag", "missing tensor": "'elsewhere' is referenced but not stored",
               "not json": "is not a trainer-state JSON file", "pickled tensors": "is not a readable safetensors",
               "nested": "is not a trainer-state JSON file"}
    with pytest.raises(ValueError, match=message[broken]):
        load_state(tmp_path / "s")
    assert not marker.exists()


# ------------------------------------------------------------------------------ payloads in a real checkpoint
def _checkpoint(model_path: str, out: Path) -> TrainerWorker:
    w = TrainerWorker(model_path, family=resolve_family(model_path), **KW)
    w.train_step(text_batch(seed=4), global_num_seqs=9)
    w.save(out)
    return w


@pytest.mark.parametrize("where", ["old trainer_state.pt", "trainer_state.safetensors", "trainer_state.json",
                                   "pytorch_model.bin instead of model.safetensors", "model.safetensors"])
def test_a_pickle_payload_in_a_checkpoint_is_refused_unrun(where, text_model_path, tmp_path):
    marker = _live_payload(tmp_path)
    worker = _checkpoint(text_model_path, tmp_path / "ckpt")
    ckpt = tmp_path / "ckpt"
    assert sorted(p.name for p in ckpt.glob("trainer_state*")) == ["trainer_state.json", "trainer_state.safetensors"]
    payload = pickle.dumps(Payload(marker))
    if where == "old trainer_state.pt":  # the format omni-rl wrote before: torch.save's zip around a pickle
        torch.save({"optimizer": Payload(marker)}, ckpt / "trainer_state.pt")
        expected = "old pickled format \\(trainer_state.pt\\).*model.path="
    elif where == "pytorch_model.bin instead of model.safetensors":
        (ckpt / "model.safetensors").unlink()
        (ckpt / "pytorch_model.bin").write_bytes(payload)
        expected = "holds no model.safetensors; pytorch_model.bin would have to be unpickled"
    else:
        (ckpt / where).write_bytes(payload)
        expected = {"trainer_state.safetensors": "is not a readable safetensors file",
                    "trainer_state.json": "is not a trainer-state JSON file",
                    "model.safetensors": "model.safetensors is not a safetensors file"}[where]
    worker.train_step(text_batch(seed=5), global_num_seqs=9)  # its weights now differ from the checkpoint's
    before = {n: p.detach().clone() for n, p in worker.model.named_parameters()}
    with pytest.raises((ValueError, FileNotFoundError), match=expected):
        worker.load(ckpt)  # the trainer worker's state load
    assert not marker.exists()
    assert all(torch.equal(p, before[n]) for n, p in worker.model.named_parameters())  # refused before any change

    run = tmp_path / "checkpoints"  # the controller's resume: the newest complete checkpoint into the trainer
    (run / "step_000000").parent.mkdir()
    shutil.copytree(ckpt, run / "step_000000")
    (run / "step_000000" / DRIVER_FILE).write_text(json.dumps({"step": 0, "policy_version": 1}))
    with pytest.raises((ValueError, FileNotFoundError), match=expected):
        RunCheckpointer(run, keep_last=1).restore(worker, None)
    assert not marker.exists()


def test_a_pickle_payload_in_an_omni_speaker_file_is_refused_unrun(omni_model_path, tmp_path):
    """An Omni checkpoint's spk_dict.pt (which transformers opens in from_pretrained) is read with
    weights_only=True: a payload there fails to load and does not run."""
    from omni_rl.models.policy import load_model

    marker = _live_payload(tmp_path)
    ckpt = tmp_path / "omni"
    shutil.copytree(omni_model_path, ckpt)
    torch.save({"Chelsie": Payload(marker)}, ckpt / "spk_dict.pt")
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load_model(ckpt, "float32", family=resolve_family(ckpt))
    assert not marker.exists()


# ----------------------------------------------------------------------------------------------------- FSDP2
def _fsdp2_rank(rank: int, port: int, model_path: str, ckpt: str, phase: str, out: str) -> None:
    """phase "full": step 1, save, step 2; "resumed": load the checkpoint, step 2; "refused": load it with another
    world size (or a payload in it) and record the error."""
    world = 1 if phase == "refused" else 2
    worker = TrainerWorker(model_path, family=resolve_family(model_path),
                           strategy="fsdp2", rank=rank, world_size=world, master_addr="127.0.0.1",
                           master_port=port, **KW)
    result: dict = {}
    if phase == "refused":
        for name in ("two_ranks", "pickled"):
            try:
                worker.load(Path(ckpt) / name)
            except (ValueError, FileNotFoundError) as e:
                result[name] = str(e)
    else:
        batch = text_batch(seed=4 + rank)  # each rank its own shard of the step
        if phase == "full":
            worker.train_step(batch, global_num_seqs=18)
            worker.save(ckpt)
        else:
            worker.load(ckpt)
        result = {"step_before": worker.step, "metrics": worker.train_step(text_batch(seed=6 + rank),
                                                                            global_num_seqs=18)}
        result["params"] = worker.params_snapshot()  # gathered: every rank takes part
    torch.save(result, Path(out) / f"{rank}.pt")
    worker.shutdown()


def test_fsdp2_resume_continues_bit_for_bit_and_refuses_what_it_cannot_load(text_model_path, tmp_path):
    """Two FSDP2 ranks: a step, a checkpoint (one trainer_state.rank<r> pair per rank, the AdamW moments as local
    shards), a second step; ranks started fresh from the checkpoint take the same second step bit for bit (weights,
    loss, grad norm, lr). One rank cannot load the two ranks' shards, nor an old pickled rank file."""
    ckpt = tmp_path / "ckpt"
    full = run_two_ranks(_fsdp2_rank, text_model_path, str(ckpt), "full", out_dir=_dir(tmp_path / "full"))
    assert sorted(p.name for p in ckpt.glob("trainer_state*")) == [
        "trainer_state.rank0.json", "trainer_state.rank0.safetensors",
        "trainer_state.rank1.json", "trainer_state.rank1.safetensors"]
    state, meta = load_state(ckpt / "trainer_state.rank1")
    assert meta["world_size"] == 2 and meta["rank"] == 1 and meta["strategy"] == "fsdp2" and state["step"] == 1
    moments = [v for entry in state["optimizer"]["state"].values() for k, v in entry.items() if k == "exp_avg"]
    assert moments and all(isinstance(m, LocalShard) and m.shard_of[0] > m.local.shape[0] for m in moments)

    resumed = run_two_ranks(_fsdp2_rank, text_model_path, str(ckpt), "resumed", out_dir=_dir(tmp_path / "resumed"))
    for a, b in zip(full, resumed):
        assert a["step_before"] == b["step_before"] == 1
        for key in ("loss", "grad_norm", "lr", "step"):
            assert a["metrics"][key] == b["metrics"][key], key
    assert full[0]["params"].keys() == resumed[0]["params"].keys()
    for n, p in full[0]["params"].items():
        assert torch.equal(p, resumed[0]["params"][n]), n

    marker = _live_payload(tmp_path)
    (tmp_path / "dirs").mkdir()
    shutil.copytree(ckpt, tmp_path / "dirs" / "two_ranks")
    shutil.copytree(ckpt, tmp_path / "dirs" / "pickled")
    for f in (tmp_path / "dirs" / "pickled").glob("trainer_state.rank*"):
        f.unlink()
    torch.save({"optimizer": Payload(marker)}, tmp_path / "dirs" / "pickled" / "trainer_state.rank0.pt")
    [refused] = run_two_ranks(_fsdp2_rank, text_model_path, str(tmp_path / "dirs"), "refused",
                              out_dir=_dir(tmp_path / "refused"), world_size=1)
    assert "optimizer shards of 2 FSDP2 ranks (world size 2), this run has 1" in refused["two_ranks"]
    assert "trainer.num_workers=2" in refused["two_ranks"]
    assert "old pickled format (trainer_state.rank0.pt)" in refused["pickled"]
    assert not marker.exists()


def _dir(path: Path) -> Path:
    path.mkdir()
    return path


@pytest.mark.parametrize("driver", ['{"step": "0", "policy_version": 1}', '{"step": 0}', '[0, 1]'])
def test_a_driver_file_without_integer_steps_is_refused(driver, tmp_path):
    (tmp_path / "step_000000").mkdir()
    (tmp_path / "step_000000" / DRIVER_FILE).write_text(driver)
    with pytest.raises(ValueError, match="must hold integer 'step' and 'policy_version'.*move the broken"):
        RunCheckpointer(tmp_path, keep_last=1).restore(trainer=None, rollout=None)  # refused before the trainer
