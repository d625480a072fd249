// systemd's readiness protocol (sd_notify(3)): one datagram to $NOTIFY_SOCKET.
#pragma once

#include <string>

namespace dpr {

// Sends `state` ("READY=1", ...) to the AF_UNIX datagram socket at `path`
// ('@' first: abstract namespace). Returns 0 or -errno.
int SdNotify(const std::string& path, const std::string& state);

}  // namespace dpr
