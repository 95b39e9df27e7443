"""A results cache for live runs, so a lecturer can show curves at once instead of waiting.

A run is identified by a key: the SHA-256 of its parameters together with its *scope* (the
notebook, the profile, the seed, the device, the source of the run function and the version of
``course_lib``'s code). Change any of them and the key changes, so a stale result is never shown.
Entries are JSON files (results must be JSON-like: dicts, lists, numbers, strings, tensors),
written atomically (a temporary file, then ``os.replace``), so a crash or two kernels writing at
once never leave a half-written entry.

Where: ``$COURSE_CACHE_DIR`` if set, else the user's cache folder
(``~/.cache/training-tricks-lab/results`` on Linux, via ``platformdirs``). Deleting the folder
(or calling ``clear()``) empties the cache.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import tempfile
import time
from pathlib import Path

ENV_VAR = "COURSE_CACHE_DIR"
LIB_DIR = Path(__file__).resolve().parents[1]  # course_lib/, every subpackage included


def cache_dir() -> Path:
    """The cache folder: ``$COURSE_CACHE_DIR``, else the user's cache dir (not created here)."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser()
    import platformdirs  # a dependency of jupyter_core, hence always installed with the course

    return Path(platformdirs.user_cache_dir("training-tricks-lab")) / "results"


def code_version(directory: Path | str = LIB_DIR) -> str:
    """A short hash of every ``*.py`` file under ``directory`` (``course_lib`` and all its
    subpackages by default): any edit to the library's code gives a new version, so cached
    results go stale."""
    h, root = hashlib.sha256(), Path(directory)
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def function_source(fn, _seen: set | None = None) -> str:
    """The source of ``fn`` (works for functions defined in notebook cells), else its name,
    followed by the notebook variables it reads: globals holding plain values (``lr = 0.05``,
    ``widths = (16, 32)`` in a parameters cell) and, recursively, the sources of notebook
    functions it calls. So changing a notebook variable a run depends on changes the cache key
    too (a global list the run appends to also changes it: a needless miss, never a stale hit).
    Closure variables are left out: there they are usually state (counters, lists)."""
    seen = set() if _seen is None else _seen
    if id(fn) in seen:
        return ""
    seen.add(id(fn))
    try:
        parts = [inspect.getsource(fn)]
        refs = inspect.getclosurevars(fn)
    except (OSError, TypeError):
        return f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}"
    for name, value in sorted(refs.globals.items()):
        if inspect.isfunction(value) and value.__module__ == fn.__module__:
            parts.append(function_source(value, seen))
        elif _is_plain(value):
            parts.append(f"{name} = {json.dumps(value, sort_keys=True)}")
    return "\n".join(parts)


def _is_plain(value) -> bool:
    """A parameter-like value: a number, string, bool or None, or a short list, tuple or dict of them."""
    scalar = (int, float, str, bool, type(None))
    if isinstance(value, scalar):
        return not isinstance(value, str) or len(value) < 1000
    items = list(value.items()) if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else None
    flat = [x for kv in items for x in kv] if isinstance(value, dict) else items
    return flat is not None and len(flat) <= 100 and all(isinstance(x, scalar) for x in flat)


def scope(notebook: str, profile: str, **context) -> dict:
    """What a result depends on besides the widget parameters: the notebook, the profile, the
    code version, and anything in ``context`` (pass the seed and the device, for example)."""
    return {"notebook": notebook, "profile": profile, "version": code_version(), **context}


def make_key(scope: dict, params: dict) -> str:
    """The cache key (hex SHA-256) for ``params`` run in ``scope``; equal inputs, equal key."""
    text = json.dumps({"scope": scope, "params": params}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _plain(obj):
    """JSON fallback for tensors and NumPy values; anything else is refused (TypeError)."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} cannot be stored in the results cache (JSON only)")


def store(key: str, result, directory: Path | str | None = None, **meta) -> Path:
    """Save ``result`` under ``key`` atomically; ``meta`` (e.g. params) is kept beside it for
    people who read the files. Raises TypeError if the result is not JSON-like."""
    folder = Path(directory) if directory is not None else cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    entry = {"key": key, "saved": time.strftime("%Y-%m-%d %H:%M:%S"), "meta": meta, "result": result}
    text = json.dumps(entry, default=_plain, allow_nan=True)  # NaN/Inf survive the round trip
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key[:12]}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, folder / f"{key}.json")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return folder / f"{key}.json"


def load(key: str, directory: Path | str | None = None) -> dict | None:
    """The stored entry ``{"key", "saved", "meta", "result"}`` for ``key``, or None on a miss.
    An unreadable or corrupt file counts as a miss (it is overwritten by the next store)."""
    path = (Path(directory) if directory is not None else cache_dir()) / f"{key}.json"
    try:
        entry = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) and entry.get("key") == key else None


def clear(directory: Path | str | None = None) -> int:
    """Delete every cached entry in the folder; returns how many were deleted."""
    folder = Path(directory) if directory is not None else cache_dir()
    paths = list(folder.glob("*.json")) if folder.is_dir() else []
    for path in paths:
        path.unlink(missing_ok=True)
    return len(paths)


def is_complete(result) -> bool:
    """Only results of runs that finished are worth caching: not stopped, not diverged, and
    without a NaN final loss. Non-history results count as complete."""
    if not isinstance(result, dict) or "stopped" not in result:
        return result is not None
    last = (result.get("step", {}).get("loss") or [0.0])[-1]
    return result["stopped"] is None and not (isinstance(last, float) and not math.isfinite(last))
