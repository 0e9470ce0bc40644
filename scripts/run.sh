#!/usr/bin/env bash
# `make run`: start a whole PANORAMIX mixnet on this machine with `mixctl testnet up`: one
# directory authority, three layers of mixes and two providers (alpha.localhost,
# beta.localhost) on loopback. It prints what runs where; Ctrl-C stops everything cleanly.
#
# The network lives in one state directory, .run/ in the repository (ignored by git), on fixed
# ports from 14300: a second `make run` resumes it with the same ports, passwords, certificates
# and mail. Options (anything else goes to `mixctl testnet up`, see `bin/mixctl testnet up --help`):
#   --dir D          keep the network in D instead of .run/
#   --base-port N    put a new network on ports N to N+33 instead of 14300 to 14333
#   --fresh          delete the state directory's network first (`make run-reset`)
#   --autoconfig-address 127.0.0.1:80   serve Thunderbird's wizard every provider's settings
#                    (`make run RUN_ARGS=--autoconfig-address=127.0.0.1:80`; port 80 needs root)
set -euo pipefail

cd "$(dirname "$0")/.."
export GO=${GO:-go}

# Every program, with the version stamped, into bin/ (make build says what it does).
"${MAKE:-make}" --no-print-directory build GO="$GO"
exec bin/mixctl testnet up --bin bin --dir "$PWD/.run" --base-port 14300 "$@"
