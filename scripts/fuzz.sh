#!/usr/bin/env bash
# Runs every Go fuzz target (func FuzzX(*testing.F)) in the given packages, default ./..., for
# FUZZTIME each (default 10s), one after the other. Fails if any target fails or any package with
# fuzz targets does not compile; a repository with no fuzz targets passes and says so.
# `make fuzz` calls this; a crash found is written by go test under the package's testdata/fuzz/.
set -euo pipefail

cd "$(dirname "$0")/.."
go=${GO:-go}
fuzztime=${FUZZTIME:-10s}
# Go spends up to 60 s by default minimizing each new interesting input; in a run of a few seconds
# per target that would take the whole budget (and overrun it) on slow targets such as the IMAP
# session. A failing input is still written whole when minimizing stops early.
minimizetime=${FUZZMINIMIZETIME:-5s}
[ $# -gt 0 ] || set -- ./...

# Only packages whose test files declare a Fuzz function need a test binary built to list them.
candidates=()
while read -r pkg dir files; do
	[ -n "$files" ] || continue
	if (cd "$dir" && grep -lqE '^func Fuzz[A-Z0-9_]' $files); then
		candidates+=("$pkg")
	fi
done < <("$go" list -f '{{.ImportPath}} {{.Dir}} {{join .TestGoFiles " "}} {{join .XTestGoFiles " "}}' "$@")

ran=0
failed=()
for pkg in "${candidates[@]}"; do
	if ! listed=$("$go" test -list '^Fuzz' "$pkg"); then
		failed+=("$pkg (go test -list failed)")
		continue
	fi
	for name in $(grep '^Fuzz' <<<"$listed" || true); do
		echo "== $pkg $name (fuzztime $fuzztime)"
		ran=$((ran + 1))
		out=$(mktemp)
		if ! "$go" test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimizetime" "$pkg" 2>&1 | tee "$out"; then
			# Go's fuzzer sometimes reports its own shutdown at the end of -fuzztime as a failure
			# ("context deadline exceeded") without any failing input. Only that case is run once
			# more; a real finding prints "Failing input written to" and fails at once.
			if grep -q 'context deadline exceeded' "$out" && ! grep -q 'Failing input written to' "$out"; then
				echo "== $pkg $name: fuzzer shutdown error without a failing input; running it again"
				if ! "$go" test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimizetime" "$pkg"; then
					failed+=("$pkg $name")
				fi
			else
				failed+=("$pkg $name")
			fi
		fi
		rm -f "$out"
	done
done

if [ "$ran" -eq 0 ] && [ ${#failed[@]} -eq 0 ]; then
	echo "fuzz: no fuzz targets in $*"
	exit 0
fi
if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz: ran $ran targets for $fuzztime each; FAILED:"
	printf '  %s\n' "${failed[@]}"
	exit 1
fi
echo "fuzz: all $ran targets ran for $fuzztime without failure"
