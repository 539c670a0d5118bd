"""Optuna's TPESampler on the bench-search functions: the peer of `decsweep-bench-search`.

Usage: python optuna_peer.py --function NAME --seeds N --budget B
Prints one JSON object: {"optuna": VERSION, "function": NAME, "best": [best value per seed]}.
Each seed is a fresh in-memory study, TPESampler(seed=seed) with Optuna's defaults, evaluated
in-process, sequentially (ask -> evaluate -> tell), `budget` trials.
The functions and their domains are the same as in crates/search/src/bin/bench-search.rs.
"""

import argparse
import json
import math

import optuna

HARTMANN_A = [
    [10, 3, 17, 3.5, 1.7, 8],
    [0.05, 10, 17, 0.1, 8, 14],
    [3, 3.5, 1.7, 10, 17, 8],
    [17, 8, 0.05, 10, 0.1, 14],
]
HARTMANN_P = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
]
HARTMANN_ALPHA = [1.0, 1.2, 3.0, 3.2]


def branin(x):
    x1, x2 = x
    b = 5.1 / (4 * math.pi**2)
    c = 5 / math.pi
    t = 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def hartmann6(x):
    total = 0.0
    for i in range(4):
        inner = sum(HARTMANN_A[i][j] * (x[j] - HARTMANN_P[i][j]) ** 2 for j in range(6))
        total += HARTMANN_ALPHA[i] * math.exp(-inner)
    return -total


def rosenbrock(x):
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(len(x) - 1))


def styblinski_tang(x):
    return 0.5 * sum(v**4 - 16 * v**2 + 5 * v for v in x)


def ackley(x):
    d = len(x)
    s1 = sum(v * v for v in x) / d
    s2 = sum(math.cos(2 * math.pi * v) for v in x) / d
    return -20 * math.exp(-0.2 * math.sqrt(s1)) - math.exp(s2) + 20 + math.e


FUNCTIONS = {
    "branin": (branin, [(-5.0, 10.0), (0.0, 15.0)]),
    "hartmann6": (hartmann6, [(0.0, 1.0)] * 6),
    "rosenbrock4": (rosenbrock, [(-5.0, 10.0)] * 4),
    "styblinski_tang5": (styblinski_tang, [(-5.0, 5.0)] * 5),
    "ackley5": (ackley, [(-32.768, 32.768)] * 5),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--function", required=True, choices=sorted(FUNCTIONS))
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--seed-offset", type=int, default=0)
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    f, bounds = FUNCTIONS[args.function]
    best = []
    for seed in range(args.seed_offset, args.seed_offset + args.seeds):
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed), direction="minimize")
        for _ in range(args.budget):
            trial = study.ask()
            x = [trial.suggest_float(f"x{i}", lo, hi) for i, (lo, hi) in enumerate(bounds)]
            study.tell(trial, f(x))
        best.append(study.best_value)
    print(json.dumps({"optuna": optuna.__version__, "function": args.function, "best": best}))


if __name__ == "__main__":
    main()
