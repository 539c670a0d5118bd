#!/usr/bin/env python3
"""Optuna peer of `decsweep-bench-coordinator`.

Runs the bench's loop through Optuna with SQLite storage: N trials handed out to W concurrent
workers, each asking for a trial (one float parameter, RandomSampler, so no model cost) and
telling a value at once, with no training in between. Prints one JSON line:
{"trials", "workers", "seconds", "trials_per_s", "ask_p50_ms", "ask_p99_ms", "retries", "optuna"}.

Workers are threads of this process, each with its own `load_study` (its own storage engine
and SQLite connection), the way separate worker processes would share the file. Threads rather
than 64 processes because 64 Python interpreters importing Optuna do not fit a 2-core machine
and their start-up would dominate; the GIL costs little here since the time goes to SQLite.
The file gets WAL and a 60 s busy timeout, so the peer is not held back by journal mode or by
"database is locked" errors.
"""

import argparse
import json
import os
import sqlite3
import sys
import threading
import time

import optuna
import sqlalchemy.exc
from optuna.distributions import FloatDistribution


def percentile(sorted_values, q):
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[k]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=20000)
    ap.add_argument("--workers", type=int, default=64)
    ap.add_argument("--db", required=True, help="SQLite file to create")
    args = ap.parse_args()
    if os.path.exists(args.db):
        sys.exit(f"{args.db} exists; give a new file")

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # WAL is a property of the file: set it before Optuna creates its tables.
    with sqlite3.connect(args.db) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
    url = f"sqlite:///{args.db}"
    engine_kwargs = {"connect_args": {"timeout": 60}}
    storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    optuna.create_study(study_name="bench", storage=storage, direction="maximize")

    dist = {"x": FloatDistribution(0.0, 1.0)}
    lock = threading.Lock()
    state = {"left": args.trials, "retries": 0}
    latencies = [[] for _ in range(args.workers)]
    errors = []
    start = threading.Barrier(args.workers + 1)

    def claim():
        with lock:
            if state["left"] <= 0:
                return False
            state["left"] -= 1
            return True

    def worker(i):
        try:
            study = optuna.load_study(
                study_name="bench",
                storage=optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs),
                sampler=optuna.samplers.RandomSampler(seed=i),
            )
            start.wait()
            while claim():
                while True:
                    try:
                        t0 = time.perf_counter()
                        trial = study.ask(dist)
                        latencies[i].append(time.perf_counter() - t0)
                        study.tell(trial, trial.params["x"])
                        break
                    except sqlalchemy.exc.OperationalError:
                        with lock:
                            state["retries"] += 1
        except Exception as e:  # reported below; the bench must not hang on a dead thread
            errors.append(repr(e))
            try:
                start.abort()
            except Exception:
                pass

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(args.workers)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    if errors:
        sys.exit("optuna peer failed: " + "; ".join(errors[:3]))

    done = sum(len(l) for l in latencies)
    finished = len(optuna.load_study(study_name="bench", storage=url).get_trials(deepcopy=False))
    lat = sorted(x for l in latencies for x in l)
    print(
        json.dumps(
            {
                "trials": done,
                "stored_trials": finished,
                "workers": args.workers,
                "seconds": seconds,
                "trials_per_s": done / seconds if seconds > 0 else float("nan"),
                "ask_p50_ms": 1000 * percentile(lat, 0.50),
                "ask_p99_ms": 1000 * percentile(lat, 0.99),
                "retries": state["retries"],
                "optuna": optuna.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
