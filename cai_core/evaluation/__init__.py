"""Evaluation: capability and safety suites, reports, and the alignment tax between two models.

suites (what is asked and how it is scored), sandbox (model-written code runs only there), run
(the evaluation spec and job), report_model (a report's shape and file), reports (the catalogue of
comparable reports and the comparison), tax, harmlessness (the AI judge's win rate), loop.

``alignment_tax(base_scores, aligned_scores)`` takes two dicts of benchmark name to score and
returns the tax per benchmark and the average.
"""

from .harmlessness import judge_harmlessness, shared_refusal_ids
from .report_model import check_report_path, read_report, write_report
from .reports import check_comparison_path, compare_reports
from .run import (EvaluationSpec, evaluate, evaluations_dir, list_evaluations, model_description, parse_evaluation_spec,
                  start_evaluation)
from .sandbox import SandboxResult, SandboxUnavailable, run_untrusted, sandbox_available
from .stats import bootstrap_interval
from .suites import (SUITES, EvaluationError, SuiteScore, arithmetic_problems, check_humaneval, final_number, humaneval_program,
                     is_refusal)
from .tax import alignment_tax, describe, tax_percent

__all__ = [
    "SUITES", "EvaluationError", "EvaluationSpec", "SandboxResult", "SandboxUnavailable", "SuiteScore", "alignment_tax", "arithmetic_problems",
    "bootstrap_interval", "check_comparison_path", "check_humaneval", "check_report_path", "compare_reports", "describe", "evaluate", "evaluations_dir", "final_number",
    "humaneval_program", "is_refusal", "judge_harmlessness", "list_evaluations", "model_description", "parse_evaluation_spec", "read_report", "run_untrusted",
    "sandbox_available", "shared_refusal_ids", "start_evaluation", "tax_percent", "write_report",
]
