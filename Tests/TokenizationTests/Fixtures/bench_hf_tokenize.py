#!/usr/bin/env python3
"""Single-thread Hugging Face `tokenizers` encoding throughput, to compare with `dpo tokenize --benchmark`.

Usage: RAYON_NUM_THREADS=1 python bench_hf_tokenize.py TOKENIZER_JSON TEXT_FILE REPETITIONS
Prints JSON like `dpo tokenize --benchmark`: per-line encode() loop and encode_batch (1 rayon thread).
A warm-up pass runs first, as on the Swift side.
"""
import json
import sys
import time

from tokenizers import Tokenizer

path, text_file, repetitions = sys.argv[1], sys.argv[2], int(sys.argv[3])
tokenizer = Tokenizer.from_file(path)
lines = open(text_file, encoding="utf-8").read().split("\n")
if lines and lines[-1] == "":
    lines.pop()
size = sum(len(line.encode("utf-8")) for line in lines) * repetitions
for line in lines:
    tokenizer.encode(line, add_special_tokens=False)
start = time.perf_counter()
tokens = 0
for _ in range(repetitions):
    for line in lines:
        tokens += len(tokenizer.encode(line, add_special_tokens=False).ids)
loop = time.perf_counter() - start
start = time.perf_counter()
for _ in range(repetitions):
    batch = tokenizer.encode_batch(lines, add_special_tokens=False)
batched = time.perf_counter() - start
print(json.dumps({"bytes": size, "tokens": tokens, "loop_seconds": round(loop, 4),
                  "loop_megabytes_per_second": round(size / loop / 1e6, 3),
                  "batch_seconds": round(batched, 4), "batch_megabytes_per_second": round(size / batched / 1e6, 3)}))
