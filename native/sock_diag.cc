#include "sock_diag.h"

#include "netlink_dump.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstring>

namespace dpr {

namespace {

constexpr uint8_t kTcpEstablished = 1;
constexpr uint8_t kTcpListen = 10;

struct DiagRequest {
  nlmsghdr nlh;
  inet_diag_req_v2 req;
};

// A TCP sock_diag request for one family; the caller adds the socket id for an exact lookup.
DiagRequest MakeRequest(int family, uint16_t flags, uint32_t states, uint32_t seq) {
  DiagRequest msg{};
  msg.nlh.nlmsg_len = sizeof msg;
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = flags;
  msg.nlh.nlmsg_seq = seq;
  msg.req.sdiag_family = static_cast<uint8_t>(family);
  msg.req.sdiag_protocol = IPPROTO_TCP;
  msg.req.idiag_states = states;
  return msg;
}

// The same dump in the older TCPDIAG_GETSOCK form, which takes both families
// in one pass of the kernel's hash tables (AF_UNSPEC): half the cost of one
// SOCK_DIAG_BY_FAMILY dump per family, the walk being what costs.
struct CompatRequest {
  nlmsghdr nlh;
  inet_diag_req req;
};

CompatRequest MakeDumpBothFamilies(uint32_t states) {
  CompatRequest msg{};
  msg.nlh.nlmsg_len = sizeof msg;
  msg.nlh.nlmsg_type = TCPDIAG_GETSOCK;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  msg.req.idiag_family = AF_UNSPEC;
  msg.req.idiag_states = states;
  return msg;
}

bool PortIn(uint16_t port, const uint16_t* ports, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    if (ports[i] == port) return true;
  }
  return false;
}

}  // namespace

LocalSockets::LocalSockets() {
  fd_ = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd_ >= 0) {
    // The answer is immediate; a bound wait keeps a kernel hiccup from
    // stalling the queue thread.
    timeval tv{0, 100000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
}

LocalSockets::~LocalSockets() {
  if (fd_ >= 0) close(fd_);
}

bool LocalSockets::Exists(const FlowKey& key) {
  if (fd_ < 0) {
    ++errors_;
    return false;
  }
  const uint32_t service[4] = {key.serviceAddr, 0, 0, 0};
  const uint32_t client[4] = {key.clientAddr, 0, 0, 0};
  if (ExistsAs(AF_INET, service, client, key.servicePort, key.clientPort)) return true;
  // ::ffff:a.b.c.d, as a dual-stack socket holds an IPv4 peer.
  const uint32_t service6[4] = {0, 0, htonl(0xffff), key.serviceAddr};
  const uint32_t client6[4] = {0, 0, htonl(0xffff), key.clientAddr};
  return ExistsAs(AF_INET6, service6, client6, key.servicePort, key.clientPort);
}

bool LocalSockets::Exists(const FlowKey6& key) {
  if (fd_ < 0) {
    ++errors_;
    return false;
  }
  uint32_t service[4], client[4];
  std::memcpy(service, key.serviceAddr.b, 16);
  std::memcpy(client, key.clientAddr.b, 16);
  return ExistsAs(AF_INET6, service, client, key.servicePort, key.clientPort);
}

bool LocalSockets::ExistsAs(int family, const uint32_t service[4], const uint32_t client[4], uint16_t servicePort,
                            uint16_t clientPort) {
  // No NLM_F_DUMP: an exact lookup, sockets of any state.
  DiagRequest msg = MakeRequest(family, NLM_F_REQUEST, ~0u, ++seq_);
  msg.req.id.idiag_sport = htons(servicePort);
  msg.req.id.idiag_dport = htons(clientPort);
  std::memcpy(msg.req.id.idiag_src, service, 16);
  std::memcpy(msg.req.id.idiag_dst, client, 16);
  msg.req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  msg.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd_, &msg, sizeof msg, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) {
    ++errors_;
    return false;
  }
  alignas(nlmsghdr) char buf[1024];
  for (;;) {
    const ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      ++errors_;
      return false;
    }
    const auto* h = reinterpret_cast<const nlmsghdr*>(buf);
    if (!NLMSG_OK(h, static_cast<size_t>(n)) || h->nlmsg_seq != seq_) continue;  // a stale answer
    if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY) {
      // An exact lookup falls back to listeners (inet_lookup); only a socket
      // of this very connection counts.
      const auto* m = static_cast<const inet_diag_msg*>(NLMSG_DATA(h));
      const size_t addrBytes = family == AF_INET ? 4 : 16;
      return m->idiag_state != kTcpListen && m->id.idiag_dport == htons(clientPort) &&
             std::memcmp(m->id.idiag_dst, client, addrBytes) == 0;
    }
    if (h->nlmsg_type == NLMSG_ERROR) {
      const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
      if (e->error != -ENOENT) ++errors_;
      return false;
    }
    return false;
  }
}

long CountEstablished(const uint16_t* ports, size_t count) {
  long n = 0;
  const long rc = NetlinkDump(NETLINK_SOCK_DIAG, MakeDumpBothFamilies(1u << kTcpEstablished), [&](const nlmsghdr* h) {
    const auto* m = static_cast<const inet_diag_msg*>(NLMSG_DATA(h));
    if (PortIn(ntohs(m->id.idiag_sport), ports, count)) ++n;
  });
  return rc < 0 ? rc : n;
}

long ListListeners(const uint16_t* ports, size_t count, std::vector<Listener>* out) {
  for (const int family : {AF_INET, AF_INET6}) {
    const long rc = NetlinkDump(NETLINK_SOCK_DIAG, MakeRequest(family, NLM_F_REQUEST | NLM_F_DUMP, 1u << kTcpListen, 0), [&](const nlmsghdr* h) {
      const auto* m = static_cast<const inet_diag_msg*>(NLMSG_DATA(h));
      const uint16_t port = ntohs(m->id.idiag_sport);
      if (!PortIn(port, ports, count)) return;
      Listener l{};
      l.family = m->idiag_family;
      l.port = port;
      std::memcpy(l.addr, m->id.idiag_src, l.family == AF_INET ? 4 : 16);
      // Attributes follow the message: INET_DIAG_SKV6ONLY says whether an
      // IPv6 listener takes IPv4 connections too.
      int len = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof *m));
      for (auto* a = reinterpret_cast<const rtattr*>(m + 1); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        if (a->rta_type == INET_DIAG_SKV6ONLY && RTA_PAYLOAD(a) >= 1) l.v6only = *static_cast<const uint8_t*>(RTA_DATA(a)) != 0;
      }
      out->push_back(l);
    });
    if (rc < 0) return rc;
  }
  return static_cast<long>(out->size());
}

}  // namespace dpr
