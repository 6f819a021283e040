// Per-environment state: the table of open bpf_object handles (int -> bpf_object*).
// Each Node environment (main thread, worker) loading the addon gets its own table; an
// environment cleanup hook closes whatever JS left open.
#pragma once

#include <napi.h>

#include <cstdint>
#include <map>
#include <string>

struct bpf_object;

namespace nm {

enum class ObjectStage { kOpened, kLoaded, kLoadFailed };

struct ObjectEntry {
  bpf_object* obj = nullptr;
  std::string path;
  ObjectStage stage = ObjectStage::kOpened;
};

class AddonState {
 public:
  AddonState() = default;
  ~AddonState();
  AddonState(const AddonState&) = delete;
  AddonState& operator=(const AddonState&) = delete;

  uint32_t Add(bpf_object* obj, const std::string& path);
  // Throws ERR_NM_BAD_HANDLE for an unknown handle.
  ObjectEntry& Get(Napi::Env env, const char* fn, uint32_t handle);
  // Closes and forgets; throws ERR_NM_BAD_HANDLE for an unknown handle.
  void Close(Napi::Env env, const char* fn, uint32_t handle);
  // Closes every object still open (environment teardown).
  void CloseAll();

 private:
  std::map<uint32_t, ObjectEntry> objects_;
  uint32_t next_handle_ = 1;
};

// Creates the state for `env` and registers the cleanup hook.
void InitAddonState(Napi::Env env);
AddonState& State(Napi::Env env);

}  // namespace nm
