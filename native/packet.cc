#include "packet.h"

#include <cstring>

namespace dpr {

namespace {

uint16_t Load16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

uint32_t Load32(const uint8_t* p) { return static_cast<uint32_t>(Load16(p)) << 16 | Load16(p + 2); }

void Store16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

}  // namespace

const char* ParseResultName(ParseResult r) {
  switch (r) {
    case ParseResult::kOk: return "ok";
    case ParseResult::kTruncatedIp: return "truncated_ip";
    case ParseResult::kNotIpv4: return "not_ipv4";
    case ParseResult::kBadIhl: return "bad_ihl";
    case ParseResult::kBadTotalLength: return "bad_total_length";
    case ParseResult::kFragment: return "fragment";
    case ParseResult::kNotTcp: return "not_tcp";
    case ParseResult::kTruncatedTcp: return "truncated_tcp";
    case ParseResult::kBadTcpOffset: return "bad_tcp_offset";
    case ParseResult::kTruncatedIpv6: return "truncated_ipv6";
    case ParseResult::kBadIpv6Ext: return "bad_ipv6_ext";
    case ParseResult::kCount: break;
  }
  return "unknown";
}

ParseResult ParseTcp4(uint8_t* buf, size_t len, TcpPacket* out) { return ParseTcp4Headers(buf, len, len, out); }

namespace {
// Both families from the TCP header on: the segment at `at` of a datagram
// of `total` bytes, of which `len` are here; addresses at `src`/`dst`.
template <typename Addr>
ParseResult ParseTcpAt(uint8_t* buf, size_t len, size_t total, size_t at, size_t src, size_t dst,
                       BasicTcpPacket<Addr>* out) {
  if (total - at < 20 || at + 20 > len) return ParseResult::kTruncatedTcp;
  uint8_t* tcp = buf + at;
  const size_t doff = static_cast<size_t>(tcp[12] >> 4) * 4;
  if (doff < 20 || doff > total - at || at + doff > len) return ParseResult::kBadTcpOffset;
  out->ip = buf;
  out->ipLength = total;
  out->ipHeaderLength = at;
  out->tcp = tcp;
  std::memcpy(&out->saddr, buf + src, sizeof(Addr));
  std::memcpy(&out->daddr, buf + dst, sizeof(Addr));
  out->sport = Load16(tcp);
  out->dport = Load16(tcp + 2);
  out->flags = tcp[13];
  out->seq = Load32(tcp + 4);
  out->ack = Load32(tcp + 8);
  out->tcpHeaderLength = doff;
  return ParseResult::kOk;
}
}  // namespace

ParseResult ParseTcp4Headers(uint8_t* buf, size_t len, size_t wireLength, TcpPacket* out) {
  if (buf == nullptr || len < 20) return ParseResult::kTruncatedIp;
  if ((buf[0] >> 4) != 4) return ParseResult::kNotIpv4;
  const size_t ihl = static_cast<size_t>(buf[0] & 0x0f) * 4;
  if (ihl < 20 || ihl > len) return ParseResult::kBadIhl;
  const size_t total = Load16(buf + 2);
  if (total < ihl) return ParseResult::kBadTotalLength;
  // A total length beyond what we were given means the copy was cut short:
  // rewriting it would hand the kernel a packet with a wrong checksum.
  if (total > wireLength) return ParseResult::kTruncatedIp;
  const uint16_t frag = Load16(buf + 6);
  if ((frag & 0x3fff) != 0) return ParseResult::kFragment;  // MF or offset
  if (buf[9] != 6) return ParseResult::kNotTcp;
  return ParseTcpAt(buf, len, total, ihl, 12, 16, out);
}

namespace {
constexpr size_t kIpv6Header = 40;
constexpr uint8_t kHopByHop = 0, kRouting = 43, kFragmentHeader = 44, kDestOptions = 60, kProtoTcp = 6;
}  // namespace

ParseResult SkipIpv6Ext(const uint8_t* buf, size_t len, uint8_t next, size_t* at, uint8_t* proto) {
  size_t off = *at;
  for (int n = 0; n <= kMaxIpv6Ext; ++n) {
    if (next == kFragmentHeader) return ParseResult::kFragment;
    if (next != kHopByHop && next != kRouting && next != kDestOptions) {
      *at = off;
      *proto = next;
      return ParseResult::kOk;
    }
    // Hop-by-hop options come first or not at all (RFC 8200 section 4.1); a
    // receiving stack drops them anywhere else.
    if (next == kHopByHop && n > 0) return ParseResult::kBadIpv6Ext;
    if (n == kMaxIpv6Ext || off + 8 > len) return ParseResult::kBadIpv6Ext;
    const size_t extLen = (static_cast<size_t>(buf[off + 1]) + 1) * 8;
    if (off + extLen > len) return ParseResult::kBadIpv6Ext;
    // Segments left: this host is not the packet's last stop, and the TCP
    // checksum covers an address the packet does not show yet.
    if (next == kRouting && buf[off + 3] != 0) return ParseResult::kBadIpv6Ext;
    next = buf[off];
    off += extLen;
  }
  return ParseResult::kBadIpv6Ext;
}

ParseResult ParseTcp6(uint8_t* buf, size_t len, TcpPacket6* out) { return ParseTcp6Headers(buf, len, len, out); }

ParseResult ParseTcp6Headers(uint8_t* buf, size_t len, size_t wireLength, TcpPacket6* out) {
  if (buf == nullptr || len < kIpv6Header) return ParseResult::kTruncatedIpv6;
  if ((buf[0] >> 4) != 6) return ParseResult::kNotIpv4;
  const size_t payload = Load16(buf + 4);
  // Payload length 0 is a jumbogram (RFC 2675), which never reaches us from
  // a 1500-byte world; as a cut copy (total beyond what we hold) it cannot be rewritten.
  const size_t total = kIpv6Header + payload;
  if (payload == 0 || total > wireLength) return ParseResult::kTruncatedIpv6;
  // The extension headers lie within the datagram, not past it.
  const size_t within = total < len ? total : len;
  size_t at = kIpv6Header;
  uint8_t proto = 0;
  const ParseResult ext = SkipIpv6Ext(buf, within, buf[6], &at, &proto);
  if (ext != ParseResult::kOk) return ext;
  if (proto != kProtoTcp) return ParseResult::kNotTcp;
  return ParseTcpAt(buf, within, total, at, 8, 24, out);
}

void SetDestination(TcpPacket6* p, const Ip6& daddr, uint16_t dport) {
  std::memcpy(p->ip + 24, daddr.b, 16);
  Store16(p->tcp + 2, dport);
  p->daddr = daddr;
  p->dport = dport;
}

void SetDestination(TcpPacket* p, uint32_t daddr, uint16_t dport) {
  std::memcpy(p->ip + 16, &daddr, 4);
  Store16(p->tcp + 2, dport);
  p->daddr = daddr;
  p->dport = dport;
}

}  // namespace dpr
