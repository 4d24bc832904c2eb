"""The domain check: DMARC, SPF, DKIM keys and MX, each with its findings."""
