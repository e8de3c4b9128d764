"""A routed lab: client -- router -- server namespaces, IPv4 and IPv6, for firewall and NAT tests.

    client  192.0.2.2/24     2001:db8:1::2/64   default route via the router
    router  192.0.2.1/24     2001:db8:1::1/64   (client side)   forwarding on
            198.51.100.1/24  2001:db8:2::1/64   (server side)
    server  198.51.100.2/24  2001:db8:2::2/64   NO route back to the client

The server has no route to the client's network on purpose: a forwarded connection only
completes when the router masquerades it, so SNAT is proven by traffic, and the server's
responder answers with the peer address it saw. Built in about 0.3 s; torn down by the
NetLab that owns the namespaces.
"""

from __future__ import annotations

import subprocess
import sys

from .netlab import NetLab, Netns, short_name

# Answers every GET with the peer address it sees; prints "ready" once listening.
RESPONDER = r"""
import http.server, socket, sys

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.client_address[0].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

class Server(http.server.HTTPServer):
    address_family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET

server = Server((sys.argv[1], int(sys.argv[2])), Handler)
print("ready", flush=True)
server.serve_forever()
"""


class RouterLab:
    CLIENT4, ROUTER_C4, ROUTER_S4, SERVER4 = "192.0.2.2", "192.0.2.1", "198.51.100.1", "198.51.100.2"
    CLIENT6, ROUTER_C6, ROUTER_S6, SERVER6 = "2001:db8:1::2", "2001:db8:1::1", "2001:db8:2::1", "2001:db8:2::2"

    def __init__(self, lab: NetLab) -> None:
        self.client, self.router, self.server = lab.netns("cl"), lab.netns("rt"), lab.netns("sv")
        self.client_if, self.router_c = short_name("lc"), short_name("rc")
        self.router_s, self.server_if = short_name("rs"), short_name("ls")
        lab.veth(self.client, self.client_if, self.router, self.router_c)
        lab.veth(self.router, self.router_s, self.server, self.server_if)
        for ns, dev, v4, v6 in [(self.client, self.client_if, self.CLIENT4, self.CLIENT6),
                                (self.router, self.router_c, self.ROUTER_C4, self.ROUTER_C6),
                                (self.router, self.router_s, self.ROUTER_S4, self.ROUTER_S6),
                                (self.server, self.server_if, self.SERVER4, self.SERVER6)]:
            ns.ip("addr", "add", f"{v4}/24", "dev", dev)
            ns.ip("-6", "addr", "add", f"{v6}/64", "dev", dev, "nodad")
        self.client.ip("route", "add", "default", "via", self.ROUTER_C4)
        self.client.ip("-6", "route", "add", "default", "via", self.ROUTER_C6)
        self.router.sysctl("net.ipv4.ip_forward", "1")
        self.router.sysctl("net.ipv6.conf.all.forwarding", "1")

    def serve(self, ns: Netns, address: str, port: int) -> None:
        """Start the peer-address responder on address:port inside ``ns`` (NetLab stops it)."""
        proc = ns.popen(sys.executable, "-c", RESPONDER, address, str(port), stdout=subprocess.PIPE)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line == b"ready\n", f"responder on {address}:{port} did not start: {line!r}"

    def get(self, host: str, port: int, timeout: float = 3.0) -> str | None:
        """GET http://host:port/ from the client: the body (the peer the server saw), or
        None when the connection failed (refused or timed out)."""
        url = f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"
        done = self.client.exec("curl", "--noproxy", "*", "-sS", "-m", str(timeout), url, check=False,
                                timeout=timeout + 10)
        return done.stdout if done.returncode == 0 else None
