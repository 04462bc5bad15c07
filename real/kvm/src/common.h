// Helpers shared by every part of the latsim KVM addon: JS errors that carry a
// `code` property and a one-line message, and strict argument readers.
// Leaves out: anything specific to KVM, vCPUs or fds (see vm.cc, vcpu.cc, fdio.cc).
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

namespace latsim {

// Throws a JS Error whose `code` is `code` (e.g. "ENOKVM", "EAPI", "EINVAL").
[[noreturn]] void ThrowCode(Napi::Env env, const std::string& code, const std::string& message);

// Throws a JS Error for a failed syscall: code is the errno name ("EACCES"),
// `errno` the number, `syscall` the operation; message "<what>: <strerror> (<NAME>)".
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const std::string& what);

// The symbolic name of an errno value ("EAGAIN"), or "E<number>" if unknown.
std::string ErrnoName(int err);

// Argument readers: each throws a TypeError-like Error with code EINVAL on bad input.
int ArgFd(const Napi::CallbackInfo& info, size_t i, const char* name);
int64_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t min, int64_t max);
uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i, const char* name);  // number or bigint
bool ArgBool(const Napi::CallbackInfo& info, size_t i, const char* name, bool fallback);
std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name);
bool ArgPresent(const Napi::CallbackInfo& info, size_t i);

// A view of the bytes of a TypedArray or Buffer argument (no copy).
struct Bytes {
  uint8_t* data;
  size_t length;
};
Bytes ArgBytes(const Napi::CallbackInfo& info, size_t i, const char* name);
// Same, but the argument must be a Uint32Array (the dirty-bitmap word layout).
Bytes ArgU32Array(const Napi::CallbackInfo& info, size_t i, const char* name);

// Reads a u64 from a JS value that is a number (safe integer) or a bigint.
uint64_t ValueU64(Napi::Env env, Napi::Value v, const std::string& name);

// CLOCK_MONOTONIC in nanoseconds (the clock process.hrtime.bigint() reads).
uint64_t MonotonicNs();

// Wraps a binding so every error reaching JS carries a `code`: errors raised by
// node-addon-api itself get "EINVAL", C++ exceptions "EINTERNAL".
void EnsureCode(Napi::Error& e);
using NativeFn = Napi::Value (*)(const Napi::CallbackInfo&);
template <NativeFn F>
Napi::Value Guard(const Napi::CallbackInfo& info) {
  try {
    return F(info);
  } catch (Napi::Error& e) {
    EnsureCode(e);
    throw;
  } catch (const std::exception& e) {
    ThrowCode(info.Env(), "EINTERNAL", e.what());
  }
}

// exports[name] = Guard<fn>
#define LATSIM_EXPORT(env, exports, name, fn) (exports).Set(name, Napi::Function::New(env, Guard<fn>, name))

}  // namespace latsim
