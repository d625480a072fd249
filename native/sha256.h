// SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104) for heartbeats, written
// here so that a keyed MAC of a 32-byte heartbeat is two compressions from
// precomputed pads, with no library set-up per call, and so that the
// heartbeat code builds without Node's bundled OpenSSL (whose symbols only
// resolve inside node: the fuzz target and sanitizer builds link without it).
// Tested against RFC 4231's vectors and Node's crypto (test/25, test/21).
#pragma once
#include <cstddef>
#include <cstdint>

namespace dpr {

struct Sha256State {
  uint32_t h[8];
};

// HMAC-SHA256 with the key's inner and outer pads compressed once.
class HmacSha256 {
 public:
  HmacSha256() = default;
  HmacSha256(const uint8_t* key, size_t keyLength);
  // The MAC of `length` bytes into out[32].
  void Mac(const uint8_t* data, size_t length, uint8_t* out) const;

 private:
  Sha256State inner_{};
  Sha256State outer_{};
};

// Plain SHA-256 of a buffer (for long keys, and for tests).
void Sha256(const uint8_t* data, size_t length, uint8_t* out);

}  // namespace dpr
