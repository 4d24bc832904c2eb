"""DNS plumbing: the one resolver path, domain-name input, the Public Suffix List, DNS entries."""

import dns._features

# dmarcbot asks over UDP and TCP only (Do53), never DNS over HTTPS. When httpx2, httpcore2 and h2
# are installed (checkdmarc requires dnspython[doh], so they always are), dnspython imports them
# with dns.query: about a quarter of a second at the start of every command, for nothing. Saying
# the feature is absent before dns.query is first imported (by handlers.dns.resolver, below this
# package) skips them; `force` is dnspython's own switch for this.
dns._features.force("doh", False)
