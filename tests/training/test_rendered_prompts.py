"""Contract with the data layer: prompts rendered by `omni_rl.data.render.render_prompt` from the synthetic suite
(image, video, audio, video+audio, text rows) train through both forward paths with identical results."""

import torch
from training_helpers import OMNI, random_sequences

from omni_rl.data.loading import load_samples
from omni_rl.data.render import render_prompt
from omni_rl.data.synthetic import generate_suite
from omni_rl.models.policy import load_processor
from omni_rl.training.batch import TrainBatch, TrainPrompt
from omni_rl.training.worker import TrainerWorker, reduce_metrics

TASKS = ["image_mcq", "video_motion", "audio_pitch", "omni_av", "text_math"]


def test_rendered_omni_prompts_encoder_once_equals_per_rollout(omni_model_path, tmp_path):
    suite = generate_suite(tmp_path / "suite", tasks=TASKS, n_per_task=1, seed=0)
    samples = load_samples(suite, known_verifiers=lambda v: True, rejects_path=tmp_path / "rejects.jsonl").samples
    assert sorted(s.modality for s in samples) == ["audio", "image", "omni", "text", "video"]
    proc = load_processor(omni_model_path, OMNI)
    prompts = []
    for s in samples:
        p = render_prompt(s, proc, enable_thinking=True, video_fps=2.0, video_max_frames=8,
                          audio_in_video_key=OMNI.audio_in_video_key)
        prompts.append(TrainPrompt(prompt_ids=p.prompt_ids, mm_tensors=p.mm_tensors, uid=s.id))
    batch = TrainBatch(prompts=prompts, sequences=random_sequences(len(prompts), 2, seed=0))
    workers = {once: TrainerWorker(omni_model_path, family=OMNI, warmup_steps=0, encoder_once=once, micro_batch_size=10, lr=1e-3)
               for once in (True, False)}
    metrics = {once: reduce_metrics([w.train_step(batch, global_num_seqs=10)]) for once, w in workers.items()}
    # media: image 1 + video 1 + audio 1 + (video 1 + audio 1) = 5 once; x G=2 per rollout
    assert metrics[True]["train/encoder_media_items"] == 5 and metrics[False]["train/encoder_media_items"] == 10
    assert abs(metrics[True]["train/loss"] - metrics[False]["train/loss"]) < 1e-6
    assert abs(metrics[True]["train/grad_norm"] - metrics[False]["train/grad_norm"]) < 1e-4
    for (n, a), b in zip(workers[True].model.named_parameters(), workers[False].model.parameters()):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-5, rtol=1e-5, msg=n)
