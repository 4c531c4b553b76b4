# mailgate production image: standard ports inside (25 MX, 143/993 IMAP, 587/465 submission,
# 8080 the HTTP API), data (database, generated certificate) on the /data volume, served by the
# unprivileged mailgate user (uid and gid 10001).
#
# The container starts as root only to make a root-owned bind mount of /data (or a TLS key
# mounted for root only) usable by that user, then drops root for good, keeping just the right
# to bind ports below 1024, so `--network host` works too (docker/entrypoint.sh). Started with
# `--user 10001:10001`, it never is root.
FROM python:3.11-slim

RUN groupadd --system --gid 10001 mailgate \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --shell /usr/sbin/nologin \
        mailgate \
    && mkdir -p /data /etc/mailgate /usr/local/libexec \
    && chown mailgate:mailgate /data

WORKDIR /src
# The runtime dependencies (pyproject.toml's, not the test extra's that constraints.txt also
# pins) at the versions the tests ran against, in a layer of their own: a change to mailgate's
# code or README rebuilds in seconds instead of installing them all again.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > requirements.txt \
    && pip install --no-cache-dir -c constraints.txt -r requirements.txt
COPY README.md ./
COPY mailgate ./mailgate
# Then mailgate, held to the same versions. pip's `mailgate` script moves aside:
# /usr/local/bin/mailgate runs it through the entrypoint, so `docker exec <container> mailgate
# ...` drops root too and leaves no root-owned file in /data.
RUN pip install --no-cache-dir -c constraints.txt . \
    && mv /usr/local/bin/mailgate /usr/local/libexec/mailgate \
    && rm -rf /src
COPY docker/entrypoint.sh /usr/local/bin/docker-entrypoint
COPY docker/mailgate /usr/local/bin/mailgate
COPY docker/healthcheck.py /usr/local/libexec/mailgate-healthcheck

COPY config/mailgate.toml /etc/mailgate/mailgate.toml

# Standard ports and the /data volume; set MAILGATE_SERVER_HOSTNAME to the name clients use.
ENV MAILGATE_CONFIG=/etc/mailgate/mailgate.toml \
    MAILGATE_SERVER_BIND=0.0.0.0 \
    MAILGATE_SERVER_DATA_DIR=/data \
    MAILGATE_IMAP_PORT=143 \
    MAILGATE_IMAP_TLS_PORT=993 \
    MAILGATE_SMTP_SUBMISSION_PORT=587 \
    MAILGATE_SMTP_TLS_PORT=465 \
    MAILGATE_SMTP_MX_PORT=25 \
    MAILGATE_API_PORT=8080 \
    PYTHONUNBUFFERED=1

# Healthy while the API answers /healthz with 200, that is while the database answers; asked
# where serve listens ([server] bind, [api] port and tls, from the same settings), so a node
# bound to one address (`--network host`) is checked there (docker/healthcheck.py).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD ["python", "-I", "/usr/local/libexec/mailgate-healthcheck"]

WORKDIR /data
VOLUME ["/data"]
EXPOSE 25 143 993 587 465 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["mailgate"]
CMD ["serve"]
