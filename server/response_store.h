// The responses the Responses API keeps (a request's "store", true unless it says false): what
// previous_response_id continues and GET/DELETE /v1/responses/{id} read. In memory, the newest
// `capacity` of them (the oldest dropped first), gone when the server stops: a client that needs
// a conversation to outlive the server sends it whole in `input`.
//
// Thread safety: every member may be called from any thread.
#pragma once

#include <cstddef>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include <nlohmann/json.hpp>

namespace lowbit::server {

struct StoredResponse {
  nlohmann::json response;                // the response object as it was answered
  nlohmann::ordered_json input_items;     // the request's input as items, each with an id
  // The chat messages so far, without instructions (OpenAI carries none over): the previous
  // response's, this input's and this reply's.
  nlohmann::ordered_json conversation;
};

class ResponseStore {
 public:
  explicit ResponseStore(size_t capacity) : capacity_(capacity) {}
  size_t capacity() const { return capacity_; }
  // Keeps r under id (replacing one of the same id), dropping the oldest beyond the capacity.
  void put(const std::string& id, std::shared_ptr<const StoredResponse> r);
  std::shared_ptr<const StoredResponse> get(const std::string& id) const;  // nullptr: not kept
  bool erase(const std::string& id);                                       // false: not kept

 private:
  using Order = std::list<std::string>;  // oldest first
  mutable std::mutex mu_;
  size_t capacity_;
  Order order_;
  std::unordered_map<std::string, std::pair<std::shared_ptr<const StoredResponse>, Order::iterator>> byid_;
};

}  // namespace lowbit::server
