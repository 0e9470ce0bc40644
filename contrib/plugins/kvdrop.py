#!/usr/bin/python3
"""kvdrop: an anonymous key-value drop, a PANORAMIX provider plugin (docs/spec/plugin.md).

Anyone who can reach the provider through the mixnet can leave a value under a key and read it
back, without an account, and the provider learns neither who wrote nor who read. The recipient
id of a request names a drop (a key space); the request's data is one of

    PUT <key>\\n<value>      store value under key (key 1 to 64 bytes without newline or space,
                            value 1 to 500 bytes), replacing what was there; answer "stored"
    GET <key>               the value (status 0), or status 5 "no value for <key>"

A value is committed to SQLite (synchronous = FULL) before the answer leaves; a retransmitted
request is answered from the stored answer (panoramix_plugin.serve).

Environment: KVDROP_MAX_KEYS (default 100000) bounds the keys of all drops; over it a PUT of a
new key gets status 2 (over quota).
Started by mixd ([[plugin]] command), it talks on stdin/stdout. To run it on its own (as another
user, for [[plugin]] socket), set PANORAMIX_PLUGIN_SOCKET to the socket path to listen on and
PANORAMIX_PLUGIN_DIR to where its database goes.
"""

import os

import panoramix_plugin as pp

MAX_KEY, MAX_VALUE = 64, 500
MAX_KEYS = int(os.environ.get("KVDROP_MAX_KEYS", "100000"))
SCHEMA = "CREATE TABLE IF NOT EXISTS kv (drop_name TEXT, key BLOB, value BLOB, PRIMARY KEY (drop_name, key))"


def handle(db, req):
    verb, _, rest = req.data.partition(b" ")
    if verb == b"GET":
        row = db.execute("SELECT value FROM kv WHERE drop_name = ? AND key = ?", (req.recipient, rest)).fetchone()
        if row is None:
            return pp.REFUSED, b"no value for " + rest[:MAX_KEY]
        return pp.STORED, row[0]
    key, nl, value = rest.partition(b"\n")
    if verb != b"PUT" or not nl or not 1 <= len(key) <= MAX_KEY or b" " in key or not 1 <= len(value) <= MAX_VALUE:
        return pp.MALFORMED, b"want PUT <key>\\n<value> or GET <key>"
    exists = db.execute("SELECT 1 FROM kv WHERE drop_name = ? AND key = ?", (req.recipient, key)).fetchone()
    if exists is None and db.execute("SELECT count(*) FROM kv").fetchone()[0] >= MAX_KEYS:
        return pp.OVER_QUOTA, b"the drop is full"
    db.execute("INSERT OR REPLACE INTO kv (drop_name, key, value) VALUES (?, ?, ?)", (req.recipient, key, value))
    return pp.STORED, b"stored"


if __name__ == "__main__":
    pp.serve("kvdrop", handle, schema=SCHEMA)
