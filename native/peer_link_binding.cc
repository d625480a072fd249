// `PeerLink`: heartbeats in a native thread (peer_link.h). JavaScript sets
// the peers and this host's state, hears changes as batched events, and reads
// snapshots and counters; lib/peers.ts wraps it in the Peers class.
#include <napi.h>

#include <arpa/inet.h>
#include <sys/socket.h>

#include <memory>

#include "binding_util.h"
#include "peer_link.h"

namespace dpr {

namespace {

using Events = std::vector<PeerEvent>;

void CallEvents(Napi::Env env, Napi::Function callback, std::nullptr_t*, Events* events) {
  std::unique_ptr<Events> owned(events);
  if (env == nullptr || callback.IsEmpty()) return;  // shutting down
  try {
    Napi::Uint32Array out = Napi::Uint32Array::New(env, owned->size() * 3);
    for (size_t i = 0; i < owned->size(); ++i) {
      out[i * 3] = static_cast<uint32_t>((*owned)[i].type);
      out[i * 3 + 1] = (*owned)[i].id;
      out[i * 3 + 2] = (*owned)[i].value;
    }
    callback.Call({out});
  } catch (const Napi::Error& err) {
    // Events still queued when the process exits are delivered while the
    // environment is torn down, when no JavaScript can run: every call fails,
    // and so does throwing the failure back, which node-addon-api would turn
    // into std::terminate (an exit by SIGABRT). Nobody is left to tell, so
    // those events are dropped. A listener's own exception is thrown back to
    // JavaScript, as node-addon-api does itself.
    if (!err.IsEmpty()) (void)napi_throw(env, err.Value());
  }
}

using EventFn = Napi::TypedThreadSafeFunction<std::nullptr_t, Events, CallEvents>;

PeerAddress ReadAddress(Napi::Env env, const std::string& text, uint32_t port, uint16_t id) {
  PeerAddress a;
  a.id = id;
  a.port = static_cast<uint16_t>(port);
  if (inet_pton(AF_INET, text.c_str(), a.addr) == 1) {
    a.family = AF_INET;
  } else if (inet_pton(AF_INET6, text.c_str(), a.addr) == 1) {
    a.family = AF_INET6;
  } else {
    ThrowError(env, "EINVAL", 0, "peers: not an IP address: " + text);
  }
  return a;
}

std::string AddressText(const PeerAddress& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(a.family, a.addr, buf, sizeof buf);
  return buf;
}

uint32_t U32(Napi::Env env, const Napi::Object& o, const char* key) {
  const Napi::Value v = o.Get(key);
  if (!v.IsNumber()) ThrowError(env, "EINVAL", 0, std::string("peers: option '") + key + "' must be a number");
  return v.As<Napi::Number>().Uint32Value();
}

class PeerLinkWrap : public Napi::ObjectWrap<PeerLinkWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "PeerLink",
                       {InstanceMethod<&PeerLinkWrap::Start>("start"), InstanceMethod<&PeerLinkWrap::Stop>("stop"),
                        InstanceMethod<&PeerLinkWrap::SetPeers>("setPeers"), InstanceMethod<&PeerLinkWrap::SetLocal>("setLocal"),
                        InstanceMethod<&PeerLinkWrap::Announce>("announce"), InstanceMethod<&PeerLinkWrap::Snapshot>("snapshot"),
                        InstanceMethod<&PeerLinkWrap::Counters>("counters"), InstanceMethod<&PeerLinkWrap::LocalPort>("localPort"),
                        InstanceMethod<&PeerLinkWrap::SetKeys>("setKeys"),
                        InstanceMethod<&PeerLinkWrap::FeedLoads>("feedLoads")});
  }

  // new PeerLink({ self, bindAddress, port, key, heartbeatMs, deadAfterMs, watchers?, slowEvery?, watchPorts, watchEveryMs }, onEvents)
  explicit PeerLinkWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PeerLinkWrap>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject() || !info[1].IsFunction()) ThrowError(env, "EINVAL", 0, "PeerLink(options, onEvents)");
    const Napi::Object o = info[0].As<Napi::Object>();
    PeerLinkOptions opts;
    opts.self = static_cast<uint16_t>(U32(env, o, "self"));
    const Napi::Value bindAddress = o.Get("bindAddress");
    if (!bindAddress.IsString()) ThrowError(env, "EINVAL", 0, "peers: option 'bindAddress' must be a string");
    opts.bind = ReadAddress(env, bindAddress.As<Napi::String>().Utf8Value(), U32(env, o, "port"), opts.self);
    const Napi::Value key = o.Get("key");
    if (!key.IsTypedArray() || key.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      ThrowError(env, "EINVAL", 0, "peers: option 'key' must be a Buffer");
    }
    auto k = key.As<Napi::Uint8Array>();
    opts.key.assign(k.Data(), k.Data() + k.ElementLength());
    opts.heartbeatMs = U32(env, o, "heartbeatMs");
    opts.deadAfterMs = U32(env, o, "deadAfterMs");
    if (o.Has("watchers")) opts.watchers = U32(env, o, "watchers");
    if (o.Has("slowEvery")) opts.slowEvery = U32(env, o, "slowEvery");
    const Napi::Value watch = o.Get("watchPorts");
    if (watch.IsTypedArray() && watch.As<Napi::TypedArray>().TypedArrayType() == napi_uint16_array) {
      auto w = watch.As<Napi::Uint16Array>();
      opts.watchPorts.assign(w.Data(), w.Data() + w.ElementLength());
    }
    if (o.Has("watchEveryMs")) opts.watchEveryMs = U32(env, o, "watchEveryMs");
    events_ = EventFn::New(env, info[1].As<Napi::Function>(), "dpr-peers", 64, 1);
    events_.Unref(env);  // heartbeats must not keep the process alive
    try {
      link_ = std::make_unique<PeerLink>(std::move(opts), [this](Events&& batch) {
        auto* owned = new Events(std::move(batch));
        if (events_.NonBlockingCall(owned) != napi_ok) delete owned;  // the JS side reads snapshots anyway
      });
    } catch (const PeerLinkError& err) {
      events_.Release();
      ThrowError(env, err.code, err.errnum, err.what());
    }
    // The thread must be gone before the environment is: it calls into it.
    cleanup_ = env.AddCleanupHook(TearDown, this);
    env_ = env;
  }

  ~PeerLinkWrap() override {
    // Collected while the environment lives: the hook has not run, and must not.
    if (!tornDown_) cleanup_.Remove(env_);
    TearDown(this);
  }

 private:
  void Start(const Napi::CallbackInfo& info) {
    try {
      link_->Start();
    } catch (const PeerLinkError& err) {
      ThrowError(info.Env(), err.code, err.errnum, err.what());
    }
  }

  void Stop(const Napi::CallbackInfo&) { link_->Stop(); }

  // setPeers([{ id, address, port }])
  void SetPeers(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsArray()) ThrowError(env, "EINVAL", 0, "setPeers(peers): peers must be an array");
    const Napi::Array list = info[0].As<Napi::Array>();
    std::vector<PeerAddress> peers;
    for (uint32_t i = 0; i < list.Length(); ++i) {
      const Napi::Value v = list.Get(i);
      if (!v.IsObject()) ThrowError(env, "EINVAL", 0, "setPeers(peers): every peer must be an object");
      const Napi::Object p = v.As<Napi::Object>();
      const Napi::Value address = p.Get("address");
      if (!address.IsString()) ThrowError(env, "EINVAL", 0, "setPeers(peers): address must be a string");
      peers.push_back(ReadAddress(env, address.As<Napi::String>().Utf8Value(), U32(env, p, "port"), static_cast<uint16_t>(U32(env, p, "id"))));
    }
    link_->SetPeers(peers);
  }

  // setLocal(load, draining, healthy)
  void SetLocal(const Napi::CallbackInfo& info) {
    link_->SetLocal(info[0].As<Napi::Number>().Uint32Value(), info[1].ToBoolean(), info[2].ToBoolean());
  }

  void Announce(const Napi::CallbackInfo&) { link_->Announce(); }

  // feedLoads(board): an entry Queue's loadBoard(); accepted reports go there too.
  void FeedLoads(const Napi::CallbackInfo& info) { link_->FeedLoads(UnwrapLoadBoard(info.Env(), info[0])); }

  // setKeys(sign: Uint8Array, others: Uint8Array[])
  void SetKeys(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto bytes = [&](const Napi::Value& v) {
      if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
        ThrowError(env, "EINVAL", 0, "setKeys(sign, others): keys must be Buffers");
      }
      auto a = v.As<Napi::Uint8Array>();
      return std::vector<uint8_t>(a.Data(), a.Data() + a.ElementLength());
    };
    const std::vector<uint8_t> sign = bytes(info[0]);
    std::vector<std::vector<uint8_t>> others;
    if (!info[1].IsArray()) ThrowError(env, "EINVAL", 0, "setKeys(sign, others): others must be an array");
    const Napi::Array list = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < list.Length(); ++i) others.push_back(bytes(list.Get(i)));
    try {
      link_->SetKeys(sign, others);
    } catch (const PeerLinkError& err) {
      ThrowError(env, err.code, err.errnum, err.what());
    }
  }

  Napi::Value Snapshot(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const std::vector<PeerView> views = link_->Snapshot();
    Napi::Array out = Napi::Array::New(env, views.size());
    for (size_t i = 0; i < views.size(); ++i) {
      const PeerView& v = views[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("id", Napi::Number::New(env, v.address.id));
      o.Set("address", Napi::String::New(env, AddressText(v.address)));
      o.Set("port", Napi::Number::New(env, v.address.port));
      o.Set("up", Napi::Boolean::New(env, v.up));
      o.Set("draining", Napi::Boolean::New(env, v.draining));
      o.Set("healthy", Napi::Boolean::New(env, v.healthy));
      o.Set("load", Napi::Number::New(env, v.load));
      o.Set("epoch", v.heard ? Napi::Number::New(env, static_cast<double>(v.epoch)) : env.Null());
      o.Set("seq", v.heard ? Napi::Number::New(env, static_cast<double>(v.seq)) : env.Null());
      o.Set("lastHeardMs", v.heard ? Napi::Number::New(env, v.lastHeardAgoMs) : env.Null());
      o.Set("watcher", Napi::Boolean::New(env, v.watcher));
      o.Set("subject", Napi::Boolean::New(env, v.subject));
      out.Set(static_cast<uint32_t>(i), o);
    }
    return out;
  }

  Napi::Value Counters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    PeerLinkCounters& c = link_->counters();
    auto num = [&](uint64_t v) { return Napi::Number::New(env, static_cast<double>(v)); };
    Napi::Object o = Napi::Object::New(env);
    o.Set("sent", num(c.sent.load()));
    o.Set("sendErrors", num(c.sendErrors.load()));
    o.Set("received", num(c.received.load()));
    o.Set("accepted", num(c.accepted.load()));
    Napi::Object rejected = Napi::Object::New(env);
    for (size_t i = 0; i < static_cast<size_t>(HeartbeatReject::kCount); ++i) {
      rejected.Set(HeartbeatRejectName(static_cast<HeartbeatReject>(i)), num(c.rejected[i].load()));
    }
    o.Set("rejected", rejected);
    o.Set("downNoticesSent", num(c.downNoticesSent.load()));
    o.Set("downNoticesAccepted", num(c.downNoticesAccepted.load()));
    o.Set("downNoticesActedOn", num(c.downNoticesActedOn.load()));
    o.Set("ticks", num(c.ticks.load()));
    // The largest lateness of the thread's tick since the last read, then reset.
    o.Set("tickLateMaxMs", num(c.tickLateMaxMs.exchange(0)));
    return o;
  }

  Napi::Value LocalPort(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), link_->LocalPort()); }

  // At environment teardown (process exit) or collection, whichever comes
  // first: stop the thread, then let go of the callback it used.
  static void TearDown(PeerLinkWrap* self) {
    if (self->tornDown_) return;
    self->tornDown_ = true;
    if (self->link_) self->link_->Stop();
    self->events_.Release();
  }

  std::unique_ptr<PeerLink> link_;
  EventFn events_;
  Napi::Env env_ = nullptr;
  Napi::Env::CleanupHook<void (*)(PeerLinkWrap*), PeerLinkWrap> cleanup_;
  bool tornDown_ = false;
};

}  // namespace

Napi::Function DefinePeerLink(Napi::Env env) { return PeerLinkWrap::Define(env); }

}  // namespace dpr
