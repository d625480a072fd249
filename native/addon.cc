// Module entry: the classes, the hook that tells native code which JavaScript
// class to throw, and the helpers (socket count, listeners, HMAC, sd_notify,
// keyed hash). lib/native.ts is the only file that loads this.
#include <napi.h>

#include <arpa/inet.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "binding_util.h"
#include "neighbours.h"
#include "sd_notify.h"
#include "sha256.h"
#include "siphash.h"
#include "sock_diag.h"

namespace dpr {
Napi::Function DefineEngine(Napi::Env env);
Napi::Function DefineQueue(Napi::Env env);
Napi::Function DefinePeerLink(Napi::Env env);
}  // namespace dpr

namespace {

void SetErrorClass(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) throw Napi::TypeError::New(info.Env(), "setErrorClass(ctor): ctor must be a function");
  dpr::SetErrorClass(info.Env(), info[0].As<Napi::Function>());
}

// countEstablished(ports: Uint16Array): number of established TCP sockets on
// those local ports in this network namespace.
Napi::Value CountEstablished(const Napi::CallbackInfo& info) {
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint16_array) {
    dpr::ThrowError(info.Env(), "EINVAL", 0, "countEstablished(ports): ports must be a Uint16Array");
  }
  auto ports = info[0].As<Napi::Uint16Array>();
  const long n = dpr::CountEstablished(ports.Data(), ports.ElementLength());
  if (n < 0) dpr::ThrowError(info.Env(), "ESOCKDIAG", static_cast<int>(-n), std::string("sock_diag dump: ") + std::strerror(static_cast<int>(-n)));
  return Napi::Number::New(info.Env(), static_cast<double>(n));
}

// listListeners(ports: Uint16Array): the listening TCP sockets on those
// ports, both families: [{ family: 4 | 6, address, port, v6only }].
Napi::Value ListListeners(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint16_array) {
    dpr::ThrowError(env, "EINVAL", 0, "listListeners(ports): ports must be a Uint16Array");
  }
  auto ports = info[0].As<Napi::Uint16Array>();
  std::vector<dpr::Listener> found;
  const long rc = dpr::ListListeners(ports.Data(), ports.ElementLength(), &found);
  if (rc < 0) dpr::ThrowError(env, "ESOCKDIAG", static_cast<int>(-rc), std::string("sock_diag dump: ") + std::strerror(static_cast<int>(-rc)));
  Napi::Array out = Napi::Array::New(env, found.size());
  for (size_t i = 0; i < found.size(); ++i) {
    const dpr::Listener& l = found[i];
    char text[INET6_ADDRSTRLEN] = {};
    inet_ntop(l.family, l.addr, text, sizeof text);
    Napi::Object o = Napi::Object::New(env);
    o.Set("family", Napi::Number::New(env, l.family == AF_INET ? 4 : 6));
    o.Set("address", Napi::String::New(env, text));
    o.Set("port", Napi::Number::New(env, l.port));
    o.Set("v6only", Napi::Boolean::New(env, l.v6only));
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

// listNeighbours6(): the resolved IPv6 neighbours: [{ address, mac }], the
// MAC in lower case, colon separated.
Napi::Value ListNeighbours6(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<dpr::Neighbour6> found;
  const long rc = dpr::ListNeighbours6(&found);
  if (rc < 0) dpr::ThrowError(env, "ENEIGH", static_cast<int>(-rc), std::string("neighbour dump: ") + std::strerror(static_cast<int>(-rc)));
  Napi::Array out = Napi::Array::New(env, found.size());
  for (size_t i = 0; i < found.size(); ++i) {
    char text[INET6_ADDRSTRLEN] = {};
    inet_ntop(AF_INET6, found[i].addr, text, sizeof text);
    char mac[18];
    const uint8_t* m = found[i].mac;
    std::snprintf(mac, sizeof mac, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
    Napi::Object o = Napi::Object::New(env);
    o.Set("address", Napi::String::New(env, text));
    o.Set("mac", Napi::String::New(env, mac));
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

// hmacSha256(key, data): the heartbeats' own HMAC (native/sha256.h), for the
// tests that hold it to RFC 4231 and to Node's crypto. Nothing else uses it.
Napi::Value HmacSha256Of(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  for (int i = 0; i < 2; ++i) {
    if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      dpr::ThrowError(env, "EINVAL", 0, "hmacSha256(key, data): both must be Uint8Arrays");
    }
  }
  auto key = info[0].As<Napi::Uint8Array>();
  auto data = info[1].As<Napi::Uint8Array>();
  Napi::Uint8Array out = Napi::Uint8Array::New(env, 32);
  dpr::HmacSha256(key.Data(), key.ElementLength()).Mac(data.Data(), data.ElementLength(), out.Data());
  return out;
}

// sdNotify(socketPath, state): one sd_notify(3) datagram; throws on failure.
void SdNotify(const Napi::CallbackInfo& info) {
  if (!info[0].IsString() || !info[1].IsString()) {
    dpr::ThrowError(info.Env(), "EINVAL", 0, "sdNotify(socketPath, state): both must be strings");
  }
  const int rc = dpr::SdNotify(info[0].As<Napi::String>(), info[1].As<Napi::String>());
  if (rc < 0) dpr::ThrowError(info.Env(), "ENOTIFY", -rc, std::string("sd_notify: ") + std::strerror(-rc));
}

// siphash24(key: Uint8Array(16), data: Uint8Array): bigint. The data path's
// keyed hash, exposed so that a test can hold it to the reference vectors.
Napi::Value SipHash(const Napi::CallbackInfo& info) {
  auto isBytes = [](const Napi::Value& v) {
    return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array;
  };
  if (!isBytes(info[0]) || info[0].As<Napi::Uint8Array>().ElementLength() != 16 || !isBytes(info[1])) {
    dpr::ThrowError(info.Env(), "EINVAL", 0, "siphash24(key, data): key must be a 16-byte Uint8Array, data a Uint8Array");
  }
  auto key = info[0].As<Napi::Uint8Array>();
  auto data = info[1].As<Napi::Uint8Array>();
  const uint64_t h = dpr::SipHash24(dpr::SipKeyFromBytes(key.Data()), data.Data(), data.ElementLength());
  return Napi::BigInt::New(info.Env(), h);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("countEstablished", Napi::Function::New(env, CountEstablished));
  exports.Set("listListeners", Napi::Function::New(env, ListListeners));
  exports.Set("listNeighbours6", Napi::Function::New(env, ListNeighbours6));
  exports.Set("hmacSha256", Napi::Function::New(env, HmacSha256Of));
  exports.Set("sdNotify", Napi::Function::New(env, SdNotify));
  exports.Set("Engine", dpr::DefineEngine(env));
  exports.Set("Queue", dpr::DefineQueue(env));
  exports.Set("PeerLink", dpr::DefinePeerLink(env));
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass));
  exports.Set("siphash24", Napi::Function::New(env, SipHash));
  return exports;
}

}  // namespace

NODE_API_MODULE(dpr, Init)
