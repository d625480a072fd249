// ICMP destination-unreachable messages about TCP segments (RFC 792: the
// quoted IP header and the first 8 bytes of the segment). A serving host
// answers clients with its entry host's address, so the errors about those
// answers ("fragmentation needed" above all: path MTU discovery) reach the
// entry host; it finds the flow from the quoted header and hands the error
// on to the serving host, which puts the entry host's address back.
#pragma once
#include <cstddef>
#include <cstdint>

namespace dpr {

constexpr uint8_t kIcmpDestUnreachable = 3;

struct IcmpError {
  uint8_t* ip = nullptr;  // outer IPv4 header
  size_t ipHeaderLength = 0;
  uint32_t saddr = 0;  // outer, network order
  uint32_t daddr = 0;
  uint8_t ttl = 0;
  uint8_t type = 0;
  uint8_t code = 0;
  // The quoted segment: one a host sent (from a service address to a client).
  uint32_t innerSaddr = 0;  // network order
  uint32_t innerDaddr = 0;
  uint16_t innerSport = 0;  // host order
  uint16_t innerDport = 0;
};

// True for a well-formed IPv4 ICMP destination-unreachable message that
// quotes an IPv4 TCP header with its ports; every length is checked first.
bool ParseIcmpError(uint8_t* buf, size_t len, IcmpError* out);

// Points the outer header somewhere else (incremental IPv4 checksum; the
// ICMP checksum covers only the message, not the outer header).
void SetIcmpDestination(IcmpError* m, uint32_t daddr);

}  // namespace dpr
