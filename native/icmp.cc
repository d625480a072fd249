#include "icmp.h"

#include <cstring>

#include "checksum.h"
#include "packet.h"

namespace dpr {

namespace {

uint16_t Load16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

constexpr size_t kIcmpHeader = 8;
constexpr size_t kQuotedTcpBytes = 8;  // ports and sequence number: all RFC 792 promises

}  // namespace

bool ParseIcmpError(uint8_t* buf, size_t len, IcmpError* out) {
  if (buf == nullptr || len < 20 || (buf[0] >> 4) != 4) return false;
  const size_t ihl = static_cast<size_t>(buf[0] & 0x0f) * 4;
  const size_t total = Load16(buf + 2);
  if (ihl < 20 || total < ihl || total > len) return false;
  if ((Load16(buf + 6) & 0x3fff) != 0 || buf[9] != 1) return false;  // a fragment, or not ICMP
  if (total - ihl < kIcmpHeader) return false;
  const uint8_t* icmp = buf + ihl;
  if (icmp[0] != kIcmpDestUnreachable) return false;
  const uint8_t* inner = icmp + kIcmpHeader;
  const size_t innerLen = total - ihl - kIcmpHeader;
  if (innerLen < 20 || (inner[0] >> 4) != 4) return false;
  const size_t innerIhl = static_cast<size_t>(inner[0] & 0x0f) * 4;
  if (innerIhl < 20 || innerLen < innerIhl + kQuotedTcpBytes) return false;
  if (inner[9] != 6 || (Load16(inner + 6) & 0x1fff) != 0) return false;  // not TCP, or a later fragment
  out->ip = buf;
  out->icmp = buf + ihl;
  out->ipHeaderLength = ihl;
  std::memcpy(&out->saddr, buf + 12, 4);
  std::memcpy(&out->daddr, buf + 16, 4);
  out->ttl = buf[8];
  out->type = icmp[0];
  out->code = icmp[1];
  std::memcpy(&out->innerSaddr, inner + 12, 4);
  std::memcpy(&out->innerDaddr, inner + 16, 4);
  out->innerSport = Load16(inner + innerIhl);
  out->innerDport = Load16(inner + innerIhl + 2);
  return true;
}

bool ParseIcmpError(uint8_t* buf, size_t len, Icmp6Error* out) {
  constexpr size_t kIpv6Header = 40;
  constexpr uint8_t kProtoIcmp6 = 58, kProtoTcp = 6;
  if (buf == nullptr || len < kIpv6Header || (buf[0] >> 4) != 6) return false;
  const size_t total = kIpv6Header + Load16(buf + 4);
  if (total > len || total == kIpv6Header) return false;
  size_t at = kIpv6Header;
  uint8_t proto = 0;
  if (SkipIpv6Ext(buf, total, buf[6], &at, &proto) != ParseResult::kOk || proto != kProtoIcmp6) return false;
  if (total - at < kIcmpHeader) return false;
  uint8_t* icmp = buf + at;
  if (icmp[0] != kIcmp6DestUnreachable && icmp[0] != kIcmp6PacketTooBig) return false;
  const uint8_t* inner = icmp + kIcmpHeader;
  const size_t innerLen = total - at - kIcmpHeader;
  if (innerLen < kIpv6Header || (inner[0] >> 4) != 6) return false;
  size_t innerAt = kIpv6Header;
  uint8_t innerProto = 0;
  // A quoted fragment header: a later fragment has no ports; the first
  // would, but the quote rarely reaches past it. Neither is followed.
  if (SkipIpv6Ext(inner, innerLen, inner[6], &innerAt, &innerProto) != ParseResult::kOk || innerProto != kProtoTcp) return false;
  if (innerLen < innerAt + kQuotedTcpBytes) return false;
  out->ip = buf;
  out->icmp = icmp;
  out->ipHeaderLength = at;
  std::memcpy(out->saddr.b, buf + 8, 16);
  std::memcpy(out->daddr.b, buf + 24, 16);
  out->ttl = buf[7];
  out->type = icmp[0];
  out->code = icmp[1];
  std::memcpy(out->innerSaddr.b, inner + 8, 16);
  std::memcpy(out->innerDaddr.b, inner + 24, 16);
  out->innerSport = Load16(inner + innerAt);
  out->innerDport = Load16(inner + innerAt + 2);
  return true;
}

void SetIcmpDestination(Icmp6Error* m, const Ip6& daddr) {
  ChecksumReplace128(m->icmp + 2, m->daddr, daddr);
  std::memcpy(m->ip + 24, daddr.b, 16);
  m->daddr = daddr;
}

void SetIcmpDestination(IcmpError* m, uint32_t daddr) {
  ChecksumReplace32(m->ip + 10, m->daddr, daddr);
  std::memcpy(m->ip + 16, &daddr, 4);
  m->daddr = daddr;
}

}  // namespace dpr
