#!/usr/bin/env python3
"""Loads model directories written by swift-dpo (ModelDirectory.save, `dpo init`) with
transformers and compares their logits with the ones swift-dpo computed.

    /work/venv/bin/python Tests/LlamaTests/Fixtures/check_transformers_load.py DIR [DIR ...]
        [--logits FILE] [--tolerance 1e-4]

For every DIR:
  - AutoModelForCausalLM.from_pretrained(DIR) must build the class config.json names in
    `architectures` (LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, MistralForCausalLM)
    with no missing, unexpected or mismatched tensors, tied/untied as config.json says;
  - if DIR/our_logits.safetensors exists (or --logits FILE is given: tensors `input_ids`
    [rows, seq], `lengths` [rows], `logits` [rows, seq, vocab], ids may be stored as floats),
    transformers' logits on that batch (float64 compute of the loaded weights, right padding
    via attention_mask) must match ours at every valid position:
    max |ours - transformers| <= tolerance x max |transformers|.
  - otherwise it runs a forward pass on a few random tokens and checks the logits are finite.
To produce such directories from the parity fixtures, run the Swift test
    DPO_HF_EXPORT_DIR=/tmp/hf-export swift test --filter "TransformersParityTests|FamilyParityTests"
Exit status 1 if any directory fails.
"""
import argparse
import json
import os
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM


def check(directory, logits_file, tolerance):
    problems = []
    model, info = AutoModelForCausalLM.from_pretrained(
        directory, dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    config = json.load(open(os.path.join(directory, "config.json")))
    expected = (config.get("architectures") or ["?"])[0]
    if type(model).__name__ != expected or model.config.model_type != config.get("model_type"):
        problems.append(f"loaded as {type(model).__name__} ({model.config.model_type}), not {expected} ({config.get('model_type')})")
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        if info.get(kind):
            problems.append(f"{kind}: {sorted(info[kind])[:6]}")
    tied = model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    if tied != bool(config.get("tie_word_embeddings")):
        problems.append(f"lm_head tied = {tied} but config.json says tie_word_embeddings = {config.get('tie_word_embeddings')}")
    with safe_open(os.path.join(directory, "model.safetensors"), "pt") as f:
        stored = sorted({f.get_slice(k).get_dtype() for k in f.keys()})
    summary = (f"{type(model).__name__}, {sum(p.numel() for p in model.parameters())} parameters, "
               f"stored {'/'.join(stored)}, config dtype {config.get('torch_dtype')}, tied {tied}")

    if logits_file is None and os.path.exists(os.path.join(directory, "our_logits.safetensors")):
        logits_file = os.path.join(directory, "our_logits.safetensors")
    model = model.double().eval()
    if logits_file:
        ours = load_file(logits_file)
        input_ids = ours["input_ids"].round().long()
        lengths = ours["lengths"].round().long()
        rows, seq = input_ids.shape
        mask = (torch.arange(seq)[None, :] < lengths[:, None])
        with torch.no_grad():
            theirs = model(input_ids=input_ids, attention_mask=mask.long()).logits
        diff = (ours["logits"].double() - theirs).abs()[mask].max().item()
        scale = theirs.abs()[mask].max().item()
        relative = diff / scale
        summary += f"; logits on {rows}x{seq} tokens: max|ours - transformers| {diff:.3e}, max|transformers| {scale:.3e}, relative {relative:.2e}"
        if not relative <= tolerance:
            problems.append(f"logits differ: relative {relative:.2e} > {tolerance:.0e}")
    else:
        ids = torch.randint(0, model.config.vocab_size, (1, 8), generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            logits = model(input_ids=ids).logits
        if not torch.isfinite(logits).all():
            problems.append("logits are not finite")
        summary += f"; forward on 8 random tokens: finite, max|logits| {logits.abs().max().item():.3e} (no our_logits.safetensors to compare)"
    return summary, problems


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directories", nargs="+")
    parser.add_argument("--logits", help="safetensors file with input_ids, lengths and our logits")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()
    failed = False
    for directory in args.directories:
        summary, problems = check(directory, args.logits, args.tolerance)
        print(f"{'FAIL' if problems else 'ok  '} {directory}: {summary}")
        for problem in problems:
            print(f"     - {problem}")
        failed = failed or bool(problems)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
