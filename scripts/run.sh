#!/usr/bin/env bash
# `make run`: start a whole PANORAMIX mixnet on this machine with `mixctl testnet up` (issue 4).
# Until mixctl has that command, say which programs are not built yet and exit 0.
set -euo pipefail

cd "$(dirname "$0")/.."
go=${GO:-go}

if help=$("$go" run ./mixctl testnet up --help 2>/dev/null) && grep -q 'testnet up' <<<"$help"; then
	exec "$go" run ./mixctl testnet up "$@"
fi

cat <<'EOF2'
make run: the local testnet is not there yet.

`make run` will start one directory authority, three layers of mix nodes and two providers on
loopback with `mixctl testnet up`. Issue 4 builds that command; it does not exist yet, so nothing
was started.

The programs today (a program whose --help says "not built yet" is only a placeholder):
EOF2

# A program is reported from its own --help, so this list stays true as the issues land.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for cmd in directory mixd mixctl mailproxy postfix-filter; do
	if [ "$("$go" list -e -f '{{.Name}}' "./$cmd" 2>/dev/null)" != main ]; then
		state="missing: no main package in $cmd/ yet"
	elif ! "$go" build -o "$tmp/$cmd" "./$cmd" 2>/dev/null; then
		state="does not build: run make build to see why"
	elif "$tmp/$cmd" --help 2>&1 | grep -q 'not built yet'; then
		state="placeholder: only --version and --help ($cmd --help names the issue that builds it)"
	else
		state="built: see $cmd --help"
	fi
	printf '  %-15s %s\n' "$cmd" "$state"
done

cat <<'EOF2'

Follow progress in the status table of README.md and with `git log --oneline`.
What works today: `make test`, `make build`, `make lint`, `make bench`, `make fuzz`.
EOF2
