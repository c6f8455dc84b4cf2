// Package esp encapsulates and decapsulates ESP packets (RFC 4303) as pure
// functions over byte slices: no allocation, no locks, no I/O, so they are
// easy to test, fuzz and benchmark, and every worker calls them directly.
//
// What it implements:
//   - tunnel mode (4in4, 6in6, 4in6, 6in4) and transport mode over IPv4 and
//     IPv6 (RFC 4303 §3.1);
//   - UDP encapsulation of ESP (RFC 3948), with the non-ESP marker told
//     apart from ESP on receive;
//   - AES-GCM with 8, 12 and 16-byte ICVs (RFC 4106), ChaCha20-Poly1305
//     (RFC 7634), AES-CBC with HMAC-SHA-256-128/384-192/512-256 (RFC 3602,
//     RFC 4868) and NULL encryption with HMAC (RFC 2410);
//   - padding to 4 bytes or the cipher block (RFC 4303 §2.4), checked
//     byte by byte on receive (1, 2, 3, …);
//   - extended sequence numbers: the high 32 bits in the AAD (RFC 4106 §5,
//     RFC 7634 §2.1) or after the payload in the ICV input (RFC 4303
//     §2.2.1), and the anti-replay window of the SA (RFC 4303 §3.4.3):
//     checked before any decryption, updated only after the ICV verified;
//   - the outer header: TTL from the SA, DSCP copied, ECN by RFC 6040
//     normal mode on both sides, DF copied, set or cleared (RFC 4301 §8.1).
//
// Every way a packet can be wrong comes back as a distinct sad.Reason.
//
// Buffers. Encap takes the inner packet with spare capacity behind it
// (TailRoom) and writes the ESP packet either in place, starting HeadRoom
// bytes before the inner packet in the same buffer, or into a separate
// buffer (the crossing from one UMEM to another): the AEAD's output is the
// copy. Decap opens in place.
package esp
