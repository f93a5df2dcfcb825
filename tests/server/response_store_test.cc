// The Responses API's kept responses: the newest `capacity`, the oldest dropped first, one id once.
#include <gtest/gtest.h>

#include "server/response_store.h"

namespace lowbit::server {
namespace {

std::shared_ptr<const StoredResponse> response(int n) {
  auto r = std::make_shared<StoredResponse>();
  r->response = {{"n", n}};
  return r;
}

int n_of(const ResponseStore& s, const std::string& id) {
  const auto r = s.get(id);
  return r ? r->response["n"].get<int>() : -1;
}

TEST(ResponseStore, KeepsTheNewestAndDropsTheOldestFirst) {
  ResponseStore s(2);
  s.put("a", response(1));
  s.put("b", response(2));
  s.put("c", response(3));
  EXPECT_EQ(n_of(s, "a"), -1);
  EXPECT_EQ(n_of(s, "b"), 2);
  EXPECT_EQ(n_of(s, "c"), 3);
  // The same id again replaces it and makes it the newest: "b" is now the oldest.
  s.put("c", response(4));
  s.put("d", response(5));
  EXPECT_EQ(n_of(s, "b"), -1);
  EXPECT_EQ(n_of(s, "c"), 4);
  EXPECT_EQ(n_of(s, "d"), 5);
  // Erased: gone, once, and its room free for one more without dropping another.
  EXPECT_TRUE(s.erase("c"));
  EXPECT_FALSE(s.erase("c"));
  s.put("e", response(6));
  EXPECT_EQ(n_of(s, "d"), 5);
  EXPECT_EQ(n_of(s, "e"), 6);
  // What a reader holds outlives its dropping.
  const auto held = s.get("d");
  s.put("f", response(7));
  s.put("g", response(8));
  EXPECT_EQ(n_of(s, "d"), -1);
  EXPECT_EQ(held->response["n"], 5);
}

TEST(ResponseStore, CapacityZeroKeepsNothing) {
  ResponseStore s(0);
  s.put("a", response(1));
  EXPECT_EQ(s.get("a"), nullptr);
  EXPECT_FALSE(s.erase("a"));
}

}  // namespace
}  // namespace lowbit::server
