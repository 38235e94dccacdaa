"""Tokenized examples -> the model's batch features, in NumPy, as seqio's feature converters do.

The cache path (`cache_reader`) feeds examples read from ArrayRecord shards through these
functions instead of tf.data; the rules are seqio's (`EncDecFeatureConverter` and
`DecoderFeatureConverter`, pack or pad, `use_custom_packing_ops=False`), so a batch built here
equals the seqio path's batch of the same examples token for token
(`tests/test_packing.py` checks it against seqio itself):

- packing is greedy over windows of `max(lengths)` consecutive examples: an example joins the
  current row while every feature still fits, else the row is written and a new one starts;
  each window ends with its last row written;
- an example's length is its number of non-zero tokens, after trimming to the feature length;
- segment ids count rows' examples from 1 (0 on padding), positions restart at 0 per example;
- decoder-only models see `inputs + targets` as one sequence (prefix LM): the loss covers the
  targets, and `decoder_causal_attention` covers the inputs plus one position.

`Packer` keeps the partly filled row between calls, so a stream of examples becomes a stream of
rows; its state (examples taken in the current window) is part of the data checkpoint.
"""

from __future__ import annotations

from typing import Iterator, Mapping

import numpy as np

Example = Mapping[str, np.ndarray]


def model_lengths(family: str, task_lengths: Mapping[str, int]) -> dict[str, int]:
    """The packed/padded length of each sequence a row is built from (task feature -> length)."""
    if family == "encoder_decoder":
        return {"inputs": task_lengths["inputs"], "targets": task_lengths["targets"]}
    if "inputs" in task_lengths:  # prefix LM: one sequence of inputs + targets
        return {"targets": task_lengths["inputs"] + task_lengths["targets"]}
    return {"targets": task_lengths["targets"]}


def _trim(example: Example, family: str, task_lengths: Mapping[str, int]) -> dict:
    """One example as the sequences that get packed (trimmed to their task lengths)."""
    trimmed = {k: np.asarray(example[k], np.int32)[:task_lengths[k]] for k in task_lengths}
    if family == "encoder_decoder" or "inputs" not in task_lengths:
        return trimmed
    inputs, targets = trimmed["inputs"], trimmed["targets"]
    if targets.size == 0:  # seqio keeps one (padding) target so the example is not empty
        targets = np.zeros(1, np.int32)
    width = inputs.size
    total = width + targets.size
    # seqio marks an empty prefix with -1 while packing (0 would read as padding)
    return {"targets": np.concatenate([inputs, targets]),
            "inputs_width": np.full(total, width if width else -1, np.int32),
            "inputs_width_add_pos": np.full(total, width + 1, np.int32)}


class Packer:
    """Packs a stream of examples into rows of fixed length, one window at a time."""

    def __init__(self, family: str, task_lengths: Mapping[str, int], pack: bool = True,
                 window_position: int = 0):
        self.family, self.task_lengths, self.pack = family, dict(task_lengths), pack
        self.lengths = model_lengths(family, task_lengths)
        if family != "encoder_decoder" and "inputs" in task_lengths:
            total = self.lengths["targets"]
            self.lengths.update(inputs_width=total, inputs_width_add_pos=total)
        self.window = max(self.lengths.values())
        self.window_position = window_position  # examples of the current window already taken
        self._row: list[dict] = []

    def row_is_empty(self) -> bool:
        return not self._row

    def examples_in_row(self) -> int:
        """Examples in the row being filled."""
        return len(self._row)

    def add(self, example: Example) -> list[dict]:
        """Takes one example; returns the rows (0, 1 or 2) it completes."""
        seqs = _trim(example, self.family, self.task_lengths)
        if not self.pack:
            return [_pad_row([seqs], self.lengths, packed=False)]
        # like seqio: the length is the count of non-zero tokens
        seqs = {k: v[:int(np.count_nonzero(v))] for k, v in seqs.items()}
        out = []
        if self._row and not all(sum(s[k].size for s in self._row) + seqs[k].size
                                 <= self.lengths[k] for k in self.lengths):
            out.append(self._flush())
        self._row.append(seqs)
        self.window_position += 1
        if self.window_position == self.window:  # the window ends: its last row is written
            out.append(self._flush())
            self.window_position = 0
        return out

    def _flush(self) -> dict:
        row = _pad_row(self._row, self.lengths, packed=True)
        self._row = []
        return row

    def rows(self, examples) -> Iterator[dict]:
        """Model features of each row, for an iterable of examples (the last window flushed)."""
        for example in examples:
            for row in self.add(example):
                yield self.features(row)
        if self._row:
            yield self.features(self._flush())

    def features(self, row: dict) -> dict[str, np.ndarray]:
        """The model features of one packed or padded row (seqio's names and values)."""
        return to_model_features(row, self.family, "inputs" in self.task_lengths, self.pack)


def _pad_row(seqs: list[dict], lengths: Mapping[str, int], packed: bool) -> dict:
    row = {}
    for k, length in lengths.items():
        tokens = np.zeros(length, np.int32)
        parts = [s[k] for s in seqs]
        flat = np.concatenate(parts) if parts else np.zeros(0, np.int32)
        tokens[:flat.size] = flat
        row[k] = tokens
        if packed:
            positions = np.zeros(length, np.int32)
            if flat.size:
                positions[:flat.size] = np.concatenate([np.arange(p.size) for p in parts])
            row[k + "_positions"] = positions
            # seqio: a new segment wherever the position is 0, and 0 on padding tokens
            row[k + "_segment_ids"] = (np.cumsum(positions == 0) * (tokens != 0)).astype(np.int32)
    return row


def _autoregressive_inputs(targets: np.ndarray, segment_ids: np.ndarray | None) -> np.ndarray:
    """Targets shifted right by one (0 first), with 0 at the start of each packed segment."""
    inputs = np.zeros_like(targets)
    inputs[1:] = targets[:-1]
    if segment_ids is not None:
        previous = np.zeros_like(segment_ids)
        previous[1:] = segment_ids[:-1]
        inputs = inputs * (segment_ids == previous)
    return inputs.astype(np.int32)


def to_model_features(row: dict, family: str, prefix_lm: bool, pack: bool) -> dict:
    targets = row["targets"]
    segments = row.get("targets_segment_ids")
    out = {"decoder_target_tokens": targets,
           "decoder_input_tokens": _autoregressive_inputs(targets, segments),
           "decoder_loss_weights": (targets != 0).astype(np.int32)}
    if family == "encoder_decoder":
        out["encoder_input_tokens"] = row["inputs"]
        if pack:
            out.update(encoder_segment_ids=row["inputs_segment_ids"],
                       encoder_positions=row["inputs_positions"])
    if pack:
        out.update(decoder_segment_ids=segments, decoder_positions=row["targets_positions"])
    if family != "encoder_decoder" and prefix_lm:
        positions = row["targets_positions"] if pack else np.arange(targets.size)
        width = np.where(row["inputs_width"] == -1, 0, row["inputs_width"])
        out["decoder_causal_attention"] = (positions < row["inputs_width_add_pos"]).astype(
            np.int32)
        in_inputs = positions < width
        out["decoder_loss_weights"] = np.logical_xor(
            in_inputs, out["decoder_loss_weights"].astype(bool)).astype(np.int32)
    return out
