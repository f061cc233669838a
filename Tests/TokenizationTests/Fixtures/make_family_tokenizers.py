#!/usr/bin/env python3
"""Small tokenizers in the shapes the hub's model families ship, built with Hugging Face
`tokenizers`, and their golden ids (FamilyTokenizerTests.swift).

Run from this folder with /work/venv/bin/python make_family_tokenizers.py. Reuses the corpus and
test strings of make_tokenizer_fixture.py, plus strings aimed at the new components. Writes:
  smollm2_style/     Sequence[Digits(individual_digits=true), ByteLevel] (SmolLM2 / StarCoder)
  digits_nfkc_style/ NFKC normalizer, Sequence[Digits(individual_digits=false), ByteLevel]
  llama2_style/      sentencepiece BPE as Llama-2 / TinyLlama / Mistral v0.1 tokenizer.json files:
                     normalizer Sequence[Prepend("▁"), Replace(" " -> "▁")], no pre-tokenizer,
                     BPE with byte_fallback (<0x00>..<0xFF> in the vocabulary), decoder
                     Sequence[Replace("▁" -> " "), ByteFallback, Fuse, Strip(" ", 1, 0)],
                     TemplateProcessing "<s> $A", tokenizer_config add_bos_token true
  metaspace_style/   the newer conversion of the same: Metaspace pre-tokenizer and decoder
                     (prepend_scheme "first", split false), no normalizer
  metaspace_split_style/ Metaspace with prepend_scheme "always", split true
  golden_families.json  for each tokenizer and string: ids without and with the post-processor,
                     and the decoded text with and without special tokens.
The alphabet is limited in training, so Chinese, emoji and rare letters go through byte fallback.
"""
import json
import os

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from make_tokenizer_fixture import CORPUS, SPECIALS, TEST_STRINGS

HERE = os.path.dirname(os.path.abspath(__file__))
SP_SPECIALS = ["<unk>", "<s>", "</s>"]
EXTRA_STRINGS = [
    "<s>Hello</s> world<s>",
    "▁already▁marked and <0x41> written out",
    "1 22 333 4444 55555 666666 digits: 0.5, 10,000, ٣٤, ²³",
    "  two leading spaces, then   three",
    "ﬁ ligature, ｆｕｌｌwidth, ① circled, Ⅻ roman (NFKC changes these)",
    "ŝ ğ ő rare letters and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math",
]
STRINGS = TEST_STRINGS[:130] + EXTRA_STRINGS


def byte_level(pre_tokenizer, normalizer=None):
    tokenizer = Tokenizer(models.BPE())
    if normalizer is not None:
        tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(CORPUS, trainer)
    return tokenizer


def sentencepiece(normalizer, pre_tokenizer, decoder):
    """BPE over characters with byte fallback; <unk>, <s>, </s> at 0..2 and <0x00>..<0xFF> at 3..258."""
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoder
    trainer = trainers.BpeTrainer(vocab_size=500, special_tokens=SP_SPECIALS, limit_alphabet=70, show_progress=False)
    tokenizer.train_from_iterator(CORPUS, trainer)
    document = json.loads(tokenizer.to_str())
    vocab = document["model"]["vocab"]
    shifted = {token: (index if index < 3 else index + 256) for token, index in vocab.items()}
    for byte in range(256):
        shifted[f"<0x{byte:02X}>"] = 3 + byte
    document["model"]["vocab"] = dict(sorted(shifted.items(), key=lambda item: item[1]))
    document["post_processor"] = json.loads(processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]).__getstate__())
    return Tokenizer.from_str(json.dumps(document))


def main():
    built = {
        "smollm2_style": byte_level(pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])),
        "digits_nfkc_style": byte_level(pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]), normalizer=normalizers.NFKC()),
        "llama2_style": sentencepiece(
            normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]), None,
            decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                               decoders.Strip(" ", 1, 0)])),
        "metaspace_style": sentencepiece(
            None, pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False),
            decoders.Metaspace(replacement="▁", prepend_scheme="first", split=False)),
        "metaspace_split_style": sentencepiece(
            None, pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True),
            decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)),
    }
    configs = {
        "llama2_style": {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
                         "unk_token": "<unk>", "pad_token": None, "legacy": True, "tokenizer_class": "LlamaTokenizer"},
    }
    golden = {"strings": STRINGS, "tokenizers": {}}
    for name, tokenizer in built.items():
        directory = os.path.join(HERE, name)
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, "tokenizer.json")
        tokenizer.save(path)
        json.dump(json.load(open(path)), open(path, "w"), ensure_ascii=False, indent=1)
        if name in configs:
            json.dump(configs[name], open(os.path.join(directory, "tokenizer_config.json"), "w"), indent=1)
        reloaded = Tokenizer.from_file(path)
        cases = []
        for text in STRINGS:
            plain = reloaded.encode(text, add_special_tokens=False).ids
            cases.append({
                "ids": plain,
                "ids_with_special_tokens": reloaded.encode(text, add_special_tokens=True).ids,
                "decoded": reloaded.decode(plain, skip_special_tokens=False),
                "decoded_skipping_special": reloaded.decode(plain, skip_special_tokens=True),
            })
        golden["tokenizers"][name] = cases
        fallback = sum(1 for case in cases for i in case["ids"] if 3 <= i < 259) if "style" in name and name not in (
            "smollm2_style", "digits_nfkc_style") else 0
        print(f"{name}: vocab {reloaded.get_vocab_size()}, {os.path.getsize(path)} bytes, byte-fallback ids in golden {fallback}")
    json.dump(golden, open(os.path.join(HERE, "golden_families.json"), "w"), ensure_ascii=False, separators=(",", ":"))


if __name__ == "__main__":
    main()
