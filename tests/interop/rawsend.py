#!/usr/bin/env python3
"""Sends datagrams no QUIC stack would send to a QUIC server and checks what,
if anything, comes back. Standard library only (no keys needed: these are
dropped before or at decryption).

    rawsend.py HOST PORT CASE
      truncated     datagrams that end inside a long or short header: silence
      random        70 datagrams of random bytes, 1 to 1472 long (fixed
                    seed): silence, or a stateless reset for a short header
                    (smaller than the trigger, RFC 9000 §10.3.3), or a
                    Version Negotiation for a long header of >= 1200 bytes
      long-v1       1200-byte Initial, 0-RTT and Handshake packets of
                    version 1 with random CIDs and payload: they cannot
                    decrypt, so silence (RFC 9001 §5.2, §5.3)
      long-random   1200 random bytes with the long-header bit set and an
                    unknown version: a Version Negotiation that echoes the
                    CIDs and lists version 1 (RFC 9000 §6.1, §17.2.1);
                    1199 such bytes: silence (RFC 9000 §5.2.2)

Exit 0 when the server behaved, 1 with one line on stderr when not.
"""
import random
import socket
import struct
import sys
import time

WAIT = 0.5  # seconds to listen for answers


def fail(case, msg):
    print(f"rawsend {case}: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


class Peer:
    def __init__(self, host, port, case):
        self.case = case
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.connect((host, port))

    def burst(self, datagrams, wait=WAIT):
        """Sends the datagrams, then returns every datagram received within wait."""
        for d in datagrams:
            self.s.send(d)
        return self.exchange(None, wait)

    def exchange(self, data, wait=WAIT):
        """Sends one datagram and returns every datagram received within wait."""
        if data is not None:
            self.s.send(data)
        got, end = [], time.monotonic() + wait
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return got
            self.s.settimeout(left)
            try:
                got.append(self.s.recv(65536))
            except socket.timeout:
                return got
            except ConnectionRefusedError:
                fail(self.case, "ICMP port unreachable: the server is gone")


def parse_long_cids(d):
    """(dcid, scid) of a long header, or None when they do not fit."""
    if len(d) < 6:
        return None
    dl = d[5]
    if len(d) < 7 + dl:
        return None
    sl = d[6 + dl]
    if len(d) < 7 + dl + sl:
        return None
    return d[6:6 + dl], d[7 + dl:7 + dl + sl]


def check_vn(case, trigger, reply):
    """RFC 9000 §17.2.1: version 0, the trigger's CIDs swapped, a list of
    versions that has 1 and not the version that triggered it."""
    if len(reply) < 7 or not reply[0] & 0x80 or reply[1:5] != b"\0\0\0\0":
        fail(case, f"reply to an unknown version is not a Version Negotiation: {reply[:8].hex()}")
    t, r = parse_long_cids(trigger), parse_long_cids(reply)
    if r is None or t is None or r[0] != t[1] or r[1] != t[0]:
        fail(case, "Version Negotiation does not echo the CIDs swapped")
    rest = reply[7 + len(r[0]) + len(r[1]):]
    if not rest or len(rest) % 4:
        fail(case, f"Version Negotiation version list of {len(rest)} bytes")
    versions = [struct.unpack("!I", rest[i:i + 4])[0] for i in range(0, len(rest), 4)]
    if 1 not in versions or struct.unpack("!I", trigger[1:5])[0] in versions:
        fail(case, f"Version Negotiation lists {[hex(v) for v in versions]}")


def is_reset_for(trigger, reply):
    """A stateless reset: short-header form, at least 21 bytes and smaller
    than what triggered it (RFC 9000 §10.3, §10.3.3)."""
    return (reply[0] & 0xC0) == 0x40 and 21 <= len(reply) < len(trigger)


def expect_silence(p, what, datagrams):
    got = p.burst(datagrams)
    if got:
        fail(p.case, f"{what}: {len(got)} answered, first answer {len(got[0])} bytes "
                     f"starting {got[0][:6].hex()}")


def case_truncated(p):
    cases = [
        b"\xc0",                                   # first byte only
        b"\xc0\x00\x00",                           # inside the version
        b"\xc0\x00\x00\x00\x01",                   # no DCID length
        b"\xc0\x00\x00\x00\x01\x08\x01\x02\x03",   # inside the DCID
        b"\xc0\x00\x00\x00\x01\x00\x14",           # SCID length 20, no SCID
        b"\xc0\x00\x00\x00\x01\x00\x00\x40",       # inside the token length
        b"\xc0\x00\x00\x00\x01\x00\x00\x00\x44\xd0\x00",  # Length 1232, 1 byte of it
        b"\x40",                                   # short header, nothing else
        b"\x40\x01\x02\x03",                       # short header cut in the DCID
    ]
    expect_silence(p, f"{len(cases)} truncated datagrams", cases)
    print(f"rawsend truncated: ok: {len(cases)} truncated datagrams dropped silently")


def case_random(p):
    rng = random.Random(9000)
    sizes = [1, 2, 3, 5, 8, 20, 21, 22, 25, 40, 41, 42, 43, 60, 100, 200, 500, 999, 1199,
             1200, 1201, 1350, 1472]
    sent = [rng.randbytes(sizes[i % len(sizes)]) for i in range(70)]
    resets = vns = 0
    for r in p.burst(sent):
        if (r[0] & 0xC0) == 0x40 and any(not d[0] & 0x80 and is_reset_for(d, r) for d in sent):
            resets += 1
            continue
        # A VN must answer one of the long-header datagrams of 1200 bytes or
        # more with a version other than those tern speaks (and not VN itself).
        cids = parse_long_cids(r)
        trig = [d for d in sent if d[0] & 0x80 and len(d) >= 1200 and
                d[1:5] not in (b"\0\0\0\0", b"\0\0\0\1", b"\x6b\x33\x43\xcf") and
                cids is not None and parse_long_cids(d) == (cids[1], cids[0])]
        if r[1:5] == b"\0\0\0\0" and trig:
            check_vn(p.case, trig[0], r)
            vns += 1
            continue
        fail(p.case, f"random datagrams were answered with {len(r)} bytes starting {r[:6].hex()}, "
                     "neither a stateless reset nor a Version Negotiation")
    print(f"rawsend random: ok: 70 random datagrams, answered by {resets} stateless resets "
          f"and {vns} Version Negotiations, nothing else")


def long_v1(rng, first, size):
    dcid, scid = rng.randbytes(8), rng.randbytes(8)
    hdr = bytes([first]) + b"\x00\x00\x00\x01" + bytes([8]) + dcid + bytes([8]) + scid
    if (first & 0x30) == 0:  # Initial: empty token
        hdr += b"\x00"
    length = size - len(hdr) - 2
    hdr += struct.pack("!H", 0x4000 | length)
    return hdr + rng.randbytes(length)


def case_long_v1(p):
    rng = random.Random(9001)
    n = 0
    sent = [long_v1(rng, first, 1200) for first in (0xC0, 0xC3, 0xD0, 0xE0, 0xE1)  # Initial,
            for _ in range(3)]                                                      # 0-RTT, Handshake
    expect_silence(p, f"{len(sent)} version 1 packets of 1200 random bytes", sent)
    n = len(sent)
    print(f"rawsend long-v1: ok: {n} undecryptable 1200-byte long-header packets dropped silently")


def case_long_random(p):
    rng = random.Random(9002)
    for size in (1200, 1350):
        for _ in range(3):
            d = bytearray(rng.randbytes(size))
            d[0] |= 0x80
            d[1:5] = struct.pack("!I", (rng.getrandbits(32) & 0xF0F0F0F0) | 0x0A0A0A0A)  # §15
            got = p.exchange(bytes(d))
            if len(got) != 1:
                fail(p.case, f"{size} random bytes with a long header and version "
                             f"{bytes(d[1:5]).hex()} got {len(got)} replies, not one Version Negotiation")
            check_vn(p.case, bytes(d), got[0])
    d = bytearray(rng.randbytes(1199))
    d[0] |= 0x80
    d[1:5] = b"\x1a\x2a\x3a\x4a"
    expect_silence(p, "1199 bytes with an unknown version", [bytes(d)])
    print("rawsend long-random: ok: 6 Version Negotiations, right CIDs and versions; "
          "the 1199-byte one dropped")


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    cases = {"truncated": case_truncated, "random": case_random, "long-v1": case_long_v1,
             "long-random": case_long_random}
    case = sys.argv[3]
    if case not in cases:
        print(f"unknown case {case}: {' '.join(cases)}", file=sys.stderr)
        sys.exit(2)
    cases[case](Peer(sys.argv[1], int(sys.argv[2]), case))


if __name__ == "__main__":
    main()
