"""The answer path shared by the bot and `crmsum ask`: question -> parse -> route by intent -> answer.

    answer_question("Что Ева делала в марте по Теххренмашу?") -> Answer(text, source, manager, ...)

Modules, one job each:
- `model`: the records (`Answer`, `Prepared`, `ComparePart`);
- `route`: parse a question, map names to pseudonyms, choose the period, dispatch by intent, record;
- `activity`: what a manager / company / the team did (precomputed summary, else live);
- `compare`: two or more managers or companies side by side;
- `periods`: which precomputed period covers a range, and how a period is worded;
- `context`: the per-process lake context (DuckDB connection, summaries snapshot, name lists);
- `record`: the background writer of `answers`, and `feedback` ratings;
- `display`: pseudonyms resolved for allowed readers, names in the case the sentence needs;
- `access`: the access gate and the rate limiter, and their pyTelegramBotAPI middlewares.

`Answer.text` holds pseudonyms only (that is what goes to the `answers` table); `Answer.display()`
resolves them for allowed readers. Names are imported lazily so that `crmsum ask` loads only the
modules its question needs.
"""

from __future__ import annotations

from crmsum import lazy

_EXPORTS = {
    "Answer": "model", "Prepared": "model", "ComparePart": "model",
    "answer_question": "route", "prepare": "route", "finish": "route", "warm": "route",
    "AnswerContext": "context", "get_context": "context", "reset_contexts": "context", "flush": "context",
    "today_in": "context",
    "covering_period": "periods", "period_text": "periods",
    "compare_metric": "compare", "compare_facts": "compare", "compare_verdict": "compare", "compare_line": "compare",
    "COMPARE_METRICS": "compare",
    "record_answer": "record", "record_feedback": "record", "user_pseudonym": "record",
    "resolve_in_case": "display",
    "AccessGate": "access", "RateLimiter": "access", "AccessMiddleware": "access", "RateLimitMiddleware": "access",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy.exports(__name__, _EXPORTS)
