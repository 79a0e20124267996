"""The report's machine bookkeeping: which machine each number came from, and what it says about the
other INT8 instruction path. Rendering as a whole runs in the end-to-end test."""
from stages.lib.machine import label
from stages.lib.reporting import int8_path_advice, machine_summary

A = {"cpu": "CPU A", "cores_logical": 2, "cores_physical": 2, "arch": "x86_64", "flags": ["avx2"],
     "int8_support": "AVX2 only (no VNNI)", "onnxruntime": "1"}
B = {**A, "cpu": "CPU B", "flags": ["avx2", "avx512_vnni"], "int8_support": "AVX512-VNNI"}
EMB_A = {k: v for k, v in A.items() if k not in ("cpu", "cores_logical", "cores_physical")}


def _model(embed, bench, speedup):
    return {"machines": {"embed": label(embed), "benchmark": label(bench), "speedup": label(speedup)}}


def test_one_machine_gives_no_warning():
    models = {"ref": _model(EMB_A, A, A), "cand": _model(EMB_A, A, A)}
    out = machine_summary(models, label(A))
    assert out["warnings"] == []
    assert list(out["timing"]) == ["T1"] and out["timing"]["T1"]["description"] == label(A)["description"]
    assert out["timing"]["T1"]["used_by"] == ["ref benchmark", "ref speedup", "cand benchmark", "cand speedup"]
    assert list(out["embed"]) == ["E1"]


def test_mixed_timings_are_named_per_model_and_never_merged():
    models = {"ref": _model(EMB_A, A, A), "cand": _model(EMB_A, B, A)}
    out = machine_summary(models, label(A))
    assert set(out["timing"]) == {"T1", "T2"} and out["timing"]["T2"]["used_by"] == ["cand benchmark"]
    assert [w.split(":")[0] for w in out["warnings"]] == ["ref", "cand"]
    assert "benchmark on T2, speedup on T1" in out["warnings"][1]


def test_results_from_elsewhere_are_flagged_against_this_machine():
    models = {"ref": _model(EMB_A, A, A)}
    out = machine_summary(models, label(B))
    assert out["warnings"] == [f"the timings come from another machine than this one ({label(B)['description']})"]


def test_results_without_machine_facts_are_unknown_not_guessed():
    out = machine_summary({"ref": _model(None, None, None)}, label(A))
    assert out["timing"]["T1"]["id"] is None and "unknown" in out["timing"]["T1"]["description"]


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
    assert [code["key"] for _, code in unknown] == ["rec.int8_unknown"]


# ---------------------------------------------------------------- rendering a fixed report

import copy  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import string  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from stages.lib import i18n, reporting  # noqa: E402
from stages.lib.plotting import render_plots  # noqa: E402
from stages.lib.progress import Progress  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "report.json"  # a real demo report (3 models)
LONG = "int8-per-channel-reduce-range-gather"


def five_candidates() -> dict:
    """The fixture grown to 5 candidates with long names: one unrelated network, one of the
    reference's size, one whose two speed estimates disagree."""
    r = json.loads(FIXTURE.read_text())
    pc, pt = r["models"]["int8-pc"], r["models"]["int8-pt"]
    for name, src in ((LONG, pc), (LONG + "-v2", pc), ("other-network", pt), ("fp32-copy", pc)):
        r["models"][name] = copy.deepcopy(src)
    other = r["models"]["other-network"]["comparison"]
    other["relation"] = {"related": False, "parameter_ratio": 2.0, "reason": "different embedding dimension"}
    r["models"]["fp32-copy"]["comparison"]["size"]["ratio"] = 1.0
    speed = r["models"][LONG]["comparison"]["speed"]
    speed["latency_b1"].update(speedup=1.8, ci_low=1.74, ci_high=1.89)
    speed["latency_b1_separate_runs"].update(speedup=5.42, ci_low=4.9, ci_high=6.0)
    r["ranking"] = reporting.ranking(r["models"], r["reference"])
    return r


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_console_fits_100_and_markdown_120_columns_with_5_candidates(lang):
    r = five_candidates()
    text, md = reporting.render(r, "text", lang), reporting.render(r, "md", lang)
    assert max(map(len, text.splitlines())) <= 100
    assert max(map(len, md.splitlines())) <= 120
    assert text.count("[") > 10 and "\u2026" not in text  # markers present, no unicode ellipsis
    for tag in ("INFO", "PERF", "QUALITY", "VERDICT", "SUMMARY", "RECOMMENDATIONS"):
        assert f"[{tag}]" in text
    assert text.encode("cp1251" if lang == "ru" else "ascii")  # a Windows console code page prints it


def test_long_names_are_shortened_the_same_way_everywhere():
    names = reporting.short_names(["fp32", LONG, LONG + "-v2", "other-network"])
    assert names["fp32"] == "fp32" and names["other-network"] == "other-network"
    assert len(set(names.values())) == 4 and all(len(v) <= reporting.NAME_WIDTH for v in names.values())
    text = reporting.render(five_candidates(), "text", "en")
    assert f"{names[LONG]} = {LONG}" in text  # the legend
    for line in text.splitlines():
        if line.startswith(names[LONG] + " "):
            break
    else:
        pytest.fail("no table row starts with the shortened name")


def _section(fn, lang="en", fmt="text", report=None):
    r = report or five_candidates()
    ctx = reporting.Ctx(fmt, lang, reporting.short_names(list(r["models"])), "95%")
    return "\n".join(fn(r, ctx))


def _row(text: str, label: str) -> str:
    """Every table row of one model (its tables may be split by concern), joined."""
    return " | ".join(line for line in text.splitlines() if re.match(rf"(\d+ +)?{re.escape(label)} ", line))


def test_info_says_same_size_instead_of_1_00x_larger():
    ctx_names = reporting.short_names(list(five_candidates()["models"]))
    info = _section(reporting.section_info)
    assert "same size" in _row(info, ctx_names["fp32-copy"]) and "1.00x" not in info
    assert "[+] 1.30x smaller" in _row(info, "int8-pc")
    assert "тот же размер" in _section(reporting.section_info, "ru")


def test_a_different_network_shows_no_cosine():
    quality, summary = _section(reporting.section_quality), _section(reporting.section_summary)
    cos_row = next(line for line in _row(quality, "other-network").split(" | ") if "n/a (different model)" in line)
    assert "0.9613" not in cos_row and "0.9160" not in cos_row  # its cosine mean / p1 are not shown
    assert "n/a (different model)" in _row(summary, "other-network") and "0.9613" not in _row(summary, "other-network")
    assert "0.9613" in _row(quality, "int8-pt")  # the same numbers on a related model are shown
    assert "н/д (другая модель)" in _row(_section(reporting.section_quality, "ru"), "other-network")


def test_disagreeing_speed_estimates_are_named_with_the_one_trusted():
    perf = _section(reporting.section_perf)
    short = reporting.short_names(list(five_candidates()["models"]))[LONG]
    assert "DISAGREE" in _row(perf, short) and "agree" in _row(perf, "int8-pc")
    assert "1.80x [1.74, 1.89] in one process vs 5.42x [4.90, 6.00] in separate processes" in perf.replace("\n    ", " ")
    assert "trusts the one-process estimate" in perf.replace("\n    ", " ")


def test_verdict_lines_name_their_scope_and_reasons_in_both_languages():
    en, ru = _section(reporting.section_verdict), _section(reporting.section_verdict, "ru")
    assert "[-] int8-pt: FAIL; holds on CPUs with VNNI (AVX512-VNNI, AVX-VNNI or AMX)" in en
    assert "- mean cosine to reference 0.9613 < 0.97" in en
    assert "[-] int8-pt: ПРОВАЛ; верно для: ЦП с VNNI (AVX512-VNNI, AVX-VNNI или AMX)" in ru
    assert "- средний косинус к эталону 0.9613 < 0.97" in ru


@pytest.mark.parametrize("sampled", [False, True], ids=["whole-corpus", "corpus-sample"])
def test_russian_leaves_no_english_prose(sampled):
    report = sampled_report() if sampled else five_candidates()
    ru = reporting.render(report, "text", "ru")
    english = {w for w in re.findall(r"[a-z]{5,}", reporting.render(report, "text", "en"))}
    # what may stay English: data (model, corpus, op and provider names, machine facts) and params keys
    allowed = ({w for w in re.findall(r"[a-z]{5,}", json.dumps(five_candidates()))}
               | {"reduce", "range", "channel", "nodes", "exclude", "interleave", "results", "plots",
                  "corpus", "sample"}  # params keys (corpus_sample), paths
               | {w for p in reporting.PICTURES for w in re.findall(r"[a-z]{5,}", p)})
    leftover = {w for w in re.findall(r"[a-z]{5,}", ru)} & english - allowed
    assert not leftover, leftover


SAMPLE = {"queries": 200, "of_queries": 698, "documents": 200, "of_documents": 698, "judged_documents": 200,
          "distractors": 0, "sha256": "ab" * 32}  # what compare records for corpus_sample: 200 on the demo


def sampled_report() -> dict:
    return {**five_candidates(), "sample": SAMPLE}


@pytest.mark.parametrize("lang, top, tag, ship", [
    ("en", "[!] QUICK LOOK: a sample of 200 of 698 queries (200 of 698 documents; params corpus_sample).", "(sample)",
     "This is a quick look on a sample of 200 of 698 queries: confirm it on the whole corpus"),
    ("ru", "[!] БЫСТРЫЙ ВЗГЛЯД: выборка, 200 из 698 запросов (200 из 698 документов; параметр corpus_sample).",
     "(выборка)", "Это быстрый взгляд по выборке, 200 из 698 запросов: перед поставкой подтвердите"),
])
def test_a_sample_is_said_at_the_top_and_on_every_verdict(lang, top, tag, ship):
    r = sampled_report()
    names = reporting.short_names(list(r["models"]))
    for fmt, width in (("text", 100), ("md", 120)):
        text = reporting.render(r, fmt, lang)
        assert max(map(len, text.splitlines())) <= width
        flat = " ".join(text.split())
        assert flat.index(top) < flat.index("[INFO]")  # said before any number
        assert ship in flat
    verdicts = " ".join(_section(reporting.section_verdict, lang, report=r).split())
    summary = _section(reporting.section_summary, lang, report=r)
    for n in reporting._cands(r):
        status = i18n.t(lang, f"status.{r['models'][n]['comparison']['verdict']['status']}")
        assert f"{n}: {status} {tag}" in verdicts
        assert f"{status} {tag}" in _row(summary, names[n])
    passing = [n for n in r["ranking"] if r["models"][n]["comparison"]["verdict"]["status"] == "PASS"]
    recs = " ".join(_section(reporting.section_recommendations, lang, report=r).split())
    assert recs.count(i18n.t(lang, "rec.from_sample", **SAMPLE)) >= len(passing) > 0
    whole = reporting.render(five_candidates(), "text", lang)  # the whole corpus: no mark anywhere
    assert tag not in whole and top.split(":")[0] not in whole and ship not in " ".join(whole.split())


def test_catalog_has_both_languages_with_the_same_placeholders():
    fields = lambda s: {f for _, f, _, _ in string.Formatter().parse(s) if f}  # noqa: E731
    for key, (en, ru) in i18n.MESSAGES.items():
        assert en and ru, key
        assert {f.split(":")[0] for f in fields(en)} == {f.split(":")[0] for f in fields(ru)}, key


def test_markdown_embeds_every_picture_and_pictures_are_png():
    r = five_candidates()
    md = reporting.render(r, "md", "en")
    for name in reporting.PICTURES:
        assert f"(plots/{name})" in md
    pngs = render_plots(r, "ru")
    assert set(pngs) == set(reporting.PICTURES)
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


def _ranked(candidates: dict) -> list[str]:
    models = {"ref": {}}
    for name, (status, ci_high, speed, size) in candidates.items():
        models[name] = {"comparison": {"verdict": {"status": status}, "size": {"ratio": size},
                                       "task_delta": {"ndcg@10": {"relative_ci_high": ci_high}},
                                       "speed": {"latency_b1": {"speedup": speed}}}}
    return reporting.ranking(models, "ref")


def test_ranking_is_verdict_then_measurable_quality_loss_then_speed_then_size():
    assert _ranked({"fast-fail": ("FAIL", 0.01, 3.0, 1.0), "warn": ("WARN", 0.01, 1.0, 1.0),
                    "pass-lossy-fast": ("PASS", -0.001, 3.0, 1.0),   # a measurable nDCG loss ranks below no loss
                    "pass-slow": ("PASS", 0.02, 1.1, 1.0), "pass-fast": ("PASS", 0.001, 1.9, 1.0),
                    "pass-fast-small": ("PASS", 0.001, 1.9, 4.0), "pass-unmeasured": ("PASS", None, 9.0, 1.0)}) == [
        "pass-fast-small", "pass-fast", "pass-slow", "pass-unmeasured", "pass-lossy-fast", "warn", "fast-fail"]


def test_ship_line_names_the_best_pass_or_the_knob_when_none_passes():
    r = five_candidates()
    marker, codes = reporting.ship_line(r)
    code = codes[0]
    assert marker == "[+]" and code["args"]["name"] == r["ranking"][0] and code["key"] == "ship.pass_scope"
    assert i18n.render(code, "en").startswith(f"Ship {r['ranking'][0]}: PASS")
    for n in r["ranking"]:
        r["models"][n]["comparison"]["verdict"]["status"] = "WARN"
    r["models"]["int8-pt"]["recipe"] = {"method": "dynamic", "per_channel": False}
    r["ranking"] = ["int8-pt"] + [n for n in r["ranking"] if n != "int8-pt"]
    marker, code = reporting.ship_line(r)
    text = i18n.render(code, "en")
    assert marker == "[!]" and text.startswith("No candidate passes. The closest is int8-pt (WARN")
    assert "per-channel weights" in text and "веса per-channel" in i18n.render(code, "ru")


def test_a_busy_timing_is_flagged_with_how_to_rerun_it_in_both_languages():
    r = five_candidates()
    r["models"]["int8-pt"]["load"]["speedup"] = {"other_fraction": 0.6, "busy": True}
    assert "60% [!] busy" in _row(_section(reporting.section_perf, report=r), "int8-pt")
    en, ru = (reporting.render(r, "text", lang).replace("\n    ", " ") for lang in ("en", "ru"))
    assert ("[!] int8-pt: the machine was busy while timing (speedup: other processes used more than 10% of the "
            "CPU); its timings are unreliable, rerun them on an idle machine (dvc repro -f -s speedup@int8-pt).") in en
    assert "int8-pt: во время замера машина была занята (speedup:" in ru
