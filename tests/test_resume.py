"""A killed embed resumes (stages/lib/resume.py): through the real stage command line, a run stopped
by the test-only hook after its second saved window, then a normal run: the output is byte-identical
to an uninterrupted run elsewhere, only the remaining batches were embedded, the scratch is gone."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from stages.lib import params as params_lib
from stages.lib.embedding import Embedder, embed_corpus
from stages.lib.layout import SCRATCH
from stages.lib.resume import FAIL_ENV, Resume
from tests import tiny

ROOT = Path(__file__).resolve().parents[1]
PAIRS, BATCH = 60, 5  # 12 planned batches of queries, 12 of codes
SUMMARY = re.compile(r"resume: (\d+) corpus batches embedded in this run, (\d+) reused from (\S+)")


def _stage(cwd, *args, fail_after: int | None = None):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(FAIL_ENV, None)
    if fail_after is not None:
        env[FAIL_ENV] = str(fail_after)
    return subprocess.run([sys.executable, "-m", "stages.embed", "m", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)


def _work(folder: Path, max_length: int = 16) -> Path:
    tiny.build_model(folder / "models" / "m")
    tiny.write_jsonl(folder / "data" / "corpus.jsonl", tiny.corpus_rows(PAIRS, seed=4))
    _set_max_length(folder, max_length)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "stages.machine"], cwd=folder, env=env, check=True, capture_output=True)
    return folder


def _set_max_length(folder: Path, max_length: int) -> None:
    params = {"corpus": "data/corpus.jsonl", "reference": "m", "models": {"m": {"path": "models/m"}},
              "embed": {"pooling": "mean", "max_length": max_length, "batch_size": BATCH, "invariance_sample": 4}}
    (folder / "params.yaml").write_text(yaml.safe_dump(params))


def _outputs(folder: Path) -> dict[str, bytes]:
    """The embed folder's files, less memory.json: a measurement of the run (its peak RSS)."""
    out = folder / "results" / "embed" / "m"
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.name != "memory.json"}


def _scratch(folder: Path) -> list[Path]:
    """The model's key folders in the scratch (one per set of inputs)."""
    root = folder / SCRATCH.embed("m")
    return sorted(root.iterdir()) if root.is_dir() else []


def _batches(texts: int) -> int:
    return -(-texts // BATCH)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The stage run once, start to end, in its own folder: the bytes every resumed run must match."""
    folder = _work(tmp_path_factory.mktemp("whole"))
    proc = _stage(folder)
    assert proc.returncode == 0, proc.stderr
    embedded, reused, _ = SUMMARY.search(proc.stderr).groups()
    assert (int(embedded), int(reused)) == (2 * _batches(PAIRS), 0)
    return _outputs(folder)


def test_killed_embed_resumes_byte_identical(tmp_path, uninterrupted):
    work = _work(tmp_path)
    failed = _stage(work, "--save-every", "0", fail_after=2)  # a save after every batch: windows of one
    assert failed.returncode != 0 and f"{FAIL_ENV}=2: stopped after saving window 2" in failed.stderr
    assert not (work / "results" / "embed" / "m").exists()  # nothing half-written in the output
    (key,) = _scratch(work)
    progress = json.loads((key / "progress.json").read_text())
    assert progress["kinds"]["queries"]["done"] == 2 and "codes" not in progress["kinds"]

    done = _stage(work)
    assert done.returncode == 0, done.stderr
    assert f"resume: queries: 2 of {_batches(PAIRS)} planned batches on disk" in done.stderr
    embedded, reused, folder = SUMMARY.search(done.stderr).groups()
    assert (int(embedded), int(reused)) == (2 * _batches(PAIRS) - 2, 2)  # only what the killed run had not saved
    assert Path(folder) == key.relative_to(work)
    assert _outputs(work) == uninterrupted
    assert not (work / SCRATCH.root).exists()  # removed with the folders it left empty
    assert not [p for p in (work / "results" / "embed").iterdir() if p.name != "m"]  # no temp leftovers


def test_a_changed_setting_discards_the_partial_work(tmp_path, uninterrupted):
    work = _work(tmp_path, max_length=12)
    assert _stage(work, "--save-every", "0", fail_after=3).returncode != 0
    (old,) = _scratch(work)
    _set_max_length(work, 16)  # another tokenization: the saved vectors are of other inputs
    assert _stage(work, "--save-every", "0", fail_after=1).returncode != 0
    (new,) = _scratch(work)
    assert new.name != old.name and not old.exists()  # another key, and the stale one deleted
    done = _stage(work)
    assert done.returncode == 0, done.stderr
    assert SUMMARY.search(done.stderr).group(2) == "1"  # the changed run's own window, not the old three
    assert _outputs(work) == uninterrupted


def _params(tmp_path, batch_size=BATCH):
    model = tiny.build_model(tmp_path / "m").parent
    corpus = tiny.write_jsonl(tmp_path / "corpus.jsonl", tiny.corpus_rows(PAIRS, seed=4))
    return params_lib.parse({"corpus": str(corpus), "reference": "m", "models": {"m": {"path": str(model)}},
                             "embed": {"pooling": "mean", "max_length": 16, "batch_size": batch_size,
                                       "invariance_sample": 4}})


def test_ctrl_c_saves_the_finished_batches_and_the_resumed_run_embeds_only_the_rest(tmp_path, monkeypatch):
    """No timed save in an hour-long window, but Ctrl-C (KeyboardInterrupt) during the 6th batch
    keeps the 5 before it; the next run calls the model for exactly the other batches."""
    params = _params(tmp_path)
    whole = embed_corpus(params, "m", machine={})
    calls = []
    real = Embedder.embed_group

    def counted(self, group):
        calls.append(len(group))
        if len(calls) == 6 and interrupt:
            raise KeyboardInterrupt
        return real(self, group)

    monkeypatch.setattr(Embedder, "embed_group", counted)
    resume = Resume(tmp_path / "scratch" / "m", every_s=3600)
    interrupt = True
    with pytest.raises(KeyboardInterrupt):
        embed_corpus(params, "m", machine={}, stream_to=tmp_path / "a", resume=resume)
    (key,) = (tmp_path / "scratch" / "m").iterdir()
    assert json.loads((key / "progress.json").read_text())["kinds"]["queries"]["done"] == 5
    interrupt, calls[:] = False, []
    (tmp_path / "out").mkdir()
    files = embed_corpus(params, "m", machine={}, stream_to=tmp_path / "out", resume=resume)
    assert len(calls) == 2 * _batches(PAIRS) - 5
    for name in ("queries.npy", "codes.npy"):
        assert isinstance(files[name], np.memmap) and Path(files[name].filename) == tmp_path / "out" / name
        assert np.array_equal(files[name], whole[name]), name
    assert files["manifest.json"] == whole["manifest.json"]
    resume.clear(tmp_path / "scratch")
    assert not (tmp_path / "scratch").exists()


def test_unreadable_progress_starts_over(tmp_path, capfd, monkeypatch):
    params = _params(tmp_path)
    resume = Resume(tmp_path / "scratch" / "m", every_s=0)
    monkeypatch.setenv(FAIL_ENV, "4")
    with pytest.raises(RuntimeError, match="stopped after saving window 4"):
        embed_corpus(params, "m", machine={}, resume=resume)
    monkeypatch.delenv(FAIL_ENV)
    (key,) = (tmp_path / "scratch" / "m").iterdir()
    (key / "progress.json").write_text('{"key": "trunc')  # a torn write
    capfd.readouterr()
    files = embed_corpus(params, "m", machine={}, resume=resume)
    err = capfd.readouterr().err
    assert "progress.json: unreadable or of other inputs; starting over" in err
    assert SUMMARY.search(err).groups()[:2] == (str(2 * _batches(PAIRS)), "0")
    assert np.array_equal(files["codes.npy"], embed_corpus(params, "m", machine={})["codes.npy"])


def test_batches_with_nan_are_never_saved(tmp_path):
    """A resumed run must not skip past bad vectors: it meets them again and stops with the same line."""
    from stages.lib.errors import UserError

    params = _params(tmp_path)
    tiny.build_model(tmp_path / "m", nan=True)
    resume = Resume(tmp_path / "scratch" / "m", every_s=0)
    errors = []
    for _ in range(2):
        with pytest.raises(UserError, match=r"contain NaN or Inf") as err:
            embed_corpus(params, "m", machine={}, resume=resume)
        errors.append(str(err.value))
    assert errors[0] == errors[1] and f"{PAIRS} embedding(s)" in errors[0]
    assert not list((tmp_path / "scratch" / "m").glob("*/progress.json"))


def test_token_digest_names_the_ids_not_how_they_were_read(tmp_path, monkeypatch):
    """Saved batches are reused only under the same digest: equal for the same ids however they were
    chunked or spilled, different when one text's ids differ."""
    from stages.lib.tokenizing import load_tokenizer

    tok = load_tokenizer(tiny.build_tokenizer(tmp_path), max_length=8)
    texts = [r["code"] for r in tiny.corpus_rows(50, seed=1)]
    whole = tok.encode_stream(texts).digest
    monkeypatch.setattr("stages.lib.tokenizing.ENCODE_CHUNK", 7)
    with tok.encode_stream(texts, tmp_path / "ids") as spilled:
        assert spilled.digest == whole
    assert tok.encode_stream(texts[:-1] + ["read file"]).digest != whole
    assert load_tokenizer(tmp_path / "tokenizer.json", max_length=6).encode_stream(texts).digest != whole


def test_a_bad_hook_value_is_one_clear_line(tmp_path, monkeypatch):
    from stages.lib.errors import UserError

    monkeypatch.setenv(FAIL_ENV, "two")
    with pytest.raises(UserError, match=f"^{FAIL_ENV}: must be a number of saved windows, got 'two'$"):
        embed_corpus(_params(tmp_path), "m", machine={}, resume=Resume(tmp_path / "scratch" / "m"))


@pytest.mark.parametrize("tool", ["git", "dvc"])
def test_the_scratch_is_ignored_by_git_and_dvc(tool):
    """Outside every DVC output is not enough: git must not list it, nor DVC walk it."""
    probe = str(SCRATCH.embed("m") / "0123456789abcdef" / "queries.npy")
    cmd = (["git", "check-ignore", "-q", probe] if tool == "git"
           else [sys.executable, "-m", "dvc", "check-ignore", "-q", probe])
    assert subprocess.run(cmd, cwd=ROOT, capture_output=True).returncode == 0
