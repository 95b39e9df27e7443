"""Experiment bookkeeping: profiles, device, seeds and data (``setup``) and results (``record``).

Profiles:
- ``smoke``: CI on 2 CPU cores; every code path, each notebook within 60 s. Numbers mean little.
- ``quick``: a laptop CPU or a live lecture; each notebook within about 5 minutes on 2 CPU cores
  (about 30 s on a GPU), large enough for the effects to show.
- ``standard``: CPU verdicts that matter: about 20-30 minutes a notebook on 2 CPU cores (a lunch
  break, or a CPU nightly), models trained to >= 75% where the claim is about trained networks.
- ``full``: the nightly GPU run; the full training set, results comparable with published numbers.
- ``auto``: ``full`` on CUDA, ``quick`` on CPU; the environment variable ``COURSE_PROFILE``
  overrides it.
"""
from __future__ import annotations

import html
import json
import os
import platform
import random
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .claims import KINDS, VERDICTS, claim_text, count_verdicts, counts_line
from .data import load_cifar10

PROFILES = ("smoke", "quick", "standard", "full")
# Data sizes per profile: (train images, validation images, test images); None = all.
DATA_SIZES = {"smoke": (2000, 500, 1000), "quick": (None, 5000, None), "standard": (None, 5000, None),
              "full": (None, 5000, None)}


@dataclass
class Context:
    """What a notebook needs after ``setup``: the resolved profile, device, seed and data."""
    profile: str
    seed: int
    device: torch.device
    data: dict | None
    notebook: str
    started: float = field(default_factory=time.time)


def resolve_profile(profile: str = "auto", device: torch.device | None = None) -> str:
    """``smoke``/``quick``/``full`` as given; ``auto`` becomes $COURSE_PROFILE if set, else
    ``full`` on CUDA and ``quick`` on CPU."""
    if profile == "auto":
        env = os.environ.get("COURSE_PROFILE", "").strip()
        if env:
            profile = env
        else:
            device = device or default_device()
            profile = "full" if device.type == "cuda" else "quick"
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES + ('auto',)}, got {profile!r}")
    return profile


def default_device() -> torch.device:
    """CUDA if available, else CPU. ``COURSE_DEVICE`` (e.g. ``cpu``) overrides."""
    name = os.environ.get("COURSE_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


_NOT_GIVEN = object()  # pick's default for standard=: None is a real size there ("all images")


def pick(profile: str, smoke, quick, full, standard=_NOT_GIVEN):
    """The value for ``profile``: lets a notebook state its per-profile sizes in one line.

    ``standard`` (the CPU profile for verdicts that matter, about 20-30 minutes a notebook on 2
    cores) must be given for the ``standard`` profile: a notebook that has not sized it says so
    instead of silently reusing another profile's size."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    if profile == "standard" and standard is _NOT_GIVEN:
        raise ValueError("this pick(...) line gives no size for the 'standard' profile: add standard=... "
                         "(sized from its work budget), or run with profile 'quick' or 'full'")
    return {"smoke": smoke, "quick": quick, "standard": standard, "full": full}[profile]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def parse_seed(seed) -> int:
    """``seed`` as a Python int in NumPy's range 0 .. 2**32 - 1, or a ValueError saying what to pass.

    Accepts an integer given as text ("1"), which papermill's ``-r seed 1`` and hand-edited
    parameters produce; refuses fractions, booleans and other text instead of failing inside NumPy.
    """
    value = seed.strip() if isinstance(seed, str) else seed
    if isinstance(value, str) and value.lstrip("+-").isdigit():
        value = int(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"seed must be a whole number such as 0 or 1, got {seed!r} "
                         f"({type(seed).__name__})")
    if not 0 <= value < 2**32:
        raise ValueError(f"seed must be between 0 and 2**32 - 1 (NumPy's range), got {seed!r}")
    return int(value)


def setup(profile: str = "auto", seed: int = 0, notebook: str = "notebook", load_data: bool = True,
          train_size: int | None = None, val_size: int | None = None, test_size: int | None = None,
          device: str | None = None) -> Context:
    """Resolve profile and device, seed everything, load CIFAR-10 onto the device, print one line.

    Sizes default to the profile's (``DATA_SIZES``); pass them to override. ``seed`` may be
    an integer given as text (see :func:`parse_seed`).
    """
    seed = parse_seed(seed)
    dev = torch.device(device) if device else default_device()
    profile = resolve_profile(profile, dev)
    seed_everything(seed)
    torch.set_flush_denormal(True)  # tiny (subnormal) floats can slow CPU arithmetic a hundredfold
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    data = None
    if load_data:
        tr, va, te = DATA_SIZES[profile]
        data = load_cifar10(dev, val_size=val_size or va, train_size=train_size or tr,
                            test_size=test_size or te)
    ctx = Context(profile=profile, seed=seed, device=dev, data=data, notebook=notebook)
    sizes = (f"train {len(data['train_y'])}, val {len(data['val_y'])}, test {len(data['test_y'])}"
             if data else "no data loaded")
    print(f"[{notebook}] profile={profile} device={device_name(dev)} seed={seed} | {sizes} | "
          f"torch {torch.__version__}")
    return ctx


def device_name(device: torch.device) -> str:
    """A readable device name (the GPU model on CUDA)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def git_commit(where: str | Path | None = None) -> str | None:
    """The git commit of the checkout at ``where`` (default: this package's), with ``-dirty``
    appended when tracked files differ from it, so a result run from uncommitted code says so.
    None outside a checkout or without git."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=7", "--exclude=*"],
                             capture_output=True, text=True, timeout=5,
                             cwd=Path(where) if where else Path(__file__).parent)
        return (out.stdout.strip() or None) if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def environment_stamp(ctx: Context) -> dict:
    """Versions and machine facts that a result depends on."""
    import torchvision
    return {"torch": torch.__version__, "torchvision": torchvision.__version__,
            "cuda": torch.version.cuda, "device": device_name(ctx.device), "python": platform.python_version(),
            "platform": platform.platform(), "git_commit": git_commit()}


def to_jsonable(obj):
    """Tensors, NumPy values and tuples to plain JSON types, recursively."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return str(obj)  # JSON has no NaN/Inf
    return obj


def record(ctx: Context, results_dir: str | Path, metrics: dict, verdicts: list, params: dict,
           figures: list | None = None, show: bool = True) -> Path:
    """Write ``<results_dir>/<notebook>.json`` (metrics, verdicts, parameters, profile, device,
    versions, duration) and show a table of the verdicts. Returns the file's path.

    ``metrics`` maps a name to a number, or to ``{"value": x, "higher_is_better": bool}`` so
    the nightly comparison knows the direction. ``verdicts`` come from ``course_lib.core.claims``,
    one per claim (see :func:`check_verdicts`); each keeps its ``kind`` in the JSON.
    """
    check_verdicts(verdicts)
    out = Path(results_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"notebook": ctx.notebook, "profile": ctx.profile, "seed": ctx.seed,
               "device": str(ctx.device), "duration_s": time.time() - ctx.started,
               "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "environment": environment_stamp(ctx),
               "params": params, "metrics": metrics, "verdicts": verdicts,
               "verdict_counts": count_verdicts(verdicts), "figures": figures or []}
    path = out / f"{ctx.notebook}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(to_jsonable(payload), indent=2))
    tmp.replace(path)
    if show:
        show_verdicts(verdicts)
        print(f"results written to {path} ({payload['duration_s']:.0f} s in profile {ctx.profile})")
    return path


def check_verdicts(verdicts: list) -> None:
    """Refuse what a results file must not hold: an unknown claim ID, verdict or kind, and two
    verdicts for one claim (combine a claim's parts with ``claims.all_of`` into one)."""
    seen = set()
    for v in verdicts:
        claim_text(v["claim"])  # unknown IDs fail loudly
        if v["verdict"] not in VERDICTS:
            raise ValueError(f"bad verdict {v['verdict']!r} for {v['claim']}: must be one of {VERDICTS}")
        if v.get("kind") not in KINDS:
            raise ValueError(f"verdict for {v['claim']} has kind {v.get('kind')!r}: must be one of {KINDS} "
                             "(make verdicts with course_lib.core.claims)")
        if v["claim"] in seen:
            raise ValueError(f"{v['claim']} is judged twice in this notebook: one verdict per claim; combine "
                             f"its parts with claims.all_of({v['claim']!r}, [...]) under a rule stated in the notebook")
        seen.add(v["claim"])


def show_verdicts(verdicts: list) -> None:
    """Display the verdicts once, experiments and demonstrations in separate tables with the
    counts of each verdict: an HTML table in Jupyter, with a plain-text version in the same
    output for papermill logs and terminals (one output, so JupyterLab does not show them twice)."""
    colour = {"supported": "#1a7f37", "not supported": "#cf222e", "inconclusive": "#9a6700"}
    titles = {"experiment": "Experiments (could have come out either way)",
              "demonstration": "Demonstrations (shown by construction; never counted as support)"}
    line = counts_line(count_verdicts(verdicts))
    texts, tables = [line], [f"<p><b>{html.escape(line)}</b></p>"]
    for kind in KINDS:
        rows = [v for v in verdicts if v.get("kind", "experiment") == kind]
        if not rows:
            continue
        texts += [f"{titles[kind]}:"] + [f"  {v['claim']:7s} {v['verdict']:14s} {v['summary']}" for v in rows]
        body = "".join(
            f"<tr><td><b>{html.escape(v['claim'])}</b></td><td>{html.escape(v['text'])}</td>"
            f"<td style='color:{colour[v['verdict']]}'><b>{v['verdict']}</b></td>"
            f"<td>{html.escape(v['summary'])}</td></tr>" for v in rows)
        tables.append(f"<h4>{titles[kind]}</h4><table><tr><th>claim</th><th>rule of thumb</th><th>verdict</th>"
                      f"<th>evidence (this run)</th></tr>{body}</table>")
    text, table = "\n".join(texts), "".join(tables)
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display({"text/html": table, "text/plain": text}, raw=True)
    else:
        print(text)


def metric(value: float, higher_is_better: bool = True, timing: bool = False) -> dict:
    """A metric entry with its direction, for ``record`` and the nightly comparison. ``timing``
    marks a time or a ratio of times: it moves with the machine's load, so the nightly job allows
    it a wide tolerance."""
    return {"value": float(value), "higher_is_better": higher_is_better, **({"timing": True} if timing else {})}
