#!/usr/bin/env python3
"""End-to-end check of the model families through the `dpo` command line, against transformers.

    /work/venv/bin/python Tests/LlamaTests/Fixtures/check_family_training.py [--dpo .build/release/dpo] [--work DIR]

For each family (qwen2 with biases, qwen3 with q/k norm and head_dim 12, llama with llama3 RoPE,
mistral with a sliding window longer than the rows):
  1. transformers builds a small random model (its own config and ...ForCausalLM class) with the
     vocabulary of the qwen2_style fixture tokenizer, saved with that tokenizer;
  2. `dpo logps` scores preference pairs the tests never tuned to; transformers scores the same
     token ids (prompt ids + completion ids + EOS, completion tokens summed) in float64:
     max |ours - transformers| / max |transformers| must be <= 1e-4;
  3. `dpo train` runs 2 steps; transformers must load OUT/final as the same class with no missing
     or unexpected tensors, with weights that moved, and `dpo logps` of final/ must again agree.
Exit status 1 on any failure. Needs no hub access.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

import torch
from transformers import (AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, MistralConfig,
                          MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)

HERE = os.path.dirname(os.path.abspath(__file__))
TOKENIZER = os.path.join(HERE, "..", "..", "TokenizationTests", "Fixtures", "qwen2_style")
COMMON = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, rms_norm_eps=1e-6,
              hidden_act="silu", max_position_embeddings=256)
FAMILIES = {
    "qwen2": (Qwen2Config, Qwen2ForCausalLM, dict(num_key_value_heads=2, tie_word_embeddings=True,
                                                 rope_parameters={"rope_type": "default", "rope_theta": 1e6})),
    "qwen3": (Qwen3Config, Qwen3ForCausalLM, dict(num_key_value_heads=2, head_dim=12, tie_word_embeddings=False,
                                                 rope_parameters={"rope_type": "default", "rope_theta": 1e6})),
    "llama3": (LlamaConfig, LlamaForCausalLM, dict(num_key_value_heads=2, tie_word_embeddings=True, rope_parameters={
        "rope_type": "llama3", "rope_theta": 5e5, "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 16})),
    "mistral": (MistralConfig, MistralForCausalLM, dict(num_key_value_heads=1, sliding_window=128,
                                                       tie_word_embeddings=False,
                                                       rope_parameters={"rope_type": "default", "rope_theta": 1e4})),
}
PAIRS = [
    {"prompt": "What is 12+7?", "chosen": " 19", "rejected": " 21, I think"},
    {"prompt": "Name a colour.", "chosen": " Blue.", "rejected": " Seven."},
    {"prompt": "Translate 'hello' to French:", "chosen": " bonjour", "rejected": " hola amigo"},
    {"prompt": "你好，世界", "chosen": "！😀", "rejected": " ..."},
    {"prompt": "def f(x):\n", "chosen": "    return x * 2\n", "rejected": "  pass"},
    {"prompt": "Count: 1 2 3", "chosen": " 4 5 6", "rejected": " 9 9 9 9 9 9 9"},
]


def build(family, seed, directory):
    config_class, model_class, spec = FAMILIES[family]
    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER)
    torch.manual_seed(seed)
    config = config_class(**COMMON, **spec, vocab_size=len(tokenizer), eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                          pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"), bos_token_id=None)
    model = model_class(config).float()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.copy_(0.3 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p) if p.dim() == 2 and "embed" in name else torch.randn_like(p) / p.shape[-1] ** 0.5)
    model.save_pretrained(directory)
    for name in os.listdir(TOKENIZER):
        shutil.copy(os.path.join(TOKENIZER, name), directory)
    return tokenizer


def transformers_logps(directory, tokenizer):
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float64, attn_implementation="eager").eval()
    eos = model.config.eos_token_id
    result = []
    for pair in PAIRS:
        prompt = tokenizer(pair["prompt"], add_special_tokens=False).input_ids
        sums = []
        for key in ("chosen", "rejected"):
            completion = tokenizer(pair[key], add_special_tokens=False).input_ids + [eos]
            ids = torch.tensor([prompt + completion])
            with torch.no_grad():
                logps = torch.log_softmax(model(input_ids=ids).logits[0, :-1], -1)
            targets = ids[0, 1:]
            picked = logps.gather(-1, targets[:, None])[:, 0][len(prompt) - 1:]
            sums.append((picked.sum().item(), len(completion)))
        result.append(sums)
    return result, model


def dpo_logps(dpo, directory, data):
    out = subprocess.run([dpo, "logps", "--model", directory, "--data", data, "--chat-template", "none"],
                         check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def compare(label, ours, theirs, problems):
    diff = scale = 0.0
    for row, ((c, nc), (r, nr)) in zip(ours, theirs):
        if row.get("dropped") or row["chosen_tokens"] != nc or row["rejected_tokens"] != nr:
            problems.append(f"{label}: pair {row['index']} encoded differently: {row} vs tokens {nc}/{nr}")
            continue
        diff = max(diff, abs(row["chosen_logps"] - c), abs(row["rejected_logps"] - r))
        scale = max(scale, abs(c), abs(r))
    relative = diff / scale
    print(f"  {label}: max|dpo logps - transformers| {diff:.3e}, max|transformers| {scale:.3e}, relative {relative:.2e}")
    if not relative <= 1e-4:
        problems.append(f"{label}: relative {relative:.2e} > 1e-4")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dpo", default=".build/release/dpo")
    parser.add_argument("--work", default="/tmp/dpo-family-check")
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    data = os.path.join(args.work, "pairs.jsonl")
    with open(data, "w") as f:
        for pair in PAIRS:
            f.write(json.dumps(pair, ensure_ascii=False) + "\n")
    problems = []
    for seed, family in enumerate(FAMILIES):
        directory = os.path.join(args.work, family, "model")
        tokenizer = build(family, 40 + seed, directory)
        print(f"{family}:")
        theirs, original = transformers_logps(directory, tokenizer)
        compare("initial model", dpo_logps(args.dpo, directory, data), theirs, problems)

        out = os.path.join(args.work, family, "run")
        subprocess.run([args.dpo, "train", "--model", directory, "--data", data, "--out", out, "--max-steps", "2",
                        "--batch-pairs", "2", "--lr", "1e-3", "--chat-template", "none", "--threads", "1"],
                       check=True, capture_output=True, text=True)
        final = os.path.join(out, "final")
        loaded, info = AutoModelForCausalLM.from_pretrained(final, dtype=torch.float64, output_loading_info=True)
        expected = type(original).__name__
        moved = max((a - b).abs().max().item() for a, b in zip(loaded.state_dict().values(), original.state_dict().values()))
        print(f"  dpo train 2 steps: final/ loads as {type(loaded).__name__} (model_type {loaded.config.model_type}), "
              f"largest weight change {moved:.2e}")
        if type(loaded).__name__ != expected:
            problems.append(f"{family}: final/ loads as {type(loaded).__name__}, not {expected}")
        for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
            if info.get(kind):
                problems.append(f"{family}: {kind} {sorted(info[kind])[:4]}")
        if not moved > 0:
            problems.append(f"{family}: training did not change the weights")
        theirs_final, _ = transformers_logps(final, tokenizer)
        compare("final/ after 2 steps", dpo_logps(args.dpo, final, data), theirs_final, problems)
    for problem in problems:
        print("FAIL", problem)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
