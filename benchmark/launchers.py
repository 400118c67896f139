"""Who runs a sweep's missing runs: this process one by one, or a cluster through submitit.

* :class:`LocalLauncher` (default) runs them sequentially in this process, with overall
  progress and an estimate of the time left. A multi-process strategy (``--strategy ddp`` with
  several devices) gets a ``bench run`` subprocess per run instead, because Lightning starts the
  other ranks by re-running the current command, which must then be that one run.
* :class:`SubmititLauncher` submits one job array per task through submitit (``slurm``; or
  ``local`` / ``debug``, submitit's own executors, to try a submission on one machine). Each
  array element is one run; resources (GPUs, CPUs, memory, time) come from the task's
  ``resources`` section; a job that SLURM preempts or times out is requeued by submitit
  (:meth:`RunJob.checkpoint`) and resumes from its Lightning checkpoint.

Both end in ``benchmark.runner.execute``, exactly what ``bench run`` does, so a run launched
anywhere writes the same record under the same key.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.errors import BenchError
from benchmark.request import RunRequest, request_argv
from benchmark.sweep import SweepItem

Echo = Callable[[str], None]
MULTI_PROCESS_STRATEGIES = ("ddp", "fsdp", "deepspeed")


@dataclass
class SweepResult:
    """What a launcher did: runs finished here, runs that failed (with why), jobs submitted."""

    completed: list[SweepItem] = field(default_factory=list)
    failed: list[tuple[SweepItem, str]] = field(default_factory=list)
    submitted: list[str] = field(default_factory=list)


def needs_own_process(request: RunRequest) -> bool:
    return request.strategy.startswith(MULTI_PROCESS_STRATEGIES)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class LocalLauncher:
    """Sequential runs on this machine with overall progress; a failed run does not stop the
    sweep (the runner has recorded it as failed, and the next sweep tries it again)."""

    def __init__(self, echo: Echo = print) -> None:
        self.echo = echo

    def run(self, items: list[SweepItem]) -> SweepResult:
        from benchmark.runner import execute

        result = SweepResult()
        total = len(items)
        done = sum(1 for i in items if i.status == "done")
        todo = [i for i in items if i.status != "done"]
        spent: list[float] = []
        for item in todo:
            position = done + len(result.failed) + 1
            how = " (resuming from its checkpoint)" if item.status == "resume" else ""
            self.echo(f"[{position}/{total}] {item.label}: running{how}")
            t0 = time.perf_counter()
            try:
                if needs_own_process(item.request):
                    message = self._subprocess(item.request)
                else:
                    outcome = execute(item.request)
                    record = outcome.record
                    primary = record.get("primary_metric")
                    value = (record.get("metrics") or {}).get(primary)
                    message = (f"{primary} = {value:.4f}" if isinstance(value, float)
                               else "done")
            except KeyboardInterrupt as err:  # finished runs are kept; say where it stopped
                from benchmark.runner import RunInterrupted

                what = str(err) or "interrupted: nothing was written"
                raise RunInterrupted(
                    f"sweep stopped at [{position}/{total}] {item.label}: {what} Finished runs "
                    f"are kept; the same `bench sweep` command continues the sweep."
                ) from None
            except Exception as err:  # recorded as failed by the runner; the sweep goes on
                result.failed.append((item, f"{type(err).__name__}: {err}"))
                self.echo(f"[{position}/{total}] {item.label}: FAILED: {type(err).__name__}: "
                          f"{err}")
                continue
            spent.append(time.perf_counter() - t0)
            done += 1
            result.completed.append(item)
            left = total - done - len(result.failed)
            eta = f", about {_duration(left * sum(spent) / len(spent))} to go" if left else ""
            self.echo(f"[{position}/{total}] {item.label}: {message} "
                      f"({_duration(spent[-1])}; {done}/{total} done, {left} left{eta})")
        return result

    def _subprocess(self, request: RunRequest) -> str:
        """One run as ``bench run`` in its own process (DDP re-runs the command per rank)."""
        cmd = [sys.executable, "-m", "benchmark.cli", *request_argv(request)]
        proc = subprocess.run(cmd, check=False)
        if proc.returncode != 0:
            raise BenchError(f"`bench run` exited with {proc.returncode}")
        return "done"


class RunJob:
    """The callable each array element runs: one ``execute``. Requeued by submitit on
    preemption or timeout (``checkpoint``), then resumed from the Lightning checkpoint."""

    def __call__(self, request: RunRequest) -> dict[str, Any]:
        from benchmark.runner import execute

        outcome = execute(request)
        record = outcome.record
        return {
            "run_dir": str(outcome.run_dir),
            "skipped": outcome.skipped,
            "status": record.get("status"),
            "primary_metric": record.get("primary_metric"),
            "value": (record.get("metrics") or {}).get(record.get("primary_metric")),
        }

    def checkpoint(self, request: RunRequest) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(RunJob(), request)


class SubmititLauncher:
    """One submitit job array per task; ``cluster`` is ``slurm``, ``local`` or ``debug``."""

    def __init__(
        self,
        cluster: str,
        folder: Path,
        slurm: dict[str, Any] | None = None,
        wait: bool = False,
        echo: Echo = print,
    ) -> None:
        self.cluster = cluster
        self.folder = Path(folder)
        self.slurm = dict(slurm or {})
        self.wait = wait
        self.echo = echo

    def parameters(self, item: SweepItem, count: int) -> dict[str, Any]:
        """submitit parameters for one task's array, from its ``resources`` section."""
        request, res = item.request, item.plan.task.resources
        devices = int(request.devices) if str(request.devices).isdigit() else None
        gpus = 0 if request.accelerator == "cpu" else (devices or res.gpus)
        # SLURM starts one task per device and Lightning's SLURM environment wires the ranks;
        # submitit's local executors start one process and Lightning spawns the others.
        per_node = (devices or 1) if (needs_own_process(request) and self.cluster == "slurm") else 1
        params: dict[str, Any] = {
            "name": f"bench-{item.plan.task.name}",
            "timeout_min": res.timeout_min,
            "gpus_per_node": gpus,
            "tasks_per_node": per_node,
            "cpus_per_task": max(1, res.cpus // per_node),
            "mem_gb": res.mem_gb,
            "nodes": 1,
        }
        if self.cluster == "slurm":
            params["slurm_array_parallelism"] = min(count, int(self.slurm.get("array_parallelism",
                                                                              count)))
            params.update({f"slurm_{k}": v for k, v in self.slurm.items()
                           if k != "array_parallelism"})
        return params

    def run(self, items: list[SweepItem]) -> SweepResult:
        try:
            import submitit
        except ImportError:
            raise BenchError("the slurm launcher needs submitit: pip install 'blurbench[slurm]'.") \
                from None
        result = SweepResult()
        todo = [i for i in items if i.status != "done"]
        if not todo:
            return result
        by_task: dict[str, list[SweepItem]] = {}
        for item in todo:
            by_task.setdefault(item.plan.task.name, []).append(item)
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            executor = submitit.AutoExecutor(folder=self.folder / "%j", cluster=self.cluster)
        except RuntimeError as err:  # "Could not detect srun": not on a SLURM login node
            raise BenchError(f"cannot submit to {self.cluster}: {err} (try the submission on "
                             f"this machine with --launcher submitit-local).") from None
        submitted: list[tuple[SweepItem, Any]] = []
        for task, group in by_task.items():
            try:
                executor.update_parameters(**self.parameters(group[0], len(group)))
            except (ValueError, NameError, TypeError) as err:
                raise BenchError(f"submitit rejected the parameters for {task}: {err} (check "
                                 f"the --slurm KEY=VALUE options).") from None
            jobs = executor.map_array(RunJob(), [i.request for i in group])
            ids = [str(job.job_id) for job in jobs]
            result.submitted += ids
            submitted += list(zip(group, jobs, strict=True))
            first, last = ids[0], ids[-1]
            self.echo(f"submitted {task}: {len(jobs)} run(s) as {self.cluster} job(s) "
                      f"{first}{'' if first == last else ' .. ' + last}; logs in {self.folder}")
        if not self.wait:
            self.echo("not waiting: run the same `bench sweep` with --dry-run to see progress")
            return result
        for position, (item, job) in enumerate(submitted, start=1):
            try:
                summary = job.result()
            except Exception as err:  # submitit re-raises the job's error, or a failed job
                first_line = str(err).strip().splitlines()[-1] if str(err).strip() else ""
                result.failed.append((item, f"{type(err).__name__}: {first_line}"))
                self.echo(f"[{position}/{len(submitted)}] {item.label}: FAILED ({first_line})")
                continue
            result.completed.append(item)
            value = summary.get("value")
            shown = f"{summary.get('primary_metric')} = {value:.4f}" if isinstance(
                value, float) else str(summary.get("status"))
            self.echo(f"[{position}/{len(submitted)}] {item.label}: {shown}")
        return result


def make_launcher(name: str, results: Path, slurm: dict[str, Any], wait: bool,
                  echo: Echo = print) -> LocalLauncher | SubmititLauncher:
    folder = Path(results) / "submitit"
    if name == "local":
        return LocalLauncher(echo)
    cluster = {"slurm": "slurm", "submitit-local": "local", "submitit-debug": "debug"}.get(name)
    if cluster is None:
        raise BenchError(f"unknown launcher {name!r}: use local, slurm, submitit-local or "
                         f"submitit-debug.")
    return SubmititLauncher(cluster, folder, slurm, wait=wait or cluster != "slurm", echo=echo)
