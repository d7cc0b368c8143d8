"""Who a visitor is: their address, believed from trusted proxies only.

A proxy appends the address it received a request from to `X-Forwarded-For`,
so the left-most entries are whatever the client sent and prove nothing. As
uvicorn's `ProxyHeadersMiddleware` does, the visitor is found by walking the
header from the right: each hop added by a trusted proxy is skipped, and the
first address that is not a trusted proxy is the visitor. A connection that does
not come from a trusted proxy is taken as it is, header or not.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class TrustedProxies:
    networks: tuple[Network, ...]

    @classmethod
    def of(cls, entries: Iterable[str]) -> TrustedProxies:
        """From addresses and networks ("127.0.0.1", "10.0.0.0/8"). Raises ValueError
        naming an entry that is neither."""
        networks = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                raise ValueError(
                    f"'{entry.strip()}' is not an address or network (e.g. 10.0.0.0/8)"
                ) from None
        return cls(tuple(networks))

    def trusts(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def visitor(self, client_host: str | None, headers: Mapping[str, str]) -> str:
        """The address a call is counted against (its share of capacity, its budget)."""
        host = client_host or "unknown"
        if not self.trusts(host):
            return host
        hops = [hop.strip() for hop in headers.get("x-forwarded-for", "").split(",")]
        for hop in reversed([hop for hop in hops if hop]):
            if not self.trusts(hop):
                return hop
        # Every hop is a trusted proxy (or there is no header): the nearest one it is.
        return hops[0] if hops and hops[0] else host
