// What the C API's source files share (capi/*.cc): the opaque handles of include/lowbit.h and the
// argument, error and buffer helpers every entry point uses. Private to capi/.
#pragma once

#include "lowbit.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "convert/convert.h"
#include "convert/load.h"
#include "kernels/error.h"
#include "kernels/matmul.h"
#include "kernels/qtype.h"
#include "kernels/quantize.h"
#include "kernels/thread_pool.h"
#include "runtime/batch.h"
#include "runtime/chat/chat_template.h"
#include "runtime/chat/thinking.h"
#include "runtime/chat/tool_calls.h"
#include "runtime/generate.h"
#include "runtime/json_mode.h"
#include "runtime/model.h"
#include "runtime/sampler.h"

// The opaque handles. Each holds what the C++ objects need to outlive one call.
struct lowbit_model {
  std::shared_ptr<const lowbit::Model> model;
  std::shared_ptr<lowbit::LazyJsonTokens> json;  // the format's token texts; null without a tokenizer
};

struct lowbit_session {
  // Shares the model, so freeing the model handle first cannot leave the session dangling.
  std::shared_ptr<const lowbit::Model> model;
  std::shared_ptr<lowbit::LazyJsonTokens> json;
  std::unique_ptr<lowbit::Session> session;
  // The ids at positions 0 .. position() - 1: the penalties' window of the next generation
  // starts before its prompt, as when the whole conversation is fed at once.
  std::vector<int32_t> tokens;
};

struct lowbit_sampler {
  explicit lowbit_sampler(const lowbit::SamplerParams& p) : sampler(p) {}
  lowbit::Sampler sampler;
  std::vector<int32_t> recent;  // scratch: Sampler::sample takes a vector
};

struct lowbit_batch {
  std::shared_ptr<const lowbit::Model> model;  // kept loaded while the batch lives
  std::shared_ptr<lowbit::LazyJsonTokens> json;
  std::unique_ptr<lowbit::Scheduler> scheduler;
  std::vector<lowbit_batch_event> events;       // the last step's, pointing into its events
};

struct lowbit_tools {
  std::shared_ptr<const lowbit::Model> model;  // kept loaded while the tools live
  std::unique_ptr<lowbit::ChatTemplate> tmpl;
  nlohmann::ordered_json tools;
  lowbit::ToolCallSyntax syntax;
  lowbit::ToolCallSyntax::Plan plan;
  std::string format;  // the forced reply's schema as text; "" when not forced
};

struct lowbit_thinking {
  lowbit::ThinkingSplitter splitter;
  lowbit::ThinkingSplitter::Parts last;  // the last feed's
};

struct lowbit_qtensor {
  lowbit::QMatrix matrix;  // matrix.data points into storage
  std::string type_name;
  size_t nbytes = 0;
  std::unique_ptr<uint8_t, decltype(&std::free)> storage{nullptr, &std::free};  // 64-byte aligned
};

namespace lowbit::capi {

inline thread_local std::string t_last_error;

// An error the C layer raises itself, with the status it should report.
class ApiError : public std::runtime_error {
 public:
  ApiError(lowbit_status s, const std::string& message) : std::runtime_error(message), status(s) {}
  lowbit_status status;
};

[[noreturn]] inline void fail(lowbit_status s, const std::string& message) { throw ApiError(s, message); }

// The status of a lowbit::Error's code. ErrorCode::unspecified (a check that cannot tell an
// argument from a file, e.g. a parser's) stands for whatever the call's input was: the caller
// names that status.
inline lowbit_status status_of(ErrorCode code, lowbit_status unspecified) {
  switch (code) {
    case ErrorCode::unspecified: return unspecified;
    case ErrorCode::invalid_argument: return LOWBIT_INVALID_ARGUMENT;
    case ErrorCode::not_found: return LOWBIT_NOT_FOUND;
    case ErrorCode::io: return LOWBIT_IO;
    case ErrorCode::bad_format: return LOWBIT_FORMAT;
    case ErrorCode::version: return LOWBIT_VERSION;
    case ErrorCode::out_of_memory: return LOWBIT_OUT_OF_MEMORY;
    case ErrorCode::context_full: return LOWBIT_CONTEXT_FULL;
    case ErrorCode::cancelled: return LOWBIT_CANCELLED;
    case ErrorCode::internal: return LOWBIT_INTERNAL;
  }
  return LOWBIT_INTERNAL;
}

// Runs body; maps what it throws to a status by the error's code (never by its message).
template <class F>
inline lowbit_status guard(lowbit_status unspecified, F&& body) {
  try {
    body();
    t_last_error.clear();
    return LOWBIT_OK;
  } catch (const ApiError& e) {
    t_last_error = e.what();
    return e.status;
  } catch (const Error& e) {
    t_last_error = e.what();
    return status_of(e.code(), unspecified);
  } catch (const std::bad_alloc&) {
    t_last_error = "out of memory";
    return LOWBIT_OUT_OF_MEMORY;
  } catch (const std::filesystem::filesystem_error& e) {
    t_last_error = e.what();
    return LOWBIT_IO;
  } catch (const std::exception& e) {
    t_last_error = std::string("internal error: ") + e.what();
    return LOWBIT_INTERNAL;
  } catch (...) {
    t_last_error = "internal error: unknown exception";
    return LOWBIT_INTERNAL;
  }
}

// The live-handle table: a handle is valid only between its create and its free. Looking a pointer
// up never dereferences it, so a freed handle is reported instead of read.
enum class Kind { model, session, sampler, qtensor, batch, tools, thinking };

inline const char* kind_name(Kind k) {
  switch (k) {
    case Kind::model: return "lowbit_model";
    case Kind::session: return "lowbit_session";
    case Kind::sampler: return "lowbit_sampler";
    case Kind::qtensor: return "lowbit_qtensor";
    case Kind::batch: return "lowbit_batch";
    case Kind::tools: return "lowbit_tools";
    case Kind::thinking: return "lowbit_thinking";
  }
  return "handle";
}

inline std::mutex g_handles_mutex;
inline std::unordered_map<const void*, Kind>& handles() {
  static auto* table = new std::unordered_map<const void*, Kind>();  // never destroyed: safe at exit
  return *table;
}

template <class T>
T* track(std::unique_ptr<T> p, Kind kind) {
  std::lock_guard<std::mutex> lock(g_handles_mutex);
  handles()[p.get()] = kind;
  return p.release();
}

inline bool is_live(const void* p, Kind kind) {
  std::lock_guard<std::mutex> lock(g_handles_mutex);
  auto it = handles().find(p);
  return it != handles().end() && it->second == kind;
}

// Checks a handle argument: NULL, freed or of another kind -> INVALID_ARGUMENT.
template <class T>
T* check(T* p, Kind kind, const char* fn, const char* arg) {
  if (!p) fail(LOWBIT_INVALID_ARGUMENT, std::string(fn) + ": " + arg + " is NULL");
  if (!is_live(p, kind))
    fail(LOWBIT_INVALID_ARGUMENT, std::string(fn) + ": " + arg + " is not a live " + kind_name(kind) +
                                      " (already freed, or never created)");
  return p;
}

inline void need(const void* p, const char* fn, const char* arg) {
  if (!p) fail(LOWBIT_INVALID_ARGUMENT, std::string(fn) + ": " + arg + " is NULL");
}

// Frees a handle when it is live; a stale or foreign pointer is reported and left alone.
template <class T>
inline void release(T* p, Kind kind, const char* fn) {
  if (!p) return;
  {
    std::lock_guard<std::mutex> lock(g_handles_mutex);
    auto it = handles().find(p);
    if (it == handles().end() || it->second != kind) {
      t_last_error = std::string(fn) + ": not a live " + kind_name(kind) + " (freed twice?); ignored";
      return;
    }
    handles().erase(it);
  }
  delete p;
  t_last_error.clear();
}

inline SamplerParams to_cpp(const lowbit_sampler_params& p) {
  SamplerParams s;
  s.temperature = p.temperature;
  s.top_k = p.top_k;
  s.top_p = p.top_p;
  s.min_p = p.min_p;
  s.repetition_penalty = p.repetition_penalty;
  s.repetition_window = p.repetition_window;
  s.presence_penalty = p.presence_penalty;
  s.frequency_penalty = p.frequency_penalty;
  s.seed = p.seed;
  if (const auto bad = invalid_setting(s))
    fail(LOWBIT_INVALID_ARGUMENT, "sampler: " + bad->field + " must be " + bad->requirement);
  return s;
}

inline lowbit_stop_reason to_c_stop(FinishReason r) {
  switch (r) {
    case FinishReason::eos: return LOWBIT_STOP_EOS;
    case FinishReason::stop: return LOWBIT_STOP_STRING;
    case FinishReason::context: return LOWBIT_STOP_CONTEXT;
    case FinishReason::cancelled: return LOWBIT_STOP_CANCELLED;
    default: return LOWBIT_STOP_LENGTH;
  }
}

inline lowbit_stop_reason to_c_stop(const std::string& r) {
  if (r == "eos") return LOWBIT_STOP_EOS;
  if (r == "stop") return LOWBIT_STOP_STRING;
  if (r == "callback") return LOWBIT_STOP_CALLBACK;
  if (r == "context") return LOWBIT_STOP_CONTEXT;
  return LOWBIT_STOP_LENGTH;
}

inline bool path_exists(const std::string& p) {
  std::error_code ec;
  return std::filesystem::exists(p, ec);
}

// The arguments of a call that encodes text into a caller's buffer of ids (lowbit_tokenize,
// lowbit_chat_tokenize), checked; the text as a view.
inline std::string_view text_arg(const lowbit_model* model, const char* text, size_t text_len, const int32_t* tokens,
                          size_t capacity, const size_t* n_tokens, const std::string& fn) {
  check(model, Kind::model, fn.c_str(), "model");
  need(n_tokens, fn.c_str(), "n_tokens");
  if (!text && text_len) fail(LOWBIT_INVALID_ARGUMENT, fn + ": text is NULL");
  if (!tokens && capacity) fail(LOWBIT_INVALID_ARGUMENT, fn + ": tokens is NULL but capacity is not 0");
  return std::string_view(text ? text : "", text_len);
}

// A messages_json argument: a JSON array (of messages, which the template reads).
inline nlohmann::ordered_json messages_arg(const char* messages_json, const std::string& fn) {
  nlohmann::ordered_json messages;
  try {
    messages = nlohmann::ordered_json::parse(messages_json);
  } catch (const nlohmann::json::exception& e) {
    fail(LOWBIT_INVALID_ARGUMENT, fn + ": messages_json is not JSON: " + e.what());
  }
  if (!messages.is_array()) fail(LOWBIT_INVALID_ARGUMENT, fn + ": messages_json is not a JSON array of messages");
  return messages;
}

// The buffer conventions of include/lowbit.h: the size is always set; the result is written when
// the buffer holds it (text with its NUL), else BUFFER_TOO_SMALL; a NULL buffer is a size query.
inline void return_ids(const std::vector<int32_t>& ids, int32_t* tokens, size_t capacity, size_t* n_tokens,
                const std::string& fn) {
  *n_tokens = ids.size();
  if (!tokens) return;
  if (capacity < ids.size())
    fail(LOWBIT_BUFFER_TOO_SMALL, fn + ": the text needs " + std::to_string(ids.size()) + " tokens, the buffer holds " +
                                      std::to_string(capacity));
  std::copy(ids.begin(), ids.end(), tokens);
}

inline void return_text(const std::string& s, char* text, size_t capacity, size_t* text_len, const std::string& fn) {
  *text_len = s.size();
  if (!text) return;
  if (capacity < s.size() + 1)
    fail(LOWBIT_BUFFER_TOO_SMALL, fn + ": the text needs " + std::to_string(s.size() + 1) +
                                      " bytes with its NUL, the buffer holds " + std::to_string(capacity));
  std::memcpy(text, s.data(), s.size());
  text[s.size()] = '\0';
}

}  // namespace lowbit::capi
