// The fuzz target's checks of IPv6 outcomes, as fuzz_engine.cc makes them for
// IPv4: what Process reports for a packet (reference.h's reading of
// packet.h), and for a rewritten one that it re-parses, that only the
// destination address and port (or, for an ICMPv6 error, the outer
// destination) and the TCP or ICMPv6 checksum changed, that incremental
// checksums keep their residual and partial ones are recomputed in full, and
// that the destination is the one DESIGN.md section 4 prescribes with the
// IPv6 address lists, for a flow where its first packet went.
#include "harness.h"
#include "reference.h"

namespace fuzz {

namespace {

using ref::Layout6;

Ip6 AddrAt(const uint8_t* b) {
  Ip6 a;
  std::memcpy(a.b, b, 16);
  return a;
}

// Offsets a TCP rewrite may touch: the destination address, the TCP
// destination port and checksum (there is no IPv6 header checksum; the hop
// limit is the kernel's business).
bool MayChange(size_t i, size_t upper) {
  return (i >= 24 && i < 40) || i == upper + 2 || i == upper + 3 || i == upper + 16 || i == upper + 17;
}

void CheckDestination(const Harness& h, const uint8_t* in, const uint8_t* out, size_t upper, const Outcome& o) {
  const EngineConfig& c = h.cfg();
  const size_t nPorts = c.servicePorts.size();
  const Ip6 inAddr = AddrAt(in + 24), outAddr = AddrAt(out + 24);
  const uint16_t inPort = Port(in + upper + 2), outPort = Port(out + upper + 2);
  if (o.action == Action::kForward) {
    const int k = ServicePortIndex(c, inPort);
    Require(inAddr == c.serviceAddr6[c.self] && k >= 0);
    Require(o.target != c.self && Has6(c, o.target));
    Require(outAddr == c.clusterAddr6[o.target]);
    Require(outPort == c.peerPortBase + c.self * nPorts + static_cast<size_t>(k));
    return;
  }
  Require(inAddr == c.clusterAddr6[c.self] && inPort >= c.peerPortBase);
  const size_t offset = inPort - c.peerPortBase;
  const size_t origin = offset / nPorts;
  Require(origin != c.self && Has6(c, origin) && o.target == origin);
  Require(outAddr == c.serviceAddr6[origin] && outPort == c.servicePorts[offset % nPorts]);
}

// Stickiness, as for IPv4: a hashed flow goes where the hash of its IPv6
// client says; a load-policy flow only where its decision sent it.
void CheckTarget(const Harness& h, const uint8_t* in, size_t len, const Outcome& o) {
  if (o.action != Action::kForward) return;
  const dpr::FlowKey6 k = KeyOf6(in, len);
  if (h.cfg().policy == dpr::Policy::kHash) {
    Require(o.target == h.engine.HashTarget(k.clientAddr, k.clientPort));
  } else {
    Require(Decided(h.decided6, k, o.target));
  }
}

void CheckTcp(const Harness& h, const uint8_t* in, const uint8_t* out, size_t len, const Outcome& o, bool csumNotReady) {
  dpr::TcpPacket6 p;
  Require(dpr::ParseTcp6(const_cast<uint8_t*>(out), len, &p) == dpr::ParseResult::kOk);
  const Layout6 li = ref::Look6(in, len), l = ref::Look6(out, len);
  Require(li.tcp && l.tcp && l.upper == li.upper && l.upper == p.ipHeaderLength && l.total == p.ipLength);
  for (size_t i = 0; i < len; ++i) Require(in[i] == out[i] || MayChange(i, l.upper));
  CheckDestination(h, in, out, l.upper, o);
  if (csumNotReady) {
    Require(ref::Tcp6Residual(out, l) == 0xffff);  // always recomputed in full
  } else {
    Require(ref::SameModOnes(ref::Tcp6Residual(in, li), ref::Tcp6Residual(out, l)));
  }
  if (h.sel & kSelFix) Require(ref::Tcp6Residual(out, l) == 0xffff);
  CheckTarget(h, in, len, o);
}

// An ICMPv6 error handed on: only the outer destination and the ICMPv6
// checksum (its pseudo-header holds that destination) may change, and the
// checksum stays exactly as right as it was. Forwarded: about a segment sent
// as this host, to the host that serves the quoted flow. Restored: from a
// peer (its hop limit), about a segment sent as the peer, back to the peer's
// service address.
void CheckIcmp(const Harness& h, const uint8_t* in, const uint8_t* out, size_t len, const Outcome& o) {
  const EngineConfig& c = h.cfg();
  const Layout6 li = ref::Look6(in, len), lo = ref::Look6(out, len);
  const ref::Quote6 q = ref::LookIcmp6(in, len);
  Require(q.ok && lo.icmp && lo.upper == li.upper && lo.total == li.total);
  for (size_t i = 0; i < len; ++i) Require(in[i] == out[i] || (i >= 24 && i < 40) || i == lo.upper + 2 || i == lo.upper + 3);
  Require(ref::SameModOnes(ref::Icmp6Residual(in, li), ref::Icmp6Residual(out, lo)));
  if (h.sel & kSelFix) Require(ref::Icmp6Residual(out, lo) == 0xffff);
  Require(ServicePortIndex(c, q.sport) >= 0);
  const Ip6 inDst = AddrAt(in + 24), outDst = AddrAt(out + 24);
  if (o.action == Action::kForward) {
    Require(c.role == dpr::Role::kEntry && inDst == c.serviceAddr6[c.self] && q.saddr == c.serviceAddr6[c.self]);
    Require(o.target != c.self && Has6(c, o.target) && outDst == c.clusterAddr6[o.target]);
    if (c.policy == dpr::Policy::kHash) {
      Require(o.target == h.engine.HashTarget(q.daddr, q.dport));
    } else {
      Require(Decided(h.decided6, dpr::FlowKey6{q.daddr, q.saddr, q.dport, q.sport}, o.target));
    }
    return;
  }
  const int origin = HostOf(c.serviceAddr6, q.saddr);
  Require(origin >= 0 && static_cast<size_t>(origin) != c.self && o.target == origin);
  Require(inDst == c.serviceAddr6[c.self] || inDst == c.clusterAddr6[c.self]);
  Require(in[7] > 254 - c.routersBetween);
  Require(outDst == c.serviceAddr6[origin]);
}

}  // namespace

Expect6 Expected6(const uint8_t* in, size_t len, const dpr::PacketMeta& meta) {
  const bool oversize = meta.wireLength > len;
  const dpr::ParseResult tcp = ref::Classify6(in, len, oversize ? meta.wireLength : len);
  // Oversize packets are never taken for ICMP errors: only their headers are here.
  const bool icmp = !oversize && tcp == dpr::ParseResult::kNotTcp && ref::LookIcmp6(in, len).ok;
  return Expect6{icmp ? dpr::ParseResult::kOk : tcp, icmp};
}

void CheckMangled6(const Harness& h, const uint8_t* in, const uint8_t* out, size_t len, const Outcome& o,
                   bool csumNotReady, bool icmp) {
  if (icmp) {
    CheckIcmp(h, in, out, len, o);
  } else {
    CheckTcp(h, in, out, len, o, csumNotReady);
  }
}

dpr::FlowKey6 KeyOf6(const uint8_t* b, size_t len) {
  const Layout6 l = ref::Look6(b, len);
  Require(l.tcp);
  return dpr::FlowKey6{AddrAt(b + 8), AddrAt(b + 24), Port(b + l.upper), Port(b + l.upper + 2)};
}

}  // namespace fuzz
