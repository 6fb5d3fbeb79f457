"""Lake tables: Arrow schemas and primary keys. The README's table reference mirrors this file.

Timestamps are naive local time of the account (`CRMSUM_TIMEZONE`, default Europe/Moscow),
so that days, ISO weeks and months bucket the way the sales team lives them.
Person names are pseudonyms (see `crmsum.privacy`); company names stay readable.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

TS = pa.timestamp("us")
STR = pa.string()
I64 = pa.int64()
BOOL = pa.bool_()
F64 = pa.float64()


@dataclass(frozen=True)
class Table:
    name: str
    key: tuple[str, ...]
    schema: pa.Schema
    doc: str
    unhashed: tuple[str, ...] = ()  # columns left out of "did this row change" (provenance, not content)
    version: str | None = None  # a row never replaces one whose `version` is newer (e.g. an edit time)


def _t(name: str, key: tuple[str, ...], doc: str, *fields: tuple[str, pa.DataType, str],
       unhashed: tuple[str, ...] = (), version: str | None = None) -> Table:
    schema = pa.schema([pa.field(n, t, metadata={"doc": d}) for n, t, d in fields])
    return Table(name, key, schema, doc, unhashed, version)


TABLES: dict[str, Table] = {
    t.name: t
    for t in [
        _t("crm_users", ("user_id",), "amoCRM users (the sales managers).",
           ("user_id", I64, "amoCRM user id"),
           ("name", STR, "pseudonym of the manager"),
           ("lang", STR, "interface language"),
           ("is_admin", BOOL, "has admin rights"),
           ("is_active", BOOL, "account active")),
        _t("crm_pipelines", ("pipeline_id",), "Sales pipelines.",
           ("pipeline_id", I64, "pipeline id"),
           ("name", STR, "pipeline name"),
           ("sort", I64, "display order"),
           ("is_main", BOOL, "the account's main pipeline")),
        _t("crm_statuses", ("pipeline_id", "status_id"), "Pipeline stages; 142 won and 143 lost exist in every pipeline.",
           ("pipeline_id", I64, "pipeline id"),
           ("status_id", I64, "status id"),
           ("name", STR, "stage name"),
           ("sort", I64, "order within the pipeline"),
           ("type", I64, "amoCRM status type (0 regular, 1 unsorted)"),
           ("is_won", BOOL, "status 142"),
           ("is_lost", BOOL, "status 143")),
        _t("crm_leads", ("lead_id",), "Deal cards.",
           ("lead_id", I64, "lead id"),
           ("name", STR, "deal title (anonymized)"),
           ("price", I64, "deal amount, rubles"),
           ("responsible_user_id", I64, "current responsible manager"),
           ("pipeline_id", I64, "pipeline id"),
           ("status_id", I64, "current stage"),
           ("loss_reason_id", I64, "loss reason id (lost deals)"),
           ("loss_reason", STR, "loss reason text"),
           ("company_id", I64, "linked company id"),
           ("main_contact_id", I64, "main contact id"),
           ("contact_ids", pa.list_(I64), "all linked contacts"),
           ("tags", pa.list_(STR), "tag names"),
           ("custom_fields", STR, "custom field values as JSON (anonymized)"),
           ("created_by", I64, "user id who created it"),
           ("created_at", TS, "created"),
           ("updated_at", TS, "last updated"),
           ("closed_at", TS, "closed (won or lost)"),
           ("closest_task_at", TS, "nearest open task"),
           ("is_deleted", BOOL, "deleted in amoCRM")),
        _t("crm_contacts", ("contact_id",), "Client contact persons (names pseudonymized).",
           ("contact_id", I64, "contact id"),
           ("name", STR, "pseudonym"),
           ("responsible_user_id", I64, "responsible manager"),
           ("company_id", I64, "first linked company"),
           ("position", STR, "job title (anonymized)"),
           ("phones", pa.list_(STR), "phone pseudonyms"),
           ("emails", pa.list_(STR), "e-mail pseudonyms"),
           ("created_at", TS, "created"),
           ("updated_at", TS, "last updated")),
        _t("crm_companies", ("company_id",), "Client companies (names stay readable).",
           ("company_id", I64, "company id"),
           ("name", STR, "company name"),
           ("responsible_user_id", I64, "responsible manager"),
           ("industry", STR, "industry custom field"),
           ("city", STR, "city custom field"),
           ("phones", pa.list_(STR), "phone pseudonyms"),
           ("emails", pa.list_(STR), "e-mail pseudonyms"),
           ("created_at", TS, "created"),
           ("updated_at", TS, "last updated")),
        _t("crm_events", ("event_id",), "Lead events (the card's history).",
           ("event_id", STR, "event id (ULID-like string)"),
           ("type", STR, "event type, e.g. lead_status_changed"),
           ("lead_id", I64, "entity_id of the lead"),
           ("entity_type", STR, "lead"),
           ("created_by", I64, "user id, 0 for the system"),
           ("created_at", TS, "when"),
           ("status_before", I64, "lead_status_changed: old status"),
           ("status_after", I64, "lead_status_changed: new status"),
           ("pipeline_after", I64, "lead_status_changed: new pipeline"),
           ("responsible_before", I64, "entity_responsible_changed: old user"),
           ("responsible_after", I64, "entity_responsible_changed: new user"),
           ("sale_after", I64, "sale_field_changed: new amount"),
           ("note_id", I64, "note events: the note"),
           ("value_before", STR, "raw value_before as JSON (anonymized)"),
           ("value_after", STR, "raw value_after as JSON (anonymized)")),
        _t("crm_notes", ("note_id",), "Lead notes: text notes, calls, service messages.",
           ("note_id", I64, "note id"),
           ("lead_id", I64, "lead id"),
           ("note_type", STR, "common, call_in, call_out, service_message, sms_in, ..."),
           ("text", STR, "note text or call summary (anonymized)"),
           ("call_duration", I64, "calls: seconds"),
           ("call_phone", STR, "calls: phone pseudonym"),
           ("created_by", I64, "author user id"),
           ("responsible_user_id", I64, "responsible user id"),
           ("created_at", TS, "created"),
           ("updated_at", TS, "last updated")),
        _t("crm_tasks", ("task_id",), "Tasks on leads.",
           ("task_id", I64, "task id"),
           ("lead_id", I64, "entity_id"),
           ("entity_type", STR, "leads"),
           ("task_type_id", I64, "1 call, 2 meeting, other custom"),
           ("text", STR, "task text (anonymized)"),
           ("result_text", STR, "completion result (anonymized)"),
           ("is_completed", BOOL, "done"),
           ("complete_till", TS, "deadline"),
           ("responsible_user_id", I64, "assignee"),
           ("created_by", I64, "creator"),
           ("created_at", TS, "created"),
           ("updated_at", TS, "last updated (completion time for done tasks)")),
        _t("chat_messages", ("chat_id", "message_id"), "Telegram team chat messages.",
           ("chat_id", I64, "Telegram chat id"),
           ("chat_name", STR, "chat title"),
           ("message_id", I64, "message id within the chat"),
           ("date", TS, "sent"),
           ("edited", TS, "last edit, if edited"),
           ("kind", STR, "message or service"),
           ("author", STR, "author pseudonym"),
           ("author_user_id", I64, "amoCRM user id of the author, when known"),
           ("text", STR, "plain text, flattened and anonymized"),
           ("reply_to", I64, "id of the message replied to"),
           ("forwarded_from", STR, "pseudonym or channel of the original"),
           ("action", STR, "service action, e.g. invite_members"),
           ("media_type", STR, "photo, video_file, voice_message, sticker, file, ..."),
           ("reactions", I64, "total reactions"),
           ("source_file", STR, "export file digest it came from"),
           # an overlapping newer export adds only its new messages; an older edit never wins
           unhashed=("source_file",), version="edited"),
        _t("summaries", ("summary_id",), "Precomputed summaries per manager / company / team and period.",
           ("summary_id", STR, "scope:key:period"),
           ("scope", STR, "manager, company or team"),
           ("key", STR, "manager pseudonym, company id or 'team'"),
           ("label", STR, "manager pseudonym or company name"),
           ("period_kind", STR, "week or month"),
           ("period", STR, "YYYY-Www or YYYY-MM"),
           ("start", pa.date32(), "first day"),
           ("end", pa.date32(), "last day"),
           ("text", STR, "summary text (pseudonyms only)"),
           ("sections", STR, "the summary as records, JSON: [{key, title, points: [{kind, text, figures, cites, lead_id}]}]"),
           ("facts", STR, "facts as JSON"),
           ("citations", STR, "cited records as JSON list"),
           ("backend", STR, "offline or llm"),
           ("model", STR, "model name for llm"),
           ("input_hash", STR, "content hash of the inputs"),
           ("grounding", F64, "share of claims supported by facts and records"),
           ("note", STR, "e.g. why the LLM was not used"),
           ("created_at", TS, "computed")),
        _t("deliveries", ("chat_id", "week", "kind"), "Digests sent (exactly once per chat and week).",
           ("chat_id", I64, "target chat"),
           ("week", STR, "YYYY-Www"),
           ("kind", STR, "team or manager:<pseudonym>"),
           ("status", STR, "sent, failed or outbox"),
           ("message_ids", STR, "sent Telegram message ids (JSON)"),
           ("error", STR, "last error"),
           ("attempts", I64, "send attempts"),
           ("updated_at", TS, "last attempt")),
        _t("feedback", ("feedback_id",), "User ratings of bot answers.",
           ("feedback_id", STR, "chat:message:user"),
           ("answer_id", STR, "answers.answer_id"),
           ("chat_id", I64, "chat"),
           ("user", STR, "rater pseudonym"),
           ("rating", I64, "1-5"),
           ("created_at", TS, "when")),
        _t("answers", ("answer_id",), "Answers the bot and `crmsum ask` gave.",
           ("answer_id", STR, "id"),
           ("chat_id", I64, "chat (0 for the CLI)"),
           ("question", STR, "question (anonymized)"),
           ("manager", STR, "manager pseudonym or null"),
           ("company", STR, "company name or null"),
           ("start", pa.date32(), "period start"),
           ("end", pa.date32(), "period end"),
           ("source", STR, "precomputed or live"),
           ("intent", STR, "what was asked: activity, compare, ranking, what_wins, why, deals, stalled, metric, similar, clarify"),
           ("backend", STR, "offline or llm"),
           ("text", STR, "answer (pseudonyms only)"),
           ("latency_ms", F64, "time to answer"),
           ("created_at", TS, "when")),
        _t("llm_calls", ("call_id",), "Every LLM call (or cache hit).",
           ("call_id", STR, "id"),
           ("purpose", STR, "map, reduce, answer, judge, extract"),
           ("model", STR, "model"),
           ("input_hash", STR, "prompt content hash"),
           ("tokens_in", I64, "prompt tokens"),
           ("tokens_out", I64, "completion tokens"),
           ("latency_ms", F64, "latency"),
           ("cache_hit", BOOL, "served from cache"),
           ("ok", BOOL, "succeeded"),
           ("error", STR, "error class if failed"),
           ("created_at", TS, "when")),
        _t("eval_results", ("run_id", "question_id"), "Evaluation of the answer path against the sample truth.",
           ("run_id", STR, "evaluation run"),
           ("question_id", STR, "question id"),
           ("kind", STR, "manager, company, period, comparison, loss_reasons, or intent:<intent> (exact-value questions)"),
           ("question", STR, "question (pseudonyms only)"),
           ("reference", STR, "reference answer"),
           ("answer", STR, "answer given"),
           ("backend", STR, "offline or llm"),
           ("judge", STR, "offline or the LLM judge model"),
           ("faithfulness", F64, "share of answer claims supported by the retrieved context"),
           ("answer_relevancy", F64, "how well the answer addresses the question"),
           ("context_precision", F64, "share of retrieved context that is relevant"),
           ("context_recall", F64, "share of reference context retrieved"),
           ("semantic_similarity", F64, "similarity of answer and reference"),
           ("answer_correctness", F64, "agreement with reference facts"),
           ("created_at", TS, "when")),
    ]
}


def markdown() -> str:
    """The README's table reference, generated so the two never drift apart."""
    out = []
    for t in TABLES.values():
        out += [f"#### `{t.name}` — {t.doc}", "Primary key: " + ", ".join(f"`{k}`" for k in t.key), "",
                "| column | type | meaning |", "|---|---|---|"]
        out += [f"| `{f.name}` | {f.type} | {f.metadata[b'doc'].decode()} |" for f in t.schema]
        out.append("")
    return "\n".join(out)


def table(name: str) -> Table:
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown lake table {name!r}; known: {', '.join(TABLES)}") from None


if __name__ == "__main__":
    print(markdown())
