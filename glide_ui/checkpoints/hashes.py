"""A checkpoint file's sha256, computed once and remembered beside the file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def file_sha256(path: Path) -> str:
    """The sha256 of a file, computed once and remembered in `<file>.sha256` beside it."""
    stat = path.stat()
    key = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    record = hash_record_path(path)
    try:
        data = json.loads(record.read_text())
        if {k: data.get(k) for k in key} == key and isinstance(data.get("sha256"), str):
            return data["sha256"]
    except (OSError, ValueError):
        pass
    digest = hash_file(path)
    write_hash_record(path, digest)
    return digest


def hash_record_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def write_hash_record(path: Path, digest: str) -> None:
    stat = path.stat()
    record = {"sha256": digest, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    try:
        hash_record_path(path).write_text(json.dumps(record))
    except OSError:
        pass  # a read-only checkpoints folder: the hash is recomputed next time


def hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()
