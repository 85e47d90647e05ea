"""Requests per second and latency of the HTTP service (`python -m aerec.serve`) on ML-1M.

Recipe (from the repository's root; needs the `serve` extra and httpx):

    PYTHONPATH=. python run.py dataset=ml1m dataset.ratings_file=ratings_notime.dat \
        paths.data_dir=../shared/data model=svd train.progress=false \
        hydra.run.dir=/tmp/serve/run
    PYTHONPATH=. python experiments/serve_bench.py /tmp/serve/run/model \
        --out experiments/results/serve_ml1m/svd.json

Runtime: about 2 min on 2 busy CPU cores (the training run 35 s, the benchmark 90 s).
Reproduces (2 shared CPU cores, load average 9 to 11 from other work, so +-50% from run
to run; 2026-12-06; `model=svd` (rank 20) trained by the command above, 6,040 users,
3,706 items; client and server on the same two cores; k=10; 2,000 timed requests a row),
two runs (results/serve_ml1m/svd.json is the second):

| request | client threads | requests/s | p50 ms | p99 ms |
|---|---|---|---|---|
| GET /recommend?user | 1 | 123 / 104 | 5.8 / 6.6 | 21.5 / 24.1 |
| GET /recommend?user | 4 | 159 / 173 | 20.4 / 19.8 | 74.9 / 66.0 |
| GET /similar?item | 1 | 82 / 129 | 11.9 / 6.3 | 28.9 / 19.3 |
| POST /recommend (10 ratings) | 1 | 151 / 138 | 6.0 / 6.0 | 21.6 / 16.4 |

The same calls in the client's process (no HTTP) took 0.7 to 6 ms at the median; the rest
of a request's time is HTTP (httpx, uvicorn's h11, FastAPI, JSON) on the same busy cores.

It starts the real command as a subprocess on a free loopback port (the model loaded and
warmed there), waits for /health, then times requests from a client in this process
(httpx, one connection per client thread, keep-alive): first `--warmup` requests untimed,
then `--requests` timed ones, for random known users (seeded). For each kind of request
and each concurrency (client threads, each sending its next request when its last answer
came), it reports requests per second (timed requests / wall time) and the 50th and 99th
percentiles of one request's latency as the client saw it (connection reuse included, the
server's access log off). For comparison it also times the same calls in this process on
the loaded model (`TrainedModel.recommend` etc.), which is the model's share of a request.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def start_server(model: Path) -> tuple[subprocess.Popen, str]:
    """`python -m aerec.serve MODEL --port 0` in a subprocess; it and its base URL."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(
        [sys.executable, "-m", "aerec.serve", str(model), "--port", "0",
         "--log-level", "warning"], env=env, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    for line in process.stderr:  # the command prints its address once the model is warm
        match = re.search(r"on (http://\S+)$", line.strip())
        if match:
            threading.Thread(target=process.stderr.read, daemon=True).start()  # drain it
            return process, match.group(1)
        print(line, end="", file=sys.stderr)
    raise SystemExit(f"the server exited ({process.wait()}) before it served")


def timed_requests(url: str, paths: list[str], concurrency: int, body: Any | None
                   ) -> tuple[float, np.ndarray]:
    """Send every request of `paths` (GET, or POST of `body`) from `concurrency` client
    threads; the wall time and each request's latency (seconds)."""
    latencies = np.zeros(len(paths))
    local = threading.local()

    def one(index: int) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=url, timeout=60)
        start = time.perf_counter()
        response = (client.get(paths[index]) if body is None
                    else client.post(paths[index], json=body))
        latencies[index] = time.perf_counter() - start
        if response.status_code != 200:
            raise RuntimeError(f"{paths[index]}: {response.status_code} {response.text}")

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(len(paths))))
    return time.perf_counter() - start, latencies


def in_process(call: Callable[[int], Any], keys: np.ndarray) -> np.ndarray:
    """Latencies of `call(key)` for each key, in this process (the model's share)."""
    latencies = np.zeros(keys.size)
    for index, key in enumerate(keys):
        start = time.perf_counter()
        call(int(key))
        latencies[index] = time.perf_counter() - start
    return latencies


def figures(wall: float, latencies: np.ndarray) -> dict[str, float]:
    """Requests per second and latency percentiles (milliseconds)."""
    return {"requests_per_second": round(latencies.size / wall, 1),
            "p50_ms": round(1000 * float(np.percentile(latencies, 50)), 2),
            "p99_ms": round(1000 * float(np.percentile(latencies, 99)), 2)}


def parse_arguments() -> argparse.Namespace:
    """The benchmark's options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", type=Path, help="a run's model/ directory")
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per row")
    parser.add_argument("--warmup", type=int, default=200, help="untimed requests first")
    parser.add_argument("--concurrency", default="1,4", help="client threads, comma-separated")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the figures here as JSON")
    return parser.parse_args()


def main() -> None:
    """Start the server, time each kind of request, print a table (and write --out)."""
    args = parse_arguments()
    sys.path.insert(0, str(ROOT))
    import aerec

    model = aerec.load(args.model)
    rng = np.random.default_rng(args.seed)
    count = args.warmup + args.requests
    users = rng.choice(model.users.raw, count)
    learned = model.items.raw[~model.unlearned_items]
    items = rng.choice(learned, count)
    histories = [{str(item): 4.0 for item in rng.choice(learned, 10, replace=False)}
                 for _ in range(4)]
    kinds = {  # name: (paths, body, the same call in this process)
        "GET /recommend?user": ([f"/recommend?user={u}&k={args.k}" for u in users], None,
                                lambda u: model.recommend(u, args.k)),
        "GET /similar?item": ([f"/similar?item={i}&k={args.k}" for i in items], None,
                              lambda i: model.similar_items([i], args.k)),
        "POST /recommend (10 ratings)": (["/recommend"] * count,
                                         {"history": histories[0], "k": args.k},
                                         lambda _: model.recommend_for_history(
                                             {int(i): r for i, r in histories[0].items()},
                                             args.k)),
    }
    process, url = start_server(args.model)
    started = time.time()
    rows = []
    try:
        httpx.get(f"{url}/health", timeout=60).raise_for_status()
        for name, (paths, body, call) in kinds.items():
            keys = users if "user" in name else items
            in_process(call, keys[:args.warmup])
            local = in_process(call, keys[args.warmup:])
            rows.append({"request": name, "concurrency": "in-process", **figures(
                float(local.sum()), local)})
            levels = [int(c) for c in args.concurrency.split(",")]
            for concurrency in levels if name.startswith("GET /recommend") else levels[:1]:
                timed_requests(url, paths[:args.warmup], concurrency, body)
                wall, latencies = timed_requests(url, paths[args.warmup:], concurrency, body)
                rows.append({"request": name, "concurrency": concurrency,
                             **figures(wall, latencies)})
    finally:
        process.terminate()
        process.wait(30)
    print(f"model {args.model} ({model.config.name}, {len(model.users)} users, "
          f"{len(model.items)} items), k={args.k}, {args.requests} timed requests a row; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"{time.time() - started:.0f} s")
    print("| request | client threads | requests/s | p50 ms | p99 ms |\n|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['request']} | {row['concurrency']} | {row['requests_per_second']} | "
              f"{row['p50_ms']} | {row['p99_ms']} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({
            "date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv),
            "model": str(args.model), "family": model.config.name, "k": args.k,
            "requests": args.requests, "warmup": args.warmup, "cpus": os.cpu_count(),
            "load_average": os.getloadavg()[0], "python": platform.python_version(),
            "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
