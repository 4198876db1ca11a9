#!/bin/sh
# claude-bottle harvest: runs after the agent stopped, in a container of its
# own (no network, no capabilities, read-only root, the agent's user) over
# the agent's /workspace volume. It writes to standard output a git bundle
# of one ref, refs/claude-bottle/harvest: the agent's HEAD plus, when the
# working tree differs from it, one more commit holding every uncommitted
# change (untracked files too, ignored files not). The agent's index and
# refs are left as they were. Exit 3: /workspace is not the top of a git
# working tree; exit 5: nothing new since BASE (the commit at launch).
#
# Whatever the agent put in its repository's config (hooks, fsmonitor,
# filters) can only act here, inside this sandbox: the host receives
# nothing but the bundle, which it fetches with its own git.
set -eu
cd "${WORKSPACE:-/workspace}"
ws=$(pwd -P)
export HOME=/tmp GIT_CONFIG_NOSYSTEM=1 GIT_TERMINAL_PROMPT=0 GIT_OPTIONAL_LOCKS=0
g() { git -c core.fsmonitor=false -c core.hooksPath=/dev/null -c safe.directory='*' "$@"; }
top=$(g rev-parse --show-toplevel 2>/dev/null || true)
if [ "$top" != "$ws" ]; then
	echo "harvest: $ws is not the top of a git working tree" >&2
	exit 3
fi
head=$(g rev-parse --verify -q 'HEAD^{commit}' || true)
export GIT_INDEX_FILE=/tmp/harvest-index
if [ -n "$head" ]; then g read-tree "$head"; else g read-tree --empty; fi
g add -A -- .
tree=$(g write-tree)
unset GIT_INDEX_FILE
tip=$head
empty=$(g hash-object -t tree /dev/null)
if { [ -z "$head" ] && [ "$tree" != "$empty" ]; } || { [ -n "$head" ] && [ "$tree" != "$(g rev-parse "$head^{tree}")" ]; }; then
	if [ -n "$head" ]; then set -- -p "$head"; else set --; fi
	tip=$(echo "claude-bottle: uncommitted changes when the bottle ended" |
		GIT_AUTHOR_NAME=claude-bottle GIT_AUTHOR_EMAIL=claude-bottle@localhost \
		GIT_COMMITTER_NAME=claude-bottle GIT_COMMITTER_EMAIL=claude-bottle@localhost \
		g commit-tree "$tree" "$@")
	echo "harvest: uncommitted changes are the last commit" >&2
fi
base=${BASE:-}
if [ -z "$tip" ] || [ "$tip" = "$base" ]; then
	echo "harvest: nothing new" >&2
	exit 5
fi
if [ -n "$base" ] && g cat-file -e "$base^{commit}" 2>/dev/null; then
	if g merge-base --is-ancestor "$tip" "$base"; then
		echo "harvest: nothing new" >&2
		exit 5
	fi
	set -- "^$base"
else
	set --
fi
g update-ref refs/claude-bottle/harvest "$tip"
g bundle create --quiet - refs/claude-bottle/harvest "$@"
