"""Build the course's CIFAR-10 cache: one ``.npz`` file of uint8 images and int64 labels.

Sources: torchvision's own CIFAR-10 download (for users with internet), or an image-folder
tree (``train/<class>/*``, ``test/<class>/*``) given as a directory, ``.tar.gz``, ``.tar`` or
``.zip``. Bad images are reported by path and skipped, never silently dropped. The cache is
written to a temporary file and renamed only when complete, so an interrupted run leaves no
half-written cache behind.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time
import zipfile
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

CACHE_VERSION = 1
SPLITS = ("train", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm")
CACHE_KEYS = ("train_x", "train_y", "test_x", "test_y", "classes", "provenance")
PREPARE_HINT = ("make data   (or: python data_scripts/prepare_cifar10.py --source "
                "../shared/data/cifar10-jpg.tar.gz, or --source download with internet)")


class DamagedCacheError(ValueError):
    """The cache file exists but cannot be read as a course cache (truncated, overwritten, other format)."""


def default_cache_path() -> Path:
    """Where the cache lives: ``$COURSE_DATA_DIR/cifar10.npz``, else ``<project>/data/cifar10.npz``."""
    root = os.environ.get("COURSE_DATA_DIR")
    if root:
        return Path(root).expanduser() / "cifar10.npz"
    return Path(__file__).resolve().parents[2] / "data" / "cifar10.npz"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def iter_image_files(source: Path):
    """Yield ``(split, class_name, path_for_messages, bytes)`` for every image file in an
    image-folder tree stored as a directory, a tar (optionally gzipped) or a zip archive.

    Files outside ``train/<class>/`` or ``test/<class>/`` are ignored; a leading top-level
    folder (as archives often have) is allowed.
    """
    source = Path(source)

    def parse(name: str):
        parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
        if len(parts) < 3 or not parts[-1].lower().endswith(IMAGE_SUFFIXES):
            return None
        split, cls = parts[-3], parts[-2]
        return (split, cls) if split in SPLITS else None

    if source.is_dir():
        for path in sorted(source.rglob("*")):
            key = parse(str(path.relative_to(source)))
            if key and path.is_file():
                yield key[0], key[1], str(path), path.read_bytes()
    elif zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as zf:
            for info in sorted(zf.infolist(), key=lambda i: i.filename):
                key = parse(info.filename)
                if key and not info.is_dir():
                    yield key[0], key[1], f"{source}:{info.filename}", zf.read(info)
    elif tarfile.is_tarfile(source):
        with tarfile.open(source, "r:*") as tf:
            for member in tf:  # streamed: a .tar.gz is read once, front to back
                key = parse(member.name)
                if key and member.isfile():
                    yield key[0], key[1], f"{source}:{member.name}", tf.extractfile(member).read()
    else:
        raise ValueError(
            f"{source} is not a directory, .tar(.gz) or .zip archive of train/<class>/ and "
            "test/<class>/ images. Pass --source download to use torchvision's CIFAR-10 download."
        )


def decode_image(data: bytes, size: tuple[int, int]) -> np.ndarray:
    """Decode one image to a uint8 HxWx3 array, or raise ValueError saying why it is bad.

    ``size`` is (height, width). Empty, unreadable, truncated and wrongly sized files are errors.
    """
    if len(data) == 0:
        raise ValueError("empty file")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # raises on truncated data (PIL does not load truncated images by default)
            rgb = img.convert("RGB")
    except Exception as exc:  # PIL raises several types for bad files
        raise ValueError(f"unreadable image ({type(exc).__name__}: {exc})") from None
    if (rgb.height, rgb.width) != tuple(size):
        raise ValueError(f"wrong size {rgb.width}x{rgb.height} (expected {size[1]}x{size[0]})")
    return np.asarray(rgb, dtype=np.uint8)


def read_image_folder(source: Path, size: tuple[int, int] = (32, 32), log=print) -> dict:
    """Read an image-folder tree into arrays; bad files are listed by path and skipped.

    Returns a dict with ``train_x`` (N,3,H,W uint8), ``train_y`` (int64), ``test_x``, ``test_y``,
    ``classes`` (sorted class folder names, the label order) and ``skipped`` (list of
    ``(path, reason)``).
    """
    images = {s: [] for s in SPLITS}
    labels = {s: [] for s in SPLITS}
    names = {s: [] for s in SPLITS}
    skipped = []
    for split, cls, path, data in iter_image_files(source):
        try:
            arr = decode_image(data, size)
        except ValueError as exc:
            skipped.append((path, str(exc)))
            log(f"skipped {path}: {exc}")
            continue
        images[split].append(arr)
        names[split].append(cls)
    classes = sorted(set(names["train"]) | set(names["test"]))
    if not names["train"]:
        raise ValueError(f"no readable training images found in {source} (expected train/<class>/*.jpg)")
    index = {c: i for i, c in enumerate(classes)}
    out = {"classes": classes, "skipped": skipped}
    for split in SPLITS:
        labels[split] = np.array([index[c] for c in names[split]], dtype=np.int64)
        x = np.stack(images[split]) if images[split] else np.zeros((0, size[0], size[1], 3), np.uint8)
        out[f"{split}_x"] = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        out[f"{split}_y"] = labels[split]
    return out


def read_torchvision_cifar10(root: Path) -> dict:
    """Download (if needed) and read the canonical CIFAR-10 through torchvision."""
    from torchvision.datasets import CIFAR10

    out = {"skipped": []}
    for split in SPLITS:
        ds = CIFAR10(root=str(root), train=(split == "train"), download=True)
        out[f"{split}_x"] = np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2))
        out[f"{split}_y"] = np.asarray(ds.targets, dtype=np.int64)
        out["classes"] = list(ds.classes)
    return out


def content_sha256(arrays: dict) -> str:
    """sha256 over the image and label bytes, so two caches can be compared by content."""
    h = hashlib.sha256()
    for key in ("train_x", "train_y", "test_x", "test_y"):
        h.update(np.ascontiguousarray(arrays[key]).tobytes())
    return h.hexdigest()


def load_cache_file(path: Path) -> dict:
    """Read a cache file written by :func:`build_cache`; provenance comes back as a dict.

    A file that cannot be read (an interrupted copy, a truncated download, another format)
    raises :class:`DamagedCacheError` naming the command that rebuilds it, instead of numpy's
    or zipfile's low-level error.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in CACHE_KEYS if k not in z.files]
            if missing:
                raise DamagedCacheError(damaged_message(path, f"not a course cache: missing {missing}"))
            out = {k: z[k] for k in CACHE_KEYS}
        out["classes"] = [str(c) for c in out["classes"]]
        out["provenance"] = json.loads(str(out["provenance"]))
    except (DamagedCacheError, FileNotFoundError):
        raise
    except (zipfile.BadZipFile, EOFError, ValueError, KeyError, OSError, zlib.error) as exc:
        raise DamagedCacheError(damaged_message(path, f"{type(exc).__name__}: {exc}")) from exc
    return out


def damaged_message(path: Path, why: str) -> str:
    """What went wrong with the cache at ``path`` and the command that rebuilds it."""
    return (f"the CIFAR-10 cache {path} is damaged ({why}); it was probably truncated or "
            f"overwritten. Rebuild it with: {PREPARE_HINT}  (a damaged cache is replaced; "
            f"--force rebuilds a valid one)")


def cache_is_valid(path: Path) -> bool:
    """True if ``path`` is a complete cache of the current format whose content checksum matches."""
    try:
        c = load_cache_file(path)
    except Exception:
        return False
    p = c["provenance"]
    return p.get("cache_version") == CACHE_VERSION and p.get("content_sha256") == content_sha256(c)


def build_cache(source: str, out: Path, download_root: Path | None = None, force: bool = False,
                size: tuple[int, int] = (32, 32), log=print) -> Path:
    """Build the cache at ``out`` from ``source`` ("download" or a path). Returns ``out``.

    Does nothing if a valid cache is already there (unless ``force``). Writes to a temporary
    file beside ``out`` and renames it only when complete.
    """
    out = Path(out)
    if out.exists() and not force and cache_is_valid(out):
        prov = load_cache_file(out)["provenance"]
        log(f"cache {out} is already valid (source: {prov['source']}); nothing to do. Use --force to rebuild.")
        return out
    t0 = time.time()
    if source == "download":
        root = Path(download_root or out.parent / "torchvision")
        arrays = read_torchvision_cifar10(root)
        source_desc, source_sha = "torchvision.datasets.CIFAR10 download", None
    else:
        src = Path(source).expanduser()
        if not src.exists():
            raise FileNotFoundError(f"source {src} does not exist")
        arrays = read_image_folder(src, size=size, log=log)
        source_desc = str(src.resolve())
        source_sha = sha256_file(src) if src.is_file() else None
    skipped = arrays.pop("skipped")
    n_files = sum(len(arrays[f"{s}_y"]) for s in SPLITS) + len(skipped)
    provenance = {
        "cache_version": CACHE_VERSION,
        "source": source_desc,
        "source_sha256": source_sha,
        "files_seen": n_files,
        "images_kept": n_files - len(skipped),
        "skipped": [{"path": p, "reason": r} for p, r in skipped],
        "content_sha256": content_sha256(arrays),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    try:
        np.savez(tmp, classes=np.array(arrays["classes"]), provenance=np.array(json.dumps(provenance)),
                 **{k: arrays[k] for k in ("train_x", "train_y", "test_x", "test_y")})
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    log(summary(arrays, provenance, seconds=time.time() - t0))
    return out


def summary(arrays: dict, provenance: dict, seconds: float | None = None) -> str:
    """Human-readable summary: images kept and skipped, per-class counts per split."""
    lines = [f"source: {provenance['source']}",
             f"files seen: {provenance['files_seen']}, kept: {provenance['images_kept']}, "
             f"skipped: {len(provenance['skipped'])}"]
    for split in SPLITS:
        counts = Counter(arrays[f"{split}_y"].tolist())
        per_class = ", ".join(f"{c}={counts.get(i, 0)}" for i, c in enumerate(arrays["classes"]))
        lines.append(f"{split}: {len(arrays[f'{split}_y'])} images ({per_class})")
    if seconds is not None:
        lines.append(f"built in {seconds:.1f} s")
    return "\n".join(lines)
