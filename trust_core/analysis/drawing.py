"""Drawing figures on every core: matplotlib draws in Python, one core a process. The caller draws a share
while ``python -m trust_core.analysis.drawing`` processes draw the rest — fresh interpreters, so nothing
of the caller (a threaded app, a script without a main guard) is forked or re-run — each under the same
settings (:func:`style`), so the bytes are those the caller alone would draw. A job is ``(function, args)``:
a module-level function that returns a figure's files (name → bytes) given ``*args, line=…``."""
from __future__ import annotations

import contextlib

# text stays text (editable in a paper's figure), fonts embedded as TrueType in the PDF
STYLE = {"svg.hashsalt": "saliency-trust-explorer", "svg.fonttype": "none", "pdf.fonttype": 42, "font.size": 8}


@contextlib.contextmanager
def style():
    """matplotlib's settings as the process started (its matplotlibrc) and :data:`STYLE`, whatever the caller
    set since, while a figure is drawn: the same bytes in any process (the caller's settings come back after)."""
    import matplotlib

    with matplotlib.rc_context():
        matplotlib.rc_file_defaults()
        matplotlib.rcParams.update(STYLE)
        yield


MAX_WORKERS = 4  # drawing processes beside this one: matplotlib draws in Python, one core each
DRAWING_TIMEOUT = 1800  # seconds a drawing process may take (a cohort's figures take ≈10 s on 2 cores)
_START_COST = 7.0  # a drawing process's start-up (≈3 s of imports), in units of a small figure's drawing (≈0.45 s)


def draw(job: tuple, line: str) -> dict[str, bytes]:
    """One figure's files: name → bytes (SVG and PDF, in that order)."""
    function, args = job
    with style():
        return function(*args, line=line)


def draw_all(jobs: list[tuple], line: str, workers: int | None, cost) -> list[dict[str, bytes]]:
    """Each job's files, in the jobs' order. With cores to spare, this process draws a share while
    ``python -m trust_core.analysis.drawing`` processes draw the rest (fresh interpreters: nothing of the
    caller — a threaded app, a script without a main guard — is forked or re-run); the bytes are the same."""
    import os
    import pickle
    import subprocess
    import sys
    import threading

    if workers is None:  # every core this process may use, where the figures pay for a process's start-up
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        workers = min(MAX_WORKERS, cores - 1) if sum(map(cost, jobs)) >= 2 * _START_COST else 0
    else:
        workers = min(MAX_WORKERS, max(0, int(workers) - 1))
    if workers <= 0:
        return [draw(job, line) for job in jobs]
    # longest first, each to whoever would finish it first (a process starts _START_COST behind)
    load = [0.0] + [_START_COST] * workers
    shares: list[list[int]] = [[] for _ in load]
    for k in sorted(range(len(jobs)), key=lambda k: -cost(jobs[k])):
        who = min(range(len(load)), key=lambda w: load[w] + cost(jobs[k]))
        shares[who].append(k)
        load[who] += cost(jobs[k])
    env = {key: value for key, value in os.environ.items() if key != "TRUST_FAULT"}  # a test's fault point
    results: dict[int, dict[str, bytes]] = {}  # fires where files are written: in the caller
    failures: list[str] = []

    def remote(share: list[int]) -> None:
        try:
            process = subprocess.Popen([sys.executable, "-m", "trust_core.analysis.drawing"], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
            try:
                out, err = process.communicate(pickle.dumps(([jobs[k] for k in share], line), protocol=5),
                                               timeout=DRAWING_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
                raise RuntimeError(f"a drawing process took over {DRAWING_TIMEOUT} s and was stopped") from None
            if process.returncode != 0:
                raise RuntimeError(err.decode(errors="replace")[-2000:] or f"exit code {process.returncode}")
            results.update(zip(share, pickle.loads(out)))
        except Exception as error:  # said by the caller, not lost with this thread
            failures.append(f"{type(error).__name__}: {error}")

    threads = [threading.Thread(target=remote, args=(share,), daemon=True) for share in shares[1:] if share]
    for thread in threads:
        thread.start()
    try:
        for k in shares[0]:
            results[k] = draw(jobs[k], line)
    finally:
        for thread in threads:
            thread.join()
    if failures:
        raise RuntimeError(f"drawing the figures failed in a drawing process: {failures[0]}")
    return [results[k] for k in range(len(jobs))]


if __name__ == "__main__":  # a drawing process of draw_all: pickled (jobs, line) in, their files out
    import pickle
    import sys

    _out = sys.stdout.buffer
    sys.stdout = sys.stderr  # anything printed while drawing goes to stderr, not into the answer
    _jobs, _line = pickle.loads(sys.stdin.buffer.read())
    _out.write(pickle.dumps([draw(job, _line) for job in _jobs], protocol=5))
    _out.flush()
