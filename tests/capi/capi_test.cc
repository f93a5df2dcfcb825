// The C API (include/lowbit.h): conversion, generation against llama2.c's published output (in
// process and through dlopen from a plain C program), tokenizer buffers, chat templates, sessions and sampling,
// kernel-level calls against the library's reference, misuse, and the exported symbol set.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/matmul.h"
#include "kernels/matmul_impl.h"
#include "kernels/quantize.h"
#include "lowbit.h"
#include "tests/kernels/test_util.h"

namespace {

namespace fs = std::filesystem;

const std::string kModels = LOWBIT_SOURCE_DIR "/../shared/models";
const std::string kStories = kModels + "/stories260K";

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Runs a shell command, returns its stdout; *status gets the exit code.
std::string run_command(const std::string& cmd, int* status) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    *status = -1;
    return out;
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int rc = pclose(p);
  *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  return out;
}

int collect(const char* piece, size_t len, int32_t, void* user) {
  static_cast<std::string*>(user)->append(piece, len);
  return 0;
}

// One fp32 conversion of stories260K for the whole suite, made through the C API.
class CApi : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/lowbit_capi_XXXXXX";
    tmp_ = mkdtemp(tmpl) ? tmpl : "";
    manifest_ = tmp_ + "/stories260K_f32";
    lowbit_convert_params p = lowbit_convert_default_params();
    p.bits = 32;
    convert_status_ = lowbit_convert(kStories.c_str(), manifest_.c_str(), &p, &summary_);
    convert_error_ = lowbit_last_error();
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    if (!tmp_.empty()) fs::remove_all(tmp_, ec);
  }
  void SetUp() override {
    ASSERT_FALSE(tmp_.empty()) << "mkdtemp failed";
    ASSERT_EQ(convert_status_, LOWBIT_OK) << convert_error_;
  }

  static std::string expected_stories() { return read_file(kStories + "/expected_greedy_t0_steps256.txt"); }

  static std::string tmp_, manifest_, convert_error_;
  static lowbit_status convert_status_;
  static lowbit_convert_summary summary_;
};

std::string CApi::tmp_, CApi::manifest_, CApi::convert_error_;
lowbit_status CApi::convert_status_ = LOWBIT_INTERNAL;
lowbit_convert_summary CApi::summary_;

// A model handle freed at scope exit.
struct ModelHandle {
  lowbit_model* m = nullptr;
  ~ModelHandle() { lowbit_model_free(m); }
};
struct SessionHandle {
  lowbit_session* s = nullptr;
  ~SessionHandle() { lowbit_session_free(s); }
};

TEST_F(CApi, VersionAndStatusNames) {
  EXPECT_EQ(lowbit_abi_version(), LOWBIT_ABI_VERSION);
  EXPECT_STREQ(lowbit_version(), LOWBIT_VERSION_STRING);
  EXPECT_STREQ(lowbit_status_name(LOWBIT_VERSION), "LOWBIT_VERSION");
  EXPECT_STREQ(lowbit_status_name((lowbit_status)1234), "LOWBIT_UNKNOWN_STATUS");
}

TEST_F(CApi, ConvertSummary) {
  EXPECT_GT(summary_.tensors, 0);
  EXPECT_GT(summary_.weights, 0);
  // fp32 everywhere; alignment padding can only add.
  EXPECT_GE(summary_.bits_per_weight, 32.0);
  EXPECT_LT(summary_.bits_per_weight, 33.0);
  EXPECT_TRUE(fs::exists(manifest_ + "/manifest.json"));
}

// llama2.c's run.c, greedy, 256 steps from BOS: its published stories260K sample.
TEST_F(CApi, GenerateMatchesLlama2c) {
  ModelHandle model;
  ASSERT_EQ(lowbit_model_load(manifest_.c_str(), nullptr, &model.m), LOWBIT_OK) << lowbit_last_error();
  SessionHandle session;
  ASSERT_EQ(lowbit_session_create(model.m, &session.s), LOWBIT_OK) << lowbit_last_error();
  lowbit_generate_params gp = lowbit_generate_default_params();
  gp.max_tokens = 256;
  std::string text;
  lowbit_generate_result r;
  ASSERT_EQ(lowbit_generate(session.s, "", &gp, collect, &text, &r), LOWBIT_OK) << lowbit_last_error();
  EXPECT_EQ(text + "\n", expected_stories());
  EXPECT_EQ(r.prompt_tokens, 1);
  EXPECT_STREQ(lowbit_last_error(), "");
}

TEST_F(CApi, DlopenExampleMatchesLlama2c) {
  const std::string example = LOWBIT_BINARY_DIR "/examples/dlopen_generate";
  const std::string lib = LOWBIT_BINARY_DIR "/liblowbit.so";
  ASSERT_TRUE(fs::exists(example)) << example << " not built (target dlopen_generate)";
  ASSERT_TRUE(fs::exists(lib)) << lib << " not built (target lowbit)";
  int status = 0;
  const std::string out = run_command(example + " " + lib + " " + manifest_ + " 256", &status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(out, expected_stories());
}

// Two sessions of one model, generating on two threads at once.
TEST_F(CApi, SessionsOnTwoThreads) {
  ModelHandle model;
  ASSERT_EQ(lowbit_model_load(manifest_.c_str(), nullptr, &model.m), LOWBIT_OK) << lowbit_last_error();
  std::string text[2];
  lowbit_status st[2];
  auto worker = [&](int i) {
    lowbit_session* s = nullptr;
    st[i] = lowbit_session_create(model.m, &s);
    if (st[i] != LOWBIT_OK) return;
    lowbit_generate_params gp = lowbit_generate_default_params();
    st[i] = lowbit_generate(s, "", &gp, collect, &text[i], nullptr);
    lowbit_session_free(s);
  };
  std::thread a(worker, 0), b(worker, 1);
  a.join();
  b.join();
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(st[i], LOWBIT_OK);
    EXPECT_EQ(text[i] + "\n", expected_stories());
  }
}

TEST_F(CApi, CallbackStopsGeneration) {
  ModelHandle model;
  ASSERT_EQ(lowbit_model_load(manifest_.c_str(), nullptr, &model.m), LOWBIT_OK);
  SessionHandle session;
  ASSERT_EQ(lowbit_session_create(model.m, &session.s), LOWBIT_OK);
  struct Count {
    int pieces = 0;
    std::string text;
  } count;
  auto stop_after_3 = [](const char* piece, size_t len, int32_t, void* user) -> int {
    auto* c = static_cast<Count*>(user);
    c->text.append(piece, len);
    return ++c->pieces >= 3;
  };
  lowbit_generate_result r;
  ASSERT_EQ(lowbit_generate(session.s, "", nullptr, stop_after_3, &count, &r), LOWBIT_OK) << lowbit_last_error();
  EXPECT_EQ(r.stop_reason, LOWBIT_STOP_CALLBACK);
  EXPECT_EQ(count.pieces, 3);
  EXPECT_EQ(expected_stories().rfind(count.text, 0), 0u) << count.text;
  // The session advanced past the prompt: generating again continues from there.
  int64_t pos = 0;
  ASSERT_EQ(lowbit_session_position(session.s, &pos), LOWBIT_OK);
  EXPECT_GT(pos, 1);
  ASSERT_EQ(lowbit_session_truncate(session.s, 0), LOWBIT_OK);
  ASSERT_EQ(lowbit_session_position(session.s, &pos), LOWBIT_OK);
  EXPECT_EQ(pos, 0);
}

TEST_F(CApi, StopStringAndLength) {
  ModelHandle model;
  ASSERT_EQ(lowbit_model_load(manifest_.c_str(), nullptr, &model.m), LOWBIT_OK);
  SessionHandle session;
  ASSERT_EQ(lowbit_session_create(model.m, &session.s), LOWBIT_OK);
  const char* stops[] = {"Lily"};
  lowbit_generate_params gp = lowbit_generate_default_params();
  gp.stop = stops;
  gp.n_stop = 1;
  std::string text;
  lowbit_generate_result r;
  ASSERT_EQ(lowbit_generate(session.s, "", &gp, collect, &text, &r), LOWBIT_OK) << lowbit_last_error();
  EXPECT_EQ(r.stop_reason, LOWBIT_STOP_STRING);
  const std::string expected = expected_stories();
  EXPECT_EQ(text, expected.substr(0, expected.find("Lily")));

  ASSERT_EQ(lowbit_session_truncate(session.s, 0), LOWBIT_OK);
  gp = lowbit_generate_default_params();
  gp.max_tokens = 5;
  ASSERT_EQ(lowbit_generate(session.s, "", &gp, nullptr, nullptr, &r), LOWBIT_OK);
  EXPECT_EQ(r.stop_reason, LOWBIT_STOP_LENGTH);
  EXPECT_EQ(r.generated_tokens, 5);
}

// The penalties look back over the session's earlier positions too: a prompt fed partly by
// lowbit_session_eval and partly by lowbit_generate_tokens (a chat turn reusing its cached
// prefix) samples what the whole prompt from position 0 samples.
TEST_F(CApi, PenaltiesSeeTheTokensAlreadyInTheSession) {
  ModelHandle model;
  ASSERT_EQ(lowbit_model_load(manifest_.c_str(), nullptr, &model.m), LOWBIT_OK) << lowbit_last_error();
  // The model's own story (llama2.c's sample): its words are what it would say next, so the
  // penalties on the part fed first change the continuation when they are seen.
  const std::string story = expected_stories().substr(0, 300);
  std::vector<int32_t> prompt(512);
  size_t n = 0;
  ASSERT_EQ(lowbit_tokenize(model.m, story.data(), story.size(), 1, prompt.data(), prompt.size(), &n), LOWBIT_OK);
  prompt.resize(n);
  ASSERT_GT(n, 60u);
  lowbit_generate_params gp = lowbit_generate_default_params();
  gp.max_tokens = 40;
  gp.sampler.presence_penalty = 2.0f;
  gp.sampler.frequency_penalty = 0.5f;
  auto run = [&](size_t fed_first, const lowbit_generate_params& params) {
    SessionHandle session;
    EXPECT_EQ(lowbit_session_create(model.m, &session.s), LOWBIT_OK);
    if (fed_first) EXPECT_EQ(lowbit_session_eval(session.s, prompt.data(), fed_first, 0, nullptr, 0), LOWBIT_OK);
    std::string text;
    EXPECT_EQ(lowbit_generate_tokens(session.s, prompt.data() + fed_first, prompt.size() - fed_first, &params, collect,
                                     &text, nullptr),
              LOWBIT_OK)
        << lowbit_last_error();
    return text;
  };
  const std::string whole = run(0, gp);
  EXPECT_EQ(run(n / 2, gp), whole);
  EXPECT_EQ(run(n - 1, gp), whole);
  EXPECT_NE(run(0, lowbit_generate_default_params()).substr(0, whole.size()), whole);  // the penalties bite
}

TEST_F(CApi, TokenizeAndDetokenizeWithSizeQueries) {
  ModelHandle model;
  ASSERT_EQ(lowbit_model_load(manifest_.c_str(), nullptr, &model.m), LOWBIT_OK);
  lowbit_model_info info;
  ASSERT_EQ(lowbit_model_get_info(model.m, &info), LOWBIT_OK);
  EXPECT_STREQ(info.arch, "llama");
  EXPECT_EQ(info.vocab_size, 512);
  EXPECT_EQ(info.bos_id, 1);

  const std::string text = "Once upon a time, there was a little girl.";
  size_t n = 0;
  ASSERT_EQ(lowbit_tokenize(model.m, text.data(), text.size(), 1, nullptr, 0, &n), LOWBIT_OK);
  ASSERT_GT(n, 2u);
  std::vector<int32_t> ids(n);
  size_t small = 0;
  EXPECT_EQ(lowbit_tokenize(model.m, text.data(), text.size(), 1, ids.data(), n - 1, &small), LOWBIT_BUFFER_TOO_SMALL);
  EXPECT_EQ(small, n);
  EXPECT_NE(std::string(lowbit_last_error()).find("needs " + std::to_string(n)), std::string::npos);
  ASSERT_EQ(lowbit_tokenize(model.m, text.data(), text.size(), 1, ids.data(), ids.size(), &n), LOWBIT_OK);
  EXPECT_EQ(ids[0], 1);  // BOS

  size_t len = 0;
  ASSERT_EQ(lowbit_detokenize(model.m, ids.data(), ids.size(), nullptr, 0, &len), LOWBIT_OK);
  EXPECT_EQ(len, text.size());
  std::vector<char> buf(len);  // no room for the NUL
  EXPECT_EQ(lowbit_detokenize(model.m, ids.data(), ids.size(), buf.data(), buf.size(), &len), LOWBIT_BUFFER_TOO_SMALL);
  buf.resize(len + 1);
  ASSERT_EQ(lowbit_detokenize(model.m, ids.data(), ids.size(), buf.data(), buf.size(), &len), LOWBIT_OK);
  EXPECT_EQ(std::string(buf.data()), text);

  const int32_t bad = 100000;
  EXPECT_EQ(lowbit_detokenize(model.m, &bad, 1, nullptr, 0, &len), LOWBIT_INVALID_ARGUMENT);
  EXPECT_STRNE(lowbit_last_error(), "");
}

TEST_F(CApi, GpuLayers) {
  lowbit_load_params lp = lowbit_load_default_params();
  EXPECT_EQ(lp.gpu_layers, 0);
  lp.ctx = 8;
  lp.threads = 1;
  ModelHandle model;
  lp.gpu_layers = -3;
  EXPECT_EQ(lowbit_model_load(manifest_.c_str(), &lp, &model.m), LOWBIT_INVALID_ARGUMENT);
  EXPECT_NE(std::string(lowbit_last_error()).find("gpu_layers"), std::string::npos) << lowbit_last_error();
  // auto places what fits on a GPU, nothing without one: it always loads.
  lp.gpu_layers = LOWBIT_GPU_LAYERS_AUTO;
  ASSERT_EQ(lowbit_model_load(manifest_.c_str(), &lp, &model.m), LOWBIT_OK) << lowbit_last_error();
  // A count asks for a GPU: without a usable one the load says why.
  lp.gpu_layers = 2;
  ModelHandle on_gpu;
  const lowbit_status s = lowbit_model_load(manifest_.c_str(), &lp, &on_gpu.m);
  if (s != LOWBIT_OK) {
    EXPECT_EQ(s, LOWBIT_INVALID_ARGUMENT);
    EXPECT_NE(std::string(lowbit_last_error()).find("gpu_layers 2: no device backend"), std::string::npos)
        << lowbit_last_error();
  }
}

TEST_F(CApi, EvalLogitsAndSample) {
  lowbit_load_params lp = lowbit_load_default_params();
  lp.ctx = 8;
  lp.threads = 1;
  ModelHandle model;
  ASSERT_EQ(lowbit_model_load(manifest_.c_str(), &lp, &model.m), LOWBIT_OK) << lowbit_last_error();
  SessionHandle session;
  ASSERT_EQ(lowbit_session_create(model.m, &session.s), LOWBIT_OK);
  const int64_t vocab = 512;
  std::vector<float> logits(3 * vocab);
  const int32_t prompt[3] = {1, 403, 407};
  EXPECT_EQ(lowbit_session_eval(session.s, prompt, 3, 1, logits.data(), vocab), LOWBIT_BUFFER_TOO_SMALL);
  ASSERT_EQ(lowbit_session_eval(session.s, prompt, 3, 1, logits.data(), logits.size()), LOWBIT_OK) << lowbit_last_error();

  lowbit_sampler* sampler = nullptr;
  ASSERT_EQ(lowbit_sampler_create(nullptr, &sampler), LOWBIT_OK);  // greedy by default
  int32_t next = -1;
  float* last = logits.data() + 2 * vocab;
  const int32_t argmax = (int32_t)(std::max_element(last, last + vocab) - last);
  ASSERT_EQ(lowbit_sampler_sample(sampler, last, vocab, prompt, 3, &next), LOWBIT_OK);
  EXPECT_EQ(next, argmax);
  lowbit_sampler_free(sampler);

  lowbit_sampler_params sp = lowbit_sampler_default_params();
  sp.top_p = 0;
  EXPECT_EQ(lowbit_sampler_create(&sp, &sampler), LOWBIT_INVALID_ARGUMENT);
  EXPECT_NE(std::string(lowbit_last_error()).find("top_p"), std::string::npos);

  // 3 positions used of 8: 6 more do not fit, and nothing is evaluated.
  const int32_t six[6] = {1, 1, 1, 1, 1, 1};
  EXPECT_EQ(lowbit_session_eval(session.s, six, 6, 0, nullptr, 0), LOWBIT_CONTEXT_FULL);
  EXPECT_NE(std::string(lowbit_last_error()).find("context of 8"), std::string::npos);
  ASSERT_EQ(lowbit_session_eval(session.s, six, 5, 0, nullptr, 0), LOWBIT_OK);
  const int32_t out_of_vocab = 512;
  ASSERT_EQ(lowbit_session_truncate(session.s, 0), LOWBIT_OK);
  EXPECT_EQ(lowbit_session_eval(session.s, &out_of_vocab, 1, 0, nullptr, 0), LOWBIT_INVALID_ARGUMENT);
  EXPECT_NE(std::string(lowbit_last_error()).find("512"), std::string::npos);
  EXPECT_EQ(lowbit_session_truncate(session.s, 5), LOWBIT_INVALID_ARGUMENT);
}

TEST_F(CApi, NullHandlesAreInvalidArguments) {
  auto expect_null = [](lowbit_status st, const char* what) {
    EXPECT_EQ(st, LOWBIT_INVALID_ARGUMENT) << what;
    EXPECT_NE(std::string(lowbit_last_error()).find("is NULL"), std::string::npos) << what << ": " << lowbit_last_error();
  };
  size_t n;
  int64_t pos;
  int32_t tok;
  float f[4] = {0, 0, 0, 0};
  lowbit_model_info mi;
  lowbit_qtensor_info qi;
  lowbit_model* m = nullptr;
  lowbit_session* s = nullptr;
  lowbit_qtensor* q = nullptr;
  expect_null(lowbit_model_load(nullptr, nullptr, &m), "model_load dir");
  expect_null(lowbit_model_load(manifest_.c_str(), nullptr, nullptr), "model_load out");
  expect_null(lowbit_model_get_info(nullptr, &mi), "get_info");
  expect_null(lowbit_tokenize(nullptr, "a", 1, 1, nullptr, 0, &n), "tokenize");
  expect_null(lowbit_detokenize(nullptr, &tok, 1, nullptr, 0, &n), "detokenize");
  expect_null(lowbit_session_create(nullptr, &s), "session_create");
  expect_null(lowbit_session_eval(nullptr, &tok, 1, 0, nullptr, 0), "session_eval");
  expect_null(lowbit_session_position(nullptr, &pos), "session_position");
  expect_null(lowbit_session_truncate(nullptr, 0), "session_truncate");
  expect_null(lowbit_sampler_sample(nullptr, f, 4, nullptr, 0, &tok), "sampler_sample");
  expect_null(lowbit_generate(nullptr, "", nullptr, nullptr, nullptr, nullptr), "generate");
  expect_null(lowbit_generate_tokens(nullptr, &tok, 1, nullptr, nullptr, nullptr, nullptr), "generate_tokens");
  expect_null(lowbit_chat_apply_template(nullptr, "[]", 1, nullptr, 0, &n), "chat_apply_template");
  expect_null(lowbit_chat_tokenize(nullptr, "a", 1, nullptr, 0, &n), "chat_tokenize");
  expect_null(lowbit_quantize(nullptr, 1, 32, "q4", nullptr, &q), "quantize");
  expect_null(lowbit_quantize(f, 1, 4, nullptr, nullptr, &q), "quantize type");
  expect_null(lowbit_qtensor_get_info(nullptr, &qi), "qtensor_get_info");
  expect_null(lowbit_qtensor_dequantize(nullptr, f, 4), "dequantize");
  expect_null(lowbit_matmul(nullptr, f, 1, f), "matmul");
  expect_null(lowbit_convert(nullptr, "/tmp/x", nullptr, nullptr), "convert");
  // Freeing NULL is a no-op, as free() is.
  lowbit_model_free(nullptr);
  lowbit_session_free(nullptr);
  lowbit_sampler_free(nullptr);
  lowbit_qtensor_free(nullptr);
}

TEST_F(CApi, FreedHandlesAreRejected) {
  lowbit_model* model = nullptr;
  ASSERT_EQ(lowbit_model_load(manifest_.c_str(), nullptr, &model), LOWBIT_OK);
  lowbit_session* session = nullptr;
  ASSERT_EQ(lowbit_session_create(model, &session), LOWBIT_OK);
  // The session keeps the model's weights alive after the model handle is freed.
  lowbit_model_free(model);
  size_t n = 0;
  EXPECT_EQ(lowbit_tokenize(model, "a", 1, 1, nullptr, 0, &n), LOWBIT_INVALID_ARGUMENT);
  EXPECT_NE(std::string(lowbit_last_error()).find("not a live lowbit_model"), std::string::npos) << lowbit_last_error();
  const int32_t bos = 1;
  EXPECT_EQ(lowbit_session_eval(session, &bos, 1, 0, nullptr, 0), LOWBIT_OK) << lowbit_last_error();
  lowbit_session_free(session);
  EXPECT_EQ(lowbit_session_eval(session, &bos, 1, 0, nullptr, 0), LOWBIT_INVALID_ARGUMENT);
  EXPECT_NE(std::string(lowbit_last_error()).find("not a live lowbit_session"), std::string::npos);
  lowbit_session_free(session);  // twice: reported, not a crash
  EXPECT_NE(std::string(lowbit_last_error()).find("freed twice"), std::string::npos);

  // A handle of another kind is not accepted either.
  std::vector<float> w(32, 1.0f);
  lowbit_qtensor* q = nullptr;
  ASSERT_EQ(lowbit_quantize(w.data(), 1, 32, "q8", nullptr, &q), LOWBIT_OK);
  EXPECT_EQ(lowbit_model_get_info(reinterpret_cast<lowbit_model*>(q), nullptr), LOWBIT_INVALID_ARGUMENT);
  lowbit_qtensor_free(q);
  lowbit_qtensor_info qi;
  EXPECT_EQ(lowbit_qtensor_get_info(q, &qi), LOWBIT_INVALID_ARGUMENT);
}

TEST_F(CApi, WrongPaths) {
  lowbit_model* m = nullptr;
  EXPECT_EQ(lowbit_model_load("/nonexistent/lowbit/model", nullptr, &m), LOWBIT_NOT_FOUND);
  EXPECT_NE(std::string(lowbit_last_error()).find("/nonexistent/lowbit/model"), std::string::npos);
  // A directory that is neither a manifest nor an HF model names the manifest file it lacks.
  EXPECT_EQ(lowbit_model_load(tmp_.c_str(), nullptr, &m), LOWBIT_NOT_FOUND);
  EXPECT_NE(std::string(lowbit_last_error()).find("manifest.json"), std::string::npos);
  EXPECT_EQ(m, nullptr);

  EXPECT_EQ(lowbit_convert("/nonexistent/hf", (tmp_ + "/never").c_str(), nullptr, nullptr), LOWBIT_NOT_FOUND);
  EXPECT_EQ(lowbit_convert(kStories.c_str(), manifest_.c_str(), nullptr, nullptr), LOWBIT_INVALID_ARGUMENT);
  EXPECT_NE(std::string(lowbit_last_error()).find("already exists"), std::string::npos);
  lowbit_convert_params p = lowbit_convert_default_params();
  p.bits = 3;
  EXPECT_EQ(lowbit_convert(kStories.c_str(), (tmp_ + "/never").c_str(), &p, nullptr), LOWBIT_INVALID_ARGUMENT);
  EXPECT_NE(std::string(lowbit_last_error()).find("bits 3"), std::string::npos);
  EXPECT_FALSE(fs::exists(tmp_ + "/never"));

  lowbit_load_params lp = lowbit_load_default_params();
  lp.isa = "sse9";
  EXPECT_EQ(lowbit_model_load(manifest_.c_str(), &lp, &m), LOWBIT_INVALID_ARGUMENT);
  EXPECT_NE(std::string(lowbit_last_error()).find("sse9"), std::string::npos);
}

// An HF directory and a GGUF file load directly, imported in memory.
TEST_F(CApi, LoadsHfDirectoriesAndGgufFiles) {
  const std::string gguf = kModels + "/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf";
  for (const std::string& path : {kStories, gguf}) {
    lowbit_model* m = nullptr;
    ASSERT_EQ(lowbit_model_load(path.c_str(), nullptr, &m), LOWBIT_OK) << lowbit_last_error();
    lowbit_model_info info;
    ASSERT_EQ(lowbit_model_get_info(m, &info), LOWBIT_OK);
    // Sizes from the models' own config.json and GGUF metadata (SOURCE.md of each).
    EXPECT_EQ(info.vocab_size, path == gguf ? 49152 : 512);
    EXPECT_EQ(info.n_layers, path == gguf ? 30 : 5);
    lowbit_model_free(m);
  }
}

// A chat turn through the C API: render, tokenize, generate. The rendering is SmolLM2's ChatML
// with the default system message its GGUF template writes (tests/python/test_capi_chat.py holds
// it to jinja2's rendering); the reply is the text generated from those tokens.
TEST_F(CApi, ChatTemplateRenderTokenizeGenerate) {
  const std::string gguf = kModels + "/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf";
  ModelHandle model;
  lowbit_load_params lp = lowbit_load_default_params();
  lp.ctx = 256;
  ASSERT_EQ(lowbit_model_load(gguf.c_str(), &lp, &model.m), LOWBIT_OK) << lowbit_last_error();
  const char* messages = R"([{"role": "user", "content": "What is the capital of France?"}])";
  const std::string want =
      "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
      "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n";
  size_t len = 0;
  ASSERT_EQ(lowbit_chat_apply_template(model.m, messages, 1, nullptr, 0, &len), LOWBIT_OK) << lowbit_last_error();
  ASSERT_EQ(len, want.size());
  std::vector<char> text(len);  // no room for the NUL
  EXPECT_EQ(lowbit_chat_apply_template(model.m, messages, 1, text.data(), text.size(), &len), LOWBIT_BUFFER_TOO_SMALL);
  text.resize(len + 1);
  ASSERT_EQ(lowbit_chat_apply_template(model.m, messages, 1, text.data(), text.size(), &len), LOWBIT_OK);
  EXPECT_EQ(std::string(text.data()), want);
  // Without the generation prompt the assistant's turn is not opened.
  ASSERT_EQ(lowbit_chat_apply_template(model.m, messages, 0, nullptr, 0, &len), LOWBIT_OK);
  EXPECT_EQ(len, want.size() - std::string("<|im_start|>assistant\n").size());

  size_t n = 0;
  ASSERT_EQ(lowbit_chat_tokenize(model.m, want.data(), want.size(), nullptr, 0, &n), LOWBIT_OK);
  std::vector<int32_t> ids(n);
  ASSERT_EQ(lowbit_chat_tokenize(model.m, want.data(), want.size(), ids.data(), ids.size(), &n), LOWBIT_OK);
  // SmolLM2's tokenizer adds no BOS, and <|im_start|> / <|im_end|> are single special tokens:
  // the same ids as plain tokenization without BOS.
  std::vector<int32_t> plain(n + 4);
  size_t n_plain = 0;
  ASSERT_EQ(lowbit_tokenize(model.m, want.data(), want.size(), 0, plain.data(), plain.size(), &n_plain), LOWBIT_OK);
  plain.resize(n_plain);
  EXPECT_EQ(ids, plain);

  lowbit_generate_params gp = lowbit_generate_default_params();
  gp.max_tokens = 16;
  gp.add_bos = 0;
  std::string from_ids, from_text;
  lowbit_generate_result r1, r2;
  SessionHandle s1, s2;
  ASSERT_EQ(lowbit_session_create(model.m, &s1.s), LOWBIT_OK);
  ASSERT_EQ(lowbit_session_create(model.m, &s2.s), LOWBIT_OK);
  ASSERT_EQ(lowbit_generate_tokens(s1.s, ids.data(), ids.size(), &gp, collect, &from_ids, &r1), LOWBIT_OK)
      << lowbit_last_error();
  ASSERT_EQ(lowbit_generate(s2.s, want.c_str(), &gp, collect, &from_text, &r2), LOWBIT_OK) << lowbit_last_error();
  EXPECT_EQ(r1.prompt_tokens, (int64_t)ids.size());
  EXPECT_GT(r1.generated_tokens, 0);
  EXPECT_EQ(from_ids, from_text);

  // Misuse: what is wrong is named, nothing is written.
  EXPECT_EQ(lowbit_chat_apply_template(model.m, "not json", 1, nullptr, 0, &len), LOWBIT_INVALID_ARGUMENT);
  EXPECT_NE(std::string(lowbit_last_error()).find("messages_json is not JSON"), std::string::npos);
  EXPECT_EQ(lowbit_chat_apply_template(model.m, R"({"role": "user"})", 1, nullptr, 0, &len), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(lowbit_chat_apply_template(model.m, nullptr, 1, nullptr, 0, &len), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(lowbit_generate_tokens(s1.s, ids.data(), 0, &gp, nullptr, nullptr, nullptr), LOWBIT_INVALID_ARGUMENT);
  const int32_t bad = 1 << 30;
  EXPECT_EQ(lowbit_generate_tokens(s1.s, &bad, 1, &gp, nullptr, nullptr, nullptr), LOWBIT_INVALID_ARGUMENT);
  std::vector<int32_t> too_long(300, ids[0]);
  EXPECT_EQ(lowbit_generate_tokens(s2.s, too_long.data(), too_long.size(), &gp, nullptr, nullptr, nullptr),
            LOWBIT_CONTEXT_FULL);

  // stories260K has no chat template.
  ModelHandle stories;
  ASSERT_EQ(lowbit_model_load(manifest_.c_str(), nullptr, &stories.m), LOWBIT_OK);
  EXPECT_EQ(lowbit_chat_apply_template(stories.m, messages, 1, nullptr, 0, &len), LOWBIT_NOT_FOUND);
  EXPECT_NE(std::string(lowbit_last_error()).find("no chat template"), std::string::npos);
}

TEST_F(CApi, NewerManifestIsVersionError) {
  const std::string dir = tmp_ + "/newer";
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(manifest_)) fs::copy(e.path(), dir + "/" + e.path().filename().string());
  nlohmann::json j = nlohmann::json::parse(read_file(dir + "/manifest.json"));
  j["format_version"] = 99;
  std::ofstream(dir + "/manifest.json") << j.dump(1);
  lowbit_model* m = nullptr;
  EXPECT_EQ(lowbit_model_load(dir.c_str(), nullptr, &m), LOWBIT_VERSION);
  const std::string msg = lowbit_last_error();
  EXPECT_NE(msg.find("format_version 99"), std::string::npos) << msg;
  EXPECT_EQ(m, nullptr);

  // Broken JSON is a format error.
  std::ofstream(dir + "/manifest.json") << "{ not json";
  EXPECT_EQ(lowbit_model_load(dir.c_str(), nullptr, &m), LOWBIT_FORMAT);
  EXPECT_NE(std::string(lowbit_last_error()).find("not valid JSON"), std::string::npos) << lowbit_last_error();
}

TEST_F(CApi, ConvertCancelledByCallback) {
  const std::string out = tmp_ + "/cancelled";
  lowbit_convert_params p = lowbit_convert_default_params();
  p.bits = 4;
  p.progress = [](const lowbit_convert_progress* pr, void*) -> int { return pr->tensor >= 1; };
  EXPECT_EQ(lowbit_convert(kStories.c_str(), out.c_str(), &p, nullptr), LOWBIT_CANCELLED);
  EXPECT_NE(std::string(lowbit_last_error()).find("cancelled"), std::string::npos);
  EXPECT_FALSE(fs::exists(out));
}

// ---- batches ----------------------------------------------------------------------------------

struct BatchHandle {
  lowbit_batch* b = nullptr;
  ~BatchHandle() { lowbit_batch_free(b); }
};

struct Alone {
  std::string text;
  lowbit_generate_result r;
};

std::vector<int32_t> tokenize(lowbit_model* m, const std::string& text) {
  size_t n = 0;
  EXPECT_EQ(lowbit_tokenize(m, text.data(), text.size(), 1, nullptr, 0, &n), LOWBIT_OK);
  std::vector<int32_t> ids(n);
  EXPECT_EQ(lowbit_tokenize(m, text.data(), text.size(), 1, ids.data(), n, &n), LOWBIT_OK);
  return ids;
}

struct Streamed {
  std::vector<int32_t> tokens;
  std::string text;
  lowbit_stop_reason reason = LOWBIT_STOP_LENGTH;
  int finished = 0;
};

// Steps until nothing is pending, gathering every sequence's events.
void drain(lowbit_batch* b, std::map<uint64_t, Streamed>& got) {
  for (;;) {
    size_t running = 0, waiting = 0;
    ASSERT_EQ(lowbit_batch_pending(b, &running, &waiting), LOWBIT_OK);
    if (running + waiting == 0) return;
    const lowbit_batch_event* ev = nullptr;
    size_t n = 0;
    ASSERT_EQ(lowbit_batch_step(b, &ev, &n), LOWBIT_OK) << lowbit_last_error();
    for (size_t i = 0; i < n; ++i) {
      Streamed& s = got[ev[i].id];
      if (ev[i].token >= 0) s.tokens.push_back(ev[i].token);
      s.text.append(ev[i].text, ev[i].text_len);
      if (ev[i].finished) s.finished++, s.reason = ev[i].stop_reason;
    }
  }
}

// Three sequences, two at a time, each as lowbit_generate makes it alone; the greedy one from BOS
// is llama2.c's published sample.
TEST_F(CApi, BatchSequencesMatchGenerateAlone) {
  ModelHandle model;
  ASSERT_EQ(lowbit_model_load(manifest_.c_str(), nullptr, &model.m), LOWBIT_OK) << lowbit_last_error();
  const char* prompts[3] = {"", "Once upon a time", "The dog ran"};
  lowbit_sequence_params sp[3];
  for (int i = 0; i < 3; ++i) sp[i] = lowbit_sequence_default_params();
  sp[1].sampler.temperature = 0.9f, sp[1].sampler.top_k = 20, sp[1].sampler.seed = 5, sp[1].max_tokens = 40;
  const char* stop[] = {"."};
  sp[2].stop = stop, sp[2].n_stop = 1;
  BatchHandle batch;
  lowbit_batch_params bp = lowbit_batch_default_params();
  bp.max_sequences = 2;
  bp.max_step_tokens = 6;
  ASSERT_EQ(lowbit_batch_create(model.m, &bp, &batch.b), LOWBIT_OK) << lowbit_last_error();
  uint64_t ids[3];
  for (int i = 0; i < 3; ++i) {
    const std::vector<int32_t> p = tokenize(model.m, prompts[i]);
    ASSERT_EQ(lowbit_batch_add(batch.b, p.data(), p.size(), &sp[i], &ids[i]), LOWBIT_OK) << lowbit_last_error();
  }
  std::map<uint64_t, Streamed> got;
  drain(batch.b, got);
  for (int i = 0; i < 3; ++i) {
    SessionHandle session;
    ASSERT_EQ(lowbit_session_create(model.m, &session.s), LOWBIT_OK);
    lowbit_generate_params gp = lowbit_generate_default_params();
    gp.max_tokens = sp[i].max_tokens, gp.sampler = sp[i].sampler, gp.stop = sp[i].stop, gp.n_stop = sp[i].n_stop;
    std::string text;
    lowbit_generate_result r;
    ASSERT_EQ(lowbit_generate(session.s, prompts[i], &gp, collect, &text, &r), LOWBIT_OK);
    const Streamed& g = got[ids[i]];
    EXPECT_EQ(g.text, text) << i;
    EXPECT_EQ((int64_t)g.tokens.size(), r.generated_tokens) << i;
    EXPECT_EQ(g.reason, r.stop_reason) << i;
    EXPECT_EQ(g.finished, 1) << i;
  }
  EXPECT_EQ(got[ids[0]].text + "\n", expected_stories());
  EXPECT_EQ(got[ids[2]].reason, LOWBIT_STOP_STRING);
}

// format: "json" and a JSON schema hold the text to one value, alone and in a batch (the same
// text both ways); what a schema cannot say is named. The schema's checks here are the maths of
// its keywords; tests/python/test_capi_chat.py validates with the jsonschema package.
TEST_F(CApi, FormatHoldsTheTextToJsonOrASchema) {
  const std::string gguf = kModels + "/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf";
  ModelHandle model;
  lowbit_load_params lp = lowbit_load_default_params();
  lp.ctx = 512;
  ASSERT_EQ(lowbit_model_load(gguf.c_str(), &lp, &model.m), LOWBIT_OK) << lowbit_last_error();
  const char* messages = R"([{"role": "user", "content": "Describe a cat as JSON: its name, age, weight and colors."}])";
  size_t len = 0;
  ASSERT_EQ(lowbit_chat_apply_template(model.m, messages, 1, nullptr, 0, &len), LOWBIT_OK);
  std::vector<char> text(len + 1);
  ASSERT_EQ(lowbit_chat_apply_template(model.m, messages, 1, text.data(), text.size(), &len), LOWBIT_OK);
  size_t n = 0;
  ASSERT_EQ(lowbit_chat_tokenize(model.m, text.data(), len, nullptr, 0, &n), LOWBIT_OK);
  std::vector<int32_t> ids(n);
  ASSERT_EQ(lowbit_chat_tokenize(model.m, text.data(), len, ids.data(), n, &n), LOWBIT_OK);

  const char* schema = R"({"type": "object", "properties": {"name": {"type": "string", "maxLength": 12},
      "age": {"type": "integer", "minimum": 1, "maximum": 20}, "weight": {"type": "number", "exclusiveMinimum": 0,
      "maximum": 9.5}, "colors": {"type": "array", "items": {"enum": ["black", "white", "orange"]}, "maxItems": 2}},
      "required": ["name", "age", "weight", "colors"]})";
  for (const char* format : {"json", schema}) {
    SCOPED_TRACE(format);
    lowbit_generate_params gp = lowbit_generate_default_params();
    gp.max_tokens = 200;
    gp.format = format;
    SessionHandle session;
    ASSERT_EQ(lowbit_session_create(model.m, &session.s), LOWBIT_OK);
    std::string alone;
    lowbit_generate_result r;
    ASSERT_EQ(lowbit_generate_tokens(session.s, ids.data(), ids.size(), &gp, collect, &alone, &r), LOWBIT_OK)
        << lowbit_last_error();
    EXPECT_EQ(r.stop_reason, LOWBIT_STOP_EOS) << alone;
    const nlohmann::json v = nlohmann::json::parse(alone);
    ASSERT_TRUE(v.is_object()) << alone;
    if (format == schema) {
      EXPECT_EQ(v.size(), 4u) << alone;
      EXPECT_LE(v.at("name").get<std::string>().size(), 12u);
      EXPECT_GE(v.at("age").get<int64_t>(), 1);
      EXPECT_LE(v.at("age").get<int64_t>(), 20);
      EXPECT_GT(v.at("weight").get<double>(), 0);
      EXPECT_LE(v.at("weight").get<double>(), 9.5);
      EXPECT_LE(v.at("colors").size(), 2u);
    }
    BatchHandle batch;
    ASSERT_EQ(lowbit_batch_create(model.m, nullptr, &batch.b), LOWBIT_OK);
    lowbit_sequence_params sp = lowbit_sequence_default_params();
    sp.max_tokens = gp.max_tokens;
    sp.format = format;
    uint64_t id = 0;
    ASSERT_EQ(lowbit_batch_add(batch.b, ids.data(), ids.size(), &sp, &id), LOWBIT_OK) << lowbit_last_error();
    std::map<uint64_t, Streamed> got;
    drain(batch.b, got);
    EXPECT_EQ(got[id].text, alone);
  }
  // What a schema cannot say, and text that is no schema, are named; nothing runs.
  SessionHandle session;
  ASSERT_EQ(lowbit_session_create(model.m, &session.s), LOWBIT_OK);
  lowbit_generate_params gp = lowbit_generate_default_params();
  gp.format = R"({"type": "integer", "not": {"const": 2}})";
  EXPECT_EQ(lowbit_generate(session.s, "x", &gp, nullptr, nullptr, nullptr), LOWBIT_INVALID_ARGUMENT);
  EXPECT_NE(std::string(lowbit_last_error()).find("lowbit_generate: format: 'not' is not supported"),
            std::string::npos) << lowbit_last_error();
  gp.format = "yaml";
  EXPECT_EQ(lowbit_generate(session.s, "x", &gp, nullptr, nullptr, nullptr), LOWBIT_INVALID_ARGUMENT);
  EXPECT_NE(std::string(lowbit_last_error()).find("format: the schema is not valid JSON"), std::string::npos);
  BatchHandle batch;
  ASSERT_EQ(lowbit_batch_create(model.m, nullptr, &batch.b), LOWBIT_OK);
  lowbit_sequence_params sp = lowbit_sequence_default_params();
  sp.format = R"({"type": "integer", "minimum": 5, "maximum": 4})";
  EXPECT_EQ(lowbit_batch_add(batch.b, ids.data(), ids.size(), &sp, nullptr), LOWBIT_INVALID_ARGUMENT);
  EXPECT_NE(std::string(lowbit_last_error()).find("lowbit_batch_add: format: no integer lies within"),
            std::string::npos) << lowbit_last_error();
}

// keep_caches: a chat's next turn from a batch that kept the last turn's cache reads only its new
// tokens (cached_tokens on its last event) and gets what a batch without the cache gives it.
TEST_F(CApi, BatchPromptCacheContinuesTheLastTurn) {
  ModelHandle model;
  ASSERT_EQ(lowbit_model_load(manifest_.c_str(), nullptr, &model.m), LOWBIT_OK) << lowbit_last_error();
  auto turn = [&](int32_t keep, const std::vector<std::vector<int32_t>>& prompts) {
    BatchHandle batch;
    lowbit_batch_params bp = lowbit_batch_default_params();
    EXPECT_EQ(bp.keep_caches, 0);
    bp.keep_caches = keep;
    EXPECT_EQ(lowbit_batch_create(model.m, &bp, &batch.b), LOWBIT_OK) << lowbit_last_error();
    std::vector<std::pair<std::vector<int32_t>, int64_t>> out;  // (tokens, cached)
    for (const auto& p : prompts) {
      lowbit_sequence_params sp = lowbit_sequence_default_params();
      sp.max_tokens = 16;
      uint64_t id = 0;
      EXPECT_EQ(lowbit_batch_add(batch.b, p.data(), p.size(), &sp, &id), LOWBIT_OK);
      std::vector<int32_t> tokens;
      int64_t cached = -1;
      for (size_t running = 1, waiting = 0; running + waiting > 0;) {
        const lowbit_batch_event* ev = nullptr;
        size_t n = 0;
        EXPECT_EQ(lowbit_batch_step(batch.b, &ev, &n), LOWBIT_OK);
        for (size_t i = 0; i < n; ++i) {
          if (ev[i].token >= 0) tokens.push_back(ev[i].token);
          if (ev[i].finished) cached = ev[i].cached_tokens;
        }
        EXPECT_EQ(lowbit_batch_pending(batch.b, &running, &waiting), LOWBIT_OK);
      }
      out.emplace_back(tokens, cached);
    }
    return out;
  };
  const std::vector<int32_t> p1 = tokenize(model.m, "Once upon a time");
  const auto first = turn(0, {p1})[0].first;
  ASSERT_EQ(first.size(), 16u);
  std::vector<int32_t> p2 = p1;
  p2.insert(p2.end(), first.begin(), first.end());
  const std::vector<int32_t> more = tokenize(model.m, "The end");  // with BOS: still a valid id list
  p2.insert(p2.end(), more.begin(), more.end());
  const auto with = turn(2, {p1, p2}), without = turn(0, {p1, p2});
  EXPECT_EQ(with[1].first, without[1].first);
  EXPECT_EQ(with[0].second, 0);
  EXPECT_EQ(with[1].second, (int64_t)(p1.size() + first.size() - 1));  // all but the never-fed last
  EXPECT_EQ(without[1].second, 0);
  BatchHandle bad;
  lowbit_batch_params bp = lowbit_batch_default_params();
  bp.keep_caches = -1;
  EXPECT_EQ(lowbit_batch_create(model.m, &bp, &bad.b), LOWBIT_INVALID_ARGUMENT);
  EXPECT_NE(std::string(lowbit_last_error()).find("keep_caches"), std::string::npos);
}

// One engine thread steps while another adds and cancels, as a server would.
TEST_F(CApi, BatchAddAndCancelFromAnotherThread) {
  ModelHandle model;
  ASSERT_EQ(lowbit_model_load(manifest_.c_str(), nullptr, &model.m), LOWBIT_OK);
  BatchHandle batch;
  ASSERT_EQ(lowbit_batch_create(model.m, nullptr, &batch.b), LOWBIT_OK);
  const std::vector<int32_t> bos = tokenize(model.m, "");
  std::atomic<bool> done{false};
  std::map<uint64_t, Streamed> got;
  std::thread engine([&] {
    while (!done.load()) {
      const lowbit_batch_event* ev = nullptr;
      size_t n = 0;
      if (lowbit_batch_step(batch.b, &ev, &n) != LOWBIT_OK) return;
      for (size_t i = 0; i < n; ++i) {
        Streamed& s = got[ev[i].id];
        if (ev[i].token >= 0) s.tokens.push_back(ev[i].token);
        s.text.append(ev[i].text, ev[i].text_len);
        if (ev[i].finished) s.finished++, s.reason = ev[i].stop_reason;
      }
    }
  });
  std::vector<uint64_t> ids(8);
  lowbit_sequence_params sp = lowbit_sequence_default_params();
  sp.max_tokens = 256;
  for (uint64_t& id : ids) ASSERT_EQ(lowbit_batch_add(batch.b, bos.data(), bos.size(), &sp, &id), LOWBIT_OK);
  EXPECT_EQ(lowbit_batch_cancel(batch.b, ids[3]), LOWBIT_OK);
  EXPECT_EQ(lowbit_batch_cancel(batch.b, 999999), LOWBIT_NOT_FOUND);
  for (;;) {  // until every sequence has finished
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    size_t running = 1, waiting = 1;
    ASSERT_EQ(lowbit_batch_pending(batch.b, &running, &waiting), LOWBIT_OK);
    if (running + waiting == 0) break;
  }
  done = true;
  engine.join();
  EXPECT_EQ(lowbit_batch_cancel(batch.b, ids[0]), LOWBIT_NOT_FOUND) << "finished";
  for (uint64_t id : ids) {
    EXPECT_EQ(got[id].finished, 1);
    if (id == ids[3]) {
      EXPECT_EQ(got[id].reason, LOWBIT_STOP_CANCELLED);
    } else {
      EXPECT_EQ(got[id].text + "\n", expected_stories()) << id;
    }
  }
}

TEST_F(CApi, BatchMisuse) {
  ModelHandle model;
  lowbit_load_params lp = lowbit_load_default_params();
  lp.ctx = 8;
  ASSERT_EQ(lowbit_model_load(manifest_.c_str(), &lp, &model.m), LOWBIT_OK);
  lowbit_batch* b = nullptr;
  lowbit_batch_params bp = lowbit_batch_default_params();
  bp.max_step_tokens = bp.max_sequences;
  EXPECT_EQ(lowbit_batch_create(model.m, &bp, &b), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(lowbit_batch_create(nullptr, nullptr, &b), LOWBIT_INVALID_ARGUMENT);
  ASSERT_EQ(lowbit_batch_create(model.m, nullptr, &b), LOWBIT_OK);
  const int32_t nine[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, bad = 100000;
  uint64_t id = 0;
  EXPECT_EQ(lowbit_batch_add(b, nine, 9, nullptr, &id), LOWBIT_CONTEXT_FULL);
  EXPECT_EQ(lowbit_batch_add(b, &bad, 1, nullptr, &id), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(lowbit_batch_add(b, nine, 0, nullptr, &id), LOWBIT_INVALID_ARGUMENT);
  EXPECT_EQ(id, 0u);
  const lowbit_batch_event* ev = nullptr;
  size_t n = 7;
  EXPECT_EQ(lowbit_batch_step(b, &ev, &n), LOWBIT_OK);  // nothing to do
  EXPECT_EQ(n, 0u);
  lowbit_batch_free(b);
  EXPECT_EQ(lowbit_batch_step(b, &ev, &n), LOWBIT_INVALID_ARGUMENT);  // freed
}

// ---- kernels ----------------------------------------------------------------------------------

struct KernelCase {
  const char* type;
  int64_t n, k, m;
};

void PrintTo(const KernelCase& c, std::ostream* os) {
  *os << c.type << " n=" << c.n << " k=" << c.k << " m=" << c.m;
}

class CApiKernels : public testing::TestWithParam<KernelCase> {};

// The C API stores exactly what lowbit::quantize writes, and its matmul stays within the bound
// the kernel tests derive (tests/kernels/matmul_test.cc) from lowbit::matmul_reference.
TEST_P(CApiKernels, MatchLibrary) {
  const KernelCase c = GetParam();
  std::mt19937 rng(17);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> w(c.n * c.k), x(c.m * c.k);
  for (float& v : w) v = dist(rng);
  for (float& v : x) v = dist(rng);

  lowbit_qtensor* q = nullptr;
  ASSERT_EQ(lowbit_quantize(w.data(), c.n, c.k, c.type, "rtn", &q), LOWBIT_OK) << lowbit_last_error();
  lowbit_qtensor_info info;
  ASSERT_EQ(lowbit_qtensor_get_info(q, &info), LOWBIT_OK);
  const lowbit::QType t = lowbit::parse_type(c.type);
  const lowbit::QLayout l = lowbit::q_layout(t, c.n, c.k);
  EXPECT_EQ(info.type, lowbit::type_name(t));
  EXPECT_EQ(info.n, c.n);
  EXPECT_EQ(info.k, c.k);
  EXPECT_EQ(info.nbytes, (size_t)l.bytes);
  EXPECT_DOUBLE_EQ(info.bits_per_weight, lowbit::bits_per_weight(t, c.n, c.k));

  std::vector<uint8_t> ref_bytes(l.bytes);
  lowbit::quantize(t, w.data(), c.n, c.k, ref_bytes.data(), lowbit::Quantizer::rtn);
  ASSERT_EQ(std::memcmp(info.data, ref_bytes.data(), l.bytes), 0);

  std::vector<float> wd(c.n * c.k), ref_wd(c.n * c.k);
  EXPECT_EQ(lowbit_qtensor_dequantize(q, wd.data(), wd.size() - 1), LOWBIT_BUFFER_TOO_SMALL);
  ASSERT_EQ(lowbit_qtensor_dequantize(q, wd.data(), wd.size()), LOWBIT_OK);
  lowbit::dequantize(t, ref_bytes.data(), c.n, c.k, ref_wd.data());
  EXPECT_EQ(wd, ref_wd);

  // The C entry point runs the same CPU kernels: the same reference and tolerance as their tests.
  std::vector<float> y(c.m * c.n, NAN);
  ASSERT_EQ(lowbit_matmul(q, x.data(), c.m, y.data()), LOWBIT_OK) << lowbit_last_error();
  const lowbit::QMatrix qm{t, c.n, c.k, static_cast<const uint8_t*>(info.data)};
  EXPECT_TRUE(lowbit::test::matches_reference(qm, x.data(), c.m, y, c.k / 32.0 + 8));
  lowbit_qtensor_free(q);
}

std::string kernel_case_name(const testing::TestParamInfo<KernelCase>& info) {
  const KernelCase& c = info.param;
  return std::string(c.type) + "_m" + std::to_string(c.m) + "_k" + std::to_string(c.k);
}

INSTANTIATE_TEST_SUITE_P(Types, CApiKernels,
                         testing::Values(KernelCase{"q4_g32_asym", 37, 172, 1}, KernelCase{"q4_g32_asym", 37, 64, 3},
                                         KernelCase{"q8_g32_sym", 37, 172, 2}, KernelCase{"q2_row_asym", 5, 100, 7},
                                         KernelCase{"q1_g64_sym", 9, 256, 1}, KernelCase{"f16", 7, 33, 3},
                                         KernelCase{"f32", 7, 33, 2}),
                         kernel_case_name);

TEST(CApiKernelErrors, BadInputsAreReported) {
  std::vector<float> w(64, 0.5f);
  lowbit_qtensor* q = nullptr;
  EXPECT_EQ(lowbit_quantize(w.data(), 2, 32, "q3_g32_sym", nullptr, &q), LOWBIT_INVALID_ARGUMENT);
  EXPECT_NE(std::string(lowbit_last_error()).find("q3_g32_sym"), std::string::npos) << lowbit_last_error();
  EXPECT_EQ(lowbit_quantize(w.data(), 2, 32, "q4", "best", &q), LOWBIT_INVALID_ARGUMENT);
  EXPECT_NE(std::string(lowbit_last_error()).find("best"), std::string::npos) << lowbit_last_error();
  EXPECT_EQ(lowbit_quantize(w.data(), 0, 32, "q4", nullptr, &q), LOWBIT_INVALID_ARGUMENT);
  w[40] = NAN;
  EXPECT_EQ(lowbit_quantize(w.data(), 2, 32, "q4", nullptr, &q), LOWBIT_INVALID_ARGUMENT);
  EXPECT_STRNE(lowbit_last_error(), "");
  EXPECT_EQ(q, nullptr);
}

// Only the C API leaves liblowbit.so: every defined dynamic symbol is lowbit_*.
TEST(CApiLibrary, ExportsOnlyLowbitSymbols) {
  const std::string lib = LOWBIT_BINARY_DIR "/liblowbit.so";
  ASSERT_TRUE(fs::exists(lib)) << lib << " not built (target lowbit)";
  int status = 0;
  const std::string out = run_command("nm -D --defined-only " + lib, &status);
  ASSERT_EQ(status, 0) << "nm failed";
  std::istringstream lines(out);
  std::string line;
  int exported = 0;
  while (std::getline(lines, line)) {
    const std::string name = line.substr(line.rfind(' ') + 1);
    EXPECT_EQ(name.rfind("lowbit_", 0), 0u) << "exported: " << line;
    ++exported;
  }
  EXPECT_GE(exported, 28);
}

}  // namespace
