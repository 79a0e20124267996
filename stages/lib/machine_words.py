"""The machine facts in words, in any language (i18n): how documents describe a machine, its INT8
path and the load while timing, as Messages the report renders in its language.

Apart from machine.py on purpose: the machine, embed and timing stages describe a machine only on
their console (machine.describe, machine.load_cell: English), so they do not import the catalog,
and adding a word to it does not rerun them (it would re-time every model). Both say the same in
English: tests/test_machine.py keeps them equal.
"""
from __future__ import annotations

from .documents.common import Load
from .documents.compare import MachineLabel
from .i18n import Message, msg, t
from .machine import AVX2_ONLY, CPU_PROVIDER, EXTRA_FLAGS, LoadMonitor, int8_family, machine_id
from .status import LOOK

SUPPORT_WORDS = {AVX2_ONLY: "support.avx2_only", "none detected": "support.none", "unrecorded": "support.unrecorded"}


def support_words(support: str) -> Message | str:
    """An `int8_support` value as words: its phrases are in the catalog, instruction set names stay."""
    return msg(SUPPORT_WORDS[support]) if support in SUPPORT_WORDS else support


def int8_path(support: str) -> Message:
    """The INT8 kernel family a verdict holds for, in words (machine.int8_family)."""
    return msg(f"path.{int8_family(support)}", support=support_words(support))


def description(facts: dict | None) -> Message:
    """One line a person reads: CPU and cores (timing facts only), INT8 path, flags, the GPUs of a GPU
    provider, runtime versions, a simulation (machine.describe in any language)."""
    if not facts:
        return msg("machine.unknown")
    parts: list = []
    if "cpu" in facts:
        parts.append(msg("machine.cores", cpu=facts["cpu"], logical=facts["cores_logical"],
                         physical=facts["cores_physical"]))
    extra = [f for f in facts["flags"] if f in EXTRA_FLAGS]
    int8 = {"arch": facts["arch"], "support": support_words(facts["int8_support"])}
    parts.append(msg("machine.int8_flags", **int8, flags=", ".join(extra)) if extra else msg("machine.int8", **int8))
    if facts.get("provider", CPU_PROVIDER) != CPU_PROVIDER:
        cards = [msg("machine.card", name=g["name"], driver=g["driver"]) for g in facts.get("gpus", [])]
        parts.append(msg("machine.timed_on", provider=facts["provider"], cards=cards or [msg("machine.no_gpu")]))
    parts.append(f"onnxruntime {facts['onnxruntime']}")
    if facts.get("openvino", "not installed") != "not installed":
        parts.append(f"openvino {facts['openvino']}")
    if facts.get("override"):
        parts.append(msg("machine.simulated", keys=", ".join(facts["override"])))
    return msg("machine.description", parts=parts)


def label(facts: dict | None) -> MachineLabel:
    """The machine behind a result, as documents record it: id (None: recorded without machine
    facts), its description in English for people reading the JSON and as a message, INT8 support."""
    words = description(facts)
    return MachineLabel(id=machine_id(facts) if facts else None, description=words.text(), description_code=words,
                        int8_support=facts["int8_support"] if facts else None)


def load_cell(load: Load | None, lang: str) -> str:
    """'3%', '60% [!] busy' or why there is no figure: the share of the CPU other processes used."""
    if not load:
        return t(lang, "cell.load_not_recorded")
    if load.other_fraction is None:
        return t(lang, "cell.load_short", seconds=LoadMonitor.MIN_SECONDS)
    return f"{load.other_fraction:.0%}" + (f" {LOOK} {t(lang, 'cell.busy')}" if load.busy else "")
