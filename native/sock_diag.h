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

#include "flow_table.h"

namespace dpr {

class LocalSockets {
 public:
  LocalSockets();
  ~LocalSockets();
  LocalSockets(const LocalSockets&) = delete;
  LocalSockets& operator=(const LocalSockets&) = delete;

  // True when a socket with local address/port = the flow's service side and
  // remote = its client exists. On any error answers false (and counts it):
  // the flow is then routed as decided.
  bool Exists(const FlowKey& key);
  uint64_t errors() const { return errors_; }

 private:
  int fd_ = -1;
  uint32_t seq_ = 0;
  uint64_t errors_ = 0;
};

// Established TCP sockets whose local port is one of `ports`, counted from a
// kernel dump filtered to the ESTABLISHED state (TIME_WAIT sockets, by far the
// most numerous on a busy web host, never cross into userspace). -errno on
// failure.
long CountEstablished(const uint16_t* ports, size_t count);

}  // namespace dpr
