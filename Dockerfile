# mailgate production image: standard ports inside (25 MX, 143/993 IMAP, 587/465 submission,
# 8080 the HTTP API), data (database, generated certificate) on the /data volume, running as an
# unprivileged user.
FROM python:3.11-slim

RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin mailgate \
    && mkdir -p /data /etc/mailgate \
    && chown mailgate:mailgate /data

WORKDIR /src
COPY pyproject.toml README.md ./
COPY mailgate ./mailgate
RUN pip install --no-cache-dir . && rm -rf /src

COPY config/mailgate.toml /etc/mailgate/mailgate.toml

# Standard ports and the /data volume; set MAILGATE_SERVER_HOSTNAME to the name clients use.
# Docker lets containers bind ports below 1024 without root (ip_unprivileged_port_start=0).
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

USER mailgate
WORKDIR /data
VOLUME ["/data"]
EXPOSE 25 143 993 587 465 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["mailgate"]
CMD ["serve"]
