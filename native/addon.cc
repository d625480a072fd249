// Module entry: the two classes and the hook that tells native code which
// JavaScript class to throw. lib/native.ts is the only file that loads this.
#include <napi.h>

#include "binding_util.h"

namespace dpr {
Napi::Function DefineEngine(Napi::Env env);
Napi::Function DefineQueue(Napi::Env env);
}  // namespace dpr

namespace {

void SetErrorClass(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) throw Napi::TypeError::New(info.Env(), "setErrorClass(ctor): ctor must be a function");
  dpr::SetErrorClass(info.Env(), info[0].As<Napi::Function>());
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Engine", dpr::DefineEngine(env));
  exports.Set("Queue", dpr::DefineQueue(env));
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass));
  return exports;
}

}  // namespace

NODE_API_MODULE(dpr, Init)
