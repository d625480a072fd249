// Asks the kernel whether this host holds a TCP socket for a flow's exact
// 4-tuple (any state, TIME_WAIT included), through NETLINK_SOCK_DIAG.
//
// Why: after its SYN, a flow's packets reach a local socket whenever one
// exists (the entry rule's `-m socket`), so a new connection that reuses the
// 4-tuple of one that is still in TIME_WAIT here must be served here. The hash
// policy gets this for free (same tuple, same host); the load policy asks.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "flow_table.h"

namespace dpr {

class LocalSockets {
 public:
  LocalSockets();
  ~LocalSockets();
  LocalSockets(const LocalSockets&) = delete;
  LocalSockets& operator=(const LocalSockets&) = delete;

  // True when a socket with local address/port = the flow's service side and
  // remote = its client exists, as an IPv4 socket or as the IPv6 socket of a
  // dual-stack listener (v4-mapped addresses). On any error answers false
  // (and counts it): the flow is then routed as decided.
  bool Exists(const FlowKey& key);
  // The same for an IPv6 flow (IPv6 sockets only).
  bool Exists(const FlowKey6& key);
  uint64_t errors() const { return errors_; }

 private:
  bool ExistsAs(int family, const uint32_t service[4], const uint32_t client[4], uint16_t servicePort, uint16_t clientPort);

  int fd_ = -1;
  uint32_t seq_ = 0;
  uint64_t errors_ = 0;
};

// Established TCP sockets whose local port is one of `ports`, IPv4 and IPv6
// alike (a dual-stack listener's IPv4 clients are IPv6 sockets with
// v4-mapped addresses), counted from one kernel dump filtered to the
// ESTABLISHED state (TIME_WAIT sockets, by far the most numerous on a busy
// web host, never cross into userspace). -errno on failure.
//
// Cost: the kernel walks its whole TCP established hash (shared by every
// namespace, sized by memory at boot), about 1.5-2 ms of CPU per dump on the
// development machine whatever the number of sockets: call it rarely.
long CountEstablished(const uint16_t* ports, size_t count);

// A listening TCP socket on one of the ports asked for.
struct Listener {
  int family;          // AF_INET or AF_INET6
  uint8_t addr[16];    // network order; IPv4 in the first 4 bytes
  uint16_t port;       // host order
  bool v6only;         // AF_INET6 only: takes no IPv4 connections
};

// Listening sockets on `ports`, both families (the kernel reads only its
// small listener table for this). -errno on failure.
long ListListeners(const uint16_t* ports, size_t count, std::vector<Listener>* out);

}  // namespace dpr
