#!/usr/bin/python3
"""kvclient: PUT and GET a key in a kvdrop plugin (contrib/plugins/kvdrop.py) at a provider,
through mailproxy's local agent API (docs/spec/agent.md). Python 3 standard library only.

    kvclient.py --domain beta.example [--drop NAME] put KEY VALUE
    kvclient.py --domain beta.example [--drop NAME] get KEY

The agent is found through --url (default $PANORAMIX_AGENT_URL or http://127.0.0.1:2580) and its
token through --token-file (default $PANORAMIX_AGENT_TOKEN_FILE): the file mailproxy writes
([agent] token_file), readable by the user only.

Each request goes through the mixnet as one fragment with a reply path; the agent answers the
send once the engine has committed it to disk, and the plugin's answer comes back in the
message's status (long-polled). Output: the answer on standard output; exit status 0 when the
plugin stored or found the value, 1 when it refused (no value for the key, a full drop), 2 for
any other failure (message on standard error).

A request carries an idempotency key: when the agent's answer is lost (the connection breaks),
running the same command again with the same --request-id gets the message already queued
instead of a second one.
"""

import argparse
import base64
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid

DEFAULT_URL = "http://127.0.0.1:2580"
SERVICE = "kvdrop"


class AgentError(Exception):
    """An error answer of the agent API: HTTP status, code and text (docs/spec/agent.md 4)."""

    def __init__(self, status, code, message):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class Agent:
    """A small client of the agent API, version 1."""

    def __init__(self, url, token, account=None, timeout=90):
        self.url = url.rstrip("/") + "/agent/v1/"
        self.token = token
        self.account = account
        self.timeout = timeout

    @classmethod
    def from_files(cls, url, token_file, account=None):
        with open(token_file, encoding="ascii") as f:
            return cls(url, f.read().strip(), account)

    def _call(self, method, path, query=None, body=None):
        query = dict(query or {})
        if self.account and body is None:
            query["account"] = self.account
        url = self.url + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None
        headers = {"Authorization": "Bearer " + self.token}
        if body is not None:
            if self.account:
                body = dict(body, account=self.account)
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
                return json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                err = json.loads(raw)
                raise AgentError(e.code, err.get("code", ""), err.get("error", "")) from None
            except ValueError:
                raise AgentError(e.code, "", raw.decode("utf-8", "replace")) from None

    def services(self):
        return self._call("GET", "services")

    def send(self, domain, service, recipient, data, reply=None, idempotency_key=None):
        body = {"domain": domain, "service": service, "recipient": recipient,
                "data": base64.b64encode(data).decode("ascii")}
        if reply is not None:
            body["reply"] = reply
        if idempotency_key:
            body["idempotency_key"] = idempotency_key
        return self._call("POST", "send", body=body)

    def status(self, msg_id, wait=None, after=None):
        q = {}
        if wait:
            q["wait"] = wait
        if after:
            q["after"] = after
        return self._call("GET", "status/" + msg_id, q)

    def wait_finished(self, msg_id, rounds=40):
        """Long-polls the status until the message is finished (each round waits up to 30 s)."""
        st = self.status(msg_id)
        for _ in range(rounds):
            if st["finished"]:
                return st
            st = self.status(msg_id, wait="30s", after=st["updated"])
        raise AgentError(0, "timeout", f"message {msg_id} not finished: {st['state']}")

    def received(self, wait=None):
        return self._call("GET", "received", {"wait": wait} if wait else None)["messages"]

    def ack(self, seq):
        self._call("POST", f"received/{seq}/ack")


def request(agent, domain, drop, data, request_id):
    """Sends one kvdrop request and returns (ok, answer bytes)."""
    sent = agent.send(domain, SERVICE, drop, data, reply=True, idempotency_key=request_id)
    st = agent.wait_finished(sent["id"])
    answer = base64.b64decode(st.get("answer", ""))
    if st["state"] == "delivered":
        return True, answer
    if answer:
        return False, answer  # the plugin refused and said why
    raise AgentError(0, "failed", st.get("reason", "failed"))


def main(argv=None):
    ap = argparse.ArgumentParser(description="PUT and GET keys in a kvdrop plugin through the agent API.")
    ap.add_argument("--url", default=os.environ.get("PANORAMIX_AGENT_URL", DEFAULT_URL))
    ap.add_argument("--token-file", default=os.environ.get("PANORAMIX_AGENT_TOKEN_FILE"))
    ap.add_argument("--account", help="the mailproxy account to send from (when it has several)")
    ap.add_argument("--domain", required=True, help="the provider running the kvdrop plugin")
    ap.add_argument("--drop", default="default", help="the drop (key space) to use")
    ap.add_argument("--request-id", help="idempotency key (default: a new random one)")
    ap.add_argument("verb", choices=["put", "get"])
    ap.add_argument("key")
    ap.add_argument("value", nargs="?")
    args = ap.parse_args(argv)
    if args.token_file is None:
        ap.error("no token file: --token-file or PANORAMIX_AGENT_TOKEN_FILE")
    if (args.verb == "put") != (args.value is not None):
        ap.error("put takes KEY VALUE, get takes KEY")
    data = b"GET " + args.key.encode() if args.verb == "get" else b"PUT " + args.key.encode() + b"\n" + args.value.encode()
    try:
        agent = Agent.from_files(args.url, args.token_file, args.account)
        ok, answer = request(agent, args.domain, args.drop, data, args.request_id or str(uuid.uuid4()))
    except (AgentError, OSError, ValueError) as e:
        print(f"kvclient: {e}", file=sys.stderr)
        return 2
    if not ok:
        print(f"kvclient: refused: {answer.decode('utf-8', 'replace')}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(answer + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
