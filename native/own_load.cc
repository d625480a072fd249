#include "own_load.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace dpr {

namespace {
constexpr uint32_t kNone = 0xffffffff;

// The number after `key` in the file, or -1.
int64_t InUse(int fd, const char* key) {
  if (fd < 0) return -1;
  char buf[512];
  const ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return -1;
  buf[n] = '\0';
  const char* at = std::strstr(buf, key);
  if (at == nullptr) return -1;
  return std::strtoll(at + std::strlen(key), nullptr, 10);
}
}  // namespace

OwnLoad::OwnLoad() {
  // Opened once, in the network namespace the daemon runs in (the file shows that namespace's sockets).
  fd_ = open("/proc/net/sockstat", O_RDONLY | O_CLOEXEC);
  // Absent without IPv6: IPv4's count alone then.
  fd6_ = open("/proc/net/sockstat6", O_RDONLY | O_CLOEXEC);
}

OwnLoad::~OwnLoad() {
  if (fd_ >= 0) close(fd_);
  if (fd6_ >= 0) close(fd6_);
}

void OwnLoad::Calibrate(uint32_t value, int64_t inUse) {
  const uint32_t q = inUse < 0 || inUse >= kNone ? kNone : static_cast<uint32_t>(inUse);
  calibration_.store(static_cast<uint64_t>(value) << 32 | q, std::memory_order_relaxed);
  calibrations_.fetch_add(1, std::memory_order_release);
}

int64_t OwnLoad::ReadInUse() {
  const int64_t v4 = InUse(fd_, "TCP: inuse ");
  if (v4 < 0) return -1;
  const int64_t v6 = InUse(fd6_, "TCP6: inuse ");
  return v4 + (v6 > 0 ? v6 : 0);
}

uint32_t OwnLoad::Now(uint32_t nowMs) {
  const uint32_t calibrations = calibrations_.load(std::memory_order_acquire);
  const bool recalibrated = calibrations != seenCalibrations_;
  if (!recalibrated && read_ && nowMs - readAtMs_ < kMaxAgeMs) return value_ + kept_;
  const uint64_t c = calibration_.load(std::memory_order_relaxed);
  const uint32_t value = static_cast<uint32_t>(c >> 32);
  const uint32_t inUseThen = static_cast<uint32_t>(c);
  int64_t now = -1;
  if (inUseThen != kNone) now = ReadInUse();
  if (now >= 0) {
    // What is in use besides the service's connections (listeners, the
    // daemon's own sockets) moves slowly: keep the difference of the last count.
    const int64_t v = now - (static_cast<int64_t>(inUseThen) - value);
    value_ = v > 0 ? static_cast<uint32_t>(v) : 0;
    kept_ = 0;
  } else if (recalibrated) {
    value_ = value;
    kept_ = 0;
  }
  seenCalibrations_ = calibrations;
  readAtMs_ = nowMs;
  read_ = true;
  return value_ + kept_;
}

}  // namespace dpr
