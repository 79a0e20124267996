"""The report's machine bookkeeping: which machine each number came from, and what it says about the
other INT8 instruction path. Rendering as a whole runs in the end-to-end test."""
import copy
import io
import json
import re
import shutil
import string
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from stages.lib import i18n
from stages.lib import params as params_lib
from stages.lib.documents.common import CorpusSample, Load
from stages.lib.documents.compare import Relation
from stages.lib.documents.record import read
from stages.lib.documents.report import Report
from stages.lib.documents.speedup import MixSpeed, StateSpeed
from stages.lib.errors import UserError
from stages.lib.layout import Results
from stages.lib.machine_words import label
from stages.lib.progress import Progress
from stages.lib.report import advice, blocks, sections
from stages.lib.report.advice import int8_path_advice
from stages.lib.report.assemble import build_report, machine_summary, missed_queries
from stages.lib.report.pictures import render_plots
from stages.lib.status import Status

A = {"cpu": "CPU A", "cores_logical": 2, "cores_physical": 2, "arch": "x86_64", "flags": ["avx2"],
     "int8_support": "AVX2 only (no VNNI)", "onnxruntime": "1"}
B = {**A, "cpu": "CPU B", "flags": ["avx2", "avx512_vnni"], "int8_support": "AVX512-VNNI"}
EMB_A = {k: v for k, v in A.items() if k not in ("cpu", "cores_logical", "cores_physical")}


def _model(embed, bench, speedup):
    """What machine_summary reads of a model entry: its machine labels."""
    return SimpleNamespace(machines={"embed": label(embed), "benchmark": label(bench), "speedup": label(speedup)})


def test_one_machine_gives_no_warning():
    models = {"ref": _model(EMB_A, A, A), "cand": _model(EMB_A, A, A)}
    out = machine_summary(models, label(A))
    assert out.warnings == []
    assert list(out.timing) == ["T1"] and out.timing["T1"].description == label(A).description
    assert out.timing["T1"].used_by == ["ref benchmark", "ref speedup", "cand benchmark", "cand speedup"]
    assert list(out.embed) == ["E1"]


def test_mixed_timings_are_named_per_model_and_never_merged():
    models = {"ref": _model(EMB_A, A, A), "cand": _model(EMB_A, B, A)}
    out = machine_summary(models, label(A))
    assert set(out.timing) == {"T1", "T2"} and out.timing["T2"].used_by == ["cand benchmark"]
    assert [w.split(":")[0] for w in out.warnings] == ["ref", "cand"]
    assert "benchmark on T2, speedup on T1" in out.warnings[1]
    assert "замер на T2, ускорение на T1" in out.warning_codes[1].text("ru")


def test_results_from_elsewhere_are_flagged_against_this_machine():
    models = {"ref": _model(EMB_A, A, A)}
    out = machine_summary(models, label(B))
    assert out.warnings == [f"the timings come from another machine than this one ({label(B).description})"]


def test_results_without_machine_facts_are_unknown_not_guessed():
    out = machine_summary({"ref": _model(None, None, None)}, label(A))
    assert out.timing["T1"].id is None and "unknown" in out.timing["T1"].description


def _advice(support, recipe, lang="en") -> str:
    from stages.lib.i18n import render
    return " ".join(render(code, lang) for _, codes in int8_path_advice("c", support, recipe) for code in codes)


def test_int8_advice_points_at_the_other_path():
    avx2 = _advice("AVX2 only (no VNNI)", {"reduce_range": False})
    assert "saturating 16-bit" in avx2 and "try quantize.NAME.reduce_range: true" in avx2
    vnni = _advice("AMX-INT8", {"reduce_range": True})
    assert "without VNNI" in vnni and "only costs accuracy" in vnni and "turn it off" in vnni
    assert "Here reduce_range would only cost accuracy" in _advice("AVX-VNNI", None)
    assert "16-битных" in _advice("AVX2 only (no VNNI)", None, "ru")
    unknown = int8_path_advice("c", None, None)
    assert [code.key for _, codes in unknown for code in codes] == ["rec.int8_unknown"]


# ---------------------------------------------------------------- rendering a fixed report

FIXTURE = Path(__file__).parent / "fixtures" / "report.json"  # a real demo report (3 models)
LONG = "int8-per-channel-reduce-range-gather"


def fixture_report() -> Report:
    return read(Report, json.loads(FIXTURE.read_text()))


def five_candidates() -> Report:
    """The fixture grown to 5 candidates with long names: one unrelated network, one of the
    reference's size; and a timing run that met two speed states of the machine."""
    r = fixture_report()
    pc, pt = r.models["int8-pc"], r.models["int8-pt"]
    for name, src in ((LONG, pc), (LONG + "-v2", pc), ("other-network", pt), ("fp32-copy", pc)):
        r.models[name] = copy.deepcopy(src)
    reason = i18n.msg("relation.other_dim")
    r.models["other-network"].comparison.relation = Relation(related=False, parameter_ratio=2.0, reason=reason.text(),
                                                             reason_code=reason)
    r.models["fp32-copy"].comparison.size.ratio = 1.0
    r.models[LONG].comparison.speed.latency_b1 = replace(
        r.models[LONG].comparison.speed.latency_b1, speedup=1.8, ci_low=1.74, ci_high=1.89, rerun_low=1.66,
        rerun_high=1.96,
        by_state={"fast": StateSpeed(entries=4, speedup=1.8, ci_low=1.74, ci_high=1.89, rerun_low=1.66,
                                     rerun_high=1.96),
                  "slow": StateSpeed(entries=2, speedup=1.62, ci_low=1.53, ci_high=1.72, rerun_low=1.49,
                                     rerun_high=1.76)},
        mix=MixSpeed(speedup=1.71, ci_low=1.55, ci_high=1.89))
    r.speed_control.states = replace(r.speed_control.states, threshold_ms=10.9, state_ms={"fast": 8.9, "slow": 12.9},
                                     processes=["fast"] * 5 + ["slow"] * 3)
    r.ranking = advice.ranking(r.models, r.reference)
    return r


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_console_fits_100_and_markdown_120_columns_with_5_candidates(lang):
    r = five_candidates()
    text, md = sections.render(r, "text", lang), sections.render(r, "md", lang)
    assert max(map(len, text.splitlines())) <= 100
    assert max(map(len, md.splitlines())) <= 120
    assert text.count("[") > 10 and "\u2026" not in text  # markers present, no unicode ellipsis
    for tag in ("INFO", "PERF", "QUALITY", "CASES", "VERDICT", "SUMMARY", "RECOMMENDATIONS"):
        assert f"[{tag}]" in text
    assert text.encode("cp1251" if lang == "ru" else "ascii")  # a Windows console code page prints it


def test_long_names_are_shortened_the_same_way_everywhere():
    names = blocks.short_names(["fp32", LONG, LONG + "-v2", "other-network"])
    assert names["fp32"] == "fp32" and names["other-network"] == "other-network"
    assert len(set(names.values())) == 4 and all(len(v) <= blocks.NAME_WIDTH for v in names.values())
    text = sections.render(five_candidates(), "text", "en")
    assert f"{names[LONG]} = {LONG}" in text  # the legend
    for line in text.splitlines():
        if line.startswith(names[LONG] + " "):
            break
    else:
        pytest.fail("no table row starts with the shortened name")


def _section(fn, lang="en", fmt="text", report=None):
    r = report or five_candidates()
    ctx = blocks.Ctx(fmt, lang, blocks.short_names(list(r.models)), "95%")
    return "\n".join(fn(r, ctx))


def _row(text: str, label: str) -> str:
    """Every table row of one model (its tables may be split by concern), joined."""
    return " | ".join(line for line in text.splitlines() if re.match(rf"(\d+ +)?{re.escape(label)} ", line))


def test_info_says_same_size_instead_of_1_00x_larger():
    ctx_names = blocks.short_names(list(five_candidates().models))
    info = _section(sections.section_info)
    assert "same size" in _row(info, ctx_names["fp32-copy"]) and "1.00x" not in info
    assert "[+] 1.30x smaller" in _row(info, "int8-pc")
    assert "тот же размер" in _section(sections.section_info, "ru")


def test_a_different_network_shows_no_cosine():
    quality, summary = _section(sections.section_quality), _section(sections.section_summary)
    cos_row = next(line for line in _row(quality, "other-network").split(" | ") if "n/a (different model)" in line)
    assert "0.9613" not in cos_row and "0.9160" not in cos_row  # its cosine mean / p1 are not shown
    assert "n/a (different model)" in _row(summary, "other-network") and "0.9613" not in _row(summary, "other-network")
    assert "0.9613" in _row(quality, "int8-pt")  # the same numbers on a related model are shown
    assert "н/д (другая модель)" in _row(_section(sections.section_quality, "ru"), "other-network")


def test_speed_states_are_named_with_numbers_and_each_candidate_gets_its_speed_per_state():
    perf = _section(sections.section_perf)
    short = blocks.short_names(list(five_candidates().models))[LONG]
    assert re.search(r"1\.80x \[1\.74, 1\.89\] +\[1\.66, 1\.96\] +\+-\d\.\d% +1\.62x \(2\) +1\.71x", _row(perf, short))
    flat = " ".join(perf.split())
    assert ("[!] The machine ran in two speed states while timing: the reference took about 8.90 ms per text in one "
            "and 12.90 in the other (split at 10.90 ms; 3 of its 8 processes slow). The speedup is the fast "
            "state's; the slow state's and the run's mix are beside it.") in flat
    control = five_candidates().speed_control
    floor = (control.ci_high / control.ci_low) ** 0.5 - 1
    assert f"+-{floor:.1%}" in _row(perf, "int8-pc")  # the A/A noise floor next to every speedup
    assert "в двух состояниях скорости" in " ".join(_section(sections.section_perf, "ru").split())


def test_verdict_lines_name_their_scope_and_reasons_in_both_languages():
    en, ru = _section(sections.section_verdict), _section(sections.section_verdict, "ru")
    assert "[-] int8-pt: FAIL; holds on CPUs with VNNI (AVX512-VNNI, AVX-VNNI or AMX)" in en
    assert "- mean cosine to reference 0.9613 < 0.97" in en
    assert "[-] int8-pt: ПРОВАЛ; верно для: ЦП с VNNI (AVX512-VNNI, AVX-VNNI или AMX)" in ru
    assert "- средний косинус к эталону 0.9613 < 0.97" in ru


PROSE = {"description", "reasons", "reason", "scope", "note", "warnings", "method"}  # English kept for JSON readers
PARAMS_WORDS = {"reduce", "range", "channel", "nodes", "exclude", "speedup_blocks", "interleave",
                "sample"}  # params keys (corpus_sample)
TERMS = {"opset", "overlap"}  # ONNX's and a metric's own names, which the Russian catalog keeps


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]{5,}", text))


def data_words(obj, key: str | None = None) -> set[str]:
    """Words of the report's data (names, paths, facts): every string value but the English sentences
    stored for JSON readers (PROSE) and the catalog keys of messages (their arguments count)."""
    if key in PROSE:
        return set()
    if isinstance(obj, dict):
        return set().union(*(data_words(v, k) for k, v in obj.items() if k != "key"))
    if isinstance(obj, list):
        return set().union(*(data_words(v) for v in obj))
    return _words(obj) if isinstance(obj, str) else set()


def english_left(report: Report) -> set[str]:
    """English words of the English report that the Russian one still prints, less data, params keys
    and file names: what the catalog failed to translate. A corpus text shortened in a table cell
    ends in part of a word: a prefix of a data word is data."""
    ru, en = (sections.render(report, "text", lang) for lang in ("ru", "en"))
    files = _words(" ".join(sections.PICTURES)) | {"results", "plots", "cases"}  # results/cases/NAME.jsonl
    data = data_words(report.to_dict())
    left = _words(ru) & _words(en) - data - PARAMS_WORDS - TERMS - files
    return {w for w in left if not any(d.startswith(w) for d in data)}


def test_russian_leaves_no_english_prose(monkeypatch):
    assert not english_left(five_candidates())
    # the check sees English where the catalog has none: the cores phrase left untranslated
    monkeypatch.setitem(i18n.MESSAGES, "machine.cores", (i18n.MESSAGES["machine.cores"][0],) * 2)
    assert {"logical", "cores"} <= english_left(five_candidates())


def test_russian_quick_look_leaves_no_english_prose():
    assert not english_left(sampled_report())


SAMPLE = CorpusSample(queries=200, of_queries=698, documents=200, of_documents=698, judged_documents=200,
                      distractors=0, sha256="ab" * 32)  # what compare records for corpus_sample: 200 on the demo


def sampled_report() -> Report:
    r = five_candidates()
    r.sample = SAMPLE
    return r


@pytest.mark.parametrize("lang, top, tag, ship", [
    ("en", "[!] QUICK LOOK: a sample of 200 of 698 queries (200 of 698 documents; params corpus_sample).", "(sample)",
     "This is a quick look on a sample of 200 of 698 queries: confirm it on the whole corpus"),
    ("ru", "[!] БЫСТРЫЙ ВЗГЛЯД: выборка, 200 из 698 запросов (200 из 698 документов; параметр corpus_sample).",
     "(выборка)", "Это быстрый взгляд по выборке, 200 из 698 запросов: перед поставкой подтвердите"),
])
def test_a_sample_is_said_at_the_top_and_on_every_verdict(lang, top, tag, ship):
    r = sampled_report()
    names = blocks.short_names(list(r.models))
    for fmt, width in (("text", 100), ("md", 120)):
        text = sections.render(r, fmt, lang)
        assert max(map(len, text.splitlines())) <= width
        flat = " ".join(text.split())
        assert flat.index(top) < flat.index("[INFO]")  # said before any number
        assert ship in flat
    verdicts = " ".join(_section(sections.section_verdict, lang, report=r).split())
    summary = _section(sections.section_summary, lang, report=r)
    for n in advice.candidates(r):
        status = i18n.t(lang, f"status.{r.models[n].comparison.verdict.status}")
        assert f"{n}: {status} {tag}" in verdicts
        assert f"{status} {tag}" in _row(summary, names[n])
    decided = [n for n in r.ranking if r.models[n].comparison.verdict.status == Status.PASS
               or (r.models[n].comparison.verdict.status == Status.FAIL and r.models[n].comparison.relation.related)]
    recs = " ".join(_section(sections.section_recommendations, lang, report=r).split())
    assert recs.count(i18n.t(lang, "rec.from_sample", queries=200, of_queries=698)) == len(decided) > 0
    whole = sections.render(five_candidates(), "text", lang)  # the whole corpus: no mark anywhere
    assert tag not in whole and top.split(":")[0] not in whole and ship not in " ".join(whole.split())


def test_the_report_carries_the_one_sample_and_refuses_compare_results_of_another(tmp_path):
    """A compare stage run alone with another corpus_sample: its numbers are not put beside the others'."""
    results = shutil.copytree(Path(__file__).parent / "fixtures" / "tiny-results", tmp_path / "results")
    params = params_lib.load(results / "params.yaml")
    assert build_report(params, Results(results)).sample is None  # the whole corpus
    files = sorted((results / "compare").glob("*.json"))
    for path in files:  # every model compared on the same sample
        doc = json.loads(path.read_text())
        path.write_text(json.dumps({**doc, "sample": SAMPLE.to_dict()}))
    assert build_report(params, Results(results)).sample == SAMPLE
    other = results / "compare" / "cand-b.json"
    doc = json.loads(other.read_text())
    other.write_text(json.dumps({**doc, "sample": {**SAMPLE.to_dict(), "queries": 100, "sha256": "cd" * 32}}))
    with pytest.raises(UserError, match=rf"^{re.escape(str(other))}: measured on another corpus sample than "
                                        rf"{re.escape(str(results / 'compare' / 'tiny.json'))} \(corpus_sample\)"):
        build_report(params, Results(results))


def test_catalog_has_both_languages_with_the_same_placeholders():
    fields = lambda s: {f for _, f, _, _ in string.Formatter().parse(s) if f}  # noqa: E731
    for key, (en, ru) in i18n.MESSAGES.items():
        assert en and ru, key
        assert {f.split(":")[0] for f in fields(en)} == {f.split(":")[0] for f in fields(ru)}, key


def test_markdown_embeds_every_picture_and_pictures_are_png():
    r = five_candidates()
    md = sections.render(r, "md", "en")
    for name in sections.PICTURES:
        assert f"(plots/{name})" in md
    pngs = render_plots(r, "ru")
    assert set(pngs) == set(sections.PICTURES)
    for data in pngs.values():
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000
    assert render_plots(r, "ru") == pngs  # same report, same bytes: git stays clean


def test_progress_in_a_log_file_is_lines_with_an_eta():
    stream = io.StringIO()
    p = Progress(4, "benchmark fp32", unit="measurement", every=0.0, stream=stream)
    for _ in range(4):
        p.update()
    p.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4 and "\r" not in stream.getvalue()
    assert lines[0].startswith("benchmark fp32: 1/4 measurements (25%)") and "left" in lines[0]
    assert lines[-1].startswith("benchmark fp32: 4/4 measurements (100%)")
    quiet = io.StringIO()
    Progress(2, "x", stream=quiet, enabled=False).update()
    assert quiet.getvalue() == ""


def _models(candidates: dict) -> dict:
    """name -> (verdict, nDCG change interval's upper end, speedup, its interval half-width, size ratio):
    the parts of a model entry that the ranking and the ship line read."""
    models = {"ref": None}
    for name, (status, ci_high, speed, half, size) in candidates.items():
        sp = SimpleNamespace(speedup=speed, ci_low=speed - half if speed else None,
                             ci_high=speed + half if speed else None, by_state={})
        models[name] = SimpleNamespace(comparison=SimpleNamespace(
            verdict=SimpleNamespace(status=status, scope_code=None), size=SimpleNamespace(ratio=size),
            task_delta={"ndcg@10": SimpleNamespace(relative_ci_high=ci_high, relative=0.0)},
            speed=SimpleNamespace(latency_b1=sp)))
    return models


def _ranked(candidates: dict) -> list[str]:
    return advice.ranking(_models(candidates), "ref")


def test_ranking_is_verdict_then_measurable_quality_loss_then_speed_tier_then_size():
    assert _ranked({"fast-fail": ("FAIL", 0.01, 3.0, 0.1, 1.0), "warn": ("WARN", 0.01, 1.0, 0.1, 1.0),
                    "pass-lossy-fast": ("PASS", -0.001, 3.0, 0.1, 1.0),   # a measurable nDCG loss ranks below no loss
                    "pass-slow": ("PASS", 0.02, 1.1, 0.05, 1.0), "pass-fast": ("PASS", 0.001, 1.9, 0.05, 1.0),
                    "pass-fast-small": ("PASS", 0.001, 1.85, 0.05, 4.0),
                    "pass-unmeasured": ("PASS", None, 9.0, 0.1, 1.0),
                    "pass-no-speed": ("PASS", 0.001, None, 0, 9.0)}) == [
        "pass-fast-small", "pass-fast", "pass-slow", "pass-no-speed", "pass-unmeasured", "pass-lossy-fast", "warn",
        "fast-fail"]


@pytest.mark.parametrize("a_speed,b_speed", [(2.07, 1.90), (1.90, 2.07), (2.0, 2.0), (1.95, 2.10)])
def test_tied_candidates_rank_by_size_whatever_their_point_estimates(a_speed, b_speed):
    """Two PASS candidates without a measurable nDCG loss whose speed intervals overlap: the smaller
    file ships, however the points fall (they move between reruns: docs/timing.md)."""
    models = _models({"int8-pc": ("PASS", 0.003, a_speed, 0.12, 1.30), "int8-emb": ("PASS", 0.002, b_speed, 0.12, 3.95),
                      "fp16": ("PASS", 0.0, 0.9, 0.05, 2.0)})
    assert advice.ranking(models, "ref") == ["int8-emb", "int8-pc", "fp16"]
    report = SimpleNamespace(models=models, ranking=advice.ranking(models, "ref"), sample=None)
    marker, codes = advice.ship_line(report)
    assert marker == "[+]" and codes[0].args["name"] == "int8-emb"
    assert codes[1].key == "ship.tied" and codes[1].args["others"] == f"int8-pc {a_speed:.2f}x"
    assert "picked as the smallest on disk" in i18n.render(codes[1], "en")


def test_a_measurably_faster_candidate_is_not_tied_with_a_smaller_one():
    ranked = _ranked({"small": ("PASS", 0.01, 1.5, 0.05, 4.0), "fast": ("PASS", 0.01, 2.0, 0.05, 1.3)})
    assert ranked == ["fast", "small"]


def test_ship_line_names_the_best_pass_or_the_knob_when_none_passes():
    r = five_candidates()
    marker, codes = advice.ship_line(r)
    code = codes[0]
    assert marker == "[+]" and code.args["name"] == r.ranking[0] and code.key == "ship.pass_scope"
    assert i18n.render(code, "en").startswith(f"Ship {r.ranking[0]}: PASS")
    best = r.models[r.ranking[0]].comparison.speed.latency_b1
    best.by_state = {"fast": StateSpeed(entries=4, speedup=best.speedup, ci_low=None, ci_high=None, rerun_low=None,
                                        rerun_high=None),
                     "slow": StateSpeed(entries=2, speedup=1.62, ci_low=None, ci_high=None, rerun_low=None,
                                        rerun_high=None)}
    slowed = advice.ship_line(r)[1][1]
    assert i18n.render(slowed, "en") == ("That speed is the machine's fast state's; in the 2 of its 6 timed "
                                         "processes that were slowed from outside: 1.62x.")
    assert "1.62x" in i18n.render(slowed, "ru")
    for n in r.ranking:
        r.models[n].comparison.verdict.status = Status.WARN
    r.models["int8-pt"].recipe = {"method": "dynamic", "per_channel": False}
    r.ranking = ["int8-pt"] + [n for n in r.ranking if n != "int8-pt"]
    marker, (code,) = advice.ship_line(r)
    text = i18n.render(code, "en")
    assert marker == "[!]" and text.startswith("No candidate passes. The closest is int8-pt (WARN")
    assert "per-channel weights" in text and "веса per-channel" in i18n.render(code, "ru")


def test_a_busy_timing_is_flagged_with_how_to_rerun_it_in_both_languages():
    r = five_candidates()
    r.models["int8-pt"].load["speedup"] = Load(seconds=10.0, cores=2, own_cpu_s=8.0, other_cpu_s=12.0,
                                               other_fraction=0.6, tolerance=0.1, busy=True)
    assert "60% [!] busy" in _row(_section(sections.section_perf, report=r), "int8-pt")
    en, ru = (sections.render(r, "text", lang).replace("\n    ", " ") for lang in ("en", "ru"))
    assert ("[!] int8-pt: the machine was busy while timing (speedup: other processes used more than 10% of the "
            "CPU); its timings are unreliable, rerun them on an idle machine (dvc repro -f -s speedup).") in en
    assert "int8-pt: во время замера машина была занята (ускорение:" in ru


# ---------------------------------------------------------------- where the candidates lose (issue 19)

DEMO_RESULTS = Path(__file__).parent / "fixtures" / "demo-results"  # a real run's stage outputs, case rows included


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_cases_show_each_candidates_largest_losses_and_gains_with_their_ranks(lang):
    r = fixture_report()
    for fmt in ("text", "md"):
        text = _section(sections.section_cases, lang, fmt, report=r)
        width = 120 if fmt == "md" else 100
        assert max(map(len, text.splitlines())) <= width
        for name in ("int8-pt", "int8-pc"):
            cases = r.models[name].comparison.cases
            k = cases.counts
            counts = (f"{name}: of {k.lost + k.gained + k.same} queries with a relevant document, {k.lost} rank it "
                      f"lower, {k.gained} higher, {k.same} the same." if lang == "en" else
                      f"{name}: из {k.lost + k.gained + k.same} запросов с релевантным документом {k.lost} ставят "
                      f"его ниже, {k.gained} выше, {k.same} так же.")
            assert counts in " ".join(text.split())
            block = text[text.index(f"{name}: "):]
            rows = [line for line in block.splitlines() if re.match(r"\|? ?\[[-+]\]", line)][:6]
            shown = [("[-]", c, c.candidate_first_text) for c in cases.losses[:3]] + \
                    [("[+]", c, c.reference_first_text) for c in cases.gains[:3]]
            assert len(rows) == len(shown) == 6
            for line, (marker, c, first) in zip(rows, shown):
                cells = [x.strip() for x in (line.strip("|").split(" | ") if fmt == "md" else re.split(r"  +", line))]
                assert cells[0] == marker and cells[1] == f"{c.reference_rank:,} -> {c.candidate_rank:,}"
                query, doc = (x.strip("`").removesuffix("...") for x in cells[2:4])
                assert len(query) > 15 and c.query_text.startswith(query)
                assert len(doc) > 15 and (first.replace("|", "\\|") if fmt == "md" else first).startswith(doc)


def test_cases_in_markdown_are_code_spans_that_keep_the_table():
    r = fixture_report()
    case = r.models["int8-pt"].comparison.cases.losses[0]
    case.query_text, case.candidate_first_text = "a | b `x` __init__", "def f(): return a || b"
    md = _section(sections.section_cases, "en", "md", report=r)
    line = next(x for x in md.splitlines() if "__init__" in x)
    assert "`a \\| b 'x' __init__`" in line and "`def f(): return a \\|\\| b`" in line
    assert line.count(" | ") == 3  # four cells: the escaped pipes split nothing
    text = _section(sections.section_cases, "en", "text", report=r)
    assert "a | b `x` __init__" in text  # the console prints the text as it is


def test_task_groups_show_the_change_per_group_and_say_where_it_cannot():
    r = five_candidates()
    by_group = r.models["int8-pt"].comparison.task_by_group
    by_group.length["tokens-few"] = replace(by_group.length["33-64"], queries=4, measurable=False,
                                            reason="too_few_queries", relative=None, relative_ci_low=None,
                                            relative_ci_high=None, wilcoxon_p=None, randomization_p=None)
    for lang, few in (("en", "too few queries"), ("ru", "мало запросов")):
        quality = _section(sections.section_quality, lang, report=r)
        assert max(map(len, quality.splitlines())) <= 100
        js = by_group.lang["javascript"]
        assert js.relative_ci_high < 0  # the demo's int8-pt loses JavaScript measurably
        cell = f"[-] {js.relative:+.2%} [{js.relative_ci_low:+.2%}, {js.relative_ci_high:+.2%}]"
        label = "lang javascript" if lang == "en" else "язык javascript"
        assert cell in _row(quality, f"{label} (n={js.queries})")
        short = by_group.length["33-64"]
        assert short.relative_ci_low < 0 < short.relative_ci_high  # no [-] where it is not measurable
        assert f"{short.relative:+.2%} [" in _row(quality, f"{'tokens' if lang == 'en' else 'токены'} 33-64")
        assert "[-] " + f"{short.relative:+.2%}" not in quality
        assert few in quality
    d = r.models["int8-pt"].comparison.task_delta["ndcg@10"]
    assert d.wilcoxon_p > 0.001 > d.randomization_p
    assert f"{d.wilcoxon_p:.3f} / <0.001" in _row(_section(sections.section_quality), "int8-pt")


def test_queries_every_model_misses_are_listed_apart():
    r = fixture_report()
    m = r.missed_by_all
    text = " ".join(_section(sections.section_cases, report=r).split())
    assert (f"[!] {m.count} of {m.queries} queries have no relevant document in any model's top 10, the reference's "
            "included: quantization did not lose them") in text
    assert m.count > 5 and len(m.first) == 20
    for q in m.first[:5]:
        assert f"{q.query_text[:30]}" in text and f"{q.reference_rank:,} {q.best_rank:,}" in text
    assert "У " + str(m.count) + " из " in _section(sections.section_cases, "ru", report=r)
    r.missed_by_all = replace(m, count=0, first=[])
    none_missed = " ".join(_section(sections.section_cases, report=r).split())
    assert "Every one of the 698 queries has a relevant document" in none_missed
    r.missed_by_all = None
    assert "top 10" not in _section(sections.section_cases, report=r)


def _json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_missed_by_every_model_is_read_from_each_models_case_rows(tmp_path):
    names = ["fp32", "int8-pt", "int8-pc", "int8-emb", "int8-static", "fp16", "fp32-ov"]
    rows = {n: _json_lines(DEMO_RESULTS / "cases" / f"{n}.jsonl") for n in names}
    missed = [q for q in range(len(rows["fp32"])) if not any(rows[n][q]["candidate_hit@10"] for n in names)]
    assert all(not rows[n][q]["reference_hit@10"] for n in names for q in missed)  # the reference's, in every file
    best = {q: min(rows[n][q]["candidate_rank"] for n in names) for q in missed}
    got = missed_queries(names, "fp32", Results(DEMO_RESULTS))
    assert (got.count, got.queries, got.models) == (len(missed), len(rows["fp32"]), names)
    assert [q.query for q in got.first] == sorted(missed, key=lambda q: (-best[q], q))[:20]
    for q in got.first:
        row = rows["fp32"][q.query]
        assert (q.query_id, q.query_text, q.document_id, q.reference_rank, q.best_rank) == (
            row["query_id"], row["query_text"], row["document_id"], row["reference_rank"], best[q.query])
        assert q.best_rank > 10

    # a file of another corpus, a missing one, a line of another shape: one line naming the file
    results = Results(tmp_path)
    (tmp_path / "cases").mkdir()
    for n in names[:2]:
        (tmp_path / "cases" / f"{n}.jsonl").write_bytes((DEMO_RESULTS / "cases" / f"{n}.jsonl").read_bytes())
    short = (tmp_path / "cases" / "int8-pt.jsonl").read_text(encoding="utf-8").splitlines()
    (tmp_path / "cases" / "int8-pt.jsonl").write_text("\n".join(short[:-1]) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"int8-pt.jsonl: 697 queries, .*fp32.jsonl 698: written for different"):
        missed_queries(names[:2], "fp32", results)
    (tmp_path / "cases" / "int8-pt.jsonl").write_text("\n".join(short) + "\n", encoding="utf-8")
    assert missed_queries(names[:2], "fp32", results).count >= got.count  # two models miss at least what seven do
    with pytest.raises(UserError, match=r"int8-pc.jsonl: file not found \(did the stage that writes it run\?\)"):
        missed_queries(names[:3], "fp32", results)
    broken = json.loads(short[4])
    del broken["candidate_hit@10"]
    (tmp_path / "cases" / "int8-pt.jsonl").write_text(
        "\n".join(short[:4] + [json.dumps(broken)] + short[5:]) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"int8-pt.jsonl:5: expected the keys candidate_hit@10, reference_hit@10"):
        missed_queries(names[:2], "fp32", results)
