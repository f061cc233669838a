#!/usr/bin/env python3
"""Checks that TensorBoard's own reader loads the event files TensorBoardSink writes.

Not run by the Swift tests (they never need Python); run by hand after a change to the
event writer:

    SWIFT_DPO_KEEP_EVENTS=/tmp/dpo-events swift test --filter TensorBoardSinkTests
    /work/venv/bin/python Tests/TrainingTests/Fixtures/check_tensorboard_events.py /tmp/dpo-events

or on a real run, comparing against the metrics.jsonl written beside it:

    python check_tensorboard_events.py runs/dpo/tensorboard --metrics runs/dpo/metrics.jsonl

Needs `pip install tensorboard`. Exits non-zero with a message on any mismatch.
"""
import argparse
import json
import math
import struct
import sys

from tensorboard.backend.event_processing import event_accumulator
from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
from tensorboard.compat.proto import event_pb2

# What TensorBoardSinkTests.testEventFileReadsBackWithVerifiedCRCsTagsStepsAndValues logs.
TEST_STEPS = [1, 2, 3, 5, 10]


def test_metrics(step):
    s = float(step)
    return [
        ("loss", 0.6931 - 0.01 * s), ("rewards/chosen", 0.02 * s), ("rewards/rejected", -0.03 * s),
        ("rewards/accuracies", 0.5 + 0.05 * s), ("rewards/margins", 0.05 * s),
        ("logps/chosen", -40.5 + s), ("logps/rejected", -42.25 - s), ("grad_norm", 1.5),
        ("learning_rate", 5e-7), ("epoch", 0.125 * s),
    ]


def float32(value):
    return struct.unpack("<f", struct.pack("<f", value))[0]


def expected_from_test():
    expected = {}
    for step in TEST_STEPS:
        for tag, value in test_metrics(step):
            expected.setdefault(tag, []).append((step, float32(value)))
    expected["eval_loss"] = [(10, float32(0.42))]
    return expected


def expected_from_jsonl(path):
    expected = {}
    with open(path) as handle:
        for line in handle:
            if not line.strip():
                continue
            record = json.loads(line)
            step = record.pop("step")
            for tag, value in record.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    expected.setdefault(tag, []).append((step, float32(value)))
                elif value is None:
                    expected.setdefault(tag, []).append((step, float("nan")))
    return expected


def expected_log_calls(metrics_path):
    if metrics_path is None:
        return len(TEST_STEPS) + 1  # the test also logs eval_loss at step 10
    with open(metrics_path) as handle:
        return sum(1 for line in handle if line.strip())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logdir", help="directory holding events.out.tfevents.* (OUT/tensorboard)")
    parser.add_argument("--metrics", help="metrics.jsonl to compare against (default: what the Swift test logs)")
    args = parser.parse_args()

    # 1. The raw record reader. It checks both masked CRC-32Cs of every record and stops at a
    #    record that fails, so a corrupted file shows up as missing records here.
    import glob
    files = sorted(glob.glob(args.logdir + "/events.out.tfevents.*"))
    if len(files) != 1:
        sys.exit(f"expected one event file in {args.logdir}, found {files}")
    raw_events = [event_pb2.Event.FromString(data) for data in RawEventFileLoader(files[0], detect_file_replacement=False).Load()]
    logged = expected_log_calls(args.metrics)
    if len(raw_events) != 1 + logged:
        sys.exit(f"{files[0]}: TensorBoard read {len(raw_events)} valid records, expected {1 + logged} "
                 "(file version + one per logged step): a record is corrupt or missing")
    if raw_events[0].file_version != "brain.Event:2":
        sys.exit(f"first event has file_version {raw_events[0].file_version!r}")

    # 2. The accumulator TensorBoard's UI uses.
    accumulator = event_accumulator.EventAccumulator(args.logdir, size_guidance={event_accumulator.SCALARS: 0})
    accumulator.Reload()
    tags = accumulator.Tags()["scalars"]
    expected = expected_from_jsonl(args.metrics) if args.metrics else expected_from_test()
    if sorted(tags) != sorted(expected):
        sys.exit(f"scalar tags differ:\n  tensorboard: {sorted(tags)}\n  expected:    {sorted(expected)}")
    for tag, points in expected.items():
        got = [(event.step, event.value) for event in accumulator.Scalars(tag)]
        if len(got) != len(points):
            sys.exit(f"{tag}: {len(got)} points, expected {len(points)}")
        for (step, value), (expected_step, expected_value) in zip(got, points):
            same = (math.isnan(value) and math.isnan(expected_value)) or value == expected_value
            if step != expected_step or not same:
                sys.exit(f"{tag}: got ({step}, {value}), expected ({expected_step}, {expected_value})")
    count = sum(len(points) for points in expected.values())
    print(f"OK: {files[0]}: {len(raw_events)} records, CRCs valid, file_version brain.Event:2, "
          f"{len(tags)} scalar tags, {count} (step, value) points match")


if __name__ == "__main__":
    main()
