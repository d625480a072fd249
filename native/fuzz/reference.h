// A second, byte-by-byte implementation of what the fuzzer holds the engine
// to: checksums, the packet layout, the parse result packet.h documents, and
// the ICMP errors the engine handles (icmp.h), restated check by check from
// the RFCs and the headers' comments, not from the engine's code.
#pragma once
#include <cstddef>
#include <cstdint>
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

}  // namespace ref
