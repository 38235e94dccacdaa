"""Generation with the KV cache: greedy, temperature / top-k / top-p sampling, beam search.

Everything after tokenisation runs in one `jax.jit` per shape: the prompt is encoded (encoder-
decoder) or prefilled into the cache (decoder-only), then a `lax.while_loop` feeds one token per
step and stops once every example has produced EOS (or `max_new_tokens` are out). Positions
after an example's EOS hold the pad id 0. No TensorFlow.

Batch formats (int32, right-padded with 0):
  encoder-decoder: {"encoder_input_tokens": [b, Li]} (segment ids from tokens > 0, or pass
                   "encoder_segment_ids")
  decoder-only:    {"decoder_input_tokens": [b, Lp] ([bos] + prompt ids),
                    "decoder_segment_ids": [b, Lp] (1 on prompt tokens, 0 on padding)}
                   Generated tokens take positions prompt_length, prompt_length + 1, ...

Beam search follows t5x and Hugging Face: 2 * num_beams candidates a step; EOS candidates
ranked within the top num_beams move to a finished set scored by log-probability /
((5 + length) / 6) ** length_penalty (GNMT), the best num_beams non-EOS candidates stay alive;
an example whose beams never finished returns its best alive beam. One beam is greedy.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from flan_jax.models import build_model, init_cache
from flan_jax.batching import (bucket_batch, bucket_length, check_prompt, input_ids, pad_rows,
                               row_lengths)
from flan_jax.placement import LoadedModel, round_up
from flan_jax.scoring import gather_cache

METHODS = ("greedy", "sample", "beam")


@dataclasses.dataclass(frozen=True)
class DecodeSettings:
    """How `generate` decodes: `method` (one of METHODS), at most `max_new_tokens` per input,
    sampling's `temperature` / `top_k` (0: off) / `top_p` (1: off) and `seed`, beam search's
    `num_beams` and `length_penalty`; inputs per step and the length inputs are cut to (they
    keep their `keep_input` side, see `batching.input_ids`)."""
    max_new_tokens: int = 64
    method: str = "greedy"
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    num_beams: int = 4
    length_penalty: float = 0.6
    seed: int = 0
    batch_size: int = 8
    max_input_length: int | None = 512
    keep_input: str | None = None


def _start(model, params, batch: dict, max_new_tokens: int, expand: int):
    """Runs the prompt; returns (cache, next-token logits [b*expand, V], step function)."""
    cfg = model.config
    if cfg.family == "encoder_decoder":
        enc = batch["encoder_input_tokens"]
        enc_seg = batch.get("encoder_segment_ids", (enc > 0).astype(jnp.int32))
        encoded = model.apply({"params": params}, enc, enc_seg, method="encode")
        # Cross-attention keys/values once per input, not once per step (and beam).
        rows = jnp.repeat(jnp.arange(enc.shape[0]), expand)
        kv = jax.tree_util.tree_map(lambda x: x[rows], model.apply(
            {"params": params}, encoded, method="cross_kv"))
        enc_seg = enc_seg[rows]
        n = rows.shape[0]
        cache = init_cache(model, params, n, max_new_tokens + 1, enc.shape[1])
        ones = jnp.ones((n, 1), jnp.int32)

        def run(cache, tokens, position):
            logits, state = model.apply(
                {"params": params, "cache": cache}, None, enc_seg, tokens, ones,
                jnp.full((n, 1), position, jnp.int32), decode=True, method="decode",
                mutable=["cache"], cross_kv=kv)
            return logits[:, 0], state["cache"]

        logits, cache = run(cache, jnp.zeros((n, 1), jnp.int32), 0)
        return cache, logits, lambda c, tok, i: run(c, tok[:, None], i + 1)

    tokens, seg = batch["decoder_input_tokens"], batch["decoder_segment_ids"]
    b, lp = tokens.shape
    prompt_len = seg.sum(-1).astype(jnp.int32)
    cache = init_cache(model, params, b, lp + max_new_tokens)
    pos = jnp.broadcast_to(jnp.arange(lp, dtype=jnp.int32), (b, lp))
    prefix = (seg > 0) if cfg.prefix_lm else None
    logits, state = model.apply({"params": params, "cache": cache}, tokens, seg, pos, prefix,
                                decode=True, mutable=["cache"])
    last = logits[jnp.arange(b), jnp.maximum(prompt_len - 1, 0)]
    rows = jnp.repeat(jnp.arange(b), expand)
    cache, last, plen = gather_cache(state["cache"], rows), last[rows], prompt_len[rows]
    n = rows.shape[0]
    ones = jnp.ones((n, 1), jnp.int32)
    step_prefix = jnp.zeros((n, 1), jnp.bool_) if cfg.prefix_lm else None

    def step(c, tok, i):
        out, st = model.apply({"params": params, "cache": c}, tok[:, None], ones,
                              (plen + i)[:, None], step_prefix, decode=True, mutable=["cache"])
        return out[:, 0], st["cache"]

    return cache, last, step


def filter_logits(logits, temperature, top_k: int = 0, top_p: float = 1.0):
    """Logits / temperature with everything outside the top-k and the top-p nucleus at -inf."""
    logits = logits.astype(jnp.float32) / temperature
    if top_k > 0:
        kth = jax.lax.top_k(logits, top_k)[0][:, -1:]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    if top_p < 1.0:
        sorted_ = jnp.sort(logits, axis=-1)[:, ::-1]
        probs = jax.nn.softmax(sorted_, axis=-1)
        outside = (jnp.cumsum(probs, axis=-1) - probs) >= top_p  # mass before it already >= p
        smallest_kept = jnp.min(jnp.where(outside, jnp.inf, sorted_), axis=-1, keepdims=True)
        logits = jnp.where(logits < smallest_kept, -jnp.inf, logits)
    return logits


def _sample_loop(cache, logits, step, max_new_tokens, eos_id, choose):
    n = logits.shape[0]

    def cond(s):
        return (s[0] < max_new_tokens) & ~jnp.all(s[4])

    def body(s):
        i, cache, logits, out, done = s
        tok = jnp.where(done, 0, choose(logits, i).astype(jnp.int32))
        out = out.at[:, i].set(tok)
        done = done | (tok == eos_id)
        logits, cache = step(cache, tok, i)
        return i + 1, cache, logits, out, done

    init = (jnp.int32(0), cache, logits, jnp.zeros((n, max_new_tokens), jnp.int32),
            jnp.zeros((n,), jnp.bool_))
    return jax.lax.while_loop(cond, body, init)[3]


def _beam_loop(cache, logits, step, b, k, max_new_tokens, eos_id, alpha):
    v = logits.shape[-1]
    t = max_new_tokens
    penalty = lambda length: ((5.0 + length) / 6.0) ** alpha  # noqa: E731
    take = lambda x, idx: jnp.take_along_axis(  # noqa: E731
        x, idx.reshape(idx.shape + (1,) * (x.ndim - 2)), axis=1)

    def cond(s):
        i, _, _, _, alive_lp, _, fin_score = s
        best_future = alive_lp[:, 0] / jnp.maximum(penalty(i + 1.0), penalty(float(t)))
        return (i < t) & ~jnp.all(fin_score[:, 0] >= best_future)

    def body(s):
        i, cache, logits, alive_seq, alive_lp, fin_seq, fin_score = s
        logp = jax.nn.log_softmax(logits.astype(jnp.float32), -1).reshape(b, k, v)
        cand = (alive_lp[:, :, None] + logp).reshape(b, k * v)
        top_lp, top_idx = jax.lax.top_k(cand, 2 * k)
        beam, tok = top_idx // v, (top_idx % v).astype(jnp.int32)
        cand_seq = take(alive_seq, beam).at[:, :, i].set(tok)
        is_eos = tok == eos_id
        # Like Hugging Face: only EOS candidates ranked within the top k finish a hypothesis
        # (so one beam is exactly greedy); all EOS candidates leave the alive set.
        in_top_k = (jnp.arange(2 * k) < k)[None]
        new_fin = jnp.where(is_eos & in_top_k, top_lp / penalty(i + 1.0), -jnp.inf)
        fin_score, f_idx = jax.lax.top_k(jnp.concatenate([fin_score, new_fin], 1), k)
        fin_seq = take(jnp.concatenate([fin_seq, cand_seq], 1), f_idx)
        alive_lp, a_idx = jax.lax.top_k(jnp.where(is_eos, -jnp.inf, top_lp), k)
        alive_seq = take(cand_seq, a_idx)
        src = (jnp.arange(b)[:, None] * k + take(beam, a_idx)).reshape(-1)
        logits, cache = step(gather_cache(cache, src), take(tok, a_idx).reshape(-1), i)
        return i + 1, cache, logits, alive_seq, alive_lp, fin_seq, fin_score

    alive_lp = jnp.tile(jnp.asarray([0.0] + [-jnp.inf] * (k - 1), jnp.float32), (b, 1))
    seqs = jnp.zeros((b, k, t), jnp.int32)
    init = (jnp.int32(0), cache, logits, seqs, alive_lp, seqs,
            jnp.full((b, k), -jnp.inf, jnp.float32))
    _, _, _, alive_seq, _, fin_seq, fin_score = jax.lax.while_loop(cond, body, init)
    return jnp.where(jnp.isfinite(fin_score[:, :1]), fin_seq[:, 0], alive_seq[:, 0])


@functools.lru_cache(maxsize=None)
def _decoder(cfg, method: str, max_new_tokens: int, top_k: int, top_p: float, num_beams: int,
             eos_id: int):
    model = build_model(cfg)

    @jax.jit
    def run(params, batch, keys, temperature, length_penalty):
        expand = num_beams if method == "beam" else 1
        cache, logits, step = _start(model, params, batch, max_new_tokens, expand)
        if method == "beam":
            b = logits.shape[0] // num_beams
            return _beam_loop(cache, logits, step, b, num_beams, max_new_tokens, eos_id,
                              length_penalty)
        if method == "greedy":
            choose = lambda lg, i: jnp.argmax(lg, -1)  # noqa: E731
        else:
            def choose(lg, i):
                lg = filter_logits(lg, temperature, top_k, top_p)
                step_keys = jax.vmap(jax.random.fold_in, (0, None))(keys, i)
                return jax.vmap(jax.random.categorical)(step_keys, lg)
        return _sample_loop(cache, logits, step, max_new_tokens, eos_id, choose)

    return run


def decode_tokens(model, params, batch: dict, max_new_tokens: int, method: str = "greedy",
                  temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                  num_beams: int = 4, length_penalty: float = 0.6, rng=None,
                  eos_id: int = 1) -> jax.Array:
    """Generated ids [b, max_new_tokens] (EOS included, 0 after it) for a decoding batch.

    `rng`: a key for the batch, or one key per example ([b, 2] uint32) so that an example's
    sample does not depend on its batch-mates. `temperature=0` samples greedily.
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r}: use one of {', '.join(METHODS)}.")
    if method == "sample" and temperature <= 0:
        method = "greedy"
    batch = {k: jnp.asarray(v) for k, v in batch.items()}
    b = next(iter(batch.values())).shape[0]
    if rng is None:
        rng = jax.random.PRNGKey(0)
    keys = jnp.asarray(rng)
    if keys.ndim == 1:
        keys = jax.random.split(keys, b)
    fn = _decoder(model.config, method, int(max_new_tokens), int(top_k), float(top_p),
                  int(num_beams) if method == "beam" else 1, int(eos_id))
    return fn(params, batch, keys, jnp.float32(max(temperature, 1e-6)),
              jnp.float32(length_penalty))


@functools.lru_cache(maxsize=None)
def _full_forward(cfg):
    model = build_model(cfg)

    @jax.jit
    def forward(params, batch):
        if cfg.family == "encoder_decoder":
            dec = batch["decoder_input_tokens"]
            return model.apply({"params": params}, batch["encoder_input_tokens"], dec,
                               decoder_segment_ids=jnp.ones_like(dec))
        return model.apply({"params": params}, batch["decoder_input_tokens"],
                           batch["decoder_segment_ids"], None,
                           batch.get("decoder_causal_attention"))

    return forward


def greedy_no_cache(model, params, batch: dict, max_new_tokens: int,
                    eos_id: int = 1) -> np.ndarray:
    """Reference greedy decoding: the whole forward pass again for every new token."""
    forward = _full_forward(model.config)
    if model.config.family == "encoder_decoder":
        enc = jnp.asarray(batch["encoder_input_tokens"])
        b = enc.shape[0]
        dec = np.zeros((b, max_new_tokens), np.int32)
        get = lambda i: forward(params, {"encoder_input_tokens": enc,  # noqa: E731
                                         "decoder_input_tokens": jnp.asarray(dec)})[:, i]
    else:
        prompt = np.asarray(batch["decoder_input_tokens"])
        plen = np.asarray(batch["decoder_segment_ids"]).sum(-1).astype(np.int32)
        b, lp = prompt.shape
        seq = np.zeros((b, lp + max_new_tokens), np.int32)
        seq[:, :lp] = prompt
        idx = np.arange(lp + max_new_tokens)[None]

        def get(i):
            fb = {"decoder_input_tokens": jnp.asarray(seq),
                  "decoder_segment_ids": jnp.asarray((idx < (plen + i)[:, None]).astype(np.int32))}
            if model.config.prefix_lm:
                fb["decoder_causal_attention"] = jnp.asarray(idx < plen[:, None])
            logits = np.asarray(forward(params, fb))
            return logits[np.arange(b), plen + i - 1]
    out = np.zeros((b, max_new_tokens), np.int32)
    done = np.zeros((b,), bool)
    for i in range(max_new_tokens):
        tok = np.where(done, 0, np.argmax(np.asarray(get(i)), -1)).astype(np.int32)
        out[:, i] = tok
        done |= tok == eos_id
        if done.all():
            break
        if model.config.family == "encoder_decoder":
            if i + 1 < max_new_tokens:
                dec[:, i + 1] = tok
        else:
            seq[np.arange(b), plen + i] = tok
    return out


def decoding_batch(model, prompts: Sequence[Sequence[int]], batch: int,
                   length: int) -> dict[str, np.ndarray]:
    """A decoding batch (see the module docstring) from input ids."""
    tokens = pad_rows(prompts, batch, length)
    if model.config.family == "encoder_decoder":
        return {"encoder_input_tokens": tokens,
                "encoder_segment_ids": (np.arange(length)[None] <
                                        row_lengths(prompts, batch)[:, None]).astype(np.int32)}
    seg = (np.arange(length)[None] < row_lengths(prompts, batch)[:, None]).astype(np.int32)
    return {"decoder_input_tokens": tokens, "decoder_segment_ids": seg}


def generate(loaded: LoadedModel, inputs: Sequence[str],
             settings: DecodeSettings = DecodeSettings(), stats: dict | None = None,
             example_offset: int = 0) -> list[str]:
    """Generated text for each input. Sampling keys derive from (seed, example_offset + index),
    so an example's sample does not depend on batching or on where a resumed run starts.
    Each batch is split over `loaded.placement`'s data axes; `stats` counts truncations."""
    model, params, vocab, placement = (loaded.model, loaded.params, loaded.vocab,
                                       loaded.placement)
    s, family = settings, loaded.family
    prompts = [input_ids(vocab, x, family, s.max_input_length, stats, s.keep_input)
               for x in inputs]
    if family == "decoder_only":
        for i, p in enumerate(prompts):
            check_prompt(p, i)
    base = jax.random.PRNGKey(s.seed)
    out: list[str] = []
    for start in range(0, len(prompts), s.batch_size):
        p = prompts[start:start + s.batch_size]
        b = round_up(bucket_batch(len(p), s.batch_size), placement.batch_multiple)
        batch = decoding_batch(model, p, b, bucket_length(max(map(len, p)), s.max_input_length))
        ids = np.arange(b) + example_offset + start
        keys = np.asarray(jax.vmap(jax.random.fold_in, (None, 0))(base, jnp.asarray(ids)))
        batch, keys = placement.put_tree((batch, keys))
        with placement.context():
            tokens = placement.fetch_tree(decode_tokens(
                model, params, batch, s.max_new_tokens, s.method, s.temperature, s.top_k,
                s.top_p, s.num_beams, s.length_penalty, keys, vocab.eos_id))
        out += [vocab.decode(row) for row in tokens[:len(p)]]
    return out
