#!/usr/bin/env python3
"""Checks an adapter written by `dpo train --lora-r` against PEFT (run by hand; tests never need Python).

    B=/tmp/lora-check; dpo init --preset tiny --out $B/base
    dpo demo-data --n 16 --out $B/pairs.jsonl
    dpo train --model $B/base --data $B/pairs.jsonl --out $B/run --lora-r 8 --lora-targets q_proj,v_proj,gate_proj,down_proj \
        --max-steps 4 --lr 1e-2
    dpo merge-lora --model $B/base --adapter $B/run/final --out $B/merged
    /work/venv/bin/python Tests/LlamaTests/Fixtures/check_lora_adapter.py $B/base $B/run/final $B/merged

Checks: peft.PeftModel.from_pretrained loads final/ onto the base with every lora_A/lora_B tensor
used (none missing, none unexpected) and the adapter's r/alpha/targets; its logits (float64)
equal those of the model `dpo merge-lora` wrote, within 1e-9 x max|logit| (float32 weights either
way); PEFT's merge_and_unload equals dpo merge-lora's weights within 1e-6 of each tensor's max.
"""
import sys

import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM


def main(base_dir, adapter_dir, merged_dir):
    base = AutoModelForCausalLM.from_pretrained(base_dir, attn_implementation="eager").double()
    model = PeftModel.from_pretrained(base, adapter_dir).double()
    config = model.peft_config["default"]
    saved = load_file(f"{adapter_dir}/adapter_model.safetensors")
    loaded = {n.replace(".default", ""): p for n, p in model.named_parameters() if "lora_" in n}
    assert set(saved) == set(loaded), f"names differ: {set(saved) ^ set(loaded)}"
    for name, value in saved.items():
        assert torch.equal(value.double(), loaded[name].detach()), name
    print(f"loaded: r {config.r}, alpha {config.lora_alpha}, targets {sorted(config.target_modules)}, {len(saved)} tensors")
    assert any(value.abs().max() > 0 for name, value in saved.items() if "lora_B" in name), "B is still zero: nothing trained"

    ids = torch.randint(3, base.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0))
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, attn_implementation="eager").double()
    with torch.no_grad():
        ours = merged(input_ids=ids).logits
        peft = model(input_ids=ids).logits
        with model.disable_adapter():
            plain = model(input_ids=ids).logits
    gap = (ours - peft).abs().max().item() / peft.abs().max().item()
    print(f"logits: dpo merge-lora vs PeftModel relative {gap:.2e}; adapter effect {(peft - plain).abs().max().item():.3e}")
    assert gap < 1e-6, gap

    with torch.no_grad():
        reference = model.merge_and_unload().state_dict()
    ours_state = load_file(f"{merged_dir}/model.safetensors")
    worst = 0.0
    for name, value in ours_state.items():
        ref = reference[name].float()
        worst = max(worst, ((value - ref).abs().max() / ref.abs().max().clamp(min=1e-30)).item())
    print(f"merge: dpo merge-lora vs merge_and_unload worst relative {worst:.2e}")
    assert worst < 1e-6, worst
    print("ok")


if __name__ == "__main__":
    main(*sys.argv[1:4])
