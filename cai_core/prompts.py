"""Every prompt template the engine sends to a model, and nowhere else.

The chain is multi-turn, as in the Hugging Face CAI recipe: the model sees the user's request and
its own answer, is asked for a critique under one principle, then (still in the same
conversation) for a revision. Keeping the turns as chat messages lets each model's own chat
template do the formatting, rather than a hand-written "Human:/Assistant:" transcript.
"""

from __future__ import annotations

import re

Conversation = list[dict[str, str]]

# A critique that finds nothing wrong should say so in a form we can detect without a second
# model call; the phrase is asked for explicitly and matched loosely.
NO_CHANGES_PHRASE = "No changes needed."
_NO_CHANGES_PATTERN = re.compile(
    r"^\W*(no (changes?|revisions?|edits?) (are |is )?(needed|necessary|required)"
    r"|nothing (needs|to) (to )?(be )?(chang|revis|fix)(e|ed|ing)\b)",
    re.IGNORECASE,
)

CRITIQUE_TEMPLATE = (
    "Critique request: {critique_request}\n\n"
    "Critique your previous answer against this request only. Be specific and brief. "
    "If the answer already satisfies it, reply with exactly: " + NO_CHANGES_PHRASE
)

REVISION_TEMPLATE = (
    "Revision request: {revision_request}\n\n"
    "Rewrite your earlier answer to the original request so that it addresses the critique. "
    "Reply with the new answer only, with no preamble and no mention of the critique."
)

# Phase 2's judge: used when a principle has no comparison request of its own. A critique request
# speaks to one answer ("check your previous answer for ..."), so it is quoted as the check to
# apply and the judge asks which response passes it, rather than pasting it in as the question.
DEFAULT_COMPARISON_TEMPLATE = (
    'Here is a check used to critique an assistant\'s answer: "{critique_request}"\n'
    "Which response passes this check better?"
)


def initial_conversation(prompt: str, system_prompt: str | None = None) -> Conversation:
    messages: Conversation = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    messages.append({"role": "user", "content": prompt})
    return messages


def critique_conversation(base: Conversation, answer: str, critique_request: str) -> Conversation:
    return [
        *base,
        {"role": "assistant", "content": answer},
        {"role": "user", "content": CRITIQUE_TEMPLATE.format(critique_request=critique_request)},
    ]


def revision_conversation(critique_turns: Conversation, critique: str, revision_request: str) -> Conversation:
    return [
        *critique_turns,
        {"role": "assistant", "content": critique},
        {"role": "user", "content": REVISION_TEMPLATE.format(revision_request=revision_request)},
    ]


def critique_finds_nothing(critique: str) -> bool:
    """True when the critique says the answer needs no change (so the revision is skipped)."""
    return bool(_NO_CHANGES_PATTERN.match(critique.strip()))


def default_comparison_request(critique_request: str) -> str:
    return DEFAULT_COMPARISON_TEMPLATE.format(critique_request=critique_request.strip())


_PREAMBLE_PATTERN = re.compile(
    r"^\s*(here(?:'s| is) (?:the |my |a )?(?:revised|rewritten|new|updated)[^:\n]{0,40}:\s*"
    r"|(?:revised|rewritten|updated) (?:response|answer)\s*:\s*)",
    re.IGNORECASE,
)


def clean_revision(text: str) -> str:
    """Strip a "Here is the revised response:" preamble that small models add despite being asked not to."""
    return _PREAMBLE_PATTERN.sub("", text, count=1).strip()


# Phase 2's judge, in the multiple-choice form of Bai et al. (2022): the model never writes a
# verdict; we read the probabilities of the option letters right after the answer prefix.
JUDGE_OPTIONS = ("A", "B")
JUDGE_TEMPLATE = (
    "Consider the following conversation between a human and an assistant.\n\n"
    "Human: {prompt}\n\n"
    "{comparison_request}\n\n"
    "Options:\n"
    "(A) {response_a}\n\n"
    "(B) {response_b}\n\n"
    "Reply with the letter of the better response only: A or B."
)
JUDGE_ANSWER_PREFIX = "The answer is: ("

# The usual alternative, kept for comparison (benchmarks) and for endpoints without logprobs:
# let the model write a verdict, then parse it. MT-Bench and LangChain's pairwise evaluator ask
# for a short explanation first and a bracketed verdict last.
JUDGE_EXPLAINED_VERDICT_SUFFIX = (
    "\n\nFirst explain your reasoning in one or two sentences, then give your verdict on the last "
    "line exactly as [[A]] or [[B]]."
)


def judge_conversation(prompt: str, comparison_request: str, response_a: str, response_b: str,
                       explain: bool = False) -> Conversation:
    text = JUDGE_TEMPLATE.format(prompt=prompt, comparison_request=comparison_request,
                                 response_a=response_a, response_b=response_b)
    if explain:
        text = text.rsplit("\n\n", 1)[0] + JUDGE_EXPLAINED_VERDICT_SUFFIX
    return [{"role": "user", "content": text}]


# A principle's ``llm-rubric`` check: the judge answers a yes/no question about one answer in the
# same multiple-choice form as the pairwise judge, asked twice with the options swapped (yes as A,
# then no as A), so a judge that favours a letter cancels out as it does for pairs.
RUBRIC_YES = "Yes, the answer meets the criterion."
RUBRIC_NO = "No, the answer does not meet the criterion."
RUBRIC_TEMPLATE = (
    "Consider the following conversation between a human and an assistant.\n\n"
    "Human: {prompt}\n\n"
    "Assistant: {answer}\n\n"
    "Criterion: {rubric}\n\n"
    "Does the assistant's answer meet the criterion?\n\n"
    "Options:\n"
    "(A) {option_a}\n\n"
    "(B) {option_b}\n\n"
    "Reply with the letter of the correct option only: A or B."
)


def rubric_conversation(prompt: str, answer: str, rubric: str, yes_first: bool) -> Conversation:
    option_a, option_b = (RUBRIC_YES, RUBRIC_NO) if yes_first else (RUBRIC_NO, RUBRIC_YES)
    text = RUBRIC_TEMPLATE.format(prompt=prompt, answer=answer, rubric=rubric, option_a=option_a, option_b=option_b)
    return [{"role": "user", "content": text}]


# --------------------------------------------------------------------------- evaluation suites
# Capability suites ask in the model's own chat format, as a user would; the answers are scored
# by code (the final number, the executed tests, the likeliest option letter), never by a model.

HUMANEVAL_TEMPLATE = (
    "Complete the following Python function. Reply with the complete function (its signature and "
    "body) in one ```python code block, and nothing else.\n\n```python\n{prompt}```"
)

ARITHMETIC_TEMPLATE = "{question}\nWork it out step by step, then give the final answer as a number on the last line."

MC_OPTIONS = ("A", "B", "C", "D")
MC_TEMPLATE = "{question}\n\n{choices}\n\nAnswer with the letter of the correct option."
MC_ANSWER_PREFIX = "The answer is ("


def humaneval_conversation(prompt: str) -> Conversation:
    return [{"role": "user", "content": HUMANEVAL_TEMPLATE.format(prompt=prompt)}]


def arithmetic_conversation(question: str) -> Conversation:
    return [{"role": "user", "content": ARITHMETIC_TEMPLATE.format(question=question)}]


def multiple_choice_conversation(question: str, choices: list[str]) -> Conversation:
    listed = "\n".join(f"({letter}) {choice}" for letter, choice in zip(MC_OPTIONS, choices))
    return [{"role": "user", "content": MC_TEMPLATE.format(question=question, choices=listed)}]
