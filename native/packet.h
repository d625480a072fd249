// Parsing of IPv4 + TCP headers in place. Every length is checked against the
// buffer before it is read; anything the data path should not touch is reported
// by reason so the caller can accept it unchanged and count it.
#pragma once
#include <cstddef>
#include <cstdint>

namespace dpr {

// Why a packet was not parsed as a rewritable TCP segment. Order matters: it is
// the index into the counters and the names exported to TypeScript.
enum class ParseResult : uint8_t {
  kOk = 0,
  kTruncatedIp,    // shorter than an IPv4 header, or than its own total length
  kNotIpv4,        // version field is not 4
  kBadIhl,         // header length < 20 or beyond the packet
  kBadTotalLength, // total length shorter than the header it declares
  kFragment,       // MF set or offset != 0: ports may be absent
  kNotTcp,         // any other protocol (ICMP, UDP, ...)
  kTruncatedTcp,   // fewer than 20 bytes of TCP header
  kBadTcpOffset,   // data offset < 5 or beyond the segment
  kCount
};

const char* ParseResultName(ParseResult r);

// TCP flag bits as they sit in byte 13 of the header.
constexpr uint8_t kTcpFin = 0x01;
constexpr uint8_t kTcpSyn = 0x02;
constexpr uint8_t kTcpRst = 0x04;
constexpr uint8_t kTcpAck = 0x10;

// A parsed segment. Addresses stay in network byte order (they are compared and
// copied, never printed here); ports are converted to host order.
struct TcpPacket {
  uint8_t* ip = nullptr;     // start of the IPv4 header
  size_t ipLength = 0;       // IPv4 total length (<= buffer length)
  size_t ipHeaderLength = 0; // IHL * 4
  uint8_t* tcp = nullptr;    // start of the TCP header
  uint32_t saddr = 0;
  uint32_t daddr = 0;
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

ParseResult ParseTcp4(uint8_t* buf, size_t len, TcpPacket* out);

// The same for a packet the queue holds only the first `len` bytes of (its
// real length is `wireLength`, NFQA_CAP_LEN): the headers must lie within
// `len`, the total length is checked against `wireLength`. Nothing may be
// rewritten from such a parse: the rest of the packet is not here.
ParseResult ParseTcp4Headers(uint8_t* buf, size_t len, size_t wireLength, TcpPacket* out);

// Field writers used by the rewrite; they keep no checksum up to date.
void SetDestination(TcpPacket* p, uint32_t daddr, uint16_t dport);

}  // namespace dpr
