"""Export to Hugging Face: round trips against `transformers`, scores of models built here,
prompt-tuned runs, sharding and refusals."""

import json

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from flan_jax import checkpoints, scoring  # noqa: E402
from flan_jax.convert import cli as convert_cli  # noqa: E402
from flan_jax.convert.hf import ConversionError, convert  # noqa: E402
from flan_jax.convert.to_hf import export, parse_size  # noqa: E402
from flan_jax.models import build_model, init_prompt  # noqa: E402
from flan_jax.models.config import plain_config  # noqa: E402
from flan_jax.placement import LoadedModel  # noqa: E402
from flan_jax.vocab import ByteVocab  # noqa: E402
from tests.convert.hf_models import max_diff, tiny_llama, tiny_t5  # noqa: E402

PAIRS = [("Is the sky blue?", "yes"), ("Translate to German: house", "Haus"),
         ("2 + 2 =", " 4, of course")]


def _hf_logits(model_dir, enc, dec=None):
    model = transformers.AutoModelForSeq2SeqLM.from_pretrained(model_dir) if dec is not None \
        else transformers.AutoModelForCausalLM.from_pretrained(model_dir)
    with torch.no_grad():
        if dec is None:
            return model(input_ids=torch.tensor(enc)).logits.numpy()
        return model(input_ids=torch.tensor(enc), attention_mask=torch.tensor(enc > 0),
                     decoder_input_ids=torch.tensor(dec)).logits.numpy()


def _t5_ids():
    rng = np.random.RandomState(1)
    enc = rng.randint(2, 97, size=(3, 11))
    enc[1, 7:] = 0
    dec = rng.randint(2, 97, size=(3, 6))
    dec[:, 0] = 0
    return enc, dec


@pytest.mark.parametrize("name,kw", [
    ("flan_t5_untied", dict(feed_forward_proj="gated-gelu", num_heads=3, d_kv=8)),
    ("t5_relu_tied_scaled", dict(feed_forward_proj="relu", num_heads=4, d_kv=4,
                                 tie_word_embeddings=True)),
    ("t5_exact_gelu_tied_unscaled", dict(feed_forward_proj="gelu", num_heads=2, d_kv=6)),
])
def test_t5_round_trip_gives_the_same_logits(tmp_path, name, kw):
    _, src = tiny_t5(tmp_path, name, **kw)
    if name == "flan_t5_untied":  # a separate head, as Flan-T5 ships
        from safetensors.numpy import load_file, save_file

        w = load_file(str(src / "model.safetensors"))
        w["lm_head.weight"] = np.random.RandomState(3).normal(
            size=w["shared.weight"].shape).astype(np.float32)
        save_file(w, str(src / "model.safetensors"), metadata={"format": "pt"})
    cfg = convert(src, tmp_path / "ours")
    assert cfg.tie_embeddings == (name != "flan_t5_untied")
    export(tmp_path / "ours", tmp_path / "back")
    enc, dec = _t5_ids()
    ref, back = _hf_logits(src, enc, dec), _hf_logits(tmp_path / "back", enc, dec)
    assert max_diff(back, ref) <= 1e-4
    assert np.std(ref) > 1e-3  # the comparison is not between two constant outputs


@pytest.mark.parametrize("name,kw,shard", [
    ("gqa_untied_sharded", dict(num_attention_heads=4, num_key_value_heads=2,
                                tie_word_embeddings=False), 30_000),
    ("mha_tied", dict(num_attention_heads=3, num_key_value_heads=3, hidden_size=24,
                      tie_word_embeddings=True), None),
    ("mqa_odd_rope", dict(num_attention_heads=5, num_key_value_heads=1, hidden_size=30,
                          head_dim=8, tie_word_embeddings=False, rope_theta=500.0), None),
])
def test_llama_round_trip_gives_the_same_logits(tmp_path, name, kw, shard):
    _, src = tiny_llama(tmp_path, name, **kw)
    convert(src, tmp_path / "ours")
    written = export(tmp_path / "ours", tmp_path / "back",
                     **({"max_shard_bytes": shard} if shard else {}))
    if shard:
        shards = [f for f in written if f.endswith(".safetensors")]
        assert len(shards) > 2 and "model.safetensors.index.json" in written
        index = json.loads((tmp_path / "back" / "model.safetensors.index.json").read_text())
        assert set(index["weight_map"].values()) == set(shards)
    tokens = np.random.RandomState(1).randint(0, 101, size=(2, 13))
    ref, back = _hf_logits(src, tokens), _hf_logits(tmp_path / "back", tokens)
    assert max_diff(back, ref) <= 1e-4


def _model_dir(path, cfg, params, **files):
    checkpoints.save_params(path, params)
    (path / checkpoints.MODEL_GIN).write_text(checkpoints.model_gin_text(cfg))
    (path / "vocab.json").write_text(json.dumps({"kind": "byte"}))
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def _init(cfg, seed=0):
    import flax.linen as nn

    tokens = jnp.ones((1, 4), jnp.int32)
    args = (tokens, tokens) if cfg.family == "encoder_decoder" else (tokens,)
    init = jax.jit(build_model(cfg).init)
    params = nn.meta.unbox(init(jax.random.PRNGKey(seed), *args)["params"])
    return jax.tree_util.tree_map(np.asarray, params)


ENC_DEC = plain_config(family="encoder_decoder", vocab_size=259, emb_dim=32, num_heads=4,
                       head_dim=8, mlp_dim=48, num_encoder_layers=1, num_decoder_layers=1,
                       relative_attention_num_buckets=8, relative_attention_max_distance=16)
DEC_ONLY = plain_config(family="decoder_only", vocab_size=259, emb_dim=32, num_heads=4,
                        num_kv_heads=2, head_dim=8, mlp_dim=48, num_encoder_layers=0,
                        num_decoder_layers=2, mlp_activation="silu", tie_embeddings=True)


def _hf_scores(hf_dir, family, pairs, prompt=None):
    """Summed target log-likelihoods computed by transformers with the exported tokenizer."""
    tok = transformers.AutoTokenizer.from_pretrained(hf_dir)
    out = []
    if family == "encoder_decoder":
        model = transformers.AutoModelForSeq2SeqLM.from_pretrained(hf_dir)
        for x, y in pairs:
            enc = torch.tensor([tok(x).input_ids])  # ByT5 appends EOS, as flan-jax does
            tgt = torch.tensor([tok(y).input_ids])
            kw = {"input_ids": enc}
            if prompt is not None:
                emb = model.get_input_embeddings()(enc)
                kw = {"inputs_embeds": torch.cat([prompt[None], emb], 1),
                      "attention_mask": torch.ones(1, prompt.shape[0] + enc.shape[1])}
            with torch.no_grad():
                logits = model(**kw, labels=tgt).logits
            lp = torch.log_softmax(logits.double(), -1)[0].gather(-1, tgt[0, :, None])
            out.append(float(lp.sum()))
    else:
        model = transformers.AutoModelForCausalLM.from_pretrained(hf_dir)
        for x, y in pairs:
            p = tok(x, add_special_tokens=False).input_ids
            t = tok(y, add_special_tokens=False).input_ids
            ids = torch.tensor([p + t])
            with torch.no_grad():
                logits = model(input_ids=ids).logits
            lp = torch.log_softmax(logits.double(), -1)[0, :-1].gather(-1, ids[0, 1:, None])
            out.append(float(lp[len(p) - 1:].sum()))
    return np.array(out)


@pytest.mark.parametrize("cfg", [ENC_DEC, DEC_ONLY], ids=["t5", "llama"])
def test_model_built_here_scores_the_same_in_transformers(tmp_path, cfg):
    params = _init(cfg)
    src = _model_dir(tmp_path / "run", cfg, params)
    written = export(src, tmp_path / "hf")
    assert "tokenizer_config.json" in written
    ours = scoring.score_texts(LoadedModel(build_model(cfg), params, ByteVocab()), *zip(*PAIRS))
    theirs = _hf_scores(tmp_path / "hf", cfg.family, PAIRS)
    np.testing.assert_allclose(theirs, [s for s, _ in ours], atol=1e-4, rtol=0)


def test_prompt_tuned_run_exports_base_and_prompt(tmp_path):
    params = _init(ENC_DEC)
    base = _model_dir(tmp_path / "base", ENC_DEC, params)
    cfg = plain_config(**{**ENC_DEC.__dict__, "prompt_length": 3})
    prompt = init_prompt(cfg, params["token_embed"]["embedding"], seed=1)
    run = tmp_path / "prompt_run"
    run.mkdir()
    (run / checkpoints.MODEL_GIN).write_text(checkpoints.model_gin_text(cfg))
    (run / checkpoints.PROMPT_BASE).write_text(str(base))
    (run / "vocab.json").write_text(json.dumps({"kind": "byte"}))
    import orbax.checkpoint as ocp

    with ocp.StandardCheckpointer() as ckptr:  # a training run's step: only the prompt
        ckptr.save((run / "checkpoints" / "7" / "state").resolve(),
                   {"params": {checkpoints.PROMPT_PARAM: prompt}, "step": np.int32(7)})
    written = export(run, tmp_path / "hf")
    assert "prompt.safetensors" in written
    from safetensors.numpy import load_file

    saved = load_file(str(tmp_path / "hf" / "prompt.safetensors"))["prompt"]
    np.testing.assert_array_equal(saved, prompt)
    ours = scoring.score_texts(LoadedModel(build_model(cfg), {**params, "prompt": prompt},
                                           ByteVocab()), *zip(*PAIRS))
    theirs = _hf_scores(tmp_path / "hf", "encoder_decoder", PAIRS, torch.tensor(saved))
    np.testing.assert_allclose(theirs, [s for s, _ in ours], atol=1e-4, rtol=0)
    # without the prompt the scores differ: the prompt file matters
    plain = _hf_scores(tmp_path / "hf", "encoder_decoder", PAIRS)
    assert np.max(np.abs(plain - theirs)) > 1e-2


def test_bfloat16_is_kept(tmp_path):
    params = jax.tree_util.tree_map(lambda x: x.astype(ml_dtypes.bfloat16), _init(DEC_ONLY))
    src = _model_dir(tmp_path / "run", DEC_ONLY, params)
    export(src, tmp_path / "hf")
    from safetensors import safe_open

    with safe_open(str(tmp_path / "hf" / "model.safetensors"), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"BF16"}
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["dtype"] == "bfloat16"


def test_prefix_lm_is_refused_with_the_reason(tmp_path, capsys):
    cfg = plain_config(**{**DEC_ONLY.__dict__, "prefix_lm": True})
    src = _model_dir(tmp_path / "run", cfg, _init(DEC_ONLY))
    with pytest.raises(ConversionError, match="prefix-LM .* causal only"):
        export(src, tmp_path / "hf")
    assert convert_cli.main(["to-hf", "--src", str(src), "--dst", str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "prefix_lm=True" in err
    assert not (tmp_path / "hf").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".hf")]


def test_not_a_model_dir_and_sizes(tmp_path):
    with pytest.raises(ConversionError, match="not a flan-jax model directory"):
        export(tmp_path, tmp_path / "hf")
    assert parse_size("5GB") == 5 * 10**9 and parse_size("2GiB") == 2 * 2**30
    assert parse_size("1234") == 1234
    with pytest.raises(ConversionError, match="5GB"):
        parse_size("lots")


def _spm_model(path, family):
    import sentencepiece as spm

    text = path.parent / "corpus.txt"
    text.write_text("\n".join([f"the quick brown fox jumps over the lazy dog {i} times"
                               for i in range(200)] + ["hello world, how are you today?"] * 50))
    ids = dict(pad_id=0, eos_id=1, unk_id=2, bos_id=-1) if family == "encoder_decoder" else \
        dict(unk_id=0, bos_id=1, eos_id=2, pad_id=-1)
    spm.SentencePieceTrainer.train(input=str(text), model_prefix=str(path), vocab_size=48,
                                   model_type="unigram", minloglevel=2, **ids)
    return path.with_suffix(".model")


@pytest.mark.parametrize("cfg", [ENC_DEC, DEC_ONLY], ids=["t5", "llama"])
def test_sentencepiece_tokenizer_encodes_like_flan_jax(tmp_path, cfg):
    from flan_jax.vocab import SentencePieceVocab

    model_file = _spm_model(tmp_path / "sp", cfg.family)
    t5 = cfg.family == "encoder_decoder"
    name = "spiece.model" if t5 else "tokenizer.model"
    src = _model_dir(tmp_path / "run", cfg, _init(cfg))
    (src / name).write_bytes(model_file.read_bytes())
    (src / "vocab.json").write_text(json.dumps({"kind": "sentencepiece", "file": name,
                                                "add_bos": not t5}))
    assert name in export(src, tmp_path / "hf")
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    vocab = SentencePieceVocab(src / name, add_bos=not t5)
    for text in ("the lazy fox", "hello world today", " 4, of course"):
        ids = scoring.input_ids(vocab, text, cfg.family, None)
        assert tok(text).input_ids == ids
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    if not t5:
        assert (config["bos_token_id"], config["eos_token_id"]) == (1, 2)


@pytest.mark.slow
def test_trained_run_scores_a_jsonl_file_like_infer(tmp_path):
    """A run trained here (its latest checkpoints/STEP) exports, and transformers' summed
    log-likelihoods of a JSONL file equal `flan-jax infer --mode score` on it."""
    from flan_jax import infer
    from tests.fixtures import train_run as _train

    run = tmp_path / "run"
    _train(run, "TRAIN_STEPS = 3", "train.checkpoint_every = 3")
    assert (run / "checkpoints" / "3").is_dir() and not (run / "params").exists()
    records = [{"inputs": x, "targets": y} for x, y in PAIRS]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert infer.main(["--mode", "score", "--checkpoint", str(run), "--input_file",
                       str(tmp_path / "in.jsonl"), "--output_file",
                       str(tmp_path / "out.jsonl")]) == 0
    scored = [json.loads(line)["score"] for line in (tmp_path / "out.jsonl").open()]
    export(run, tmp_path / "hf")
    theirs = _hf_scores(tmp_path / "hf", "encoder_decoder", PAIRS)
    np.testing.assert_allclose(theirs, scored, atol=1e-4, rtol=0)
