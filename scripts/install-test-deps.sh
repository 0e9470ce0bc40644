#!/usr/bin/env bash
# The Debian packages the tests need, so that no test skips for a missing program (STYLE.md rule
# 17): `make test` and `.ci/run` call this first. As root it installs what is missing, without
# questions; as another user it installs nothing and, when something is missing, stops at once
# with the one command to run. --list prints the packages.
#
#   isync          mbsync: the IMAP server against a real client (internal/imapd)
#   python3        imaplib/ssl: reading mail, verifying certificates (many tests)
#   dovecot-imapd  Dovecot's /usr/sbin/dovecot and /usr/lib/dovecot/imap (the LMTP back end tests)
#   dovecot-lmtpd  Dovecot's /usr/lib/dovecot/lmtp (the same tests deliver through it)
#   swaks          SMTP as a user types it (mailproxy's end-to-end tests)
#   postfix        postfix-filter behind a real Postfix
#   postgresql     the survey store on PostgreSQL
#   make           the test command itself
#   tcpdump        the privacy measurement's wire capture on loopback (internal/privacy/capture)
#   nodejs         node: the agent API's Node example client (mailproxy/internal/agent TestExamples)
#   iproute2       ip netns, veth and bridge: the namespace network (internal/netlab)
#   iptables       its packet loss and partitions (statistic match, DROP) in each namespace
set -euo pipefail

packages=(make isync python3 dovecot-imapd dovecot-lmtpd swaks postfix postgresql tcpdump iproute2 iptables nodejs)

if [ "${1:-}" = --list ]; then
	echo "${packages[@]}"
	exit 0
fi

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "The tests need Debian packages that are not installed: ${missing[*]}" >&2
	echo "Install them (once) with:" >&2
	echo "  sudo $(cd "$(dirname "$0")" && pwd)/install-test-deps.sh" >&2
	exit 1
fi

echo "installing the test dependencies: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# postfix: no system configuration (the tests start their own instances), no questions.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
echo "postfix postfix/mailname string localhost.localdomain" | debconf-set-selections
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
