# The claude-bottle sidecar image: the static claude-bottle binary alone,
# started as "claude-bottle sidecar KIND ...".
FROM scratch
COPY claude-bottle /claude-bottle
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
USER 65532:65532
ENTRYPOINT ["/claude-bottle"]
