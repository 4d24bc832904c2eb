"""Key material for tests: DKIM public keys as a p= tag carries them, and private keys to sign."""

from __future__ import annotations

import base64
import secrets
from functools import lru_cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa


def spki(public_key: rsa.RSAPublicKey) -> str:
    """Base64 SubjectPublicKeyInfo: the form of a DKIM record's p= tag (RFC 6376 §3.6.1)."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")


@lru_cache(maxsize=16)
def rsa_public_key(bits: int = 2048, tag: str = "") -> str:
    """A fresh RSA public key of `bits` as p= carries it; `tag` makes distinct keys. cryptography
    refuses to generate keys under 1024 bits, so shorter ones are built from a random odd modulus
    of that length: DNS and the key reader only see the public numbers."""
    if bits >= 1024:
        return spki(rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key())
    modulus = (1 << (bits - 1)) | secrets.randbits(bits - 1) | 1
    return spki(rsa.RSAPublicNumbers(65537, modulus).public_key())


@lru_cache(maxsize=16)
def rsa_public_numbers(bits: int, exponent: int = 65537) -> str:
    """p= for an RSA public key of exactly `bits` with `exponent`, from a random odd modulus: what an
    attacker publishes to make verification expensive. Signatures against it only ever fail."""
    modulus = (1 << (bits - 1)) | secrets.randbits(bits - 1) | 1
    return spki(rsa.RSAPublicNumbers(exponent, modulus).public_key())


@lru_cache(maxsize=8)
def rsa_key(bits: int = 2048, tag: str = "") -> tuple[bytes, str]:
    """(private key PEM for dkim.sign, base64 public key for p=); `tag` makes distinct keys."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem, spki(private.public_key())


@lru_cache(maxsize=4)
def ed25519_key(tag: str = "") -> tuple[bytes, str]:
    """(base64 seed for dkim.sign with ed25519-sha256, base64 raw public key for p=)."""
    private = ed25519.Ed25519PrivateKey.generate()
    seed = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(seed), base64.b64encode(public).decode("ascii")
