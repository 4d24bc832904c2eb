"""The real-DNS test harness: NSD serving test zones, and a fault-injecting proxy in front of it."""

from tests.dnstest.nsd import NsdServer, find_nsd, free_port
from tests.dnstest.proxy import FAULT_KINDS, FaultProxy
from tests.dnstest.zones import make_zone, txt

__all__ = ["FAULT_KINDS", "FaultProxy", "NsdServer", "find_nsd", "free_port", "make_zone", "txt"]
