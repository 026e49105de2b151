"""`mcp_search_tools`: rank operations for a free-text query, so that an agent with a small
context window can search, then call, instead of loading every tool.

A small BM25 over tokens of the tool name (weighted), parameter names (weighted) and the
description. A crude suffix stemmer and a short table of domain synonyms bridge the words
people use ("appointment", "failing") to the words operations use ("booking", "failed").
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from ..discovery import params_schema
from ..server import Operation

NAME_WEIGHT = 3
PARAM_WEIGHT = 2
K1 = 1.2
B = 0.75

_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "get",
        "how",
        "i",
        "in",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "the",
        "their",
        "them",
        "this",
        "to",
        "was",
        "we",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
        "show",
        "list",
        "please",
        "want",
        "need",
    ]
)
# Groups of words that mean the same thing here; every word maps to the group's first stem.
_SYNONYMS = [
    ("book", "appointment", "booking", "reservation", "slot", "meeting"),
    ("cancel", "cancellation", "annul"),
    ("fail", "failure", "error", "broken", "problem", "issue", "exception", "crash"),
    ("call", "phone", "dial", "ring"),
    ("refund", "chargeback", "reimburse", "money_back"),
    ("customer", "client", "caller", "patient"),
    ("payment", "charge", "pay", "billing", "bill"),
    ("subscription", "plan"),
    ("stat", "statistic", "metric", "count", "analytic", "report"),
    ("tenant", "company", "business"),
    ("queue", "job", "task", "backlog"),
    ("webhook", "event", "callback"),
    ("agent", "assistant", "bot"),
]
_VOWELS = frozenset("aeiou")


def _undouble(word: str) -> str:
    # cancelling -> cancell -> cancel, stopped -> stopp -> stop
    # (short words keep theirs: calling -> call, billing -> bill)
    if len(word) >= 5 and word[-1] == word[-2] and word[-1] not in _VOWELS | {"s"}:
        return word[:-1]
    return word


def stem(word: str) -> str:
    """A deliberately crude English stemmer: enough to make plural/-ing/-ed forms meet."""
    if len(word) <= 3:
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    for suffix in ("ations", "ation", "ings", "ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return _undouble(word[: -len(suffix)])
    if word.endswith("es") and word[:-2].endswith(("s", "x", "z", "ch", "sh")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


_CANONICAL: dict[str, str] = {}
for group in _SYNONYMS:
    for word in group:
        _CANONICAL[stem(word)] = stem(group[0])

_TOKEN = re.compile(r"[a-z0-9]+")


def tokens(text: str) -> list[str]:
    """Lower-case word stems, split on anything non-alphanumeric (so snake_case splits too)."""
    out = []
    for raw in _TOKEN.findall(text.lower()):
        if raw in _STOP:
            continue
        stemmed = stem(raw)
        out.append(_CANONICAL.get(stemmed, stemmed))
    return out


def _param_names(op: Operation) -> list[str]:
    names = list((params_schema(op).get("properties") or {}).keys())
    return names


def document(op: Operation) -> list[str]:
    name_tokens = tokens(f"{op.service} {op.name}")
    param_tokens = tokens(" ".join(_param_names(op)))
    return name_tokens * NAME_WEIGHT + param_tokens * PARAM_WEIGHT + tokens(op.description)


@dataclass(frozen=True)
class Hit:
    op: Operation
    score: float


def rank(query: str, operations: list[Operation], *, limit: int = 5) -> list[Hit]:
    """The best-matching operations, best first; operations that share no term are left out."""
    query_terms = list(dict.fromkeys(tokens(query)))
    if not query_terms or not operations:
        return []
    docs = [Counter(document(op)) for op in operations]
    lengths = [sum(doc.values()) for doc in docs]
    avg_len = sum(lengths) / len(lengths) or 1.0
    n = len(docs)
    hits = []
    for op, doc, length in zip(operations, docs, lengths, strict=True):
        score = 0.0
        matched = 0
        for term in query_terms:
            tf = doc.get(term, 0)
            if not tf:
                continue
            df = sum(1 for other in docs if term in other)
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            score += idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / avg_len))
            matched += 1
        if score > 0:
            # Coordination: a tool that matches every idea in the query beats one that matches
            # a single idea many times ("calls failing" is about calls, not any failure).
            score *= matched / len(query_terms)
            hits.append(Hit(op=op, score=score))
    hits.sort(key=lambda hit: (-hit.score, hit.op.tool_name))
    return hits[:limit]
