"""Image-parallel network runs on Ray: ``vq4all simulate --network ... --jobs N``.

The images go to N workers, each a Ray actor holding one C++ harness process over the design
built once here (the binary, the program and the codebook reach it through Ray's object store,
so a worker on another machine needs only this package installed) and the program's host loop
(:class:`vq4all.sim.rtl.host.NetworkHost`). Ray starts a cluster on this machine, or joins the
one at ``--ray-address`` (or ``RAY_ADDRESS``). The images go out in chunks, in order, to
whichever worker is free; the results are merged in image order, so that everything measured is
the serial run's but for wall times. After a mismatch (without ``keep_going``) the run stops as
the serial one does: the chunks before it finish, the later ones are dropped.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from vq4all.golden.codebook import load_codebook
from vq4all.golden.errors import InputError
from vq4all.hw.params import AcceleratorParams
from vq4all.sim.rtl.build import SimulationError
from vq4all.sim.rtl.harness import Harness
from vq4all.sim.rtl.host import MismatchError, NetworkHost, append_progress

if TYPE_CHECKING:
    from vq4all.sim.rtl.network import NetworkSimulation, TestImages

__all__ = ["CHUNKS_PER_JOB", "HarnessWorker", "merge_results", "run_on_ray"]

#: Chunks per worker: small enough to balance the workers' loads, large enough that golden's
#: batches and the per-chunk messages cost little next to the simulation.
CHUNKS_PER_JOB = 4


class HarnessWorker:
    """One harness process and the host loop of one program, for chunks of images (a Ray
    actor in :func:`run_on_ray`; a plain object works the same)."""

    def __init__(
        self,
        params: AcceleratorParams,
        binary: bytes,
        program: bytes,
        codebook: bytes | None,
        keep_going: bool,
    ) -> None:
        torch.set_num_threads(1)  # one core per worker: the harness and the host take turns
        self._directory = tempfile.TemporaryDirectory(prefix="vq4all-worker-")
        files = Path(self._directory.name)
        (files / "harness").write_bytes(binary)
        (files / "harness").chmod(0o755)
        (files / "program.safetensors").write_bytes(program)
        loaded = None
        if codebook is not None:
            (files / "codebook.safetensors").write_bytes(codebook)
            loaded = load_codebook(files / "codebook.safetensors")
        self.host = NetworkHost(params, files / "program.safetensors", loaded, keep_going)
        self.harness = Harness(params, files / "harness").__enter__()

    def run(self, images: torch.Tensor, labels: list[int], indices: list[int]) -> dict:
        """The measurements of ``images`` (:meth:`NetworkHost.result`), up to and including a
        mismatch that stops the run."""
        self.host.restart()
        try:
            self.harness.run_images(self.host, images, labels, indices)
        except MismatchError:
            pass  # recorded in the result, where the caller finds it
        return self.host.result()


def merge_results(results: list[dict], wall_seconds: float) -> dict:
    """The chunks' measurements, in order, as one run's, with the wall time of the whole."""
    first = results[0]
    layers = [
        {
            "op": layer["op"],
            "name": layer["name"],
            "cycles": [c for result in results for c in result["layers"][k]["cycles"]],
            "bit_exact": [e for result in results for e in result["layers"][k]["bit_exact"]],
        }
        for k, layer in enumerate(first["layers"])
    ]
    return {
        "layers": layers,
        "images": [image for result in results for image in result["images"]],
        "mismatches": [where for result in results for where in result["mismatches"]],
        "simulated_cycles": sum(result["simulated_cycles"] for result in results),
        "wall_seconds": wall_seconds,
    }


def _chunks(count: int, jobs: int) -> Iterator[slice]:
    size = max(1, -(-count // (jobs * CHUNKS_PER_JOB)))
    for start in range(0, count, size):
        yield slice(start, min(start + size, count))


def ray_address(given: str | None) -> str:
    """The cluster to join: ``given``, else ``RAY_ADDRESS``, else a new one on this machine."""
    return given or os.environ.get("RAY_ADDRESS") or "local"


def run_on_ray(
    harness: Harness,
    simulation: NetworkSimulation,
    codebook_path: str | os.PathLike,
    images: TestImages,
    progress: Path | None = None,
) -> dict:
    """Run ``images`` through ``simulation``'s program on ``simulation.jobs`` workers over
    ``harness``'s binary; return the merged measurements (``network.json``). Appends a line to
    ``progress`` as each chunk is merged, as the serial run does per image.

    Raises ``ValueError`` if Ray cannot start or join the cluster, and
    :class:`SimulationError` for a worker's failure (a hang, a crash) other than a mismatch.
    """
    try:
        import ray
    except ImportError:
        raise InputError(
            f"--jobs {simulation.jobs} runs on Ray, which is not installed: "
            "pip install 'vq4all[ray]'"
        ) from None
    address = ray_address(simulation.ray_address)
    try:
        ray.init(
            address=address,
            num_cpus=simulation.jobs if address == "local" else None,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise InputError(
            f"--ray-address {address}: Ray could not start or join it ({error}); a cluster "
            "of 'ray start' checks a token, sent with RAY_AUTH_MODE=token"
        ) from None
    started = time.perf_counter()
    try:
        worker = ray.remote(num_cpus=1)(HarnessWorker)
        shared = [
            ray.put(Path(path).read_bytes()) if path else None
            for path in (harness.binary, simulation.program, codebook_path)
        ]
        workers = [
            worker.remote(harness.params, *shared, simulation.keep_going)
            for _ in range(simulation.jobs)
        ]
        labels = images.labels.tolist()
        chunks = list(_chunks(len(images.indices), simulation.jobs))
        results: dict[int, dict] = {}
        pending: dict = {}
        idle, next_chunk, stop_at = list(workers), 0, len(chunks)
        while next_chunk < stop_at or pending:
            while idle and next_chunk < stop_at:
                part, actor = chunks[next_chunk], idle.pop()
                ref = actor.run.remote(images.x[part], labels[part], images.indices[part])
                pending[ref] = (next_chunk, actor)
                next_chunk += 1
            (ready,), _ = ray.wait(list(pending), num_returns=1)
            number, actor = pending.pop(ready)
            try:
                results[number] = ray.get(ready)
            except ray.exceptions.RayError as error:
                cause = getattr(error, "cause", None) or error
                raise SimulationError(f"a worker failed: {cause}") from None
            idle.append(actor)
            if results[number]["mismatches"] and not simulation.keep_going:
                # The serial run would stop here: the chunks after it do not count, and the
                # workers still on them go with the cluster.
                stop_at = min(stop_at, number + 1)
                pending = {ref: job for ref, job in pending.items() if job[0] < stop_at}
            if progress is not None:
                done = [results[k] for k in sorted(results) if k < stop_at]
                append_progress(progress, merge_results(done, time.perf_counter() - started))
        ordered = [results[k] for k in range(stop_at)]
        return merge_results(ordered, time.perf_counter() - started)
    finally:
        ray.shutdown()
