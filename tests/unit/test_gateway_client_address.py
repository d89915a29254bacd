"""Which address a request came from, behind zero, one or several trusted proxies."""

import ipaddress

from services.gateway.client_address import client_address, limit_key

PROXIES = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")]


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert client_address("203.0.113.5", ["1.2.3.4"], []) == "203.0.113.5"
    assert client_address("10.0.0.7", ["1.2.3.4"], []) == "10.0.0.7"


def test_a_connection_from_an_untrusted_peer_is_the_client_whatever_it_claims() -> None:
    assert client_address("203.0.113.5", ["1.2.3.4"], PROXIES) == "203.0.113.5"


def test_behind_proxies_the_right_most_untrusted_hop_is_the_client() -> None:
    assert client_address("10.0.0.7", ["203.0.113.5"], PROXIES) == "203.0.113.5"
    # What the client wrote itself sits left of what the proxies appended.
    assert client_address("10.0.0.7", ["1.2.3.4, 203.0.113.5, 10.9.9.9"], PROXIES) == "203.0.113.5"
    assert client_address("10.0.0.7", ["1.2.3.4", "203.0.113.5, 10.9.9.9"], PROXIES) == "203.0.113.5"
    assert client_address("fd00::1", ["2001:db8::5, fd00::2"], PROXIES) == "2001:db8::5"


def test_odd_chains() -> None:
    assert client_address("10.0.0.7", [], PROXIES) == "10.0.0.7"  # a proxy's own request
    assert client_address("10.0.0.7", ["10.1.1.1, 10.2.2.2"], PROXIES) == "10.1.1.1"
    # An unreadable hop: the proxy right of it is the last one that vouched for anything.
    assert client_address("10.0.0.7", ["1.2.3.4, garbage, 10.2.2.2"], PROXIES) == "10.2.2.2"
    assert client_address(None, ["1.2.3.4"], PROXIES) == "unknown"


def test_limits_count_an_ipv6_host_by_its_64_and_ipv4_by_its_address() -> None:
    # One host may take any address of its /64: all of them are one client to the limits.
    assert (
        limit_key("2001:db8:1:2::1") == limit_key("2001:db8:1:2:ffff:1234:5678:9abc") == "2001:db8:1:2::/64"
    )
    assert limit_key("2001:db8:1:3::1") != limit_key("2001:db8:1:2::1")
    assert limit_key("[2001:db8:1:2::7]") == "2001:db8:1:2::/64"
    assert limit_key("203.0.113.5") == "203.0.113.5" != limit_key("203.0.113.6")
    assert limit_key("::ffff:203.0.113.5") == "203.0.113.5"  # IPv4 written in IPv6 is still that address
    assert limit_key("unknown") == "unknown"
