"""Every word the report prints, in English and Russian (`report.language`), in one catalog.

Numbers and model names are never translated. A sentence the pipeline decides on (a verdict
reason, its scope, a diagnosis outcome, a runtime note, a machine warning, a recommendation) is a
`Message`: a catalog key plus its arguments, stored in JSON as `{"key": ..., "args": {...}}` so any
language can be rendered from it; documents store its English text beside it for people reading
the JSON.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import DocumentError

LANGUAGES = ("en", "ru")

# key -> (English, Russian). Placeholders are str.format fields and must match in both.
MESSAGES: dict[str, tuple[str, str]] = {
    # headings
    "title": ("EMBEDDING MODEL COMPARISON", "СРАВНЕНИЕ МОДЕЛЕЙ ЭМБЕДДИНГОВ"),
    "sec.INFO": ("GENERAL INFORMATION", "ОБЩАЯ ИНФОРМАЦИЯ"),
    "sec.PERF": ("PERFORMANCE", "ПРОИЗВОДИТЕЛЬНОСТЬ"),
    "sec.QUALITY": ("EMBEDDING QUALITY", "КАЧЕСТВО ЭМБЕДДИНГОВ"),
    "sec.CASES": ("WHERE THE CANDIDATES LOSE AND GAIN", "ГДЕ КАНДИДАТЫ ТЕРЯЮТ И ВЫИГРЫВАЮТ"),
    "sec.VERDICT": ("VERDICT", "ВЕРДИКТ"),
    "sec.SUMMARY": ("SUMMARY", "ИТОГ"),
    "sec.RECOMMENDATIONS": ("RECOMMENDATIONS", "РЕКОМЕНДАЦИИ"),
    "head.reference": ("reference: {ref}; corpus: {corpus}", "эталон: {ref}; корпус: {corpus}"),
    "head.sample": ("QUICK LOOK: a sample of {queries} of {of_queries} queries ({documents} of {of_documents} "
                    "documents; params corpus_sample). Every quality number and verdict below is the sample's: "
                    "intervals as wide as {queries} queries make them, and with fewer documents competing, retrieval "
                    "scores higher than on the whole corpus. corpus_sample: 0 measures the whole corpus.",
                    "БЫСТРЫЙ ВЗГЛЯД: выборка, {queries} из {of_queries} запросов ({documents} из {of_documents} "
                    "документов; параметр corpus_sample). Все числа качества и вердикты ниже - по выборке: интервалы "
                    "так широки, как позволяют {queries} запросов, а при меньшем числе конкурирующих документов поиск "
                    "оценивается выше, чем на всем корпусе. corpus_sample: 0 измеряет весь корпус."),
    "head.short_names": ("long model names are shortened in tables: {pairs}",
                         "длинные имена моделей в таблицах сокращены: {pairs}"),
    # column headers
    "col.model": ("model", "модель"),
    "col.candidate": ("candidate", "кандидат"),
    "col.format": ("format", "формат"),
    "col.size_mb": ("size MB", "размер, МБ"),
    "col.graph_ext": ("graph + ext. MB", "граф + внешн., МБ"),
    "col.parameters": ("parameters", "параметры"),
    "col.vs_ref_size": ("size vs reference", "размер к эталону"),
    "col.dim": ("dim", "разм."),
    "col.pooling": ("pooling", "пулинг"),
    "col.l2": ("L2 norm", "L2-норм."),
    "col.max_len": ("max tokens", "макс. токенов"),
    "col.opset": ("opset", "opset"),
    "col.recipe": ("recipe", "рецепт"),
    "col.activations": ("activations", "активации"),
    "col.calibration": ("calibration", "калибровка"),
    "act.dynamic": ("quantized per batch", "квантуются по батчу"),
    "act.static": ("calibrated scales", "калиброванные шкалы"),
    "act.none": ("float", "float"),
    "act.unknown": ("n/a", "н/д"),
    "cell.calibration": ("{n} texts, {overlap} in evaluation", "{n} текстов, {overlap} из оценки"),
    "col.p50": ("p50 ms", "p50, мс"),
    "col.p90": ("p90 ms", "p90, мс"),
    "col.p99": ("p99 ms", "p99, мс"),
    "col.mean_std": ("mean +- std ms", "среднее +- СКО, мс"),
    "col.n": ("n", "n"),
    "col.run_to_run": ("run-to-run", "между прогонами"),
    "col.other_load": ("others' CPU", "чужая загрузка ЦП"),
    "col.session_s": ("session s", "сессия, с"),
    "col.texts_s": ("texts/s @bs{bs}", "текстов/с @bs{bs}"),
    "col.sorted_gain": ("sorted vs unsorted", "сортировка дает"),
    "col.peak_rss": ("peak RSS MB", "пик RSS, МБ"),
    "col.speedup_pr": ("fast state [{conf}]", "быстрое сост. [{conf}]"),
    "col.rerun": ("a rerun [{conf}]", "повтор [{conf}]"),
    "col.noise_floor": ("A/A floor", "порог A/A"),
    "col.state_slow": ("slow (n)", "медл. (n)"),
    "col.mix": ("run's mix", "весь прогон"),
    "col.ndcg": ("nDCG@10", "nDCG@10"),
    "col.mrr": ("MRR@10", "MRR@10"),
    "col.r1": ("R@1", "R@1"),
    "col.r10": ("R@10", "R@10"),
    "col.ndcg_change": ("nDCG@10 change [{conf}]", "изменение nDCG@10 [{conf}]"),
    "col.p_tests": ("p: Wilcoxon / perm.", "p: Уилкоксон / перест."),
    "col.ref_ndcg": ("{ref} nDCG@10", "{ref} nDCG@10"),
    "col.rank_move": ("rank", "ранг"),
    "col.query": ("query", "запрос"),
    "col.first_instead": ("ranked first instead", "на первом месте вместо него"),
    "col.relevant_doc": ("relevant document", "релевантный документ"),
    "col.ref_rank": ("{ref} rank", "ранг у {ref}"),
    "col.best_rank": ("best rank", "лучший ранг"),
    "col.cos_mean": ("cos mean", "cos средн."),
    "col.cos_p1": ("cos p1", "cos p1"),
    "col.cos_min": ("cos min", "cos мин."),
    "col.inv_min": ("batch-invariance min", "инвариантность к батчу, мин."),
    "col.pearson": ("sim Pearson", "Пирсон"),
    "col.spearman": ("sim Spearman", "Спирмен"),
    "col.overlap": ("overlap@10", "overlap@10"),
    "col.top1": ("top-1 agree", "совпад. top-1"),
    "col.rbo": ("RBO@10", "RBO@10"),
    "col.cka": ("CKA", "CKA"),
    "col.group": ("group", "группа"),
    "col.snippet": ("snippet", "сниппет"),
    "col.lang": ("lang", "язык"),
    "col.ref_top1": ("{ref} top-1", "{ref} top-1"),
    "col.size_vs_ref": ("size", "размер"),
    "col.speed_b1": ("speed, batch 1", "скорость, батч 1"),
    "col.quality": ("nDCG@10 change", "изменение nDCG@10"),
    "col.cosine": ("cosine", "косинус"),
    "col.verdict": ("verdict", "вердикт"),
    # cells
    "cell.from_sample": ("(sample)", "(выборка)"),
    "cell.reference": ("{name} (reference)", "{name} (эталон)"),
    "cell.baseline": ("baseline", "база"),
    "cell.yes": ("yes", "да"),
    "cell.no": ("no", "нет"),
    "cell.na": ("n/a", "н/д"),
    "cell.na_other_model": ("n/a (different model)", "н/д (другая модель)"),
    "cell.same_size": ("same size", "тот же размер"),
    "cell.smaller": ("{x:.2f}x smaller", "в {x:.2f} раза меньше"),
    "cell.larger": ("{x:.2f}x larger", "в {x:.2f} раза больше"),
    "cell.faster": ("{x:.2f}x faster", "в {x:.2f} раза быстрее"),
    "cell.slower": ("{x:.2f}x slower", "в {x:.2f} раза медленнее"),
    "cell.no_difference": ("no measurable difference ({x:.2f}x)", "разница не измерима ({x:.2f}x)"),
    "cell.noisy": ("noisy", "шумно"),
    "cell.not_lower": ("not sig.", "незначимо"),
    "cell.lower": ("lower", "ниже"),
    "cell.unmeasurable": ("not measurable", "не измеримо"),
    "cell.too_few_queries": ("too few queries", "мало запросов"),
    "cell.reference_zero": ("reference at 0", "у эталона 0"),
    "cell.hit": ("hit", "да"),
    "cell.miss": ("miss", "нет"),
    "cell.lang_group": ("lang {g}", "язык {g}"),
    "cell.tokens_group": ("tokens {g}", "токены {g}"),
    # notes
    "note.timed_on": ("Timed on: {machine}", "Замеры скорости: {machine}"),
    "note.embedded_on": ("Embeddings computed on: {machine}", "Эмбеддинги посчитаны на: {machine}"),
    "note.timed_on_many": ("Timed on {n} different machines; numbers from different machines are not comparable:",
                           "Скорость мерили на {n} разных машинах; числа с разных машин несравнимы:"),
    "note.embedded_on_many": ("Embeddings computed on {n} different machines; numbers from different machines are "
                              "not comparable:",
                              "Эмбеддинги считали на {n} разных машинах; числа с разных машин несравнимы:"),
    "note.machine_tag": ("{tag} = {machine}: {used}", "{tag} = {machine}: {used}"),
    "note.provider": ("Provider: {provider}, intra-op threads: {threads}.",
                      "Провайдер: {provider}, потоков: {threads}."),
    "note.latency_method": (
        "Latency: batch 1 on real corpus texts after warmup, each model in its own process (run-to-run: "
        "difference of two back-to-back runs' medians; others' CPU: share of all cores other processes used "
        "while timing: benchmark / speedup). Speedup: reference time / candidate time, every model timed in fresh "
        "processes, one model per process as deployed, in {blocks} blocks interleaved over time (each block: every "
        "candidate and the reference again as the A/A control, shuffled, with a process of the reference before, "
        "between and after them). Each process ran in the machine's fast state or was slowed from outside (more "
        "than 15% slower than its model's fast level); the speedup compares each model's fast processes with the "
        "nearest fast reference processes, {conf} t-interval with the spread between processes pooled over all "
        "models. A rerun: where another run's speedup should land ({conf}), sqrt(2) wider. A/A floor: the "
        "half-width of the A/A control's interval, the method's noise floor. Slow: the same "
        "for the slowed processes (how many). Run's mix: every process against the reference processes "
        "beside it, whatever their state; it moves with the share of slowed processes, which changes from run "
        "to run.",
        "Задержка: батч 1 на реальных текстах корпуса после прогрева, каждая модель в своем процессе (между "
        "прогонами: разница медиан двух прогонов подряд; чужая загрузка ЦП: доля всех ядер, занятая другими "
        "процессами во время замера: замер / ускорение). Ускорение: время эталона / время кандидата; каждая "
        "модель замеряется в новых процессах, по одной модели на процесс, как в эксплуатации, в {blocks} блоках, "
        "чередующихся во времени (блок: все кандидаты и снова эталон как A/A-контроль, вперемешку, с процессом "
        "эталона до, между и после них). Каждый процесс шел либо в быстром состоянии машины, либо был замедлен "
        "извне (более чем на 15% медленнее быстрого уровня своей модели); ускорение сравнивает быстрые процессы "
        "каждой модели с ближайшими быстрыми процессами эталона, {conf} t-интервал с разбросом между процессами, "
        "объединенным по всем моделям. Повтор: куда должно попасть ускорение другого прогона ({conf}), в sqrt(2) "
        "шире. Порог A/A: полуширина интервала A/A-контроля, порог шума метода. Медл.: то же для замедленных "
        "процессов (сколько их). Весь прогон: каждый процесс "
        "против соседних процессов эталона, в каком бы состоянии они ни были; эта оценка меняется вместе с долей "
        "замедленных процессов, а та - от прогона к прогону."),
    "note.states": (
        "The machine ran in two speed states while timing: the reference took about {fast:.2f} ms per text in one "
        "and {slow:.2f} in the other (split at {threshold:.2f} ms; {slow_n} of its {n} processes slow). The "
        "speedup is the fast state's; the slow state's and the run's mix are beside it.",
        "Во время замеров машина была в двух состояниях скорости: эталон тратил около {fast:.2f} мс на текст в "
        "одном и {slow:.2f} в другом (граница {threshold:.2f} мс; {slow_n} из {n} его процессов медленные). "
        "Ускорение дано для быстрого состояния; для медленного и для всего прогона - рядом."),
    "note.control": ("A/A control (the reference against itself, same protocol): {x:.3f}x [{lo:.3f}, {hi:.3f}]",
                     "A/A-контроль (эталон против самого себя, тот же протокол): {x:.3f}x [{lo:.3f}, {hi:.3f}]"),
    "note.control_bad": ("the method sees a difference where there is none: the machine is too noisy for speed "
                         "conclusions",
                         "метод видит разницу там, где ее нет: машина слишком шумная для выводов о скорости"),
    "note.agreement": ("Agreement: each text's vector from the candidate vs the reference (same batches); "
                       "similarity matrices are query x code cosine scores.",
                       "Согласие: вектор каждого текста у кандидата против эталона (те же батчи); матрицы "
                       "сходства - косинусы запрос x код."),
    "note.breakdown": ("Cosine to reference by language and by token length (mean/min):",
                       "Косинус к эталону по языкам и по длине в токенах (среднее/мин.):"),
    "note.task_tests": ("nDCG@10 change: relative change of the mean over queries with its paired bootstrap "
                        "interval; p: Wilcoxon signed-rank test / paired randomization (permutation) test, "
                        "both on per-query nDCG@10.",
                        "Изменение nDCG@10: относительное изменение среднего по запросам с парным бутстреп-"
                        "интервалом; p: знаковый ранговый критерий Уилкоксона / парный рандомизационный "
                        "(перестановочный) тест, оба по nDCG@10 запросов."),
    "note.task_groups": ("nDCG@10 by the queries' language and by their length in reference tokens: the "
                         "reference's value, then each candidate's change [{conf}]; [-] where the candidate "
                         "loses measurably inside the group. Groups of fewer than {min} queries get no interval.",
                         "nDCG@10 по языку запросов и по их длине в токенах эталона: значение эталона, затем "
                         "изменение у каждого кандидата [{conf}]; [-] там, где кандидат измеримо теряет внутри "
                         "группы. Группам меньше {min} запросов интервал не считается."),
    "note.cases": ("Each query's best relevant document (the relevant one the reference ranks highest) and its "
                   "rank among all documents, under the reference -> under the candidate; the {n} largest "
                   "losses [-] and gains [+] by the change in reciprocal rank, with what was ranked first "
                   "instead (for a loss the candidate's first document, for a gain the reference's). More in "
                   "report.json; every query in results/cases/NAME.jsonl.",
                   "Лучший релевантный документ каждого запроса (тот из релевантных, что эталон ставит выше "
                   "всех) и его ранг среди всех документов у эталона -> у кандидата; {n} самых больших потерь "
                   "[-] и выигрышей [+] по изменению обратного ранга и то, что оказалось на первом месте "
                   "вместо него (при потере - первый документ кандидата, при выигрыше - эталона). Больше в "
                   "report.json; все запросы в results/cases/NAME.jsonl."),
    "note.cases_counts": ("{name}: of {n} queries with a relevant document, {lost} rank it lower, {gained} "
                          "higher, {same} the same.",
                          "{name}: из {n} запросов с релевантным документом {lost} ставят его ниже, {gained} "
                          "выше, {same} так же."),
    "note.missed": ("{count} of {queries} queries have no relevant document in any model's top 10, the "
                    "reference's included: quantization did not lose them; they point at the labels, the corpus "
                    "or the reference model itself. The {n} whose document every model ranks lowest (more in "
                    "report.json):",
                    "У {count} из {queries} запросов нет релевантного документа в top-10 ни одной модели, "
                    "включая эталон: их потеряло не квантование; они указывают на разметку, корпус или на саму "
                    "эталонную модель. {n}, чей документ все модели ставят ниже всего (больше в report.json):"),
    "note.missed_none": ("Every one of the {queries} queries has a relevant document in some model's top 10.",
                         "У каждого из {queries} запросов релевантный документ есть в top-10 хотя бы одной "
                         "модели."),
    "note.snippets": ("Quick view, hand-written snippets (cosine to reference, own code ranked first among "
                      "snippets):",
                      "Быстрый взгляд, написанные вручную сниппеты (косинус к эталону, свой код на первом месте "
                      "среди сниппетов):"),
    "note.pictures": ("Pictures: {files}", "Графики: {files}"),
    "note.verdict_scope": ("{marker} {name}: {status}; {scope}", "{marker} {name}: {status}; {scope}"),
    "note.verdict": ("{marker} {name}: {status}", "{marker} {name}: {status}"),
    "note.no_candidates": ("no candidates", "кандидатов нет"),
    "status.PASS": ("PASS", "ПРОШЕЛ"),
    "status.WARN": ("WARN", "ВНИМАНИЕ"),
    "status.FAIL": ("FAIL", "ПРОВАЛ"),
    # picture titles and axes
    "fig.cosine": ("Cosine to reference per text", "Косинус к эталону по текстам"),
    "fig.cosine_x": ("cosine to reference (bin)", "косинус к эталону (интервал)"),
    "fig.texts": ("texts", "тексты"),
    "fig.latency": ("Latency p50 vs sequence length", "Задержка p50 от длины последовательности"),
    "fig.seq_len": ("tokens per text", "токенов в тексте"),
    "fig.ms": ("p50 ms", "p50, мс"),
    "fig.batch": ("batch {bs}", "батч {bs}"),
    "fig.throughput": ("Throughput vs batch size", "Пропускная способность от размера батча"),
    "fig.batch_size": ("batch size", "размер батча"),
    "fig.texts_s": ("texts/s", "текстов/с"),
    "fig.sorted": ("{name} sorted", "{name} сортировка"),
    "fig.unsorted": ("{name} corpus order", "{name} порядок корпуса"),
    "fig.tradeoff": ("Speed vs quality ({conf} intervals)", "Скорость против качества (интервалы {conf})"),
    "fig.speedup": ("speedup vs reference, batch 1 (x)", "ускорение к эталону, батч 1 (раз)"),
    "fig.ndcg_change": ("nDCG@10 change vs reference (%)", "изменение nDCG@10 к эталону (%)"),
    "fig.pass_line": ("PASS bound on nDCG@10", "граница PASS по nDCG@10"),
    # machine warnings (codes in report.json)
    "warn.mixed": ("{name}: {kind} numbers from {used}; the report combines {n} machines ({tags}), not comparable",
                   "{name}: числа ({kind}) получены так: {used}; в отчете смешаны {n} машины ({tags}), "
                   "они несравнимы"),
    "warn.elsewhere": ("the timings come from another machine than this one ({machine})",
                       "замеры скорости сделаны не на этой машине ({machine})"),
    "kind.embed": ("embedding", "эмбеддинги"),
    "kind.timing": ("timing", "скорость"),
    "role.embed": ("embed", "эмбеддинги"),
    "role.benchmark": ("benchmark", "замер"),
    "role.speedup": ("speedup", "ускорение"),
    "role.on": ("{role} on {tag}", "{role} на {tag}"),
    # verdict reasons (codes in compare and report JSON)
    "reason.not_finite": ("embeddings contain NaN or Inf", "эмбеддинги содержат NaN или Inf"),
    "reason.ndcg_unmeasurable": ("nDCG@10 change could not be measured", "изменение nDCG@10 не удалось измерить"),
    "reason.ndcg_below": ("nDCG@10 change interval [{lo:+.2%}, {hi:+.2%}] lies below {bound:+.0%}",
                          "интервал изменения nDCG@10 [{lo:+.2%}, {hi:+.2%}] лежит ниже {bound:+.0%}"),
    "reason.metric_nan": ("{metric} is not a number", "{metric}: не число"),
    "reason.metric_below": ("{metric} {value:.4f} < {bound}", "{metric} {value:.4f} < {bound}"),
    "reason.unrelated": ("candidate is not the reference in another precision: agreement metrics ignored, verdict "
                         "from task metrics only",
                         "кандидат - не эталон в другой точности: метрики согласия не учитываются, вердикт только "
                         "по метрикам задачи"),
    "reason.all_pass": ("every PASS threshold met", "все пороги PASS выполнены"),
    "reason.prompt_differ": ("query prompts differ between the models", "промпты запросов у моделей разные"),
    "reason.batches_differ": ("batches differ (tokenizer, max_length or batch size): agreement is not like for like",
                              "батчи различаются (токенизатор, max_length или размер батча): согласие сравнивает "
                              "несравнимое"),
    "reason.machines_differ": ("reference and candidate were embedded on different machines ({ref} vs {cand})",
                               "эталон и кандидат посчитаны на разных машинах ({ref} против {cand})"),
    "metric.cosine_mean": ("mean cosine to reference", "средний косинус к эталону"),
    "metric.cosine_p1": ("1st-percentile cosine", "1-й перцентиль косинуса"),
    "metric.spearman": ("similarity-matrix Spearman", "Спирмен матриц сходства"),
    "metric.overlap_at_10": ("top-10 neighbour overlap", "пересечение top-10 соседей"),
    # recommendations
    "rec.avx2_speed": ("INT8 support of the timing CPU ({machine}): {support}. INT8 matrix products run on plain "
                       "AVX2 there; on CPUs with AVX512-VNNI or AMX the INT8/FP32 speed ratio differs (usually "
                       "larger). Measure speed on the deployment CPU.",
                       "Поддержка INT8 у ЦП замеров ({machine}): {support}. Целочисленные произведения идут на "
                       "обычном AVX2; на ЦП с AVX512-VNNI или AMX соотношение скоростей INT8/FP32 другое (обычно "
                       "больше). Меряйте скорость на целевом ЦП."),
    "rec.noisy": ("{name}: timing is noisy: two back-to-back runs' medians differ by {diff:.1%} (> {tol:.0%}); "
                  "rerun on an idle machine.",
                  "{name}: замер шумный: медианы двух прогонов подряд различаются на {diff:.1%} (> {tol:.0%}); "
                  "повторите на свободной машине."),
    "rec.busy": ("{name}: the machine was busy while timing ({parts}: other processes used more than {tol:.0%} of "
                 "the CPU); its timings are unreliable, rerun them on an idle machine (dvc repro -f -s {stage}).",
                 "{name}: во время замера машина была занята ({parts}: другие процессы заняли больше {tol:.0%} "
                 "ЦП); замеры ненадежны, повторите на свободной машине (dvc repro -f -s {stage})."),
    "rec.batch_mates": ("{name}: a text's vector depends on its batch-mates (cosine alone vs batched min "
                        "{min:.4f}, mean {mean:.4f}); expected for dynamic INT8, which quantizes activations per "
                        "batch. Agreement numbers use identical batches for both models.",
                        "{name}: вектор текста зависит от соседей по батчу (косинус отдельно против в батче: мин. "
                        "{min:.4f}, среднее {mean:.4f}); ожидаемо для динамического INT8, который квантует "
                        "активации по батчу. Метрики согласия считаются на одинаковых батчах."),
    "rec.within_noise": ("{name}: speed difference is within noise; raise benchmark.speedup_blocks or run on "
                         "an idle machine.",
                         "{name}: разница в скорости в пределах шума; увеличьте benchmark.speedup_blocks или "
                         "запустите на свободной машине."),
    "rec.fail": ("{name}: do not replace the reference; try per-channel weights, excluding sensitive layers "
                 "(nodes_to_exclude) or static/QDQ quantization with calibration data.",
                 "{name}: не заменяйте эталон; попробуйте веса per-channel, исключение чувствительных слоев "
                 "(nodes_to_exclude) или статическое QDQ-квантование с калибровкой."),
    "rec.pass": ("{name}: can replace the reference on this corpus.", "{name}: может заменить эталон на этом корпусе."),
    "rec.pass_scope": ("{name}: can replace the reference on this corpus (holds on {path}).",
                       "{name}: может заменить эталон на этом корпусе (верно для: {path})."),
    "rec.unrelated": ("{name}: {reason}; only task metrics are meaningful.",
                      "{name}: {reason}; осмысленны только метрики задачи."),
    "rec.int8_unknown": ("{name}: the CPU its embeddings came from is not recorded; rerun embed to know the INT8 "
                         "path.",
                         "{name}: ЦП, на котором посчитаны эмбеддинги, не записан; перезапустите embed, чтобы "
                         "узнать путь INT8."),
    "rec.int8_avx2": ("{name}: accuracy measured on {path}, where onnxruntime adds u8 x s8 products in saturating "
                      "16-bit pairs. On CPUs with VNNI or AMX the same file sums exactly and usually agrees better "
                      "with the reference (the demo's per-channel INT8: cosine 0.978 without VNNI, 0.997 with).",
                      "{name}: точность измерена на {path}, где onnxruntime складывает произведения u8 x s8 "
                      "парами в 16-битных регистрах с насыщением. На ЦП с VNNI или AMX тот же файл суммирует "
                      "точно и обычно ближе к эталону (per-channel INT8 демо: косинус 0.978 без VNNI, 0.997 с "
                      "VNNI)."),
    "rec.int8_avx2_rr_on": ("reduce_range is on: it avoids that saturation here but costs accuracy on VNNI CPUs.",
                            "reduce_range включен: здесь он избегает насыщения, но на ЦП с VNNI стоит точности."),
    "rec.int8_avx2_rr_off": ("For AVX2 targets, try quantize.NAME.reduce_range: true (7-bit weights avoid the "
                             "saturation); on VNNI targets it only costs accuracy.",
                             "Для целевых ЦП с AVX2 попробуйте quantize.NAME.reduce_range: true (7-битные веса "
                             "избегают насыщения); на ЦП с VNNI это только теряет точность."),
    "rec.int8_vnni": ("{name}: accuracy measured on {path}, where INT8 products are summed exactly. On AVX2 CPUs "
                      "without VNNI they saturate in 16-bit pairs and accuracy drops (the demo's per-channel INT8: "
                      "cosine 0.997 -> 0.978): rerun this pipeline on such a CPU before shipping there; "
                      "reduce_range: true helps there.",
                      "{name}: точность измерена на {path}, где произведения INT8 суммируются точно. На ЦП с AVX2 "
                      "без VNNI они насыщаются в 16-битных парах и точность падает (per-channel INT8 демо: "
                      "косинус 0.997 -> 0.978): перед поставкой на такие ЦП прогоните пайплайн на одном из них; "
                      "там помогает reduce_range: true."),
    "rec.int8_vnni_rr_on": ("reduce_range is on here, where it only costs accuracy (per-tensor INT8 measured: "
                            "cosine 0.961 -> 0.878 on a VNNI CPU): turn it off for VNNI targets.",
                            "Здесь reduce_range включен, и он только теряет точность (per-tensor INT8: косинус "
                            "0.961 -> 0.878 на ЦП с VNNI): выключите его для ЦП с VNNI."),
    "rec.int8_vnni_rr_off": ("Here reduce_range would only cost accuracy.",
                             "Здесь reduce_range только потерял бы точность."),
    "rec.int8_other": ("{name}: accuracy measured on {path}; another INT8 instruction path may give other numbers.",
                       "{name}: точность измерена на {path}; другой набор инструкций INT8 может дать другие числа."),
    "rec.batch_mates_unexpected": (
        "{name}: a text's vector depends on its batch-mates (cosine alone vs batched min {min:.4f}, mean {mean:.4f}), "
        "which its activations ({activations}) do not explain: check pooling, the attention mask and the runtime.",
        "{name}: вектор текста зависит от соседей по батчу (косинус отдельно против в батче: мин. {min:.4f}, среднее "
        "{mean:.4f}), чего его активации ({activations}) не объясняют: проверьте пулинг, маску внимания и рантайм."),
    "ship.pass": ("Ship {name}: PASS, nDCG@10 {ndcg:+.2%}, {speedup:.2f}x the reference's speed, {size}.",
                  "Поставлять {name}: ПРОШЕЛ, nDCG@10 {ndcg:+.2%}, скорость {speedup:.2f}x от эталона, {size}."),
    "ship.pass_scope": ("Ship {name}: PASS, nDCG@10 {ndcg:+.2%}, {speedup:.2f}x the reference's speed, {size}; "
                        "this holds on {path}.",
                        "Поставлять {name}: ПРОШЕЛ, nDCG@10 {ndcg:+.2%}, скорость {speedup:.2f}x от эталона, {size}; "
                        "верно для: {path}."),
    "ship.slowed": ("That speed is the machine's fast state's; in the {n} of its {m} timed processes that were "
                    "slowed from outside: {slow:.2f}x.",
                    "Это скорость в быстром состоянии машины; в {n} из {m} его замеренных процессов, замедленных "
                    "извне: {slow:.2f}x."),
    "ship.none": ("No candidate passes. The closest is {name} ({status}, nDCG@10 {ndcg:+.2%}, {speedup:.2f}x); the "
                  "evidence points to {knob}.",
                  "Ни один кандидат не прошел. Ближе всех {name} ({status}, nDCG@10 {ndcg:+.2%}, {speedup:.2f}x); "
                  "данные указывают на {knob}."),
    "rec.precision_auto": (
        "{name}: the {stored} file ran in {used} under {runtime} {version}, its default on this CPU (precision auto; "
        "on another CPU it may pick another), so its verdict holds where {runtime} runs it in {used}; its vectors "
        "and speed are those of {used} arithmetic.",
        "{name}: файл {stored} исполнялся в {used} под {runtime} {version} - это его выбор по умолчанию на этом ЦП "
        "(precision auto; на другом ЦП выбор может быть иным), поэтому вердикт верен там, где {runtime} считает в "
        "{used}; векторы и скорость - от арифметики {used}."),
    "rec.precision_set": (
        "{name}: the {stored} file ran in {used} under {runtime} {version}, precision {requested}; its vectors and "
        "speed are those of {used} arithmetic.",
        "{name}: файл {stored} исполнялся в {used} под {runtime} {version}, precision {requested}; векторы и "
        "скорость - от арифметики {used}."),
    "ship.tied": ("Tied with it (PASS, no measurable nDCG@10 loss, speeds not measurably different): {others}; "
                  "{name} is picked as the smallest on disk (rule: smaller file, then name).",
                  "Наравне с ним (ПРОШЕЛ, без измеримой потери nDCG@10, скорости неразличимы): {others}; "
                  "{name} выбран как самый маленький на диске (правило: меньший файл, затем имя)."),
    "ship.sample": ("This is a quick look on a sample of {queries} of {of_queries} queries: confirm it on the "
                    "whole corpus (corpus_sample: 0) before shipping.",
                    "Это быстрый взгляд по выборке, {queries} из {of_queries} запросов: перед поставкой подтвердите "
                    "на всем корпусе (corpus_sample: 0)."),
    "rec.from_sample": ("(Verdict from a sample of {queries} of {of_queries} queries.)",
                        "(Вердикт по выборке, {queries} из {of_queries} запросов.)"),
    "ship.none_to_rank": ("No candidates to rank.", "Нет кандидатов для сравнения."),
    "knob.per_channel": ("per-channel weights (quantize.NAME.per_channel: true)",
                         "веса per-channel (quantize.NAME.per_channel: true)"),
    "knob.reduce_range": ("reduce_range: true for this AVX2 CPU without VNNI",
                          "reduce_range: true для этого ЦП с AVX2 без VNNI"),
    "knob.nodes_to_exclude": ("keeping the most damaged layers in float (quantize.NAME.nodes_to_exclude)",
                              "оставить самые поврежденные слои в float (quantize.NAME.nodes_to_exclude)"),
    # machines (machine.description, machine.load_cell)
    "machine.description": ("{parts}", "{parts}"),
    "machine.cores": ("{cpu}, {logical} logical / {physical} physical cores",
                      "{cpu}, ядер: {logical} логических / {physical} физических"),
    "machine.int8": ("{arch} {support}", "{arch} {support}"),
    "machine.int8_flags": ("{arch} {support} (+{flags})", "{arch} {support} (+{flags})"),
    "machine.timed_on": ("timed on {provider}: {cards}", "замеры на {provider}: {cards}"),
    "machine.card": ("{name} (driver {driver})", "{name} (драйвер {driver})"),
    "machine.no_gpu": ("no GPU found by nvidia-smi", "nvidia-smi не нашел GPU"),
    "machine.simulated": ("simulated: {keys} overridden", "симуляция: подменены {keys}"),
    "machine.unknown": ("unknown (result recorded without machine facts)",
                        "неизвестно (результат записан без сведений о машине)"),
    "support.avx2_only": ("AVX2 only (no VNNI)", "только AVX2 (без VNNI)"),
    "support.none": ("none detected", "не обнаружено"),
    "support.unrecorded": ("unrecorded", "не записана"),
    "cell.load_not_recorded": ("n/a (not recorded)", "н/д (не записано)"),
    "cell.load_short": ("n/a (timed under {seconds} s)", "н/д (замер короче {seconds} с)"),
    "cell.busy": ("busy", "занята"),
    # the relation of a candidate to the reference (comparison.py)
    "relation.related": ("same dimension and agreeing vectors or parameter count",
                         "та же размерность и согласные векторы или число параметров"),
    "relation.other_dim": ("different embedding dimension", "другая размерность эмбеддинга"),
    "relation.other_network": ("low agreement and a different parameter count: not the same network",
                               "низкое согласие и другое число параметров: это другая сеть"),
    # the few fixed English words stages record as values (i18n.data_value); names and paths stay
    "value.none": ("none", "нет"),
    "value.weight-only int8": ("weight-only int8", "int8 только в весах"),
    "value.model output": ("model output", "выход модели"),
    "value.onnxruntime default": ("onnxruntime default", "по умолчанию onnxruntime"),
    "value.openvino default": ("openvino default", "по умолчанию openvino"),
    "cell.recipe_block": ("block {n}", "блок {n}"),
    "cell.recipe_accuracy": ("acc {n}", "точность {n}"),
    "cell.recipe_excluded": ("-{n} nodes", "-{n} узлов"),
    # INT8 kernel families (machine.int8_family, machine.int8_path) and verdict scope
    "path.vnni": ("CPUs with VNNI (AVX512-VNNI, AVX-VNNI or AMX)", "ЦП с VNNI (AVX512-VNNI, AVX-VNNI или AMX)"),
    "path.avx2": ("AVX2 CPUs without VNNI", "ЦП с AVX2 без VNNI"),
    "path.arm": ("ARM CPUs with dot-product/i8mm", "ЦП ARM с dot-product/i8mm"),
    "path.other": ("CPUs with INT8 support '{support}'", "ЦП с поддержкой INT8 '{support}'"),
    "scope.holds_on": ("holds on {path}", "верно для: {path}"),
    # layer diagnosis (diagnosis.py; section_verdict and recommendations)
    "diag.skip_reference": ("the reference itself: nothing to diagnose", "это сам эталон: диагностировать нечего"),
    "diag.skip_pass": ("verdict PASS: nothing to diagnose", "вердикт PASS: диагностировать нечего"),
    "diag.no_match": ("no output of the reference's {count} weighted layers ({ops}) has a namesake float tensor in "
                      "the candidate graph: not a quantized copy of the reference, layers cannot be matched",
                      "ни один выход {count} слоев эталона с весами ({ops}) не имеет в графе кандидата "
                      "одноименного float-тензора: это не квантованная копия эталона, слои не сопоставить"),
    "diag.runtime": ("layers are compared under onnxruntime only, and this pair runs under {runtime}",
                     "слои сравниваются только под onnxruntime, а эта пара исполняется под {runtime}"),
    "diag.tokenizers_differ": ("the two tokenizers give different token ids: layers cannot be compared",
                               "токенизаторы дают разные id токенов: слои не сравнить"),
    "diag.not_done": ("{name}: layers not diagnosed: {reason}.", "{name}: слои не диагностированы: {reason}."),
    "diag.heading": ("{name}: where the error enters ({texts} corpus texts, {compared} of {weighted} weighted "
                     "layers matched by tensor name; relative error = ||candidate - reference|| / ||reference||, "
                     "in graph order): error first jumps at {node} ({op}), {rel:.4f} after at most {before:.4f} "
                     "before it. Largest jumps (more than {factor:g}x the largest error before):",
                     "{name}: где появляется ошибка ({texts} текстов корпуса, {compared} из {weighted} слоев с "
                     "весами сопоставлены по имени тензора; относительная ошибка = ||кандидат - эталон|| / "
                     "||эталон||, в порядке графа): ошибка впервые скачет на {node} ({op}), {rel:.4f} после "
                     "не более {before:.4f} до него. Самые большие скачки (больше чем в {factor:g} раза выше "
                     "наибольшей ошибки до):"),
    "diag.no_jump": ("{name}: no weighted layer's relative error rises more than {factor:g}x over the largest "
                     "before it ({compared} layers, {texts} corpus texts): the error builds up gradually.",
                     "{name}: ни у одного слоя с весами относительная ошибка не растет больше чем в {factor:g} "
                     "раза над наибольшей до него ({compared} слоев, {texts} текстов корпуса): ошибка "
                     "накапливается постепенно."),
    "col.layer": ("layer (reference node)", "слой (узел эталона)"),
    "col.op": ("op", "оп."),
    "col.rel_error": ("rel. error", "отн. ошибка"),
    "col.max_before": ("max before", "макс. до"),
    "col.sqnr": ("SQNR dB", "SQNR, дБ"),
    "rec.exclude": ("{name}: its error jumps most at {count} layer(s); to keep them in float, add to its recipe "
                    "quantize.{name}.nodes_to_exclude: {nodes}",
                    "{name}: ошибка сильнее всего скачет на {count} слое(ях); чтобы оставить их неквантованными, "
                    "добавьте в его рецепт quantize.{name}.nodes_to_exclude: {nodes}"),
}


def t(lang: str, key: str, **args) -> str:
    """The message `key` in `lang`, formatted with `args` (numbers stay numbers)."""
    if lang not in LANGUAGES:
        raise ValueError(f"language {lang!r}: use one of {', '.join(LANGUAGES)}")
    return MESSAGES[key][LANGUAGES.index(lang)].format(**args)


@dataclass(frozen=True)
class Message:
    """A catalog key and its arguments: what the pipeline decided, rendered later in any language.

    An argument that is words is itself a Message (a metric's name, an INT8 path, a machine's
    description), rendered in the same language; a list argument is a list of phrases, rendered
    and joined with ", "; anything else (a number, a model or file name) is formatted as it is."""

    key: str
    args: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The stored form, {"key", "args"} (outputs.write_json calls it)."""
        return {"key": self.key, "args": {k: _stored(v) for k, v in self.args.items()}}

    @classmethod
    def from_dict(cls, stored: Any, where: str = "") -> Message:
        """The stored form read back, checked (documents/record.py reads Message fields with it)."""
        if not (isinstance(stored, dict) and set(stored) == {"key", "args"} and stored["key"] in MESSAGES
                and isinstance(stored["args"], dict)):
            raise DocumentError(f"{where}: expected a message {{key, args}} with a key of the catalog")
        return cls(stored["key"], {k: _loaded(v, f"{where}.args.{k}") for k, v in stored["args"].items()})

    @staticmethod
    def schema_def() -> dict:
        return {"type": "object", "description": "A sentence as a catalog key (stages/lib/i18n.py) and its "
                "arguments; an argument that is words is a message too, a list of them is joined with ', '.",
                "properties": {"key": {"type": "string"}, "args": {"type": "object"}},
                "required": ["key", "args"], "additionalProperties": False}

    def text(self, lang: str = "en") -> str:
        return render(self, lang)


def _stored(value: Any) -> Any:
    if isinstance(value, Message):
        return value.to_dict()
    return [_stored(v) for v in value] if isinstance(value, list) else value


def _loaded(value: Any, where: str) -> Any:
    if isinstance(value, dict) and "key" in value:
        return Message.from_dict(value, where)
    return [_loaded(v, f"{where}[{i}]") for i, v in enumerate(value)] if isinstance(value, list) else value


def msg(key: str, **args) -> Message:
    """A message kept as a code, to be rendered in any language later."""
    return Message(key, args)


def render(message: Message, lang: str) -> str:
    """A message in `lang`: its arguments by their type (see Message), never by name."""
    return t(lang, message.key, **{k: _rendered(v, lang) for k, v in message.args.items()})


def _rendered(value: Any, lang: str) -> Any:
    if isinstance(value, Message):
        return render(value, lang)
    if isinstance(value, list):
        return ", ".join(str(_rendered(v, lang)) for v in value)
    return value


def data_value(lang: str, data: str) -> str:
    """A value from the data in `lang`: the few fixed English words the stages record as values
    (a quantization format "none", a pooling source "model output") have a `value.` entry in the
    catalog; names and paths have none and stay as they are."""
    key = f"value.{data}"
    return t(lang, key) if key in MESSAGES else data
