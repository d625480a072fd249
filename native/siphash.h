// SipHash-2-4 (Aumasson and Bernstein, 2012): a keyed hash fast enough for
// short inputs, so the flow table's slots and the Maglev slot of a client
// cannot be chosen by someone who does not know the key (issue 11: unkeyed
// hashes let an attacker pick colliding flows offline, and pick its serving
// host). Written from the paper; test/14.siphash holds it to the reference
// vectors.
#pragma once
#include <cstddef>
#include <cstdint>

namespace dpr {

// The 128-bit key as two little-endian 64-bit words (k0 = bytes 0..7).
struct SipKey {
  uint64_t k0 = 0;
  uint64_t k1 = 0;
  bool IsZero() const { return k0 == 0 && k1 == 0; }
};

uint64_t SipHash24(const SipKey& key, const uint8_t* data, size_t len);

// A key from the kernel's random source (getrandom): a fresh one per engine.
SipKey RandomSipKey();

// Reads 16 key bytes in the reference byte order.
SipKey SipKeyFromBytes(const uint8_t bytes[16]);

}  // namespace dpr
