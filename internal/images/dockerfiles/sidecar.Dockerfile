# The claude-bottle sidecar image: the static claude-bottle binary alone,
# started as "claude-bottle sidecar KIND ...".
FROM scratch
COPY claude-bottle /claude-bottle
USER 65532:65532
ENTRYPOINT ["/claude-bottle"]
