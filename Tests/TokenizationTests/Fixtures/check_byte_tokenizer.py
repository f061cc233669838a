#!/usr/bin/env python3
"""Checks the built-in byte tokenizer files with Hugging Face and writes golden ids and chat renderings.

Usage (from the repository root):
  swift run dpo tokenize --tokenizer byte --save Tests/TokenizationTests/Fixtures/byte
  /work/venv/bin/python Tests/TokenizationTests/Fixtures/check_byte_tokenizer.py

Loads Fixtures/byte with `tokenizers.Tokenizer.from_file` and `transformers.AutoTokenizer`, checks that
both give the same ids, that byte b is id b, the special token ids, and writes byte_golden.json:
ids of every golden.json string, and AutoTokenizer.apply_chat_template renderings (text and ids).
The Swift tests check that TokenizerFiles still writes exactly the committed files.
"""
import json
import os

from tokenizers import Tokenizer
from transformers import AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
DIRECTORY = os.path.join(HERE, "byte")

CONVERSATIONS = [
    [{"role": "user", "content": "12+7="}],
    [{"role": "user", "content": "12+7="}, {"role": "assistant", "content": "19"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "你好 😀"},
     {"role": "assistant", "content": "  spaced\nanswer  "}, {"role": "user", "content": "again"}],
]


def main():
    strings = json.load(open(os.path.join(HERE, "golden.json")))["strings"]
    fast = Tokenizer.from_file(os.path.join(DIRECTORY, "tokenizer.json"))
    auto = AutoTokenizer.from_pretrained(DIRECTORY)
    assert auto.eos_token_id == 258 and auto.pad_token_id == 256 and auto.bos_token_id is None, (
        auto.eos_token_id, auto.pad_token_id, auto.bos_token_id)
    assert fast.token_to_id("<|im_start|>") == 257
    for b in range(256):
        assert fast.decode([b]).encode("utf-8", "surrogatepass") or b >= 128
    assert fast.encode("".join(chr(c) for c in range(32, 127))).ids == list(range(32, 127))
    cases = []
    for text in strings:
        ids = fast.encode(text, add_special_tokens=False).ids
        assert ids == auto(text, add_special_tokens=False)["input_ids"], text
        assert ids == auto(text, add_special_tokens=True)["input_ids"], text
        cases.append({"ids": ids, "decoded": fast.decode(ids, skip_special_tokens=False),
                      "decoded_skipping_special": fast.decode(ids, skip_special_tokens=True)})
    renderings = []
    for messages in CONVERSATIONS:
        for generation in (False, True):
            text = auto.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)
            ids = auto.apply_chat_template(messages, tokenize=True, add_generation_prompt=generation)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            renderings.append({"messages": messages, "add_generation_prompt": generation, "text": text, "ids": list(ids)})
    json.dump({"strings": strings, "cases": cases, "renderings": renderings},
              open(os.path.join(HERE, "byte_golden.json"), "w"), ensure_ascii=False, separators=(",", ":"))
    print("byte tokenizer: HF tokenizers and AutoTokenizer agree on", len(strings), "strings;",
          len(renderings), "chat renderings written")


if __name__ == "__main__":
    main()
