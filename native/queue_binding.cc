// `Queue`: one NFQUEUE consumer run by a native thread. JavaScript starts and
// stops it, pushes lookup tables, weights and its load counts, and reads
// counter snapshots; it never sees a packet, and the thread never calls into
// JavaScript. The environment's cleanup hook stops and joins the thread, so a
// worker that ends or a process that exits never leaves it running.
#include <napi.h>

#include <arpa/inet.h>

#include <algorithm>
#include <memory>

#include "binding_util.h"
#include "queue.h"

namespace dpr {

namespace {

class ExportWorker : public Napi::AsyncWorker {
 public:
  ExportWorker(Napi::Env env, Napi::Object owner, dpr::Queue* queue, int family)
      : Napi::AsyncWorker(env, "dpr.exportFlows"), owner_(Napi::Persistent(owner)), queue_(queue), family_(family),
        deferred_(Napi::Promise::Deferred::New(env)) {}
  ~ExportWorker() override { delete words_; }
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      words_ = new std::vector<uint32_t>(queue_->ExportFlows(family_));
    } catch (const QueueError& err) {
      code_ = err.code;
      errnum_ = err.errnum;
      SetError(err.what());
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    std::vector<uint32_t>* words = words_;
    words_ = nullptr;
    const size_t n = words->size();
    if (n == 0) {
      delete words;
      deferred_.Resolve(Napi::Uint32Array::New(env, 0));
      return;
    }
    // The buffer owns the vector: freed when JavaScript lets go of the array.
    Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(
        env, words->data(), n * sizeof(uint32_t), [](Napi::Env, void*, std::vector<uint32_t>* v) { delete v; }, words);
    deferred_.Resolve(Napi::Uint32Array::New(env, n, buffer, 0));
  }

  void OnError(const Napi::Error& e) override {
    deferred_.Reject(MakeError(Env(), code_.empty() ? "EIO" : code_, errnum_, e.Message()).Value());
  }

 private:
  Napi::ObjectReference owner_;  // the Queue stays alive while its export runs
  dpr::Queue* queue_;
  int family_;
  Napi::Promise::Deferred deferred_;
  std::vector<uint32_t>* words_ = nullptr;
  std::string code_;
  int errnum_ = 0;
};

class QueueWrap : public Napi::ObjectWrap<QueueWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Queue",
                       {InstanceMethod<&QueueWrap::Start>("start"), InstanceMethod<&QueueWrap::Stop>("stop"),
                        InstanceMethod<&QueueWrap::SetLookupTable>("setLookupTable"),
                        InstanceMethod<&QueueWrap::SetDraining>("setDraining"),
                        InstanceMethod<&QueueWrap::SetHosts>("setHosts"),
                        InstanceMethod<&QueueWrap::SetPeerMacs>("setPeerMacs"),
                        InstanceMethod<&QueueWrap::SetWeights>("setWeights"),
                        InstanceMethod<&QueueWrap::SetLoadThreshold>("setLoadThreshold"),
                        InstanceMethod<&QueueWrap::CalibrateLoad>("calibrateLoad"),
                        InstanceMethod<&QueueWrap::LoadBoard>("loadBoard"),
                        InstanceMethod<&QueueWrap::Stats>("stats"),
                        InstanceMethod<&QueueWrap::ExportFlows>("exportFlows"),
                        InstanceMethod<&QueueWrap::ExportFlowsAsync>("exportFlowsAsync"),
                        InstanceMethod<&QueueWrap::ImportFlows>("importFlows"),
                        InstanceMethod<&QueueWrap::ExportFlows6>("exportFlows6"),
                        InstanceMethod<&QueueWrap::ExportFlows6Async>("exportFlows6Async"),
                        InstanceMethod<&QueueWrap::ImportFlows6>("importFlows6"),
                        InstanceMethod<&QueueWrap::Packets>("packets"),
                        InstanceAccessor<&QueueWrap::Running>("running")});
  }

  // new Queue(queueOptions, engineOptions)
  explicit QueueWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<QueueWrap>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject() || !info[1].IsObject()) ThrowError(env, "EINVAL", 0, "Queue(queueOptions, engineOptions)");
    const QueueOptions q = ReadQueueOptions(env, info[0].As<Napi::Object>());
    EngineConfig e = ReadEngineConfig(env, info[1].As<Napi::Object>());
    try {
      queue_ = std::make_unique<Queue>(q, std::move(e));
    } catch (const QueueError& err) {
      ThrowError(env, err.code, err.errnum, err.what());
    } catch (const std::exception& err) {
      ThrowError(env, "EINVAL", 0, err.what());
    }
    napi_add_env_cleanup_hook(env, &QueueWrap::EnvCleanup, this);
  }

  ~QueueWrap() override {
    napi_remove_env_cleanup_hook(Env(), &QueueWrap::EnvCleanup, this);
    if (queue_) queue_->Stop();
  }

 private:
  static void EnvCleanup(void* arg) { static_cast<QueueWrap*>(arg)->queue_->Stop(); }

  // A started Queue pins its JavaScript object until stop(): without, a
  // caller that kept no reference to it would see its queue unbound at the
  // next garbage collection (the finalizer stops it), packets falling back
  // to the rules' fail-open while the caller believed them served.
  void Start(const Napi::CallbackInfo& info) {
    try {
      queue_->Start();
    } catch (const QueueError& err) {
      ThrowError(info.Env(), err.code, err.errnum, err.what());
    }
    if (!pinned_) {
      Ref();
      pinned_ = true;
    }
  }

  void Stop(const Napi::CallbackInfo&) {
    queue_->Stop();
    if (pinned_) {
      pinned_ = false;
      Unref();
    }
  }

  void SetLookupTable(const Napi::CallbackInfo& info) {
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint16_array) {
      ThrowError(info.Env(), "EINVAL", 0, "setLookupTable(table): table must be a Uint16Array");
    }
    auto t = info[0].As<Napi::Uint16Array>();
    queue_->SetLookupTable(std::make_shared<const LookupTable>(t.Data(), t.Data() + t.ElementLength()));
  }

  void SetDraining(const Napi::CallbackInfo& info) { queue_->SetDraining(info[0].ToBoolean()); }

  // setHosts(serviceAddrs: Uint32Array, clusterAddrs: Uint32Array, serviceAddrs6?, clusterAddrs6?),
  // host order, indexed by id; the IPv6 lists 4 words per id (ReadIp6List).
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
    std::vector<Ip6> s6 = ReadIp6List(info.Env(), info[2], "setHosts: serviceAddrs6");
    std::vector<Ip6> c6 = ReadIp6List(info.Env(), info[3], "setHosts: clusterAddrs6");
    try {
      queue_->SetHosts(std::move(s), std::move(c), std::move(s6), std::move(c6));
    } catch (const QueueError& err) {
      ThrowError(info.Env(), err.code, err.errnum, err.what());
    }
  }
  void SetPeerMacs(const Napi::CallbackInfo& info) { queue_->SetPeerMacs(ReadMacs(info.Env(), info[0])); }

  // setWeights(weights: Uint8Array): hosts[].weight by host id.
  void SetWeights(const Napi::CallbackInfo& info) { queue_->SetWeights(ReadWeights(info.Env(), info[0])); }

  void SetLoadThreshold(const Napi::CallbackInfo& info) {
    if (!info[0].IsNumber()) ThrowError(info.Env(), "EINVAL", 0, "setLoadThreshold(threshold): a number");
    queue_->SetLoadThreshold(info[0].As<Napi::Number>().Uint32Value());
  }

  // calibrateLoad(value, inUse): an exact count of this host's load, and the
  // kernel's TCP sockets in use read with it (negative: none).
  void CalibrateLoad(const Napi::CallbackInfo& info) {
    if (!info[0].IsNumber() || !info[1].IsNumber()) ThrowError(info.Env(), "EINVAL", 0, "calibrateLoad(value, inUse): numbers");
    queue_->CalibrateLoad(info[0].As<Napi::Number>().Uint32Value(), info[1].As<Napi::Number>().Int64Value());
  }

  // loadBoard(): an opaque handle a PeerLink publishes peers' reports to (PeerLink.feedLoads).
  Napi::Value LoadBoard(const Napi::CallbackInfo& info) { return WrapLoadBoard(info.Env(), queue_->loadBoard()); }

  Napi::Value ExportFlows(const Napi::CallbackInfo& info) { return ExportFamily(info, 4); }
  Napi::Value ExportFlows6(const Napi::CallbackInfo& info) { return ExportFamily(info, 6); }

  Napi::Value ExportFamily(const Napi::CallbackInfo& info, int family) {
    try {
      const std::vector<uint32_t> words = queue_->ExportFlows(family);
      Napi::Uint32Array out = Napi::Uint32Array::New(info.Env(), words.size());
      std::copy(words.begin(), words.end(), out.Data());
      return out;
    } catch (const QueueError& err) {
      ThrowError(info.Env(), err.code, err.errnum, err.what());
    }
  }

  // The same, with the wait and the copy on a worker thread: the event loop
  // goes on while the queue thread walks the table (1M flows: tens of ms),
  // and the words are handed over without a copy.
  Napi::Value ExportFlowsAsync(const Napi::CallbackInfo& info) { return ExportAsync(info, 4); }
  Napi::Value ExportFlows6Async(const Napi::CallbackInfo& info) { return ExportAsync(info, 6); }

  Napi::Value ExportAsync(const Napi::CallbackInfo& info, int family) {
    auto* worker = new ExportWorker(info.Env(), info.This().As<Napi::Object>(), queue_.get(), family);
    Napi::Promise promise = worker->Promise();
    worker->Queue();
    return promise;
  }

  Napi::Value ImportFlows(const Napi::CallbackInfo& info) { return ImportFamily(info, 4); }
  Napi::Value ImportFlows6(const Napi::CallbackInfo& info) { return ImportFamily(info, 6); }

  Napi::Value ImportFamily(const Napi::CallbackInfo& info, int family) {
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
      ThrowError(info.Env(), "EINVAL", 0, "importFlows(words): words must be a Uint32Array");
    }
    auto words = info[0].As<Napi::Uint32Array>();
    const size_t perFlow = family == 6 ? Engine::kFlowWords6 : Engine::kFlowWords;
    try {
      const size_t n = queue_->ImportFlows(words.Data(), words.ElementLength() / perFlow, family);
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

  Napi::Value Running(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), queue_->running()); }

  std::unique_ptr<Queue> queue_;
  bool pinned_ = false;  // Ref() taken by start(), given back by stop()
};

}  // namespace

Napi::Function DefineQueue(Napi::Env env) { return QueueWrap::Define(env); }

}  // namespace dpr
