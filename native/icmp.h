// ICMP destination-unreachable messages about TCP segments (RFC 792: the
// quoted IP header and the first 8 bytes of the segment), and their ICMPv6
// counterparts (RFC 4443: destination unreachable and packet too big). A
// serving host answers clients with its entry host's address, so the errors
// about those answers ("fragmentation needed" and "packet too big" above all:
// path MTU discovery) reach the entry host; it finds the flow from the quoted
// header and hands the error on to the serving host, which puts the entry
// host's address back.
#pragma once
#include <cstddef>
#include <cstdint>

#include "ip6.h"

namespace dpr {

constexpr uint8_t kIcmpDestUnreachable = 3;
constexpr uint8_t kIcmp6DestUnreachable = 1;
constexpr uint8_t kIcmp6PacketTooBig = 2;

// `Addr`: uint32_t (ICMP over IPv4) or Ip6 (ICMPv6).
template <typename Addr>
struct BasicIcmpError {
  uint8_t* ip = nullptr;    // outer IP header
  uint8_t* icmp = nullptr;  // the ICMP header
  size_t ipHeaderLength = 0;
  Addr saddr{};  // outer, network order
  Addr daddr{};
  uint8_t ttl = 0;  // IPv6: the hop limit
  uint8_t type = 0;
  uint8_t code = 0;
  // The quoted segment: one a host sent (from a service address to a client).
  Addr innerSaddr{};  // network order
  Addr innerDaddr{};
  uint16_t innerSport = 0;  // host order
  uint16_t innerDport = 0;
};
using IcmpError = BasicIcmpError<uint32_t>;
using Icmp6Error = BasicIcmpError<Ip6>;

// True for a well-formed IPv4 ICMP destination-unreachable message that
// quotes an IPv4 TCP header with its ports; every length is checked first.
bool ParseIcmpError(uint8_t* buf, size_t len, IcmpError* out);
// True for a well-formed ICMPv6 destination-unreachable or packet-too-big
// message (extension headers skipped on both the outer and the quoted
// packet) that quotes an IPv6 TCP header with its ports.
bool ParseIcmpError(uint8_t* buf, size_t len, Icmp6Error* out);

// Points the outer header somewhere else. IPv4: incremental IP header
// checksum (the ICMP checksum covers only the message). IPv6: the ICMPv6
// checksum, whose pseudo-header holds the outer destination.
void SetIcmpDestination(IcmpError* m, uint32_t daddr);
void SetIcmpDestination(Icmp6Error* m, const Ip6& daddr);

}  // namespace dpr
