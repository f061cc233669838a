#!/usr/bin/env python3
"""Reference numbers from PEFT for LoRAParityTests.swift: a small random base model, a PEFT LoRA
adapter with nonzero B on it, and what PyTorch computes with them in float64.

Run from the repository root:
    /work/venv/bin/python Tests/LlamaTests/Fixtures/make_lora_fixtures.py

Per variant, in Fixtures/lora_parity/<variant>/:
  base/                     the base model (transformers save_pretrained, float32)
  adapter/                  adapter_config.json + adapter_model.safetensors (peft save_pretrained)
  reference.safetensors     input_ids, target_ids, lengths, logp_weights; float64 results cast to float32:
                            logits, token_logps (PEFT model, adapters on),
                            grad.<PEFT saved name>: d sum(logp_weights * token_logps) / d lora_A, lora_B,
                            dpo_loss, dpo_grad.<name>: the sigmoid DPO loss (beta 0.1, mean over the 2
                            pairs; rows 0-1 chosen, 2-3 rejected; reference = the same PeftModel inside
                            disable_adapter(), as TRL does for PEFT) and its A/B gradients,
                            merged.<base name>: merge_and_unload()'s weights
Variants:
  llama_all     Llama, GQA 4/2, untied, r 4, alpha 8 (scale 2), all seven projections
  qwen2_subset  Qwen2 with q/k/v biases, tied, r 3, alpha 5, q_proj,v_proj,o_proj,up_proj

The script also checks that PeftModel.from_pretrained reloads the adapter to the same logits.
"""
import os
import shutil

import torch
import torch.nn.functional as F
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "lora_parity")
COMMON = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, rms_norm_eps=1e-5, bos_token_id=1,
              eos_token_id=2, pad_token_id=0, hidden_act="silu", attn_implementation="eager", max_position_embeddings=64,
              rope_parameters={"rope_type": "default", "rope_theta": 1e4})
VARIANTS = {
    "llama_all": (LlamaConfig, LlamaForCausalLM, dict(intermediate_size=48, num_key_value_heads=2, vocab_size=83,
                                                      tie_word_embeddings=False),
                  dict(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])),
    "qwen2_subset": (Qwen2Config, Qwen2ForCausalLM, dict(intermediate_size=56, num_key_value_heads=2, vocab_size=97,
                                                         tie_word_embeddings=True, use_sliding_window=False),
                     dict(r=3, lora_alpha=5, target_modules=["q_proj", "v_proj", "o_proj", "up_proj"])),
}
ROWS, SEQ = 4, 10
LENGTHS = [10, 7, 9, 5]
PROMPT = 3  # prompt tokens of every row: targets from position PROMPT - 1
BETA = 0.1


def build(config_class, model_class, spec, lora_spec, seed):
    torch.manual_seed(seed)
    config = config_class(**COMMON, **spec)
    base = model_class(config).float()
    with torch.no_grad():
        for name, p in base.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.copy_(0.5 * torch.randn_like(p))
            elif "embed_tokens" in name or "lm_head" in name:
                p.copy_(0.5 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / p.shape[1] ** 0.5)
    lora = LoraConfig(lora_dropout=0.0, bias="none", task_type="CAUSAL_LM", **lora_spec)
    model = get_peft_model(base, lora)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:  # PEFT starts B at zero: make the adapter do something
                p.copy_(0.3 * torch.randn_like(p))
    return model


def batch(vocab, seed):
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, vocab, (ROWS, SEQ), generator=g)
    target_ids = torch.full((ROWS, SEQ), -1, dtype=torch.long)
    for r, n in enumerate(LENGTHS):
        input_ids[r, n:] = 0
        for p in range(PROMPT - 1, n - 1):
            target_ids[r, p] = input_ids[r, p + 1]
    weights = torch.randn(ROWS, SEQ, generator=g, dtype=torch.float64) * (target_ids >= 0)
    return input_ids, target_ids, weights


def token_logps(model, input_ids, target_ids):
    mask = (torch.arange(SEQ)[None, :] < torch.tensor(LENGTHS)[:, None]).long()
    logits = model(input_ids=input_ids, attention_mask=mask).logits
    logps = torch.log_softmax(logits, dim=-1).gather(-1, target_ids.clamp(min=0)[..., None])[..., 0]
    return logits, logps * (target_ids >= 0)


def saved_name(name):
    return name.replace(".default", "")


def lora_grads(model, prefix):
    return {prefix + saved_name(n): p.grad.detach().float().contiguous() for n, p in model.named_parameters() if "lora_" in n}


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    for seed, (name, (config_class, model_class, spec, lora_spec)) in enumerate(VARIANTS.items()):
        directory = os.path.join(OUT, name)
        model = build(config_class, model_class, spec, lora_spec, 40 + seed)
        model.base_model.model.save_pretrained(os.path.join(directory, "base"), safe_serialization=True)
        os.remove(os.path.join(directory, "base", "model.safetensors"))
        # The base weights without the adapter layers (get_peft_model wrapped them in place).
        base_state = {k.replace("base_layer.", ""): v.contiguous() for k, v in model.base_model.model.state_dict().items()
                      if "lora_" not in k}
        if spec.get("tie_word_embeddings"):
            base_state.pop("lm_head.weight", None)
        save_file(base_state, os.path.join(directory, "base", "model.safetensors"), metadata={"format": "pt"})
        gen = os.path.join(directory, "base", "generation_config.json")
        if os.path.exists(gen):
            os.remove(gen)
        model.peft_config["default"].base_model_name_or_path = "../base"
        model.save_pretrained(os.path.join(directory, "adapter"), safe_serialization=True)

        input_ids, target_ids, logp_weights = batch(spec["vocab_size"], 300 + seed)
        model = model.double()
        model.zero_grad(set_to_none=True)
        logits, logps = token_logps(model, input_ids, target_ids)
        (logp_weights * logps).sum().backward()
        grads = lora_grads(model, "grad.")

        model.zero_grad(set_to_none=True)
        _, policy = token_logps(model, input_ids, target_ids)
        with torch.no_grad(), model.disable_adapter():
            _, reference = token_logps(model, input_ids, target_ids)
        ratios = policy.sum(-1) - reference.sum(-1)
        dpo_loss = -F.logsigmoid(BETA * (ratios[:2] - ratios[2:])).mean()
        dpo_loss.backward()
        dpo_grads = lora_grads(model, "dpo_grad.")

        with torch.no_grad():
            merged = model.merge_and_unload()
            merged_state = {"merged." + k: v.float().contiguous() for k, v in merged.state_dict().items()}
        if spec.get("tie_word_embeddings"):
            merged_state.pop("merged.lm_head.weight", None)
        save_file({
            "input_ids": input_ids.contiguous(), "target_ids": target_ids.contiguous(),
            "lengths": torch.tensor(LENGTHS, dtype=torch.long), "logp_weights": logp_weights.float().contiguous(),
            "logits": logits.detach().float().contiguous(), "token_logps": logps.detach().float().contiguous(),
            "dpo_loss": dpo_loss.detach().float().reshape(()), **grads, **dpo_grads, **merged_state,
        }, os.path.join(directory, "reference.safetensors"))

        # PEFT reloads what it saved onto a fresh base: same logits.
        fresh = model_class.from_pretrained(os.path.join(directory, "base"), attn_implementation="eager").double()
        reloaded = PeftModel.from_pretrained(fresh, os.path.join(directory, "adapter")).double()
        again, _ = token_logps(reloaded, input_ids, target_ids)
        valid = (torch.arange(SEQ)[None, :] < torch.tensor(LENGTHS)[:, None])
        gap = (again[valid] - logits.detach()[valid]).abs().max().item()
        assert gap < 1e-9, f"{name}: reloaded adapter logits differ by {gap}"
        print(f"{name}: dpo_loss {dpo_loss.item():.6f}, {len(grads)} adapter tensors, reload ok")


if __name__ == "__main__":
    main()
