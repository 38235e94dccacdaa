"""Small randomly initialised Hugging Face models saved to a folder, the reference the conversion
tests compare against (needs torch and transformers; the importing test module skips without)."""

import numpy as np
import torch
import transformers


def tiny_t5(tmp_path, name, **kw):
    """A 2-layer T5 (97-word vocabulary) with `kw` overriding its config; (model, folder)."""
    torch.manual_seed(0)
    base = dict(vocab_size=97, d_model=24, d_ff=40, num_layers=2, decoder_start_token_id=0,
                relative_attention_num_buckets=8, relative_attention_max_distance=20,
                tie_word_embeddings=False)
    base.update(kw)
    model = transformers.T5ForConditionalGeneration(transformers.T5Config(**base)).eval()
    src = tmp_path / f"hf_{name}"
    model.save_pretrained(src)
    return model, src


def tiny_llama(tmp_path, name, **kw):
    """A 2-layer Llama (101-word vocabulary) with `kw` overriding its config; (model, folder)."""
    torch.manual_seed(0)
    base = dict(vocab_size=101, hidden_size=32, intermediate_size=44, num_hidden_layers=2,
                rms_norm_eps=1e-5)
    base.update(kw)
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**base)).eval()
    src = tmp_path / f"hf_{name}"
    model.save_pretrained(src)
    return model, src


def max_diff(a, b) -> float:
    """The largest absolute difference of two arrays, in float64."""
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
