"""Verified downloads: streamed to `<file>.part`, resumed with a Range request, checked,
renamed into place under a file lock every process shares."""

from __future__ import annotations

import http.client
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock
from tqdm import tqdm

from glide_ui import __version__
from glide_ui.checkpoints import hashes
from glide_ui.checkpoints.registry import (
    CHECKPOINTS_ENV,
    CheckpointSpec,
    DownloadError,
    DownloadProgress,
    ProgressCallback,
)


class _Interrupted(Exception):
    """The transfer stopped after some bytes arrived: worth resuming at once."""


def download(spec: CheckpointSpec, directory: Path, progress: ProgressCallback | None = None,
             *, retries: int = 3, timeout: float = 30.0) -> Path:
    """Download `spec` into `directory`, verified, renamed into place atomically.

    A leftover `<file>.part` is resumed. A transfer cut after some bytes arrived is resumed
    up to `retries` times; anything else raises DownloadError, keeping the part file so a
    later call resumes it (unless it was wrong, which is deleted).
    """
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / spec.filename
    part = directory / (spec.filename + ".part")
    with FileLock(str(directory / (spec.filename + ".lock"))):
        if final.is_file():  # another process finished it while this one waited
            return final
        for attempt in range(retries + 1):
            try:
                total = _transfer(spec, part, progress, timeout)
                break
            except _Interrupted as error:
                if attempt == retries:
                    raise DownloadError(_by_hand(spec, directory, str(error))) from error
                time.sleep(0.1 * (attempt + 1))
        digest = _verify(spec, part, total)
        os.replace(part, final)
        if digest is not None:
            hashes.write_hash_record(final, digest)
    return final


def _transfer(spec: CheckpointSpec, part: Path, progress: ProgressCallback | None,
              timeout: float) -> int:
    """Append the rest of the file to `part`; returns the file's total size."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": f"glide-ui/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(spec.url, headers=headers),
                                          timeout=timeout)
    except urllib.error.HTTPError as error:
        total = _range_not_satisfiable_total(error) if offset else None
        if total == offset:  # the part file already holds the whole file
            return total
        if total is not None:  # the part file is longer than the file: start again
            part.unlink()
            raise _Interrupted(f"HTTP {error.code}: partial download was stale") from error
        raise DownloadError(_by_hand(spec, part.parent, f"HTTP {error.code} {error.reason}")) \
            from error
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        raise DownloadError(_by_hand(spec, part.parent, _reason(error))) from error
    with response:
        offset, total = _resume_point(response, offset, spec)
        return _stream(spec, response, part, offset, total, progress)


def _resume_point(response: http.client.HTTPResponse, offset: int,
                  spec: CheckpointSpec) -> tuple[int, int | None]:
    """(where this response starts, total size); a server ignoring Range restarts at 0."""
    if response.status == 206:
        match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)",
                             response.headers.get("Content-Range", "").strip())
        if match and int(match.group(1)) == offset:
            total = match.group(2)
            return offset, int(total) if total != "*" else spec.size
        raise _Interrupted("the server answered a different range than asked")
    length = response.headers.get("Content-Length")
    return 0, int(length) if length else spec.size


def _stream(spec: CheckpointSpec, response: http.client.HTTPResponse, part: Path, offset: int,
            total: int | None, progress: ProgressCallback | None) -> int:
    done = offset
    with open(part, "ab" if offset else "wb") as out, \
            tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                 desc=spec.filename, disable=None) as bar:
        try:
            for chunk in _chunks(response):
                out.write(chunk)
                done += len(chunk)
                bar.update(len(chunk))
                if progress is not None:
                    progress(DownloadProgress(spec.name, spec.filename, done, total))
        except (OSError, http.client.HTTPException) as error:
            if done > offset:
                raise _Interrupted(_reason(error)) from error
            raise DownloadError(_by_hand(spec, part.parent, _reason(error))) from error
    if total is not None and done < total:
        if done > offset:
            raise _Interrupted(f"connection closed at {done} of {total} bytes")
        raise DownloadError(_by_hand(spec, part.parent, "the server sent no data"))
    return done if total is None else total


def _chunks(response: http.client.HTTPResponse, size: int = 1 << 20) -> Iterator[bytes]:
    while chunk := response.read(size):
        yield chunk


def _range_not_satisfiable_total(error: urllib.error.HTTPError) -> int | None:
    if error.code != 416:
        return None
    match = re.fullmatch(r"bytes \*/(\d+)", (error.headers.get("Content-Range") or "").strip())
    return int(match.group(1)) if match else None


def _verify(spec: CheckpointSpec, part: Path, total: int) -> str | None:
    """Check the finished part file; a wrong one is deleted. Returns its sha256 if hashed."""
    size = part.stat().st_size
    expected_size = spec.size if spec.size is not None else total
    if size != expected_size:
        part.unlink()
        raise DownloadError(f"The download of {spec.filename} from {spec.url} is {size} bytes, "
                            f"expected {expected_size}; it was deleted. Try again.")
    if spec.sha256 is None:
        return None
    digest = hashes.hash_file(part)
    if digest != spec.sha256:
        part.unlink()
        raise DownloadError(f"The download of {spec.filename} from {spec.url} has sha256 "
                            f"{digest}, expected {spec.sha256}; it was deleted. Try again.")
    return digest


def _reason(error: BaseException) -> str:
    reason = getattr(error, "reason", None)
    return str(reason if reason is not None else error) or type(error).__name__


def _by_hand(spec: CheckpointSpec, directory: Path, reason: str) -> str:
    return (f"Could not download {spec.filename} ({spec.name}) from {spec.url}: {reason}. "
            f"Download it by hand and put it at {directory / spec.filename}, or in a folder "
            f"given with --checkpoints or {CHECKPOINTS_ENV}.")
