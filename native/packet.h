// Parsing of IPv4 + TCP and IPv6 + TCP headers in place. Every length is
// checked against the buffer before it is read; anything the data path should
// not touch is reported by reason so the caller can accept it unchanged and
// count it.
#pragma once
#include <cstddef>
#include <cstdint>

#include "ip6.h"

namespace dpr {

// Why a packet was not parsed as a rewritable TCP segment. Order matters: it is
// the index into the counters and the names exported to TypeScript.
enum class ParseResult : uint8_t {
  kOk = 0,
  kTruncatedIp,    // shorter than an IPv4 header, or than its own total length
  kNotIpv4,        // version field is not 4 (nor 6, where the host has IPv6)
  kBadIhl,         // header length < 20 or beyond the packet
  kBadTotalLength, // total length shorter than the header it declares
  kFragment,       // MF set or offset != 0: ports may be absent
  kNotTcp,         // any other protocol (ICMP, UDP, ...)
  kTruncatedTcp,   // fewer than 20 bytes of TCP header
  kBadTcpOffset,   // data offset < 5 or beyond the segment
  kTruncatedIpv6,  // shorter than an IPv6 header, or than its payload length says (or a jumbogram: length 0)
  kBadIpv6Ext,     // an extension header runs past the packet, or one a TCP segment to us cannot carry
  kCount
};

const char* ParseResultName(ParseResult r);

// TCP flag bits as they sit in byte 13 of the header.
constexpr uint8_t kTcpFin = 0x01;
constexpr uint8_t kTcpSyn = 0x02;
constexpr uint8_t kTcpRst = 0x04;
constexpr uint8_t kTcpAck = 0x10;

// A parsed segment. Addresses stay in network byte order (they are compared and
// copied, never printed here); ports are converted to host order. `Addr`:
// uint32_t (IPv4) or Ip6.
template <typename Addr>
struct BasicTcpPacket {
  uint8_t* ip = nullptr;     // start of the IP header
  size_t ipLength = 0;       // the whole datagram: IPv4 total length, IPv6 40 + payload length (<= buffer length)
  size_t ipHeaderLength = 0; // IPv4: IHL * 4; IPv6: 40 + the extension headers before TCP
  uint8_t* tcp = nullptr;    // start of the TCP header
  Addr saddr{};
  Addr daddr{};
  uint16_t sport = 0;
  uint16_t dport = 0;
  uint8_t flags = 0;
  uint32_t seq = 0;          // host order
  uint32_t ack = 0;          // host order
  size_t tcpHeaderLength = 0; // data offset * 4

  bool IsSyn() const { return (flags & (kTcpSyn | kTcpAck | kTcpRst)) == kTcpSyn; }
  bool Has(uint8_t f) const { return (flags & f) != 0; }
  size_t PayloadLength() const { return ipLength - ipHeaderLength - tcpHeaderLength; }
};

using TcpPacket = BasicTcpPacket<uint32_t>;
using TcpPacket6 = BasicTcpPacket<Ip6>;

ParseResult ParseTcp4(uint8_t* buf, size_t len, TcpPacket* out);

// The same for a packet the queue holds only the first `len` bytes of (its
// real length is `wireLength`, NFQA_CAP_LEN): the headers must lie within
// `len`, the total length is checked against `wireLength`. Nothing may be
// rewritten from such a parse: the rest of the packet is not here.
ParseResult ParseTcp4Headers(uint8_t* buf, size_t len, size_t wireLength, TcpPacket* out);

// IPv6: the extension headers a TCP segment may come with (hop-by-hop, only
// right after the IPv6 header; routing with no segments left; destination
// options) are skipped; a fragment header makes it
// kFragment (ports may be absent, as for IPv4), AH, ESP and anything unknown
// kBadIpv6Ext: not a segment the data path can rewrite (the local stack
// deals with it). At most kMaxIpv6Ext headers are followed.
constexpr int kMaxIpv6Ext = 8;
ParseResult ParseTcp6(uint8_t* buf, size_t len, TcpPacket6* out);
ParseResult ParseTcp6Headers(uint8_t* buf, size_t len, size_t wireLength, TcpPacket6* out);

// Skips IPv6 extension headers from `next` at `at` (of `len` bytes). Returns
// the offset of the upper-layer header with its protocol in *proto, or the
// reason it cannot (kFragment, kBadIpv6Ext). Shared with the ICMPv6 parser.
ParseResult SkipIpv6Ext(const uint8_t* buf, size_t len, uint8_t next, size_t* at, uint8_t* proto);

// Field writers used by the rewrite; they keep no checksum up to date.
void SetDestination(TcpPacket* p, uint32_t daddr, uint16_t dport);
void SetDestination(TcpPacket6* p, const Ip6& daddr, uint16_t dport);

}  // namespace dpr
