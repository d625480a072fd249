// Heartbeats between peers, in a native thread of their own: every
// `heartbeatMs` the thread wakes once, reads every datagram that arrived
// since (one recvmmsg), judges them, checks liveness, and sends this host's
// heartbeat (one sendmmsg). JavaScript hears only of changes (a peer up,
// down, draining, unhealthy; a service port that lost its listener) and
// reads snapshots when it wants them.
//
// Who hears what (docs/peers.md, "Watchers"): with `watchers` peers or fewer
// every heartbeat goes to every peer. In larger clusters a heartbeat goes to
// this host's `watchers` watchers (the hosts after it on a ring every host
// computes alike from the configured list), and every `slowEvery`-th one to
// everybody. A watcher holds its subjects to `deadAfterMs` and tells every
// peer at once when one falls silent (a DOWN notice); everybody else holds a
// peer to `slowEvery` x `deadAfterMs` (the backstop).
//
// Why native: on the machines dpr runs on, every wakeup of a Node.js event
// loop costs ~100 µs of CPU (28 µs for a C thread, measured on the
// development VM). Heartbeats every 100 ms to three peers woke the loop 40
// times a second in JavaScript (one tick, three arrivals each tick): 8-10 ms
// of CPU per second on an idle host. Here it is ten wakeups a second.
//
// Node-API stays out of this file; peer_link_binding.cc wraps it.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "heartbeat_wire.h"
#include "peer_load_board.h"

namespace dpr {

// An IPv4 or IPv6 address with its UDP port.
struct PeerAddress {
  uint16_t id = 0;
  int family = 0;       // AF_INET or AF_INET6
  uint8_t addr[16] = {};  // network order; IPv4 in the first 4 bytes
  uint16_t port = 0;    // host order
};

struct PeerLinkOptions {
  uint16_t self = 0;
  PeerAddress bind;  // id unused; port 0: any free port
  std::vector<uint8_t> key;
  uint32_t heartbeatMs = 100;
  uint32_t deadAfterMs = 300;
  // More peers than this: watchers and slow rounds instead of all-to-all.
  uint32_t watchers = 8;
  // Every slowEvery-th heartbeat goes to everybody (1: always all-to-all).
  uint32_t slowEvery = 10;
  // Service ports whose listeners the thread watches (health), every watchEveryMs; empty: none.
  std::vector<uint16_t> watchPorts;
  uint32_t watchEveryMs = 250;
};

struct PeerLinkError : std::runtime_error {
  PeerLinkError(std::string code, int err, const std::string& what)
      : std::runtime_error(what), code(std::move(code)), errnum(err) {}
  std::string code;
  int errnum;
};

enum class PeerEventType : uint8_t {
  kUp = 0,        // first valid heartbeat (value: 1 if draining, 2 if unhealthy, bits)
  kDown,          // silent for deadAfterMs (value: ms of silence)
  kRestarted,     // a larger epoch
  kDraining,      // value: 1 draining, 0 no longer
  kHealth,        // value: 1 healthy, 0 unhealthy
  kRemoved,       // taken out by SetPeers while up
  kListenerLost,  // id: the service port that has no listener any more
  kListenerBack,  // id: the port listens again
  kCount
};

struct PeerEvent {
  PeerEventType type;
  uint16_t id;
  uint32_t value;
};

struct PeerView {
  PeerAddress address;
  bool up = false;
  bool draining = false;
  bool healthy = true;
  uint32_t load = 0;
  bool heard = false;
  uint64_t epoch = 0;
  uint64_t seq = 0;
  uint32_t lastHeardAgoMs = 0;  // valid when heard
  bool watcher = false;  // hears our every heartbeat (every peer, in all-to-all)
  bool subject = false;  // we watch it
};

struct PeerLinkCounters {
  std::atomic<uint64_t> sent{0};
  std::atomic<uint64_t> sendErrors{0};
  std::atomic<uint64_t> received{0};
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> rejected[static_cast<size_t>(HeartbeatReject::kCount)] = {};
  std::atomic<uint64_t> ticks{0};
  std::atomic<uint64_t> downNoticesSent{0};      // notices, not datagrams (each goes to every peer)
  std::atomic<uint64_t> downNoticesAccepted{0};  // accepted and about a peer (counted in accepted too)
  std::atomic<uint64_t> downNoticesActedOn{0};   // ...that took a peer down here
  std::atomic<uint32_t> tickLateMaxMs{0};  // since the last read
};

class PeerLink {
 public:
  using EventSink = std::function<void(std::vector<PeerEvent>&&)>;

  PeerLink(PeerLinkOptions options, EventSink sink);
  ~PeerLink();

  // Binds the socket and starts the thread; throws PeerLinkError.
  void Start();
  // Stops sending, joins the thread, closes the socket. Peers read as down
  // afterwards; their replay state is kept for a later Start(). Idempotent.
  void Stop();

  void SetPeers(const std::vector<PeerAddress>& peers);
  // This host's own state, as the next heartbeat says it. A change of
  // draining or health sends a heartbeat at once.
  void SetLocal(uint32_t load, bool draining, bool healthy);
  // Sends a heartbeat now, out of turn.
  void Announce();
  // Where every accepted report also goes: the entry queue's, which decides
  // the load policy's new connections on them.
  void FeedLoads(std::shared_ptr<PeerLoadBoard> board) {
    std::lock_guard<std::mutex> lock(mutex_);
    board_ = std::move(board);
    PublishRoles();
  }
  // Key rotation: sign with `sign`, accept heartbeats signed with it or any of `others`.
  void SetKeys(const std::vector<uint8_t>& sign, const std::vector<std::vector<uint8_t>>& others);

  std::vector<PeerView> Snapshot();
  uint16_t LocalPort() const { return localPort_.load(); }
  bool running() const { return running_.load(); }
  PeerLinkCounters& counters() { return counters_; }

 private:
  struct Peer {
    PeerAddress address;
    bool up = false;
    bool draining = false;
    bool healthy = true;
    uint32_t load = 0;
    bool heard = false;  // an (epoch, seq) is known
    uint64_t epoch = 0;
    uint64_t seq = 0;
    uint64_t heardAtMs = 0;  // monotonic
    // Ring roles (large clusters; both true in all-to-all).
    bool watcher = false;  // hears our every heartbeat
    bool subject = false;  // we watch it
    bool armed = false;    // subject, and a heartbeat meant for its watchers came since it became one
    uint64_t noticeSentMs = 0;  // our last DOWN notice about it (monotonic; 0: none)
    // A DOWN notice took it down: heartbeats of that epoch up to this seq (low 32 bits) are older than the silence.
    bool noticed = false;
    uint64_t noticedEpoch = 0;
    uint32_t noticedSeq = 0;
  };

  void Run();
  void Tick(uint64_t nowMs, std::vector<PeerEvent>* events);
  void Receive(uint64_t nowMs, std::vector<PeerEvent>* events);
  void Judge(const uint8_t* buf, size_t len, const PeerAddress& from, uint64_t nowMs, std::vector<PeerEvent>* events);
  void JudgeNotice(const Heartbeat& hb, uint64_t nowMs, std::vector<PeerEvent>* events);
  void CheckLiveness(uint64_t nowMs, std::vector<PeerEvent>* events, std::vector<uint16_t>* silent);
  void Send(bool toAll);
  void SendNotices(const std::vector<uint16_t>& silent);
  void SendToPeers(const uint8_t* datagram, bool onlyWatchers);
  Heartbeat NextOwn();  // under mutex_: this host's sender, flags, epoch and next seq
  void AssignRing();  // under mutex_
  void PublishRoles();  // under mutex_: which peers' every report reaches us, to the board
  uint64_t DeadlineMs(const Peer& p) const;
  void WatchListeners(std::vector<PeerEvent>* events);
  void Wake();
  Peer* Find(uint16_t id);

  PeerLinkOptions options_;
  HmacSha256 mac_;                    // signs; guarded by mutex_ once running
  std::vector<HmacSha256> alsoAccept_;  // a rotation's other key(s); guarded by mutex_
  EventSink sink_;
  PeerLinkCounters counters_;

  int fd_ = -1;
  int wakeFd_ = -1;
  std::atomic<uint16_t> localPort_{0};
  std::thread thread_;
  std::atomic<bool> running_{false};
  std::atomic<bool> stopping_{false};

  // Guarded by mutex_: the peer table, this host's state, requests from JS.
  std::mutex mutex_;
  std::vector<Peer> peers_;
  std::vector<PeerEvent> pendingEvents_;  // from SetPeers, delivered by the thread
  std::shared_ptr<PeerLoadBoard> board_;
  uint32_t load_ = 0;
  bool draining_ = false;
  bool healthy_ = true;
  bool announce_ = false;
  bool allToAll_ = true;  // peers_.size() <= watchers
  uint64_t epoch_ = 0;
  uint64_t seq_ = 0;

  // The thread's own.
  uint64_t tick_ = 0;  // heartbeats sent on the clock since Start
  uint64_t nextWatchMs_ = 0;
  std::vector<uint16_t> listening_;  // watched ports with a listener, last look
  bool watchedOnce_ = false;
};

uint64_t PeerLinkMonotonicMs();

}  // namespace dpr
