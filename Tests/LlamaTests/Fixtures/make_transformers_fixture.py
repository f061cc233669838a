#!/usr/bin/env python3
"""Reference numbers from transformers for TransformersParityTests.swift.

Run from the repository root:
    /work/venv/bin/python Tests/LlamaTests/Fixtures/make_transformers_fixture.py

For each variant it builds a small random LlamaForCausalLM (fixed seed), saves it as a
Hugging Face model directory (config.json, generation_config.json, model.safetensors in
float32), then computes in float64 on a right-padded batch:
  - logits                         [rows, seq, vocab]
  - token_logps[p] = log_softmax(logits[p])[target[p]], 0 where target[p] = -1
  - loss = sum_p logp_weights[p] * token_logps[p]  and the gradient of every parameter
and writes them (as float32) with the batch to reference.safetensors beside the model.

Variants:
  tied_gqa        4 heads / 2 kv heads, head_dim = hidden / heads = 8, tied embeddings
  untied_headdim  4 heads / 2 kv heads, head_dim 12 != hidden / heads, untied lm_head
Weights are drawn larger than transformers' init (and norm weights away from 1) so that
every path carries signal. Attention is the eager implementation.
"""
import json
import os
import shutil

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "transformers_parity")

VARIANTS = {
    "tied_gqa": dict(hidden_size=32, intermediate_size=56, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, vocab_size=97, tie_word_embeddings=True),
    "untied_headdim": dict(hidden_size=32, intermediate_size=40, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, head_dim=12, vocab_size=89, tie_word_embeddings=False),
}
ROWS, SEQ = 3, 11
LENGTHS = [11, 8, 4]           # right padding: row r has LENGTHS[r] valid positions
PAD = 0


def build(name, spec, seed):
    torch.manual_seed(seed)
    config = LlamaConfig(**spec, rope_theta=1e4, rms_norm_eps=1e-5, max_position_embeddings=64,
                         bos_token_id=1, eos_token_id=2, pad_token_id=PAD, hidden_act="silu",
                         attn_implementation="eager")
    model = LlamaForCausalLM(config).float()
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif "embed_tokens" in pname or "lm_head" in pname:
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
        # Targets follow the DPO convention: the next token, only on "completion" positions
        # (here every position from 2 on), none on the last valid position.
        for p in range(2, n - 1):
            target_ids[r, p] = input_ids[r, p + 1]
    # One completion position with a target that is not the next input (targets are free ids).
    target_ids[0, 5] = 7
    weights = torch.randn(ROWS, SEQ, generator=g, dtype=torch.float64) * (target_ids >= 0)
    return input_ids, target_ids, weights


def reference(model, input_ids, target_ids, logp_weights):
    model = model.double()
    model.zero_grad(set_to_none=True)
    lengths = torch.tensor(LENGTHS)
    attention_mask = (torch.arange(SEQ)[None, :] < lengths[:, None]).long()
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    logps = torch.log_softmax(logits, dim=-1).gather(-1, target_ids.clamp(min=0)[..., None])[..., 0]
    logps = logps * (target_ids >= 0)
    loss = (logp_weights * logps).sum()
    loss.backward()
    grads = {f"grad.{n}": p.grad.detach().float().contiguous() for n, p in model.named_parameters()}
    return logits.detach(), logps.detach(), loss.detach(), grads


def half_precision_estimate(model, input_ids, target_ids, ref_logits, ref_logps):
    """How far torch's own float16 run is from float64: a scale for the fp16 tolerance."""
    half = LlamaForCausalLM(model.config).to(torch.float16)
    half.load_state_dict({k: v.to(torch.float16) for k, v in model.state_dict().items()})
    lengths = torch.tensor(LENGTHS)
    attention_mask = (torch.arange(SEQ)[None, :] < lengths[:, None]).long()
    with torch.no_grad():
        logits = half(input_ids=input_ids, attention_mask=attention_mask).logits.double()
    logps = torch.log_softmax(logits.float(), -1).double().gather(-1, target_ids.clamp(min=0)[..., None])[..., 0] * (target_ids >= 0)
    valid = attention_mask.bool()
    rel_logits = ((logits - ref_logits).abs()[valid].max() / ref_logits[valid].abs().max()).item()
    rel_logps = ((logps - ref_logps).abs().max() / ref_logps.abs().max()).item()
    return rel_logits, rel_logps


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    for seed, (name, spec) in enumerate(VARIANTS.items()):
        config, model = build(name, spec, seed)
        directory = os.path.join(OUT, name)
        model.save_pretrained(directory, safe_serialization=True)
        input_ids, target_ids, logp_weights = batch(config.vocab_size, 100 + seed)
        logits, logps, loss, grads = reference(model, input_ids, target_ids, logp_weights)
        tensors = {
            "input_ids": input_ids.contiguous(),
            "target_ids": target_ids.contiguous(),
            "lengths": torch.tensor(LENGTHS, dtype=torch.long),
            "logp_weights": logp_weights.float().contiguous(),
            "logits": logits.float().contiguous(),
            "token_logps": logps.float().contiguous(),
            "loss": loss.float().reshape(()),
            **grads,
        }
        save_file(tensors, os.path.join(directory, "reference.safetensors"), metadata={"format": "pt"})
        rel_logits, rel_logps = half_precision_estimate(model, input_ids, target_ids, logits, logps)
        size = sum(os.path.getsize(os.path.join(directory, f)) for f in os.listdir(directory))
        print(f"{name}: loss {loss.item():.6f}, max|logits| {logits.abs().max().item():.3f}, "
              f"{len(grads)} gradients, {size} bytes; torch float16 vs float64: "
              f"logits {rel_logits:.2e}, logps {rel_logps:.2e} (relative to max)")


if __name__ == "__main__":
    main()
