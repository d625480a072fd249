#include "binding_util.h"

#include <cstring>

#include <arpa/inet.h>

#include <algorithm>

namespace dpr {

namespace {

// Per environment (env instance data): a worker's class must not outlive the
// worker, nor replace the main thread's.
struct AddonData {
  Napi::FunctionReference errorClass;
};

uint32_t U32(Napi::Env env, const Napi::Object& o, const char* key) {
  const Napi::Value v = o.Get(key);
  if (!v.IsNumber()) ThrowError(env, "EINVAL", 0, std::string("option '") + key + "' must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (d < 0 || d > 4294967295.0 || d != static_cast<double>(static_cast<uint32_t>(d))) {
    ThrowError(env, "EINVAL", 0, std::string("option '") + key + "' must be an integer in 0..2^32-1");
  }
  return static_cast<uint32_t>(d);
}

std::string Str(Napi::Env env, const Napi::Object& o, const char* key) {
  const Napi::Value v = o.Get(key);
  if (!v.IsString()) ThrowError(env, "EINVAL", 0, std::string("option '") + key + "' must be a string");
  return v.As<Napi::String>().Utf8Value();
}

template <typename T>
Napi::TypedArrayOf<T> Array(Napi::Env env, const Napi::Object& o, const char* key) {
  const Napi::Value v = o.Get(key);
  if (!v.IsTypedArray()) ThrowError(env, "EINVAL", 0, std::string("option '") + key + "' must be a typed array");
  return v.As<Napi::TypedArrayOf<T>>();
}

// An optional 16-byte key; absent (undefined) leaves it zero: "pick a random one".
SipKey OptionalKey(Napi::Env env, const Napi::Object& o, const char* key) {
  const Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return SipKey{};
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
      v.As<Napi::Uint8Array>().ElementLength() != 16) {
    ThrowError(env, "EINVAL", 0, std::string("option '") + key + "' must be a 16-byte Uint8Array");
  }
  SipKey k = SipKeyFromBytes(v.As<Napi::Uint8Array>().Data());
  if (k.IsZero()) ThrowError(env, "EINVAL", 0, std::string("option '") + key + "' must not be all zero");
  return k;
}

}  // namespace

void SetErrorClass(Napi::Env env, Napi::Function ctor) {
  AddonData* data = env.GetInstanceData<AddonData>();
  if (data == nullptr) {
    data = new AddonData();
    env.SetInstanceData(data);  // deleted with the environment
  }
  data->errorClass = Napi::Persistent(ctor);
}

Napi::Error MakeError(Napi::Env env, const std::string& code, int errnum, const std::string& message) {
  AddonData* data = env.GetInstanceData<AddonData>();
  if (data != nullptr && !data->errorClass.IsEmpty()) {
    Napi::Object err = data->errorClass.New({Napi::String::New(env, message), Napi::String::New(env, code),
                                             Napi::Number::New(env, errnum)});
    return Napi::Error(env, err);
  }
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  err.Set("errno", Napi::Number::New(env, errnum));
  return err;
}

void ThrowError(Napi::Env env, const std::string& code, int errnum, const std::string& message) {
  throw MakeError(env, code, errnum, message);
}

std::vector<Ip6> ReadIp6List(Napi::Env env, const Napi::Value& v, const char* what) {
  std::vector<Ip6> out;
  if (v.IsUndefined()) return out;
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array ||
      v.As<Napi::Uint32Array>().ElementLength() % 4 != 0) {
    ThrowError(env, "EINVAL", 0, std::string(what) + " must be a Uint32Array of 4 words per host id");
  }
  auto a = v.As<Napi::Uint32Array>();
  out.resize(a.ElementLength() / 4);
  for (size_t i = 0; i < a.ElementLength(); ++i) {
    const uint32_t w = htonl(a[i]);  // the word's value read big-endian: its bytes in packet order
    std::memcpy(out[i / 4].b + (i % 4) * 4, &w, 4);
  }
  return out;
}

EngineConfig ReadEngineConfig(Napi::Env env, const Napi::Object& o) {
  EngineConfig c;
  const std::string role = Str(env, o, "role");
  if (role == "entry") c.role = Role::kEntry;
  else if (role == "serve") c.role = Role::kServe;
  else ThrowError(env, "EINVAL", 0, "option 'role' must be 'entry' or 'serve'");
  const std::string policy = Str(env, o, "policy");
  if (policy == "hash") c.policy = Policy::kHash;
  else if (policy == "load") c.policy = Policy::kLoad;
  else ThrowError(env, "EINVAL", 0, "option 'policy' must be 'hash' or 'load'");
  c.self = static_cast<uint16_t>(U32(env, o, "self"));
  const auto service = Array<uint32_t>(env, o, "serviceAddrs");
  const auto cluster = Array<uint32_t>(env, o, "clusterAddrs");
  const auto ports = Array<uint16_t>(env, o, "servicePorts");
  if (service.TypedArrayType() != napi_uint32_array || cluster.TypedArrayType() != napi_uint32_array) {
    ThrowError(env, "EINVAL", 0, "serviceAddrs and clusterAddrs must be Uint32Array");
  }
  if (ports.TypedArrayType() != napi_uint16_array) ThrowError(env, "EINVAL", 0, "servicePorts must be a Uint16Array");
  for (size_t i = 0; i < service.ElementLength(); ++i) c.serviceAddr.push_back(htonl(service[i]));
  for (size_t i = 0; i < cluster.ElementLength(); ++i) c.clusterAddr.push_back(htonl(cluster[i]));
  for (size_t i = 0; i < ports.ElementLength(); ++i) c.servicePorts.push_back(ports[i]);
  c.serviceAddr6 = ReadIp6List(env, o.Get("serviceAddrs6"), "serviceAddrs6");
  c.clusterAddr6 = ReadIp6List(env, o.Get("clusterAddrs6"), "clusterAddrs6");
  c.peerPortBase = static_cast<uint16_t>(U32(env, o, "peerPortBase"));
  c.forwardMark = U32(env, o, "forwardMark");
  c.serveMark = U32(env, o, "serveMark");
  c.maxFlows = U32(env, o, "maxFlows");
  c.maxEmbryonic = U32(env, o, "maxEmbryonic");
  const Napi::Value t = o.Get("timeouts");
  if (!t.IsObject()) ThrowError(env, "EINVAL", 0, "option 'timeouts' must be an object");
  const Napi::Object to = t.As<Napi::Object>();
  c.timeouts.synMs = U32(env, to, "synMs");
  c.timeouts.establishedMs = U32(env, to, "establishedMs");
  c.timeouts.closingMs = U32(env, to, "closingMs");
  if (!to.Get("probationMs").IsUndefined()) c.timeouts.probationMs = U32(env, to, "probationMs");
  if (!to.Get("resetMs").IsUndefined()) c.timeouts.resetMs = U32(env, to, "resetMs");
  if (!o.Get("checkPeerMacs").IsUndefined()) c.checkPeerMacs = o.Get("checkPeerMacs").ToBoolean();
  if (!o.Get("routersBetween").IsUndefined()) {
    const uint32_t r = U32(env, o, "routersBetween");
    if (r > 254) ThrowError(env, "EINVAL", 0, "option 'routersBetween' must be within 0..254");
    c.routersBetween = static_cast<uint8_t>(r);
  }
  if (!o.Get("kernelForward").IsUndefined()) c.kernelForward = o.Get("kernelForward").ToBoolean();
  if (!o.Get("peerMarkMask").IsUndefined()) c.peerMarkMask = U32(env, o, "peerMarkMask");
  if (!o.Get("loadThreshold").IsUndefined()) c.loadThreshold = U32(env, o, "loadThreshold");
  if (!o.Get("randomSeed").IsUndefined()) c.randomSeed = static_cast<uint64_t>(U32(env, o, "randomSeed"));
  c.hashKey = OptionalKey(env, o, "hashKey");
  c.flowKey = OptionalKey(env, o, "flowKey");
  return c;
}

QueueOptions ReadQueueOptions(Napi::Env env, const Napi::Object& o) {
  QueueOptions q;
  const uint32_t num = U32(env, o, "queueNum");
  if (num > 65535) ThrowError(env, "EINVAL", 0, "option 'queueNum' must be within 0..65535");
  q.queueNum = static_cast<uint16_t>(num);
  q.maxLen = U32(env, o, "maxLen");
  q.rcvBufBytes = U32(env, o, "rcvBufBytes");
  if (!o.Get("sndBufBytes").IsUndefined()) q.sndBufBytes = U32(env, o, "sndBufBytes");
  if (!o.Get("flowsQueueNum").IsUndefined()) {
    const uint32_t flows = U32(env, o, "flowsQueueNum");
    if (flows > 65535) ThrowError(env, "EINVAL", 0, "option 'flowsQueueNum' must be within 0..65535");
    q.flowsQueueNum = static_cast<int32_t>(flows);
  }
  q.batchSize = U32(env, o, "batchSize");
  if (!o.Get("ipsetPrefix").IsUndefined()) q.ipsetPrefix = Str(env, o, "ipsetPrefix");
  if (!o.Get("ipsetPrefix6").IsUndefined()) q.ipsetPrefix6 = Str(env, o, "ipsetPrefix6");
  return q;
}

std::vector<uint8_t> ReadWeights(Napi::Env env, const Napi::Value& v) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowError(env, "EINVAL", 0, "setWeights(weights): weights must be a Uint8Array (one per host id)");
  }
  auto a = v.As<Napi::Uint8Array>();
  return std::vector<uint8_t>(a.Data(), a.Data() + std::min<size_t>(a.ElementLength(), 256));
}

std::vector<uint8_t> ReadMacs(Napi::Env env, const Napi::Value& v) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
      v.As<Napi::Uint8Array>().ElementLength() % 6 != 0) {
    ThrowError(env, "EINVAL", 0, "setPeerMacs(macs): macs must be a Uint8Array of 6 bytes per host id");
  }
  auto a = v.As<Napi::Uint8Array>();
  return std::vector<uint8_t>(a.Data(), a.Data() + a.ElementLength());
}

Napi::Object EngineSnapshot(Napi::Env env, EngineCounters& c) {
  auto num = [&](uint64_t v) { return Napi::Number::New(env, static_cast<double>(v)); };
  Napi::Object s = Napi::Object::New(env);
  s.Set("packets", num(c.packets.Get()));
  s.Set("bytes", num(c.bytes.Get()));
  Napi::Object actions = Napi::Object::New(env);
  for (size_t i = 0; i < static_cast<size_t>(Action::kCount); ++i) {
    actions.Set(ActionName(static_cast<Action>(i)), num(c.byAction[i].Get()));
  }
  s.Set("actions", actions);
  Napi::Object parse = Napi::Object::New(env);
  for (size_t i = 1; i < static_cast<size_t>(ParseResult::kCount); ++i) {
    parse.Set(ParseResultName(static_cast<ParseResult>(i)), num(c.byParse[i].Get()));
  }
  s.Set("malformed", parse);
  Napi::Object notes = Napi::Object::New(env);
  for (size_t i = 1; i < static_cast<size_t>(Note::kCount); ++i) {
    notes.Set(NoteName(static_cast<Note>(i)), num(c.byNote[i].Get()));
  }
  s.Set("notes", notes);
  Napi::Object newFlows = Napi::Object::New(env);
  newFlows.Set("local", num(c.newFlowsLocal.Get()));
  newFlows.Set("forwarded", num(c.newFlowsForwarded.Get()));
  // Counted for every possible id (kMaxHosts); shown up to the last one used.
  size_t used = c.newFlowsByTarget.size();
  while (used > 0 && c.newFlowsByTarget[used - 1].Get() == 0) --used;
  Napi::Array byTarget = Napi::Array::New(env, used);
  for (size_t i = 0; i < used; ++i) byTarget.Set(static_cast<uint32_t>(i), num(c.newFlowsByTarget[i].Get()));
  newFlows.Set("byHost", byTarget);
  s.Set("newFlows", newFlows);
  Napi::Object csum = Napi::Object::New(env);
  csum.Set("full", num(c.csumFull.Get()));
  csum.Set("incremental", num(c.csumIncremental.Get()));
  s.Set("checksums", csum);
  Napi::Object flows = Napi::Object::New(env);
  for (size_t i = 1; i < static_cast<size_t>(FlowState::kCount); ++i) {
    flows.Set(FlowStateName(static_cast<FlowState>(i)), num(c.flowsByState[i].load(std::memory_order_relaxed)));
  }
  Napi::Object forwarded = Napi::Object::New(env);
  for (size_t i = 1; i < static_cast<size_t>(FlowState::kCount); ++i) {
    forwarded.Set(FlowStateName(static_cast<FlowState>(i)), num(c.remoteFlowsByState[i].load(std::memory_order_relaxed)));
  }
  flows.Set("forwarded", forwarded);
  flows.Set("expired", num(c.flowsExpired.Get()));
  flows.Set("closed", num(c.flowsClosed.Get()));
  s.Set("flows", flows);
  Napi::Object ipv6 = Napi::Object::New(env);
  uint64_t flows6 = 0;
  for (size_t i = 1; i < static_cast<size_t>(FlowState::kCount); ++i) flows6 += c.flowsByState6[i].load(std::memory_order_relaxed);
  ipv6.Set("packets", num(c.packets6.Get()));
  ipv6.Set("flows", num(flows6));
  s.Set("ipv6", ipv6);
  return s;
}

Napi::Object QueueSnapshot(Napi::Env env, const Queue& queue) {
  const QueueCounters& c = queue.counters();
  const SocketCounters& k = queue.socketCounters();
  auto num = [&](uint64_t v) { return Napi::Number::New(env, static_cast<double>(v)); };
  Napi::Object q = Napi::Object::New(env);
  q.Set("batches", num(c.batches.Get()));
  q.Set("batchPackets", num(c.batchPackets.Get()));
  q.Set("batchMax", num(c.batchMax.Get()));
  q.Set("roundsCut", num(c.roundsCut.Get()));
  q.Set("recvErrors", num(c.recvErrors.Get()));
  q.Set("enobufs", num(c.enobufs.Get() + k.enobufs.Get()));
  q.Set("eintr", num(c.eintr.Get() + k.eintr.Get()));
  q.Set("sendErrors", num(k.sendErrors.Get()));
  q.Set("batchesSplit", num(k.batchesSplit.Get()));
  q.Set("sendLimit", num(queue.sendLimit()));
  q.Set("verdictErrors", num(c.verdictErrors.Get()));
  q.Set("startupAccepted", num(k.startupAccepted.Get()));
  q.Set("startupDropped", num(k.startupDropped.Get()));
  if (queue.options().flowsQueueNum >= 0) {
    q.Set("flowsQueueNum", num(static_cast<uint64_t>(queue.options().flowsQueueNum)));
    q.Set("flowsPackets", num(c.flowsPackets.Get()));
  }
  if (const IpsetCounters* i = queue.ipsetCounters()) {
    Napi::Object k = Napi::Object::New(env);
    k.Set("adds", num(i->adds.Get()));
    k.Set("dels", num(i->dels.Get()));
    k.Set("sends", num(i->sends.Get()));
    k.Set("errors", num(i->errors.Get()));
    k.Set("existing", num(i->existing.Get()));
    k.Set("sendErrors", num(i->sendErrors.Get()));
    k.Set("lastErrno", num(static_cast<uint64_t>(i->lastErrno.load(std::memory_order_relaxed))));
    q.Set("ipset", k);
  }
  q.Set("sockDiagErrors", num(c.sockDiagErrors.Get()));
  return q;
}

namespace {
// Tells a board's handle from any other External a caller might pass.
constexpr napi_type_tag kLoadBoardTag = {0x6470725f6c6f6164ULL, 0x626f617264000001ULL};
}  // namespace

Napi::Value WrapLoadBoard(Napi::Env env, std::shared_ptr<PeerLoadBoard> board) {
  auto* held = new std::shared_ptr<PeerLoadBoard>(std::move(board));
  auto ext = Napi::External<std::shared_ptr<PeerLoadBoard>>::New(
      env, held, [](Napi::Env, std::shared_ptr<PeerLoadBoard>* p) { delete p; });
  ext.TypeTag(&kLoadBoardTag);
  return ext;
}

std::shared_ptr<PeerLoadBoard> UnwrapLoadBoard(Napi::Env env, const Napi::Value& v) {
  if (!v.IsExternal() || !v.As<Napi::External<std::shared_ptr<PeerLoadBoard>>>().CheckTypeTag(&kLoadBoardTag)) {
    ThrowError(env, "EINVAL", 0, "feedLoads(board): board must come from an entry Queue's loadBoard()");
  }
  return *v.As<Napi::External<std::shared_ptr<PeerLoadBoard>>>().Data();
}

}  // namespace dpr
