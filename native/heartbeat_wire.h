// The heartbeat datagram (docs/peers.md; lib/heartbeat.ts is the TypeScript
// twin the tests forge datagrams with): 64 bytes, big-endian, the last 32 an
// HMAC-SHA256 of the first 32 under the cluster's shared key. One length and
// no options: a parser with no choices has no parsing bugs.
#pragma once
#include <cstddef>
#include <cstdint>

#include "sha256.h"

namespace dpr {

constexpr size_t kHeartbeatLength = 64;
constexpr size_t kHeartbeatBody = 32;

enum class HeartbeatType : uint8_t {
  kHeartbeat = 1,
  // A watcher's notice that a host it watches fell silent (docs/peers.md,
  // "Watchers"): the load field names the host, bytes 28..31 the low 32
  // bits of the last seq the watcher accepted from it.
  kDown = 2,
};

struct Heartbeat {
  HeartbeatType type = HeartbeatType::kHeartbeat;
  uint16_t sender = 0;
  bool draining = false;
  bool healthy = true;
  // Sent to every peer, not only to the sender's watchers: a slow round or
  // an announcement. A watcher holds a host to the short deadline only once
  // it heard a heartbeat without this flag (one meant for its watchers).
  bool toAll = false;
  uint64_t epoch = 0;  // the sender's start time, ms since 1970
  uint64_t seq = 0;    // +1 per datagram within an epoch
  uint32_t load = 0;   // kDown: the silent host's id
  uint32_t subjectSeq = 0;  // kDown only
};

// Why a datagram changed nothing. Order matters: it is the index of the
// counters and of the names exported to TypeScript (lib/peers.ts REJECT_REASONS).
enum class HeartbeatReject : uint8_t {
  kTruncated = 0,  // not exactly 64 bytes
  kBadMagic,
  kBadType,        // neither a heartbeat nor a DOWN notice
  kUnknownPeer,    // not a configured peer (or our own id)
  kWrongSource,    // not from that peer's configured address
  kBadMac,
  kReplay,         // (epoch, seq) not newer than the last accepted
  kCount
};

const char* HeartbeatRejectName(HeartbeatReject r);

// Writes the 64 bytes, MAC included.
void EncodeHeartbeat(const Heartbeat& hb, const HmacSha256& mac, uint8_t* out);

// Reads the fields of a datagram of `length` bytes; says nothing about its
// authenticity (VerifyHeartbeatMac does). Returns false with `why` set when
// the format is wrong.
bool ParseHeartbeat(const uint8_t* buf, size_t length, Heartbeat* out, HeartbeatReject* why);

// Constant-time: the comparison's timing tells a forger nothing.
bool VerifyHeartbeatMac(const uint8_t* buf, const HmacSha256& mac);

}  // namespace dpr
