"""`bench compare`: the same architecture, batch and length trained by Hugging Face
transformers on PyTorch (LlamaForCausalLM / T5ForConditionalGeneration, torch.optim.AdamW)."""

from __future__ import annotations

from typing import Any

import numpy as np

from flan_jax.bench.common import (Settings, cpu_count, f32, median_time, say, synthetic_batch,
                                   tokens_per_row)
from flan_jax.bench.train import measure_train_step


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


def measure_torch_step(cfg, batch: int, lengths: dict[str, int], s: Settings,
                       learning_rate: float = 1e-4, weight_decay: float = 0.01) -> dict:
    """Median step time of forward, backward and AdamW in PyTorch on the CPU, float32."""
    import torch

    torch.manual_seed(0)
    model = torch_model(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    kwargs = torch_inputs(cfg, synthetic_batch(cfg.family, batch, lengths, cfg.vocab_size))
    box = {}

    def run():
        opt.zero_grad(set_to_none=True)
        loss = model(**kwargs).loss
        loss.backward()
        opt.step()
        box["loss"] = loss.item()

    step_s, times = median_time(run, s.warmup, s.repeat)
    tokens = batch * tokens_per_row(lengths)
    return {"params": sum(p.numel() for p in model.parameters()), "step_time_s": step_s,
            "step_times_s": times, "tokens_per_s": tokens / step_s, "loss": box["loss"],
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "attention": getattr(model.config, "_attn_implementation", None)}


def bench_compare(models: list[tuple[str, Any]], s: Settings,
                  loss_chunk_sizes: tuple[int, ...] = (0,)) -> list[dict]:
    """One row per model and loss chunk size (0: unchunked); PyTorch is measured once per
    model."""
    import torch
    import transformers

    torch.set_num_threads(cpu_count())
    rows = []
    for name, cfg in models:
        if "small" in name and not s.quick:
            continue  # the target is the tiny config; small is covered by `train`
        batch, lengths = (2, {"inputs": 16, "targets": 8}) if s.quick else \
            (16, {"inputs": 128, "targets": 32})
        cfg = f32(cfg)
        pt = measure_torch_step(cfg, batch, lengths, s)
        for chunk in loss_chunk_sizes:
            jx = measure_train_step(cfg, batch, lengths, s, loss_chunk_size=chunk)
            rows.append(_compare_row(name, cfg, batch, lengths, jx, pt, transformers.__version__))
            say(f"compare {name} (loss chunk {chunk}): jax {jx['tokens_per_s']:,.0f} tok/s vs "
                f"torch {pt['tokens_per_s']:,.0f} tok/s ({rows[-1]['ratio_jax_over_torch']:.2f}x)"
                f", XLA step memory {jx['xla_step_memory_mib']:.0f} MiB")
    return rows


def _compare_row(name, cfg, batch, lengths, jx, pt, transformers_version) -> dict:
    return {"model": name, "family": cfg.family, "batch": batch,
            "lengths": dict(lengths), "optimizer": "AdamW(lr=1e-4, wd=0.01)",
            "loss_chunk_size": jx["loss_chunk_size"],
            "jax_params": jx["params"], "torch_params": pt["params"],
            "jax_tokens_per_s": jx["tokens_per_s"],
            "torch_tokens_per_s": pt["tokens_per_s"],
            "jax_step_time_s": jx["step_time_s"], "torch_step_time_s": pt["step_time_s"],
            "jax_xla_step_memory_mib": jx["xla_step_memory_mib"],
            "ratio_jax_over_torch": jx["tokens_per_s"] / pt["tokens_per_s"],
            "torch_threads": pt["threads"], "torch_version": pt["torch"],
            "transformers_version": transformers_version,
            "torch_attention": pt["attention"]}
