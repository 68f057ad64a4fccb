"""`--reload-on-change`: swap in a new model file once it has loaded and passed a test prediction."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Optional

from edgelite.runtime import load
from edgelite.serve.core import InferenceCore, ModelCore

log = logging.getLogger("edgelite.serve")
Stamp = tuple[int, int, int]


def _stamp(path: Path) -> Optional[Stamp]:
    try:
        stat = os.stat(path)
    except OSError:  # being replaced; look again at the next poll
        return None
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


async def watch(core: InferenceCore) -> None:
    """Poll each model file; on a change, load the new file next to the old model and swap only if it works.

    The old model serves until the new one has loaded and given finite scores
    for a test image; if the new file is bad, the old one keeps serving, the
    error is logged, and the next change of the file is tried again.
    """
    poll = core.options.reload_poll_s
    paths = {name: Path(model_core.model.path) for name, model_core in core.models.items()}
    seen = {name: _stamp(path) for name, path in paths.items()}
    while True:
        await asyncio.sleep(poll)
        for name, model_core in core.models.items():
            stamp = _stamp(paths[name])
            if stamp is None or stamp == seen[name]:
                continue
            # A file still being written changes between two looks: wait until it holds still.
            await asyncio.sleep(min(poll, 0.2))
            if _stamp(paths[name]) != stamp:
                continue
            seen[name] = stamp
            await reload(model_core, paths[name])


async def reload(model_core: ModelCore, path: Path) -> bool:
    """Load `path` beside the serving model and swap it in if it works; True when swapped."""
    metrics = model_core.metrics.reloads
    try:
        new = await asyncio.to_thread(load, path, threads=model_core.options.threads)
        await model_core.swap(new)
    except Exception as exc:  # any failure of the new file leaves the old model serving
        log.error("model %s: %s changed but cannot be served (%s: %s); still serving the previous version",
                  model_core.name, path, type(exc).__name__, exc)
        metrics.labels(model=model_core.name, result="kept_old").inc()
        return False
    metrics.labels(model=model_core.name, result="swapped").inc()
    return True
