"""The net.* methods: networking, as data (names, rights, tiers, params, results)."""

from .types import (
    BOOL, CHANGED, CIDR, COMMENT, COUNT, FAMILY, IFNAME, INT, IP, MAC, MTU, PORT, PORT_RANGE, PROTO, RULE_ID,
    TABLE, TEXT, UINT32, ZONE, array, changed, method, nullable, obj,
)

ADDRESS = obj(family=FAMILY, address=TEXT, prefixlen=INT)
INTERFACE = obj(
    name=TEXT, index=INT, kind=TEXT, mac=nullable(TEXT), mtu=INT, state=TEXT, carrier=BOOL,
    addresses=array(ADDRESS), master=nullable(TEXT),
)
ROUTE = obj(
    dst=TEXT, gateway=nullable(TEXT), dev=nullable(TEXT), metric=INT, protocol=TEXT, scope=TEXT,
    table={"anyOf": [INT, TEXT]}, family=FAMILY,
)
NEIGHBOR = obj(address=TEXT, lladdr=nullable(TEXT), dev=TEXT, state=TEXT, family=FAMILY)
BRIDGE = obj(name=TEXT, ports=array(TEXT), stp=BOOL, vlan_filtering=BOOL, mtu=INT, managed=BOOL)
DRIFT = obj(kind=TEXT, name=TEXT, expected={}, actual={})
CONNTRACK_ENTRY = obj(
    family=FAMILY, proto=TEXT, src=TEXT, dst=TEXT, sport=nullable(INT), dport=nullable(INT),
    reply=obj(src=TEXT, dst=TEXT, sport=nullable(INT), dport=nullable(INT)),
    state=nullable(TEXT), status=array(TEXT), zone=INT, mark=INT, timeout=nullable(INT),
)
NFT_RULE = obj(family=TEXT, table=TEXT, chain=TEXT, handle=INT,
               expr={"type": "string", "description": "the rule in nft syntax, without its comment"},
               comment=nullable(TEXT), id=nullable(TEXT), managed=BOOL)
NAT_ENTRY = obj(id=TEXT, present=BOOL, comment=nullable(TEXT))
TAP = obj(name=TEXT, bridge=TEXT, mac=nullable(TEXT), mtu=nullable(INT), owner_uid=nullable(INT),
          multi_queue=BOOL, state=TEXT, present=BOOL)
ADDED = changed(id=RULE_ID)

MOS = "exists only on MOS nodes (Open vSwitch datapath); a native daemon answers -32010"

# ---------------------------------------------------------------- read
STATUS = method("net.status", "read", "read",
                "Daemon overview: pid, uptime_s, mode (native|proxy), version, hostname, addresses",
                result=obj(pid=INT, uptime_s={"type": "number"}, mode=TEXT, version=TEXT, hostname=TEXT,
                           addresses=array(obj(interface=TEXT, family=FAMILY, address=TEXT, prefixlen=INT))))
CONFIG = method("net.config", "read", "read",
                "Resolved kernel/boot network configuration (kernel cmdline net params, daemon config)",
                result=obj(cmdline=obj(), daemon=obj()))
LEASE = method("net.lease", "read", "read", "DHCPv4, DHCPv6, SLAAC and prefix-delegation state per interface",
               optional={"interface": IFNAME}, result=array(obj(interface=TEXT, dhcp4=nullable(obj()),
                                                                dhcp6=nullable(obj()), slaac=array(obj()))))
PREFIX = method("net.prefix", "read", "read", "Delegated IPv6 prefix state", result=array(obj()))
VLAN = method("net.vlan", "read", "read", "VLAN filtering configuration: VLAN links and bridge VLAN tables",
              result=obj(links=array(obj(name=TEXT, parent=TEXT, id=INT, protocol=TEXT)),
                         bridges=array(obj(bridge=TEXT, ports=array(obj())))))
HEALTH = method("net.health", "read", "read",
                "Structured health check: {status: ok|degraded|failed, checks: [{name, ok, detail}]}",
                result=obj(status={"type": "string", "enum": ["ok", "degraded", "failed"]},
                           checks=array(obj(name=TEXT, ok=BOOL, detail=TEXT))))
VERIFY = method("net.verify", "read", "read",
                "Drift detection: every object the daemon manages (taps, bridges, rules, NAT) compared with "
                "the live kernel; {ok, drift: [{kind, name, expected, actual}]}",
                result=obj(ok=BOOL, drift=array(DRIFT)))
INTERFACES = method("net.interfaces", "read", "read",
                    "Interfaces: name, index, kind, mac, mtu, state, carrier, addresses [{family, address, "
                    "prefixlen}], master (bridge)",
                    optional={"name": IFNAME}, result=array(INTERFACE))
ROUTES = method("net.routes", "read", "read",
                "Kernel routing table: dst, gateway, dev, metric, protocol, scope, table, family",
                optional={"family": FAMILY, "table": TABLE}, result=array(ROUTE))
NEIGHBORS = method("net.neighbors", "read", "read", "ARP/NDP neighbour table: address, lladdr, dev, state",
                   optional={"interface": IFNAME, "family": FAMILY}, result=array(NEIGHBOR))
BRIDGE_LIST = method("net.bridge", "read", "read", "Bridges with their ports, STP and VLAN-filtering state",
                     optional={"name": IFNAME}, result=array(BRIDGE))
FIREWALL = method("net.firewall", "read", "read",
                  "nftables tables, chains and rules (the whole ruleset), marking which the daemon manages",
                  result=obj(tables=array(obj(family=TEXT, name=TEXT, handle=INT, managed=BOOL)),
                             chains=array(obj(family=TEXT, table=TEXT, name=TEXT, handle=INT, type=TEXT, hook=TEXT,
                                              prio=INT, policy=TEXT, managed=BOOL)),
                             rules=array(NFT_RULE)))
DNS = method("net.dns", "read", "read", "Nameservers, search domains and options in effect",
             result=obj(nameservers=array(TEXT), search=array(TEXT), options=array(TEXT), source=TEXT))
SYSCTL = method("net.sysctl", "read", "read", "ip forwarding (v4/v6), proxy_arp and proxy_ndp per interface",
                optional={"interface": IFNAME},
                result=obj(ipv4_forward=BOOL, ipv6_forward=BOOL,
                           interfaces=array(obj(name=TEXT, forwarding=BOOL, proxy_arp=BOOL, proxy_ndp=BOOL))))
CONNTRACK = method("net.conntrack", "read", "read",
                   "nf_conntrack entries: proto, src, dst, sport, dport, reply tuple, state, zone, mark",
                   optional={"zone": ZONE, "limit": {"type": "integer", "minimum": 1, "maximum": 1000000}},
                   result=array(CONNTRACK_ENTRY))
CONNTRACK_STATS = method("net.conntrack.stats", "read", "read", "Conntrack statistics: count, max, per-cpu counters",
                         result=obj(count=COUNT, max=COUNT, cpus=array(obj(cpu=INT))))
NAT_STATUS = method("net.nat.status", "read", "read",
                    "NAT state: boot-time config plus the dynamic DNAT and SNAT rules the daemon manages",
                    result=obj(ipv4_forward=BOOL, ipv6_forward=BOOL, input_policy=TEXT, table=TEXT,
                               table_present=BOOL, dnat=array(NAT_ENTRY), snat=array(NAT_ENTRY)))
VM_LIST = method("net.vm.list", "read", "read",
                 "Managed VM tap interfaces: name, bridge, mac, mtu, state, present-in-kernel", result=array(TAP))
OVS = method("net.ovs", "read", "mos", "Open vSwitch bridges, ports and interfaces (MOS only)", description=MOS)
FLOWS = method("net.flows", "read", "mos", "OpenFlow flow table (MOS only)",
               optional={"bridge": IFNAME}, description=MOS)
DATAPATH = method("net.datapath", "read", "mos", "OVS datapath info and flows (MOS only)", description=MOS)
OVS_CONNTRACK = method("net.ovs.conntrack", "read", "mos", "OVS datapath conntrack entries (MOS only)",
                       optional={"zone": ZONE}, description=MOS)
OVS_CONNTRACK_STATS = method("net.ovs.conntrack.stats", "read", "mos", "OVS conntrack statistics (MOS only)",
                             description=MOS)

# ---------------------------------------------------------------- write
LEASE_RESTART = method("net.lease.restart", "write", "disruptive",
                       "Re-run DHCP (DORA) on an interface and reconfigure its address and routes from the new lease",
                       required={"interface": IFNAME},
                       result=changed(interface=TEXT, address=TEXT, prefixlen=INT, router=nullable(TEXT),
                                      server=TEXT, lease_s=INT))
_ROUTE_PARAMS = {"gateway": IP, "dev": IFNAME, "metric": UINT32, "table": TABLE, "family": FAMILY}
_DST = {"dst": {"anyOf": [CIDR, {"type": "string", "enum": ["default"]}],
                "description": "a destination network in CIDR form, or 'default'"}}
ROUTES_ADD = method("net.routes.add", "write", "shared",
                    "Add a route (dst is a CIDR or 'default'); at least one of gateway/dev",
                    required=_DST, optional=_ROUTE_PARAMS, any_of=[["gateway"], ["dev"]], result=changed())
ROUTES_DELETE = method("net.routes.delete", "write", "shared", "Delete a route",
                       required=_DST, optional=_ROUTE_PARAMS, result=changed())
BRIDGE_ADD = method("net.bridge.add", "write", "scratch", "Create a Linux bridge and bring it up",
                    required={"name": IFNAME}, optional={"stp": BOOL, "mtu": MTU, "vlan_filtering": BOOL},
                    result=changed(name=TEXT))
BRIDGE_DELETE = method("net.bridge.delete", "write", "scratch", "Delete a bridge",
                       required={"name": IFNAME}, result=changed())
BRIDGE_CONNECT = method("net.bridge.connect", "write", "scratch",
                        "Connect two bridges with a veth pair (one end a port of each)",
                        required={"bridge_a": IFNAME, "bridge_b": IFNAME},
                        result=changed(veth_a=TEXT, veth_b=TEXT))
BRIDGE_ADD_PORT = method("net.bridge.add_port", "write", "shared", "Add an interface as a bridge port",
                         required={"bridge": IFNAME, "interface": IFNAME}, result=changed())
BRIDGE_REMOVE_PORT = method("net.bridge.remove_port", "write", "shared", "Remove a port from its bridge",
                            required={"bridge": IFNAME, "interface": IFNAME}, result=changed())
VM_CREATE_TAP = method("net.vm.create_tap", "write", "scratch",
                       "Create a persistent tap device attached to a bridge; recorded and restored on restart",
                       required={"name": IFNAME, "bridge": IFNAME},
                       optional={"mac": MAC, "mtu": MTU, "owner_uid": UINT32, "multi_queue": BOOL},
                       result=changed(name=TEXT, mac=TEXT))
VM_DELETE_TAP = method("net.vm.delete_tap", "write", "scratch", "Delete a managed tap device",
                       required={"name": IFNAME}, result=changed())
FIREWALL_ADD_RULE = method("net.firewall.add_rule", "write", "shared",
                           "Allow inbound traffic to a port (proto tcp|udp) in the daemon's own nftables table; "
                           "returns {id}",
                           required={"port": PORT_RANGE, "proto": PROTO},
                           optional={"source": CIDR, "interface": IFNAME, "family": FAMILY, "comment": COMMENT},
                           result=ADDED)
FIREWALL_REMOVE_RULE = method("net.firewall.remove_rule", "write", "shared",
                              "Remove an input allow rule by the id add_rule returned",
                              required={"id": RULE_ID}, result=changed())
NAT_ADD_DNAT = method("net.nat.add_dnat", "write", "shared",
                      "Add a DNAT port forward (external_port -> internal_address:internal_port); returns {id}",
                      required={"proto": PROTO, "external_port": PORT, "internal_address": IP, "internal_port": PORT},
                      optional={"external_address": IP, "interface": IFNAME, "family": FAMILY, "comment": COMMENT},
                      result=ADDED)
NAT_REMOVE_DNAT = method("net.nat.remove_dnat", "write", "shared", "Remove a DNAT port forward by id",
                         required={"id": RULE_ID}, result=changed())
NAT_ADD_SNAT = method("net.nat.add_snat", "write", "shared",
                      "Add SNAT for a source CIDR leaving out_interface (masquerade when to_address is absent); "
                      "returns {id}",
                      required={"source": CIDR, "out_interface": IFNAME},
                      optional={"to_address": IP, "comment": COMMENT}, result=ADDED)
NAT_REMOVE_SNAT = method("net.nat.remove_snat", "write", "shared", "Remove an SNAT/masquerade rule by id",
                         required={"id": RULE_ID}, result=changed())

# ---------------------------------------------------------------- admin
CONNTRACK_FLUSH = method("net.conntrack.flush", "admin", "disruptive",
                         "Flush kernel conntrack entries (all, or one zone)",
                         optional={"zone": ZONE}, result=changed(flushed=COUNT))
OVS_CONNTRACK_FLUSH = method("net.ovs.conntrack.flush", "admin", "mos", "Flush OVS datapath conntrack (MOS only)",
                             optional={"zone": ZONE}, result=CHANGED, description=MOS)

ALL = (
    STATUS, CONFIG, LEASE, PREFIX, VLAN, HEALTH, VERIFY, INTERFACES, ROUTES, NEIGHBORS, BRIDGE_LIST, FIREWALL,
    DNS, SYSCTL, CONNTRACK, CONNTRACK_STATS, NAT_STATUS, VM_LIST, OVS, FLOWS, DATAPATH, OVS_CONNTRACK,
    OVS_CONNTRACK_STATS, LEASE_RESTART, ROUTES_ADD, ROUTES_DELETE, BRIDGE_ADD, BRIDGE_DELETE, BRIDGE_CONNECT,
    BRIDGE_ADD_PORT, BRIDGE_REMOVE_PORT, VM_CREATE_TAP, VM_DELETE_TAP, FIREWALL_ADD_RULE, FIREWALL_REMOVE_RULE,
    NAT_ADD_DNAT, NAT_REMOVE_DNAT, NAT_ADD_SNAT, NAT_REMOVE_SNAT, CONNTRACK_FLUSH, OVS_CONNTRACK_FLUSH,
)
