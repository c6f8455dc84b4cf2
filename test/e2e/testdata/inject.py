#!/usr/bin/python3
# Sends crafted cleartext frames for the inbound-SPD tests (test/e2e):
#   inject.py IFACE DSTMAC CLASS SRC DST
# CLASS: udp, tcp-syn, icmp (IPv4), udp6, tcp-syn6, icmp6 (IPv6),
# frag4 (an IPv4 UDP datagram in a first and later fragments),
# frag6 (the same with an IPv6 Fragment header).
# A suffix -vlanN (udp-vlan100) sends the frames with an 802.1Q tag N.
# Prints the number of frames sent.
import logging
import sys

# No route warnings: the WAN bridge has no address, and needs none.
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import (ICMP, IP, TCP, UDP, Dot1Q, Ether, ICMPv6EchoRequest, IPv6,
                       IPv6ExtHdrFragment, Raw, conf, fragment, fragment6,
                       sendp)

conf.verb = 0
iface, dstmac, cls, src, dst = sys.argv[1:6]
mark = Raw(b"xdpsec-inject " + cls.encode())
eth = Ether(dst=dstmac)
if "-vlan" in cls:
    cls, vid = cls.split("-vlan")
    eth = eth / Dot1Q(vlan=int(vid))
ip = IPv6(src=src, dst=dst) if ":" in dst else IP(src=src, dst=dst)
frames = {
    "udp": lambda: [eth / ip / UDP(sport=40000, dport=7777) / mark for _ in range(5)],
    "tcp-syn": lambda: [eth / ip / TCP(sport=40001 + i, dport=80, flags="S") for i in range(5)],
    "icmp": lambda: [eth / ip / ICMP(type=8, id=0x5a5a, seq=i) / mark for i in range(5)],
    "udp6": lambda: [eth / ip / UDP(sport=40000, dport=7777) / mark for _ in range(5)],
    "tcp-syn6": lambda: [eth / ip / TCP(sport=40001 + i, dport=80, flags="S") for i in range(5)],
    "icmp6": lambda: [eth / ip / ICMPv6EchoRequest(id=0x5a5a, seq=i) / mark for i in range(5)],
    "frag4": lambda: [eth / f for f in fragment(ip / UDP(sport=40000, dport=7777) / (mark / Raw(b"x" * 3000)), fragsize=1000)],
    "frag6": lambda: [eth / f for f in fragment6(ip / IPv6ExtHdrFragment() / UDP(sport=40000, dport=7777) / (mark / Raw(b"x" * 3000)), 1280)],
}[cls]()
sendp(frames, iface=iface)
print(len(frames))
