"""The embed stage's engines: `local` (this process) or `ray` (a Ray Data actor pool; README
"Beyond one machine"). The driver plans the batches either way and each actor embeds whole
planned batches, so the vectors are byte-identical to the local engine's."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from .embedding import embed_corpus, open_embedder, text_lengths
from .errors import UserError
from .machine import describe, detect

STAGES = Path(__file__).resolve().parents[1]  # the `stages` package
RAY_INSTALL = "pip install -r requirements-dev.txt (or: pip install 'ray[data]>=2.40,<3')"
# Token ids per Ray dataset (256 MB as int64): the driver holds one window's ids as Ray items, not
# the corpus's. Each window starts its own actor pool (each actor loads the model again), which is
# small next to embedding 32M tokens.
WINDOW_TOKENS = 32_000_000


def embed_corpus_on(params, name: str, machine: dict, progress: bool = False, stream_to: Path | None = None,
                    resume=None) -> dict:
    """embed_corpus with the engine `embed.engine` names; a Ray started here is shut down after.
    A killed run resumes (`resume`) under either engine: the batches are planned alike."""
    if params.embed.engine == "local":
        return embed_corpus(params, name, machine, progress, stream_to, resume=resume)
    ray = import_ray()
    address = os.environ.get("RAY_ADDRESS", "")
    if address.startswith("ray://"):  # Ray Data's executor needs a real driver (Ray 2.60: AttributeError core_worker)
        raise UserError(f"RAY_ADDRESS={address}: Ray Data does not run over Ray Client (ray://); run the stage on a "
                        "machine of the cluster with RAY_ADDRESS=HEAD:6379 (the head's GCS address)")
    started = not ray.is_initialized()
    if started:
        ray.init(**ray_init_options())
    try:
        return embed_corpus(params, name, machine, progress, stream_to, engine=RayEngine(ray, params, name),
                            resume=resume)
    finally:
        if started:
            ray.shutdown()


def ray_init_options() -> dict:
    """How the stage starts Ray (tests too): the workers get this `stages` code, not an installed copy.
    RAY_ADDRESS (the head's GCS address, e.g. head:6379; ray:// is refused above) names a cluster,
    which gets nothing else; without it Ray starts on this machine, quietly."""
    options = {"runtime_env": {"py_modules": [str(STAGES)]}}
    if not os.environ.get("RAY_ADDRESS"):
        options.update(include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    return options


def import_ray():
    """Ray is a dev/cluster extra, not a demo requirement: its absence is one line saying what to install."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise UserError(f"embed.engine is ray but Ray Data is not installed: {RAY_INSTALL}") from None
    return ray


def _absolute(params, name: str):
    """Actors may run in another folder (or on another node sharing the files): give them absolute paths."""
    spec = params.model(name)
    spec = dataclasses.replace(spec, path=str(Path(spec.path).resolve()),
                               tokenizer=str(Path(spec.tokenizer).resolve()) if spec.tokenizer else None)
    return dataclasses.replace(params, models={**params.models, name: spec})


class RayEngine:
    """Ships each planned batch (number, token ids) as one item to an actor pool, a window of
    batches at a time; yields vectors as they return."""

    def __init__(self, ray, params, name: str):
        self.ray, self.params, self.name = ray, _absolute(params, name), name
        self.actor_cpus = params.embed.ray_actor_cpus
        self.facts = _key(detect()["embed"])  # the driver's: what the manifest and dvc.lock record

    def __call__(self, batches: list[np.ndarray], id_lists):
        self.ray.data.DataContext.get_current().enable_progress_bars = False
        for window in windows(batches, text_lengths(id_lists), WINDOW_TOKENS):
            yield from self._run([_pack(k, [id_lists[i] for i in batches[k]]) for k in window])

    def _run(self, items: list[dict]):
        ray = self.ray
        actors = max(1, int(ray.cluster_resources().get("CPU", 1)) // self.actor_cpus)
        pool = ray.data.ActorPoolStrategy(min_size=1, max_size=min(actors, len(items)))
        ds = ray.data.from_items(items).map_batches(
            BatchActor, fn_constructor_args=(self.params, self.name), batch_size=1, batch_format="numpy",
            num_cpus=self.actor_cpus, compute=pool)
        try:
            for row in ds.iter_rows():
                if row["facts"] != self.facts:
                    raise UserError(_other_machine(row["facts"], self.facts))
                yield int(row["batch"]), np.frombuffer(row["vectors"], dtype=np.float32).reshape(int(row["rows"]), -1)
        except Exception as exc:  # Ray wraps the actor's error; a UserError inside stays one clear line
            raise UserError(_cause_line(exc)) from None


def windows(batches: list[np.ndarray], lengths: np.ndarray, budget: int) -> list[range]:
    """Consecutive batch numbers, grouped so each group holds at most `budget` tokens (at least one batch)."""
    out, start, tokens = [], 0, 0
    for k, idx in enumerate(batches):
        size = int(lengths[idx].sum())
        if k > start and tokens + size > budget:
            out.append(range(start, k))
            start, tokens = k, 0
        tokens += size
    out.append(range(start, len(batches)))
    return out


def _key(facts: dict) -> str:
    return json.dumps(facts, sort_keys=True)


def _other_machine(worker: str, driver: str) -> str:
    """INT8 vectors depend on the CPU's instruction set: a worker unlike the driver would compute
    numbers the manifest (the driver's facts) does not describe."""
    return (f"embed.engine ray: a Ray worker's embed facts ({describe(json.loads(worker))}) differ from this "
            f"machine's ({describe(json.loads(driver))}); run on nodes like this one or with embed.engine local")


def _pack(k: int, group: list[list[int]]) -> dict:
    return {"batch": k, "lengths": np.array([len(x) for x in group], dtype=np.int64).tobytes(),
            "ids": np.concatenate([np.asarray(ids, dtype=np.int64) for ids in group]).tobytes()}


def _unpack(ids: bytes, lengths: bytes) -> list[np.ndarray]:
    flat, lens = np.frombuffer(ids, dtype=np.int64), np.frombuffer(lengths, dtype=np.int64)
    return np.split(flat, np.cumsum(lens)[:-1])  # Embedder.feed takes arrays as they are


def _cause_line(exc: BaseException) -> str:
    seen = exc
    while seen is not None:
        if isinstance(seen, UserError):
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    return f"embed.engine ray: embedding failed: {str(exc).strip().splitlines()[-1][:300]}"


class BatchActor:
    """One runner per actor, its intra-op threads matched to the CPUs Ray gave the actor."""

    def __init__(self, params, name: str):
        import ray
        cpus = int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)) or 1
        self.embedder = open_embedder(params, name, intra_op_threads=cpus)
        self.facts = _key(detect()["embed"])

    def __call__(self, item: dict) -> dict:
        vectors = [self.embedder.embed_group(_unpack(ids, lengths)).astype(np.float32, copy=False)
                   for ids, lengths in zip(item["ids"], item["lengths"])]
        return {"batch": item["batch"], "rows": np.array([len(v) for v in vectors], dtype=np.int64),
                "vectors": np.array([v.tobytes() for v in vectors], dtype=object),
                "facts": np.array([self.facts] * len(vectors), dtype=object)}
