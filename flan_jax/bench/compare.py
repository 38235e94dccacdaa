"""`bench compare`: the same architecture, batch and length trained by Hugging Face
transformers on PyTorch (LlamaForCausalLM / T5ForConditionalGeneration, torch.optim.AdamW)."""

from __future__ import annotations

import statistics
from typing import Any, Callable

import numpy as np

from flan_jax.bench.common import (Settings, cpu_count, f32, median_time, say, synthetic_batch,
                                   tokens_per_row)


def torch_model(cfg):
    """The Hugging Face model with the same dimensions as a flan-jax config."""
    import transformers

    if cfg.family == "decoder_only":
        hf = transformers.LlamaConfig(
            vocab_size=cfg.vocab_size, hidden_size=cfg.emb_dim, intermediate_size=cfg.mlp_dim,
            num_hidden_layers=cfg.num_decoder_layers, num_attention_heads=cfg.num_heads,
            num_key_value_heads=cfg.kv_heads, head_dim=cfg.head_dim, rms_norm_eps=cfg.norm_eps,
            rope_theta=cfg.rope_theta, tie_word_embeddings=cfg.tie_embeddings,
            hidden_act="silu", attention_dropout=0.0, max_position_embeddings=4096)
        return transformers.LlamaForCausalLM(hf)
    hf = transformers.T5Config(
        vocab_size=cfg.vocab_size, d_model=cfg.emb_dim, d_kv=cfg.head_dim, d_ff=cfg.mlp_dim,
        num_layers=cfg.num_encoder_layers, num_decoder_layers=cfg.num_decoder_layers,
        num_heads=cfg.num_heads, feed_forward_proj="gated-gelu" if cfg.gated_mlp else "relu",
        relative_attention_num_buckets=cfg.relative_attention_num_buckets,
        relative_attention_max_distance=cfg.relative_attention_max_distance,
        dropout_rate=0.0, layer_norm_epsilon=cfg.norm_eps,
        tie_word_embeddings=cfg.tie_embeddings, decoder_start_token_id=0, pad_token_id=0)
    model = transformers.T5ForConditionalGeneration(hf)
    if not cfg.tie_embeddings:  # transformers 5 always ties T5's head to the embedding: untie
        import torch

        model.lm_head.weight = torch.nn.Parameter(model.shared.weight.detach().clone())
    return model


def torch_inputs(cfg, data: dict[str, np.ndarray], device: str = "cpu") -> dict:
    """The keyword arguments of the Hugging Face model's forward for a synthetic batch."""
    import torch

    as_long = lambda a: torch.from_numpy(np.ascontiguousarray(a)).long().to(device)  # noqa
    if cfg.family == "encoder_decoder":
        return {"input_ids": as_long(data["encoder_input_tokens"]),
                "labels": as_long(data["decoder_target_tokens"])}
    # HF shifts the labels itself: give it the inputs as labels
    ids = as_long(data["decoder_input_tokens"])
    return {"input_ids": ids, "labels": ids}


class TorchStep:
    """The PyTorch twin's train step (forward, backward, AdamW) on the CPU in float32, ready
    to run: `run()` does one step and waits for it."""

    def __init__(self, cfg, batch: int, lengths: dict[str, int], learning_rate: float = 1e-4,
                 weight_decay: float = 0.01):
        import torch

        torch.manual_seed(0)
        self.model = torch_model(cfg).train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=learning_rate,
                                     weight_decay=weight_decay)
        self.kwargs = torch_inputs(cfg, synthetic_batch(cfg.family, batch, lengths,
                                                        cfg.vocab_size))
        self.tokens = batch * tokens_per_row(lengths)
        self.loss = float("nan")

    def run(self) -> None:
        self.opt.zero_grad(set_to_none=True)
        loss = self.model(**self.kwargs).loss
        loss.backward()
        self.opt.step()
        self.loss = loss.item()

    def info(self) -> dict:
        import torch

        return {"params": sum(p.numel() for p in self.model.parameters()),
                "threads": torch.get_num_threads(), "torch": torch.__version__,
                "attention": getattr(self.model.config, "_attn_implementation", None)}


def interleaved_times(jax_run: Callable[[], None], torch_run: Callable[[], None], s: Settings,
                      rounds: int, steps: int) -> dict:
    """Step times of both sides measured back to back: after `s.warmup` steps each, `rounds`
    rounds of `steps` steps per side (the side that goes first alternates), so a neighbour's
    load on a shared machine falls on both. Medians over every step, and the median of the
    rounds' ratios (torch step time / JAX step time)."""
    for _ in range(s.warmup):
        jax_run()
        torch_run()
    times: dict[str, list[float]] = {"jax": [], "torch": []}
    ratios = []
    for i in range(rounds):
        order = (("jax", jax_run), ("torch", torch_run))
        medians = {}
        for side, fn in order if i % 2 == 0 else order[::-1]:
            _, ts = median_time(fn, 0, steps)
            times[side] += ts
            medians[side] = statistics.median(ts)
        ratios.append(medians["torch"] / medians["jax"])
    return {"jax_step_time_s": statistics.median(times["jax"]),
            "torch_step_time_s": statistics.median(times["torch"]),
            "jax_step_times_s": times["jax"], "torch_step_times_s": times["torch"],
            "round_ratios": ratios, "ratio_jax_over_torch": statistics.median(ratios)}


def bench_compare(models: list[tuple[str, Any]], s: Settings,
                  loss_chunk_sizes: tuple[int, ...] = (0,), rounds: int | None = None
                  ) -> list[dict]:
    """One row per model and loss chunk size (0: unchunked), JAX and PyTorch interleaved in
    this process (`interleaved_times`; 5 rounds of 2 steps a side unless quick)."""
    import torch
    import transformers

    from flan_jax.bench.train import prepare_train_step, train_step_row

    torch.set_num_threads(cpu_count())
    rounds = rounds or (1 if s.quick else 5)
    steps = 1 if s.quick else 2
    rows = []
    for name, cfg in models:
        if "small" in name and not s.quick:
            continue  # the target is the tiny config; small is covered by `train`
        batch, lengths = (2, {"inputs": 16, "targets": 8}) if s.quick else \
            (16, {"inputs": 128, "targets": 32})
        cfg = f32(cfg)
        pt = TorchStep(cfg, batch, lengths)
        for chunk in loss_chunk_sizes:
            step = prepare_train_step(cfg, batch, lengths, loss_chunk_size=chunk)
            t = interleaved_times(step.run, pt.run, s, rounds, steps)
            jx = train_step_row(step, t["jax_step_time_s"], t["jax_step_times_s"])
            rows.append(_compare_row(name, cfg, batch, lengths, jx, pt, t,
                                     transformers.__version__))
            r = rows[-1]
            say(f"compare {name} (loss chunk {chunk}): jax {r['jax_tokens_per_s']:,.0f} tok/s "
                f"vs torch {r['torch_tokens_per_s']:,.0f} tok/s, median of {rounds} "
                f"interleaved rounds {r['ratio_jax_over_torch']:.2f}x (rounds "
                + ", ".join(f"{x:.2f}" for x in t["round_ratios"]) + ")")
    return rows


def _compare_row(name, cfg, batch, lengths, jx, pt: TorchStep, t: dict,
                 transformers_version) -> dict:
    info = pt.info()
    return {"model": name, "family": cfg.family, "batch": batch,
            "lengths": dict(lengths), "optimizer": "AdamW(lr=1e-4, wd=0.01)",
            "loss_chunk_size": jx["loss_chunk_size"],
            "jax_params": jx["params"], "torch_params": info["params"],
            "jax_tokens_per_s": jx["tokens_per_s"],
            "torch_tokens_per_s": pt.tokens / t["torch_step_time_s"],
            "jax_xla_step_memory_mib": jx["xla_step_memory_mib"], "torch_loss": pt.loss,
            "jax_loss": jx["loss"], **t, "torch_threads": info["threads"],
            "torch_version": info["torch"], "transformers_version": transformers_version,
            "torch_attention": info["attention"]}
