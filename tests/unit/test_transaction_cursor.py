"""The transactions page cursor: a positive bigint; anything else is a clear 400, never a database error."""

from __future__ import annotations

import pytest

from services.billing.ledger import BIGINT_MAX, seq_cursor
from services.errors import ServiceError


def test_a_seq_within_bigint_is_the_cursor() -> None:
    assert seq_cursor("42") == 42
    assert seq_cursor(str(BIGINT_MAX)) == BIGINT_MAX


@pytest.mark.parametrize("cursor", ["999999999999999999999999999999", "0", "-1", "²", "1.5", "abc"])
def test_other_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(ServiceError) as refused:
        seq_cursor(cursor)
    assert refused.value.status == 400
