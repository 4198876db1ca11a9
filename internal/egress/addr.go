package egress

import "net/netip"

// addrClass is a range of addresses the proxy will not dial by default.
type addrClass struct {
	prefix netip.Prefix
	what   string
	// always: not even allow_private or private_networks open it, because
	// no upstream a rule could mean lives there.
	always bool
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// refusedRanges are the special-purpose ranges (RFC 6890 and successors).
// IPv6 ranges that embed an IPv4 address (6to4, Teredo, NAT64, the
// deprecated IPv4-compatible form) are refused too: the address they lead
// to is not the one that was checked. IPv4-mapped addresses are unmapped
// before the check, so ::ffff:127.0.0.1 is loopback.
var refusedRanges = []addrClass{
	{mustPrefix("0.0.0.0/8"), "unspecified", true},
	{mustPrefix("10.0.0.0/8"), "private", false},
	{mustPrefix("100.64.0.0/10"), "shared (CGNAT)", false},
	{mustPrefix("127.0.0.0/8"), "loopback", false},
	{mustPrefix("169.254.0.0/16"), "link-local (cloud metadata)", false},
	{mustPrefix("172.16.0.0/12"), "private", false},
	{mustPrefix("192.0.0.0/24"), "protocol-assignment", false},
	{mustPrefix("192.0.2.0/24"), "documentation", false},
	{mustPrefix("192.88.99.0/24"), "6to4 relay", false},
	{mustPrefix("192.168.0.0/16"), "private", false},
	{mustPrefix("198.18.0.0/15"), "benchmarking", false},
	{mustPrefix("198.51.100.0/24"), "documentation", false},
	{mustPrefix("203.0.113.0/24"), "documentation", false},
	{mustPrefix("224.0.0.0/4"), "multicast", true},
	{mustPrefix("240.0.0.0/4"), "reserved (broadcast)", true},
	{mustPrefix("::/128"), "unspecified", true},
	{mustPrefix("::1/128"), "loopback", false},
	{mustPrefix("::/96"), "ipv4-compatible", false},
	{mustPrefix("64:ff9b::/96"), "nat64", false},
	{mustPrefix("64:ff9b:1::/48"), "nat64", false},
	{mustPrefix("100::/64"), "discard", false},
	{mustPrefix("2001::/32"), "teredo", false},
	{mustPrefix("2001:2::/48"), "benchmarking", false},
	{mustPrefix("2001:db8::/32"), "documentation", false},
	{mustPrefix("2002::/16"), "6to4", false},
	{mustPrefix("3fff::/20"), "documentation", false},
	{mustPrefix("fc00::/7"), "unique-local", false},
	{mustPrefix("fe80::/10"), "link-local", false},
	{mustPrefix("fec0::/10"), "site-local", false},
	{mustPrefix("ff00::/8"), "multicast", true},
}

// checkAddr says what kind of address ip is when the proxy must not dial
// it, or "" when it may. allowPrivate (the rule's allow_private) and the
// policy's private networks open everything but the always-refused ranges.
func checkAddr(ip netip.Addr, allowPrivate bool, private []netip.Prefix) string {
	ip = ip.WithZone("").Unmap()
	if !ip.IsValid() {
		return "invalid"
	}
	for _, c := range refusedRanges {
		if !c.prefix.Contains(ip) {
			continue
		}
		if c.always || !(allowPrivate || inAny(ip, private)) {
			return c.what
		}
	}
	return ""
}

func inAny(ip netip.Addr, prefixes []netip.Prefix) bool {
	for _, p := range prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
