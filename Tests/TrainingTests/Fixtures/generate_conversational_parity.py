#!/usr/bin/env python3
"""Reference ids and log-probs of conversational preference pairs under TRL's rules, for
ConversationalParityTests.swift.

Run from the repository root:
    /work/venv/bin/python Tests/TrainingTests/Fixtures/generate_conversational_parity.py

Writes Tests/TrainingTests/Fixtures/conversational_parity/:
  model/            a small random LlamaForCausalLM (fixed seed, float32) with the byte tokenizer's files
                    and a Qwen2.5-style chat_template.jinja (default system prompt), loaded back by
                    AutoTokenizer, so the template transformers finds is the one in the directory
  pairs.jsonl       conversational pairs: with/without system, multi-turn, unicode
  mismatch.jinja    a template whose generation prompt differs from the start of the full rendering
                    (an empty think block only when prompting), as Gemma-style templates do
  expected.json     for each template (the model's and mismatch.jinja): per pair the prompt, chosen and
                    rejected ids made by TRL 1.16's DPOTrainer tokenization (trl.data_utils._tokenize +
                    common_prefix_length), and the summed completion log-probs in float64
"""
import json
import os
import shutil

import torch
from safetensors.torch import save_file
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
from trl.data_utils import _tokenize, common_prefix_length

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "conversational_parity")
BYTE = os.path.join(HERE, "..", "..", "TokenizationTests", "Fixtures", "byte")

MODEL_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
    "{%- else %}\n"
    "    {{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}\n"
    "{%- endif %}\n"
    "{%- for message in messages %}\n"
    "    {%- if message.role != 'system' or not loop.first %}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n"
)

MISMATCH_TEMPLATE = (
    "{%- for message in messages %}\n"
    "    {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n' }}\n"
    "{%- endif %}\n"
)

PAIRS = [
    {"prompt": [{"role": "user", "content": "What is 2+3?"}],
     "chosen": [{"role": "assistant", "content": "5"}],
     "rejected": [{"role": "assistant", "content": "6, I think."}]},
    {"prompt": [{"role": "system", "content": "Answer in one word."}, {"role": "user", "content": "Sky colour?"}],
     "chosen": [{"role": "assistant", "content": "Blue"}],
     "rejected": [{"role": "assistant", "content": "It depends on the weather"}]},
    {"prompt": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": "Grüße 👋, ça va?"}],
     "chosen": [{"role": "assistant", "content": "Très bien 🙂"}],
     "rejected": [{"role": "assistant", "content": "no"}]},
]


def build_model():
    torch.manual_seed(1234)
    config = LlamaConfig(vocab_size=259, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         rope_theta=1e4, rms_norm_eps=1e-5, tie_word_embeddings=True,
                         bos_token_id=None, eos_token_id=258, pad_token_id=256, attn_implementation="eager")
    model = LlamaForCausalLM(config).float()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif "embed_tokens" in name:
                p.copy_(0.5 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / p.shape[1] ** 0.5)
    return model


def trl_ids(tokenizer, example, chat_template):
    """TRL 1.16 DPOTrainer._prepare_dataset's tokenize_fn for a conversational example."""
    kwargs = {"tools": None}
    if chat_template is not None:
        kwargs["chat_template"] = chat_template
    prompt_ids = _tokenize(tokenizer, example["prompt"], add_generation_prompt=True, **kwargs)["input_ids"]
    chosen_full = _tokenize(tokenizer, example["prompt"] + example["chosen"], **kwargs)["input_ids"]
    rejected_full = _tokenize(tokenizer, example["prompt"] + example["rejected"], **kwargs)["input_ids"]
    cut = min(common_prefix_length(prompt_ids, chosen_full), common_prefix_length(prompt_ids, rejected_full))
    return prompt_ids[:cut], chosen_full[cut:], rejected_full[cut:], cut < len(prompt_ids)


def completion_logp(model, prompt, completion):
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = model.double()(input_ids=ids).logits[0]
    logps = torch.log_softmax(logits, dim=-1)
    total = 0.0
    for position in range(len(prompt), len(prompt) + len(completion)):
        total += logps[position - 1, ids[0, position]].item()
    return total


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    model_dir = os.path.join(OUT, "model")
    os.makedirs(model_dir)
    model = build_model()
    model.config.save_pretrained(model_dir)
    save_file({k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"},
              os.path.join(model_dir, "model.safetensors"), metadata={"format": "pt"})
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(os.path.join(BYTE, name), model_dir)
    with open(os.path.join(model_dir, "chat_template.jinja"), "w", encoding="utf-8") as handle:
        handle.write(MODEL_TEMPLATE)
    with open(os.path.join(OUT, "mismatch.jinja"), "w", encoding="utf-8") as handle:
        handle.write(MISMATCH_TEMPLATE)
    with open(os.path.join(OUT, "pairs.jsonl"), "w", encoding="utf-8") as handle:
        for pair in PAIRS:
            handle.write(json.dumps(pair, ensure_ascii=False) + "\n")

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert tokenizer.chat_template == MODEL_TEMPLATE, "transformers must find chat_template.jinja in the directory"
    expected = {}
    for name, template in (("model", None), ("mismatch", MISMATCH_TEMPLATE)):
        rows = []
        for pair in PAIRS:
            prompt, chosen, rejected, mismatch = trl_ids(tokenizer, pair, template)
            rows.append({"prompt_ids": prompt, "chosen_ids": chosen, "rejected_ids": rejected, "prompt_mismatch": mismatch,
                         "chosen_logps": completion_logp(model, prompt, chosen),
                         "rejected_logps": completion_logp(model, prompt, rejected)})
        expected[name] = rows
    with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as handle:
        json.dump(expected, handle, indent=1)
        handle.write("\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
