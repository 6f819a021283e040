#include "addon_state.h"

#include <bpf/libbpf.h>

#include "errors.h"

namespace nm {

AddonState::~AddonState() { CloseAll(); }

uint32_t AddonState::Add(bpf_object* obj, const std::string& path) {
  uint32_t handle = next_handle_++;
  if (next_handle_ == 0 || next_handle_ > 0x7fffffff) next_handle_ = 1;
  ObjectEntry entry;
  entry.obj = obj;
  entry.path = path;
  objects_[handle] = entry;
  return handle;
}

ObjectEntry& AddonState::Get(Napi::Env env, const char* fn, uint32_t handle) {
  auto it = objects_.find(handle);
  if (it == objects_.end()) {
    ThrowCode(env, fn, "ERR_NM_BAD_HANDLE",
              "no open BPF object has handle " + std::to_string(handle) + " (closed already, or never opened)");
  }
  return it->second;
}

void AddonState::Close(Napi::Env env, const char* fn, uint32_t handle) {
  ObjectEntry& entry = Get(env, fn, handle);
  bpf_object__close(entry.obj);
  objects_.erase(handle);
}

void AddonState::CloseAll() {
  for (auto& [handle, entry] : objects_) bpf_object__close(entry.obj);
  objects_.clear();
}

void InitAddonState(Napi::Env env) {
  auto* state = new AddonState();
  // The instance-data finalizer deletes the state (closing leftovers too); the cleanup
  // hook closes the objects as early as the environment starts tearing down.
  env.SetInstanceData<AddonState>(state);
  env.AddCleanupHook([state]() { state->CloseAll(); });
}

AddonState& State(Napi::Env env) { return *env.GetInstanceData<AddonState>(); }

}  // namespace nm
