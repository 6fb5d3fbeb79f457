"""Turn NEREL's brat files into the sentence rows ``bench_ner.py`` scores (a second tuning corpus).

    python bench/nerel_to_jsonl.py NEREL_DIR OUT.jsonl

NEREL (nerel-ds/NEREL on GitHub, Loukachevitch et al., RANLP 2021) is Russian Wikinews with nested
entities; only its PERSON spans are read. It is a tuning corpus beside the factRuEval devset: the
devset is saturated (both of its halves at recall 0.99), and the factRuEval test split stays the one
reported. The corpus is not vendored (its annotations carry no licence); fetch it and point this
script at a folder of ``NAME.txt`` / ``NAME.ann`` pairs. Rows: ``text`` (one sentence, razdel's
split), ``persons``, ``person_spans`` (offsets in the sentence), ``doc``, ``sentence_idx``. A span
whose offsets do not match its surface is looked up in the 80 characters around it, else dropped.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from razdel import sentenize

ANN_RE = re.compile(r"^T\d+\tPERSON (\d+) (\d+)\t(.*)$")
NEAR = 80
PARA_RE = re.compile(r"[^\n]*\S[^\n]*")


def person_spans(text: str, ann: str) -> tuple[list[tuple[int, int]], int]:
    """PERSON spans of one document (outermost only), and how many could not be placed."""
    spans, lost = set(), 0
    for line in ann.splitlines():
        m = ANN_RE.match(line)
        if not m:
            continue
        a, b, surface = int(m[1]), int(m[2]), m[3]
        if text[a:b] != surface:
            at = text.find(surface, max(a - NEAR, 0), b + NEAR)
            if at < 0:
                lost += 1
                continue
            a, b = at, at + len(surface)
        spans.add((a, b))
    outer = [s for s in spans if not any(o != s and o[0] <= s[0] and s[1] <= o[1] for o in spans)]
    return sorted(outer), lost


def rows(folder: Path) -> tuple[list[dict], int]:
    out, lost_total = [], 0
    for txt in sorted(folder.rglob("*.txt")):
        ann = txt.with_suffix(".ann")
        if not ann.exists():
            continue
        text = txt.read_text(encoding="utf-8")
        spans, lost = person_spans(text, ann.read_text(encoding="utf-8"))
        lost_total += lost
        doc = f"{txt.parent.name}/{txt.stem}"
        for para in PARA_RE.finditer(text):
            for sub in sentenize(para.group(0)):
                a0 = para.start() + sub.start
                inside = [(a - a0, b - a0) for a, b in spans if a0 <= a and b <= a0 + len(sub.text)]
                out.append({"text": sub.text, "persons": [sub.text[a:b] for a, b in inside],
                            "person_spans": inside, "doc": doc, "sentence_idx": len(out)})
    return out, lost_total


def main() -> None:
    folder, dest = Path(sys.argv[1]), Path(sys.argv[2])
    out, lost = rows(folder)
    with dest.open("w", encoding="utf-8") as f:
        for r in out:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    mentions = sum(len(r["person_spans"]) for r in out)
    print(f"{len(out)} sentences, {mentions} person mentions, {lost} spans not placed -> {dest}")


if __name__ == "__main__":
    main()
