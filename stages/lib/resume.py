"""A killed embed resumes: the next run starts from the last saved window of batches, not from zero.

DVC deletes a stage's outputs before running it, so the unfinished work waits outside them, in the
scratch folder layout.SCRATCH names: `.scratch/embed/NAME/KEY/` holds `queries.npy` and
`codes.npy` as memory maps, `progress.json` (how many leading planned batches of each are on
disk) and, while a run lasts, its token ids. KEY hashes everything the vectors depend on (the
model's manifest facts known before embedding: model, tokenizer and corpus hashes, effective embed
settings, runtime, machine facts; plus the `stages/lib` code and FORMAT); another key starts over
and deletes the model's older folders. When the output is in place the stage deletes the folder.

Replay: the batches are planned from the whole corpus exactly as in an uninterrupted run (dynamic
INT8 vectors depend on their batch-mates) and a resumed run embeds only the planned batches after
the saved ones, so its output is byte-identical. A save flushes the vectors to disk first, then
replaces progress.json atomically; it happens every `every_s` seconds, at the end of each text
kind, and when the run stops on an exception (Ctrl-C). A hard kill loses at most `every_s`.
Token ids are not kept: tokenizing again is deterministic and takes seconds next to hours of
embedding; a kind's saved batches are used only if the new plan's hash (its ids and its batches)
is the saved one. Under the Ray engine batches come back in any order: the leading run of finished
batches is what is saved.

`EMBED_COMPARE_FAIL_AFTER_WINDOW=N` (test-only) stops the run with an error right after its Nth save.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UserError
from .hashing import file_sha256
from .outputs import place_file, write_json

FORMAT = 1  # of the scratch folder: a change starts every partial embed over
WINDOW_SECONDS = 60.0  # a 1.5B model embeds 5-20 texts/s on a laptop CPU: a kill loses about a minute
FAIL_ENV = "EMBED_COMPARE_FAIL_AFTER_WINDOW"
LIB = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Resume:
    """Where one model's partial work lives (layout.SCRATCH.embed(name)) and how often it is saved."""

    folder: Path
    every_s: float = WINDOW_SECONDS

    def open(self, identity: dict) -> Partial:
        return Partial(Path(self.folder), identity, self.every_s)

    def clear(self, root: Path) -> None:
        """The output is in place: delete the model's partial work, and the folders up to `root`
        (the scratch root) that this leaves empty."""
        folder = Path(self.folder)
        shutil.rmtree(folder, ignore_errors=True)
        for parent in folder.parents:
            if parent != root and root not in parent.parents:
                break
            with contextlib.suppress(OSError):  # not empty: another model's partial work
                parent.rmdir()


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _fail_after() -> int:
    raw = os.environ.get(FAIL_ENV, "")
    if raw and not raw.isdigit():
        raise UserError(f"{FAIL_ENV}: must be a number of saved windows, got {raw!r}")
    return int(raw or 0)


class Partial:
    """One model's unfinished embed: its key's scratch folder, the progress saved there, this run's saves."""

    def __init__(self, root: Path, identity: dict, every_s: float):
        self.identity = {"format": FORMAT, "code_sha256": file_sha256(sorted(LIB.glob("*.py"))), **identity}
        self.key = hashlib.sha256(json.dumps(self.identity, sort_keys=True).encode()).hexdigest()
        self.folder = root / self.key[:16]
        if root.is_dir():
            for other in root.iterdir():  # another key: vectors of other inputs, never reused
                if other != self.folder:
                    shutil.rmtree(other, ignore_errors=True)
        for spill in self.folder.glob(".tokens-*"):  # token ids of a killed run
            shutil.rmtree(spill, ignore_errors=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.progress_file = self.folder / "progress.json"
        self.every_s, self.fail_after = every_s, _fail_after()
        self.saves = self.reused = self.embedded = 0
        self.kinds = self._load()

    def _load(self) -> dict:
        """Saved progress per text kind; {} when there is none or it is not this key's."""
        if not self.progress_file.is_file():
            return {}
        try:
            saved = json.loads(self.progress_file.read_text(encoding="utf-8"))
            if saved["key"] == self.key:
                return dict(saved["kinds"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        _say(f"{self.progress_file}: unreadable or of other inputs; starting over")
        return {}

    def kind(self, name: str, tokens: str) -> Saved:
        """The vectors of one text kind ('queries', 'codes'), from ids whose TokenIds.digest is `tokens`."""
        return Saved(self, name, tokens)

    def record(self, kind: str, state: dict) -> None:
        self.kinds[kind] = state
        write_json(self.progress_file, {"key": self.key, "kinds": self.kinds, "identity": self.identity})
        self.saves += 1
        if self.saves == self.fail_after:
            raise RuntimeError(f"{FAIL_ENV}={self.fail_after}: stopped after saving window {self.saves} (test-only)")

    def deliver(self, kind: str, dst: Path) -> np.memmap:
        """A finished kind's vectors placed as `dst` (in the staged output folder), opened read-only."""
        place_file(self.folder / f"{kind}.npy", dst)
        return np.load(dst, mmap_mode="r")

    def summary(self) -> None:
        _say(f"resume: {self.embedded} corpus batches embedded in this run, {self.reused} reused from {self.folder}")


def plan_sha256(tokens: str, batches: list[np.ndarray]) -> str:
    """Identity of a plan: the token ids (their digest) and which texts go in which batch, in order."""
    digest = hashlib.sha256(tokens.encode())
    digest.update(np.array([len(b) for b in batches], dtype=np.int64).tobytes())
    digest.update(np.concatenate(batches).astype(np.int64).tobytes())
    return digest.hexdigest()


class Saved:
    """One text kind's vectors in the scratch folder, filled batch by batch (Embedder.embed_ids)."""

    def __init__(self, partial: Partial, kind: str, tokens: str):
        self.partial, self.kind, self.tokens = partial, kind, tokens
        self.path = partial.folder / f"{kind}.npy"
        self.array: np.memmap | None = None

    def open(self, batches: list[np.ndarray]) -> tuple[int, np.memmap | None]:
        """(planned batches already on disk, the array holding them): (0, None) when nothing saved fits."""
        self.plan = plan_sha256(self.tokens, batches)
        self.finished = np.zeros(len(batches), dtype=bool)
        state = self.partial.kinds.get(self.kind, {})
        start = 0
        if state.get("plan") == self.plan and state.get("done", 0) > 0:
            try:
                array = np.lib.format.open_memmap(self.path, mode="r+")
            except (OSError, ValueError):
                array = None
            if array is not None and array.dtype == np.float32 and array.shape == (state["rows"], state["dim"]):
                self.array, start = array, int(state["done"])
                _say(f"resume: {self.kind}: {start} of {len(batches)} planned batches on disk in {self.partial.folder}")
            else:
                _say(f"{self.path}: unreadable or of another shape; embedding {self.kind} from the start")
        self.finished[:start] = True
        self.prefix = self.saved = start
        self.last = time.monotonic()
        self.partial.reused += start
        return start, self.array

    def allocate(self, shape: tuple[int, int]) -> np.memmap:
        self.array = np.lib.format.open_memmap(self.path, mode="w+", dtype=np.float32, shape=shape)
        return self.array

    def done(self, k: int, clean: bool) -> None:
        """Planned batch k is written into the array; `clean` (no NaN or Inf): it may be kept."""
        self.partial.embedded += 1
        if not clean:  # never saved, so a resumed run meets the bad vectors again and stops on them
            return
        self.finished[k] = True
        while self.prefix < len(self.finished) and self.finished[self.prefix]:
            self.prefix += 1
        if time.monotonic() - self.last >= self.partial.every_s:
            self.save()

    def save(self) -> None:
        """Vectors to disk first, then the count of leading batches they complete."""
        if self.prefix == self.saved or self.array is None:
            return
        self.array.flush()
        self.saved, self.last = self.prefix, time.monotonic()
        self.partial.record(self.kind, {"plan": self.plan, "rows": int(self.array.shape[0]),
                                        "dim": int(self.array.shape[1]), "batches": len(self.finished),
                                        "done": self.saved})
