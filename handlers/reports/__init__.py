"""DMARC aggregate reports: unpacking and streaming parsing, bounded."""
