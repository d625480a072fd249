#include "neighbours.h"

#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <cstring>

#include "netlink_dump.h"

namespace dpr {

namespace {

struct NeighRequest {
  nlmsghdr nlh;
  ndmsg ndm;
};

// An entry with a link-layer address it has confirmed, or was given.
constexpr uint16_t kResolved = NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT;

}  // namespace

long ListNeighbours6(std::vector<Neighbour6>* out) {
  NeighRequest msg{};
  msg.nlh.nlmsg_len = sizeof msg;
  msg.nlh.nlmsg_type = RTM_GETNEIGH;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  msg.ndm.ndm_family = AF_INET6;
  return NetlinkDump(NETLINK_ROUTE, msg, [&](const nlmsghdr* h) {
    if (h->nlmsg_type != RTM_NEWNEIGH || h->nlmsg_len < NLMSG_LENGTH(sizeof(ndmsg))) return;
    const auto* nd = static_cast<const ndmsg*>(NLMSG_DATA(h));
    if (nd->ndm_family != AF_INET6 || (nd->ndm_state & kResolved) == 0) return;
    Neighbour6 n{};
    bool dst = false, mac = false;
    int len = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof(ndmsg)));
    for (auto* a = reinterpret_cast<const rtattr*>(reinterpret_cast<const char*>(nd) + NLMSG_ALIGN(sizeof(ndmsg))); RTA_OK(a, len);
         a = RTA_NEXT(a, len)) {
      if (a->rta_type == NDA_DST && RTA_PAYLOAD(a) == 16) {
        std::memcpy(n.addr, RTA_DATA(a), 16);
        dst = true;
      } else if (a->rta_type == NDA_LLADDR && RTA_PAYLOAD(a) == 6) {
        std::memcpy(n.mac, RTA_DATA(a), 6);
        mac = true;
      }
    }
    if (dst && mac) out->push_back(n);
  });
}

}  // namespace dpr
