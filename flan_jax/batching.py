"""Text -> token ids -> padded, length-bucketed batches, shared by scoring, decoding and infer
(no TensorFlow); and which batch features each model family takes.

Batch formats (int32 arrays, right-padded with 0):

Encoder-decoder (seqio's unpacked EncDecFeatureConverter layout):
  encoder_input_tokens   [b, Li]  input ids, 0 = padding
  decoder_target_tokens  [b, Lt]  target ids (ending in EOS, see `target_ids`), 0 = padding
  decoder_input_tokens   [b, Lt]  targets shifted right with 0 as the start token
  decoder_loss_weights   [b, Lt]  optional; defaults to decoder_target_tokens > 0

Decoder-only (inputs and targets in one row; the logits at t predict token t+1):
  decoder_input_tokens     [b, L]  [bos] + input ids + target ids, then padding
  decoder_segment_ids      [b, L]  1 on real tokens, 0 on padding
  decoder_loss_weights     [b, L]  1 on the target tokens (the ones scored), 0 elsewhere;
                                   position 0 has nothing to predict it and is never scored
  decoder_causal_attention [b, L]  optional, prefix LMs: 1 on [bos] + inputs

Conventions (`input_ids`, `target_ids`): encoder-decoder inputs and targets end in EOS as
seqio's `add_eos=True` makes them; decoder-only prompts start with the vocabulary's BOS (when it
has one) and targets are plain continuations (as lm-evaluation-harness scores them).
Inputs longer than `max_input_length` are truncated, by default keeping the start for
encoder-decoder (as seqio does in training) and the end next to the target for decoder-only (the
BOS stays); `keep="end"` keeps the end for both, as evaluation does so that an instruction's
question and OPTIONS, which come last, survive. Targets keep their start. High-level functions
count truncations in an optional `stats` dict.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

# Model inputs by family; anything else a feature converter emits (loss weights) is for the loss.
MODEL_FEATURES = {
    "encoder_decoder": ("encoder_input_tokens", "decoder_input_tokens", "decoder_target_tokens",
                        "encoder_segment_ids", "decoder_segment_ids", "encoder_positions",
                        "decoder_positions"),
    "decoder_only": ("decoder_input_tokens", "decoder_segment_ids", "decoder_positions",
                     "decoder_causal_attention"),
}


def model_kwargs(batch: Mapping[str, Any], family: str) -> dict[str, Any]:
    """The features of `batch` that the model of `family` takes as keyword arguments."""
    return {k: batch[k] for k in MODEL_FEATURES[family] if k in batch}


def next_pow2(n: int, minimum: int = 1) -> int:
    n = max(int(n), minimum, 1)
    return 1 << (n - 1).bit_length()


def bucket_length(n: int, cap: int | None = None, minimum: int = 8) -> int:
    """A padded length >= n: the next power of two (at least `minimum`), capped at `cap`."""
    b = next_pow2(n, minimum)
    if cap is not None:
        b = min(b, max(cap, n))
    return b


def bucket_batch(n: int, batch_size: int) -> int:
    """A padded batch size >= n: the next power of two, capped at `batch_size`."""
    return max(n, min(next_pow2(n), batch_size))


def count(stats: dict | None, key: str, n: int = 1) -> None:
    if stats is not None and n:
        stats[key] = stats.get(key, 0) + n


KEEP = ("start", "end")


def input_ids(vocab, text: str, family: str, max_length: int | None,
              stats: dict | None = None, keep: str | None = None) -> list[int]:
    """Model input ids: encoder inputs (+ EOS), or the decoder-only prompt ([bos] + input).
    Too long, they keep their `keep` side ("start" or "end"; default: the start for
    encoder-decoder, the end for decoder-only); EOS and BOS always stay."""
    if keep is None:
        keep = "end" if family == "decoder_only" else "start"
    if keep not in KEEP:
        raise ValueError(f"keep={keep!r}: use one of {', '.join(KEEP)}.")
    ids = list(vocab.encode(text))
    bos = getattr(vocab, "bos_id", None)
    if family == "decoder_only" and bos is not None and (not ids or ids[0] != bos):
        ids = [bos] + ids
    if family == "encoder_decoder":  # seqio's add_eos=True, as Flan-T5 was trained
        ids.append(vocab.eos_id)
    if max_length is not None and len(ids) > max_length:
        count(stats, "inputs_truncated")
        head = [ids[0]] if family == "decoder_only" and bos is not None and ids[0] == bos \
            else []
        if keep == "end":  # next to the continuation (or the final EOS); BOS stays
            ids = head + ids[len(ids) - (max_length - len(head)):]
        else:  # the start and the final EOS (decoder-only: BOS and the start)
            ids = ids[:max_length - 1] + [ids[-1]] if family == "encoder_decoder" else \
                ids[:max_length]
    return ids


def target_ids(vocab, text: str, family: str, max_length: int | None,
               stats: dict | None = None) -> list[int]:
    """Target/option ids: + EOS for encoder-decoder, a plain continuation for decoder-only."""
    ids = list(vocab.encode(text))
    bos = getattr(vocab, "bos_id", None)
    if bos is not None and ids and ids[0] == bos:  # SentencePieceVocab(add_bos) adds it
        ids = ids[1:]
    if family == "encoder_decoder":
        ids.append(vocab.eos_id)
    if max_length is not None and len(ids) > max_length:
        count(stats, "targets_truncated")
        ids = ids[:max_length]
    return ids


def pad_rows(rows: Sequence[Sequence[int]], batch: int, length: int) -> np.ndarray:
    out = np.zeros((batch, length), np.int32)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def row_lengths(rows: Sequence[Sequence[int]], batch: int) -> np.ndarray:
    out = np.zeros((batch,), np.int32)
    out[:len(rows)] = [len(r) for r in rows]
    return out


def encdec_batch(inputs: Sequence[Sequence[int]], targets: Sequence[Sequence[int]],
                 batch: int | None = None, input_length: int | None = None,
                 target_length: int | None = None) -> dict[str, np.ndarray]:
    """An encoder-decoder scoring batch (see the module docstring) from token ids."""
    batch = batch or len(inputs)
    input_length = input_length or max(1, max(map(len, inputs)))
    target_length = target_length or max(1, max(map(len, targets)))
    tgt = pad_rows(targets, batch, target_length)
    dec_in = np.zeros_like(tgt)
    dec_in[:, 1:] = tgt[:, :-1]
    return {"encoder_input_tokens": pad_rows(inputs, batch, input_length),
            "decoder_input_tokens": dec_in, "decoder_target_tokens": tgt,
            "decoder_loss_weights": (tgt > 0).astype(np.int32)}


def decoder_only_batch(prompts: Sequence[Sequence[int]], targets: Sequence[Sequence[int]],
                       batch: int | None = None, length: int | None = None,
                       prefix_lm: bool = False) -> dict[str, np.ndarray]:
    """A decoder-only scoring batch (see the module docstring) from prompt and target ids."""
    batch = batch or len(prompts)
    length = length or max(len(p) + len(t) for p, t in zip(prompts, targets))
    out = {k: np.zeros((batch, length), np.int32) for k in
           ("decoder_input_tokens", "decoder_segment_ids", "decoder_loss_weights")}
    if prefix_lm:
        out["decoder_causal_attention"] = np.zeros((batch, length), np.int32)
    for i, (p, t) in enumerate(zip(prompts, targets)):
        n = len(p) + len(t)
        out["decoder_input_tokens"][i, :n] = list(p) + list(t)
        out["decoder_segment_ids"][i, :n] = 1
        out["decoder_loss_weights"][i, len(p):n] = 1
        if prefix_lm:
            out["decoder_causal_attention"][i, :len(p)] = 1
    out["decoder_loss_weights"][:, 0] = 0
    return out


def check_prompt(ids: Sequence[int], index: int) -> None:
    if not ids:
        raise ValueError(f"example {index}: a decoder-only model needs a non-empty input or a "
                         "vocabulary with a BOS id to condition the first target token on.")
