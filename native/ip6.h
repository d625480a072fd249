// An IPv6 address as the packet holds it (16 bytes, network order), and what
// the engine asks of any address type: equality and "no address" (all zero;
// IPv4 addresses are plain uint32_t in network order, 0 for none).
#pragma once
#include <cstdint>
#include <cstring>

namespace dpr {

struct Ip6 {
  uint8_t b[16] = {};

  bool operator==(const Ip6& o) const { return std::memcmp(b, o.b, 16) == 0; }
  bool operator!=(const Ip6& o) const { return !(*this == o); }
};
static_assert(sizeof(Ip6) == 16, "Ip6 is the 16 address bytes and nothing else");

inline bool IsNoAddress(uint32_t a) { return a == 0; }
inline bool IsNoAddress(const Ip6& a) { return a == Ip6{}; }

}  // namespace dpr
