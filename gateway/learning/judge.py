"""The LLM judge: MT-Bench's pairwise prompt, its ``[[A]]``/``[[B]]``/``[[C]]`` verdict, both orders.

The prompt is MT-Bench's pairwise-comparison judge prompt (Zheng et al., 2023; the one RouteLLM
used to label preference data with GPT-4). Position bias is cancelled by asking twice with the
answers swapped: the served model's score is the mean of its two per-order scores (win 1, tie
0.5, loss 0), so two orders that disagree count as a tie, as MT-Bench does. A reply without a
parsable verdict is dropped, never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SYSTEM = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by two AI "
    "assistants to the user question displayed below. You should choose the assistant that follows the "
    "user's instructions and answers the user's question better. Your evaluation should consider factors "
    "such as the helpfulness, relevance, accuracy, depth, creativity, and level of detail of their "
    "responses. Begin your evaluation by comparing the two responses and provide a short explanation. "
    "Avoid any position biases and ensure that the order in which the responses were presented does not "
    "influence your decision. Do not allow the length of the responses to influence your evaluation. Do "
    "not favor certain names of the assistants. Be as objective as possible. After providing your "
    'explanation, output your final verdict by strictly following this format: "[[A]]" if assistant A '
    'is better, "[[B]]" if assistant B is better, and "[[C]]" for a tie.'
)

USER = (
    "[User Question]\n{question}\n\n"
    "[The Start of Assistant A's Answer]\n{answer_a}\n[The End of Assistant A's Answer]\n\n"
    "[The Start of Assistant B's Answer]\n{answer_b}\n[The End of Assistant B's Answer]"
)

_VERDICT = re.compile(r"\[\[\s*(A|B|C|tie)\s*\]\]", re.IGNORECASE)
_LOOSE = re.compile(r"(?:final verdict|verdict)\W{0,20}\[?\s*(A|B|C|tie)\b", re.IGNORECASE)


def messages(question: str, answer_a: str, answer_b: str) -> list[dict[str, str]]:
    """The judge's chat messages for one order (A first, B second)."""
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": USER.format(question=question, answer_a=answer_a, answer_b=answer_b)},
    ]


def parse_verdict(text: str | None) -> str | None:
    """``"A"``, ``"B"``, ``"C"`` (tie) from a judge reply: the last ``[[X]]``, else a ``verdict: X``; None if absent."""
    if not text:
        return None
    hits = _VERDICT.findall(text) or _LOOSE.findall(text)
    if not hits:
        return None
    v = hits[-1].upper()
    return "C" if v == "TIE" else v


@dataclass
class Preference:
    """The judged preference of ``first`` over ``second`` from the two orders."""

    first: str
    second: str
    verdict_first_as_a: str  # verdict when ``first`` was assistant A
    verdict_first_as_b: str  # verdict when ``first`` was assistant B

    @property
    def per_order(self) -> tuple[float, float]:
        """``first``'s score in each order (win 1, tie 0.5, loss 0)."""
        a = {"A": 1.0, "B": 0.0, "C": 0.5}[self.verdict_first_as_a]
        b = {"A": 0.0, "B": 1.0, "C": 0.5}[self.verdict_first_as_b]
        return a, b

    @property
    def score(self) -> float:
        """P(``first`` is better): the mean over the two orders."""
        a, b = self.per_order
        return (a + b) / 2.0

    @property
    def agreed(self) -> bool:
        """Both orders name the same winner (or both a tie)."""
        a, b = self.per_order
        return a == b

    @property
    def winner(self) -> str:
        """``first``, ``second`` or ``tie``."""
        s = self.score
        return "tie" if s == 0.5 else (self.first if s > 0.5 else self.second)
