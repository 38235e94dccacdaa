"""`flan-jax convert hf --src HF_DIR --dst MODEL_DIR [--dtype D] [--overwrite]` (import) and
`flan-jax convert to-hf --src MODEL_DIR --dst HF_DIR [--max_shard_size N]` (export)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="flan-jax convert")
    sub = parser.add_subparsers(dest="source", required=True)
    hf = sub.add_parser("hf", help="import a Hugging Face T5/Flan-T5/mT5 or Llama checkpoint")
    hf.add_argument("--src", required=True, help="directory (or gs:// URL) with config.json "
                    "and weights")
    hf.add_argument("--dst", required=True, help="flan-jax model directory to write")
    hf.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default=None,
                    help="cast the parameters (default: keep the checkpoint's dtype)")
    hf.add_argument("--overwrite", action="store_true", help="replace a non-empty --dst")
    to_hf = sub.add_parser("to-hf", help="export a flan-jax model directory (converted, trained "
                           "or prompt-tuned) as a Hugging Face checkpoint")
    to_hf.add_argument("--src", required=True, help="flan-jax model directory")
    to_hf.add_argument("--dst", required=True, help="Hugging Face directory to write")
    to_hf.add_argument("--max_shard_size", default="5GB",
                       help="split model.safetensors into shards above this size (e.g. 2GB, "
                       "500MB; default 5GB)")
    to_hf.add_argument("--overwrite", action="store_true", help="replace a non-empty --dst")
    args = parser.parse_args(argv)
    if args.source == "to-hf":
        return _to_hf(args)

    from flan_jax.convert.hf import ConversionError, convert

    try:
        cfg = convert(args.src, args.dst, overwrite=args.overwrite, dtype=args.dtype)
    except ConversionError as e:
        print(f"flan-jax convert: {e}", file=sys.stderr)
        return 2
    from flan_jax.checkpoints import MODEL_GIN

    print(f"Wrote {args.dst} ({cfg.family}, {cfg.num_encoder_layers}+{cfg.num_decoder_layers} "
          f"layers, emb {cfg.emb_dim}, vocab {cfg.vocab_size}, {cfg.param_dtype}); model "
          f"config: {args.dst}/{MODEL_GIN}")
    return 0


def _to_hf(args) -> int:
    from flan_jax.convert.hf import ConversionError
    from flan_jax.convert.to_hf import export, parse_size

    try:
        written = export(args.src, args.dst, max_shard_bytes=parse_size(args.max_shard_size),
                         overwrite=args.overwrite)
    except ConversionError as e:
        print(f"flan-jax convert to-hf: {e}", file=sys.stderr)
        return 2
    print(f"Wrote {args.dst}: {', '.join(written)}")
    return 0
