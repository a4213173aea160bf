"""Ranking: figurativeness (the learned model, per use) times recurrence, one score per key/metaphor.

- **Figurativeness** of a key or metaphor is the mean of the model's per-use scores over its
  *distinct sentences* (``indexer.metaphors.figurative``: each construction judged in its
  sentence, 0..1). A phrase used once figuratively among many literal uses stays literal.
  There is no built-in word list: the only overrides are the user's own, in ``tropegraph.toml``
  (``stoplist``: these phrases are literal; ``technical``: a phrase made of two of these words is
  literal; ``track``: always list it).
- **Recurrence** counts distinct sentences (a sentence repeated verbatim — the assistant quoting
  the user, a pasted paragraph, a template — is one), conversations and months, each capped at
  the number of distinct sentences (one pasted sentence in ten conversations is not ten
  recurrences), plus a bonus when the author carries the image into another language.
- **Score** = figurativeness × recurrence. The list shows only metaphors whose figurativeness
  reaches the model's threshold (``--all`` shows the rest), so the score orders images among
  themselves and literal phrases sink below them in ``--all``.

The previous ranking (a hand-written technical vocabulary and stoplist tuned on the dev pack)
listed no image among the top 20 of real chat exports; it is gone.
"""
from __future__ import annotations

import math

SINGLE_CONVERSATION_FACTOR = 0.5
LANG_BONUS = 0.5


def recurrence(sentences: int, conversations: int, months: int, languages: int = 1) -> float:
    """Log-scaled recurrence over distinct sentences, conversations and months (both capped at
    the number of distinct sentences)."""
    conversations = min(conversations, sentences)
    months = min(months, sentences)
    r = math.log2(1 + sentences) + 0.5 * math.log2(max(conversations, 1)) + 0.25 * math.log2(max(months, 1))
    if languages > 1:
        r += LANG_BONUS
    if conversations < 2:
        r *= SINGLE_CONVERSATION_FACTOR
    return round(r, 4)


def score(figurative: float, recurrence_: float) -> float:
    return round(figurative * recurrence_, 4)
