// The engine's ICMP path (native/icmp.h): destination-unreachable errors about
// segments the cluster sent. Two kinds reach a host:
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

int Engine::HostOfServiceAddr(uint32_t addr) const {
  for (size_t id = 0; id < config_.serviceAddr.size(); ++id) {
    if (config_.serviceAddr[id] == addr && addr != 0) return static_cast<int>(id);
  }
  return -1;
}

Outcome Engine::ProcessIcmp(IcmpError& m, const PacketMeta& meta, uint32_t nowMs) {
  Outcome out;
  out.note = Note::kIcmpNotOurs;
  const bool toUs = m.daddr == config_.serviceAddr[config_.self] || m.daddr == config_.clusterAddr[config_.self];
  if (!toUs || ServicePortIndex(m.innerSport) < 0) return out;
  const int origin = HostOfServiceAddr(m.innerSaddr);
  if (origin < 0) return out;
  if (static_cast<size_t>(origin) == config_.self) return IcmpAboutOwnSegment(m, nowMs);
  return IcmpFromPeer(m, static_cast<size_t>(origin), meta);
}

Outcome Engine::IcmpAboutOwnSegment(IcmpError& m, uint32_t nowMs) {
  Outcome out;
  out.note = Note::kIcmpLocal;
  if (config_.role != Role::kEntry || m.daddr != config_.serviceAddr[config_.self]) return out;
  const FlowKey key{m.innerDaddr, m.innerSaddr, m.innerDport, m.innerSport};
  const long idx = flows_.Find(key, nowMs);
  // Kernel modes: a forwarded flow's entry here lasts only until its SYN
  // timeout (the kernel carries it after that); the hash still names its host.
  const bool hashed = idx < 0 && config_.kernelForward && config_.policy == Policy::kHash;
  if (idx < 0 && !hashed) {
    out.note = Note::kIcmpNoFlow;
    return out;
  }
  const uint16_t target = hashed ? HashTarget(key.clientAddr, key.clientPort) : flows_.At(idx).target;
  out.target = target;
  if (target == config_.self) return out;
  out.action = Action::kForward;
  out.note = Note::kIcmpForwarded;
  if (config_.kernelForward) {
    // Unchanged: the serving host holds this address on lo and relates the
    // error to its socket itself.
    out.mark = PeerMark(target);
    return out;
  }
  SetIcmpDestination(&m, config_.clusterAddr[target]);
  out.mangled = true;
  out.mark = config_.forwardMark;
  return out;
}

Outcome Engine::IcmpFromPeer(IcmpError& m, size_t origin, const PacketMeta& meta) {
  Outcome out;
  out.note = Note::kIcmpNotOurs;
  if (m.ttl <= 254 - config_.routersBetween) return out;
  out.note = CheckPeerMac(origin, meta.srcMac);
  if (out.note != Note::kNone) {
    out.action = Action::kDrop;
    return out;
  }
  SetIcmpDestination(&m, config_.serviceAddr[origin]);
  out.action = Action::kRestore;
  out.mangled = true;
  out.mark = config_.serveMark;
  out.target = static_cast<uint16_t>(origin);
  out.note = Note::kIcmpRestored;
  return out;
}

}  // namespace dpr
