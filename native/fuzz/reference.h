// A second, byte-by-byte implementation of what the fuzzer holds the engine
// to: checksums, the packet layout, the parse result packet.h documents, and
// the ICMP errors the engine handles (icmp.h), restated check by check from
// the RFCs and the headers' comments, not from the engine's code. IPv4 first
// (RFC 791, 792, 793), then IPv6 (RFC 8200, 4443).
#pragma once
#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <cstring>

#include "../packet.h"

namespace ref {

inline uint16_t Load16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

inline void Put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

// ---- Checksums: big-endian words, byte by byte. ----

inline uint32_t SumBytes(const uint8_t* p, size_t n, uint32_t sum) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += (uint32_t{p[i]} << 8) | p[i + 1];
  if (n & 1) sum += uint32_t{p[n - 1]} << 8;
  return sum;
}

inline uint16_t Fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// One's-complement values are equal modulo 0xffff (0 and 0xffff are both zero).
inline bool SameModOnes(uint16_t a, uint16_t b) { return a % 0xffff == b % 0xffff; }

// ---- Layout. ----

struct Layout {
  bool ipHeader = false;  // a whole IPv4 header is present
  bool tcp = false;       // and a whole, unfragmented TCP segment
  bool icmp = false;      // or a whole, unfragmented ICMP message (8 bytes at least)
  size_t ihl = 0;
  size_t total = 0;
};

inline Layout Look(const uint8_t* b, size_t len) {
  Layout l;
  if (len < 20 || (b[0] >> 4) != 4) return l;
  l.ihl = size_t{b[0] & 0x0fu} * 4;
  if (l.ihl < 20 || l.ihl > len) return l;
  l.ipHeader = true;
  l.total = Load16(b + 2);
  const bool whole = (Load16(b + 6) & 0x3fff) == 0 && l.total <= len;
  l.tcp = whole && b[9] == 6 && l.total >= l.ihl + 20;
  l.icmp = whole && b[9] == 1 && l.total >= l.ihl + 8;
  return l;
}

// The parse result of ParseTcp4Headers (ParseTcp4 when wire == len).
inline dpr::ParseResult Classify(const uint8_t* b, size_t len, size_t wire) {
  using R = dpr::ParseResult;
  if (len < 20) return R::kTruncatedIp;
  if ((b[0] >> 4) != 4) return R::kNotIpv4;
  const size_t ihl = size_t{b[0] & 0x0fu} * 4;
  if (ihl < 20 || ihl > len) return R::kBadIhl;
  const size_t total = Load16(b + 2);
  if (total < ihl) return R::kBadTotalLength;
  if (total > wire) return R::kTruncatedIp;
  if ((Load16(b + 6) & 0x3fff) != 0) return R::kFragment;
  if (b[9] != 6) return R::kNotTcp;
  if (total - ihl < 20 || ihl + 20 > len) return R::kTruncatedTcp;
  const size_t doff = static_cast<size_t>(b[ihl + 12] >> 4) * 4;
  if (doff < 20 || doff > total - ihl || ihl + doff > len) return R::kBadTcpOffset;
  return R::kOk;
}

// ---- ICMP destination unreachable quoting a TCP segment (RFC 792). ----

struct Quote {
  bool ok = false;
  uint32_t saddr = 0, daddr = 0;  // the quoted segment's, network order
  uint16_t sport = 0, dport = 0;
};

inline Quote LookIcmp(const uint8_t* b, size_t len) {
  Quote q;
  const Layout l = Look(b, len);
  if (!l.icmp || b[l.ihl] != 3) return q;
  const uint8_t* in = b + l.ihl + 8;
  const size_t inLen = l.total - l.ihl - 8;
  if (inLen < 20 || (in[0] >> 4) != 4) return q;
  const size_t inIhl = size_t{in[0] & 0x0fu} * 4;
  if (inIhl < 20 || inLen < inIhl + 8 || in[9] != 6 || (Load16(in + 6) & 0x1fff) != 0) return q;
  q.ok = true;
  std::memcpy(&q.saddr, in + 12, 4);
  std::memcpy(&q.daddr, in + 16, 4);
  q.sport = Load16(in + inIhl);
  q.dport = Load16(in + inIhl + 2);
  return q;
}

// ---- Residuals: the folded sum over a checksummed region including its
// field, 0xffff when the checksum is right. ----

inline uint32_t PseudoSum(const uint8_t* b, const Layout& l) {
  return SumBytes(b + 12, 8, 6 + static_cast<uint32_t>(l.total - l.ihl));
}
inline uint16_t IpResidual(const uint8_t* b, const Layout& l) { return Fold(SumBytes(b, l.ihl, 0)); }
inline uint16_t TcpResidual(const uint8_t* b, const Layout& l) {
  return Fold(SumBytes(b + l.ihl, l.total - l.ihl, PseudoSum(b, l)));
}
inline uint16_t IcmpResidual(const uint8_t* b, const Layout& l) { return Fold(SumBytes(b + l.ihl, l.total - l.ihl, 0)); }

// Writes valid sums; with csumNotReady the TCP field gets what Linux leaves
// for CHECKSUM_PARTIAL: the folded pseudo-header sum, not complemented.
inline void FixChecksums(uint8_t* b, size_t len, bool csumNotReady) {
  const Layout l = Look(b, len);
  if (!l.ipHeader) return;
  Put16(b + 10, 0);
  Put16(b + 10, static_cast<uint16_t>(~IpResidual(b, l)));
  if (l.icmp) {
    Put16(b + l.ihl + 2, 0);
    Put16(b + l.ihl + 2, static_cast<uint16_t>(~IcmpResidual(b, l)));
  }
  if (!l.tcp) return;
  uint8_t* field = b + l.ihl + 16;
  Put16(field, 0);
  Put16(field, csumNotReady ? Fold(PseudoSum(b, l)) : static_cast<uint16_t>(~TcpResidual(b, l)));
}

// ---- IPv6 (RFC 8200): a 40-byte header, then a chain of extension headers.

constexpr size_t kIp6Header = 40;
constexpr uint8_t kNhHopByHop = 0, kNhTcp = 6, kNhRouting = 43, kNhFragment = 44, kNhIcmp6 = 58, kNhDestOpts = 60;

// Where a chain of extension headers leads, walked as packet.h promises:
// hop-by-hop (only first: RFC 8200 4.1), routing and destination options are skipped (each is
// (Hdr Ext Len + 1) * 8 bytes, RFC 8200 4.3-4.6), a routing header with
// segments left (byte 3) means the packet is not at its last stop yet, a
// fragment header ends the walk as a fragment, at most kMaxIpv6Ext headers
// are followed, and every header lies within the first `within` bytes.
struct Chain {
  dpr::ParseResult result = dpr::ParseResult::kOk;
  size_t upper = 0;   // offset of the upper-layer header
  uint8_t proto = 0;  // its protocol
};

inline Chain WalkChain(const uint8_t* b, size_t within, uint8_t next, size_t at) {
  using R = dpr::ParseResult;
  Chain c;
  int followed = 0;
  for (;;) {
    if (next == kNhFragment) {
      c.result = R::kFragment;
      return c;
    }
    if (next != kNhHopByHop && next != kNhRouting && next != kNhDestOpts) break;
    if (followed == dpr::kMaxIpv6Ext || within < at + 8 || within - at < (size_t{b[at + 1]} + 1) * 8 ||
        (next == kNhRouting && b[at + 3] != 0) || (next == kNhHopByHop && followed > 0)) {
      c.result = R::kBadIpv6Ext;
      return c;
    }
    next = b[at];
    at += (size_t{b[at + 1]} + 1) * 8;
    ++followed;
  }
  c.upper = at;
  c.proto = next;
  return c;
}

struct Layout6 {
  bool ipHeader = false;  // a whole IPv6 header is present
  bool tcp = false;       // a whole TCP segment after a chain the data path follows
  bool icmp = false;      // or a whole ICMPv6 message (8 bytes at least)
  size_t upper = 0;       // where it starts
  size_t total = 0;       // 40 + payload length
};

inline Layout6 Look6(const uint8_t* b, size_t len) {
  Layout6 l;
  if (len < kIp6Header || (b[0] >> 4) != 6) return l;
  l.ipHeader = true;
  l.total = kIp6Header + Load16(b + 4);
  if (l.total == kIp6Header || l.total > len) return l;
  const Chain c = WalkChain(b, l.total, b[6], kIp6Header);
  if (c.result != dpr::ParseResult::kOk) return l;
  l.upper = c.upper;
  l.tcp = c.proto == kNhTcp && l.total - c.upper >= 20;
  l.icmp = c.proto == kNhIcmp6 && l.total - c.upper >= 8;
  return l;
}

// The parse result of ParseTcp6Headers (ParseTcp6 when wire == len), as
// packet.h states it: kTruncatedIpv6 for less than a header, a payload
// length of 0 (jumbogram) or one beyond the packet's real length; the chain
// as above within the datagram (and the copy); then TCP as for IPv4.
inline dpr::ParseResult Classify6(const uint8_t* b, size_t len, size_t wire) {
  using R = dpr::ParseResult;
  if (len < kIp6Header) return R::kTruncatedIpv6;
  if ((b[0] >> 4) != 6) return R::kNotIpv4;
  const size_t payload = Load16(b + 4);
  const size_t total = kIp6Header + payload;
  if (payload == 0 || total > wire) return R::kTruncatedIpv6;
  const size_t within = std::min(total, len);
  const Chain c = WalkChain(b, within, b[6], kIp6Header);
  if (c.result != R::kOk) return c.result;
  if (c.proto != kNhTcp) return R::kNotTcp;
  if (total - c.upper < 20 || within < c.upper + 20) return R::kTruncatedTcp;
  const size_t doff = static_cast<size_t>(b[c.upper + 12] >> 4) * 4;
  if (doff < 20 || doff > total - c.upper || within < c.upper + doff) return R::kBadTcpOffset;
  return R::kOk;
}

// ICMPv6 destination unreachable (type 1) or packet too big (type 2): after
// the 8-byte header, as much of the invoking packet as fits (RFC 4443 2.4,
// 3.1, 3.2); it must quote an IPv6 TCP segment through the same kind of
// chain, with its ports.
struct Quote6 {
  bool ok = false;
  dpr::Ip6 saddr, daddr;  // the quoted segment's
  uint16_t sport = 0, dport = 0;
};

inline Quote6 LookIcmp6(const uint8_t* b, size_t len) {
  Quote6 q;
  const Layout6 l = Look6(b, len);
  if (!l.icmp || (b[l.upper] != 1 && b[l.upper] != 2)) return q;
  const uint8_t* in = b + l.upper + 8;
  const size_t inLen = l.total - l.upper - 8;
  if (inLen < kIp6Header || (in[0] >> 4) != 6) return q;
  const Chain c = WalkChain(in, inLen, in[6], kIp6Header);
  if (c.result != dpr::ParseResult::kOk || c.proto != kNhTcp || inLen < c.upper + 8) return q;
  q.ok = true;
  std::memcpy(q.saddr.b, in + 8, 16);
  std::memcpy(q.daddr.b, in + 24, 16);
  q.sport = Load16(in + c.upper);
  q.dport = Load16(in + c.upper + 2);
  return q;
}

// RFC 8200 8.1: both addresses, the upper-layer length as 32 bits, three
// zero bytes and the next header (the final destination is the header's:
// no routing header with segments left gets this far).
inline uint32_t PseudoSum6(const uint8_t* b, const Layout6& l, uint8_t proto) {
  const uint32_t upperLen = static_cast<uint32_t>(l.total - l.upper);
  return SumBytes(b + 8, 32, (upperLen >> 16) + (upperLen & 0xffff) + proto);
}
inline uint16_t Residual6(const uint8_t* b, const Layout6& l, uint8_t proto) {
  return Fold(SumBytes(b + l.upper, l.total - l.upper, PseudoSum6(b, l, proto)));
}
inline uint16_t Tcp6Residual(const uint8_t* b, const Layout6& l) { return Residual6(b, l, kNhTcp); }
// ICMPv6, unlike ICMP, covers a pseudo-header (RFC 4443 2.3).
inline uint16_t Icmp6Residual(const uint8_t* b, const Layout6& l) { return Residual6(b, l, kNhIcmp6); }

// As FixChecksums, for IPv6 (no header checksum).
inline void FixChecksums6(uint8_t* b, size_t len, bool csumNotReady) {
  const Layout6 l = Look6(b, len);
  if (l.icmp) {
    Put16(b + l.upper + 2, 0);
    Put16(b + l.upper + 2, static_cast<uint16_t>(~Icmp6Residual(b, l)));
  }
  if (!l.tcp) return;
  uint8_t* field = b + l.upper + 16;
  Put16(field, 0);
  Put16(field, csumNotReady ? Fold(PseudoSum6(b, l, kNhTcp)) : static_cast<uint16_t>(~Tcp6Residual(b, l)));
}

}  // namespace ref
