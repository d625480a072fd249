// `Engine`: the per-packet logic without a queue, for packet fixtures, the
// scale bench and anything else that must run the data path's own code on
// bytes it supplies. Not used by the daemon.
#include <napi.h>

#include <arpa/inet.h>

#include <algorithm>
#include <memory>

#include "binding_util.h"
#include "engine.h"

namespace dpr {

namespace {

class EngineWrap : public Napi::ObjectWrap<EngineWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Engine",
                       {InstanceMethod<&EngineWrap::ProcessPacket>("process"),
                        InstanceMethod<&EngineWrap::SetWeights>("setWeights"),
                        InstanceMethod<&EngineWrap::SetLoadThreshold>("setLoadThreshold"),
                        InstanceMethod<&EngineWrap::CalibrateLoad>("calibrateLoad"),
                        InstanceMethod<&EngineWrap::PublishPeerLoad>("publishPeerLoad"),
                        InstanceMethod<&EngineWrap::SetPeerHeardOften>("setPeerHeardOften"),
                        InstanceMethod<&EngineWrap::LoadEstimate>("loadEstimate"),
                        InstanceMethod<&EngineWrap::LoadBoard>("loadBoard"),
                        InstanceMethod<&EngineWrap::SetLookupTable>("setLookupTable"),
                        InstanceMethod<&EngineWrap::SetDraining>("setDraining"),
                        InstanceMethod<&EngineWrap::SetPeerMacs>("setPeerMacs"),
                        InstanceMethod<&EngineWrap::SetHosts>("setHosts"),
                        InstanceMethod<&EngineWrap::HashTarget>("hashTarget"),
                        InstanceMethod<&EngineWrap::Sweep>("sweep"),
                        InstanceMethod<&EngineWrap::Stats>("stats"),
                        InstanceMethod<&EngineWrap::ExportFlows>("exportFlows"),
                        InstanceMethod<&EngineWrap::ImportFlows>("importFlows"),
                        InstanceMethod<&EngineWrap::ExportFlows6>("exportFlows6"),
                        InstanceMethod<&EngineWrap::ImportFlows6>("importFlows6"),
                        InstanceMethod<&EngineWrap::Info>("info")});
  }

  explicit EngineWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineWrap>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) ThrowError(env, "EINVAL", 0, "Engine(options): options must be an object");
    EngineConfig config = ReadEngineConfig(env, info[0].As<Napi::Object>());
    try {
      engine_ = std::make_unique<Engine>(std::move(config));
      engine_->loadDecider().SetBoard(board_);
    } catch (const std::exception& e) {
      ThrowError(env, "EINVAL", 0, e.what());
    }
  }

 private:
  // process(bytes: Uint8Array, csumNotReady: boolean, nowMs: number): the
  // bytes are rewritten in place when the outcome says `mangled`.
  Napi::Value ProcessPacket(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      ThrowError(env, "EINVAL", 0, "process(bytes): bytes must be a Uint8Array");
    }
    auto bytes = info[0].As<Napi::Uint8Array>();
    PacketMeta meta;
    meta.csumNotReady = info[1].ToBoolean();
    const uint32_t now = info[2].IsNumber() ? info[2].As<Napi::Number>().Uint32Value() : 0;
    // process(bytes, csumNotReady, nowMs, {wireLength?, srcMac?}): what the queue reads from the kernel.
    if (info[3].IsObject()) {
      const Napi::Object m = info[3].As<Napi::Object>();
      if (m.Get("wireLength").IsNumber()) meta.wireLength = m.Get("wireLength").As<Napi::Number>().Uint32Value();
      const Napi::Value mac = m.Get("srcMac");
      if (!mac.IsUndefined()) {
        if (!mac.IsTypedArray() || mac.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
            mac.As<Napi::Uint8Array>().ElementLength() != 6) {
          ThrowError(env, "EINVAL", 0, "process(): meta.srcMac must be a 6-byte Uint8Array");
        }
        meta.srcMac = mac.As<Napi::Uint8Array>().Data();
      }
    }
    const Outcome o = engine_->Process(bytes.Data(), bytes.ElementLength(), meta, now);
    return OutcomeObject(env, o);
  }

  // setWeights(weights: Uint8Array): hosts[].weight by host id.
  void SetWeights(const Napi::CallbackInfo& info) { engine_->loadDecider().SetWeights(ReadWeights(info.Env(), info[0])); }

  void SetLoadThreshold(const Napi::CallbackInfo& info) {
    engine_->loadDecider().SetThreshold(info[0].As<Napi::Number>().Uint32Value());
  }

  // calibrateLoad(value, inUse): as the daemon's load meter does (inUse < 0: none, value stands).
  void CalibrateLoad(const Napi::CallbackInfo& info) {
    engine_->loadDecider().own().Calibrate(info[0].As<Napi::Number>().Uint32Value(),
                                           static_cast<int64_t>(info[1].As<Napi::Number>().Int64Value()));
  }

  // publishPeerLoad(id, load): a heartbeat's report, as the heartbeat thread publishes it.
  void PublishPeerLoad(const Napi::CallbackInfo& info) {
    board_->Publish(static_cast<uint16_t>(info[0].As<Napi::Number>().Uint32Value()), info[1].As<Napi::Number>().Uint32Value());
  }

  // setPeerHeardOften(id, often): whether every report of the peer reaches us, as the heartbeat thread says it.
  void SetPeerHeardOften(const Napi::CallbackInfo& info) {
    board_->SetHeardOften(static_cast<uint16_t>(info[0].As<Napi::Number>().Uint32Value()), info[1].As<Napi::Boolean>().Value());
  }

  // loadBoard(): this engine's board, for a PeerLink to publish to (as an entry Queue's).
  Napi::Value LoadBoard(const Napi::CallbackInfo& info) { return WrapLoadBoard(info.Env(), board_); }

  Napi::Value LoadEstimate(const Napi::CallbackInfo& info) {
    const double e = engine_->loadDecider().Estimate(static_cast<uint16_t>(info[0].As<Napi::Number>().Uint32Value()), engine_->flows().openRemote());
    return Napi::Number::New(info.Env(), e);
  }

  void SetLookupTable(const Napi::CallbackInfo& info) {
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint16_array) {
      ThrowError(info.Env(), "EINVAL", 0, "setLookupTable(table): table must be a Uint16Array");
    }
    auto t = info[0].As<Napi::Uint16Array>();
    engine_->SetLookupTable(std::make_shared<const LookupTable>(t.Data(), t.Data() + t.ElementLength()));
  }

  void SetDraining(const Napi::CallbackInfo& info) { engine_->SetDraining(info[0].ToBoolean()); }

  void SetPeerMacs(const Napi::CallbackInfo& info) { engine_->SetPeerMacs(ReadMacs(info.Env(), info[0])); }

  // setHosts(serviceAddrs, clusterAddrs, serviceAddrs6?, clusterAddrs6?), as a Queue's.
  void SetHosts(const Napi::CallbackInfo& info) {
    for (int i = 0; i < 2; ++i) {
      if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
        ThrowError(info.Env(), "EINVAL", 0, "setHosts(serviceAddrs, clusterAddrs): both must be Uint32Arrays");
      }
    }
    std::vector<uint32_t> s, c;
    for (uint32_t v : Words(info[0].As<Napi::Uint32Array>())) s.push_back(htonl(v));
    for (uint32_t v : Words(info[1].As<Napi::Uint32Array>())) c.push_back(htonl(v));
    try {
      engine_->SetHosts(std::move(s), std::move(c), ReadIp6List(info.Env(), info[2], "setHosts: serviceAddrs6"),
                        ReadIp6List(info.Env(), info[3], "setHosts: clusterAddrs6"));
    } catch (const std::invalid_argument& err) {
      ThrowError(info.Env(), "EINVAL", 0, err.what());
    }
  }

  static std::vector<uint32_t> Words(const Napi::Uint32Array& a) { return std::vector<uint32_t>(a.Data(), a.Data() + a.ElementLength()); }

  Napi::Value HashTarget(const Napi::CallbackInfo& info) {
    const uint16_t t = engine_->HashTarget(htonl(info[0].As<Napi::Number>().Uint32Value()),
                                           static_cast<uint16_t>(info[1].As<Napi::Number>().Uint32Value()));
    return Napi::Number::New(info.Env(), t);
  }

  Napi::Value Sweep(const Napi::CallbackInfo& info) {
    const size_t removed = engine_->Sweep(info[0].As<Napi::Number>().Uint32Value(), info[1].As<Napi::Number>().Uint32Value());
    return Napi::Number::New(info.Env(), static_cast<double>(removed));
  }

  Napi::Value ExportFlows(const Napi::CallbackInfo& info) { return ExportFamily(info, 4); }
  Napi::Value ExportFlows6(const Napi::CallbackInfo& info) { return ExportFamily(info, 6); }
  Napi::Value ImportFlows(const Napi::CallbackInfo& info) { return ImportFamily(info, 4); }
  Napi::Value ImportFlows6(const Napi::CallbackInfo& info) { return ImportFamily(info, 6); }

  Napi::Value ExportFamily(const Napi::CallbackInfo& info, int family) {
    const uint32_t now = info[0].As<Napi::Number>().Uint32Value();
    const std::vector<uint32_t> words = family == 6 ? engine_->ExportFlows6(now) : engine_->ExportFlows(now);
    Napi::Uint32Array out = Napi::Uint32Array::New(info.Env(), words.size());
    std::copy(words.begin(), words.end(), out.Data());
    return out;
  }

  Napi::Value ImportFamily(const Napi::CallbackInfo& info, int family) {
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
      ThrowError(info.Env(), "EINVAL", 0, "importFlows(words, nowMs): words must be a Uint32Array");
    }
    auto words = info[0].As<Napi::Uint32Array>();
    const uint32_t now = info[1].As<Napi::Number>().Uint32Value();
    const size_t n = family == 6 ? engine_->ImportFlows6(words.Data(), words.ElementLength() / Engine::kFlowWords6, now)
                                 : engine_->ImportFlows(words.Data(), words.ElementLength() / Engine::kFlowWords, now);
    return Napi::Number::New(info.Env(), static_cast<double>(n));
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    engine_->Sweep(0, 0);  // publishes the per-state flow counts
    return EngineSnapshot(info.Env(), engine_->counters());
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    const FlowTable& f = engine_->flows();
    o.Set("flows", Napi::Number::New(env, static_cast<double>(f.size())));
    o.Set("capacity", Napi::Number::New(env, static_cast<double>(f.capacity())));
    o.Set("maxFlows", Napi::Number::New(env, static_cast<double>(f.maxFlows())));
    o.Set("entryBytes", Napi::Number::New(env, static_cast<double>(sizeof(FlowEntry))));
    o.Set("longestProbe", Napi::Number::New(env, static_cast<double>(f.LongestProbe())));
    o.Set("bytesPerFlowAtMax", Napi::Number::New(env, static_cast<double>(f.BytesPerFlowAtMax())));
    if (const FlowTable6* f6 = engine_->flows6()) {
      Napi::Object six = Napi::Object::New(env);
      six.Set("flows", Napi::Number::New(env, static_cast<double>(f6->size())));
      six.Set("entryBytes", Napi::Number::New(env, static_cast<double>(sizeof(FlowEntry6))));
      six.Set("longestProbe", Napi::Number::New(env, static_cast<double>(f6->LongestProbe())));
      six.Set("bytesPerFlowAtMax", Napi::Number::New(env, static_cast<double>(f6->BytesPerFlowAtMax())));
      o.Set("ipv6", six);
    }
    return o;
  }

  static Napi::Object OutcomeObject(Napi::Env env, const Outcome& o) {
    Napi::Object r = Napi::Object::New(env);
    r.Set("action", Napi::String::New(env, ActionName(o.action)));
    r.Set("malformed", o.parse == ParseResult::kOk ? env.Null() : Napi::String::New(env, ParseResultName(o.parse)));
    r.Set("note", o.note == Note::kNone ? env.Null() : Napi::String::New(env, NoteName(o.note)));
    r.Set("mangled", Napi::Boolean::New(env, o.mangled));
    r.Set("mark", Napi::Number::New(env, o.mark));
    r.Set("target", Napi::Number::New(env, o.target));
    return r;
  }

  std::shared_ptr<PeerLoadBoard> board_ = std::make_shared<PeerLoadBoard>();
  std::unique_ptr<Engine> engine_;
};

}  // namespace

Napi::Function DefineEngine(Napi::Env env) { return EngineWrap::Define(env); }

}  // namespace dpr
