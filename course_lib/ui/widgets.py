"""Control panels for live experiments: validated inputs, Run and Stop buttons, live curves.

The experiment is a plain function ``run(params, report, should_stop) -> history`` that the
notebook also calls directly, so headless runs never depend on a widget callback. The panel
runs it in a background thread (the notebook stays responsive), streams the curves into an
image, and a Stop button ends it at the next step, keeping the history so far. With a
``cache`` scope (``course_lib.ui.cache``), a run that matches an earlier finished one shows the
stored curves at once, which lets a lecturer skip the wait.
"""
from __future__ import annotations

import math
import threading
import time
import traceback

import ipywidgets as W
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from . import cache as results_cache
from .plots import course_look, figure_png, plot_history, plot_steps


def validate(spec: dict, values: dict) -> tuple[dict, list[str]]:
    """Check ``values`` against ``spec``; returns (clean values, error messages).

    A spec entry is ``{"kind": "int"|"float"|"choice"|"bool", "value": default, "min": ..,
    "max": .., "options": [...], "label": ".."}``. Each error names the allowed range.
    """
    clean, errors = {}, []
    for name, s in spec.items():
        v, label = values.get(name, s["value"]), s.get("label", name)
        kind = s["kind"]
        if kind in ("int", "float"):
            try:
                v = int(v) if kind == "int" and float(v) == int(float(v)) else float(v)
            except (TypeError, ValueError):
                errors.append(f"{label}: {v!r} is not a number; allowed {s['min']} to {s['max']}")
                continue
            if kind == "int" and not isinstance(v, int):
                errors.append(f"{label}: {v} is not a whole number; allowed {s['min']} to {s['max']}")
                continue
            if math.isnan(v) or not s["min"] <= v <= s["max"]:
                errors.append(f"{label}: {v} is out of range; allowed {s['min']} to {s['max']}")
                continue
        elif kind == "choice" and v not in s["options"]:
            errors.append(f"{label}: {v!r} is not one of {s['options']}")
            continue
        elif kind == "bool":
            v = bool(v)
        clean[name] = v
    return clean, errors


def make_input(name: str, s: dict) -> W.Widget:
    """One input widget for a spec entry. Number boxes do not clamp: ``validate`` refuses bad values."""
    label = s.get("label", name)
    style = {"description_width": "140px"}
    if s["kind"] == "choice":
        return W.Dropdown(options=s["options"], value=s["value"], description=label, style=style)
    if s["kind"] == "bool":
        return W.Checkbox(value=s["value"], description=label, style=style)
    box = W.IntText if s["kind"] == "int" else W.FloatText
    return box(value=s["value"], description=label, style=style,
               tooltip=f"allowed {s['min']} to {s['max']}")


def input_row(name: str, s: dict, widget: W.Widget) -> W.Widget:
    """The input with its allowed range written beside it (students see the limits up front)."""
    if s["kind"] not in ("int", "float"):
        return widget
    hint = W.HTML(f"<span style='color:#57606a'>allowed {s['min']} to {s['max']}</span>")
    return W.HBox([widget, hint])


def history_png(history: dict, title: str = "") -> bytes:
    """Render a ``fit`` history to PNG without pyplot (safe from a background thread): the
    training loss per step (something to see from the first steps on), then loss and accuracy
    per epoch, train and validation (from the first finished epoch on)."""
    fig = Figure(figsize=(12, 3.4))
    axes = fig.subplots(1, 3)
    course_look(fig)
    plot_steps(history, "loss", ax=axes[0])
    axes[0].set(ylabel="training loss", title="training loss per step")
    if history["epoch"]["epoch"]:
        plot_history(history, axes=axes[1:], title=title)
        for ax in axes[1:]:  # whole epochs only: no "epoch 0.98" ticks
            ax.set_xlim(0.5, max(history["epoch"]["epoch"]) + 0.5)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    else:
        axes[1].text(0.5, 0.5, "per-epoch curves appear\nafter the first epoch", ha="center",
                     va="center", transform=axes[1].transAxes, color="#57606a")
        axes[1].set_axis_off()
        axes[2].set_axis_off()
        fig.suptitle(title)
        fig.tight_layout()
    return figure_png(fig)


def describe(params: dict) -> str:
    """Parameters as a short readable line, e.g. ``lr=0.1, batch_size=64``."""
    return ", ".join(f"{k}={v}" for k, v in params.items())


def progress_note(history) -> str:
    """``step N, curves for E epochs`` for a fit history (empty for other results)."""
    if not isinstance(history, dict):
        return ""
    steps = len(history.get("step", {}).get("loss", []))
    epochs = len(history.get("epoch", {}).get("epoch", []))
    return f"step {steps}, curves for {epochs} epoch{'s' * (epochs != 1)}" if steps else ""


# ----------------------------------------------------------------------------- status lines
BUSY_NOTICE = "<br><span style='color:#9a6700'>A run is already going: press Stop first, then Run.</span>"


def running_text(params: dict, seconds: float, history, notice: str = "") -> str:
    return f"running with {describe(params)} ... {seconds:.0f} s {progress_note(history)}{notice}"


def stopped_text(how: str, params: dict, seconds: float, history) -> str:
    return (f"<b>stopped ({how})</b> after {seconds:.0f} s, {progress_note(history)}; "
            f"the curves so far are kept. ({describe(params)})")


def finished_text(params: dict, seconds: float, cache_note: str) -> str:
    return f"<b>finished</b> in {seconds:.0f} s with {describe(params)}.{cache_note}"


def cached_text(params: dict, saved: str) -> str:
    return (f"<b>cached</b>: the stored result of a finished run with {describe(params)} "
            f"(saved {saved}, same code and profile). Tick <i>fresh run</i> to train again.")


def invalid_text(errors: list[str]) -> str:
    return ("<span style='color:#cf222e'>" + "<br>".join(errors)
            + "</span><br>Nothing was run; correct the value and press Run again.")


def error_text(exc: Exception) -> str:
    return (f"<span style='color:#cf222e'><b>{type(exc).__name__}:</b> {exc}</span>"
            f"<pre style='font-size:10px'>{traceback.format_exc(limit=3)}</pre>")


def stopped_how(history) -> str | None:
    """Why a run ended early (``history["stopped"]``), or None if it finished."""
    return history.get("stopped") if isinstance(history, dict) else None


# ----------------------------------------------------------------------------- the panel
class ControlPanel(W.VBox):
    """A panel with one input per ``spec`` entry, Run and Stop buttons, a status line and a
    live image of the curves (see :func:`control_panel`).

    Widgets: ``inputs`` (name -> widget), ``run_button``, ``stop_button``, ``fresh``, ``status``,
    ``image``. State: ``result`` (the last run's history) and ``thread`` (the running or last
    run). One run at a time: ``on_run`` starts it in ``thread``, ``work`` runs it there.
    """

    def __init__(self, spec: dict, run, title: str = "Experiment", render=None,
                 cache: dict | None = None, refresh_s: float = 0.5):
        self.spec, self.run, self.title, self.render = spec, run, title, render or history_png
        self.cache, self.refresh_s = cache, refresh_s
        self.inputs = {name: make_input(name, s) for name, s in spec.items()}
        self.run_button = W.Button(description="Run", button_style="success", icon="play")
        self.stop_button = W.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self.fresh = W.Checkbox(value=False, description="fresh run (ignore the cache)", indent=False,
                                layout=W.Layout(display="" if cache is not None else "none"))
        self.status = W.HTML(value="<i>Set the parameters and press Run.</i>")
        # hidden until the first picture: an empty image shows as a broken-image icon in the browser
        self.image = W.Image(format="png", layout=W.Layout(max_width="900px", display="none"))
        self.result, self.thread = None, None
        self.stop_event = threading.Event()
        self.notice = ""  # a refusal shown while a run goes on, kept past the progress redraws
        rows = [input_row(name, spec[name], w) for name, w in self.inputs.items()]
        super().__init__([W.HTML(f"<h4>{title}</h4>"), W.VBox(rows),
                          W.HBox([self.run_button, self.stop_button, self.fresh]), self.status, self.image])
        self.run_button.on_click(self.on_run)
        self.stop_button.on_click(self.on_stop)

    # --- the buttons (in the notebook's thread)
    def on_run(self, _=None):
        """Refuse a second run or bad values; show a cached result; else start a run in a thread."""
        if self.thread is not None and self.thread.is_alive():
            self.notice = BUSY_NOTICE
            self.status.value = self.status.value.split("<br>")[0] + self.notice
            return
        params, errors = validate(self.spec, {k: w.value for k, w in self.inputs.items()})
        if errors:
            self.status.value = invalid_text(errors)
            return
        key = self.cache_key(params)
        if key is not None and not self.fresh.value and self.show_cached(key, params):
            return
        self.stop_event.clear()
        self.notice = ""
        self.stop_button.disabled = False
        self.status.value = f"running with {describe(params)} ..."
        self.thread = threading.Thread(target=self.work, args=(params, key), daemon=True)
        self.thread.start()

    def on_stop(self, _=None):
        """Ask the run to stop at its next step (``should_stop`` turns True)."""
        self.stop_event.set()
        self.status.value = "stopping at the next step ..."

    # --- the results cache
    def cache_key(self, params: dict) -> str | None:
        """The cache key of a run with ``params`` (None without a cache scope). The run's source
        and the notebook values it reads are taken now: they may have changed since."""
        if self.cache is None:
            return None
        return results_cache.make_key({**self.cache, "run": results_cache.function_source(self.run)}, params)

    def show_cached(self, key: str, params: dict) -> bool:
        """Show the stored result for ``key`` at once; False if there is none."""
        entry = results_cache.load(key)
        if entry is None:
            return False
        self.result = entry["result"]
        self.show(self.result)
        self.status.value = cached_text(params, entry["saved"])
        return True

    def store(self, key: str | None, history, params: dict) -> str:
        """Store a finished run in the cache; returns a note for the status line."""
        if key is None or not results_cache.is_complete(history):
            return ""
        try:
            results_cache.store(key, history, params=params, scope=self.cache)
            return " Saved to the results cache."
        except (OSError, TypeError) as exc:
            return f" Not cached: {exc}."

    # --- the run (in the background thread)
    def show(self, history):
        """Draw ``history`` into the image (and reveal it)."""
        self.image.value = self.render(history, self.title)
        self.image.layout.display = ""

    def work(self, params: dict, key: str | None):
        """Run the experiment, streaming progress; then say how it ended. Errors go to the status."""
        t0, last_draw = time.monotonic(), -math.inf

        def report(history, force=False):
            nonlocal last_draw
            now = time.monotonic()
            if force or now - last_draw >= self.refresh_s:  # drawing costs training time
                last_draw = now
                self.show(history)
                if not self.stop_event.is_set():
                    self.status.value = running_text(params, now - t0, history, self.notice)

        try:
            history = self.run(params, report, self.stop_event.is_set)
            self.result = history
            if history is not None:
                report(history, force=True)
            seconds = time.monotonic() - t0
            how = stopped_how(history)
            self.status.value = (stopped_text(how, params, seconds, history) if how else
                                 finished_text(params, seconds, self.store(key, history, params)))
        except Exception as exc:  # shown in the panel: the panel is interactive-only
            self.fail(exc)
        finally:
            self.run_button.disabled, self.stop_button.disabled = False, True

    def fail(self, exc: Exception):
        """Show the error, and the curves up to it when the error carries them (e.g. a NaN loss)."""
        self.result = getattr(exc, "history", None)
        self.status.value = error_text(exc)
        if self.result is not None:
            try:
                self.show(self.result)
            except Exception:  # the message above matters more than the picture
                pass


def control_panel(spec: dict, run, title: str = "Experiment", render=history_png,
                  cache: dict | None = None, refresh_s: float = 0.5) -> ControlPanel:
    """A panel with one input per ``spec`` entry, Run and Stop buttons, a status line and a
    live image of the curves.

    ``run(params, report, should_stop)`` does the work and returns a history; it calls
    ``report(history)`` whenever it has something new to show (the image is redrawn at most
    every ``refresh_s`` seconds, because drawing costs training time). ``render(history,
    title)`` turns a history into PNG bytes. The run goes in a background thread, so the
    notebook stays usable; Stop ends it at the next step and keeps the history so far; a second
    Run while one is going is refused with a message.

    ``cache`` (a scope from ``course_lib.ui.cache.scope(notebook, profile, seed=.., device=..)``)
    turns on the results cache: a Run whose parameters, scope and ``run`` source match an
    earlier finished run shows the stored result at once, with a note saying so, unless
    "fresh run" is ticked; every finished run is stored.

    The panel keeps the last result in ``panel.result`` and the running thread in
    ``panel.thread``; ``panel.inputs``, ``run_button``, ``stop_button``, ``fresh``, ``status``
    and ``image`` are its widgets.
    """
    return ControlPanel(spec, run, title=title, render=render, cache=cache, refresh_s=refresh_s)


def history_reporter(report, every_steps: int = 20):
    """A ``fit`` callback that calls ``report(history)`` every epoch and, between epochs, at the
    first settled step after ``every_steps`` more steps. On CUDA ``fit`` checks the losses every
    ``sync_every`` steps, and the newest ones are still device tensors until then: reporting only
    settled histories keeps plots free of device tensors and adds no host sync."""
    reported = [0]  # steps in the history at the last report (this callback's own state)

    def callback(event, history, model):
        losses = history["step"]["loss"]
        settled = not losses or not torch.is_tensor(losses[-1])
        if event == "epoch" or (settled and len(losses) - reported[0] >= every_steps):
            reported[0] = len(losses)
            report(history)
    return callback
