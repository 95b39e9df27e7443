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
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

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


def control_panel(spec: dict, run, title: str = "Experiment", render=history_png,
                  cache: dict | None = None, refresh_s: float = 0.5) -> W.VBox:
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
    from . import cache as results_cache

    inputs = {name: make_input(name, s) for name, s in spec.items()}
    run_btn = W.Button(description="Run", button_style="success", icon="play")
    stop_btn = W.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
    fresh = W.Checkbox(value=False, description="fresh run (ignore the cache)", indent=False,
                       layout=W.Layout(display="" if cache is not None else "none"))
    status = W.HTML(value="<i>Set the parameters and press Run.</i>")
    # hidden until the first picture: an empty image shows as a broken-image icon in the browser
    image = W.Image(format="png", layout=W.Layout(max_width="900px", display="none"))
    rows = [input_row(name, spec[name], w) for name, w in inputs.items()]
    panel = W.VBox([W.HTML(f"<h4>{title}</h4>"), W.VBox(rows), W.HBox([run_btn, stop_btn, fresh]),
                    status, image])
    panel.result, panel.thread, panel.inputs, panel.fresh = None, None, inputs, fresh
    panel.run_button, panel.stop_button, panel.status, panel.image = run_btn, stop_btn, status, image
    stop_event = threading.Event()
    notice = [""]  # a refusal shown while a run goes on, kept past the progress redraws

    def show(result):
        image.value = render(result, title)
        image.layout.display = ""

    def work(params, key):
        t0, last = time.monotonic(), [-math.inf]

        def report(history, force=False):
            now = time.monotonic()
            if force or now - last[0] >= refresh_s:
                last[0] = now
                show(history)
                if not stop_event.is_set():
                    status.value = (f"running with {describe(params)} ... {now - t0:.0f} s "
                                    f"{progress_note(history)}{notice[0]}")

        try:
            history = run(params, report, stop_event.is_set)
            panel.result = history
            if history is not None:
                report(history, force=True)
            how = (history or {}).get("stopped") if isinstance(history, dict) else None
            if how:
                status.value = (f"<b>stopped ({how})</b> after {time.monotonic() - t0:.0f} s, "
                                f"{progress_note(history)}; the curves so far are kept. ({describe(params)})")
                return
            note = ""
            if key is not None and results_cache.is_complete(history):
                try:
                    results_cache.store(key, history, params=params, scope=cache)
                    note = " Saved to the results cache."
                except (OSError, TypeError) as exc:
                    note = f" Not cached: {exc}."
            status.value = f"<b>finished</b> in {time.monotonic() - t0:.0f} s with {describe(params)}.{note}"
        except Exception as exc:  # shown in the panel: the panel is interactive-only
            panel.result = getattr(exc, "history", None)
            status.value = (f"<span style='color:#cf222e'><b>{type(exc).__name__}:</b> {exc}</span>"
                            f"<pre style='font-size:10px'>{traceback.format_exc(limit=3)}</pre>")
            if panel.result is not None:  # e.g. a NaN loss: the curves up to the bad step
                try:
                    show(panel.result)
                except Exception:  # the message above matters more than the picture
                    pass
        finally:
            run_btn.disabled, stop_btn.disabled = False, True

    def on_run(_):
        if panel.thread is not None and panel.thread.is_alive():
            notice[0] = ("<br><span style='color:#9a6700'>A run is already going: press Stop first, "
                         "then Run.</span>")
            status.value = status.value.split("<br>")[0] + notice[0]
            return
        params, errors = validate(spec, {k: w.value for k, w in inputs.items()})
        if errors:
            status.value = ("<span style='color:#cf222e'>" + "<br>".join(errors)
                            + "</span><br>Nothing was run; correct the value and press Run again.")
            return
        # the run's source and the notebook values it reads, taken now: they may have changed since
        key = None if cache is None else results_cache.make_key(
            {**cache, "run": results_cache.function_source(run)}, params)
        entry = None if key is None or fresh.value else results_cache.load(key)
        if entry is not None:
            panel.result = entry["result"]
            show(panel.result)
            status.value = (f"<b>cached</b>: the stored result of a finished run with {describe(params)} "
                            f"(saved {entry['saved']}, same code and profile). Tick <i>fresh run</i> "
                            f"to train again.")
            return
        stop_event.clear()
        notice[0] = ""
        stop_btn.disabled = False
        status.value = f"running with {describe(params)} ..."
        panel.thread = threading.Thread(target=work, args=(params, key), daemon=True)
        panel.thread.start()

    def on_stop(_):
        stop_event.set()
        status.value = "stopping at the next step ..."

    run_btn.on_click(on_run)
    stop_btn.on_click(on_stop)
    return panel


def history_reporter(report, every_steps: int = 20):
    """A ``fit`` callback that calls ``report(history)`` every epoch and every ``every_steps`` steps."""
    def callback(event, history, model):
        if event == "epoch" or len(history["step"]["loss"]) % every_steps == 0:
            report(history)
    return callback
