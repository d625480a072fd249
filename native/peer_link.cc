#include "peer_link.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "sock_diag.h"

namespace dpr {

namespace {

constexpr unsigned kBatch = 64;  // datagrams per recvmmsg / sendmmsg

std::string ErrnoText(const std::string& what, int err) { return what + ": " + std::strerror(err); }

uint64_t WallMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::system_clock::now().time_since_epoch()).count());
}

socklen_t ToSockaddr(const PeerAddress& a, sockaddr_storage* out) {
  std::memset(out, 0, sizeof *out);
  if (a.family == AF_INET6) {
    auto* s = reinterpret_cast<sockaddr_in6*>(out);
    s->sin6_family = AF_INET6;
    s->sin6_port = htons(a.port);
    std::memcpy(&s->sin6_addr, a.addr, 16);
    return sizeof *s;
  }
  auto* s = reinterpret_cast<sockaddr_in*>(out);
  s->sin_family = AF_INET;
  s->sin_port = htons(a.port);
  std::memcpy(&s->sin_addr, a.addr, 4);
  return sizeof *s;
}

PeerAddress FromSockaddr(const sockaddr_storage& s) {
  PeerAddress a;
  a.family = s.ss_family;
  if (s.ss_family == AF_INET6) {
    const auto& s6 = reinterpret_cast<const sockaddr_in6&>(s);
    std::memcpy(a.addr, &s6.sin6_addr, 16);
    a.port = ntohs(s6.sin6_port);
  } else {
    const auto& s4 = reinterpret_cast<const sockaddr_in&>(s);
    std::memcpy(a.addr, &s4.sin_addr, 4);
    a.port = ntohs(s4.sin_port);
  }
  return a;
}

bool SameHost(const PeerAddress& a, const PeerAddress& b) {
  return a.family == b.family && std::memcmp(a.addr, b.addr, a.family == AF_INET6 ? 16 : 4) == 0;
}

std::string Text(const PeerAddress& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(a.family, a.addr, buf, sizeof buf);
  return a.family == AF_INET6 ? "[" + std::string(buf) + "]:" + std::to_string(a.port) : std::string(buf) + ":" + std::to_string(a.port);
}

// The ring's order: every host computes it alike from the ids alone, and
// neighbours by id (often by rack) do not all watch each other.
uint64_t RingKey(uint16_t id) {
  uint64_t z = static_cast<uint64_t>(id) + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/** (epoch, seq) must grow strictly: a captured datagram sent again is refused. */
bool IsNewer(const Heartbeat& hb, bool heard, uint64_t epoch, uint64_t seq) {
  if (!heard) return true;
  if (hb.epoch != epoch) return hb.epoch > epoch;
  return hb.seq > seq;
}

}  // namespace

uint64_t PeerLinkMonotonicMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000ULL + static_cast<uint64_t>(ts.tv_nsec) / 1000000ULL;
}

PeerLink::PeerLink(PeerLinkOptions options, EventSink sink)
    : options_(std::move(options)), mac_(options_.key.data(), options_.key.size()), sink_(std::move(sink)) {
  if (options_.heartbeatMs == 0 || options_.deadAfterMs <= options_.heartbeatMs) {
    throw PeerLinkError("EINVAL", EINVAL, "peers: deadAfterMs must be longer than heartbeatMs");
  }
  if (options_.key.size() < 16) throw PeerLinkError("EINVAL", EINVAL, "peers: the key must be at least 16 bytes");
  if (options_.watchers == 0 || options_.slowEvery == 0) throw PeerLinkError("EINVAL", EINVAL, "peers: watchers and slowEvery must be at least 1");
}

PeerLink::~PeerLink() { Stop(); }

void PeerLink::Start() {
  if (running_.load()) throw PeerLinkError("EALREADY", EALREADY, "peers: already started");
  const int fd = socket(options_.bind.family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw PeerLinkError("ESOCKET", errno, ErrnoText("peers: socket", errno));
  sockaddr_storage sa;
  const socklen_t len = ToSockaddr(options_.bind, &sa);
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), len) < 0) {
    const int err = errno;
    close(fd);
    throw PeerLinkError("EBIND", err, ErrnoText("peers: cannot bind UDP " + Text(options_.bind), err));
  }
  sockaddr_storage bound{};
  socklen_t blen = sizeof bound;
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &blen);
  localPort_ = FromSockaddr(bound).port;
  const int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    const int err = errno;
    close(fd);
    throw PeerLinkError("EEVENTFD", err, ErrnoText("peers: eventfd", err));
  }
  fd_ = fd;
  wakeFd_ = wake;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    // A restart within the same millisecond must still look newer to peers.
    epoch_ = std::max(WallMs(), epoch_ + 1);
    seq_ = 0;
  }
  tick_ = 0;
  stopping_ = false;
  running_ = true;
  thread_ = std::thread([this] { Run(); });
}

void PeerLink::Stop() {
  if (!thread_.joinable()) return;
  stopping_ = true;
  Wake();
  thread_.join();
  running_ = false;
  close(fd_);
  close(wakeFd_);
  fd_ = wakeFd_ = -1;
  std::lock_guard<std::mutex> lock(mutex_);
  for (Peer& p : peers_) p.up = false;
}

void PeerLink::Wake() {
  if (wakeFd_ < 0) return;
  const uint64_t one = 1;
  ssize_t r = write(wakeFd_, &one, sizeof one);
  (void)r;  // EAGAIN: already woken
}

PeerLink::Peer* PeerLink::Find(uint16_t id) {
  for (Peer& p : peers_) {
    if (p.address.id == id) return &p;
  }
  return nullptr;
}

void PeerLink::SetPeers(const std::vector<PeerAddress>& wanted) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<Peer> next;
  for (const PeerAddress& w : wanted) {
    if (w.id == options_.self) continue;
    Peer* old = Find(w.id);
    if (old != nullptr && SameHost(old->address, w) && old->address.port == w.port) {
      next.push_back(*old);
    } else {
      Peer p;
      p.address = w;
      next.push_back(p);
    }
  }
  for (const Peer& p : peers_) {
    const bool kept = std::any_of(next.begin(), next.end(), [&](const Peer& n) {
      return n.address.id == p.address.id && SameHost(n.address, p.address) && n.address.port == p.address.port;
    });
    if (p.up && !kept) pendingEvents_.push_back({PeerEventType::kRemoved, p.address.id, 0});
  }
  peers_ = std::move(next);
  AssignRing();
  if (!pendingEvents_.empty()) Wake();
}

void PeerLink::AssignRing() {
  allToAll_ = peers_.size() <= options_.watchers || options_.slowEvery == 1;
  if (allToAll_) {
    for (Peer& p : peers_) p.watcher = p.subject = true;
    return PublishRoles();
  }
  std::vector<std::pair<uint64_t, uint16_t>> ring;
  ring.reserve(peers_.size() + 1);
  ring.emplace_back(RingKey(options_.self), options_.self);
  for (const Peer& p : peers_) ring.emplace_back(RingKey(p.address.id), p.address.id);
  std::sort(ring.begin(), ring.end());
  const size_t n = ring.size();
  size_t self = 0;
  while (ring[self].second != options_.self) ++self;
  std::vector<uint16_t> watchers, subjects;
  for (size_t k = 1; k <= options_.watchers; ++k) {
    watchers.push_back(ring[(self + k) % n].second);
    subjects.push_back(ring[(self + n - k) % n].second);
  }
  for (Peer& p : peers_) {
    const uint16_t id = p.address.id;
    const bool subject = std::find(subjects.begin(), subjects.end(), id) != subjects.end();
    // A new subject is held to the short deadline only once it sends to its
    // watchers, which it does once its own list says so.
    if (subject && !p.subject) p.armed = false;
    p.subject = subject;
    p.watcher = std::find(watchers.begin(), watchers.end(), id) != watchers.end();
  }
  PublishRoles();
}

// Our subjects send us their every heartbeat, load included; the others once a slow round.
void PeerLink::PublishRoles() {
  if (!board_) return;
  for (const Peer& p : peers_) board_->SetHeardOften(p.address.id, p.subject);
}

uint64_t PeerLink::DeadlineMs(const Peer& p) const {
  if (allToAll_ || (p.subject && p.armed)) return options_.deadAfterMs;
  return static_cast<uint64_t>(options_.deadAfterMs) * options_.slowEvery;
}

void PeerLink::SetLocal(uint32_t load, bool draining, bool healthy) {
  bool changed;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    changed = draining != draining_ || healthy != healthy_;
    load_ = load;
    draining_ = draining;
    healthy_ = healthy;
    if (changed) announce_ = true;
  }
  if (changed) Wake();
}

void PeerLink::SetKeys(const std::vector<uint8_t>& sign, const std::vector<std::vector<uint8_t>>& others) {
  if (sign.size() < 16) throw PeerLinkError("EINVAL", EINVAL, "peers: the key must be at least 16 bytes");
  std::vector<HmacSha256> accept;
  for (const auto& k : others) {
    if (k.size() < 16) throw PeerLinkError("EINVAL", EINVAL, "peers: every key must be at least 16 bytes");
    accept.emplace_back(k.data(), k.size());
  }
  std::lock_guard<std::mutex> lock(mutex_);
  mac_ = HmacSha256(sign.data(), sign.size());
  alsoAccept_ = std::move(accept);
}

void PeerLink::Announce() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    announce_ = true;
  }
  Wake();
}

std::vector<PeerView> PeerLink::Snapshot() {
  const uint64_t now = PeerLinkMonotonicMs();
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<PeerView> out;
  out.reserve(peers_.size());
  for (const Peer& p : peers_) {
    PeerView v;
    v.address = p.address;
    v.up = p.up && running_.load();
    v.draining = p.draining;
    v.healthy = p.healthy;
    v.load = p.load;
    v.heard = p.heard;
    v.epoch = p.epoch;
    v.seq = p.seq;
    v.lastHeardAgoMs = p.heard ? static_cast<uint32_t>(now - p.heardAtMs) : 0;
    v.watcher = p.watcher;
    v.subject = p.subject;
    out.push_back(v);
  }
  return out;
}

void PeerLink::Run() {
  uint64_t next = PeerLinkMonotonicMs();  // the first heartbeat at once: peers see us within a round trip
  while (!stopping_.load()) {
    uint64_t now = PeerLinkMonotonicMs();
    std::vector<PeerEvent> events;
    if (now >= next) {
      const uint64_t late = now - next;
      uint32_t seen = counters_.tickLateMaxMs.load(std::memory_order_relaxed);
      if (late > seen) counters_.tickLateMaxMs.store(static_cast<uint32_t>(late), std::memory_order_relaxed);
      counters_.ticks.fetch_add(1, std::memory_order_relaxed);
      Tick(now, &events);
      next += options_.heartbeatMs;
      // Far behind (the machine stalled): start the rhythm afresh, no burst.
      if (next <= now) next = now + options_.heartbeatMs;
    }
    bool announce;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      announce = announce_;
      announce_ = false;
      for (const PeerEvent& e : pendingEvents_) events.push_back(e);
      pendingEvents_.clear();
    }
    if (announce) Send(true);
    if (!events.empty() && sink_) sink_(std::move(events));
    now = PeerLinkMonotonicMs();
    pollfd pfd{wakeFd_, POLLIN, 0};
    const int timeout = next > now ? static_cast<int>(next - now) : 0;
    if (poll(&pfd, 1, timeout) > 0 && (pfd.revents & POLLIN)) {
      uint64_t drained;
      ssize_t r = read(wakeFd_, &drained, sizeof drained);
      (void)r;
    }
  }
}

void PeerLink::Tick(uint64_t nowMs, std::vector<PeerEvent>* events) {
  Receive(nowMs, events);
  std::vector<uint16_t> silent;
  CheckLiveness(nowMs, events, &silent);
  // The first heartbeat goes to everybody, so every peer sees us up at once.
  Send(tick_++ % options_.slowEvery == 0);
  if (!silent.empty()) SendNotices(silent);
  if (!options_.watchPorts.empty() && nowMs >= nextWatchMs_) {
    nextWatchMs_ = nowMs + options_.watchEveryMs;
    WatchListeners(events);
  }
}

void PeerLink::Receive(uint64_t nowMs, std::vector<PeerEvent>* events) {
  uint8_t bufs[kBatch][kHeartbeatLength + 1];
  sockaddr_storage from[kBatch];
  iovec iov[kBatch];
  mmsghdr msgs[kBatch];
  for (;;) {
    for (unsigned i = 0; i < kBatch; ++i) {
      iov[i] = {bufs[i], sizeof bufs[i]};  // one byte more than a heartbeat: a longer datagram shows as such
      msgs[i] = {};
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &from[i];
      msgs[i].msg_hdr.msg_namelen = sizeof from[i];
    }
    const int n = recvmmsg(fd_, msgs, kBatch, MSG_DONTWAIT, nullptr);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return;  // EAGAIN: all read
    }
    std::lock_guard<std::mutex> lock(mutex_);
    for (int i = 0; i < n; ++i) {
      const size_t len = (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) ? kHeartbeatLength + 1 : msgs[i].msg_len;
      Judge(bufs[i], len, FromSockaddr(from[i]), nowMs, events);
      // Counted once judged: whoever sees the count sees the verdict too.
      counters_.received.fetch_add(1, std::memory_order_release);
    }
    if (static_cast<unsigned>(n) < kBatch) return;
  }
}

// Cheap checks first, the HMAC only for datagrams that claim a real peer from its real address.
void PeerLink::Judge(const uint8_t* buf, size_t len, const PeerAddress& from, uint64_t nowMs, std::vector<PeerEvent>* events) {
  Heartbeat hb;
  HeartbeatReject why = HeartbeatReject::kTruncated;
  auto reject = [&](HeartbeatReject r) { counters_.rejected[static_cast<size_t>(r)].fetch_add(1, std::memory_order_relaxed); };
  if (!ParseHeartbeat(buf, len, &hb, &why)) return reject(why);
  Peer* peer = hb.sender == options_.self ? nullptr : Find(hb.sender);
  if (peer == nullptr) return reject(HeartbeatReject::kUnknownPeer);
  // Address only: the source port is the sender's choice.
  if (!SameHost(peer->address, from)) return reject(HeartbeatReject::kWrongSource);
  bool authentic = VerifyHeartbeatMac(buf, mac_);
  for (size_t i = 0; !authentic && i < alsoAccept_.size(); ++i) authentic = VerifyHeartbeatMac(buf, alsoAccept_[i]);
  if (!authentic) return reject(HeartbeatReject::kBadMac);
  if (!IsNewer(hb, peer->heard, peer->epoch, peer->seq)) return reject(HeartbeatReject::kReplay);
  counters_.accepted.fetch_add(1, std::memory_order_relaxed);
  const uint16_t id = peer->address.id;
  if (peer->heard && hb.epoch != peer->epoch) events->push_back({PeerEventType::kRestarted, id, 0});
  // Whatever the datagram says, the replay state moves on.
  peer->heard = true;
  peer->epoch = hb.epoch;
  peer->seq = hb.seq;
  if (hb.type == HeartbeatType::kDown) {
    // Proof of the sender's life, and a claim about someone else: no state of the sender's in it.
    if (peer->up) peer->heardAtMs = nowMs;
    return JudgeNotice(hb, nowMs, events);
  }
  if (peer->noticed) {
    // A heartbeat the silence a watcher saw already covers (sent before it, arrived late) brings nobody back.
    if (hb.epoch == peer->noticedEpoch && static_cast<uint32_t>(hb.seq) <= peer->noticedSeq) return;
    peer->noticed = false;
  }
  if (peer->subject && !hb.toAll) peer->armed = true;
  const bool wasUp = peer->up;
  if (wasUp && peer->draining != hb.draining) events->push_back({PeerEventType::kDraining, id, hb.draining ? 1u : 0u});
  if (wasUp && peer->healthy != hb.healthy) events->push_back({PeerEventType::kHealth, id, hb.healthy ? 1u : 0u});
  peer->up = true;
  peer->draining = hb.draining;
  peer->healthy = hb.healthy;
  peer->load = hb.load;
  if (board_) board_->Publish(id, hb.load);
  peer->heardAtMs = nowMs;
  if (!wasUp) events->push_back({PeerEventType::kUp, id, (hb.draining ? 1u : 0u) | (hb.healthy ? 0u : 2u)});
}

// A watcher's DOWN notice: the subject is out here at once unless we heard
// it after the watcher last did; a notice about ourselves makes us tell
// everybody we are alive (a watcher cut off from us costs one round trip).
void PeerLink::JudgeNotice(const Heartbeat& hb, uint64_t nowMs, std::vector<PeerEvent>* events) {
  if (hb.load == options_.self) {
    announce_ = true;
    return;
  }
  if (hb.load > 0xffff) return;
  Peer* subject = Find(static_cast<uint16_t>(hb.load));
  if (subject == nullptr) return;
  counters_.downNoticesAccepted.fetch_add(1, std::memory_order_relaxed);
  if (!subject->up || static_cast<uint32_t>(subject->seq) > hb.subjectSeq) return;
  subject->up = false;
  subject->armed = false;
  subject->noticed = true;
  subject->noticedEpoch = subject->epoch;
  subject->noticedSeq = hb.subjectSeq;
  counters_.downNoticesActedOn.fetch_add(1, std::memory_order_relaxed);
  events->push_back({PeerEventType::kDown, subject->address.id, static_cast<uint32_t>(nowMs - subject->heardAtMs)});
}

void PeerLink::CheckLiveness(uint64_t nowMs, std::vector<PeerEvent>* events, std::vector<uint16_t>* silent) {
  std::lock_guard<std::mutex> lock(mutex_);
  const uint64_t noticeEveryMs = static_cast<uint64_t>(options_.heartbeatMs) * options_.slowEvery;
  for (Peer& p : peers_) {
    if (!p.up || nowMs - p.heardAtMs <= DeadlineMs(p)) continue;
    // Only a watcher's own short deadline is news to the others; at most one notice per subject per slow period.
    if (!allToAll_ && p.subject && p.armed && (p.noticeSentMs == 0 || nowMs - p.noticeSentMs >= noticeEveryMs)) {
      silent->push_back(p.address.id);
      p.noticeSentMs = nowMs;
    }
    p.up = false;
    p.armed = false;
    events->push_back({PeerEventType::kDown, p.address.id, static_cast<uint32_t>(nowMs - p.heardAtMs)});
  }
}

Heartbeat PeerLink::NextOwn() {
  Heartbeat hb;
  hb.sender = options_.self;
  hb.draining = draining_;
  hb.healthy = healthy_;
  hb.epoch = epoch_;
  hb.seq = ++seq_;
  return hb;
}

// One datagram per period, the same bytes to every peer it goes to: one seq, one HMAC.
void PeerLink::Send(bool toAll) {
  uint8_t datagram[kHeartbeatLength];
  bool onlyWatchers;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    onlyWatchers = !toAll && !allToAll_;
    Heartbeat hb = NextOwn();
    hb.toAll = toAll && !allToAll_;
    hb.load = load_;
    EncodeHeartbeat(hb, mac_, datagram);
  }
  SendToPeers(datagram, onlyWatchers);
}

void PeerLink::SendNotices(const std::vector<uint16_t>& silent) {
  for (const uint16_t id : silent) {
    uint8_t datagram[kHeartbeatLength];
    {
      std::lock_guard<std::mutex> lock(mutex_);
      const Peer* p = Find(id);
      if (p == nullptr) continue;
      Heartbeat hb = NextOwn();
      hb.type = HeartbeatType::kDown;
      hb.toAll = true;
      hb.load = id;
      hb.subjectSeq = static_cast<uint32_t>(p->seq);
      EncodeHeartbeat(hb, mac_, datagram);
    }
    counters_.downNoticesSent.fetch_add(1, std::memory_order_relaxed);
    SendToPeers(datagram, false);
  }
}

void PeerLink::SendToPeers(const uint8_t* datagram, bool onlyWatchers) {
  std::vector<sockaddr_storage> to;
  std::vector<socklen_t> toLen;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    to.reserve(peers_.size());
    toLen.reserve(peers_.size());
    for (const Peer& p : peers_) {
      if (onlyWatchers && !p.watcher) continue;
      to.emplace_back();
      toLen.push_back(ToSockaddr(p.address, &to.back()));
    }
  }
  for (size_t start = 0; start < to.size(); start += kBatch) {
    const size_t n = std::min<size_t>(kBatch, to.size() - start);
    iovec iov{const_cast<uint8_t*>(datagram), kHeartbeatLength};
    mmsghdr msgs[kBatch];
    for (size_t i = 0; i < n; ++i) {
      msgs[i] = {};
      msgs[i].msg_hdr.msg_iov = &iov;
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &to[start + i];
      msgs[i].msg_hdr.msg_namelen = toLen[start + i];
    }
    size_t done = 0;
    while (done < n) {
      const int sent = sendmmsg(fd_, msgs + done, static_cast<unsigned>(n - done), MSG_DONTWAIT);
      if (sent < 0) {
        if (errno == EINTR) continue;
        // Unreachable peers are expected while they are down: count, skip that one, go on.
        counters_.sendErrors.fetch_add(1, std::memory_order_relaxed);
        ++done;
        continue;
      }
      counters_.sent.fetch_add(static_cast<uint64_t>(sent), std::memory_order_relaxed);
      done += static_cast<size_t>(sent);
    }
  }
}

void PeerLink::WatchListeners(std::vector<PeerEvent>* events) {
  std::vector<Listener> found;
  if (ListListeners(options_.watchPorts.data(), options_.watchPorts.size(), &found) < 0) return;  // no sock_diag: JS checks go on
  std::vector<uint16_t> now;
  for (const Listener& l : found) {
    if (std::find(now.begin(), now.end(), l.port) == now.end()) now.push_back(l.port);
  }
  if (watchedOnce_) {
    for (const uint16_t port : options_.watchPorts) {
      const bool was = std::find(listening_.begin(), listening_.end(), port) != listening_.end();
      const bool is = std::find(now.begin(), now.end(), port) != now.end();
      if (was && !is) events->push_back({PeerEventType::kListenerLost, port, 0});
      if (!was && is) events->push_back({PeerEventType::kListenerBack, port, 0});
    }
  }
  listening_ = std::move(now);
  watchedOnce_ = true;
}

}  // namespace dpr
