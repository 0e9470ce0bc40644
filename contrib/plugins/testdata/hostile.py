#!/usr/bin/python3
"""A hostile plugin for mixd's tests (docs/spec/plugin.md section 5): each run misbehaves in the
next way of HOSTILE_MODES (default: all of them, in turn), counting its runs in a file of its
directory, so that one provider sees every kind of misbehaviour across restarts:

    garbage    a frame of another version in answer to a request
    hang       reads requests and never answers
    twice      answers a request twice
    oversize   an answer of 600 bytes (over the ACK answer limit)
    flood      unsolicited answers, as fast as the pipe takes them, from the start
"""

import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import panoramix_plugin as pp  # noqa: E402

MODES = os.environ.get("HOSTILE_MODES", "garbage,hang,twice,oversize,flood").split(",")


def next_mode():
    path = os.path.join(os.environ.get("PANORAMIX_PLUGIN_DIR", "."), "runs")
    try:
        with open(path) as f:
            runs = int(f.read() or "0")
    except FileNotFoundError:
        runs = 0
    with open(path, "w") as f:
        f.write(str(runs + 1))
    return MODES[runs % len(MODES)]


def main():
    mode = next_mode()
    print("hostile plugin: this run does %s" % mode, file=sys.stderr, flush=True)
    rd, wr = sys.stdin.buffer, sys.stdout.buffer
    pp.write_frame(wr, pp.HELLO, 0, bytes([7]) + b"hostile" + struct.pack(">H", 8))
    if mode == "flood":
        rid = 1 << 40
        while True:
            pp.write_frame(wr, pp.ANSWER, rid, bytes([pp.STORED]) + b"flood")
            rid += 1
    while True:
        try:
            ftype, rid, body = pp.read_frame(rd)
        except EOFError:
            return
        if mode == "garbage":
            wr.write(b"\x00\x00\x00\x0c\x07\x07garbage!!!")
            wr.flush()
        elif mode == "twice":
            pp.write_frame(wr, pp.ANSWER, rid, bytes([pp.STORED]) + b"one")
            pp.write_frame(wr, pp.ANSWER, rid, bytes([pp.STORED]) + b"two")
        elif mode == "oversize":
            pp.write_frame(wr, pp.ANSWER, rid, bytes([pp.STORED]) + b"x" * 600)


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        pass
