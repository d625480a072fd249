// Helpers shared by the Node-API bindings: reading validated options from
// JavaScript, throwing the TypeScript error class, building counter snapshots.
#pragma once
#include <napi.h>

#include <string>

#include "engine.h"
#include "queue.h"

namespace dpr {

// Set by lib/native.ts in every environment that loads the addon (the main
// thread, each worker): the DprNativeError constructor of that environment.
void SetErrorClass(Napi::Env env, Napi::Function ctor);
// Throws DprNativeError(message, code, errno) as a JavaScript exception.
[[noreturn]] void ThrowError(Napi::Env env, const std::string& code, int errnum, const std::string& message);
// The same error as a value (to reject a promise with).
Napi::Error MakeError(Napi::Env env, const std::string& code, int errnum, const std::string& message);

EngineConfig ReadEngineConfig(Napi::Env env, const Napi::Object& o);
// IPv6 addresses by host id: a Uint32Array of 4 words each, every word the
// big-endian value of 4 address bytes (absent: an empty list).
std::vector<Ip6> ReadIp6List(Napi::Env env, const Napi::Value& v, const char* what);
QueueOptions ReadQueueOptions(Napi::Env env, const Napi::Object& o);
// setPeerMacs(macs: Uint8Array): 6 bytes per host id.
std::vector<uint8_t> ReadMacs(Napi::Env env, const Napi::Value& v);
// hosts[].weight by host id (a Uint8Array); throws a TypeError-like DprNativeError otherwise.
std::vector<uint8_t> ReadWeights(Napi::Env env, const Napi::Value& v);
// The handle by which a Queue's peer-load board passes to a PeerLink (an External).
Napi::Value WrapLoadBoard(Napi::Env env, std::shared_ptr<PeerLoadBoard> board);
// The board behind such a handle; throws if it is none.
std::shared_ptr<PeerLoadBoard> UnwrapLoadBoard(Napi::Env env, const Napi::Value& v);

Napi::Object EngineSnapshot(Napi::Env env, EngineCounters& c);
Napi::Object QueueSnapshot(Napi::Env env, const Queue& queue);

}  // namespace dpr
