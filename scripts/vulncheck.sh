#!/usr/bin/env bash
# Runs govulncheck on ./... against a vulnerability database built offline from the
# golang.org/x/vulndb module, because vuln.go.dev is unreachable here and the module proxy is not.
# Exits non-zero when the code calls a vulnerable symbol (govulncheck exits 3, `go run` then 1).
# `make vulncheck` calls this. Neither module is added to the project's go.mod: both run as
# `go run MODULE@VERSION`.
#
# Pinned versions; move VULNDB_VERSION forward to see newer reports (`go list -m -versions` does
# not list pseudo-versions: take the commit from the proxy's @latest for golang.org/x/vulndb).
# VULNDB_DIR caches the built database (about 40 MB) between runs; GOTOOLCHAIN selects the Go
# whose standard library is checked (the Makefile exports the project's).
set -euo pipefail

cd "$(dirname "$0")/.."
go=${GO:-go}
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3}
vuln_version=${VULN_VERSION:-v1.10.0}
vulndb_version=${VULNDB_VERSION:-v0.0.0-20261105234957-e22db6528018}
db=${VULNDB_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/panoramix/vulndb-$vulndb_version}

if [ ! -f "$db/index/db.json" ]; then
	# The module's data/osv holds one OSV entry per vulnerability; its cmd/indexdb writes the
	# layout `govulncheck -db file://` reads (index/db.json, index/modules.json,
	# index/vulns.json, ID/<id>.json), the one vuln.go.dev serves.
	src=$(cd "$(mktemp -d)" && "$go" mod download -json "golang.org/x/vulndb@$vulndb_version" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[ -d "$src/data/osv" ] || { echo "vulncheck: golang.org/x/vulndb@$vulndb_version has no data/osv" >&2; exit 1; }
	mkdir -p "$(dirname "$db")"
	tmp=$(mktemp -d "$db.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	echo "vulncheck: building the database from golang.org/x/vulndb@$vulndb_version ($(ls "$src/data/osv" | wc -l) entries) into $db"
	"$go" run "golang.org/x/vulndb/cmd/indexdb@$vulndb_version" -vulns "$src/data/osv" -out "$tmp/db"
	mv "$tmp/db" "$db"
fi

echo "vulncheck: $("$go" version), govulncheck $vuln_version, database golang.org/x/vulndb@$vulndb_version"
"$go" run "golang.org/x/vuln/cmd/govulncheck@$vuln_version" -db "file://$db" ./...
