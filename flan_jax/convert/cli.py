"""`flan-jax convert hf --src DIR --dst DIR [--overwrite]`."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="flan-jax convert")
    sub = parser.add_subparsers(dest="source", required=True)
    hf = sub.add_parser("hf", help="a Hugging Face T5/Flan-T5/mT5 or Llama checkpoint directory")
    hf.add_argument("--src", required=True, help="directory with config.json and weights")
    hf.add_argument("--dst", required=True, help="flan-jax model directory to write")
    hf.add_argument("--overwrite", action="store_true", help="replace a non-empty --dst")
    args = parser.parse_args(argv)

    from flan_jax.convert.hf import ConversionError, convert

    try:
        cfg = convert(args.src, args.dst, overwrite=args.overwrite)
    except ConversionError as e:
        print(f"flan-jax convert: {e}", file=sys.stderr)
        return 2
    from flan_jax.checkpoints import MODEL_GIN

    print(f"Wrote {args.dst} ({cfg.family}, {cfg.num_encoder_layers}+{cfg.num_decoder_layers} "
          f"layers, emb {cfg.emb_dim}, vocab {cfg.vocab_size}); model config: "
          f"{args.dst}/{MODEL_GIN}")
    return 0
