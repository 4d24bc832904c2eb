"""One message's DMARC verdict: parsing, DKIM verification, SPF evaluation, alignment, causes."""
