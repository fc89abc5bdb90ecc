#!/usr/bin/env python3
"""Captures for tests/interop/dpdk_reset.sh (issue 6), standard library only.

  arp OUT.pcap
      one ARP request for 198.18.0.1 from the client: ternd's answer, in the
      output capture, names the port's MAC.
  gen OUT.pcap MANIFEST DST_MAC COUNT SEED
      COUNT short-header QUIC packets (fixed bit set, random DCID that names
      no connection) of random UDP payload sizes 1..1200 to 198.18.0.1:4433,
      each from its own source address and port (198.18.0.2 and .3, ports
      1024 up), so every reply names its trigger. MANIFEST: one line per
      packet, "ip port payload_len dcid_hex", in file order. A tenth of the
      packets reuse an earlier packet's DCID: their resets must carry the
      same token (RFC 9000 §10.3: the token is a function of the CID).
  check MANIFEST TSHARK_FIELDS LIMIT
      TSHARK_FIELDS: tshark -T fields output of the replies (see the test).
      Every reply must be a stateless reset to a trigger: from
      198.18.0.1:4433, short header with the fixed bit, strictly smaller than
      its trigger and at least 21 bytes (§10.3), one per trigger at most, the
      same token for the same CID and different tokens for different CIDs.
      LIMIT "exact:K": exactly the first K triggers of 22 bytes or more got
      one (rate 0, burst K); "max:N": at most N replies. Prints a summary.
"""
import random
import struct
import sys

SRV_IP = bytes([198, 18, 0, 1])
CLI_MAC = bytes.fromhex("020000000002")
PORT = 4433
LINKTYPE_ETHERNET = 1


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ip4_udp(src, sport, payload):
    udp_len = 8 + len(payload)
    pseudo = src + SRV_IP + struct.pack("!BBH", 0, 17, udp_len)
    udp = struct.pack("!HHHH", sport, PORT, udp_len, 0) + payload
    c = csum(pseudo + udp) or 0xFFFF  # RFC 768: a computed 0 is sent as all ones
    udp = udp[:6] + struct.pack("!H", c) + udp[8:]
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0x4000, 64, 17, 0, src, SRV_IP)
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + udp


class Pcap:
    def __init__(self, path):
        self.f = open(path, "wb")
        # classic pcap, microsecond timestamps, snaplen 65535
        self.f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET))
        self.t = 0

    def frame(self, data):
        self.t += 1
        self.f.write(struct.pack("<IIII", self.t // 1000000, self.t % 1000000, len(data), len(data)))
        self.f.write(data)

    def close(self):
        self.f.close()


def arp(out):
    p = Pcap(out)
    body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, CLI_MAC, bytes([198, 18, 0, 2]),
                       b"\0" * 6, SRV_IP)
    p.frame(b"\xff" * 6 + CLI_MAC + b"\x08\x06" + body + b"\0" * 18)
    p.close()


def gen(out, manifest, dst_mac, count, seed):
    rnd = random.Random(seed)
    mac = bytes.fromhex(dst_mac.replace(":", ""))
    p = Pcap(out)
    dcids = []
    with open(manifest, "w") as m:
        for i in range(count):
            src = bytes([198, 18, 0, 2 + i // 50000])
            sport = 1024 + i % 50000
            size = rnd.randint(1, 1200)
            if dcids and rnd.random() < 0.1:
                dcid = rnd.choice(dcids)
            else:
                dcid = rnd.randbytes(20)
                dcids.append(dcid)
            # short header: form bit 0, fixed bit 1, the rest random
            first = bytes([0x40 | rnd.getrandbits(6)])
            payload = (first + dcid + rnd.randbytes(max(0, size - 21)))[:size]
            p.frame(mac + CLI_MAC + b"\x08\x00" + ip4_udp(src, sport, payload))
            m.write("%s %d %d %s\n" % (".".join(map(str, src)), sport, size, dcid.hex()))
    p.close()


def check(manifest, fields, limit):
    trig = {}
    order = []
    with open(manifest) as m:
        for line in m:
            ip, port, size, dcid = line.split()
            trig[(ip, int(port))] = (int(size), dcid)
            order.append((ip, int(port)))
    bad = []
    got = {}
    tokens = {}
    n = 0
    with open(fields) as f:
        for line in f:
            n += 1
            col = line.rstrip("\n").split("\t")
            if len(col) < 8:
                bad.append("reply %d: not IPv4/UDP/QUIC: %r" % (n, line.strip()))
                continue
            src, dst, sport, dport, hform, fixed, plen, payload = col[:8]
            key = (dst, int(dport) if dport else -1)
            size = len(payload.replace(":", "")) // 2
            if src != "198.18.0.1" or sport != str(PORT):
                bad.append("reply %d: from %s:%s, not 198.18.0.1:%d" % (n, src, sport, PORT))
            elif hform != "0" or fixed not in ("1", "True"):
                bad.append("reply %d: not a short header with the fixed bit (form %s, fixed %s)" % (n, hform, fixed))
            elif key not in trig:
                bad.append("reply %d: to %s:%s, which sent no trigger" % (n, dst, dport))
            elif key in got:
                bad.append("reply %d: a second reply to %s:%s" % (n, dst, dport))
            elif not (21 <= size < trig[key][0]):
                bad.append("reply %d: %d bytes for a %d-byte trigger (want 21 <= len < trigger)" % (n, size, trig[key][0]))
            else:
                got[key] = size
                tok = payload.replace(":", "")[-32:]
                dcid = trig[key][1]
                if tokens.setdefault(dcid, tok) != tok:
                    bad.append("reply %d: a different token for the same CID %s" % (n, dcid))
            if len(bad) >= 5:
                break
    if len(set(tokens.values())) != len(tokens) and not bad:
        bad.append("two different CIDs got the same token")
    eligible = [k for k in order if trig[k][0] >= 22]
    kind, _, val = limit.partition(":")
    if not bad and kind == "exact":
        k = int(val)
        want = set(eligible[:k])
        if set(got) != want:
            miss = [k2 for k2 in eligible[:k] if k2 not in got]
            extra = [k2 for k2 in got if k2 not in want]
            bad.append("%d replies; want exactly the first %d triggers of >= 22 bytes: %d of them missing "
                       "(first %s), %d others answered (first %s)"
                       % (len(got), k, len(miss), miss[:1], len(extra), extra[:1]))
    elif not bad and kind == "max" and len(got) > int(val):
        bad.append("%d replies, more than the limiter allows (%s)" % (len(got), val))
    repeats = len(got) - len({trig[k][1] for k in got})
    print("%d triggers (%d of >= 22 bytes), %d replies, all stateless resets: %s; "
          "%d resets repeat a CID with its token; reset sizes %s..%s"
          % (len(order), len(eligible), n, "no" if bad else "yes", repeats,
             min(got.values(), default=0), max(got.values(), default=0)))
    for b in bad:
        print("  " + b)
    return 1 if bad else 0


def main():
    a = sys.argv[1:]
    if a[:1] == ["arp"] and len(a) == 2:
        arp(a[1])
    elif a[:1] == ["gen"] and len(a) == 6:
        gen(a[1], a[2], a[3], int(a[4]), int(a[5]))
    elif a[:1] == ["check"] and len(a) == 4:
        return check(a[1], a[2], a[3])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
