#!/usr/bin/env bash
# `make run`: start a whole PANORAMIX mixnet on this machine with `mixctl testnet up`: one
# directory authority, three layers of mixes and two providers (alpha.localhost,
# beta.localhost) on loopback. It prints what runs where; Ctrl-C stops everything cleanly.
# Extra arguments go to `mixctl testnet up` (see `bin/mixctl testnet up --help`).
set -euo pipefail

cd "$(dirname "$0")/.."
go=${GO:-go}

mkdir -p bin
"$go" build -o bin/mixctl ./mixctl
exec bin/mixctl testnet up "$@"
