// Module entry: the two classes, the hook that tells native code which
// JavaScript class to throw, and two helpers (socket count, keyed hash).
// lib/native.ts is the only file that loads this.
#include <napi.h>

#include <cstring>
#include <string>

#include "binding_util.h"
#include "siphash.h"
#include "sock_diag.h"

namespace dpr {
Napi::Function DefineEngine(Napi::Env env);
Napi::Function DefineQueue(Napi::Env env);
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
  exports.Set("Engine", dpr::DefineEngine(env));
  exports.Set("Queue", dpr::DefineQueue(env));
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass));
  exports.Set("siphash24", Napi::Function::New(env, SipHash));
  return exports;
}

}  // namespace

NODE_API_MODULE(dpr, Init)
