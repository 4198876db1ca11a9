# The claude-bottle agent image: Claude Code on Debian, run as the non-root
# user "agent" (uid 1000) in /workspace.
FROM debian:bookworm-slim

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates git curl nodejs npm openssh-client procps \
 && rm -rf /var/lib/apt/lists/*

# Extra CA certificates for a TLS-intercepting proxy; the file is empty when
# there are none.
COPY extra-ca.crt /usr/local/share/ca-certificates/claude-bottle-extra.crt
RUN if [ ! -s /usr/local/share/ca-certificates/claude-bottle-extra.crt ]; then \
      rm -f /usr/local/share/ca-certificates/claude-bottle-extra.crt; \
    fi \
 && update-ca-certificates
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt

RUN npm install -g @anthropic-ai/claude-code@2.1.332 \
 && npm cache clean --force

# A default identity for the agent's commits; a repository's own
# user.name/user.email (copied in with --cwd) still wins.
RUN git config --system user.name "Claude (claude-bottle)" \
 && git config --system user.email "claude-bottle@localhost"

RUN useradd --create-home --home-dir /home/agent --uid 1000 --user-group --shell /bin/bash agent \
 && mkdir -p /workspace \
 && chown agent:agent /workspace
ENV HOME=/home/agent
USER agent
WORKDIR /workspace
