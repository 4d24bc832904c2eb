"""DNS plumbing: the one resolver path, domain-name input, the Public Suffix List, DNS entries."""
