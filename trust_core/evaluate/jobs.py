"""Background evaluation jobs (for the app): run in a thread, report progress, survive page changes."""
from __future__ import annotations

import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import TrustError


@dataclass
class Job:
    id: str
    label: str
    out: str
    done: int = 0
    total: int = 0
    status: str = "queued"  # queued, running, finished, failed
    message: str = ""
    started: float = field(default_factory=time.time)
    finished: float | None = None

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


class JobManager:
    """Evaluations running in background threads, one at a time per output folder."""

    def __init__(self):
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(self, label: str, out: str | Path, build_evaluation) -> Job:
        """``build_evaluation()`` returns an :class:`~trust_core.evaluate.Evaluation` (built in the thread)."""
        with self._lock:
            running = [j for j in self.jobs.values() if j.out == str(out) and j.status in ("queued", "running")]
            if running:
                return running[0]
            job = Job(id=uuid.uuid4().hex[:8], label=label, out=str(out))
            self.jobs[job.id] = job
        threading.Thread(target=self._run, args=(job, build_evaluation), daemon=True).start()
        return job

    def _run(self, job: Job, build_evaluation) -> None:
        from .outputs import write_outputs

        job.status = "running"
        try:
            evaluation = build_evaluation()
            job.total = len(evaluation.units())

            def progress(done, total, label):
                job.done, job.total, job.message = done, total, label

            result = evaluation.run(progress=progress)
            write_outputs(result, job.out)
            job.status, job.message = "finished", f"{result.stats['image_maps']} image-states, {result.stats['seconds']} s"
        except TrustError as exc:
            job.status, job.message = "failed", str(exc)
        except Exception as exc:  # keep the app alive and say what happened
            job.status = "failed"
            job.message = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
        finally:
            job.finished = time.time()

    def list(self) -> list[Job]:
        return sorted(self.jobs.values(), key=lambda j: -j.started)
