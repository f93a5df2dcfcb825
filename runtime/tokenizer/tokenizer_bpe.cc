// Runs a BpePipeline (see tokenizer_bpe.h): the HF tokenizers encode and decode paths for BPE.
#include "runtime/tokenizer/tokenizer_bpe.h"

#include <algorithm>
#include <array>
#include <cctype>

#include "kernels/error.h"
#include "runtime/tokenizer/tokenizer_unicode.h"

namespace lowbit::tok {

const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* const kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

namespace {

// For single_word added tokens: letters, digits, '_' and any non-ASCII byte count as a word.
bool is_word_byte(char c) {
  auto u = static_cast<unsigned char>(c);
  return u >= 0x80 || std::isalnum(u) || c == '_';
}

// The byte of a "<0xXX>" token, or -1 for any other token.
int parse_byte_token(std::string_view t) {
  auto hex = [](char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
  };
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>' || hex(t[3]) < 0 || hex(t[4]) < 0) return -1;
  return hex(t[3]) * 16 + hex(t[4]);
}

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  if (from.empty()) return std::string(s);
  std::string out;
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string_view::npos; pos = hit + from.size()) {
    out.append(s.substr(pos, hit - pos));
    out.append(to);
  }
  out.append(s.substr(pos));
  return out;
}

// A piece of text on its way through the pre-tokenizer; at_start marks the piece that begins
// at offset 0 of the input (Metaspace's "first" prepend scheme looks at it).
struct Piece {
  std::string text;
  bool at_start;
};

// Cuts `piece` at the [begin, end) spans of `hits` and arranges the parts as `behavior` says.
void split_piece(const Piece& piece, const std::vector<std::pair<size_t, size_t>>& hits, bool invert,
                 SplitBehavior behavior, std::vector<Piece>& out) {
  struct Span {
    size_t begin, end;
    bool delim;
  };
  std::vector<Span> spans;
  size_t pos = 0;
  for (auto [b, e] : hits) {
    if (b > pos) spans.push_back({pos, b, invert});
    spans.push_back({b, e, !invert});
    pos = e;
  }
  if (pos < piece.text.size()) spans.push_back({pos, piece.text.size(), invert});

  std::vector<std::pair<size_t, size_t>> parts;
  switch (behavior) {
    case SplitBehavior::kRemoved:
      for (const Span& s : spans)
        if (!s.delim) parts.emplace_back(s.begin, s.end);
      break;
    case SplitBehavior::kIsolated:
      for (const Span& s : spans) parts.emplace_back(s.begin, s.end);
      break;
    case SplitBehavior::kContiguous:
      for (size_t i = 0; i < spans.size(); ++i) {
        if (spans[i].delim && i > 0 && spans[i - 1].delim) {
          parts.back().second = spans[i].end;
        } else {
          parts.emplace_back(spans[i].begin, spans[i].end);
        }
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      // A delimiter joins the part before it, unless that part is itself a delimiter.
      for (size_t i = 0; i < spans.size(); ++i) {
        if (spans[i].delim && i > 0 && !spans[i - 1].delim) {
          parts.back().second = spans[i].end;
        } else {
          parts.emplace_back(spans[i].begin, spans[i].end);
        }
      }
      break;
    case SplitBehavior::kMergedWithNext:
      // A delimiter joins the part after it, unless that part is itself a delimiter.
      for (size_t i = 0; i < spans.size(); ++i) {
        if (!spans[i].delim && i > 0 && spans[i - 1].delim) {
          parts.back().second = spans[i].end;
        } else {
          parts.emplace_back(spans[i].begin, spans[i].end);
        }
      }
      break;
  }
  for (auto [b, e] : parts)
    if (e > b) out.push_back({piece.text.substr(b, e - b), piece.at_start && b == 0});
}

class BpeTokenizer final : public Tokenizer {
 public:
  BpeTokenizer(BpePipeline p, const TokenizerConfig& cfg) : p_(std::move(p)) {
    if (!p_.model) throw Error(p_.source + ": no BPE model");
    vocab_size_ = p_.model->size();
    for (const AddedToken& t : p_.added_tokens) {
      if (t.id < 0 || t.content.empty()) throw Error(p_.source + ": an added token has no id or no content");
      vocab_size_ = std::max(vocab_size_, t.id + 1);
    }
    added_by_id_.assign(vocab_size_, -1);
    for (size_t i = 0; i < p_.added_tokens.size(); ++i) {
      const AddedToken& t = p_.added_tokens[i];
      added_by_id_[t.id] = static_cast<int32_t>(i);
      // A normalized token is looked for in normalized text, so it is normalized too ("Hi"
      // behind a Prepend("▁") normalizer is found as "▁Hi").
      match_text_.push_back(t.normalized ? normalize(t.content) : t.content);
      if (match_text_.back().empty()) continue;
      auto& index = t.normalized ? normalized_by_byte_ : raw_by_byte_;
      index[static_cast<uint8_t>(match_text_.back()[0])].push_back(static_cast<int32_t>(i));
    }
    // Longest first, so the first hit at a position is the leftmost-longest match.
    for (auto* index : {&raw_by_byte_, &normalized_by_byte_})
      for (auto& list : *index)
        std::sort(list.begin(), list.end(),
                  [&](int32_t a, int32_t b) { return match_text_[a].size() > match_text_[b].size(); });
    for (const PreTokenizerStep& s : p_.pre_tokenizer)
      if (s.kind == PreTokenizerStep::Kind::kByteLevel && s.use_regex && !gpt2_regex_)
        gpt2_regex_ = std::make_unique<Regex>(kGpt2Pattern, "ByteLevel pre-tokenizer");
    for (const PreTokenizerStep& s : p_.pre_tokenizer)
      if (s.kind == PreTokenizerStep::Kind::kDigits && !digits_regex_)
        digits_regex_ = std::make_unique<Regex>(R"(\p{N})", "Digits pre-tokenizer");

    auto token_to_id = [this](std::string_view name) { return this->token_to_id(name); };
    SpecialIds ids = resolve_special_ids(cfg, token_to_id, vocab_size_,
                                         p_.prefix.empty() ? -1 : p_.prefix.front(),
                                         p_.suffix.empty() ? -1 : p_.suffix.back());
    set_special_ids(ids.bos, ids.eos);
    set_chat_template(cfg.chat_template);
    if (p_.config_flags_decide) {
      if (cfg.add_bos) {
        std::erase(p_.prefix, ids.bos);
        if (*cfg.add_bos && ids.bos >= 0) p_.prefix.insert(p_.prefix.begin(), ids.bos);
      }
      if (cfg.add_eos && !ids.eos.empty()) {
        std::erase(p_.suffix, ids.eos.front());
        if (*cfg.add_eos) p_.suffix.push_back(ids.eos.front());
      }
    }
    for (const DecoderStep& s : p_.decoder) byte_fallback_decoder_ |= s.kind == DecoderStep::Kind::kByteFallback;
    if (byte_fallback_decoder_) {
      is_byte_token_.assign(vocab_size_, false);
      for (int32_t id = 0; id < p_.model->size(); ++id)
        if (const std::string* t = p_.model->id_to_token(id); t && added_by_id_[id] < 0)
          is_byte_token_[id] = parse_byte_token(*t) >= 0;
    }
    set_description(p_.description);
  }

  std::vector<int32_t> encode(std::string_view text, bool add_special) const override {
    if (size_t bad = utf8_invalid_offset(text); bad != std::string_view::npos)
      throw Error("cannot encode text that is not valid UTF-8 (bad byte at offset " + std::to_string(bad) + ")");
    std::vector<int32_t> out;
    if (add_special) out = p_.prefix;
    for (Segment& seg : split_added(text, true, raw_by_byte_)) {
      if (seg.added >= 0) {
        out.push_back(seg.added);
        continue;
      }
      std::string normalized = normalize(seg.text);
      for (Segment& sub : split_added(normalized, seg.at_start, normalized_by_byte_)) {
        if (sub.added >= 0) {
          out.push_back(sub.added);
          continue;
        }
        for (const Piece& piece : pre_tokenize({std::move(sub.text), sub.at_start}))
          p_.model->encode_word(piece.text, out);
      }
    }
    if (add_special) out.insert(out.end(), p_.suffix.begin(), p_.suffix.end());
    return out;
  }

  std::string decode(const std::vector<int32_t>& ids) const override {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (int32_t id : ids) {
      int32_t added = check_id(id);
      if (added >= 0 && p_.added_tokens[added].special) continue;
      tokens.push_back(added >= 0 ? added_text(added) : *p_.model->id_to_token(id));
    }
    if (p_.decoder.empty()) {  // HF joins the tokens with spaces when there is no decoder
      std::string out;
      for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
      return out;
    }
    for (const DecoderStep& step : p_.decoder) tokens = run_decoder(step, std::move(tokens));
    std::string out;
    for (const std::string& t : tokens) out += t;
    return out;
  }

  int32_t vocab_size() const override { return vocab_size_; }

  // Open ByteFallback run: the last id that decode() keeps is a <0xXX> token.
  bool text_may_change(const std::vector<int32_t>& ids) const override {
    if (!byte_fallback_decoder_) return false;
    for (auto it = ids.rbegin(); it != ids.rend(); ++it) {
      const int32_t added = check_id(*it);
      if (added >= 0 && p_.added_tokens[added].special) continue;  // decode() leaves it out
      return is_byte_token_[*it];
    }
    return false;
  }

  std::string id_to_piece(int32_t id) const override {
    int32_t added = check_id(id);
    return added >= 0 ? added_text(added) : *p_.model->id_to_token(id);
  }

 private:
  // A stretch of text, or (added >= 0) one added token.
  struct Segment {
    std::string text;
    int32_t added;
    bool at_start;
  };
  using ByteIndex = std::array<std::vector<int32_t>, 256>;

  int32_t token_to_id(std::string_view name) const {
    for (const AddedToken& t : p_.added_tokens)
      if (t.content == name) return t.id;
    return p_.model->token_to_id(name);
  }

  // An added token as HF spells it when decoding: a normalized one in its normalized form.
  const std::string& added_text(int32_t index) const {
    return match_text_[index].empty() ? p_.added_tokens[index].content : match_text_[index];
  }

  // Returns the index of id's added token or -1; throws if no token has this id.
  int32_t check_id(int32_t id) const {
    if (id < 0 || id >= vocab_size_ || (added_by_id_[id] < 0 && !p_.model->id_to_token(id)))
      throw Error("token id " + std::to_string(id) + " is not in the vocabulary of " + p_.source +
                  " (size " + std::to_string(vocab_size_) + ")");
    return added_by_id_[id];
  }

  // Cuts the added tokens of `index` out of text (leftmost-longest match), with their lstrip /
  // rstrip whitespace.
  std::vector<Segment> split_added(std::string_view text, bool at_start, const ByteIndex& index) const {
    std::vector<Segment> out;
    size_t from = 0;  // start of the text not yet emitted
    for (size_t pos = 0; pos < text.size();) {
      const AddedToken* hit = nullptr;
      size_t end = 0;
      for (int32_t i : index[static_cast<uint8_t>(text[pos])]) {
        const AddedToken& t = p_.added_tokens[i];
        if (text.compare(pos, match_text_[i].size(), match_text_[i]) != 0) continue;
        end = pos + match_text_[i].size();
        if (t.single_word && ((pos > 0 && is_word_byte(text[pos - 1])) ||
                              (end < text.size() && is_word_byte(text[end]))))
          continue;
        hit = &t;
        break;
      }
      if (!hit) {
        ++pos;
        continue;
      }
      size_t begin = pos;
      if (hit->lstrip)
        for (size_t n; begin > from && (n = space_before(text, begin)) > 0;) begin -= n;
      if (hit->rstrip)
        for (size_t n; (n = space_at(text, end)) > 0;) end += n;
      if (begin > from) out.push_back({std::string(text.substr(from, begin - from)), -1, at_start && from == 0});
      out.push_back({"", hit->id, false});
      from = pos = end;
    }
    if (from < text.size()) out.push_back({std::string(text.substr(from)), -1, at_start && from == 0});
    return out;
  }

  std::string normalize(std::string text) const {
    for (const NormalizerStep& s : p_.normalizer) {
      switch (s.kind) {
        case NormalizerStep::Kind::kPrepend:
          if (!text.empty()) text = s.text + text;
          break;
        case NormalizerStep::Kind::kReplace:
          if (s.regex) {
            std::string out;
            size_t pos = 0;
            for (auto [b, e] : s.regex->find_all(text)) {
              out.append(text, pos, b - pos);
              out.append(s.content);
              pos = e;
            }
            text = out + text.substr(pos);
          } else {
            text = replace_all(text, s.text, s.content);
          }
          break;
        case NormalizerStep::Kind::kNfc:
          text = nfc(text);
          break;
        case NormalizerStep::Kind::kStrip: {
          size_t b = 0, e = text.size();
          if (s.left)
            for (size_t n; b < e && (n = space_at(text, b)) > 0;) b += n;
          if (s.right)
            for (size_t n; e > b && (n = space_before(text, e)) > 0;) e -= n;
          text = text.substr(b, e - b);
          break;
        }
      }
    }
    return text;
  }

  std::vector<Piece> pre_tokenize(Piece whole) const {
    std::vector<Piece> pieces;
    if (!whole.text.empty()) pieces.push_back(std::move(whole));
    for (const PreTokenizerStep& s : p_.pre_tokenizer) {
      std::vector<Piece> next;
      for (Piece& piece : pieces) run_pre_tokenizer(s, piece, next);
      pieces = std::move(next);
    }
    return pieces;
  }

  void run_pre_tokenizer(const PreTokenizerStep& s, Piece& piece, std::vector<Piece>& out) const {
    using Kind = PreTokenizerStep::Kind;
    switch (s.kind) {
      case Kind::kSplit: {
        std::vector<std::pair<size_t, size_t>> hits;
        if (s.regex) {
          hits = s.regex->find_all(piece.text);
        } else if (!s.literal.empty()) {
          for (size_t h = 0; (h = piece.text.find(s.literal, h)) != std::string::npos; h += s.literal.size())
            hits.emplace_back(h, h + s.literal.size());
        }
        split_piece(piece, hits, s.invert, s.behavior, out);
        return;
      }
      case Kind::kDigits:
        split_piece(piece, digits_regex_->find_all(piece.text), false,
                    s.individual_digits ? SplitBehavior::kIsolated : SplitBehavior::kContiguous, out);
        return;
      case Kind::kByteLevel: {
        if (s.add_prefix_space && piece.text[0] != ' ') piece.text = ' ' + piece.text;
        std::vector<Piece> parts;
        if (s.use_regex) {
          split_piece(piece, gpt2_regex_->find_all(piece.text), false, SplitBehavior::kIsolated, parts);
        } else {
          parts.push_back(std::move(piece));
        }
        for (Piece& part : parts) {
          std::string mapped;
          mapped.reserve(part.text.size() * 2);
          for (char c : part.text) mapped.append(byte_level_char(static_cast<uint8_t>(c)));
          out.push_back({std::move(mapped), part.at_start});
        }
        return;
      }
      case Kind::kMetaspace: {
        piece.text = replace_all(piece.text, " ", s.replacement);
        const bool starts = piece.text.compare(0, s.replacement.size(), s.replacement) == 0;
        if (!starts && (s.prepend == PreTokenizerStep::Prepend::kAlways ||
                        (s.prepend == PreTokenizerStep::Prepend::kFirst && piece.at_start)))
          piece.text = s.replacement + piece.text;
        if (!s.split) {
          out.push_back(std::move(piece));
          return;
        }
        std::vector<std::pair<size_t, size_t>> hits;
        for (size_t h = 0; (h = piece.text.find(s.replacement, h)) != std::string::npos; h += s.replacement.size())
          hits.emplace_back(h, h + s.replacement.size());
        split_piece(piece, hits, false, SplitBehavior::kMergedWithNext, out);
        return;
      }
    }
  }

  static std::vector<std::string> run_decoder(const DecoderStep& s, std::vector<std::string> tokens) {
    using Kind = DecoderStep::Kind;
    switch (s.kind) {
      case Kind::kReplace:
        for (std::string& t : tokens) t = replace_all(t, s.pattern, s.content);
        return tokens;
      case Kind::kFuse: {
        std::string all;
        for (const std::string& t : tokens) all += t;
        return {all};
      }
      case Kind::kStrip:
        for (std::string& t : tokens) {
          size_t b = 0, e = t.size(), n = s.pattern.size();
          for (int k = 0; k < s.start && e - b >= n && t.compare(b, n, s.pattern) == 0; ++k) b += n;
          for (int k = 0; k < s.stop && e - b >= n && t.compare(e - n, n, s.pattern) == 0; ++k) e -= n;
          t = t.substr(b, e - b);
        }
        return tokens;
      case Kind::kByteFallback: {
        // A run of <0xXX> tokens becomes its text if the bytes are UTF-8, else one U+FFFD per byte.
        std::vector<std::string> out;
        std::string bytes;
        auto flush = [&] {
          if (bytes.empty()) return;
          if (utf8_invalid_offset(bytes) == std::string::npos) {
            out.push_back(bytes);
          } else {
            for (size_t i = 0; i < bytes.size(); ++i) out.push_back("\xEF\xBF\xBD");
          }
          bytes.clear();
        };
        for (std::string& t : tokens) {
          if (int b = parse_byte_token(t); b >= 0) {
            bytes += static_cast<char>(b);
            continue;
          }
          flush();
          out.push_back(std::move(t));
        }
        flush();
        return out;
      }
      case Kind::kByteLevel: {
        // Every character back to its byte; a token with a character outside the byte alphabet
        // (an added token such as "<|im start|>") keeps its own bytes.
        std::string bytes;
        for (const std::string& t : tokens) {
          std::string mapped;
          bool all = true;
          char32_t cp;
          bool ok;
          for (size_t pos = 0; pos < t.size() && all;) {
            pos += utf8_next(t, pos, cp, ok);
            int b = ok ? byte_level_byte(cp) : -1;
            if (b < 0) all = false;
            mapped += static_cast<char>(b);
          }
          bytes += all ? mapped : t;
        }
        return {utf8_lossy(bytes)};
      }
      case Kind::kMetaspace:
        // The replacement turns back into spaces; in the first token (the prepended one) it goes.
        for (size_t i = 0; i < tokens.size(); ++i) {
          std::string_view with = (i == 0 && s.strip_first) ? std::string_view() : std::string_view(" ");
          tokens[i] = replace_all(tokens[i], s.replacement, with);
        }
        return tokens;
    }
    return tokens;
  }

  BpePipeline p_;
  bool byte_fallback_decoder_ = false;
  std::vector<bool> is_byte_token_;  // id -> a <0xXX> token (filled with a ByteFallback decoder)
  int32_t vocab_size_ = 0;
  std::vector<int32_t> added_by_id_;  // id -> index in p_.added_tokens, or -1
  std::vector<std::string> match_text_;  // index in p_.added_tokens -> the text matched for it
  ByteIndex raw_by_byte_, normalized_by_byte_;  // first byte -> added tokens, longest first
  std::unique_ptr<Regex> gpt2_regex_, digits_regex_;
};

}  // namespace

std::unique_ptr<Tokenizer> make_bpe_tokenizer(BpePipeline pipeline, const TokenizerConfig& cfg) {
  return std::make_unique<BpeTokenizer>(std::move(pipeline), cfg);
}

}  // namespace lowbit::tok
