"""Knowing whether the summaries are good: an evaluation set from the sample truth, RAGAS-style
metrics (offline or by an LLM judge), and the run that scores the real answer path.

    from crmsum.evaluation import build_questions, run_eval
    report = run_eval(truth_dir="sample/truth", backends=("offline",))
"""

from crmsum import lazy
from crmsum.evaluation.judge import LLMJudge
from crmsum.evaluation.metrics import (METRICS, Context, RefClaim, Sample, Similarity,
                                       answer_correctness, answer_relevancy, context_precision,
                                       context_recall, faithfulness, id_context_recall, score_offline,
                                       semantic_similarity)
from crmsum.evaluation.questions import Question, build_questions

__all__ = ["METRICS", "Context", "LLMJudge", "RefClaim", "Sample", "Similarity", "Question", "build_questions",
           "answer_correctness", "answer_relevancy", "context_precision", "context_recall", "faithfulness",
           "id_context_recall", "score_offline", "semantic_similarity", "run_eval", "EvalReport"]


__getattr__ = lazy.exports(__name__, {"run_eval": "run", "EvalReport": "run"})
