"""The `manifest.json` convert writes beside its artifacts: `load` checks an artifact it lists.

The manifest records each artifact's size and sha256. When one sits beside a
file being loaded and lists it, a file changed since convert wrote it (a
flipped byte, a partial copy, an edited metadata block) is refused instead of
answering differently.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from edgelite.errors import ModelFileError

MANIFEST_NAME = "manifest.json"
# A manifest lists a few artifacts: one past this is not ours.
MAX_MANIFEST_BYTES = 16 << 20
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ManifestCheck:
    """An artifact found intact against the manifest beside it."""

    manifest: Path
    sha256: str
    size_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"manifest": str(self.manifest), "sha256": self.sha256, "size_bytes": self.size_bytes,
                "verified": True}


def check_manifest(path: Path, content: Optional[bytes] = None) -> Optional[ManifestCheck]:
    """Check `path` (whose bytes are `content` when already read) against the manifest beside it.

    Returns None when there is no manifest or it does not list the file.

    Raises:
        ModelFileError: the manifest is unreadable, or the file's size or
            sha256 differs from what it records (both digests named).
    """
    manifest = path.parent / MANIFEST_NAME
    if not manifest.is_file():
        return None
    entry = _entry(manifest, path.name)
    if entry is None:
        return None
    expected_size, expected = entry.get("size_bytes"), entry.get("sha256")
    if not isinstance(expected, str) or not isinstance(expected_size, int):
        raise ModelFileError(f"{path.name}: {manifest} lists it without a size and sha256; "
                             "convert again or remove the manifest")
    size = len(content) if content is not None else path.stat().st_size
    digest = _sha256(path, content)
    if size != expected_size or digest != expected.lower():
        raise ModelFileError(
            f"{path.name}: the file differs from what {manifest.name} records ({size:,} bytes, sha256 {digest}; "
            f"the manifest says {expected_size:,} bytes, sha256 {expected}); the file is damaged or was changed "
            "after convert: get an intact copy or convert again")
    return ManifestCheck(manifest, digest, size)


def _entry(manifest: Path, name: str) -> Optional[dict]:
    try:
        with open(manifest, "rb") as handle:
            text = handle.read(MAX_MANIFEST_BYTES + 1)
        if len(text) > MAX_MANIFEST_BYTES:
            raise ValueError(f"over {MAX_MANIFEST_BYTES >> 20} MB")
        data = json.loads(text)
        artifacts = data.get("artifacts", []) if isinstance(data, dict) else None
        if not isinstance(artifacts, list):
            raise ValueError("no list of artifacts")
    except (OSError, ValueError, RecursionError) as exc:
        raise ModelFileError(f"{manifest}: the manifest beside the model cannot be read ({exc}); "
                             "fix or remove it") from None
    return next((a for a in artifacts if isinstance(a, dict) and a.get("file") == name), None)


def _sha256(path: Path, content: Optional[bytes]) -> str:
    if content is not None:
        return hashlib.sha256(content).hexdigest()
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()
