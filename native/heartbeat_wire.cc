#include "heartbeat_wire.h"

#include <cstring>

namespace dpr {

namespace {

constexpr uint8_t kMagic[4] = {'D', 'P', 'R', '1'};
constexpr uint8_t kFlagDraining = 0x01;
// "Unhealthy", so a sender that predates health checks reads as healthy.
constexpr uint8_t kFlagUnhealthy = 0x02;
constexpr uint8_t kFlagToAll = 0x04;

void Put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
void Put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (24 - 8 * i));
}
void Put64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (56 - 8 * i));
}
uint16_t Get16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t Get32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 | static_cast<uint32_t>(p[2]) << 8 | p[3];
}
uint64_t Get64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | p[i];
  return v;
}


}  // namespace

const char* HeartbeatRejectName(HeartbeatReject r) {
  switch (r) {
    case HeartbeatReject::kTruncated: return "truncated";
    case HeartbeatReject::kBadMagic: return "bad_magic";
    case HeartbeatReject::kBadType: return "bad_type";
    case HeartbeatReject::kUnknownPeer: return "unknown_peer";
    case HeartbeatReject::kWrongSource: return "wrong_source";
    case HeartbeatReject::kBadMac: return "bad_mac";
    case HeartbeatReject::kReplay: return "replay";
    case HeartbeatReject::kCount: break;
  }
  return "unknown";
}

void EncodeHeartbeat(const Heartbeat& hb, const HmacSha256& mac, uint8_t* out) {
  std::memset(out, 0, kHeartbeatLength);
  std::memcpy(out, kMagic, 4);
  out[4] = static_cast<uint8_t>(hb.type);
  out[5] = static_cast<uint8_t>((hb.draining ? kFlagDraining : 0) | (hb.healthy ? 0 : kFlagUnhealthy) | (hb.toAll ? kFlagToAll : 0));
  Put16(out + 6, hb.sender);
  Put64(out + 8, hb.epoch);
  Put64(out + 16, hb.seq);
  Put32(out + 24, hb.load);
  // Bytes 28..31: reserved in a heartbeat (sent as 0).
  if (hb.type == HeartbeatType::kDown) Put32(out + 28, hb.subjectSeq);
  mac.Mac(out, kHeartbeatBody, out + kHeartbeatBody);
}

bool ParseHeartbeat(const uint8_t* buf, size_t length, Heartbeat* out, HeartbeatReject* why) {
  if (length != kHeartbeatLength) {
    *why = HeartbeatReject::kTruncated;
    return false;
  }
  if (std::memcmp(buf, kMagic, 4) != 0) {
    *why = HeartbeatReject::kBadMagic;
    return false;
  }
  if (buf[4] != static_cast<uint8_t>(HeartbeatType::kHeartbeat) && buf[4] != static_cast<uint8_t>(HeartbeatType::kDown)) {
    *why = HeartbeatReject::kBadType;
    return false;
  }
  out->type = static_cast<HeartbeatType>(buf[4]);
  out->draining = (buf[5] & kFlagDraining) != 0;
  out->healthy = (buf[5] & kFlagUnhealthy) == 0;
  out->toAll = (buf[5] & kFlagToAll) != 0;
  out->sender = Get16(buf + 6);
  out->epoch = Get64(buf + 8);
  out->seq = Get64(buf + 16);
  out->load = Get32(buf + 24);
  out->subjectSeq = out->type == HeartbeatType::kDown ? Get32(buf + 28) : 0;
  return true;
}

bool VerifyHeartbeatMac(const uint8_t* buf, const HmacSha256& mac) {
  uint8_t expected[32];
  mac.Mac(buf, kHeartbeatBody, expected);
  uint8_t diff = 0;
  for (int i = 0; i < 32; ++i) diff |= static_cast<uint8_t>(expected[i] ^ buf[kHeartbeatBody + i]);
  return diff == 0;
}

}  // namespace dpr
