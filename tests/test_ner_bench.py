"""The NER benchmark's own parts: NEREL's brat files turned into sentence rows, and the scoring the
figures come from (bench/nerel_to_jsonl.py, bench/bench_ner.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _bench(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


TEXT = "Президент США Барак Обама выдвинул Джеймса Коми.\n\nДж.Коми ответил.\n"
ANN = ("T1\tPERSON 14 25\tБарак Обама\n"
       "T2\tPERSON 20 25\tОбама\n"                     # nested in T1: the outer span is kept
       "T3\tPERSON 30 42\tДжеймса Коми\n"              # offsets off by 4: found again nearby
       "T4\tPROFESSION 0 9\tПрезидент\n"
       "T5\tPERSON 50 57\tДж.Коми\n")


def test_nerel_rows_are_sentences_with_their_person_spans(tmp_path):
    conv = _bench("nerel_to_jsonl")
    (tmp_path / "doc1.txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / "doc1.ann").write_text(ANN, encoding="utf-8")
    rows, lost = conv.rows(tmp_path)
    assert lost == 0
    assert [r["text"] for r in rows] == ["Президент США Барак Обама выдвинул Джеймса Коми.", "Дж.Коми ответил."]
    assert [r["persons"] for r in rows] == [["Барак Обама", "Джеймса Коми"], ["Дж.Коми"]]
    assert all(r["text"][a:b] == p for r in rows for (a, b), p in zip(r["person_spans"], r["persons"]))


def test_score_counts_a_half_masked_name_as_a_miss_and_capitals_outside_as_over_masking():
    bench = _bench("bench_ner")
    row = {"text": "Вчера Барак Обама посетил Париж и Лион.", "person_spans": [[6, 17]]}
    whole = bench.score([row], [[(6, 17)]])
    half = bench.score([row], [[(6, 11), (26, 31)]])   # the first name only, and «Париж»
    assert (whole["recall"], whole["over_masking"]) == (1.0, 0.0)
    assert half["recall"] == 0.0 and half["misses"] == ["Барак Обама"]
    assert half["over_masking"] == 0.5 and half["overs"] == ["Париж"]
