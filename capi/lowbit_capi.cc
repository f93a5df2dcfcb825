// The C API (include/lowbit.h) over the C++ library. Argument handling and type conversion only:
// every entry point runs its body inside guard(), which turns each exception into a status and
// the thread's last-error message, so no exception ever crosses the C boundary. The chat
// templates and tool calling are in lowbit_capi_chat.cc; what both share, in capi_internal.h.
#include "capi/capi_internal.h"

using namespace lowbit;
using namespace lowbit::capi;

extern "C" {

int lowbit_abi_version(void) { return LOWBIT_ABI_VERSION; }

const char* lowbit_version(void) { return LOWBIT_VERSION_STRING; }

const char* lowbit_last_error(void) { return t_last_error.c_str(); }

const char* lowbit_status_name(lowbit_status status) {
  switch (status) {
    case LOWBIT_OK: return "LOWBIT_OK";
    case LOWBIT_INVALID_ARGUMENT: return "LOWBIT_INVALID_ARGUMENT";
    case LOWBIT_NOT_FOUND: return "LOWBIT_NOT_FOUND";
    case LOWBIT_IO: return "LOWBIT_IO";
    case LOWBIT_FORMAT: return "LOWBIT_FORMAT";
    case LOWBIT_VERSION: return "LOWBIT_VERSION";
    case LOWBIT_OUT_OF_MEMORY: return "LOWBIT_OUT_OF_MEMORY";
    case LOWBIT_CANCELLED: return "LOWBIT_CANCELLED";
    case LOWBIT_BUFFER_TOO_SMALL: return "LOWBIT_BUFFER_TOO_SMALL";
    case LOWBIT_CONTEXT_FULL: return "LOWBIT_CONTEXT_FULL";
    case LOWBIT_INTERNAL: return "LOWBIT_INTERNAL";
  }
  return "LOWBIT_UNKNOWN_STATUS";
}

// ---- models ---------------------------------------------------------------------------------

lowbit_load_params lowbit_load_default_params(void) {
  lowbit_load_params p;
  p.threads = 0;
  p.ctx = 0;
  p.isa = "auto";
  p.gpu_layers = 0;
  return p;
}

lowbit_status lowbit_model_load(const char* dir, const lowbit_load_params* params, lowbit_model** out) {
  return guard(LOWBIT_FORMAT, [&] {
    need(dir, "lowbit_model_load", "dir");
    need(out, "lowbit_model_load", "out");
    const lowbit_load_params p = params ? *params : lowbit_load_default_params();
    LoadParams lp;
    if (p.threads < 0) fail(LOWBIT_INVALID_ARGUMENT, "lowbit_model_load: threads must be >= 0");
    if (p.ctx < 0) fail(LOWBIT_INVALID_ARGUMENT, "lowbit_model_load: ctx must be >= 0");
    lp.threads = p.threads;
    lp.ctx = p.ctx;
    lp.isa = resolve_isa(parse_isa(p.isa && *p.isa ? p.isa : "auto"));  // invalid_argument
    if (p.gpu_layers < 0 && p.gpu_layers != LOWBIT_GPU_LAYERS_ALL && p.gpu_layers != LOWBIT_GPU_LAYERS_AUTO)
      fail(LOWBIT_INVALID_ARGUMENT, "lowbit_model_load: gpu_layers must be >= 0, LOWBIT_GPU_LAYERS_ALL or LOWBIT_GPU_LAYERS_AUTO");
    static_assert(LOWBIT_GPU_LAYERS_ALL == kGpuLayersAll && LOWBIT_GPU_LAYERS_AUTO == kGpuLayersAuto);
    lp.gpu_layers = p.gpu_layers;
    const std::string d = dir;
    if (!path_exists(d)) fail(LOWBIT_NOT_FOUND, d + ": no such file or directory");
    // A directory that is no HF model must be a manifest: say which of its files is missing.
    if (std::filesystem::is_directory(d) && !path_exists(d + "/config.json")) {
      for (const char* f : {kManifestFile, kWeightsFile}) {
        const std::string path = d + "/" + f;
        if (!path_exists(path)) fail(LOWBIT_NOT_FOUND, path + ": not found (is " + d + " a lowbit manifest directory?)");
        if (access(path.c_str(), R_OK) != 0) fail(LOWBIT_IO, path + ": not readable");
      }
    }
    // load_model's own codes: version for a newer manifest, out_of_memory when the weights and
    // KV cache would not fit; its unspecified ones are a bad model file (LOWBIT_FORMAT).
    auto m = std::make_unique<lowbit_model>();
    m->model = load_model(d, lp);
    if (m->model->has_tokenizer()) m->json = std::make_shared<LazyJsonTokens>(m->model->tokenizer());
    *out = track(std::move(m), Kind::model);
  });
}

void lowbit_model_free(lowbit_model* model) { release(model, Kind::model, "lowbit_model_free"); }

lowbit_status lowbit_model_get_info(const lowbit_model* model, lowbit_model_info* out) {
  return guard(LOWBIT_INVALID_ARGUMENT, [&] {
    check(model, Kind::model, "lowbit_model_get_info", "model");
    need(out, "lowbit_model_get_info", "out");
    const Model& m = *model->model;
    const ModelConfig& c = m.config();
    lowbit_model_info info;
    info.arch = c.arch.c_str();
    info.vocab_size = c.vocab_size;
    info.ctx = m.ctx();
    info.dim = c.dim;
    info.n_layers = c.n_layers;
    info.bos_id = m.has_tokenizer() ? m.tokenizer().bos_id() : c.bos_id;
    const std::vector<int32_t>& eos = m.has_tokenizer() ? m.tokenizer().eos_ids() : c.eos_ids;
    info.eos_id = eos.empty() ? -1 : eos[0];
    *out = info;
  });
}

// ---- tokenizer ------------------------------------------------------------------------------

lowbit_status lowbit_tokenize(const lowbit_model* model, const char* text, size_t text_len, int add_bos,
                              int32_t* tokens, size_t capacity, size_t* n_tokens) {
  return guard(LOWBIT_INVALID_ARGUMENT, [&] {
    const std::string_view t = text_arg(model, text, text_len, tokens, capacity, n_tokens, "lowbit_tokenize");
    return_ids(model->model->tokenizer().encode(t, add_bos != 0), tokens, capacity, n_tokens, "lowbit_tokenize");
  });
}

lowbit_status lowbit_detokenize(const lowbit_model* model, const int32_t* tokens, size_t n_tokens, char* text,
                                size_t capacity, size_t* text_len) {
  return guard(LOWBIT_INVALID_ARGUMENT, [&] {
    check(model, Kind::model, "lowbit_detokenize", "model");
    need(text_len, "lowbit_detokenize", "text_len");
    if (!tokens && n_tokens) fail(LOWBIT_INVALID_ARGUMENT, "lowbit_detokenize: tokens is NULL");
    if (!text && capacity) fail(LOWBIT_INVALID_ARGUMENT, "lowbit_detokenize: text is NULL but capacity is not 0");
    const std::string s = model->model->tokenizer().decode(std::vector<int32_t>(tokens, tokens + n_tokens));
    return_text(s, text, capacity, text_len, "lowbit_detokenize");
  });
}

// ---- sessions -------------------------------------------------------------------------------

lowbit_status lowbit_session_create(const lowbit_model* model, lowbit_session** out) {
  return guard(LOWBIT_INVALID_ARGUMENT, [&] {
    check(model, Kind::model, "lowbit_session_create", "model");
    need(out, "lowbit_session_create", "out");
    auto s = std::make_unique<lowbit_session>();
    s->model = model->model;
    s->json = model->json;
    s->session = std::make_unique<Session>(*s->model);
    *out = track(std::move(s), Kind::session);
  });
}

void lowbit_session_free(lowbit_session* session) { release(session, Kind::session, "lowbit_session_free"); }

lowbit_status lowbit_session_eval(lowbit_session* session, const int32_t* tokens, size_t n_tokens, int all_logits,
                                  float* logits, size_t logits_capacity) {
  return guard(LOWBIT_INVALID_ARGUMENT, [&] {
    check(session, Kind::session, "lowbit_session_eval", "session");
    need(tokens, "lowbit_session_eval", "tokens");
    if (n_tokens == 0) fail(LOWBIT_INVALID_ARGUMENT, "lowbit_session_eval: n_tokens is 0");
    Session& s = *session->session;
    const int64_t ctx = s.model().ctx();
    if ((int64_t)n_tokens > ctx - s.position())
      fail(LOWBIT_CONTEXT_FULL, "lowbit_session_eval: " + std::to_string(n_tokens) + " tokens at position " +
                                    std::to_string(s.position()) + " do not fit a context of " +
                                    std::to_string(ctx));
    const int64_t vocab = s.model().config().vocab_size;
    const size_t needed = (size_t)vocab * (all_logits ? n_tokens : 1);
    std::vector<float> scratch;
    float* dst = logits;
    if (logits) {
      if (logits_capacity < needed)
        fail(LOWBIT_BUFFER_TOO_SMALL, "lowbit_session_eval: logits need " + std::to_string(needed) +
                                          " floats, the buffer holds " + std::to_string(logits_capacity));
    } else {
      scratch.resize(needed);
      dst = scratch.data();
    }
    s.eval(tokens, (int64_t)n_tokens, dst, all_logits != 0);
    session->tokens.insert(session->tokens.end(), tokens, tokens + n_tokens);
  });
}

lowbit_status lowbit_session_position(const lowbit_session* session, int64_t* out) {
  return guard(LOWBIT_INVALID_ARGUMENT, [&] {
    check(session, Kind::session, "lowbit_session_position", "session");
    need(out, "lowbit_session_position", "out");
    *out = session->session->position();
  });
}

lowbit_status lowbit_session_truncate(lowbit_session* session, int64_t position) {
  return guard(LOWBIT_INVALID_ARGUMENT, [&] {
    check(session, Kind::session, "lowbit_session_truncate", "session");
    session->session->truncate(position);
    session->tokens.resize((size_t)std::min<int64_t>((int64_t)session->tokens.size(), session->session->position()));
  });
}

// ---- sampling -------------------------------------------------------------------------------

lowbit_sampler_params lowbit_sampler_default_params(void) {
  const SamplerParams d;
  lowbit_sampler_params p;
  p.temperature = d.temperature;
  p.top_k = d.top_k;
  p.top_p = d.top_p;
  p.min_p = d.min_p;
  p.repetition_penalty = d.repetition_penalty;
  p.repetition_window = d.repetition_window;
  p.presence_penalty = d.presence_penalty;
  p.frequency_penalty = d.frequency_penalty;
  p.seed = d.seed;
  return p;
}

lowbit_status lowbit_sampler_create(const lowbit_sampler_params* params, lowbit_sampler** out) {
  return guard(LOWBIT_INVALID_ARGUMENT, [&] {
    need(out, "lowbit_sampler_create", "out");
    const SamplerParams p = to_cpp(params ? *params : lowbit_sampler_default_params());
    *out = track(std::make_unique<lowbit_sampler>(p), Kind::sampler);
  });
}

void lowbit_sampler_free(lowbit_sampler* sampler) { release(sampler, Kind::sampler, "lowbit_sampler_free"); }

lowbit_status lowbit_sampler_sample(lowbit_sampler* sampler, float* logits, size_t vocab_size,
                                    const int32_t* recent, size_t n_recent, int32_t* out_token) {
  return guard(LOWBIT_INVALID_ARGUMENT, [&] {
    check(sampler, Kind::sampler, "lowbit_sampler_sample", "sampler");
    need(logits, "lowbit_sampler_sample", "logits");
    need(out_token, "lowbit_sampler_sample", "out_token");
    if (vocab_size == 0) fail(LOWBIT_INVALID_ARGUMENT, "lowbit_sampler_sample: vocab_size is 0");
    if (!recent && n_recent) fail(LOWBIT_INVALID_ARGUMENT, "lowbit_sampler_sample: recent is NULL");
    sampler->recent.assign(recent, recent + n_recent);
    *out_token = sampler->sampler.sample(logits, (int64_t)vocab_size, sampler->recent);
  });
}

// ---- generation -----------------------------------------------------------------------------

lowbit_generate_params lowbit_generate_default_params(void) {
  const GenerateParams d;
  lowbit_generate_params p;
  p.max_tokens = d.max_tokens;
  p.sampler = lowbit_sampler_default_params();
  p.stop = nullptr;
  p.n_stop = 0;
  p.add_bos = d.add_bos ? 1 : 0;
  p.format = nullptr;
  return p;
}

namespace {

// The output format of a generation: NULL or "" free text, "json" one JSON object, else a JSON
// schema the text is one value of (runtime/json_schema.h; its refusal names the keyword).
void set_format(const char* format, const std::shared_ptr<LazyJsonTokens>& json,
                std::shared_ptr<const JsonTokens>& tokens, std::shared_ptr<const JsonSchema>& schema,
                const std::string& fn) {
  if (!format || !*format) return;
  if (!json) fail(LOWBIT_INVALID_ARGUMENT, fn + ": format needs the model's tokenizer, and it has none");
  if (std::strcmp(format, "json") != 0) schema = JsonSchema::compile_text(format, fn + ": format");
  tokens = json->get();
}

// generate()'s settings from the C struct (NULL: the defaults), checked; fn names the caller.
GenerateParams to_generate_params(const lowbit_generate_params* params, const lowbit_session* session,
                                  const std::string& fn) {
  const lowbit_generate_params p = params ? *params : lowbit_generate_default_params();
  GenerateParams gp;
  if (p.max_tokens < 0) fail(LOWBIT_INVALID_ARGUMENT, fn + ": max_tokens must be >= 0");
  gp.max_tokens = p.max_tokens;
  gp.sampler = to_cpp(p.sampler);
  gp.add_bos = p.add_bos != 0;
  if (!p.stop && p.n_stop) fail(LOWBIT_INVALID_ARGUMENT, fn + ": stop is NULL but n_stop is not 0");
  for (size_t i = 0; i < p.n_stop; ++i) {
    if (!p.stop[i] || !*p.stop[i]) fail(LOWBIT_INVALID_ARGUMENT, fn + ": stop[" + std::to_string(i) + "] is NULL or empty");
    gp.stop.emplace_back(p.stop[i]);
  }
  set_format(p.format, session->json, gp.json, gp.schema, fn);
  return gp;
}

// Generates from the prompt's ids at the session's position: what lowbit_generate and
// lowbit_generate_tokens share once the prompt is tokens.
void generate_ids(lowbit_session& ls, std::vector<int32_t> ids, const GenerateParams& gp, lowbit_token_callback callback,
                  void* user, lowbit_generate_result* result, const std::string& fn) {
  Session& s = *ls.session;
  const Model& m = s.model();
  // Checked here so a long prompt reports CONTEXT_FULL rather than a generic error from eval.
  if ((int64_t)ids.size() > m.ctx() - s.position())
    fail(LOWBIT_CONTEXT_FULL, fn + ": a prompt of " + std::to_string(ids.size()) + " tokens at position " +
                                  std::to_string(s.position()) + " does not fit a context of " + std::to_string(m.ctx()));
  TokenCallback cb;
  if (callback)
    cb = [&](const std::string& piece, int32_t id) { return callback(piece.data(), piece.size(), id, user) == 0; };
  const GenerateResult r = generate(s, std::move(ids), gp, cb, ls.tokens);
  // Prompt then generated ids fill the positions in order (the last id may not have been fed).
  ls.tokens.insert(ls.tokens.end(), r.prompt_ids.begin(), r.prompt_ids.end());
  ls.tokens.insert(ls.tokens.end(), r.ids.begin(), r.ids.end());
  ls.tokens.resize((size_t)s.position());
  if (result) {
    result->stop_reason = to_c_stop(r.stop_reason);
    result->prompt_tokens = (int64_t)r.prompt_ids.size();
    result->generated_tokens = (int64_t)r.ids.size();
    result->prompt_seconds = r.prompt_seconds;
    result->gen_seconds = r.gen_seconds;
  }
}

}  // namespace

lowbit_status lowbit_generate(lowbit_session* session, const char* prompt, const lowbit_generate_params* params,
                              lowbit_token_callback callback, void* user, lowbit_generate_result* result) {
  return guard(LOWBIT_INVALID_ARGUMENT, [&] {
    check(session, Kind::session, "lowbit_generate", "session");
    need(prompt, "lowbit_generate", "prompt");
    const GenerateParams gp = to_generate_params(params, session, "lowbit_generate");
    generate_ids(*session, session->session->model().tokenizer().encode(prompt, gp.add_bos), gp, callback, user, result,
                 "lowbit_generate");
  });
}

lowbit_status lowbit_generate_tokens(lowbit_session* session, const int32_t* prompt, size_t n_prompt,
                                     const lowbit_generate_params* params, lowbit_token_callback callback, void* user,
                                     lowbit_generate_result* result) {
  return guard(LOWBIT_INVALID_ARGUMENT, [&] {
    check(session, Kind::session, "lowbit_generate_tokens", "session");
    need(prompt, "lowbit_generate_tokens", "prompt");
    if (n_prompt == 0) fail(LOWBIT_INVALID_ARGUMENT, "lowbit_generate_tokens: n_prompt is 0");
    const GenerateParams gp = to_generate_params(params, session, "lowbit_generate_tokens");
    generate_ids(*session, std::vector<int32_t>(prompt, prompt + n_prompt), gp, callback, user, result,
                 "lowbit_generate_tokens");
  });
}

// ---- batches --------------------------------------------------------------------------------

lowbit_batch_params lowbit_batch_default_params(void) {
  const SchedulerParams d;
  lowbit_batch_params p;
  p.max_sequences = d.max_sequences;
  p.max_step_tokens = d.max_step_tokens;
  p.keep_caches = d.keep_caches;
  return p;
}

lowbit_status lowbit_batch_create(const lowbit_model* model, const lowbit_batch_params* params, lowbit_batch** out) {
  return guard(LOWBIT_INVALID_ARGUMENT, [&] {
    check(model, Kind::model, "lowbit_batch_create", "model");
    need(out, "lowbit_batch_create", "out");
    const lowbit_batch_params p = params ? *params : lowbit_batch_default_params();
    auto b = std::make_unique<lowbit_batch>();
    b->model = model->model;
    b->json = model->json;
    if (p.keep_caches < 0) fail(LOWBIT_INVALID_ARGUMENT, "lowbit_batch_create: keep_caches must be >= 0");
    b->scheduler =
        std::make_unique<Scheduler>(*b->model, SchedulerParams{p.max_sequences, p.max_step_tokens, p.keep_caches});
    *out = track(std::move(b), Kind::batch);
  });
}

void lowbit_batch_free(lowbit_batch* batch) { release(batch, Kind::batch, "lowbit_batch_free"); }

lowbit_sequence_params lowbit_sequence_default_params(void) {
  const SequenceParams d;
  lowbit_sequence_params p;
  p.max_tokens = d.max_tokens;
  p.sampler = lowbit_sampler_default_params();
  p.stop = nullptr;
  p.n_stop = 0;
  p.format = nullptr;
  return p;
}

lowbit_status lowbit_batch_add(lowbit_batch* batch, const int32_t* prompt, size_t n_prompt,
                               const lowbit_sequence_params* params, uint64_t* out_id) {
  return guard(LOWBIT_INVALID_ARGUMENT, [&] {
    check(batch, Kind::batch, "lowbit_batch_add", "batch");
    if (!prompt && n_prompt) fail(LOWBIT_INVALID_ARGUMENT, "lowbit_batch_add: prompt is NULL");
    const lowbit_sequence_params p = params ? *params : lowbit_sequence_default_params();
    SequenceParams sp;
    sp.max_tokens = p.max_tokens;
    sp.sampler = to_cpp(p.sampler);
    if (!p.stop && p.n_stop) fail(LOWBIT_INVALID_ARGUMENT, "lowbit_batch_add: stop is NULL but n_stop is not 0");
    for (size_t i = 0; i < p.n_stop; ++i) {
      if (!p.stop[i] || !*p.stop[i])
        fail(LOWBIT_INVALID_ARGUMENT, "lowbit_batch_add: stop[" + std::to_string(i) + "] is NULL or empty");
      sp.stop.emplace_back(p.stop[i]);
    }
    set_format(p.format, batch->json, sp.json, sp.schema, "lowbit_batch_add");
    // The scheduler's own codes: invalid_argument, context_full.
    const SequenceId id = batch->scheduler->submit(std::vector<int32_t>(prompt, prompt + n_prompt), sp);
    if (out_id) *out_id = id;
  });
}

lowbit_status lowbit_batch_cancel(lowbit_batch* batch, uint64_t id) {
  return guard(LOWBIT_INVALID_ARGUMENT, [&] {
    check(batch, Kind::batch, "lowbit_batch_cancel", "batch");
    if (!batch->scheduler->cancel(id))
      fail(LOWBIT_NOT_FOUND, "lowbit_batch_cancel: no waiting or generating sequence " + std::to_string(id));
  });
}

lowbit_status lowbit_batch_step(lowbit_batch* batch, const lowbit_batch_event** events, size_t* n_events) {
  return guard(LOWBIT_INTERNAL, [&] {
    check(batch, Kind::batch, "lowbit_batch_step", "batch");
    need(events, "lowbit_batch_step", "events");
    need(n_events, "lowbit_batch_step", "n_events");
    const std::vector<SequenceEvent>& ev = batch->scheduler->step();
    batch->events.resize(ev.size());
    for (size_t i = 0; i < ev.size(); ++i) {
      lowbit_batch_event& e = batch->events[i];
      e.id = ev[i].id;
      e.token = ev[i].token;
      e.text = ev[i].text.data();
      e.text_len = ev[i].text.size();
      e.finished = ev[i].finish != FinishReason::none;
      e.stop_reason = to_c_stop(ev[i].finish);
      const SequenceStats* st = e.finished ? batch->scheduler->stats(ev[i].id) : nullptr;
      e.cached_tokens = st ? st->cached_tokens : 0;
    }
    *events = batch->events.data();
    *n_events = batch->events.size();
  });
}

lowbit_status lowbit_batch_pending(const lowbit_batch* batch, size_t* running, size_t* waiting) {
  return guard(LOWBIT_INVALID_ARGUMENT, [&] {
    check(batch, Kind::batch, "lowbit_batch_pending", "batch");
    if (running) *running = batch->scheduler->running();
    if (waiting) *waiting = batch->scheduler->waiting();
  });
}

// ---- kernels --------------------------------------------------------------------------------

lowbit_status lowbit_quantize(const float* w, int64_t n, int64_t k, const char* type, const char* quantizer,
                              lowbit_qtensor** out) {
  return guard(LOWBIT_INVALID_ARGUMENT, [&] {
    need(w, "lowbit_quantize", "w");
    need(type, "lowbit_quantize", "type");
    need(out, "lowbit_quantize", "out");
    if (n <= 0 || k <= 0 || n > (int64_t{1} << 31) || k > (int64_t{1} << 31))
      fail(LOWBIT_INVALID_ARGUMENT, "lowbit_quantize: shape (" + std::to_string(n) + ", " + std::to_string(k) +
                                        ") must be positive and below 2^31 per side");
    const QType t = parse_type(type);
    check_type(t);
    const Quantizer qz = parse_quantizer(quantizer ? quantizer : "rtn");
    auto q = std::make_unique<lowbit_qtensor>();
    const QLayout l = q_layout(t, n, k);
    q->nbytes = (size_t)l.bytes;
    // Quantized kernels read whole 32-byte chunks from 64-byte aligned sections, as in weights.bin.
    q->storage.reset(static_cast<uint8_t*>(std::aligned_alloc(kSectionAlign, (size_t)round_up(l.bytes, kSectionAlign))));
    if (!q->storage) throw std::bad_alloc();
    std::memset(q->storage.get(), 0, (size_t)round_up(l.bytes, kSectionAlign));
    quantize(t, w, n, k, q->storage.get(), qz, &ThreadPool::global());
    q->matrix = QMatrix{t, n, k, q->storage.get()};
    q->type_name = type_name(t);
    *out = track(std::move(q), Kind::qtensor);
  });
}

void lowbit_qtensor_free(lowbit_qtensor* tensor) { release(tensor, Kind::qtensor, "lowbit_qtensor_free"); }

lowbit_status lowbit_qtensor_get_info(const lowbit_qtensor* tensor, lowbit_qtensor_info* out) {
  return guard(LOWBIT_INVALID_ARGUMENT, [&] {
    check(tensor, Kind::qtensor, "lowbit_qtensor_get_info", "tensor");
    need(out, "lowbit_qtensor_get_info", "out");
    const QMatrix& m = tensor->matrix;
    lowbit_qtensor_info info;
    info.type = tensor->type_name.c_str();
    info.n = m.n;
    info.k = m.k;
    info.nbytes = tensor->nbytes;
    info.bits_per_weight = bits_per_weight(m.type, m.n, m.k);
    info.data = m.data;
    *out = info;
  });
}

lowbit_status lowbit_qtensor_dequantize(const lowbit_qtensor* tensor, float* out, size_t capacity) {
  return guard(LOWBIT_INVALID_ARGUMENT, [&] {
    check(tensor, Kind::qtensor, "lowbit_qtensor_dequantize", "tensor");
    need(out, "lowbit_qtensor_dequantize", "out");
    const QMatrix& m = tensor->matrix;
    if (capacity < (size_t)(m.n * m.k))
      fail(LOWBIT_BUFFER_TOO_SMALL, "lowbit_qtensor_dequantize: needs " + std::to_string(m.n * m.k) +
                                        " floats, the buffer holds " + std::to_string(capacity));
    dequantize(m.type, m.data, m.n, m.k, out, &ThreadPool::global());
  });
}

lowbit_status lowbit_matmul(const lowbit_qtensor* w, const float* x, int64_t m, float* y) {
  return guard(LOWBIT_INVALID_ARGUMENT, [&] {
    check(w, Kind::qtensor, "lowbit_matmul", "w");
    need(x, "lowbit_matmul", "x");
    need(y, "lowbit_matmul", "y");
    if (m <= 0) fail(LOWBIT_INVALID_ARGUMENT, "lowbit_matmul: m must be positive, not " + std::to_string(m));
    matmul(w->matrix, x, m, y);
  });
}

// ---- conversion -----------------------------------------------------------------------------

lowbit_convert_params lowbit_convert_default_params(void) {
  const ConvertOptions d;
  lowbit_convert_params p;
  p.bits = d.bits;
  p.group = (int32_t)d.group;
  p.scheme = nullptr;
  p.quantizer = quantizer_name(d.quantizer);
  p.keep = nullptr;
  p.n_keep = 0;
  p.threads = d.threads;
  p.force = d.force ? 1 : 0;
  p.allow_nonfinite = d.allow_nonfinite ? 1 : 0;
  p.progress = nullptr;
  p.progress_user = nullptr;
  return p;
}

lowbit_status lowbit_convert(const char* hf_dir, const char* out_dir, const lowbit_convert_params* params,
                             lowbit_convert_summary* summary) {
  std::atomic<bool> cancel{false};
  const lowbit_status st = guard(LOWBIT_FORMAT, [&] {
    need(hf_dir, "lowbit_convert", "hf_dir");
    need(out_dir, "lowbit_convert", "out_dir");
    const lowbit_convert_params p = params ? *params : lowbit_convert_default_params();
    ConvertOptions opt;
    if (p.bits != 1 && p.bits != 2 && p.bits != 4 && p.bits != 8 && p.bits != 16 && p.bits != 32)
      fail(LOWBIT_INVALID_ARGUMENT, "lowbit_convert: bits " + std::to_string(p.bits) + " is not one of 1, 2, 4, 8, 16, 32");
    if (p.group != 0 && p.group != 32 && p.group != 64 && p.group != 128 && p.group != 256)
      fail(LOWBIT_INVALID_ARGUMENT, "lowbit_convert: group " + std::to_string(p.group) +
                                        " is not one of 32, 64, 128, 256, 0 (per row)");
    opt.bits = p.bits;
    opt.group = (uint32_t)p.group;
    if (p.scheme) {
      const std::string s = p.scheme;
      if (s != "sym" && s != "asym")
        fail(LOWBIT_INVALID_ARGUMENT, "lowbit_convert: scheme must be \"sym\", \"asym\" or NULL, not '" + s + "'");
      opt.scheme = (int)(s == "sym" ? Scheme::sym : Scheme::asym);
    }
    opt.quantizer = parse_quantizer(p.quantizer ? p.quantizer : "search");  // invalid_argument
    if (!p.keep && p.n_keep) fail(LOWBIT_INVALID_ARGUMENT, "lowbit_convert: keep is NULL but n_keep is not 0");
    for (size_t i = 0; i < p.n_keep; ++i) {
      const std::string k = p.keep[i] ? p.keep[i] : "";
      const size_t eq = k.rfind('=');
      if (eq == std::string::npos || eq == 0)
        fail(LOWBIT_INVALID_ARGUMENT, "lowbit_convert: keep[" + std::to_string(i) + "] must be NAME_GLOB=TYPE, not '" + k + "'");
      opt.keep.emplace_back(k.substr(0, eq), k.substr(eq + 1));
    }
    if (p.threads < 0) fail(LOWBIT_INVALID_ARGUMENT, "lowbit_convert: threads must be >= 0");
    opt.threads = p.threads;
    opt.force = p.force != 0;
    opt.allow_nonfinite = p.allow_nonfinite != 0;
    opt.cancel = &cancel;
    if (p.progress) {
      opt.progress = [&](const ConvertProgress& cp) {
        lowbit_convert_progress c;
        c.tensor = cp.tensor;
        c.tensors = cp.tensors;
        c.name = cp.name.c_str();
        c.bytes_done = cp.bytes_done;
        c.bytes_total = cp.bytes_total;
        if (p.progress(&c, p.progress_user) != 0) cancel.store(true);
      };
    }
    if (!path_exists(hf_dir)) fail(LOWBIT_NOT_FOUND, std::string(hf_dir) + ": no such directory");
    if (path_exists(out_dir) && !opt.force)
      fail(LOWBIT_INVALID_ARGUMENT, std::string(out_dir) + ": already exists (set force to replace it)");
    const ConvertSummary s = convert_model(hf_dir, out_dir, opt);
    if (summary) {
      summary->tensors = s.tensors;
      summary->weights = s.weights;
      summary->input_bytes = s.input_bytes;
      summary->output_bytes = s.output_bytes;
      summary->nonfinite_replaced = s.nonfinite_replaced;
      summary->bits_per_weight = s.bits_per_weight();
      summary->seconds = s.seconds;
    }
  });
  // The converter reports a cancellation as an error; the caller asked for it, so say so.
  if (st != LOWBIT_OK && cancel.load()) {
    t_last_error = "lowbit_convert: cancelled by the progress callback; nothing was written";
    return LOWBIT_CANCELLED;
  }
  return st;
}

}  // extern "C"
