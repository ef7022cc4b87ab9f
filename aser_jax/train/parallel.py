"""Many independent runs at once, one worker process per slot.

The recommenders are small (d 64): one run leaves most of a multi-core CPU or an accelerator
idle, and a table-6 grid is dozens of independent runs. `map_in_processes` starts `workers`
fresh (spawned) processes; each takes one slot of the CPU cores this process may use and is
pinned to it, and a slot of one core runs XLA single-threaded (the fastest way to share a CPU
among runs). On a GPU machine the workers share the accelerator: each allocates memory as it
needs it instead of reserving most of it, and XLA's GEMM autotuner is off
(`--xla_gpu_autotune_level=0`, unless XLA_FLAGS names a level): twelve runs compiling side by side
on one H200, each timing candidate kernels on the shared GPU, spent minutes per module and
finished no epoch in 7 minutes, and timings taken under such contention pick no better kernel.
Settings are applied before a worker's first JAX computation, so they hold for the whole worker.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed


def core_slots(workers: int, cores: list[int] | None = None) -> list[list[int]]:
  """The usable cores split into `workers` contiguous slots (cores shared round-robin when
  there are more workers than cores)."""
  cores = sorted(os.sched_getaffinity(0)) if cores is None else list(cores)
  if workers >= len(cores):
    return [[cores[i % len(cores)]] for i in range(workers)]
  size, extra = divmod(len(cores), workers)
  slots, start = [], 0
  for i in range(workers):
    end = start + size + (i < extra)
    slots.append(cores[start:end])
    start = end
  return slots


def _start_worker(slots) -> None:
  cores = slots.get()
  os.sched_setaffinity(0, cores)
  os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
  flags = os.environ.get("XLA_FLAGS", "")
  if "xla_gpu_autotune_level" not in flags:
    flags += " --xla_gpu_autotune_level=0"
  if len(cores) == 1:
    flags += " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
  os.environ["XLA_FLAGS"] = flags.strip()


def map_in_processes(fn, jobs: list[dict], workers: int, on_done=None) -> list:
  """`[fn(**job) for job in jobs]`, over `workers` processes when `workers > 1` (in this
  process otherwise). `fn` must be importable (a module-level function); `on_done(i, result)` is
  called in this process as each job finishes. A failed job raises here, naming the job, once the
  jobs already running have finished (their runs complete and are saved); queued jobs are
  cancelled."""
  if workers <= 1 or len(jobs) <= 1:
    out = []
    for i, job in enumerate(jobs):
      out.append(fn(**job))
      if on_done:
        on_done(i, out[-1])
    return out
  workers = min(workers, len(jobs))
  ctx = multiprocessing.get_context("spawn")
  slots = ctx.Queue()
  for s in core_slots(workers):
    slots.put(s)
  results: list = [None] * len(jobs)
  with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_start_worker, initargs=(slots,)) as pool:
    futures = {pool.submit(fn, **job): i for i, job in enumerate(jobs)}
    for fut in as_completed(futures):
      i = futures[fut]
      try:
        results[i] = fut.result()
      except Exception as e:
        for f in futures:
          f.cancel()
        raise RuntimeError(f"job {i} ({jobs[i]}) failed: {e}") from e
      if on_done:
        on_done(i, results[i])
  return results
