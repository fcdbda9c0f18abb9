"""Hashing IDs to Curve25519: RFC 9380 test vectors and curve membership."""

from __future__ import annotations

import gmpy2
import pytest

from vfl.psi.hash_to_curve import DST, P, encode_to_curve, hash_to_field, map_to_curve, u_from_bytes

#: RFC 9380, appendix J.7.1 (curve25519_XMD:SHA-512_ELL2_NU_): message, u[0],
#: Q.x = map_to_curve(u[0]) and P.x = clear_cofactor(Q) = [8]Q.
RFC_DST = b"QUUX-V01-CS02-with-curve25519_XMD:SHA-512_ELL2_NU_"
RFC_VECTORS = [
    ("", "608d892b641f0328523802a6603427c26e55e6f27e71a91a478148d45b5093cd",
     "51125222da5e763d97f3c10fcc92ea6860b9ccbbd2eb1285728f566721c1e65b",
     "1bb913f0c9daefa0b3375378ffa534bda5526c97391952a7789eb976edfe4d08"),
    ("abc", "46f5b22494bfeaa7f232cc8d054be68561af50230234d7d1d63d1d9abeca8da5",
     "7d56d1e08cb0ccb92baf069c18c49bb5a0dcd927eff8dcf75ca921ef7f3e6eeb",
     "7c22950b7d900fa866334262fcaea47a441a578df43b894b4625c9b450f9a026"),
    ("abcdef0123456789", "235fe40c443766ce7e18111c33862d66c3b33267efa50d50f9e8e5d252a40aaa",
     "3fbe66b9c9883d79e8407150e7c2a1c8680bee496c62fabe4619a72b3cabe90f",
     "31ad08a8b0deeb2a4d8b0206ca25f567ab4e042746f792f4b7973f3ae2096c52"),
    ("q128_" + "q" * 128, "001e92a544463bda9bd04ddbe3d6eed248f82de32f522669efc5ddce95f46f5b",
     "227e0bb89de700385d19ec40e857db6e6a3e634b1c32962f370d26f84ff19683",
     "027877759d155b1997d0d84683a313eb78bdb493271d935b622900459d52ceaa"),
    ("a512_" + "a" * 512, "1a68a1af9f663592291af987203393f707305c7bac9c8d63d6a729bdc553dc19",
     "3bcd651ee54d5f7b6013898aab251ee8ecc0688166fce6e9548d38472f6bd196",
     "5fd892c0958d1a75f54c3182a18d286efab784e774d1e017ba2fb252998b5dc1"),
]


def ladder(k: int, u: int) -> int:
    """u-coordinate of [k]P by the Montgomery ladder (RFC 7748), unclamped, for tests."""
    x1, x2, z2, x3, z3 = u, 1, 0, u, 1
    for bit in reversed(range(k.bit_length())):
        if (k >> bit) & 1:
            x2, x3, z2, z3 = x3, x2, z3, z2
        a, b = (x2 + z2) % P, (x2 - z2) % P
        c, d = (x3 + z3) % P, (x3 - z3) % P
        aa, bb = a * a % P, b * b % P
        e = (aa - bb) % P
        da, cb = d * a % P, c * b % P
        x3, z3 = (da + cb) ** 2 % P, x1 * (da - cb) ** 2 % P
        x2, z2 = aa * bb % P, e * (aa + 121665 * e) % P
        if (k >> bit) & 1:
            x2, x3, z2, z3 = x3, x2, z3, z2
    return x2 * pow(z2, P - 2, P) % P


def on_curve(u: int) -> bool:
    return gmpy2.legendre((u * u * u + 486662 * u * u + u) % P, P) != -1


@pytest.mark.parametrize("msg, u0, qx, px", RFC_VECTORS)
def test_rfc9380_vectors(msg, u0, qx, px):
    u = hash_to_field(msg.encode(), RFC_DST)
    assert u == int(u0, 16)
    assert map_to_curve(u) == int(qx, 16)
    assert ladder(8, int(qx, 16)) == int(px, 16)
    # The batched encoder used by the protocol gives the same point.
    assert u_from_bytes(encode_to_curve([msg], RFC_DST)) == int(qx, 16)


def test_batch_matches_single_and_lands_on_the_curve():
    ids = [f"id-{i}" for i in range(300)] + ["Zoë", "北京", "😀", ""]
    encoded = encode_to_curve(ids)
    assert len(encoded) == 32 * len(ids)
    for k, text in enumerate(ids):
        u = u_from_bytes(encoded[32 * k:32 * k + 32])
        assert u == map_to_curve(hash_to_field(text.encode("utf-8"), DST))
        assert u < P and on_curve(u)
    assert len({encoded[i:i + 32] for i in range(0, len(encoded), 32)}) == len(ids)


def test_empty_batch():
    assert encode_to_curve([]) == b""
