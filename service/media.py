"""The media types the service speaks, named once."""

FHIR_JSON = "application/fhir+json"
JSON = "application/json"
NDJSON = "application/x-ndjson"


def negotiate(accept: str | None, offered: tuple[str, ...]) -> str:
    """The type of `offered` an `Accept` header prefers: highest q first, then `offered`'s order (its first is
    the default: no header, `*/*`, or nothing offered accepted). Wildcards `type/*` count at their q."""
    best, best_q = offered[0], -1.0
    for media in offered:
        q = _quality(accept, media)
        if q > best_q:  # (strictly: on a tie the earlier offered wins)
            best, best_q = media, q
    return best if best_q > 0 else offered[0]


def _quality(accept: str | None, media: str) -> float:
    """q of `media` in an Accept header (the most specific range that matches it); 0 when it is not accepted."""
    if not accept:
        return 1.0
    found: tuple[int, float] | None = None
    kind = media.split("/")[0]
    for item in accept.split(","):
        parts = [p.strip() for p in item.split(";")]
        name = parts[0].lower()
        specificity = 2 if name == media else 1 if name == f"{kind}/*" else 0 if name == "*/*" else -1
        if specificity < 0:
            continue
        q = 1.0
        for param in parts[1:]:
            if param.lower().startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        if found is None or specificity > found[0]:
            found = (specificity, q)
    return 0.0 if found is None else found[1]
