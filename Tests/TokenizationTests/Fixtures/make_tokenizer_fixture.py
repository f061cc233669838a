#!/usr/bin/env python3
"""Trains small byte-level BPE tokenizers with Hugging Face `tokenizers` and writes golden ids.

Run from this folder with /work/venv/bin/python make_tokenizer_fixture.py. Writes:
  gpt2_style/tokenizer.json        ByteLevel pre-tokenizer (GPT-2 regex), merges as "a b" strings
  llama3_style/tokenizer.json      Sequence[Split(Llama-3 regex), ByteLevel(use_regex=false)], NFC,
                                   TemplateProcessing post-processor adding <|begin_of_text|>, ignore_merges
  qwen2_style/tokenizer.json       Sequence[Split(Qwen2 regex), ByteLevel(use_regex=false)], merges as ["a","b"] lists
  byte/                            the built-in byte tokenizer written by swift-dpo is checked by
                                   check_byte_tokenizer.py instead (it needs the Swift output).
  golden.json                      for each tokenizer and test string: ids without and with special
                                   tokens (post-processor), and the decoded text.
"""
import json
import os

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))

GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                  r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

CORPUS = [
    "The quick brown fox jumps over the lazy dog. It's a dog's life, isn't it? We'll see, they'd say.",
    "Direct Preference Optimization trains a policy from pairs of chosen and rejected answers.",
    "I can't believe it's not butter! YOU'RE RIGHT, I'VE SEEN IT. They'LL come.",
    "12+7=19 and 123456789 + 42 = 123456831; pi is 3.14159, e is 2.71828.",
    "机器学习是人工智能的一个分支。我们今天学习分词器和偏好优化。",
    "你好，世界！这是一个测试句子，包含中文标点。",
    "Emoji time: 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🇫🇷 and ❤️ hearts.",
    "    indented code\n\tdef f(x):\n\t\treturn x * 2\n\n\n    \n",
    "Multiple   spaces    between   words\r\nand windows line endings\r\n",
    "Ünïcödé àccents: café, naïve, Straße, Ελληνικά, русский текст, العربية.",
    "Numbers like ١٢٣ (Arabic-Indic), ½ and Ⅻ (Roman), ①②③.",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n",
    "def encode(self, text):\n    return [self.vocab[t] for t in text.split()]\n",
    "Mixed: hello世界123abc   !!!???... ''quotes'' \"double\" `back`",
] * 20

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|start_header_id|>",
            "<|end_header_id|>", "<|eot_id|>"]

# Meta's Llama-3 (8B Instruct) chat template, and a Qwen2-style ChatML one without a default system prompt.
LLAMA3_TEMPLATE = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
                   "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + "
                   "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
                   "{{ content }}{% endfor %}{% if add_generation_prompt %}"
                   "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
CHATML_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
                   "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
CONFIGS = {
    "llama3_style": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "pad_token": "<|endoftext|>",
                     "chat_template": LLAMA3_TEMPLATE, "tokenizer_class": "PreTrainedTokenizerFast",
                     "clean_up_tokenization_spaces": False},
    "qwen2_style": {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
                    "chat_template": CHATML_TEMPLATE, "tokenizer_class": "PreTrainedTokenizerFast",
                    "clean_up_tokenization_spaces": False},
}
CONVERSATIONS = [
    [{"role": "user", "content": "What is 12+7?"}],
    [{"role": "user", "content": "What is 12+7?"}, {"role": "assistant", "content": "19"}],
    [{"role": "system", "content": "  Be brief. "}, {"role": "user", "content": "你好 😀\n"},
     {"role": "assistant", "content": "\n spaced answer  "}, {"role": "user", "content": "again"}],
]

TEST_STRINGS = [
    "Hello world",
    " Hello world",
    "Hello, world! How's it going? I'm fine; you'd think we'll've won.",
    "The Quick BROWN fox's TAIL'S end",
    "Ain't IT'S WE'LL they'D I'M you'RE we'VE",
    "12345678901234567890",
    "3.14159 and 2,718 and -42 and 1e10",
    "x = 1234 + 56789",
    "机器学习是人工智能的一个分支",
    "你好，世界！😀",
    "Emoji 😀😃 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️",
    "a  b   c    d",
    "   leading spaces",
    "trailing spaces   ",
    "line1\nline2\n\nline4\n\n\n",
    "\n\n\nstarts with newlines",
    "tabs\tand\t\tmore\ttabs",
    "windows\r\nline\r\n\r\nendings",
    "  \n  \n mixed whitespace \t \n",
    "<|im_start|>user\nWhat is 12+7?<|im_end|>\n<|im_start|>assistant\n19<|im_end|>\n",
    "text<|endoftext|>more text<|endoftext|>",
    "<|im_end|><|im_end|>",
    "not special: <|im_start |> and <im_end>",
    "Ünïcödé àccents: café, naïve, Straße",
    "e\u0301 decomposed accent and café composed",
    "Ελληνικά and русский and العربية",
    "١٢٣٤ Arabic-Indic digits, ½ ⅔ fractions, Ⅻ, ①②③④",
    "code: def f(x):\n    return x * 2  # comment\n",
    "!!!???...,,,;;;",
    "''quotes'' \"double\" `back` 's 't",
    "a",
    " ",
    "",
    "\u00a0non-breaking\u00a0space and\u3000ideographic space",
    "x\u2028line separator\u2029paragraph",
    "\u200bzero width space and \ufeffBOM",
    "ſ's long s contraction and K kelvin",
]


def random_strings(count, seed=1234):
    """Random strings over an alphabet chosen to hit every branch of the pre-tokenizer regexes."""
    import random
    rng = random.Random(seed)
    pieces = ["a", "Z", "hello", "World", "é", "e\u0301", "ß", "Ω", "ж", "中", "文字", "ｱ", "😀", "👍🏽", "👨‍👩‍👧",
              "0", "7", "123", "45678", "١٢", "½", "Ⅻ", "①", "'", "'s", "'S", "'ll", "'LL", "'re", "'Ve", "'d", "'m", "'t",
              "ſ", "'ſ", " ", "  ", "   ", "\t", "\n", "\r\n", "\r", "\n\n", " \n", "\u000b", "\u000c", "\u0085",
              "\u00a0", "\u2003", "\u3000", "\u200b", "\u001c", ".", ",", "!?", "...", "-", "_", "(", ")", "\"", "#",
              "$", "+", "=", "<|im_end|>", "<|im_start|>", "<|endoftext|>", "<|eot_id|>", "<", "|", ">"]
    result = []
    for _ in range(count):
        result.append("".join(rng.choice(pieces) for _ in range(rng.randint(1, 25))))
    return result


TEST_STRINGS += random_strings(300)


def train(pre_tokenizer, normalizer=None):
    tokenizer = Tokenizer(models.BPE())
    if normalizer is not None:
        tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False)
    tokenizer.train_from_iterator(CORPUS, trainer)
    return tokenizer


def main():
    gpt2 = train(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True))
    gpt2.post_processor = processors.ByteLevel(trim_offsets=True)

    llama3 = train(pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ]), normalizer=normalizers.NFC())
    bos_id = llama3.token_to_id("<|begin_of_text|>")
    llama3.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                                      special_tokens=[("<|begin_of_text|>", bos_id)]),
    ])

    qwen2 = train(pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ]), normalizer=normalizers.NFC())

    golden = {"strings": TEST_STRINGS, "tokenizers": {}}
    for name, tokenizer, edit in [
        ("gpt2_style", gpt2, None),
        ("llama3_style", llama3, "ignore_merges"),
        ("qwen2_style", qwen2, "list_merges"),
    ]:
        directory = os.path.join(HERE, name)
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, "tokenizer.json")
        tokenizer.save(path)
        document = json.load(open(path))
        if edit == "ignore_merges":
            document["model"]["ignore_merges"] = True
        if edit == "list_merges":
            document["model"]["merges"] = [m.split(" ") if isinstance(m, str) else m for m in document["model"]["merges"]]
        if edit != "list_merges":
            document["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in document["model"]["merges"]]
        json.dump(document, open(path, "w"), ensure_ascii=False, indent=1)
        reloaded = Tokenizer.from_file(path)
        cases = []
        for text in TEST_STRINGS:
            plain = reloaded.encode(text, add_special_tokens=False).ids
            with_special = reloaded.encode(text, add_special_tokens=True).ids
            cases.append({
                "ids": plain,
                "ids_with_special_tokens": with_special,
                "decoded": reloaded.decode(plain, skip_special_tokens=False),
                "decoded_skipping_special": reloaded.decode(plain, skip_special_tokens=True),
            })
        golden["tokenizers"][name] = cases
        if name in CONFIGS:
            json.dump(CONFIGS[name], open(os.path.join(directory, "tokenizer_config.json"), "w"), indent=1)
            from transformers import AutoTokenizer
            auto = AutoTokenizer.from_pretrained(directory)
            renderings = []
            for messages in CONVERSATIONS:
                for generation in (False, True):
                    text = auto.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)
                    renderings.append({"messages": messages, "add_generation_prompt": generation, "text": text,
                                       "ids": auto(text, add_special_tokens=False)["input_ids"]})
            golden.setdefault("renderings", {})[name] = renderings
        print(name, "vocab", reloaded.get_vocab_size(), "merges", len(document["model"]["merges"]))
    json.dump(golden, open(os.path.join(HERE, "golden.json"), "w"), ensure_ascii=False, separators=(",", ":"))


if __name__ == "__main__":
    main()
