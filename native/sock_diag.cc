#include "sock_diag.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstring>

namespace dpr {

namespace {

struct DiagRequest {
  nlmsghdr nlh;
  inet_diag_req_v2 req;
};

// A TCP/IPv4 sock_diag request; the caller adds the socket id for an exact lookup.
DiagRequest MakeRequest(uint16_t flags, uint32_t states, uint32_t seq) {
  DiagRequest msg{};
  msg.nlh.nlmsg_len = sizeof msg;
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = flags;
  msg.nlh.nlmsg_seq = seq;
  msg.req.sdiag_family = AF_INET;
  msg.req.sdiag_protocol = IPPROTO_TCP;
  msg.req.idiag_states = states;
  return msg;
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
  // No NLM_F_DUMP: an exact lookup, sockets of any state.
  DiagRequest msg = MakeRequest(NLM_F_REQUEST, ~0u, ++seq_);
  msg.req.id.idiag_sport = htons(key.servicePort);
  msg.req.id.idiag_dport = htons(key.clientPort);
  msg.req.id.idiag_src[0] = key.serviceAddr;
  msg.req.id.idiag_dst[0] = key.clientAddr;
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
      constexpr uint8_t kTcpListen = 10;
      return m->idiag_state != kTcpListen && m->id.idiag_dport == htons(key.clientPort) &&
             m->id.idiag_dst[0] == key.clientAddr;
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
  const int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) return -errno;
  constexpr uint32_t kTcpEstablished = 1;
  DiagRequest msg = MakeRequest(NLM_F_REQUEST | NLM_F_DUMP, 1u << kTcpEstablished, 0);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd, &msg, sizeof msg, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) {
    const int err = errno;
    close(fd);
    return -err;
  }
  long n = 0;
  alignas(nlmsghdr) static thread_local char buf[32768];
  for (;;) {
    const ssize_t got = recv(fd, buf, sizeof buf, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      close(fd);
      return -err;
    }
    size_t left = static_cast<size_t>(got);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_type == NLMSG_DONE) {
        close(fd);
        return n;
      }
      if (h->nlmsg_type == NLMSG_ERROR) {
        const int err = -static_cast<const nlmsgerr*>(NLMSG_DATA(h))->error;
        close(fd);
        return -(err ? err : EPROTO);
      }
      const auto* m = static_cast<const inet_diag_msg*>(NLMSG_DATA(h));
      const uint16_t port = ntohs(m->id.idiag_sport);
      for (size_t i = 0; i < count; ++i) {
        if (ports[i] == port) {
          ++n;
          break;
        }
      }
    }
  }
}

}  // namespace dpr
