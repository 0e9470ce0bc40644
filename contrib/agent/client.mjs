#!/usr/bin/env node
// client.mjs: a client of mailproxy's local agent API (docs/spec/agent.md) for Node.js 18 or
// later, standard library only (fetch).
//
//   node client.mjs services
//   node client.mjs request --domain D --service S --recipient R --data TEXT
//   node client.mjs echo [--domain D --recipient R] [--data TEXT]
//   node client.mjs receive [--wait 30s] [--ack]
//
// Options for all: --url (default $PANORAMIX_AGENT_URL or http://127.0.0.1:2580), --token-file
// (default $PANORAMIX_AGENT_TOKEN_FILE), --account (the mailproxy account, when it has several).
//
// request sends TEXT to a service with a reply path, waits for the message to finish and prints
// its status with the service's answer decoded as text. echo sends TEXT to a user's queue
// (default: the account's own, taken from the services' first account), then receives it back
// through the mixnet, acknowledges it and prints it. receive prints the messages waiting in the
// account's queue and, with --ack, acknowledges each after printing it (at-least-once: a message
// not acknowledged is given again). Output is one JSON object per line; exit status 0 on
// success, 1 when the message failed, 2 on any other error.

import { readFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";

class AgentError extends Error {
  constructor(status, code, message) {
    super(`${status} ${code}: ${message}`);
    this.status = status;
    this.code = code;
  }
}

export class Agent {
  constructor(url, token, account) {
    this.base = url.replace(/\/+$/, "") + "/agent/v1/";
    this.token = token;
    this.account = account;
  }

  async call(method, path, { query = {}, body } = {}) {
    const u = new URL(path, this.base);
    if (this.account && body === undefined) query.account = this.account;
    for (const [k, v] of Object.entries(query)) u.searchParams.set(k, v);
    const headers = { Authorization: `Bearer ${this.token}` };
    let payload;
    if (body !== undefined) {
      if (this.account) body = { ...body, account: this.account };
      payload = JSON.stringify(body);
      headers["Content-Type"] = "application/json";
    }
    const resp = await fetch(u, { method, headers, body: payload, signal: AbortSignal.timeout(90_000) });
    const text = await resp.text();
    if (!resp.ok) {
      let err = {};
      try {
        err = JSON.parse(text);
      } catch {
        err = { error: text };
      }
      throw new AgentError(resp.status, err.code ?? "", err.error ?? "");
    }
    return text ? JSON.parse(text) : null;
  }

  services() {
    return this.call("GET", "services");
  }

  send({ domain, service, recipient, data, reply, idempotencyKey }) {
    const body = { domain, service, recipient, data: Buffer.from(data).toString("base64") };
    if (reply !== undefined) body.reply = reply;
    if (idempotencyKey) body.idempotency_key = idempotencyKey;
    return this.call("POST", "send", { body });
  }

  // waitFinished long-polls a message's status until it is finished.
  async waitFinished(id, rounds = 40) {
    let st = await this.call("GET", `status/${id}`);
    for (let i = 0; i < rounds && !st.finished; i++) {
      st = await this.call("GET", `status/${id}`, { query: { wait: "30s", after: st.updated } });
    }
    if (!st.finished) throw new AgentError(0, "timeout", `message ${id} not finished: ${st.state}`);
    return st;
  }

  async received(wait) {
    const r = await this.call("GET", "received", { query: wait ? { wait } : {} });
    return r.messages;
  }

  ack(seq) {
    return this.call("POST", `received/${seq}/ack`);
  }
}

const text = (b64) => Buffer.from(b64 ?? "", "base64").toString("utf8");

async function main(argv) {
  const { values: o, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: "string", default: process.env.PANORAMIX_AGENT_URL ?? "http://127.0.0.1:2580" },
      "token-file": { type: "string", default: process.env.PANORAMIX_AGENT_TOKEN_FILE },
      account: { type: "string" },
      domain: { type: "string" },
      service: { type: "string" },
      recipient: { type: "string" },
      data: { type: "string", default: "" },
      wait: { type: "string" },
      ack: { type: "boolean", default: false },
    },
  });
  const cmd = positionals[0];
  if (!o["token-file"]) throw new Error("no token file: --token-file or PANORAMIX_AGENT_TOKEN_FILE");
  const agent = new Agent(o.url, readFileSync(o["token-file"], "ascii").trim(), o.account);
  const out = (v) => console.log(JSON.stringify(v));

  switch (cmd) {
    case "services":
      out(await agent.services());
      return 0;
    case "request": {
      if (!o.domain || !o.service || !o.recipient) throw new Error("request needs --domain, --service and --recipient");
      const sent = await agent.send({ domain: o.domain, service: o.service, recipient: o.recipient, data: o.data, reply: true, idempotencyKey: randomUUID() });
      const st = await agent.waitFinished(sent.id);
      out({ ...st, answer_text: text(st.answer) });
      return st.state === "delivered" ? 0 : 1;
    }
    case "echo": {
      let { domain, recipient } = o;
      if (!domain || !recipient) {
        // The account's own queue: user@domain of the account named, or the only one.
        const address = o.account ?? (await agent.services()).accounts[0];
        [recipient, domain] = address.split("@");
      }
      const data = o.data || `echo ${randomUUID()}`;
      const sent = await agent.send({ domain, service: "queue", recipient, data, reply: false, idempotencyKey: randomUUID() });
      for (let i = 0; i < 40; i++) {
        for (const m of await agent.received("30s")) {
          if (m.id !== sent.id) continue; // another message: left for its own reader
          await agent.ack(m.seq);
          out({ id: m.id, seq: m.seq, data: text(m.data), at: m.at });
          return 0;
        }
        // Only others' messages wait: the long-poll returns at once, so pause before asking again.
        await new Promise((r) => setTimeout(r, 1000));
      }
      throw new AgentError(0, "timeout", `message ${sent.id} did not come back`);
    }
    case "receive":
      for (const m of await agent.received(o.wait)) {
        out({ id: m.id, seq: m.seq, data: text(m.data), at: m.at });
        if (o.ack) await agent.ack(m.seq);
      }
      return 0;
    default:
      throw new Error(`unknown command ${JSON.stringify(cmd)}: services, request, echo or receive`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`client.mjs: ${err.message}`);
    process.exit(2);
  },
);
