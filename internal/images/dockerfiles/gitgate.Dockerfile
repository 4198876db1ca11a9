# The claude-bottle git-gate image: git and ssh beside the claude-bottle
# binary, run as the non-root user "gate" (uid 65532).
FROM debian:bookworm-slim

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates git openssh-client \
 && rm -rf /var/lib/apt/lists/*

# Extra CA certificates for a TLS-intercepting proxy; the file is empty when
# there are none.
COPY extra-ca.crt /usr/local/share/ca-certificates/claude-bottle-extra.crt
RUN if [ ! -s /usr/local/share/ca-certificates/claude-bottle-extra.crt ]; then \
      rm -f /usr/local/share/ca-certificates/claude-bottle-extra.crt; \
    fi \
 && update-ca-certificates

RUN useradd --create-home --home-dir /home/gate --uid 65532 --user-group --shell /usr/sbin/nologin gate
ENV HOME=/home/gate
COPY claude-bottle /usr/local/bin/claude-bottle
USER gate
ENTRYPOINT ["/usr/local/bin/claude-bottle"]
