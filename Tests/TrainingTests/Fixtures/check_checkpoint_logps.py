"""Cross-checks a `dpo train` checkpoint against transformers, outside `swift test`.

    dpo logps --model OUT/final --data pairs.jsonl > ours.jsonl
    /work/venv/bin/python Tests/TrainingTests/Fixtures/check_checkpoint_logps.py OUT/final pairs.jsonl ours.jsonl

Loads the checkpoint with LlamaForCausalLM + AutoTokenizer (so it proves the directory is a
valid Hugging Face model), encodes standard (prompt, chosen, rejected) string pairs the way
DESIGN.md section 3 says (no special tokens, EOS appended to each completion), sums the
completion log-probs in float32 and compares with `dpo logps`' lines. Exit status 1 on a
difference above the tolerance. Measured on a 12-step tiny-preset run: max |diff| ~1e-6.
"""
import json
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main(directory, pairs_path, ours_path, tolerance=1e-4):
    model = AutoModelForCausalLM.from_pretrained(directory, torch_dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(directory)
    eos = model.config.eos_token_id
    ours = [json.loads(line) for line in open(ours_path)]
    worst = 0.0
    for index, line in enumerate(open(pairs_path)):
        record = json.loads(line)
        mine = ours[index]
        if "dropped" in mine:
            continue
        prompt = tokenizer(record["prompt"], add_special_tokens=False)["input_ids"]
        for key in ("chosen", "rejected"):
            completion = tokenizer(record[key], add_special_tokens=False)["input_ids"] + [eos]
            ids = torch.tensor([prompt + completion])
            with torch.no_grad():
                logps = torch.log_softmax(model(ids).logits.float(), -1)[0]
            total = sum(logps[len(prompt) - 1 + j, completion[j]].item() for j in range(len(completion)))
            assert mine[key + "_tokens"] == len(completion), (index, key, mine)
            worst = max(worst, abs(total - mine[key + "_logps"]))
    print(f"{len(ours)} pairs, max |transformers - dpo logps| = {worst:.3g}")
    return 0 if worst <= tolerance else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
