"""A rough token count for text, for usage estimates where no model reports one.

tiktoken would be exact for OpenAI models, but its encodings are downloaded on first use, and this
product never downloads anything at run time; an estimate is enough for the offline provider and for
budgeting a prompt before it is sent.
"""

from __future__ import annotations

import re

# Words, numbers and single punctuation marks; BPE tokenizers average about 1.3 tokens per such piece.
_PIECE = re.compile(r"\w+|[^\w\s]")
_TOKENS_PER_PIECE = 1.3


def estimate_tokens(text: str) -> int:
    if not text:
        return 0
    return max(1, round(len(_PIECE.findall(text)) * _TOKENS_PER_PIECE))
