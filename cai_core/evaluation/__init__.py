"""Evaluation: capability and safety suites, reports, and the alignment tax between two models.

``alignment_tax(base_scores, aligned_scores)`` takes two dicts of benchmark name to score and
returns the tax per benchmark and the average.
"""

from .run import (EvaluationSpec, compare_reports, evaluate, evaluations_dir, judge_harmlessness, list_evaluations,
                  model_description,
                  parse_evaluation_spec, read_report, start_evaluation, write_report)
from .sandbox import SandboxResult, SandboxUnavailable, run_untrusted, sandbox_available
from .stats import bootstrap_interval
from .suites import (SUITES, EvaluationError, SuiteScore, arithmetic_problems, check_humaneval, final_number, humaneval_program,
                     is_refusal)
from .tax import alignment_tax, describe, tax_percent

__all__ = [
    "SUITES", "EvaluationError", "EvaluationSpec", "SandboxResult", "SandboxUnavailable", "SuiteScore", "alignment_tax", "arithmetic_problems",
    "bootstrap_interval", "check_humaneval", "compare_reports", "describe", "evaluate", "evaluations_dir", "final_number",
    "humaneval_program", "is_refusal", "judge_harmlessness", "list_evaluations", "model_description", "parse_evaluation_spec", "read_report", "run_untrusted",
    "sandbox_available", "start_evaluation", "tax_percent", "write_report",
]
