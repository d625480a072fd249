// The engine's ICMP path (native/icmp.h): destination-unreachable (and, for
// ICMPv6, packet-too-big) errors about segments the cluster sent, the same
// way for both families. Two kinds reach a host:
//  - about a segment sent as this host's service address: the entry host
//    looks the flow up from the quoted header (client = quoted destination)
//    and, if another host serves it, points the outer header at that host's
//    cluster address and forwards it (forward mark: untracked, TTL 255);
//  - forwarded by a peer, about a segment this host sent as the peer's
//    service address: only with a peer's TTL (GTSM) and, on one segment, its
//    MAC; the outer destination goes back to the peer's service address, so
//    conntrack relates the error to the connection (it compares the outer
//    destination with the connection's) and NAT delivers it to the socket.
// Anything else is left to the local stack, unchanged.
#include "engine.h"

namespace dpr {

template <typename Addr>
int Engine::HostOfServiceAddr(const Addr& addr) const {
  const std::vector<Addr>& service = ServiceAddrs<Addr>();
  for (size_t id = 0; id < service.size(); ++id) {
    if (service[id] == addr && !IsNoAddress(addr)) return static_cast<int>(id);
  }
  return -1;
}

template <typename Addr>
Outcome Engine::ProcessIcmp(BasicIcmpError<Addr>& m, const PacketMeta& meta, uint32_t nowMs) {
  Outcome out;
  out.note = Note::kIcmpNotOurs;
  const bool toUs = m.daddr == ServiceAddrs<Addr>()[config_.self] || m.daddr == ClusterAddrs<Addr>()[config_.self];
  if (!toUs || ServicePortIndex(m.innerSport) < 0) return out;
  const int origin = HostOfServiceAddr(m.innerSaddr);
  if (origin < 0) return out;
  if (static_cast<size_t>(origin) == config_.self) return IcmpAboutOwnSegment(m, nowMs);
  return IcmpFromPeer(m, static_cast<size_t>(origin), meta);
}

template <typename Addr>
Outcome Engine::IcmpAboutOwnSegment(BasicIcmpError<Addr>& m, uint32_t nowMs) {
  Outcome out;
  out.note = Note::kIcmpLocal;
  if (config_.role != Role::kEntry || m.daddr != ServiceAddrs<Addr>()[config_.self]) return out;
  BasicFlowTable<Addr>& flows = Table<Addr>();
  const BasicFlowKey<Addr> key{m.innerDaddr, m.innerSaddr, m.innerDport, m.innerSport};
  const long idx = flows.Find(key, nowMs);
  // Kernel modes: a forwarded flow's entry here lasts only until its SYN
  // timeout (the kernel carries it after that); the hash still names its host.
  const bool hashed = idx < 0 && config_.kernelForward && config_.policy == Policy::kHash;
  if (idx < 0 && !hashed) {
    out.note = Note::kIcmpNoFlow;
    return out;
  }
  const uint16_t target = hashed ? HashTarget(key.clientAddr, key.clientPort) : flows.At(idx).target;
  out.target = target;
  if (target == config_.self) return out;
  if (!Reachable<Addr>(target)) {
    out.target = config_.self;  // its host is gone (a reload): the local stack has no socket for it either
    return out;
  }
  out.action = Action::kForward;
  out.note = Note::kIcmpForwarded;
  if (config_.kernelForward) {
    // Unchanged: the serving host holds this address on lo and relates the
    // error to its socket itself.
    out.mark = PeerMark(target);
    return out;
  }
  SetIcmpDestination(&m, ClusterAddrs<Addr>()[target]);
  out.mangled = true;
  out.mark = config_.forwardMark;
  return out;
}

template <typename Addr>
Outcome Engine::IcmpFromPeer(BasicIcmpError<Addr>& m, size_t origin, const PacketMeta& meta) {
  Outcome out;
  out.note = Note::kIcmpNotOurs;
  if (m.ttl <= 254 - config_.routersBetween) return out;
  out.note = CheckPeerMac(origin, meta.srcMac);
  if (out.note != Note::kNone) {
    out.action = Action::kDrop;
    return out;
  }
  SetIcmpDestination(&m, ServiceAddrs<Addr>()[origin]);
  out.action = Action::kRestore;
  out.mangled = true;
  out.mark = config_.serveMark;
  out.target = static_cast<uint16_t>(origin);
  out.note = Note::kIcmpRestored;
  return out;
}

template Outcome Engine::ProcessIcmp(IcmpError&, const PacketMeta&, uint32_t);
template Outcome Engine::ProcessIcmp(Icmp6Error&, const PacketMeta&, uint32_t);

}  // namespace dpr
