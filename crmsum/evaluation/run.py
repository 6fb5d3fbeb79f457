"""Run the evaluation: the real answer path (`crmsum.answer.answer_question`) on the evaluation set,
scored per question, written to `eval_results`, printed as rich tables (backends side by side).

Retrieved context of an answer (what the metrics judge it against):
1. the facts block of the scope and period the answer path chose (the precomputed row's facts,
   or the same `facts_query` the live path runs), ranked first;
2. the records the answer cites (`[note:…]`, `[task:…]`, `[event:…]`, `[msg:chat:id]`), in order,
   read back from the lake.
A context item is relevant when it belongs to the question's scope and period (facts of the right
manager/company/team and dates; a record of that manager/company inside the period) or is one of
the reference records.

Backends: the answer path serves precomputed summaries first, so a backend that is not the one the
lake's summaries were computed with is evaluated on a scratch copy of the lake without summaries
(every answer then goes the live path with that backend); the report says so.
"""

from __future__ import annotations

import datetime as dt
import inspect
import logging
import re
import shutil
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from crmsum.cites import MSG_ID_RE
from crmsum.errors import CrmsumError
from crmsum.evaluation.judge import LLMJudge
from crmsum.evaluation.metrics import METRICS, Context, Sample, Similarity, score_offline
from crmsum.evaluation.questions import Question, build_questions, real_names
from crmsum.ru import company_core

log = logging.getLogger(__name__)

TARGETS = {"faithfulness": 0.95, "context_recall": 0.9}
SKIP_COPY = {"summaries", "answers", "feedback", "eval_results", "deliveries", "llm_calls"}


class EvalError(CrmsumError, ValueError):
    """The evaluation cannot run (no truth, empty lake, unknown backend): one actionable line."""


@dataclass
class EvalReport:
    run_id: str
    judge: str
    backends: list[str]
    rows: pd.DataFrame  # one row per (question, backend): metrics + diagnostics
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    written: int = 0
    intent_rows: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per intent question

    @property
    def by_intent(self) -> pd.DataFrame:
        """Per intent: questions, intent and exact-value accuracy, the RAG metrics of its questions."""
        from crmsum.evaluation.intents import by_intent

        return by_intent(self.intent_rows, self.rows, self.backends[0] if self.backends else "offline", METRICS)

    @property
    def aggregates(self) -> pd.DataFrame:
        """Mean of each metric per backend (index: metric, columns: backends)."""
        if self.rows.empty:
            return pd.DataFrame(index=list(METRICS))
        cols = [m for m in METRICS] + ["id_context_recall"]
        g = self.rows.groupby("backend")[cols].mean(numeric_only=True).T
        return g[[b for b in self.backends if b in g.columns]].round(4)

    @property
    def by_kind(self) -> pd.DataFrame:
        if self.rows.empty:
            return pd.DataFrame()
        return self.rows.groupby(["backend", "kind"])[list(METRICS)].mean(numeric_only=True).round(3)

    @property
    def questions(self) -> int:
        """Distinct questions (a question answered by two backends counts once)."""
        return int(self.rows["question_id"].str.split("@").str[0].nunique()) if len(self.rows) else 0

    def metric(self, name: str, backend: str = "offline") -> float | None:
        agg = self.aggregates
        if name not in agg.index or backend not in agg.columns:
            return None
        v = agg.loc[name, backend]
        return None if pd.isna(v) else float(v)

    def targets(self, backend: str = "offline") -> dict[str, tuple[float | None, float, bool]]:
        """{metric: (value, target, met)} for the aims (faithfulness >= 0.95, context recall >= 0.9)."""
        out = {}
        for m, t in TARGETS.items():
            v = self.metric(m, backend)
            out[m] = (v, t, v is not None and v >= t)
        return out

    def as_dict(self) -> dict[str, Any]:
        bi = self.by_intent
        return {"run_id": self.run_id, "judge": self.judge, "backends": self.backends,
                "by_intent": {str(i): {c: (None if pd.isna(v) else float(v)) for c, v in r.items()}
                              for i, r in bi.iterrows()},
                "aggregates": {b: {m: (None if pd.isna(v) else float(v)) for m, v in self.aggregates[b].items()}
                               for b in self.aggregates.columns},
                "questions": self.questions,
                "notes": self.notes, "seconds": self.seconds, "written": self.written}

    def render(self, console=None) -> None:
        """Print the metric table (backends side by side), the per-kind table and the notes."""
        from rich.console import Console
        from rich.table import Table

        console = console or Console()
        agg = self.aggregates
        t = Table(title=f"crmsum eval {self.run_id} — judge: {self.judge}, {self.questions} questions")
        t.add_column("metric")
        for b in agg.columns:
            t.add_column(b, justify="right")
        t.add_column("target", justify="right")
        for m in agg.index:
            target = TARGETS.get(m)
            cells = []
            for b in agg.columns:
                v = agg.loc[m, b]
                s = "—" if pd.isna(v) else f"{v:.3f}"
                if target is not None and not pd.isna(v):
                    s = f"[green]{s}[/]" if v >= target else f"[red]{s}[/]"
                cells.append(s)
            t.add_row(m, *cells, f"≥ {target}" if target else "")
        console.print(t)
        bk = self.by_kind
        if len(bk):
            t2 = Table(title="by question kind")
            t2.add_column("backend")
            t2.add_column("kind")
            t2.add_column("n", justify="right")
            short = {"faithfulness": "faith", "answer_relevancy": "relev", "context_precision": "c.prec",
                     "context_recall": "c.rec", "semantic_similarity": "sim", "answer_correctness": "correct"}
            for m in METRICS:
                t2.add_column(short[m], justify="right")
            counts = self.rows.groupby(["backend", "kind"]).size()
            for (b, k), r in bk.iterrows():
                t2.add_row(b, k, str(counts.get((b, k), 0)), *["—" if pd.isna(r[m]) else f"{r[m]:.2f}" for m in METRICS])
            console.print(t2)
        from crmsum.evaluation.intents import render_by_intent

        render_by_intent(console, self.by_intent)
        for n in self.notes:
            console.print(f"• {n}", highlight=False)

    def __str__(self) -> str:
        return self.aggregates.to_string()


# -- contexts from the lake ------------------------------------------------------------------
def record_contexts(con, ids: Sequence[str]) -> dict[str, dict]:
    """Text and metadata of cited records: {id: {text, ts, lead_id, users, company_id, author}}."""
    out: dict[str, dict] = {}
    notes = [int(i.split(":")[1]) for i in ids if i.startswith("note:") and i.split(":")[1].isdigit()]
    tasks = [int(i.split(":")[1]) for i in ids if i.startswith("task:") and i.split(":")[1].isdigit()]
    events = [i.split(":", 1)[1] for i in ids if i.startswith("event:")]
    msgs = [tuple(int(x) for x in i.split(":")[1:3]) for i in ids if MSG_ID_RE.fullmatch(i)]
    for nid, text, ntype, ts, lead, by, resp, cid, lresp in _with_lead(
            con, "crm_notes", "note_id", "note_id, text, note_type, created_at, lead_id, created_by, responsible_user_id",
            notes):
        prefix = {"call_in": "Входящий звонок: ", "call_out": "Исходящий звонок: "}.get(ntype, "")
        out[f"note:{nid}"] = {"text": prefix + (text or ""), "ts": ts, "lead_id": lead,
                              "users": {by, resp, lresp}, "company_id": cid}
    for tid, text, res, ts, lead, resp, cid, lresp in _with_lead(
            con, "crm_tasks", "task_id", "task_id, text, result_text, updated_at, lead_id, responsible_user_id", tasks):
        out[f"task:{tid}"] = {"text": f"Задача «{text or ''}» выполнена: {res or ''}", "ts": ts, "lead_id": lead,
                              "users": {resp, lresp}, "company_id": cid}
    for eid, status, ts, lead, by, name, reason, cid, lresp in _with_lead(
            con, "crm_events", "event_id", "event_id, status_after, created_at, lead_id, created_by, l.name, l.loss_reason",
            events):
        out[f"event:{eid}"] = {"text": _event_text(status, name, reason), "ts": ts, "lead_id": lead,
                               "users": {by, lresp}, "company_id": cid}
    for chat, mid in msgs:
        row = con.execute("""SELECT text, date, author, author_user_id FROM chat_messages
                             WHERE chat_id = ? AND message_id = ?""", [chat, mid]).fetchone()
        if row:
            out[f"msg:{chat}:{mid}"] = {"text": row[0] or "", "ts": row[1], "lead_id": None,
                                        "users": {row[3]}, "author": row[2], "company_id": None}
    return out



def _with_lead(con, table: str, key: str, columns: str, ids: list) -> list[tuple]:
    """Rows of a record table by id, each with its lead's company and responsible manager appended."""
    if not ids:
        return []
    cols = ", ".join(c if "." in c else f"r.{c}" for c in (c.strip() for c in columns.split(",")))
    return con.execute(f"SELECT {cols}, l.company_id, l.responsible_user_id FROM {table} r "
                       f"LEFT JOIN crm_leads l USING (lead_id) WHERE r.{key} IN (SELECT unnest(?))", [ids]).fetchall()


def _event_text(status: int | None, name: str | None, reason: str | None) -> str:
    if status == 142:
        return f"Сделка «{name or ''}» выиграна."
    if status == 143:
        return f"Сделка «{name or ''}» проиграна" + (f", причина: {reason}" if reason else "") + "."
    return f"Событие по сделке «{name or ''}»."

LOSS_WORDS = re.compile(r"отказ|проигр|потер|конкурент|дорог|бюджет|не устро|пропал|лпр|сорвал", re.I)


def _relevant_record(meta: dict, q: Question, users_by_pseudonym: dict[str, int]) -> bool:
    """In the question's scope and period; for loss-reason questions also about a loss."""
    if q.kind == "loss_reasons":
        lead = meta.get("lead_id")
        about_loss = (lead is not None and not pd.isna(lead) and int(lead) in set(q.reference_leads)) or \
            bool(LOSS_WORDS.search(meta.get("text") or ""))
        if not about_loss:
            return False
    ts = meta.get("ts")
    if ts is None or pd.isna(ts):
        return False
    ts = pd.Timestamp(ts).to_pydatetime()
    if not (dt.datetime.combine(q.start, dt.time()) <= ts < dt.datetime.combine(q.end + dt.timedelta(days=1), dt.time())):
        return False
    if q.company_id is not None:
        if meta.get("company_id") is not None and not pd.isna(meta["company_id"]):
            return int(meta["company_id"]) == int(q.company_id)
        return company_core(q.company or "") in (meta.get("text") or "").lower().replace("ё", "е")
    if q.manager_ids:
        users = {int(u) for u in meta.get("users", set()) if u is not None and not pd.isna(u)}
        if meta.get("author") in users_by_pseudonym:
            users.add(users_by_pseudonym[meta["author"]])
        return bool(users & set(q.manager_ids))
    return True


def _answer_facts(con, lake, answer, company_id: int | None) -> dict | None:
    """The facts the answer path used: the precomputed row's, or the live facts of its scope."""
    import json

    from crmsum.facts import facts_query

    if answer.start is None or answer.end is None:
        return None
    if answer.source == "precomputed" and answer.period:
        scope, key = (("manager", answer.manager) if answer.manager else
                      ("company", str(company_id)) if company_id is not None else ("team", "team"))
        df = lake.read("summaries", "summary_id = ?", [f"{scope}:{key}:{answer.period}"])
        if len(df):
            return json.loads(df["facts"].iloc[0])
    try:
        return facts_query(con, answer.start, answer.end, manager=answer.manager, company=company_id)
    except Exception as exc:  # noqa: BLE001 - an unanswerable scope has no facts context
        log.warning("facts for the answer's scope failed: %s", exc)
        return None


def _facts_relevant(facts: dict | None, answer, q: Question, company_id: int | None) -> bool:
    if facts is None or answer.start != q.start or answer.end != q.end:
        return False
    if q.company_id is not None:
        return company_id == q.company_id and answer.manager is None
    if q.managers:
        return answer.manager in q.managers and company_id is None
    return answer.manager is None and company_id is None


def _compared_facts(con, answer, q: Question, companies: dict[str, int]) -> list[Context]:
    """A comparison answer retrieved the facts of every side it compares, not only the first."""
    from crmsum.facts import facts_query

    out = []
    for part in (getattr(answer, "compared", None) or [])[1:]:
        is_manager = part.startswith("PER-")
        try:
            facts = facts_query(con, answer.start, answer.end, manager=part if is_manager else None,
                                company=None if is_manager else companies.get(part))
        except Exception as exc:  # noqa: BLE001 - an unanswerable side has no facts context
            log.warning("facts of a compared side failed: %s", exc)
            continue
        relevant = part in q.managers if is_manager else companies.get(part) == q.company_id
        out.append(Context(f"facts:{part}", "", data=facts, relevant=relevant))
    return out


def contexts_for(con, lake, answer, q: Question, companies: dict[str, int],
                 users_by_pseudonym: dict[str, int]) -> list[Context]:
    """Ranked retrieved contexts of one answer: facts first, then the records its points cite."""
    if getattr(answer, "source", None) == "clarify":
        return []
    company_id = companies.get(answer.company) if answer.company else None
    ctx: list[Context] = []
    facts = _answer_facts(con, lake, answer, company_id)
    if facts is not None:
        ctx.append(Context("facts", "", data=facts, relevant=_facts_relevant(facts, answer, q, company_id)))
    ctx += _compared_facts(con, answer, q, companies)
    ids = list(dict.fromkeys(c for sec in answer.sections for p in sec.points for c in p.cites))
    metas = record_contexts(con, ids)
    for i in ids:
        m = metas.get(i)
        if m is None:
            ctx.append(Context(i, "", relevant=False))  # cited but not in the lake
            continue
        rel = i in q.reference_ids or _relevant_record(m, q, users_by_pseudonym)
        ctx.append(Context(i, m["text"], relevant=rel))
    return ctx


# -- privacy ---------------------------------------------------------------------------------
class Scrubber:
    """Last line of defence for stored rows: any planted real name becomes «[имя скрыто]»."""

    def __init__(self, names: Sequence[str]) -> None:
        parts = sorted({n for n in names if len(n) >= 4}, key=len, reverse=True)
        self.re = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(p) for p in parts) + r")(?!\w)") if parts else None
        self.fixes = 0

    def __call__(self, text: str | None) -> str | None:
        if not text or self.re is None:
            return text
        new, k = self.re.subn("[имя скрыто]", text)
        self.fixes += k
        return new


# -- the run ---------------------------------------------------------------------------------
def _find_truth(settings) -> Path:
    for p in (Path(settings.data_dir) / "sample" / "truth", Path(settings.data_dir) / "truth",
              Path(settings.data_dir) / "sample"):
        if (p / "story.json").exists():
            return p
    raise EvalError(f"no truth/story.json found under {settings.data_dir}; pass --truth DIR/truth "
                    "(the folder written by `crmsum generate --out DIR`)")


def _lake_backend(lake) -> str | None:
    try:
        con = lake.connect()
        row = con.execute("SELECT backend, count(*) FROM summaries GROUP BY 1 ORDER BY 2 DESC LIMIT 1").fetchone()
    except Exception:  # noqa: BLE001
        return None
    return row[0] if row else None


def _scratch_lake(lake, tmp: Path):
    """A copy of the lake without summaries (and logs), so every answer goes the live path."""
    from crmsum.lake import Lake

    if not lake.local:
        raise EvalError("evaluating a second backend needs a local lake (scratch copy without summaries)")
    src = Path(lake.root)
    for d in src.iterdir():
        if d.is_dir() and d.name not in SKIP_COPY:
            shutil.copytree(d, tmp / d.name)
    return Lake(tmp)


def _answer(question: str, settings, lake, today):
    from crmsum.answer import answer_question

    kwargs: dict[str, Any] = {"settings": settings, "lake": lake, "today": today}
    if "record" in inspect.signature(answer_question).parameters:
        kwargs["record"] = False  # evaluation answers are not user answers
    return answer_question(question, **kwargs)


def run_eval(settings=None, lake=None, truth_dir: str | Path | None = None, backends: Sequence[str] = ("offline",),
             judge: Any = None, limit: int | None = None, console=None, n: int = 40, write: bool = True,
             run_id: str | None = None) -> EvalReport:
    """Evaluate the answer path per backend and write `eval_results`; prints tables when `console` is given.

    judge: None / "offline" (offline metrics), "llm" (an `LLMJudge` from settings) or an `LLMJudge`.
    limit: evaluate only the first `limit` questions (quick runs).
    """
    from crmsum.config import get_settings
    from crmsum.lake import open_lake

    t0 = time.perf_counter()
    settings = settings or get_settings()
    lake = lake or open_lake(settings)
    truth = Path(truth_dir) if truth_dir else _find_truth(settings)
    backends = list(dict.fromkeys(backends or ("offline",)))
    bad = [b for b in backends if b not in ("offline", "llm")]
    if bad:
        raise EvalError(f"unknown backend {bad[0]!r}; use offline or llm")
    if "llm" in backends and not (settings.openai_api_key or settings.openai_base_url):
        raise EvalError("backend llm needs OPENAI_API_KEY (and OPENAI_BASE_URL for a local endpoint)")
    if isinstance(judge, str):
        if judge == "offline":
            judge = None
        elif judge == "llm":
            judge = LLMJudge(settings)
        else:
            raise EvalError(f"unknown judge {judge!r}; use offline or llm")
    judge_name = judge.name if judge is not None else "offline"
    questions = build_questions(lake, truth, n=n)
    if limit:
        questions = questions[:limit]
    if not questions:
        raise EvalError("the truth and the lake give no questions (no closed deals in the lake?)")
    run_id = run_id or dt.datetime.now().strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    sim = Similarity([q.reference for q in questions])
    scrub = Scrubber(real_names(truth))
    notes: list[str] = []
    con = lake.connect()
    companies = {name: int(cid) for cid, name in
                 con.execute("SELECT company_id, any_value(name) FROM crm_companies GROUP BY 1").fetchall()}
    users_by_pseudonym = {name: int(uid) for uid, name in con.execute("SELECT user_id, name FROM crm_users").fetchall()}
    company_names = list(companies)
    stored_backend = _lake_backend(lake)
    rows: list[dict] = []
    tmpdirs: list[tempfile.TemporaryDirectory] = []
    try:
        for backend in backends:
            sb = settings.model_copy(update={"llm": backend})
            blake = lake
            if stored_backend is not None and stored_backend != backend:
                tmp = tempfile.TemporaryDirectory(prefix=f"crmsum-eval-{backend}-")
                tmpdirs.append(tmp)
                blake = _scratch_lake(lake, Path(tmp.name))
                notes.append(f"{backend}: the lake's summaries are {stored_backend}, so {backend} was evaluated "
                             "on the live path (scratch copy of the lake without summaries)")
            sources: Counter = Counter()
            for q in questions:
                ta = time.perf_counter()
                try:
                    a = _answer(q.text, sb, blake, q.today)
                except Exception as exc:  # noqa: BLE001 - one failing question is a data point, not a crash
                    log.exception("answer failed for %s", q.id)
                    notes.append(f"{backend}/{q.id}: answer path raised {type(exc).__name__}: {exc}")
                    continue
                latency = (time.perf_counter() - ta) * 1000
                sources[a.source] += 1
                bcon = blake.connect() if blake is not lake else con
                contexts = contexts_for(bcon, blake, a, q, companies, users_by_pseudonym)
                sample = Sample(question=q.stored, answer=a.text, contexts=contexts, reference=q.reference,
                                reference_claims=q.reference_claims, reference_ids=q.reference_ids,
                                aspects=q.aspects, companies=company_names)
                scores = score_offline(sample, sim) if judge is None else judge.score(sample, sim)
                offline = scores if judge is None else score_offline(sample, sim)
                rows.append({
                    "run_id": run_id, "question_id": f"{q.id}@{backend}", "kind": q.kind,
                    "question": scrub(q.stored), "reference": scrub(q.reference), "answer": scrub(a.text),
                    "backend": backend, "judge": judge_name,
                    **{m: scores.get(m) for m in METRICS},
                    "created_at": dt.datetime.now().replace(microsecond=0),
                    # diagnostics (not stored)
                    "source": a.source, "answer_backend": a.backend, "latency_ms": round(latency, 1),
                    "id_context_recall": offline.get("_id_context_recall"), "fact_f1": offline.get("_fact_f1"),
                    "uncovered": ",".join(offline.get("_uncovered") or []),
                    "parsed_ok": (a.start == q.start and a.end == q.end
                                  and (a.manager in q.managers if q.managers else a.manager is None)
                                  and (a.company == q.company)),
                    "contexts": len(contexts), "relevant_contexts": sum(bool(c.relevant) for c in contexts),
                })
            notes.append(f"{backend}: answers " + ", ".join(f"{k} {v}" for k, v in sorted(sources.items())))
    finally:
        for tmp in tmpdirs:
            tmp.cleanup()
    df = pd.DataFrame(rows)
    from crmsum.evaluation.intents import run_intent_questions

    intent_df = run_intent_questions(settings.model_copy(update={"llm": backends[0]}), lake, truth, scrub, run_id,
                                     notes, _answer, METRICS, limit)
    if scrub.fixes:
        notes.append(f"privacy: {scrub.fixes} real name(s) found in answers/questions were masked before writing")
    report = EvalReport(run_id, judge_name, backends, df, notes, intent_rows=intent_df)
    if len(df):
        wrong = df[~df["parsed_ok"]]
        if len(wrong):
            notes.append(f"{len(wrong)} answer(s) covered another scope/period than asked: "
                         + ", ".join(wrong["question_id"].head(8)))
    if write and len(df):
        from crmsum.schema import table

        cols = table("eval_results").schema.names
        report.written = lake.write("eval_results", df[cols])
    if write and len(intent_df):
        from crmsum.schema import table

        cols = table("eval_results").schema.names
        report.written += lake.write("eval_results", intent_df[cols])
    if judge is not None:
        judge.flush(lake)
    report.seconds = round(time.perf_counter() - t0, 2)
    if console is not None:
        report.render(console)
    return report
