"""A one-address DHCPv4 server for tests that need leases shorter than dnsmasq allows.

dnsmasq refuses lease times under two minutes; expiry tests need seconds. This answers
DISCOVER with OFFER and REQUEST with ACK for one fixed address, with the lease, T1 and T2
given on the command line, broadcasting every reply (the client asks for broadcast).
It prints "ready" once bound and one line per reply. Run it inside a test namespace:

    python dhcp_responder.py IFACE SERVER_IP ADDRESS/PREFIX ROUTER LEASE T1 T2
"""

from __future__ import annotations

import ipaddress
import socket
import sys

from pyroute2.dhcp.dhcp4msg import dhcp4msg
from pyroute2.dhcp.enums.dhcp import MessageType


def main(argv: list[str]) -> None:
    iface, server, leased, router, lease_s, t1, t2 = argv
    address = ipaddress.ip_interface(leased)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
    sock.bind(("", 67))
    print("ready", flush=True)
    answers = {MessageType.DISCOVER: MessageType.OFFER, MessageType.REQUEST: MessageType.ACK}
    while True:
        data, _ = sock.recvfrom(4096)
        request = dhcp4msg(buf=data).decode()
        kind = answers.get(request["options"].get("message_type"))
        if kind is None:
            continue
        reply = dhcp4msg({
            "op": 2, "xid": request["xid"], "flags": request["flags"], "yiaddr": str(address.ip),
            "siaddr": server, "chaddr": request["chaddr"],
            "options": {
                "message_type": kind, "server_id": server, "lease_time": int(lease_s),
                "renewal_time": int(t1), "rebinding_time": int(t2),
                "subnet_mask": str(address.netmask), "router": [router],
            },
        })
        sock.sendto(reply.encode().buf, ("255.255.255.255", 68))
        print(kind.name, request["chaddr"], flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
