"""`bench memory`: what the train step keeps for its backward pass, read from its jaxpr.

For each remat policy and attention path, the step's loss (as `flan_jax.train_step` builds it)
is traced abstractly with `jax.eval_shape`-style shapes, so a 1B model needs no memory and the
figures are exact and independent of the backend. Reported per row: the bytes of every
residual the backward pass reads (parameters, which live anyway, excluded), the largest saved
tensors, any saved tensor with a batch axis and two sequence-length axes ("quadratic", e.g. the
attention probabilities), and any scatter inside a scanned layer's forward or backward pass.

Shapes default to the model's family (`--shape` overrides: BATCH x LENGTH for decoder-only,
BATCH x INPUTS+TARGETS for encoder-decoder); encoder-decoder rows are packed four examples a row
as the GPU benchmark packs them. Layers are scanned (`scan_layers=True`), as the accelerator
configs run them.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Sequence

from flan_jax.bench.common import say, synthetic_batch

GIB = 2 ** 30
# (batch, lengths, examples per row) by family: the accelerator benchmark's shapes
FULL_SHAPES = {"decoder_only": (4, {"inputs": 2048, "targets": 0}, 1),
               "encoder_decoder": (128, {"inputs": 512, "targets": 128}, 4)}
QUICK_SHAPES = {"decoder_only": (2, {"inputs": 48, "targets": 0}, 1),
                "encoder_decoder": (2, {"inputs": 40, "targets": 24}, 2)}
AUDITED_IMPLS = ("einsum", "xla")  # cudnn and splash trace only on their own backends
TOP = 5


def parse_shape(text: str, family: str) -> tuple[int, dict[str, int]]:
    """'4x2048' or '128x512+128' -> (batch, {"inputs": ..., "targets": ...})."""
    from flan_jax.errors import UserError

    m = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*(?:\+\s*(\d+))?\s*", text or "")
    if not m:
        raise UserError(f"--shape={text!r}: write BATCHxLENGTH (decoder-only) or "
                        "BATCHxINPUTS+TARGETS (encoder-decoder), e.g. 4x2048 or 128x512+128.")
    batch, inputs, targets = int(m[1]), int(m[2]), int(m[3] or 0)
    if family == "encoder_decoder" and not targets:
        raise UserError(f"--shape={text!r}: an encoder-decoder needs INPUTS+TARGETS, "
                        "e.g. 128x512+128.")
    return batch, {"inputs": inputs, "targets": targets}


def _loss_fn(model, loss_chunk_size: int):
    """The train step's micro-batch loss (no dropout), as `make_train_step` builds it."""
    from flan_jax import losses
    from flan_jax.batching import model_kwargs
    from flan_jax.models import output_head_kernel

    family = model.config.family

    def loss(params, batch):
        out = model.apply({"params": params}, **model_kwargs(batch, family),
                          return_hidden=loss_chunk_size > 0)
        targets, weights = batch["decoder_target_tokens"], batch["decoder_loss_weights"]
        if loss_chunk_size > 0:
            sums = losses.chunked_token_loss_sums(out, output_head_kernel(model.config, params),
                                                  targets, weights, 0.0, loss_chunk_size)
        else:
            sums = losses.token_loss_sums(out, targets, weights, 0.0)
        return sums["loss_sum"]

    return loss


def _specs(cfg, batch: int, lengths: dict[str, int], examples_per_row: int):
    import flax.linen as nn
    import jax

    from flan_jax.models import abstract_params, build_model

    model = build_model(cfg)
    params = nn.meta.unbox(abstract_params(model))
    data = synthetic_batch(cfg.family, batch, lengths, cfg.vocab_size,
                           examples_per_row=examples_per_row)
    data = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in data.items()}
    return model, params, data


def saved_tensors(cfg, batch: int, lengths: dict[str, int], examples_per_row: int = 1,
                  loss_chunk_size: int = 0) -> list[dict]:
    """Every residual of the loss's backward pass that is not a parameter, largest first:
    {"bytes", "shape", "dtype", "source"}."""
    from jax._src.ad_checkpoint import saved_residuals

    model, params, data = _specs(cfg, batch, lengths, examples_per_row)
    out = []
    for aval, source in saved_residuals(_loss_fn(model, loss_chunk_size), params, data):
        if source.startswith("from the argument") or not getattr(aval, "shape", None):
            continue  # parameters and the batch live anyway; scalars are noise
        out.append({"bytes": int(aval.size) * aval.dtype.itemsize, "shape": tuple(aval.shape),
                    "dtype": str(aval.dtype), "source": _short_source(source)})
    return sorted(out, key=lambda r: -r["bytes"])


def _short_source(source: str) -> str:
    source = re.sub(r"/\S*/site-packages/", "", source)
    return re.sub(r"/\S*/(flan_jax/)", r"\1", source)


def scatters_in_scans(cfg, batch: int, lengths: dict[str, int], examples_per_row: int = 1,
                      loss_chunk_size: int = 0) -> list[str]:
    """Scatter primitives inside any `scan` of the gradient's jaxpr ('name f32[...]')."""
    import jax

    model, params, data = _specs(cfg, batch, lengths, examples_per_row)
    jaxpr = jax.make_jaxpr(jax.grad(_loss_fn(model, loss_chunk_size)))(params, data)
    return scatters_in_scan_bodies(jaxpr.jaxpr)


def _sub_jaxprs(eqn) -> list:
    import jax.extend.core as jex

    subs = []
    for value in eqn.params.values():
        for v in (value if isinstance(value, (tuple, list)) else (value,)):
            if isinstance(v, jex.ClosedJaxpr):
                subs.append(v.jaxpr)
            elif isinstance(v, jex.Jaxpr):
                subs.append(v)
    return subs


def scatters_in_scan_bodies(jaxpr) -> list[str]:
    """Scatter primitives ('name f32[...]') inside a `scan` anywhere in `jaxpr` (a jax Jaxpr)."""
    found: list[str] = []
    _walk(jaxpr, in_scan=False, found=found)
    return found


def _walk(jaxpr, in_scan: bool, found: list[str]) -> None:
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if in_scan and name.startswith("scatter"):
            found.append(f"{name} {eqn.invars[-1].aval.str_short(short_dtypes=True)}")
        for sub in _sub_jaxprs(eqn):
            _walk(sub, in_scan or name == "scan", found)


def probe_shapes(batch: int, lengths: dict[str, int], cfg) -> tuple[int, dict[str, int]]:
    """A batch and lengths equal to no model dimension (nor to each other), so that a saved
    tensor's axes can be told apart by size; residual shapes do not depend on the values."""
    taken = {cfg.emb_dim, cfg.mlp_dim, cfg.head_dim, cfg.num_heads, cfg.kv_heads, cfg.vocab_size,
             cfg.num_heads * cfg.head_dim, cfg.kv_heads * cfg.head_dim, cfg.num_encoder_layers,
             cfg.num_decoder_layers, cfg.relative_attention_num_buckets, 1, 0}
    if cfg.num_kv_heads:
        taken.add(cfg.num_heads // cfg.kv_heads)

    def fresh(n: int) -> int:
        while n in taken or (n + cfg.prompt_length) in taken:
            n += 1
        taken.update({n, n + cfg.prompt_length})
        return n

    probe_batch = fresh(batch)
    return probe_batch, {k: (fresh(v) if v else 0) for k, v in lengths.items()}


def quadratic_tensors(tensors: Sequence[dict], batch: int, lengths: dict[str, int],
                      prompt_length: int = 0) -> list[dict]:
    """Saved tensors with a batch axis and two sequence-length axes (probe shapes only; a
    stack's [1, heads, q, k] relative-position bias has no batch axis and is not counted)."""
    lens = {v for v in lengths.values() if v} | {v + prompt_length for v in lengths.values() if v}
    return [t for t in tensors if batch in t["shape"]
            and sum(1 for n in t["shape"] if n in lens) >= 2]


def audit(cfg, batch: int, lengths: dict[str, int], examples_per_row: int = 1,
          loss_chunk_size: int = 0) -> dict:
    """One configuration's row: bytes saved, the largest tensors, quadratic ones, scatters."""
    tensors = saved_tensors(cfg, batch, lengths, examples_per_row, loss_chunk_size)
    pb, pl = probe_shapes(batch, lengths, cfg)
    probe = saved_tensors(cfg, pb, pl, examples_per_row, loss_chunk_size)
    fmt = lambda t: (f"{t['dtype']}{list(t['shape'])} {t['bytes'] / GIB:.3f} GiB "  # noqa: E731
                     f"({t['source']})")
    total = sum(t["bytes"] for t in tensors)
    return {"saved_bytes": total, "saved_gib": total / GIB, "num_saved": len(tensors),
            "largest": [fmt(t) for t in tensors[:TOP]],
            "quadratic": [fmt(t) for t in quadratic_tensors(probe, pb, pl, cfg.prompt_length)],
            "scatters_in_scan": scatters_in_scans(cfg, pb, pl, examples_per_row,
                                                  loss_chunk_size),
            "probe_shape": f"{pb} x {pl['inputs']}" + (f"+{pl['targets']}" if pl["targets"]
                                                         else "")}


def audit_config(cfg, batch: int, lengths: dict[str, int], examples_per_row: int = 1,
                 loss_chunk_size: int = 0, scan_layers: bool = True) -> dict:
    """`audit` of `cfg` as it will train (scanned layers unless told), with the row's labels."""
    from flan_jax.models import abstract_params, build_model, count_params

    cfg = dataclasses.replace(cfg, scan_layers=scan_layers, dropout_rate=0.0)
    if cfg.family == "decoder_only":  # one sequence: its length is what matters
        lengths = {"inputs": lengths["inputs"] + lengths["targets"], "targets": 0}
    return {"family": cfg.family, "params": count_params(abstract_params(build_model(cfg))),
            "batch": batch, "lengths": dict(lengths), "examples_per_row": examples_per_row,
            "dtype": cfg.dtype, "scan_layers": scan_layers, "remat_policy": cfg.remat_policy,
            "attention_impl": cfg.attention_impl, "loss_chunk_size": loss_chunk_size,
            **audit(cfg, batch, lengths, examples_per_row, loss_chunk_size)}


def bench_memory(models: list[tuple[str, Any]], s, shape: str | None = None,
                 loss_chunk_sizes: Sequence[int] = (0,)) -> list[dict]:
    """Every remat policy x audited attention path x loss chunk size of each model; prints the
    table (`render`) at the end."""
    from flan_jax.models.config import REMAT_POLICIES

    rows = []
    for name, cfg in models:
        batch, lengths, per_row = (QUICK_SHAPES if s.quick else FULL_SHAPES)[cfg.family]
        if shape:
            batch, lengths = parse_shape(shape, cfg.family)
        for chunk in loss_chunk_sizes:
            for policy in REMAT_POLICIES:
                for impl in AUDITED_IMPLS:
                    c = dataclasses.replace(cfg, remat_policy=policy, attention_impl=impl)
                    row = {"model": name, **audit_config(c, batch, lengths, per_row, chunk)}
                    rows.append(row)
                    say(f"memory {name} remat={policy} attention={impl} loss_chunk={chunk}: "
                        f"{row['saved_gib']:.2f} GiB saved, {len(row['quadratic'])} quadratic, "
                        f"{len(row['scatters_in_scan'])} scatters in scans")
    say("\n".join(render(rows)))
    return rows


def render(rows: list[dict]) -> list[str]:
    """The Markdown table of `bench memory` rows."""
    out = ["Bytes the train step keeps for its backward pass (residuals of its jaxpr, "
           "parameters excluded), scanned layers, no dropout; quadratic = saved tensors with "
           "a batch and two sequence axes.", "",
           "| model | batch x len | loss chunk | remat | attention | saved GiB | quadratic | "
           "scatters in scan | largest |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lens = r["lengths"]
        shape = f"{r['batch']} x {lens['inputs']}" + (f"+{lens['targets']}" if lens["targets"]
                                                      else "")
        out.append(f"| {r['model']} | {shape} | {r['loss_chunk_size'] or 'none'} | "
                   f"{r['remat_policy']} | {r['attention_impl']} | "
                   f"{r['saved_gib']:.2f} | {len(r['quadratic'])} | "
                   f"{len(r['scatters_in_scan'])} | {r['largest'][0] if r['largest'] else ''} |")
    return out
