// nodemesh_native: the addon's entry point. See src/datapath/native-binding.ts for the
// surface; each group of functions lives in its own file.
#include <napi.h>

#include "addon_state.h"
#include "libbpf_log.h"
#include "register.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  nm::InstallLibbpfPrint();
  nm::InitAddonState(env);
  nm::RegisterBpfObject(env, exports);
  nm::RegisterBpfLink(env, exports);
  nm::RegisterBpfPin(env, exports);
  nm::RegisterBpfMap(env, exports);
  nm::RegisterNetns(env, exports);
  nm::RegisterNetnsSocket(env, exports);
  nm::RegisterSockopt(env, exports);
  nm::RegisterCgroup(env, exports);
  nm::RegisterProbe(env, exports);
  nm::RegisterFdChannel(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(nodemesh_native, Init)
