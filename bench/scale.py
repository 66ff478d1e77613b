"""Scale benchmark: detection throughput and peak memory on long simulated OpenStack logs.

Prints one JSON object. Run from the repository root::

    python bench/scale.py --lines 1000000            # the issue's sizes: 1 M, 4 M, 10 M
    python bench/scale.py --lines 100000 --quick     # a check of the bench itself

Protocol: a workbench is trained on a normal simulated log (``--train-instances`` VM instances,
seed 0, default model settings unless ``--epochs`` caps them) and saved; a test log of about
``--lines`` lines is simulated with the default anomaly rates (pieces of 2,000 instances, seeds
1, 2, ..., each piece starting where the previous one's day left off) and written once to
``--workdir``. Each mode then runs in a fresh subprocess that loads the saved run and detects the
whole file end to end (read, parse, key model, parameter models, verdicts):

* ``one``: ``Workbench.detect(path)`` (one frame in one process: today's baseline);
* ``stream``: :func:`workbench.detect.streaming.detect_streaming` (``--chunk-lines``);
* ``dask1``, ``dask2``: :func:`workbench.detect.distributed.detect_dask` on a ``LocalCluster`` of 1 and 2
  worker processes (one thread each); the cluster's start is timed apart.

``cpu_seconds`` is the user + system CPU time of the whole process tree during the detection
(workers, scheduler and client included), ``worker_cpu_seconds`` that of each Dask worker, and
``scaling_by_worker_cpu`` the one worker's CPU over the busiest of two workers' (what the
scaling would be on two free cores, the client and scheduler left aside); wall-clock
``seconds`` and ``lines_per_s`` depend on the machine's load (``load_average_*``).
``peak_rss_mb`` is the largest total resident memory of the mode's process tree (the process, the
scheduler and the workers), sampled every 0.1 s with psutil; ``self_peak_rss_mb`` is the mode's own
process peak (getrusage). ``identical`` says whether every mode reported the same anomalies (ids
and kinds). Deterministic for a given ``--seed``; timings vary with the machine's load.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

MODES = ("one", "stream", "dask1", "dask2")
LINES_PER_INSTANCE = 38  # about, with the simulator's defaults


def _simulate(path: Path, lines: int, seed: int) -> int:
    """Write a simulated test log of about ``lines`` lines; returns the exact count."""
    import pandas as pd

    from workbench.simulate.config import SimulatorConfig
    from workbench.simulate.engine import simulate

    n_inst = max(1, round(lines / LINES_PER_INSTANCE))
    piece = 2000
    start = pd.Timestamp("2017-05-16 00:00:00")
    count = 0
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as fh:
        for i, lo in enumerate(range(0, n_inst, piece)):
            n = min(piece, n_inst - lo)
            cfg = SimulatorConfig(n_instances=n, seed=seed + i, start=str(start))
            log = simulate(cfg)
            fh.write("\n".join(log.lines) + "\n")
            count += len(log.lines)
            stamp = re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", log.lines[-1])
            last = pd.Timestamp(stamp.group(0)) if stamp else start + pd.Timedelta(hours=3)
            step = max(last - start, pd.Timedelta(0))
            start = (start + step + pd.Timedelta(minutes=1)).floor("s")
    tmp.replace(path)
    return count


def _train(run: Path, instances: int, epochs: int | None) -> dict:
    from workbench.workbench import Workbench

    t = time.perf_counter()
    wb = Workbench.from_simulation(n_instances=instances, test_instances=10, seed=0)
    kc = {"max_epochs": epochs} if epochs else None
    pc = {"max_epochs": epochs} if epochs else None
    wb.fit(key_config=kc, param_config=pc, workflows=False)
    wb.save(run)
    out = {"train_lines": len(wb.entries), "fit_seconds": round(time.perf_counter() - t, 2)}
    wb.close()
    return out


class _Peak:
    """Largest total RSS of this process and all its descendants, sampled in a thread."""

    def __init__(self) -> None:
        import psutil

        self.proc = psutil.Process()
        self.peak = 0
        self.cpu: dict[int, float] = {}  # pid -> latest user + system seconds seen
        self.own = 0.0  # CPU seconds of the sampling itself (psutil reads all of /proc)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            t0 = time.thread_time()
            total = 0
            try:
                procs = [self.proc, *self.proc.children(recursive=True)]
            except psutil.Error:
                procs = [self.proc]
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
                    t = p.cpu_times()
                    self.cpu[p.pid] = t.user + t.system
            self.peak = max(self.peak, total)
            self.own += time.thread_time() - t0
            self._stop.wait(0.1)

    def stop(self) -> int:
        self._stop.set()
        self._t.join()
        return self.peak

    def cpu_seconds(self) -> float:
        """CPU seconds (user + system) of the process tree so far: this process exactly, its
        descendants as last sampled (a child's last 0.1 s before it exits may be missed)."""
        import psutil

        t = psutil.Process().cpu_times()
        me = self.proc.pid
        mine = t.user + t.system - self.own  # the sampler's own work is not the detection's
        return mine + sum(v for pid, v in self.cpu.items() if pid != me)


def _cpu_of(pid: int) -> float:
    import psutil

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def _settled_cpu(peak: _Peak) -> float:
    """The process tree's CPU seconds once the sampler has seen the workers' latest figures."""
    time.sleep(0.25)
    return peak.cpu_seconds()


def _mode(args: argparse.Namespace) -> None:
    """One mode, in this (fresh) process: prints a JSON line."""
    import torch

    from workbench.workbench import Workbench

    torch.set_num_threads(1)
    peak = _Peak()
    wb = Workbench.load(args.run, read_only=True)  # modes may run side by side
    res: dict = {"mode": args.mode}
    t, cpu0 = time.perf_counter(), peak.cpu_seconds()
    if args.mode == "one":
        rep = wb.detect(str(args.log))
        res["lines"] = len(rep.entries)
    elif args.mode == "stream":
        from workbench.detect.streaming import detect_streaming

        rep = detect_streaming(
            wb.scorer(end_keys=True), str(args.log), chunk_lines=args.chunk_lines
        )
        res.update(lines=rep.counts["lines"], peak_open_sessions=rep.counts["peak_open_sessions"])
    else:
        from workbench.detect.distributed import detect_dask
        from workbench.detect.shuffle import local_client

        with local_client(int(args.mode.removeprefix("dask"))) as client:
            res["cluster_start_seconds"] = round(time.perf_counter() - t, 2)
            time.sleep(0.3)  # let the sampler see the workers before the clock starts
            pids = list(client.run(os.getpid).values())
            w0 = [_cpu_of(pid) for pid in pids]
            t, cpu0 = time.perf_counter(), peak.cpu_seconds()
            rep = detect_dask(
                wb.scorer(end_keys=True), [args.log], client, blocksize=args.blocksize
            )
            seconds, cpu = time.perf_counter() - t, _settled_cpu(peak) - cpu0
            res["worker_cpu_seconds"] = [
                round(_cpu_of(pid) - c, 2) for pid, c in zip(pids, w0, strict=True)
            ]
            res["lines"] = rep.counts["lines"]
            res["stage_seconds"] = rep.stages
    if args.mode in ("one", "stream"):
        seconds, cpu = time.perf_counter() - t, peak.cpu_seconds() - cpu0
    res.update(
        seconds=round(seconds, 2),
        lines_per_s=round(res["lines"] / seconds),
        cpu_seconds=round(cpu, 2),
        cpu_seconds_per_million_lines=round(cpu * 1e6 / res["lines"], 1),
        anomalies=len(rep.anomalies),
        peak_rss_mb=round(peak.stop() / 2**20),
        self_peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    )
    a = rep.anomalies
    res["anomaly_keys"] = [f"{i}:{k}" for i, k in zip(a["id"], a["kind"], strict=True)]
    print(json.dumps(res))
    wb.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lines", type=int, default=1_000_000)
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--train-instances", type=int, default=400)
    p.add_argument("--epochs", type=int, default=None, help="cap the training epochs (speed)")
    p.add_argument("--chunk-lines", type=int, default=100_000)
    p.add_argument("--blocksize", type=int, default=16 * 2**20)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "deeplog-scale")
    p.add_argument("--quick", action="store_true", help="--train-instances 100 --epochs 3")
    p.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    p.add_argument("--run", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--log", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.mode:
        _mode(args)
        return
    if args.quick:
        args.train_instances, args.epochs = 100, args.epochs or 3
    modes = [m for m in args.modes.split(",") if m]
    bad = [m for m in modes if m not in MODES]
    if bad:
        p.error(f"unknown modes {bad}; expected some of {','.join(MODES)}")
    args.workdir.mkdir(parents=True, exist_ok=True)
    out: dict = {"lines_asked": args.lines, "seed": args.seed, "cpus": os.cpu_count(),
                 "python": platform.python_version(),
                 "load_average_before": [round(x, 1) for x in os.getloadavg()]}  # fmt: skip
    log = args.workdir / f"openstack-{args.lines}-{args.seed}.log"
    if not log.exists():
        t = time.perf_counter()
        _simulate(log, args.lines, args.seed)
        out["simulate_seconds"] = round(time.perf_counter() - t, 1)
    out["log_bytes"] = log.stat().st_size
    run = args.workdir / f"run-{args.train_instances}-{args.epochs}"
    if not run.exists():
        out["training"] = _train(run, args.train_instances, args.epochs)
    results = {}
    env = dict(os.environ)
    env.setdefault("PYTHONPATH", str(Path.cwd()))
    for m in modes:
        cmd = [sys.executable, __file__, "--mode", m, "--run", str(run), "--log", str(log),
               "--chunk-lines", str(args.chunk_lines), "--blocksize", str(args.blocksize)]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if done.returncode:
            results[m] = {"error": done.stderr.strip().splitlines()[-1:]}
            continue
        results[m] = json.loads(done.stdout.strip().splitlines()[-1])
    keys = {m: r.pop("anomaly_keys", None) for m, r in results.items()}
    ok = [k for k in keys.values() if k is not None]
    out["identical"] = bool(ok) and all(k == ok[0] for k in ok)
    out["lines"] = next((r["lines"] for r in results.values() if "lines" in r), None)
    out["modes"] = results
    d1, d2 = results.get("dask1", {}), results.get("dask2", {})
    stream = results.get("stream", {})
    if "seconds" in d1 and "seconds" in d2:
        out["scaling_1_to_2_workers"] = round(d1["seconds"] / d2["seconds"], 2)
        # on a busy machine wall time says little: the busiest worker's CPU bounds the wall
        # time two free cores would give (the client's and scheduler's work left aside)
        out["scaling_by_worker_cpu"] = round(
            sum(d1["worker_cpu_seconds"]) / max(d2["worker_cpu_seconds"]), 2
        )
    if out["lines"]:
        out["seconds_per_million_lines"] = {
            m: round(r["seconds"] * 1e6 / out["lines"], 1)
            for m, r in results.items()
            if "seconds" in r
        }
        out["cpu_seconds_per_million_lines"] = {
            m: r["cpu_seconds_per_million_lines"]
            for m, r in results.items()
            if "cpu_seconds_per_million_lines" in r
        }
    out["targets"] = {
        "lines_per_s_2_workers_at_least_200k": (
            d2["lines_per_s"] >= 200_000 if "lines_per_s" in d2 else None
        ),
        "scaling_at_least_1.7": (
            out["scaling_1_to_2_workers"] >= 1.7 if "scaling_1_to_2_workers" in out else None
        ),
        "stream_peak_rss_under_2GB": (
            stream["peak_rss_mb"] < 2048 if "peak_rss_mb" in stream else None
        ),
    }
    out["load_average_after"] = [round(x, 1) for x in os.getloadavg()]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
