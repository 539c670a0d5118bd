"""The peer's fixture for `make bench-dashboard`: the same finished trials in Optuna's storage.

    optuna_dashboard_fixture.py create DB N EPOCHS   # N finished trials, EPOCHS intermediate values each
    optuna_dashboard_fixture.py complete-one DB EPOCHS   # one more trial, through Optuna's API

`create` makes the study and one trial through Optuna's API, so the schema, the version rows and
the JSON of the distribution are Optuna's own, then copies that trial's rows N - 1 times with
plain SQL (3 million intermediate values through `trial.report` would take far longer than the
benchmark). The values mirror decsweep's fixture in crates/dashboard/examples/bench_dashboard.rs:
objective accuracy = 0.5 + (id * 7919 % 1000) / 2000, a `loss` user attribute, one integer
parameter `x`, and a validation accuracy of 0.5 + 0.3 * epoch / EPOCHS at each epoch.
"""

import sqlite3
import sys
from datetime import datetime, timedelta

import optuna

STUDY = "bench"
X = optuna.distributions.IntDistribution(0, 1_000_000)


def accuracy(trial_id: int) -> float:
    return 0.5 + (trial_id * 7919 % 1000) / 2000.0


def loss(trial_id: int) -> float:
    return 1.0 - (trial_id * 7919 % 1000) / 1500.0


def one_trial(study: optuna.Study, trial_id: int, epochs: int) -> None:
    trial = study.ask({"x": X})
    for epoch in range(1, epochs + 1):
        trial.report(0.5 + 0.3 * epoch / epochs, epoch)
    trial.set_user_attr("loss", loss(trial_id))
    study.tell(trial, accuracy(trial_id))


def create(db: str, n: int, epochs: int) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=STUDY, storage=f"sqlite:///{db}", direction="maximize")
    one_trial(study, 1, epochs)
    del study
    conn = sqlite3.connect(db)
    study_id, dist_json = conn.execute(
        "SELECT t.study_id, p.distribution_json FROM trials t JOIN trial_params p USING (trial_id)"
    ).fetchone()
    start = datetime(2026, 1, 1)
    stamp = lambda t: t.strftime("%Y-%m-%d %H:%M:%S.%f")  # noqa: E731
    with conn:
        for first in range(2, n + 1, 10_000):
            ids = range(first, min(first + 10_000, n + 1))
            conn.executemany(
                "INSERT INTO trials (trial_id, number, study_id, state, datetime_start, datetime_complete)"
                " VALUES (?, ?, ?, 'COMPLETE', ?, ?)",
                [
                    (i, i - 1, study_id, stamp(start + timedelta(seconds=i)), stamp(start + timedelta(seconds=i, milliseconds=900)))
                    for i in ids
                ],
            )
            conn.executemany(
                "INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json) VALUES (?, 'x', ?, ?)",
                [(i, float(i - 1), dist_json) for i in ids],
            )
            conn.executemany(
                "INSERT INTO trial_values (trial_id, objective, value, value_type) VALUES (?, 0, ?, 'FINITE')",
                [(i, accuracy(i)) for i in ids],
            )
            conn.executemany(
                "INSERT INTO trial_user_attributes (trial_id, key, value_json) VALUES (?, 'loss', ?)",
                [(i, repr(loss(i))) for i in ids],
            )
            conn.executemany(
                "INSERT INTO trial_intermediate_values (trial_id, step, intermediate_value, intermediate_value_type)"
                " VALUES (?, ?, ?, 'FINITE')",
                [(i, e, 0.5 + 0.3 * e / epochs) for i in ids for e in range(1, epochs + 1)],
            )
    count = conn.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    if count != n:
        sys.exit(f"{db}: expected {n} finished trials, found {count}")


def complete_one(db: str, epochs: int) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Counted in SQL: `study.trials` would load all 100,000 trials with their values.
    (count,) = sqlite3.connect(db).execute("SELECT count(*) FROM trials").fetchone()
    study = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{db}")
    one_trial(study, count + 1, epochs)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "create":
        create(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif len(sys.argv) == 4 and sys.argv[1] == "complete-one":
        complete_one(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(__doc__)
