"""A training script's side of decsweep's `command` pipeline (standard library only).

Copy this file next to your script, or put `tools/` on PYTHONPATH::

    import decsweep_trial as dt

    p = dt.params()                      # {"lr": 0.001, "layers": 2, ...}
    state = Path(dt.checkpoint_dir()) / "state.json"
    start = json.loads(state.read_text())["step"] + 1 if state.exists() else 1
    for step in range(start, 21):
        acc = train_one_epoch(p)
        state.write_text(json.dumps({"step": step}))   # what a resumed attempt starts from
        dt.checkpoint_saved()            # upload it now
        dt.report(step, val_accuracy=acc)
        if dt.should_prune():
            break                        # pruned, cancelled or preempted: stop now
    dt.finish(accuracy=acc)

- `report(step, **metrics)` prints `{"decsweep": "report", "step": ..., ...}`: decsweep records
  it in the trial's curve and its pruner judges it (on `val_accuracy`, or `val_loss` when the
  objective is a loss). `train_loss` is recorded too.
- `should_prune()` is true once decsweep sent SIGTERM: the trial was pruned, cancelled or failed,
  or the worker is shutting down (preemption). Save what you need and exit soon: the worker sends
  SIGKILL `[command] stop_grace` seconds later (default 3). A pruned trial is recorded as pruned at its last reported step.
- `checkpoint_dir()` is `DECSWEEP_CHECKPOINT_DIR`: what the program leaves there is uploaded to the
  coordinator when it changed, and put back before the trial's next attempt, on any machine.
  Outside decsweep it is `./decsweep-checkpoint`.
- `checkpoint_saved()` prints `{"decsweep": "checkpoint"}`: the directory holds a complete state
  now, upload it at once. Once a program has called it, uploads happen only then (and after the
  program exits for the worker's shutdown); a program that never calls it has its directory
  uploaded every `[resources] checkpoint_every` seconds instead, at whatever moment that falls.
- `finish(**metrics)` prints the metrics as the last line (a JSON object): the trial's result.

Run outside decsweep, `params()` is empty unless DECSWEEP_PARAMS is set, and the lines are just
printed.
"""

import json
import os
import signal
import sys

_stop_requested = False


def _on_sigterm(signum, frame):
    global _stop_requested
    _stop_requested = True


signal.signal(signal.SIGTERM, _on_sigterm)


def params():
    """The trial's parameters, as the sweep spec gives them (numbers or strings)."""
    return json.loads(os.environ.get("DECSWEEP_PARAMS", "{}"))


def seed():
    """The trial's seed (0 outside decsweep)."""
    return int(os.environ.get("DECSWEEP_SEED", "0"))


def report(step, **metrics):
    """Reports one step (an epoch): `val_accuracy`, `val_loss`, `train_loss`, `steps` (total)."""
    line = {"decsweep": "report", "step": int(step)}
    line.update(metrics)
    print(json.dumps(line), flush=True)


def should_prune():
    """Whether decsweep asked the program to stop (SIGTERM): pruned, cancelled or preempted."""
    return _stop_requested


def checkpoint_dir():
    """The directory whose contents survive preemption (created if missing)."""
    path = os.environ.get("DECSWEEP_CHECKPOINT_DIR") or os.path.join(os.getcwd(), "decsweep-checkpoint")
    os.makedirs(path, exist_ok=True)
    return path


def checkpoint_saved():
    """Tells decsweep the checkpoint directory holds a complete state: it is uploaded now."""
    print(json.dumps({"decsweep": "checkpoint"}), flush=True)


def finish(**metrics):
    """Prints the trial's metrics as the last line of stdout and flushes it."""
    print(json.dumps(metrics), flush=True)
    sys.stdout.flush()
