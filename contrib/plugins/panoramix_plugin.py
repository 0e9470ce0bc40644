"""The plugin side of PANORAMIX provider plugins (docs/spec/plugin.md), standard library only.

A plugin is a program that mixd starts; it reads REQUEST frames on standard input and writes
ANSWER frames on standard output. serve() does the protocol, the durability rule and the
deduplication of retransmissions: the plugin gives it a handler that does its work inside an
SQLite transaction and returns (status, answer). serve() commits that transaction together
with the request's message id and answer (synchronous = FULL, so the commit is on disk) and
only then writes the ANSWER; a retransmitted request gets the stored answer again without the
handler running twice.

    import panoramix_plugin as pp

    def handle(db, req):
        db.execute("INSERT INTO notes(who, text) VALUES (?, ?)", (req.recipient, req.data))
        return pp.STORED, b"noted"

    pp.serve("notes", handle, schema="CREATE TABLE IF NOT EXISTS notes(who TEXT, text BLOB)")
"""

import hashlib
import os
import sqlite3
import struct
import sys

VERSION = 1
HELLO, REQUEST, ANSWER = 1, 2, 3
HEADER = 10  # version, type, request id
MAX_FRAME = (1 << 20) + 4096
MAX_ANSWER = 512
MESSAGE_ID_SIZE = 16
FLAG_REPLY = 0x01

# ACK statuses (docs/spec/fragment.md section 3).
STORED, UNKNOWN_RECIPIENT, OVER_QUOTA, MALFORMED, TOO_LARGE, REFUSED = range(6)

# Test hook: when set to a path that does not exist yet, the plugin creates it and dies (SIGKILL
# of itself) after its first commit and before the answer, to show a commit without an answer
# loses nothing.
CRASH_ONCE_ENV = "PANORAMIX_PLUGIN_CRASH_ONCE"


class ProtocolError(Exception):
    pass


class Request:
    __slots__ = ("request_id", "message_id", "reply", "recipient", "data")

    def __init__(self, request_id, message_id, reply, recipient, data):
        self.request_id = request_id
        self.message_id = message_id
        self.reply = reply
        self.recipient = recipient
        self.data = data


def _read_exact(f, n):
    b = f.read(n)
    if b is None or len(b) < n:
        raise EOFError
    return b


def read_frame(f):
    """Reads one frame; returns (type, request_id, body). EOFError at the end of input."""
    (length,) = struct.unpack(">I", _read_exact(f, 4))
    if length < HEADER or length > MAX_FRAME:
        raise ProtocolError("frame length %d" % length)
    b = _read_exact(f, length)
    if b[0] != VERSION:
        raise ProtocolError("frame version %d" % b[0])
    (request_id,) = struct.unpack(">Q", b[2:10])
    return b[1], request_id, b[10:]


def write_frame(f, ftype, request_id, body):
    f.write(struct.pack(">IBBQ", HEADER + len(body), VERSION, ftype, request_id) + body)
    f.flush()


def parse_request(request_id, body):
    if len(body) < MESSAGE_ID_SIZE + 2:
        raise ProtocolError("REQUEST body of %d bytes" % len(body))
    flags, n = body[MESSAGE_ID_SIZE], body[MESSAGE_ID_SIZE + 1]
    rest = body[MESSAGE_ID_SIZE + 2:]
    if flags & ~FLAG_REPLY or n < 1 or n > 64 or n > len(rest):
        raise ProtocolError("REQUEST flags %#x, recipient of %d bytes" % (flags, n))
    return Request(request_id, bytes(body[:MESSAGE_ID_SIZE]), bool(flags & FLAG_REPLY),
                   rest[:n].decode("utf-8", "replace"), bytes(rest[n:]))


def open_db(name, schema=""):
    """Opens (creating) the plugin's database in its directory, with the dedup table."""
    path = os.path.join(os.environ.get("PANORAMIX_PLUGIN_DIR", "."), name + ".db")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.execute("CREATE TABLE IF NOT EXISTS panoramix_answers ("
               "message_id BLOB PRIMARY KEY, digest BLOB NOT NULL, status INTEGER NOT NULL, answer BLOB NOT NULL)")
    if schema:
        db.executescript(schema)
    return db


def handle_once(db, req, handle):
    """Runs handle for req unless its message id was answered before; returns (status, answer)
    after the commit."""
    digest = hashlib.sha256(req.data).digest()
    db.execute("BEGIN IMMEDIATE")
    try:
        row = db.execute("SELECT digest, status, answer FROM panoramix_answers WHERE message_id = ?",
                         (req.message_id,)).fetchone()
        if row is not None:
            db.execute("ROLLBACK")
            if row[0] != digest:
                return MALFORMED, b"message id reused with other data"
            return row[1], bytes(row[2])
        status, answer = handle(db, req)
        answer = bytes(answer or b"")[:MAX_ANSWER]
        if not 0 <= status <= REFUSED:
            raise ValueError("status %d" % status)
        db.execute("INSERT INTO panoramix_answers(message_id, digest, status, answer) VALUES (?, ?, ?, ?)",
                   (req.message_id, digest, status, answer))
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return status, answer


def _crash_once():
    marker = os.environ.get(CRASH_ONCE_ENV)
    if not marker:
        return
    try:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.fsync(fd)
    os.close(fd)
    os.kill(os.getpid(), 9)


SOCKET_ENV = "PANORAMIX_PLUGIN_SOCKET"


def serve(name, handle, schema="", max_in_flight=16):
    """Says HELLO as service name and answers requests with handle(db, req) -> (status, answer)
    until mixd closes standard input. With PANORAMIX_PLUGIN_SOCKET set to a path, listens on
    that Unix socket instead (docs/spec/plugin.md section 5.1) and serves mixd's connections,
    one at a time, until killed."""
    db = open_db(name, schema)
    path = os.environ.get(SOCKET_ENV)
    if not path:
        _serve_stream(name, handle, db, max_in_flight, sys.stdin.buffer, sys.stdout.buffer)
        return
    import socket
    if os.path.exists(path):
        os.unlink(path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o077)  # only this user (and root) may connect
    try:
        srv.bind(path)
    finally:
        os.umask(old)
    srv.listen(1)
    while True:
        conn, _ = srv.accept()
        with conn, conn.makefile("rb") as rd, conn.makefile("wb") as wr:
            try:
                _serve_stream(name, handle, db, max_in_flight, rd, wr)
            except (ProtocolError, OSError) as e:
                print("%s: connection ended: %r" % (name, e), file=sys.stderr, flush=True)


def _serve_stream(name, handle, db, max_in_flight, rd, wr):
    hello = bytes([len(name)]) + name.encode() + struct.pack(">H", max_in_flight)
    write_frame(wr, HELLO, 0, hello)
    while True:
        try:
            ftype, request_id, body = read_frame(rd)
        except EOFError:
            return
        if ftype != REQUEST:
            raise ProtocolError("frame type %d from mixd" % ftype)
        req = parse_request(request_id, body)
        try:
            status, answer = handle_once(db, req, handle)
        except Exception as e:
            # Unanswered, not refused: the failure may pass (a locked database), and a refusal
            # would fail the sender's message for good. mixd's timeout restarts the plugin and
            # the sender retransmits.
            print("%s: request %d: %r" % (name, request_id, e), file=sys.stderr, flush=True)
            continue
        _crash_once()
        write_frame(wr, ANSWER, request_id, bytes([status]) + answer)
