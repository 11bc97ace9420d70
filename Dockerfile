# infusion-fhir service image: runtime dependencies only, non-root, uvicorn entrypoint.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLBACKEND=Agg \
    MPLCONFIGDIR=/var/cache/matplotlib

WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY service ./service
COPY schemas ./schemas
# The audit log's default directory (docs/security.md), the service user's own, mode 0700.
# matplotlib (the monitoring chart) builds its font cache here once, in a directory the service user owns: at
# run time it needs a writable config directory and would otherwise rebuild the cache in a temporary one.
RUN pip install -c constraints.txt . \
    && useradd --system --uid 10001 --no-create-home infusion \
    && mkdir -p "$MPLCONFIGDIR" && python -c "import matplotlib.font_manager" \
    && chown -R infusion "$MPLCONFIGDIR" \
    && mkdir -p /app/var/audit && chown infusion /app/var/audit && chmod 700 /app/var/audit

USER infusion
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"

ENTRYPOINT ["uvicorn", "service.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000", "--no-access-log"]
