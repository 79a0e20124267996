"""Embed the corpus queries and code with one model: `python -m stages.embed NAME`.

The manifest names the machine's embed facts (results/machine/embed.json, a dependency): INT8
vectors depend on the CPU's instruction set, so another machine's facts rerun this stage.
A killed run resumes from its last saved window of batches (lib/resume.py, README "A killed
embed resumes"), kept in the scratch folder until the output is in place.
"""
from stages.lib import cli
from stages.lib.corpus import sample_label
from stages.lib.distributed import embed_corpus_on
from stages.lib.documents.embed import EmbedManifest, EmbedMemory
from stages.lib.documents.record import read
from stages.lib.layout import RESULTS, SCRATCH
from stages.lib.machine import current
from stages.lib.outputs import staged_dir, write_files
from stages.lib.resume import WINDOW_SECONDS, Resume


def _options(parser) -> None:
    parser.add_argument("--out", default=None, help="output folder (default results/embed/NAME)")
    parser.add_argument("--save-every", type=float, default=WINDOW_SECONDS, metavar="SECONDS",
                        help=f"seconds between saves of finished batches, which a killed run resumes from "
                             f"(default {WINDOW_SECONDS:g})")


def main() -> None:
    args, params = cli.stage_args(__doc__, extra=_options)
    machine = current("embed", RESULTS.machine("embed"))
    out = args.out or RESULTS.embed(args.name)
    resume = Resume(SCRATCH.embed(args.name), args.save_every)
    with staged_dir(out) as tmp:  # the finished vectors are placed into it; swapped in when complete
        files = embed_corpus_on(params, args.name, machine, progress=True, stream_to=tmp, resume=resume)
        m = files["manifest.json"] = read(EmbedManifest, files["manifest.json"])  # their shapes, checked
        files["memory.json"] = read(EmbedMemory, files["memory.json"])
        write_files(tmp, files)
    resume.clear(SCRATCH.root)
    print(f"{args.name} ({params.embed.engine} engine): {m.count} queries + {m.documents} documents -> dim "
          f"{m.dim}, pooling {m.pooling.mode} ({m.pooling.source}), normalize={m.normalize} -> {out}"
          + (f"; {sample_label(m.sample.to_dict())} (corpus_sample)" if m.sample else ""))


if __name__ == "__main__":
    cli.run(main)
