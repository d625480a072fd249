#include "ipset_writer.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/ipset/ip_set.h>
#include <linux/netfilter/nfnetlink.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace dpr {

namespace {
// One add is about 100 bytes: a few hundred per send.
constexpr size_t kBufBytes = 32 * 1024;
constexpr size_t kMaxMessage = 256;
}  // namespace

std::string IpsetWriter::SetName(const std::string& prefix, uint16_t target) {
  return prefix + "to" + std::to_string(target);
}

namespace {
uint32_t TimeoutSec(uint32_t timeoutMs) {
  // ipset counts timeouts in seconds; 0 would mean "never" in a set with timeouts.
  return timeoutMs < 1000 ? 1 : (timeoutMs + 999) / 1000;
}
void PutAddr(nlmsghdr* nlh, uint16_t type, uint32_t a) {
  nlattr* n = mnl_attr_nest_start(nlh, type);
  mnl_attr_put_u32(nlh, IPSET_ATTR_IPADDR_IPV4 | NLA_F_NET_BYTEORDER, a);
  mnl_attr_nest_end(nlh, n);
}
void PutAddr(nlmsghdr* nlh, uint16_t type, const Ip6& a) {
  nlattr* n = mnl_attr_nest_start(nlh, type);
  mnl_attr_put(nlh, IPSET_ATTR_IPADDR_IPV6 | NLA_F_NET_BYTEORDER, sizeof a.b, a.b);
  mnl_attr_nest_end(nlh, n);
}
uint8_t FamilyOf(const FlowKey&) { return AF_INET; }
uint8_t FamilyOf(const FlowKey6&) { return AF_INET6; }
}  // namespace

IpsetWriter::IpsetWriter(std::string prefix, std::string prefix6)
    : prefix_(std::move(prefix)), prefix6_(std::move(prefix6)), buf_(kBufBytes) {
  nl_ = mnl_socket_open(NETLINK_NETFILTER);
  if (nl_ == nullptr) throw std::system_error(errno, std::generic_category(), "ipset netlink socket");
  if (mnl_socket_bind(nl_, 0, MNL_SOCKET_AUTOPID) < 0) {
    const int e = errno;
    mnl_socket_close(nl_);
    throw std::system_error(e, std::generic_category(), "ipset netlink bind");
  }
}

IpsetWriter::~IpsetWriter() {
  Flush();
  if (nl_ != nullptr) mnl_socket_close(nl_);
}

void IpsetWriter::OnForwardDecided(const FlowKey& key, uint16_t target, uint32_t timeoutMs, bool keepExisting) {
  Put(IPSET_CMD_ADD, key, target, TimeoutSec(timeoutMs), keepExisting);
  counters_.adds.Add();
}

void IpsetWriter::OnFlowGone(const FlowKey& key, uint16_t target) {
  Put(IPSET_CMD_DEL, key, target, 0, false);
  counters_.dels.Add();
}

void IpsetWriter::OnForwardDecided(const FlowKey6& key, uint16_t target, uint32_t timeoutMs, bool keepExisting) {
  Put(IPSET_CMD_ADD, key, target, TimeoutSec(timeoutMs), keepExisting);
  counters_.adds.Add();
}

void IpsetWriter::OnFlowGone(const FlowKey6& key, uint16_t target) {
  Put(IPSET_CMD_DEL, key, target, 0, false);
  counters_.dels.Add();
}

// Without NLM_F_EXCL an add overwrites an entry that is there (ipset's
// -exist), a del of a missing entry is no error; with it, an add leaves the
// entry alone and answers EEXIST.
template <typename Key>
void IpsetWriter::Put(uint8_t cmd, const Key& key, uint16_t target, uint32_t timeoutSec, bool exclusive) {
  const uint8_t family = FamilyOf(key);
  if (family == AF_INET6 && prefix6_.empty()) {
    counters_.errors.Add();
    counters_.lastErrno.store(ENOENT, std::memory_order_relaxed);
    return;
  }
  if (used_ + kMaxMessage > buf_.size()) Flush();
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf_.data() + used_);
  nlh->nlmsg_type = (NFNL_SUBSYS_IPSET << 8) | cmd;
  nlh->nlmsg_flags = NLM_F_REQUEST | (exclusive ? NLM_F_EXCL : 0);
  nlh->nlmsg_seq = seq_++;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = family;
  nfg->version = NFNETLINK_V0;
  nfg->res_id = 0;
  mnl_attr_put_u8(nlh, IPSET_ATTR_PROTOCOL, IPSET_PROTOCOL);
  const std::string set = SetName(family == AF_INET6 ? prefix6_ : prefix_, target);
  mnl_attr_put_strz(nlh, IPSET_ATTR_SETNAME, set.c_str());
  nlattr* data = mnl_attr_nest_start(nlh, IPSET_ATTR_DATA);
  PutAddr(nlh, IPSET_ATTR_IP, key.clientAddr);
  mnl_attr_put_u16(nlh, IPSET_ATTR_PORT | NLA_F_NET_BYTEORDER, htons(key.clientPort));
  mnl_attr_put_u8(nlh, IPSET_ATTR_PROTO, IPPROTO_TCP);
  PutAddr(nlh, IPSET_ATTR_IP2, key.serviceAddr);
  if (cmd == IPSET_CMD_ADD) mnl_attr_put_u32(nlh, IPSET_ATTR_TIMEOUT | NLA_F_NET_BYTEORDER, htonl(timeoutSec));
  mnl_attr_nest_end(nlh, data);
  used_ += nlh->nlmsg_len;
}

void IpsetWriter::Flush() {
  if (used_ > 0) {
    if (mnl_socket_sendto(nl_, buf_.data(), used_) < 0) {
      counters_.sendErrors.Add();
      counters_.lastErrno.store(errno, std::memory_order_relaxed);
    }
    counters_.sends.Add();
    used_ = 0;
  }
  ReadErrors();
}

void IpsetWriter::ReadErrors() {
  char rbuf[8192];
  for (;;) {
    const ssize_t n = recv(mnl_socket_get_fd(nl_), rbuf, sizeof rbuf, MSG_DONTWAIT);
    if (n <= 0) return;
    int len = static_cast<int>(n);
    for (auto* m = reinterpret_cast<nlmsghdr*>(rbuf); mnl_nlmsg_ok(m, len); m = mnl_nlmsg_next(m, &len)) {
      if (m->nlmsg_type != NLMSG_ERROR) continue;
      const auto* e = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(m));
      if (e->error == 0) continue;
      // ipset's own codes (IPSET_ERR_EXIST, 4103) sit above the errno range.
      if (-e->error == EEXIST || -e->error == IPSET_ERR_EXIST) {
        counters_.existing.Add();
        continue;
      }
      counters_.errors.Add();
      counters_.lastErrno.store(-e->error, std::memory_order_relaxed);
    }
  }
}

}  // namespace dpr
