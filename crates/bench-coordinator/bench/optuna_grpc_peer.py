#!/usr/bin/env python3
"""Optuna peer of `decsweep-bench-coordinator --netem`: Optuna's own networked path.

Optuna workers on other machines reach one storage through its gRPC storage proxy
(`optuna.storages.run_grpc_proxy_server` in front of an RDB storage, `GrpcStorageProxy` in each
worker). Two commands:

- `serve --db FILE --port P`: creates study "bench" in a new SQLite file (WAL, 60 s busy
  timeout) and serves it on 0.0.0.0:P; prints "ready" once the study exists.
- `drain --host H --port P --trials N --workers W`: W threads, each with its own proxy client
  and `load_study`, ask (one float parameter, RandomSampler: no model cost) and tell at once
  until N trials are done between them. Prints one JSON line:
  {"trials", "seconds", "latency_us": [...] (of each ask), "optuna"}.

The bench runs one `serve` beside its coordinator and one `drain` in each of its network
namespaces, so Optuna's requests cross the same delayed links as decsweep's.
"""

import argparse
import json
import os
import sqlite3
import sys
import threading
import time

import warnings

import optuna
from optuna.distributions import FloatDistribution
from optuna.storages import GrpcStorageProxy, RDBStorage, run_grpc_proxy_server

# The proxy and its server are marked experimental (since Optuna 4.2); say so once, here.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def serve(args):
    if os.path.exists(args.db):
        sys.exit(f"{args.db} exists; give a new file")
    with sqlite3.connect(args.db) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
    storage = RDBStorage(f"sqlite:///{args.db}", engine_kwargs={"connect_args": {"timeout": 60}})
    optuna.create_study(study_name="bench", storage=storage, direction="maximize")
    print("ready", flush=True)
    run_grpc_proxy_server(storage, host="0.0.0.0", port=args.port)


def drain(args):
    dist = {"x": FloatDistribution(0.0, 1.0)}
    lock = threading.Lock()
    left = [args.trials]
    latencies = [[] for _ in range(args.workers)]
    errors = []
    start = threading.Barrier(args.workers + 1)

    def claim():
        with lock:
            if left[0] <= 0:
                return False
            left[0] -= 1
            return True

    def worker(i):
        try:
            proxy = GrpcStorageProxy(host=args.host, port=args.port)
            study = optuna.load_study(
                study_name="bench", storage=proxy, sampler=optuna.samplers.RandomSampler(seed=i)
            )
            start.wait()
            while claim():
                t0 = time.perf_counter()
                trial = study.ask(dist)
                latencies[i].append(time.perf_counter() - t0)
                study.tell(trial, trial.params["x"])
        except Exception as e:  # reported, and the barrier released so the run ends
            errors.append(repr(e))
            start.abort()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.workers)]
    for t in threads:
        t.start()
    try:
        start.wait()
    except threading.BrokenBarrierError:
        pass
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    if errors:
        sys.exit(f"{len(errors)} workers failed, first: {errors[0]}")
    done = sum(len(l) for l in latencies)
    ask_us = [int(x * 1e6) for l in latencies for x in l]
    print(json.dumps({"trials": done, "seconds": seconds, "latency_us": ask_us, "optuna": optuna.__version__}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--db", required=True)
    s.add_argument("--port", type=int, required=True)
    d = sub.add_parser("drain")
    d.add_argument("--host", required=True)
    d.add_argument("--port", type=int, required=True)
    d.add_argument("--trials", type=int, required=True)
    d.add_argument("--workers", type=int, required=True)
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    serve(args) if args.command == "serve" else drain(args)


if __name__ == "__main__":
    main()
