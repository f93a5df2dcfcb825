// BPE merges over one word (see tokenizer_bpe_core.h).
#include "runtime/tokenizer/tokenizer_bpe_core.h"

#include <cstdio>
#include <queue>

#include "kernels/error.h"
#include "runtime/tokenizer/tokenizer_unicode.h"

namespace lowbit::tok {

BpeModel::BpeModel(TokenMap vocab, const std::vector<std::pair<std::string, std::string>>& merges,
                   BpeOptions options, const std::string& source)
    : vocab_(std::move(vocab)), byte_ids_(256, -1), options_(std::move(options)) {
  int32_t size = 0;
  for (const auto& [token, id] : vocab_) {
    if (id < 0) throw Error(source + ": token '" + token + "' has a negative id");
    size = std::max(size, id + 1);
  }
  tokens_.resize(size);
  has_token_.assign(size, false);
  for (const auto& [token, id] : vocab_) {
    if (has_token_[id]) throw Error(source + ": id " + std::to_string(id) + " is given to two tokens");
    tokens_[id] = token;
    has_token_[id] = true;
  }
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    int32_t ia = token_to_id(a), ib = token_to_id(b), ir = token_to_id(a + b);
    if (ia < 0 || ib < 0 || ir < 0)
      throw Error(source + ": merge " + std::to_string(rank) + " ('" + a + "' '" + b +
                  "') uses a token that is not in the vocabulary");
    // A pair listed twice keeps its first (lowest) rank.
    merges_.emplace(pair_key(ia, ib), Merge{static_cast<int32_t>(rank), ir});
  }
  if (!options_.unk_token.empty()) {
    unk_id_ = token_to_id(options_.unk_token);
    if (unk_id_ < 0) throw Error(source + ": unk_token '" + options_.unk_token + "' is not in the vocabulary");
  }
  if (options_.byte_fallback) {
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      byte_ids_[b] = token_to_id(name);
    }
  }
}

int32_t BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  return it == vocab_.end() ? -1 : it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  return id >= 0 && id < size() && has_token_[id] ? &tokens_[id] : nullptr;
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (options_.ignore_merges) {
    if (int32_t id = token_to_id(word); id >= 0) {
      out.push_back(id);
      return;
    }
  }

  // The word as a list of symbols, one per character to start with.
  struct Symbol {
    int32_t id;
    int32_t prev, next;  // neighbours in the list, -1 at the ends
    bool alive;
  };
  std::vector<Symbol> sym;
  sym.reserve(word.size());
  auto push = [&](int32_t id) {
    int32_t i = static_cast<int32_t>(sym.size());
    sym.push_back({id, i - 1, -1, true});
    if (i > 0) sym[i - 1].next = i;
  };
  char32_t cp;
  bool ok;
  for (size_t pos = 0; pos < word.size();) {
    const size_t len = utf8_next(word, pos, cp, ok);
    const std::string_view ch = word.substr(pos, len);
    pos += len;
    if (int32_t id = token_to_id(ch); id >= 0) {
      push(id);
      continue;
    }
    if (options_.byte_fallback) {
      bool all = true;
      for (char c : ch) all = all && byte_ids_[static_cast<uint8_t>(c)] >= 0;
      if (all) {
        for (char c : ch) push(byte_ids_[static_cast<uint8_t>(c)]);
        continue;
      }
    }
    if (unk_id_ < 0) continue;  // no unk token: the character is dropped, as HF does
    if (options_.fuse_unk && !sym.empty() && sym.back().id == unk_id_) continue;
    push(unk_id_);
  }

  // Repeatedly merge the pair with the lowest rank; on a tie, the leftmost. Queue entries carry
  // the ids they were made for, so entries made stale by an earlier merge are skipped.
  struct Candidate {
    int32_t rank, left, left_id, right_id, result;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  auto consider = [&](int32_t left) {
    if (left < 0 || sym[left].next < 0) return;
    const Symbol &l = sym[left], &r = sym[l.next];
    auto it = merges_.find(pair_key(l.id, r.id));
    if (it != merges_.end()) queue.push({it->second.rank, left, l.id, r.id, it->second.result});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(sym.size()); ++i) consider(i);
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& l = sym[c.left];
    if (!l.alive || l.id != c.left_id || l.next < 0) continue;
    Symbol& r = sym[l.next];
    if (r.id != c.right_id) continue;
    l.id = c.result;
    r.alive = false;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = c.left;
    consider(l.prev);
    consider(c.left);
  }
  for (int32_t i = 0; i >= 0 && i < static_cast<int32_t>(sym.size()); i = sym[i].next) out.push_back(sym[i].id);
}

}  // namespace lowbit::tok
