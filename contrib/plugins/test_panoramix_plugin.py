"""Tests of panoramix_plugin's decoders and of kvdrop's handler (standard library unittest).
mixd's Go tests run them: go test -run TestPythonLibrary ./mixd/internal/plugin"""

import io
import os
import random
import sqlite3
import struct
import tempfile
import unittest

import panoramix_plugin as pp
import kvdrop


def request_frame(request_id, message_id, reply, recipient, data):
    body = message_id + bytes([1 if reply else 0, len(recipient)]) + recipient + data
    return struct.pack(">IBBQ", 10 + len(body), pp.VERSION, pp.REQUEST, request_id) + body


class Decoders(unittest.TestCase):
    def test_round_trip(self):
        b = request_frame(7, b"m" * 16, True, b"box", b"PUT k\nv")
        ftype, rid, body = pp.read_frame(io.BytesIO(b))
        req = pp.parse_request(rid, body)
        self.assertEqual((ftype, req.request_id, req.message_id, req.reply, req.recipient, req.data),
                         (pp.REQUEST, 7, b"m" * 16, True, "box", b"PUT k\nv"))
        out = io.BytesIO()
        pp.write_frame(out, pp.ANSWER, 7, b"\x00stored")
        self.assertEqual(out.getvalue(), struct.pack(">IBBQ", 17, 1, pp.ANSWER, 7) + b"\x00stored")

    def test_limits(self):
        # A length over MAX_FRAME is refused before anything else is read.
        r = io.BytesIO(struct.pack(">I", pp.MAX_FRAME + 1) + b"x" * 10)
        with self.assertRaises(pp.ProtocolError):
            pp.read_frame(r)
        self.assertEqual(r.tell(), 4)
        for bad in (struct.pack(">I", 9) + b"x" * 9, struct.pack(">IBBQ", 10, 2, pp.REQUEST, 1)):
            with self.assertRaises(pp.ProtocolError):
                pp.read_frame(io.BytesIO(bad))
        with self.assertRaises(EOFError):
            pp.read_frame(io.BytesIO(request_frame(1, b"m" * 16, False, b"r", b"data")[:-1]))
        for body in (b"m" * 17, b"m" * 16 + b"\x02\x01r", b"m" * 16 + b"\x00\x41" + b"r" * 65, b"m" * 16 + b"\x00\x05r"):
            with self.assertRaises(pp.ProtocolError):
                pp.parse_request(1, body)

    def test_random_input(self):
        # Whatever mixd's pipe could carry, the decoders raise only their own errors.
        rnd = random.Random(18)
        seed = request_frame(3, b"m" * 16, True, b"box", b"GET k")
        for _ in range(20000):
            b = bytearray(seed if rnd.random() < 0.7 else rnd.randbytes(rnd.randrange(40)))
            for _ in range(rnd.randrange(4)):
                if b:
                    b[rnd.randrange(len(b))] = rnd.randrange(256)
            try:
                ftype, rid, body = pp.read_frame(io.BytesIO(bytes(b)))
                pp.parse_request(rid, body)
            except (pp.ProtocolError, EOFError):
                pass


class KVDrop(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        os.environ["PANORAMIX_PLUGIN_DIR"] = self.dir.name
        self.db = pp.open_db("kvdrop", kvdrop.SCHEMA)

    def tearDown(self):
        self.db.close()
        self.dir.cleanup()

    def ask(self, mid, data, drop="d"):
        return pp.handle_once(self.db, pp.Request(1, mid, True, drop, data), kvdrop.handle)

    def test_put_get_dedup(self):
        self.assertEqual(self.ask(b"a" * 16, b"PUT k\nv1"), (pp.STORED, b"stored"))
        self.assertEqual(self.ask(b"b" * 16, b"PUT k\nv2"), (pp.STORED, b"stored"))
        self.assertEqual(self.ask(b"a" * 16, b"PUT k\nv1"), (pp.STORED, b"stored"))  # a retransmission
        self.assertEqual(self.ask(b"c" * 16, b"GET k"), (pp.STORED, b"v2"))
        self.assertEqual(self.ask(b"c" * 16, b"GET x")[0], pp.MALFORMED)  # id reused, other data
        self.assertEqual(self.ask(b"d" * 16, b"GET k", drop="other"), (pp.REFUSED, b"no value for k"))
        self.assertEqual(self.ask(b"e" * 16, b"PUT k\n" + b"v" * 501)[0], pp.MALFORMED)
        self.assertEqual(self.ask(b"f" * 16, b"PUT " + b"k" * 65 + b"\nv")[0], pp.MALFORMED)

    def test_quota(self):
        kvdrop.MAX_KEYS, old = 2, kvdrop.MAX_KEYS
        try:
            self.assertEqual(self.ask(b"1" * 16, b"PUT a\nv")[0], pp.STORED)
            self.assertEqual(self.ask(b"2" * 16, b"PUT b\nv")[0], pp.STORED)
            self.assertEqual(self.ask(b"3" * 16, b"PUT c\nv")[0], pp.OVER_QUOTA)
            self.assertEqual(self.ask(b"4" * 16, b"PUT a\nw")[0], pp.STORED)  # replacing is no new key
        finally:
            kvdrop.MAX_KEYS = old


if __name__ == "__main__":
    unittest.main()
