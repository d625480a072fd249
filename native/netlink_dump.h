// One netlink dump: a request, then every answer until NLMSG_DONE, on a
// socket of its own. For the kernel tables dpr reads now and then (sockets
// through sock_diag, neighbours through rtnetlink).
#pragma once
#include <errno.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

namespace dpr {

// Sends a dump request on a netlink socket of `protocol` and hands every
// answer to `each`; 0 or -errno.
template <typename Request, typename Each>
long NetlinkDump(int protocol, const Request& msg, Each each) {
  const int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, protocol);
  if (fd < 0) return -errno;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd, &msg, sizeof msg, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) {
    const int err = errno;
    close(fd);
    return -err;
  }
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
        return 0;
      }
      if (h->nlmsg_type == NLMSG_ERROR) {
        const int err = -static_cast<const nlmsgerr*>(NLMSG_DATA(h))->error;
        close(fd);
        return -(err ? err : EPROTO);
      }
      each(h);
    }
  }
}

}  // namespace dpr
