"""The nightly run on a Dask cluster: every notebook once per seed, as independent tasks.

    python -m course_lib.tools.nightly --profile full --scheduler tcp://HOST:8786 --seeds 0,1,2
    python -m course_lib.tools.nightly --profile smoke --scheduler local --seeds 0,1 --jobs 2

Each task sends the notebook's bytes to a worker, which runs it in a scratch folder (the
nightly's ``run_one``: papermill in a child process, with the cell and notebook time limits)
and sends back the executed notebook, its results JSON and its figures, so no shared
filesystem is needed. Workers that declare a ``GPU`` resource (``dask worker ... --resources
"GPU=1"``) get one notebook run at a time each. A run whose worker is lost (killed, machine
gone) is reported as ``lost`` for that notebook and seed (at once on a local cluster, and on a
scheduler started with ``allowed-failures`` 0; Dask's default first retries it on other
workers); the other runs go on, and results already received are written to disk as they
arrive and kept.

This module needs ``pip install -e .[cluster]``; the nightly imports it only for
``--scheduler``.
"""
from __future__ import annotations

import logging
import os
import tempfile
import time
import uuid
from pathlib import Path

from distributed import (
    Client,
    KilledWorker,
    Nanny,
    Scheduler,
    SpecCluster,
    get_worker,
    wait,
)


def local_cluster(gpus: int = 0, cpu_workers: int = 1) -> SpecCluster:
    """A cluster on this machine: one worker per GPU (that GPU only, resource ``GPU=1``), or
    ``cpu_workers`` CPU workers; one task thread each, each a process the nanny restarts if it
    dies, and each run's notebook gets an equal share of the CPU cores for torch.

    A notebook whose worker dies is reported lost at once, not retried on another worker (a
    notebook that kills its worker, e.g. by exhausting memory, would kill them all in turn).
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = visible.split(",")[:gpus] if visible else [str(i) for i in range(gpus)]
    n = len(ids) or max(cpu_workers, 1)
    cores = str(max((os.cpu_count() or 1) // n, 1))  # Dask's workers default to 1 (for NumPy tasks)
    threads = {"OMP_NUM_THREADS": cores, "MKL_NUM_THREADS": cores}
    options = [{"nthreads": 1, "resources": {"GPU": 1}, "env": {"CUDA_VISIBLE_DEVICES": i, **threads}} for i in ids]
    options = options or [{"nthreads": 1, "env": threads} for _ in range(n)]
    return SpecCluster(
        workers={f"worker-{n}": {"cls": Nanny, "options": {"host": "127.0.0.1", **o}} for n, o in enumerate(options)},
        scheduler={"cls": Scheduler, "options": {"host": "127.0.0.1", "port": 0, "dashboard_address": ":0",
                                                 "allowed_failures": 0}},
        silence_logs=logging.ERROR)


def connect(scheduler: str, gpus: int = 0, cpu_workers: int = 1) -> tuple[Client, SpecCluster | None]:
    """A client for ``scheduler``: an address (``tcp://HOST:8786``) of a running cluster, or
    ``"local"`` for a ``local_cluster`` (returned too, to be closed after the client)."""
    if scheduler == "local":
        cluster = local_cluster(gpus, cpu_workers)
        return Client(cluster), cluster
    return Client(scheduler, timeout="30s"), None


def slots(client: Client) -> tuple[int, dict | None]:
    """How many notebook runs the cluster takes at a time, and the resources each run needs:
    one per declared GPU with ``{"GPU": 1}`` when some worker declares GPUs, else one per worker
    thread with none."""
    workers = client.scheduler_info(n_workers=-1).get("workers", {}).values()
    gpus = sum(w.get("resources", {}).get("GPU", 0) for w in workers)
    return (int(gpus), {"GPU": 1}) if gpus else (sum(w.get("nthreads", 1) for w in workers), None)


def run_remote(run, name: str, notebook: bytes, seed: int, run_kwargs: dict) -> dict:
    """Runs on a worker: write the notebook into a scratch folder, ``run`` it, and return its
    record with the files the client needs as bytes (``executed_bytes``, ``results_bytes``,
    ``figure_bytes`` {name: bytes}). The scratch folder is removed afterwards; it lies in the
    worker's own directory, which Dask clears even when the worker was killed."""
    with tempfile.TemporaryDirectory(prefix="nightly-", dir=get_worker().local_directory) as tmp:
        nb = Path(tmp) / "notebooks" / name
        nb.parent.mkdir()
        nb.write_bytes(notebook)
        out = Path(tmp) / "out"
        rec = run(nb, out, seed=seed, **run_kwargs)
        executed, result_file = Path(rec["executed"]), out / "results" / f"{nb.stem}.json"
        rec["executed_bytes"] = executed.read_bytes() if executed.exists() else None
        rec["results_bytes"] = result_file.read_bytes() if result_file.exists() else None
        rec["figure_bytes"] = {Path(f).name: Path(f).read_bytes()
                               for f in (rec.get("results") or {}).get("figures") or [] if Path(f).exists()}
    rec["worker"] = get_worker().address
    return rec


def keep(rec: dict, out_dir: Path) -> dict:
    """Write a returned run's files under ``out_dir/seed-<seed>/`` (``executed/``, ``results/``)
    and point the record (and its results' figure list) at them."""
    seed_dir = Path(out_dir).resolve() / f"seed-{rec['seed']}"
    executed = seed_dir / "executed" / f"{rec['notebook']}.ipynb"
    results = seed_dir / "results"
    executed.parent.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)
    notebook, result_file = rec.pop("executed_bytes", None), rec.pop("results_bytes", None)
    rec["executed"] = None
    if notebook is not None:
        executed.write_bytes(notebook)
        rec["executed"] = str(executed)
    if result_file is not None:
        (results / f"{rec['notebook']}.json").write_bytes(result_file)
    for name, data in rec.pop("figure_bytes", {}).items():
        (results / name).write_bytes(data)
    if rec.get("results") and rec["results"].get("figures"):
        rec["results"]["figures"] = [str(results / Path(f).name) for f in rec["results"]["figures"]]
    return rec


def lost_record(notebook: str, seed: int, exc: BaseException, started: float) -> dict:
    """The record of a run that came back with no result: ``lost`` when its worker died, else
    ``failed`` with the error."""
    if isinstance(exc, KilledWorker):
        worker = getattr(getattr(exc, "last_worker", None), "address", "?")
        status, error = "lost", f"worker {worker} was lost while running it"
    else:
        status, error = "failed", f"{type(exc).__name__}: {exc}"
    return {"notebook": notebook, "seed": seed, "status": status, "duration_s": time.time() - started,
            "executed": None, "error": error, "results": None, "worker": None}


def run_notebooks(client: Client, notebooks: list[Path], seeds: list[int], out_dir: Path, run,
                  on_result=None, wait_for_worker: float = 600, **run_kwargs) -> list[dict]:
    """Run every notebook once per seed on the cluster; the records in notebook, seed order.

    ``run`` is the nightly's ``run_one`` (passed in so this module does not import the nightly,
    which imports it); ``run_kwargs`` are its other arguments (profile, cell_timeout, limit,
    kernel, extra). Each record gains ``seed`` and ``worker``; ``on_result(record)`` is called as
    each run comes back, after its files are written.

    Runs are submitted only as worker slots free up (workers that join are used at once), so
    no run waits on a worker that then dies: a lost worker takes only the run it was running.
    With no worker for ``wait_for_worker`` seconds the runs not started are reported failed.
    """
    todo = [(Path(nb), seed) for nb in notebooks for seed in seeds]
    pending, in_flight, records = list(todo), {}, {}
    while pending or in_flight:
        free, resources = slots(client)
        for nb, seed in pending[:max(free - len(in_flight), 0)]:
            fut = client.submit(run_remote, run, nb.name, nb.read_bytes(), seed, run_kwargs, pure=False,
                                resources=resources, key=f"nightly-{nb.stem}-seed{seed}-{uuid.uuid4().hex[:8]}")
            in_flight[fut] = (nb.stem, seed, time.time())
            pending.remove((nb, seed))
        if not in_flight:
            try:
                client.wait_for_workers(1, timeout=wait_for_worker)
            except TimeoutError:
                for nb, seed in pending:
                    records[(nb.stem, seed)] = lost_record(nb.stem, seed, TimeoutError(
                        f"no Dask worker for {wait_for_worker:.0f} s: start one (dask worker ...)"), time.time())
                break
            continue
        try:
            done = wait(list(in_flight), timeout=2, return_when="FIRST_COMPLETED").done
        except TimeoutError:
            continue  # nothing finished: look again for free slots (a worker may have joined)
        for fut in done:
            name, seed, started = in_flight.pop(fut)
            try:
                rec = keep({**fut.result(), "seed": seed}, out_dir)
            except Exception as exc:  # noqa: BLE001  (a lost worker, or an error outside the notebook: report it, go on)
                rec = lost_record(name, seed, exc, started)
            fut.release()  # the result now lives here; a later loss of that worker cannot take it
            records[(name, seed)] = rec
            if on_result:
                on_result(rec)
    return [records[(nb.stem, seed)] for nb, seed in todo]


def run_nightly(scheduler: str, notebooks: list[Path], out_dir: Path, seeds: list[int], run, jobs: int = 1,
                **run_kwargs) -> list[dict]:
    """The nightly's ``--scheduler`` run: connect (``"local"``: one worker per GPU here, else
    ``jobs`` CPU workers), run notebooks x seeds, print each run as it comes back, disconnect."""
    gpus = 0
    if scheduler == "local":
        import torch  # only to count this machine's GPUs
        gpus = torch.cuda.device_count()
    client, local = connect(scheduler, gpus, jobs)
    try:
        print(f"nightly: Dask scheduler {client.scheduler.address}, {len(client.nthreads())} worker(s)")
        def report(r):
            print(f"  {r['notebook']} seed {r['seed']}: {r['status']} {r['error'] or ''}")
        return run_notebooks(client, notebooks, seeds, out_dir, run, on_result=report, **run_kwargs)
    finally:
        client.close()
        if local is not None:
            local.close()
