#include "server/response_store.h"

namespace lowbit::server {

void ResponseStore::put(const std::string& id, std::shared_ptr<const StoredResponse> r) {
  if (capacity_ == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (const auto it = byid_.find(id); it != byid_.end()) {
    order_.erase(it->second.second);
    byid_.erase(it);
  }
  while (byid_.size() >= capacity_) {
    byid_.erase(order_.front());
    order_.pop_front();
  }
  order_.push_back(id);
  byid_.emplace(id, std::make_pair(std::move(r), std::prev(order_.end())));
}

std::shared_ptr<const StoredResponse> ResponseStore::get(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  const auto it = byid_.find(id);
  return it == byid_.end() ? nullptr : it->second.first;
}

bool ResponseStore::erase(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  const auto it = byid_.find(id);
  if (it == byid_.end()) return false;
  order_.erase(it->second.second);
  byid_.erase(it);
  return true;
}

}  // namespace lowbit::server
