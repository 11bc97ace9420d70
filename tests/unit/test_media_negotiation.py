"""`Accept` negotiation: the type a client prefers among those offered, the first offered by default."""

from __future__ import annotations

import pytest

from service.media import JSON, negotiate

OFFERED = (JSON, "image/png", "application/pdf")


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, JSON),
        ("", JSON),
        ("*/*", JSON),
        ("application/json", JSON),
        ("image/png", "image/png"),
        ("application/pdf", "application/pdf"),
        ("IMAGE/PNG", "image/png"),
        ("image/*", "image/png"),
        ("application/json;q=0.5, image/png", "image/png"),
        ("image/png;q=0.2, application/json;q=0.8", JSON),
        ("image/png;q=0, */*", JSON),  # refused explicitly: the more specific range wins over */*
        ("text/html", JSON),  # nothing offered is accepted: the default
        ("application/pdf, image/png", "image/png"),  # a tie: the earlier offered
        ("image/png;q=abc", JSON),  # an unreadable q counts as 0
    ],
)
def test_the_preferred_offered_type_is_chosen(accept: str | None, chosen: str) -> None:
    assert negotiate(accept, OFFERED) == chosen
