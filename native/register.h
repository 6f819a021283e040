// Each source file exports its group of functions through one Register* function;
// addon.cc calls them all.
#pragma once

#include <napi.h>

namespace nm {

void RegisterBpfObject(Napi::Env env, Napi::Object exports);
void RegisterBpfLink(Napi::Env env, Napi::Object exports);
void RegisterBpfPin(Napi::Env env, Napi::Object exports);
void RegisterBpfMap(Napi::Env env, Napi::Object exports);
void RegisterNetns(Napi::Env env, Napi::Object exports);
void RegisterNetnsSocket(Napi::Env env, Napi::Object exports);
void RegisterSockopt(Napi::Env env, Napi::Object exports);
void RegisterCgroup(Napi::Env env, Napi::Object exports);
void RegisterProbe(Napi::Env env, Napi::Object exports);
void RegisterFdChannel(Napi::Env env, Napi::Object exports);

}  // namespace nm
