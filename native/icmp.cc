#include "icmp.h"

#include <cstring>

#include "checksum.h"

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

void SetIcmpDestination(IcmpError* m, uint32_t daddr) {
  ChecksumReplace32(m->ip + 10, m->daddr, daddr);
  std::memcpy(m->ip + 16, &daddr, 4);
  m->daddr = daddr;
}

}  // namespace dpr
