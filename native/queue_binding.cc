// `Queue`: one NFQUEUE consumer run by a native thread. JavaScript starts and
// stops it, pushes lookup tables, answers batched new-flow decisions (load
// policy) and reads counter snapshots; it never sees a packet.
//
// The thread calls into JavaScript only through the thread-safe function, and
// only while it runs: the environment's cleanup hook and the function's
// finalizer both stop and join it, so a worker that ends or a process that
// exits never leaves the thread calling into a torn-down environment.
#include <napi.h>

#include <arpa/inet.h>

#include <algorithm>
#include <memory>

#include "binding_util.h"
#include "queue.h"

namespace dpr {

namespace {

using Batch = std::vector<DecisionRequest>;

// Decision batches waiting for the JavaScript thread, at most: past that a
// new batch is not queued and its SYNs are served here at their deadline.
constexpr size_t kDecideQueueBatches = 256;

void CallDecide(Napi::Env env, Napi::Function callback, std::nullptr_t*, Batch* batch) {
  std::unique_ptr<Batch> owned(batch);
  if (env == nullptr || callback.IsEmpty()) return;  // shutting down: the deadline serves them locally
  constexpr size_t kFields = 6;
  Napi::Uint32Array out = Napi::Uint32Array::New(env, owned->size() * kFields);
  for (size_t i = 0; i < owned->size(); ++i) {
    const DecisionRequest& r = (*owned)[i];
    out[i * kFields + 0] = r.token;
    out[i * kFields + 1] = ntohl(r.key.clientAddr);
    out[i * kFields + 2] = r.key.clientPort;
    out[i * kFields + 3] = ntohl(r.key.serviceAddr);
    out[i * kFields + 4] = r.key.servicePort;
    out[i * kFields + 5] = r.hashTarget;
  }
  callback.Call({out});
}

// What the wrapper and the thread-safe function's finalizer share: either
// may be gone first.
struct Shared {
  std::shared_ptr<Queue> queue;
  bool decideFinalized = false;
};
using SharedRef = std::shared_ptr<Shared>;

// The function is being destroyed (released, or the environment ends): stop
// the thread first, so no call can come from it any more.
void DecideFinalized(Napi::Env, SharedRef* shared, std::nullptr_t*) {
  (*shared)->decideFinalized = true;
  (*shared)->queue->Stop();
  delete shared;
}

using DecideFn = Napi::TypedThreadSafeFunction<std::nullptr_t, Batch, CallDecide>;

class QueueWrap : public Napi::ObjectWrap<QueueWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Queue",
                       {InstanceMethod<&QueueWrap::Start>("start"), InstanceMethod<&QueueWrap::Stop>("stop"),
                        InstanceMethod<&QueueWrap::SetLookupTable>("setLookupTable"),
                        InstanceMethod<&QueueWrap::SetDraining>("setDraining"),
                        InstanceMethod<&QueueWrap::SetHosts>("setHosts"),
                        InstanceMethod<&QueueWrap::SetPeerMacs>("setPeerMacs"),
                        InstanceMethod<&QueueWrap::Decide>("decide"), InstanceMethod<&QueueWrap::Stats>("stats"),
                        InstanceMethod<&QueueWrap::ExportFlows>("exportFlows"),
                        InstanceMethod<&QueueWrap::ImportFlows>("importFlows"),
                        InstanceMethod<&QueueWrap::Packets>("packets"),
                        InstanceMethod<&QueueWrap::ForwardState>("forwardState"),
                        InstanceAccessor<&QueueWrap::Running>("running")});
  }

  // new Queue(queueOptions, engineOptions, onDecide?)
  explicit QueueWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<QueueWrap>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject() || !info[1].IsObject()) {
      ThrowError(env, "EINVAL", 0, "Queue(queueOptions, engineOptions[, onDecide])");
    }
    const QueueOptions q = ReadQueueOptions(env, info[0].As<Napi::Object>());
    EngineConfig e = ReadEngineConfig(env, info[1].As<Napi::Object>());
    if (!info[2].IsFunction() && e.policy == Policy::kLoad && e.role == Role::kEntry) {
      ThrowError(env, "EINVAL", 0, "the load policy needs an onDecide callback");
    }
    try {
      shared_->queue = std::make_shared<Queue>(q, std::move(e), Queue::DecisionSink());
      queue_ = shared_->queue.get();
    } catch (const QueueError& err) {
      ThrowError(env, err.code, err.errnum, err.what());
    } catch (const std::exception& err) {
      ThrowError(env, "EINVAL", 0, err.what());
    }
    if (info[2].IsFunction()) {
      decide_ = DecideFn::New(env, info[2].As<Napi::Function>(), "dpr-decide", kDecideQueueBatches, 1, nullptr,
                              DecideFinalized, new SharedRef(shared_));
      decide_.Unref(env);  // a waiting decision must not keep the process alive
      hasDecide_ = true;
      queue_->SetSink([decide = decide_](Batch&& batch) mutable {
        auto* owned = new Batch(std::move(batch));
        if (decide.NonBlockingCall(owned) == napi_ok) return true;
        delete owned;  // queue full or closing: the deadline serves them locally
        return false;
      });
    }
    // Added after the function, so it runs before the function's own cleanup.
    napi_add_env_cleanup_hook(env, &QueueWrap::EnvCleanup, this);
  }

  ~QueueWrap() override {
    napi_remove_env_cleanup_hook(Env(), &QueueWrap::EnvCleanup, this);
    if (queue_) queue_->Stop();
    if (hasDecide_ && !shared_->decideFinalized) decide_.Release();
  }

 private:
  static void EnvCleanup(void* arg) { static_cast<QueueWrap*>(arg)->queue_->Stop(); }

  void Start(const Napi::CallbackInfo& info) {
    try {
      queue_->Start();
    } catch (const QueueError& err) {
      ThrowError(info.Env(), err.code, err.errnum, err.what());
    }
  }

  void Stop(const Napi::CallbackInfo&) { queue_->Stop(); }

  void SetLookupTable(const Napi::CallbackInfo& info) {
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint16_array) {
      ThrowError(info.Env(), "EINVAL", 0, "setLookupTable(table): table must be a Uint16Array");
    }
    auto t = info[0].As<Napi::Uint16Array>();
    queue_->SetLookupTable(std::make_shared<const LookupTable>(t.Data(), t.Data() + t.ElementLength()));
  }

  void SetDraining(const Napi::CallbackInfo& info) { queue_->SetDraining(info[0].ToBoolean()); }

  // setHosts(serviceAddrs: Uint32Array, clusterAddrs: Uint32Array), host order, indexed by id.
  void SetHosts(const Napi::CallbackInfo& info) {
    for (int i = 0; i < 2; ++i) {
      if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
        ThrowError(info.Env(), "EINVAL", 0, "setHosts(serviceAddrs, clusterAddrs): both must be Uint32Arrays");
      }
    }
    auto service = info[0].As<Napi::Uint32Array>();
    auto cluster = info[1].As<Napi::Uint32Array>();
    std::vector<uint32_t> s, c;
    for (size_t i = 0; i < service.ElementLength(); ++i) s.push_back(htonl(service[i]));
    for (size_t i = 0; i < cluster.ElementLength(); ++i) c.push_back(htonl(cluster[i]));
    try {
      queue_->SetHosts(std::move(s), std::move(c));
    } catch (const QueueError& err) {
      ThrowError(info.Env(), err.code, err.errnum, err.what());
    }
  }
  void SetPeerMacs(const Napi::CallbackInfo& info) { queue_->SetPeerMacs(ReadMacs(info.Env(), info[0])); }

  // decide(tokens: Uint32Array, targets: Uint16Array)
  void Decide(const Napi::CallbackInfo& info) {
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array ||
        !info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint16_array) {
      ThrowError(info.Env(), "EINVAL", 0, "decide(tokens: Uint32Array, targets: Uint16Array)");
    }
    auto tokens = info[0].As<Napi::Uint32Array>();
    auto targets = info[1].As<Napi::Uint16Array>();
    if (tokens.ElementLength() != targets.ElementLength()) {
      ThrowError(info.Env(), "EINVAL", 0, "decide(): tokens and targets differ in length");
    }
    queue_->Decide(std::vector<uint32_t>(tokens.Data(), tokens.Data() + tokens.ElementLength()),
                   std::vector<uint16_t>(targets.Data(), targets.Data() + targets.ElementLength()));
  }

  Napi::Value ExportFlows(const Napi::CallbackInfo& info) {
    try {
      const std::vector<uint32_t> words = queue_->ExportFlows();
      Napi::Uint32Array out = Napi::Uint32Array::New(info.Env(), words.size());
      std::copy(words.begin(), words.end(), out.Data());
      return out;
    } catch (const QueueError& err) {
      ThrowError(info.Env(), err.code, err.errnum, err.what());
    }
  }

  Napi::Value ImportFlows(const Napi::CallbackInfo& info) {
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
      ThrowError(info.Env(), "EINVAL", 0, "importFlows(words): words must be a Uint32Array");
    }
    auto words = info[0].As<Napi::Uint32Array>();
    try {
      const size_t n = queue_->ImportFlows(words.Data(), words.ElementLength() / Engine::kFlowWords);
      return Napi::Number::New(info.Env(), static_cast<double>(n));
    } catch (const QueueError& err) {
      ThrowError(info.Env(), err.code, err.errnum, err.what());
    }
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Object s = EngineSnapshot(info.Env(), queue_->engineCounters());
    s.Set("queue", QueueSnapshot(info.Env(), *queue_));
    s.Set("queueNum", Napi::Number::New(info.Env(), queue_->options().queueNum));
    return s;
  }

  // One number, for "has anything happened since?" checks that must cost
  // less than a whole stats() snapshot.
  Napi::Value Packets(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(queue_->engineCounters().packets.Get()));
  }

  // forwardState(out: Float64Array): [open flows served for us, decisions
  // naming it] per host id, for as many ids as `out` has room for.
  void ForwardState(const Napi::CallbackInfo& info) {
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
      dpr::ThrowError(info.Env(), "EINVAL", 0, "forwardState(out): out must be a Float64Array");
    }
    auto out = info[0].As<Napi::Float64Array>();
    queue_->ForwardState(out.Data(), out.ElementLength() / 2);
  }

  Napi::Value Running(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), queue_->running()); }

  SharedRef shared_ = std::make_shared<Shared>();
  Queue* queue_ = nullptr;
  DecideFn decide_;
  bool hasDecide_ = false;
};

}  // namespace

Napi::Function DefineQueue(Napi::Env env) { return QueueWrap::Define(env); }

}  // namespace dpr
