"""Read TensorBoard event files back without the `tensorboard` package (tensorboardX ships only the writer).

An event file is TFRecord framing (8-byte little-endian length, 4-byte CRC, the `Event` protobuf, 4-byte
CRC) around tensorboardX's own `event_pb2.Event` messages.
"""
from __future__ import annotations

import struct
from collections import defaultdict
from pathlib import Path


def read_events(log_dir: Path) -> tuple[dict[str, list[tuple[int, float]]], dict[str, list[tuple[int, str]]]]:
    """(scalars, texts) of every event file under `log_dir`: tag -> [(step, value)] in file order."""
    from tensorboardX.proto import event_pb2

    scalars: dict[str, list[tuple[int, float]]] = defaultdict(list)
    texts: dict[str, list[tuple[int, str]]] = defaultdict(list)
    files = sorted(Path(log_dir).rglob("events.out.tfevents.*"))
    assert files, f"no event files under {log_dir}"
    for path in files:
        data, offset = path.read_bytes(), 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset: offset + 8])
            event = event_pb2.Event()
            event.ParseFromString(data[offset + 12: offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                if value.WhichOneof("value") == "simple_value":
                    scalars[value.tag].append((event.step, value.simple_value))
                elif value.tensor.string_val:
                    texts[value.tag].append((event.step, value.tensor.string_val[0].decode()))
    return dict(scalars), dict(texts)
