"""Where weights come from: the registry, the cache, verified downloads, safe loading.

A checkpoint is looked for in an explicit directory (`--checkpoints DIR` /
`GLIDE_CHECKPOINTS`), then in the cache (`GLIDE_CACHE_DIR`, default the user's cache
directory), and is otherwise downloaded to the cache. Downloads stream to `<file>.part`
beside the final file, resume with a Range request, are verified, and only then renamed
into place, under a file lock shared by every process using the same directory.
"""


from __future__ import annotations

from pathlib import Path

from glide_ui.checkpoints.downloads import download
from glide_ui.checkpoints.hashes import file_sha256
from glide_ui.checkpoints.loading import (
    load_into,
    load_state_dict,
    meta_device,
    move_aside,
    set_aside_if_cached,
    verify_local,
)
from glide_ui.checkpoints.registry import (
    CACHE_ENV,
    CHECKPOINTS_ENV,
    GLIDE_NAMES,
    GLIDE_URL,
    OPENAI_CLIP_NAMES,
    OPENAI_CLIP_URL,
    REGISTRY,
    CheckpointError,
    CheckpointSpec,
    CorruptCheckpointError,
    DownloadError,
    DownloadProgress,
    ProgressCallback,
    cache_dir,
    checkpoints_dir,
    get_spec,
    locate,
)

__all__ = ["CACHE_ENV", "CHECKPOINTS_ENV", "GLIDE_NAMES", "GLIDE_URL", "OPENAI_CLIP_NAMES",
           "OPENAI_CLIP_URL", "REGISTRY", "CheckpointError", "CheckpointSpec",
           "CorruptCheckpointError", "DownloadError", "DownloadProgress", "ProgressCallback",
           "cache_dir", "checkpoints_dir", "download", "fetch", "file_sha256", "get_spec",
           "load_into", "load_state_dict", "locate", "meta_device", "move_aside",
           "set_aside_if_cached", "verify_local"]


def fetch(spec: CheckpointSpec, checkpoints: Path | None, cache: Path,
          progress: ProgressCallback | None = None) -> Path:
    """The path of a local copy of `spec`, downloading it to the cache if there is none."""
    return locate(spec, checkpoints, cache) or download(spec, cache, progress)
