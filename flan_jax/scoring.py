"""Target log-likelihoods and rank classification for both model families (no TensorFlow).

Batches are built by `flan_jax.batching` (see its docstring for their formats).

Rank classification runs each input through the model once: the encoder output (or the
decoder-only prompt's KV cache) is computed per input and gathered per option, so only the
option tokens are recomputed. `rank_classify_naive` scores every (input, option) pair with a
full forward pass and is the reference for tests and benchmarks.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from flan_jax.batching import (bucket_batch, bucket_length, check_prompt, decoder_only_batch,
                               encdec_batch, input_ids, next_pow2, pad_rows, row_lengths,
                               target_ids)
from flan_jax.models import build_model, init_cache, layout
from flan_jax.placement import LoadedModel, Placement, resolve, round_up

SCORES = ("sum", "mean", "per_char")


# --- jitted model functions --------------------------------------------------------------------

def _token_logprobs(logits, tokens):
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    return jnp.take_along_axis(logp, tokens[..., None], axis=-1)[..., 0]


def gather_cache(cache, index):
    """The KV cache with its batch rows taken at `index` (either layer layout)."""
    return layout.gather_cache(cache, index)


@functools.lru_cache(maxsize=None)
def jitted_functions(cfg) -> dict[str, Any]:
    """The jitted scoring programs of one model config, built once per config: `loglik` and the
    option-ranking `rank_encdec` / `rank_decoder_only`."""
    model = build_model(cfg)
    prefix_lm = cfg.family == "decoder_only" and cfg.prefix_lm

    @jax.jit
    def loglik(params, batch):
        if cfg.family == "encoder_decoder":
            tgt = batch["decoder_target_tokens"]
            w = batch.get("decoder_loss_weights", tgt > 0).astype(jnp.float32)
            enc = batch["encoder_input_tokens"]
            logits = model.apply(
                {"params": params}, enc, batch["decoder_input_tokens"],
                encoder_segment_ids=batch.get("encoder_segment_ids", (enc > 0).astype(jnp.int32)),
                decoder_segment_ids=batch.get("decoder_segment_ids", (tgt > 0).astype(jnp.int32)))
            lp = _token_logprobs(logits, tgt) * w
        else:
            tokens = batch["decoder_input_tokens"]
            w = batch["decoder_loss_weights"].astype(jnp.float32)
            logits = model.apply({"params": params}, tokens, batch["decoder_segment_ids"], None,
                                 batch.get("decoder_causal_attention"))
            lp = _token_logprobs(logits[:, :-1], tokens[:, 1:]) * w[:, 1:]
            w = w[:, 1:]
        return lp.sum(-1), w.sum(-1).astype(jnp.int32)

    @jax.jit
    def rank_encdec(params, enc_tokens, enc_len, opt_tokens, opt_len, ex_idx):
        """Encode each input once; decode every option against its gathered encoding."""
        enc_seg = (jnp.arange(enc_tokens.shape[1])[None] < enc_len[:, None]).astype(jnp.int32)
        encoded = model.apply({"params": params}, enc_tokens, enc_seg, method="encode")
        kv = model.apply({"params": params}, encoded, method="cross_kv")  # once per input
        kv = jax.tree_util.tree_map(lambda x: x[ex_idx], kv)
        valid = jnp.arange(opt_tokens.shape[1])[None] < opt_len[:, None]
        dec_in = jnp.pad(opt_tokens[:, :-1], ((0, 0), (1, 0)))
        logits = model.apply({"params": params}, None, enc_seg[ex_idx], dec_in,
                             valid.astype(jnp.int32), method="decode", cross_kv=kv)
        lp = _token_logprobs(logits, opt_tokens) * valid
        return lp.sum(-1), valid.sum(-1)

    @jax.jit
    def rank_decoder_only(params, prompt_tokens, prompt_len, opt_tokens, opt_len, ex_idx):
        """Prefill each prompt once into the KV cache; feed every option as one chunk."""
        b, lp_len = prompt_tokens.shape
        m, lo = opt_tokens.shape
        cache = init_cache(model, params, b, lp_len + lo)
        idx = jnp.arange(lp_len)
        seg = (idx[None] < prompt_len[:, None]).astype(jnp.int32)
        pos = jnp.broadcast_to(idx, (b, lp_len)).astype(jnp.int32)
        prefix = jnp.ones((b, lp_len), jnp.bool_) if prefix_lm else None
        logits, state = model.apply({"params": params, "cache": cache}, prompt_tokens, seg, pos,
                                    prefix, decode=True, mutable=["cache"])
        last = logits[jnp.arange(b), jnp.maximum(prompt_len - 1, 0)]  # predicts option token 0
        cache = gather_cache(state["cache"], ex_idx)
        valid = jnp.arange(lo)[None] < opt_len[:, None]
        opt_pos = (prompt_len[ex_idx][:, None] + jnp.arange(lo)[None]).astype(jnp.int32)
        opt_prefix = jnp.zeros((m, lo), jnp.bool_) if prefix_lm else None
        opt_logits, _ = model.apply({"params": params, "cache": cache}, opt_tokens,
                                    valid.astype(jnp.int32), opt_pos, opt_prefix, decode=True,
                                    mutable=["cache"])
        pred = jnp.concatenate([last[ex_idx][:, None], opt_logits[:, :-1]], axis=1)
        lp = _token_logprobs(pred, opt_tokens) * valid
        return lp.sum(-1), valid.sum(-1)

    return {"loglik": loglik, "rank_encdec": rank_encdec,
            "rank_decoder_only": rank_decoder_only}


def target_log_likelihoods(model, params, batch: dict,
                           placement: Placement | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(summed log-likelihood [b], number of scored tokens [b]) of a scoring batch, its rows
    split over `placement`'s data axes (None: one device)."""
    placement = resolve(placement)
    batch = placement.put_tree({k: np.asarray(v) for k, v in batch.items()})
    with placement.context():
        return placement.fetch_tree(jitted_functions(model.config)["loglik"](params, batch))


# --- text-level scoring ------------------------------------------------------------------------

def score_texts(loaded: LoadedModel, inputs: Sequence[str], targets: Sequence[str],
                batch_size: int = 16, max_input_length: int = 512, max_target_length: int = 128,
                stats: dict | None = None,
                keep_input: str | None = None) -> list[tuple[float, int]]:
    """(summed target log-likelihood, number of target tokens) for each (input, target), on
    `loaded.placement`."""
    model, params, vocab, placement = (loaded.model, loaded.params, loaded.vocab,
                                       loaded.placement)
    if len(inputs) != len(targets):
        raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets.")
    family = model.config.family
    prompts = [input_ids(vocab, x, family, max_input_length, stats, keep_input)
               for x in inputs]
    tgts = [target_ids(vocab, t, family, max_target_length, stats) for t in targets]
    if family == "decoder_only":
        for i, p in enumerate(prompts):
            check_prompt(p, i)
    out: list[tuple[float, int]] = []
    for start in range(0, len(prompts), batch_size):
        p, t = prompts[start:start + batch_size], tgts[start:start + batch_size]
        b = round_up(bucket_batch(len(p), batch_size), placement.batch_multiple)
        if family == "encoder_decoder":
            batch = encdec_batch(p, t, b, bucket_length(max(map(len, p)), max_input_length),
                                 bucket_length(max(map(len, t)), max_target_length))
        else:
            n = max(len(x) + len(y) for x, y in zip(p, t))
            batch = decoder_only_batch(p, t, b, bucket_length(n, max_input_length +
                                                              max_target_length),
                                       model.config.prefix_lm)
        ll, nt = target_log_likelihoods(model, params, batch, placement)
        out += [(float(ll[i]), int(nt[i])) for i in range(len(p))]
    return out


# --- rank classification -----------------------------------------------------------------------

@dataclasses.dataclass
class RankResult:
    scores: list[float]          # per option, by the chosen score
    prediction_index: int        # argmax of scores (first on ties)
    log_likelihoods: list[float]  # summed per option
    num_tokens: list[int]


DEFAULT_OPTION_TOKENS_PER_CALL = 16384


@dataclasses.dataclass(frozen=True)
class RankSettings:
    """How `rank_classify` scores options: `score` (one of SCORES: summed log-likelihood, its
    mean per token, or per character of the option), inputs per step, the lengths inputs and
    options are cut to (inputs keep their `keep_input` side, see `batching.input_ids`), and the
    most option tokens one device call takes."""
    score: str = "sum"
    batch_size: int = 8
    max_input_length: int | None = 512
    max_option_length: int | None = 64
    option_tokens_per_call: int = DEFAULT_OPTION_TOKENS_PER_CALL
    keep_input: str | None = None


def _finish(option_texts: Sequence[str], ll: Sequence[float], nt: Sequence[int],
            score: str) -> RankResult:
    if score == "sum":
        scores = list(ll)
    elif score == "mean":
        scores = [a / max(n, 1) for a, n in zip(ll, nt)]
    else:
        scores = [a / max(len(o), 1) for a, o in zip(ll, option_texts)]
    return RankResult([float(s) for s in scores], int(np.argmax(scores)),
                      [float(a) for a in ll], [int(n) for n in nt])


def _prepare_rank(loaded: LoadedModel, inputs: Sequence[str],
                  options: Sequence[Sequence[str]], settings: RankSettings,
                  stats: dict | None):
    if settings.score not in SCORES:
        raise ValueError(f"score={settings.score!r}: use one of {', '.join(SCORES)}.")
    if len(inputs) != len(options):
        raise ValueError(f"{len(inputs)} inputs but {len(options)} option lists.")
    for i, opts in enumerate(options):
        if not opts:
            raise ValueError(f"example {i} has no options to rank.")
    family, vocab = loaded.family, loaded.vocab
    prompts = [input_ids(vocab, x, family, settings.max_input_length, stats, settings.keep_input)
               for x in inputs]
    if family == "decoder_only":
        for i, p in enumerate(prompts):
            check_prompt(p, i)
    opt_ids = [[target_ids(vocab, o, family, settings.max_option_length, stats) for o in opts]
               for opts in options]
    return prompts, opt_ids


def rank_classify(loaded: LoadedModel, inputs: Sequence[str], options: Sequence[Sequence[str]],
                  settings: RankSettings = RankSettings(), stats: dict | None = None,
                  call_shapes: set | None = None) -> list[RankResult]:
    """Scores every option of every input, running each input through the model once.

    `settings.batch_size` counts inputs per step; their options (any number each) are flattened
    with an example index and padded to a power of two. At most `option_tokens_per_call` option
    tokens (rows x padded length) go into one device call, so memory stays flat however many
    options an input has (more options take more calls, each re-running its inputs).
    Inputs and options are split over `loaded.placement`'s data axes. `stats` counts
    truncations; `call_shapes` collects (inputs, input length, options, option length) of every
    device call.
    """
    prompts, opt_ids = _prepare_rank(loaded, inputs, options, settings, stats)
    fn = jitted_functions(loaded.model.config)[
        "rank_encdec" if loaded.family == "encoder_decoder" else "rank_decoder_only"]
    params, placement, score = loaded.params, loaded.placement, settings.score
    batch_size, max_input_length = settings.batch_size, settings.max_input_length
    max_option_length = settings.max_option_length
    multiple = placement.batch_multiple
    results: list[RankResult] = []
    for start in range(0, len(prompts), batch_size):
        p = prompts[start:start + batch_size]
        o = opt_ids[start:start + batch_size]
        flat = [ids for opts in o for ids in opts]
        owner = np.asarray([i for i, opts in enumerate(o) for _ in opts], np.int32)
        b = round_up(bucket_batch(len(p), batch_size), multiple)
        lp_len = bucket_length(max(map(len, p)), max_input_length)
        lo = bucket_length(max(map(len, flat)), max_option_length)
        rows = max(1, int(settings.option_tokens_per_call) // lo)
        rows = round_up(1 << (rows.bit_length() - 1), multiple)  # a power of two (x multiple)
        prompt_batch = placement.put_tree((pad_rows(p, b, lp_len), row_lengths(p, b)))
        ll, nt = np.zeros(len(flat)), np.zeros(len(flat), np.int64)
        for c in range(0, len(flat), rows):
            chunk = flat[c:c + rows]
            m = round_up(min(next_pow2(len(chunk)), rows), multiple)
            ex_idx = np.zeros((m,), np.int32)
            ex_idx[:len(chunk)] = owner[c:c + len(chunk)]
            if call_shapes is not None:
                call_shapes.add((b, lp_len, m, lo))
            with placement.context():
                out = fn(params, *prompt_batch, *placement.put_tree(
                    (pad_rows(chunk, m, lo), row_lengths(chunk, m), ex_idx)))
            got_ll, got_nt = placement.fetch_tree(out)
            ll[c:c + len(chunk)], nt[c:c + len(chunk)] = got_ll[:len(chunk)], got_nt[:len(chunk)]
        k = 0
        for j, opts in enumerate(o):
            n = len(opts)
            results.append(_finish(options[start + j], ll[k:k + n], nt[k:k + n], score))
            k += n
    return results


def rank_classify_naive(loaded: LoadedModel, inputs: Sequence[str],
                        options: Sequence[Sequence[str]],
                        settings: RankSettings = RankSettings(),
                        stats: dict | None = None) -> list[RankResult]:
    """Reference: a full forward pass per (input, option) pair, the input recomputed each time
    (`settings.option_tokens_per_call` does not apply)."""
    _prepare_rank(loaded, inputs, options, settings, None)
    pair_inputs = [x for x, opts in zip(inputs, options) for _ in opts]
    pair_targets = [o for opts in options for o in opts]
    scored = score_texts(loaded, pair_inputs, pair_targets, settings.batch_size,
                         settings.max_input_length, settings.max_option_length, None,
                         settings.keep_input)
    results, k = [], 0
    for opts in options:
        n = len(opts)
        results.append(_finish(opts, [s for s, _ in scored[k:k + n]],
                               [c for _, c in scored[k:k + n]], settings.score))
        k += n
    if stats is not None:  # count as the shared path does: once per input and option
        _prepare_rank(loaded, inputs, options, settings, stats)
    return results
