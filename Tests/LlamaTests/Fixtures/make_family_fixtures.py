#!/usr/bin/env python3
"""Reference numbers from transformers for FamilyParityTests.swift: one small random model per
model family and RoPE variant this trainer computes.

Run from the repository root:
    /work/venv/bin/python Tests/LlamaTests/Fixtures/make_family_fixtures.py

Each variant is built by transformers itself (its own config class and ...ForCausalLM, fixed
seed), saved with save_pretrained (config.json, model.safetensors in float32), and run in
float64 on a right-padded batch, exactly as make_transformers_fixture.py does: logits,
token log-probs, loss = sum(logp_weights * token_logps) and the gradient of every parameter,
written to reference.safetensors beside the model.

Variants (sequence length 11; every scaled RoPE has original_max_position_embeddings 8 < 11,
so the scaling changes the result):
  qwen2_bias       Qwen2: q/k/v biases (random, not zero), tied, GQA 4/2
  qwen3_qknorm     Qwen3: q_norm/k_norm (random weights), head_dim 12 != hidden/heads, untied
  llama3_rope      Llama: rope_scaling llama3 (factor 8, low 1, high 4), config.json rewritten
                   in the hub's transformers-4 spelling (rope_theta + rope_scaling)
  yarn_rope        Llama: yarn (factor 4, attention factor derived from it), head_dim 16
  linear_rope      Llama: linear (factor 2), untied
  dynamic_rope     Llama: dynamic (factor 2) with max_position_embeddings 16 >= 11: plain RoPE
  mistral_window   Mistral: sliding_window 16 >= the rows, GQA 4/1
"""
import json
import os
import shutil

import torch
from safetensors.torch import save_file
from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "family_parity")

COMMON = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, rms_norm_eps=1e-5, bos_token_id=1,
              eos_token_id=2, pad_token_id=0, hidden_act="silu", attn_implementation="eager")
ORIGINAL = 8
VARIANTS = {
    "qwen2_bias": (Qwen2Config, Qwen2ForCausalLM, dict(
        intermediate_size=56, num_key_value_heads=2, vocab_size=97, tie_word_embeddings=True,
        max_position_embeddings=64, use_sliding_window=False,
        rope_parameters={"rope_type": "default", "rope_theta": 1e4})),
    "qwen3_qknorm": (Qwen3Config, Qwen3ForCausalLM, dict(
        intermediate_size=40, num_key_value_heads=2, head_dim=12, vocab_size=89, tie_word_embeddings=False,
        max_position_embeddings=64, use_sliding_window=False,
        rope_parameters={"rope_type": "default", "rope_theta": 1e4})),
    "llama3_rope": (LlamaConfig, LlamaForCausalLM, dict(
        intermediate_size=48, num_key_value_heads=2, vocab_size=83, tie_word_embeddings=True,
        max_position_embeddings=64,
        rope_parameters={"rope_type": "llama3", "rope_theta": 1e4, "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": ORIGINAL})),
    "yarn_rope": (LlamaConfig, LlamaForCausalLM, dict(
        intermediate_size=48, num_key_value_heads=2, head_dim=16, vocab_size=79, tie_word_embeddings=True,
        max_position_embeddings=32,
        rope_parameters={"rope_type": "yarn", "rope_theta": 1e4, "factor": 4.0,
                         "original_max_position_embeddings": ORIGINAL})),
    "linear_rope": (LlamaConfig, LlamaForCausalLM, dict(
        intermediate_size=40, num_key_value_heads=4, vocab_size=71, tie_word_embeddings=False,
        max_position_embeddings=64, rope_parameters={"rope_type": "linear", "rope_theta": 1e4, "factor": 2.0})),
    "dynamic_rope": (LlamaConfig, LlamaForCausalLM, dict(
        intermediate_size=40, num_key_value_heads=2, vocab_size=73, tie_word_embeddings=True,
        max_position_embeddings=16, rope_parameters={"rope_type": "dynamic", "rope_theta": 1e4, "factor": 2.0})),
    "mistral_window": (MistralConfig, MistralForCausalLM, dict(
        intermediate_size=48, num_key_value_heads=1, vocab_size=67, tie_word_embeddings=False,
        max_position_embeddings=64, sliding_window=16,
        rope_parameters={"rope_type": "default", "rope_theta": 1e4})),
}
# Rewritten after saving: the transformers-4 / hub spelling of the same RoPE.
HUB_SPELLING = {"llama3_rope"}
ROWS, SEQ = 3, 11
LENGTHS = [11, 8, 4]
PAD = 0


def build(config_class, model_class, spec, seed):
    torch.manual_seed(seed)
    config = config_class(**COMMON, **spec)
    model = model_class(config).float()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.copy_(0.5 * torch.randn_like(p))
            elif "embed_tokens" in name or "lm_head" in name:
                p.copy_(0.5 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / p.shape[1] ** 0.5)
    return config, model


def batch(vocab, seed):
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, vocab, (ROWS, SEQ), generator=g)
    target_ids = torch.full((ROWS, SEQ), -1, dtype=torch.long)
    for r, n in enumerate(LENGTHS):
        input_ids[r, n:] = PAD
        for p in range(2, n - 1):
            target_ids[r, p] = input_ids[r, p + 1]
    target_ids[0, 5] = 7
    weights = torch.randn(ROWS, SEQ, generator=g, dtype=torch.float64) * (target_ids >= 0)
    return input_ids, target_ids, weights


def reference(model, input_ids, target_ids, logp_weights):
    model = model.double()
    model.zero_grad(set_to_none=True)
    attention_mask = (torch.arange(SEQ)[None, :] < torch.tensor(LENGTHS)[:, None]).long()
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    logps = torch.log_softmax(logits, dim=-1).gather(-1, target_ids.clamp(min=0)[..., None])[..., 0]
    logps = logps * (target_ids >= 0)
    loss = (logp_weights * logps).sum()
    loss.backward()
    grads = {f"grad.{n}": p.grad.detach().float().contiguous() for n, p in model.named_parameters()}
    return logits.detach(), logps.detach(), loss.detach(), grads


def to_hub_spelling(directory):
    """rope_parameters -> rope_theta + rope_scaling, as configs on the hub are written."""
    path = os.path.join(directory, "config.json")
    config = json.load(open(path))
    rope = dict(config.pop("rope_parameters"))
    config["rope_theta"] = rope.pop("rope_theta")
    config["rope_scaling"] = rope
    json.dump(config, open(path, "w"), indent=2, sort_keys=True)


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    for seed, (name, (config_class, model_class, spec)) in enumerate(VARIANTS.items()):
        config, model = build(config_class, model_class, spec, 20 + seed)
        directory = os.path.join(OUT, name)
        model.save_pretrained(directory, safe_serialization=True)
        if os.path.exists(os.path.join(directory, "generation_config.json")):
            os.remove(os.path.join(directory, "generation_config.json"))
        if name in HUB_SPELLING:
            to_hub_spelling(directory)
        input_ids, target_ids, logp_weights = batch(config.vocab_size, 200 + seed)
        logits, logps, loss, grads = reference(model, input_ids, target_ids, logp_weights)
        save_file({
            "input_ids": input_ids.contiguous(),
            "target_ids": target_ids.contiguous(),
            "lengths": torch.tensor(LENGTHS, dtype=torch.long),
            "logp_weights": logp_weights.float().contiguous(),
            "logits": logits.float().contiguous(),
            "token_logps": logps.float().contiguous(),
            "loss": loss.float().reshape(()),
            **grads,
        }, os.path.join(directory, "reference.safetensors"), metadata={"format": "pt"})
        size = sum(os.path.getsize(os.path.join(directory, f)) for f in os.listdir(directory))
        print(f"{name}: {type(model).__name__}, loss {loss.item():.6f}, max|logits| {logits.abs().max().item():.3f}, "
              f"{len(grads)} gradients, {size} bytes")


if __name__ == "__main__":
    main()
