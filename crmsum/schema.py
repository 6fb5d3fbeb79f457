"""Lake tables: Arrow schemas and primary keys. The README's table reference mirrors this file.

Timestamps are naive local time of the account (`CRMSUM_TIMEZONE`, default Europe/Moscow),
so that days, ISO weeks and months bucket the way the sales team lives them.
Person names are pseudonyms (see `crmsum.privacy`); company names stay readable.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

# Arrow types by their aliases: the Arrow schema is built on first use, so a reader that only
# needs a table's columns (`crmsum ask` looking up one summary) never loads pyarrow
TS = "timestamp[us]"
STR = "string"
I64 = "int64"
BOOL = "bool"
F64 = "double"
F32 = "float"
DATE = "date32[day]"


def list_of(item: str) -> str:
    return f"list<{item}>"


def arrow_type(alias: str) -> pa.DataType:
    import pyarrow as pa

    if alias.startswith("list<"):
        return pa.list_(arrow_type(alias[5:-1]))
    return pa.type_for_alias(alias)


@dataclass(frozen=True)
class Table:
    name: str
    key: tuple[str, ...]
    fields: tuple[tuple[str, str, str], ...]  # (column, Arrow type alias, meaning)
    doc: str
    unhashed: tuple[str, ...] = ()  # columns left out of "did this row change" (provenance, not content)
    version: str | None = None  # a row never replaces one whose `version` is newer (e.g. an edit time)

    @property
    def columns(self) -> list[str]:
        return [n for n, _t, _d in self.fields]

    @cached_property
    def schema(self) -> pa.Schema:
        import pyarrow as pa

        return pa.schema([pa.field(n, arrow_type(t), metadata={"doc": d}) for n, t, d in self.fields])


def _t(name: str, key: tuple[str, ...], doc: str, *fields: tuple[str, str, str],
       unhashed: tuple[str, ...] = (), version: str | None = None) -> Table:
    return Table(name, key, tuple(fields), doc, unhashed, version)


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
           ("contact_ids", list_of(I64), "all linked contacts"),
           ("tags", list_of(STR), "tag names"),
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
           ("phones", list_of(STR), "phone pseudonyms"),
           ("emails", list_of(STR), "e-mail pseudonyms"),
           ("created_at", TS, "created"),
           ("updated_at", TS, "last updated")),
        _t("crm_companies", ("company_id",), "Client companies (names stay readable).",
           ("company_id", I64, "company id"),
           ("name", STR, "company name"),
           ("responsible_user_id", I64, "responsible manager"),
           ("industry", STR, "industry custom field"),
           ("city", STR, "city custom field"),
           ("phones", list_of(STR), "phone pseudonyms"),
           ("emails", list_of(STR), "e-mail pseudonyms"),
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
           ("start", DATE, "first day"),
           ("end", DATE, "last day"),
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
           ("start", DATE, "period start"),
           ("end", DATE, "period end"),
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
        _t("deal_features", ("lead_id",), "One row per lead: what happened before its outcome (crmsum.insights).",
           ("lead_id", I64, "lead id"),
           ("manager", STR, "pseudonym of the responsible manager"),
           ("company_id", I64, "linked company id"),
           ("pipeline_id", I64, "pipeline id"),
           ("outcome", STR, "won, lost or open"),
           ("amount", I64, "deal amount, rubles"),
           ("created_at", TS, "lead created"),
           ("closed_at", TS, "closed (won or lost), else null"),
           ("as_of", TS, "features describe the deal at this moment: one hour before closed_at (phrases: a day before), or the lake's newest record for open deals"),
           ("cycle_days", F64, "days from creation to close"),
           ("first_response_minutes", I64, "lead creation to the first outgoing touch by the team (call, note, message, completed task)"),
           ("calls", I64, "calls before as_of"),
           ("call_minutes", F64, "minutes on the phone before as_of"),
           ("notes", I64, "text notes by the team before as_of"),
           ("meetings_held", I64, "days with a held meeting (completed meeting task, or a note / chat message reporting one; cancelled, planned or negated ones excluded)"),
           ("proposal_sent", BOOL, "a commercial proposal (КП) was sent"),
           ("discount_offered", BOOL, "a discount was given or agreed (not requested, refused or a competitor's)"),
           ("discount_pct", F64, "the largest discount percentage stated"),
           ("tasks_overdue", I64, "tasks past their deadline before as_of (not done, or done late)"),
           ("next_tasks", I64, "open tasks with a deadline after as_of"),
           ("stage_changes", I64, "moves between open stages before as_of"),
           ("stage_id", I64, "stage at as_of"),
           ("stage_days", F64, "days in that stage at as_of"),
           ("days_since_activity", F64, "days from the last activity to as_of"),
           ("handovers", I64, "changes of the responsible manager before as_of"),
           ("chat_mentions", I64, "team chat messages naming the deal's company while it was alive"),
           ("win_probability", F64, "the model's estimate of winning (for open deals the one that matters)"),
           ("text_hash", STR, "hash of the text inputs: the text features are re-read only when it changes"),
           ("terms", list_of(STR), "lemmatized uni- and bigrams of the deal's texts before as_of (phrase statistics)")),
        _t("drivers", ("scope", "period", "feature"), "What wins deals: win rate with and without each feature (crmsum.insights).",
           ("scope", STR, "team or manager:<pseudonym>"),
           ("period", STR, "all, or the period the closed deals fall in"),
           ("feature", STR, "deal_features column"),
           ("label", STR, "plain Russian name"),
           ("kind", STR, "binary or numeric (split at threshold)"),
           ("threshold", F64, "numeric features: the split point (median of closed deals)"),
           ("closed", I64, "closed deals analysed"),
           ("won", I64, "won among them"),
           ("n_with", I64, "closed deals with the feature"),
           ("n_without", I64, "closed deals without it"),
           ("won_with", I64, "won deals with the feature"),
           ("won_without", I64, "won deals without it"),
           ("win_rate_with", F64, "win rate with the feature"),
           ("win_rate_without", F64, "win rate without it"),
           ("ci_low", F64, "95% interval of the difference (Newcombe), low"),
           ("ci_high", F64, "95% interval of the difference (Newcombe), high"),
           ("adjusted_odds_ratio", F64, "odds ratio from the (Firth-penalized) logistic regression controlling for manager, pipeline, deal size"),
           ("or_low", F64, "its 95% profile-likelihood interval, low"),
           ("or_high", F64, "its 95% interval, high"),
           ("p_value", F64, "penalized likelihood-ratio p of the adjusted coefficient"),
           ("q_value", F64, "Benjamini-Hochberg q over the scope's drivers"),
           ("significant", BOOL, "interval excludes zero, q <= 0.05 and the adjusted effect points the same way"),
           ("examples", list_of(I64), "example lead ids with the feature"),
           ("computed_at", TS, "as of: the lake's newest record when computed")),
        _t("record_embeddings", ("record_id",), "Vectors of the records for semantic search (anonymized text only).",
           ("record_id", STR, "note:<id>, task:<id>, msg:<chat>:<msg> (citation ids) or lead:<id> (deal title)"),
           ("kind", STR, "note, call, task, msg or deal"),
           ("lead_id", I64, "lead of the record (null for chat)"),
           ("company_id", I64, "the lead's company, or the first company a chat message mentions"),
           ("manager", STR, "pseudonym: note author, task assignee, chat author, deal owner"),
           ("created_at", TS, "when the record was written (tasks: completion time once done)"),
           ("text", STR, "the text embedded (anonymized, at most 2000 characters)"),
           ("text_hash", STR, "md5 of text: a changed text is embedded again"),
           ("backend", STR, "offline (navec SIF) or openai (OpenAI-compatible endpoint)"),
           ("model", STR, "navec-sif-<fitted version> or the endpoint's model name"),
           ("dim", I64, "vector length"),
           ("vector", list_of(F32), "unit vector (cosine = dot product); null for deleted records"),
           ("embedded_at", TS, "when the vector was computed"),
           ("is_deleted", BOOL, "the record is gone from the lake (tombstone)")),
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
