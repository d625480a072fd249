// The kernel's IPv6 neighbour table (rtnetlink RTM_GETNEIGH), which, unlike
// IPv4's /proc/net/arp, has no file to read: where a serving host learns its
// peers' MAC addresses when their heartbeats come over IPv6 (lib/neighbours.ts).
#pragma once
#include <cstdint>
#include <vector>

namespace dpr {

struct Neighbour6 {
  uint8_t addr[16];  // network order
  uint8_t mac[6];
};

// The resolved IPv6 neighbours of this network namespace (reachable, stale,
// delay, probe or permanent) with an Ethernet address; 0 or -errno.
long ListNeighbours6(std::vector<Neighbour6>* out);

}  // namespace dpr
