/* lowbit C API: load a quantized manifest, tokenize, evaluate, sample and generate; quantize and
 * multiply single matrices; convert HuggingFace checkpoints. Plain C (C99), so it can be used from
 * C, from any language with a C FFI, and through dlopen()/dlsym() (examples/dlopen_generate.c).
 *
 * Conventions
 *  - Every function that can fail returns a lowbit_status; results come back through out-pointers,
 *    which are written only on LOWBIT_OK unless the function says otherwise.
 *  - On failure, lowbit_last_error() returns a readable message naming the file, field, tensor or
 *    argument at fault. The message is per thread and stays valid until the next lowbit_* call on
 *    the same thread. A call that returns LOWBIT_OK sets it to "".
 *  - The library never exits or aborts on bad input: every C++ exception is caught at this
 *    boundary and becomes a status and a message.
 *  - Handles are opaque and come in create/free pairs. NULL handles give
 *    LOWBIT_INVALID_ARGUMENT; *_free(NULL) does nothing. The library keeps a table of live handles
 *    and rejects one that was freed (or never created) with LOWBIT_INVALID_ARGUMENT without
 *    dereferencing it. This is best-effort: once a freed handle's address is reused by a new
 *    handle of the same kind, the stale pointer refers to the new object.
 *  - Each parameter struct has a lowbit_*_default_params() function: start from it and change the
 *    fields you need, so code keeps working when fields are added (the ABI version changes then).
 *
 * Thread safety
 *  - A lowbit_model is immutable once loaded and may be shared by any number of threads; its
 *    sessions on different threads take turns inside each matrix multiply (one thread pool per
 *    model). A model freed while sessions of it are alive stays loaded until its last session is
 *    freed.
 *  - A lowbit_session and a lowbit_sampler are used by one thread at a time.
 *  - A lowbit_batch: lowbit_batch_add and lowbit_batch_cancel may be called from any thread at any
 *    time, also while another thread is inside lowbit_batch_step (a server's request threads add
 *    and cancel, one engine thread steps), and so may lowbit_batch_pending; lowbit_batch_step and
 *    lowbit_batch_free are called by one thread at a time. Like a session, a batch keeps its
 *    model loaded until it is freed.
 *  - A lowbit_qtensor is immutable once created; any thread may read or multiply it.
 *  - lowbit_last_error() is per thread.
 */
#ifndef LOWBIT_H
#define LOWBIT_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define LOWBIT_API __attribute__((visibility("default")))
#else
#define LOWBIT_API
#endif

/* Bumped whenever a declaration below changes in a way that breaks compiled callers. Compare it
 * with lowbit_abi_version() after dlopen() before using anything else. */
#define LOWBIT_ABI_VERSION 5  /* 2: lowbit_load_params.gpu_layers; 3: format in the generate and sequence params;
                                  4: presence_penalty and frequency_penalty in lowbit_sampler_params;
                                  5: lowbit_batch_params.keep_caches, lowbit_batch_event.cached_tokens */

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lowbit_status {
  LOWBIT_OK = 0,
  LOWBIT_INVALID_ARGUMENT = 1, /* NULL or freed handle, bad value, unknown type name */
  LOWBIT_NOT_FOUND = 2,        /* a path that does not exist */
  LOWBIT_IO = 3,               /* a file that exists but cannot be read or written */
  LOWBIT_FORMAT = 4,           /* a malformed manifest, checkpoint, config or tokenizer file */
  LOWBIT_VERSION = 5,          /* a file newer than this library understands */
  LOWBIT_OUT_OF_MEMORY = 6,
  LOWBIT_CANCELLED = 7,        /* a progress callback asked to stop */
  LOWBIT_BUFFER_TOO_SMALL = 8, /* the caller's buffer is too small; the size needed is returned */
  LOWBIT_CONTEXT_FULL = 9,     /* a session has no room for more tokens */
  LOWBIT_INTERNAL = 10         /* a bug: please report the message */
} lowbit_status;

LOWBIT_API int lowbit_abi_version(void);      /* LOWBIT_ABI_VERSION of the built library */
LOWBIT_API const char* lowbit_version(void);  /* "0.1.0" */
LOWBIT_API const char* lowbit_last_error(void);
LOWBIT_API const char* lowbit_status_name(lowbit_status status); /* "LOWBIT_OK", ... */

typedef struct lowbit_model lowbit_model;
typedef struct lowbit_session lowbit_session;
typedef struct lowbit_sampler lowbit_sampler;
typedef struct lowbit_qtensor lowbit_qtensor;
typedef struct lowbit_batch lowbit_batch;

/* ---- models ------------------------------------------------------------------------------- */

/* lowbit_load_params.gpu_layers' special values; any n >= 0 is "the first n layers". */
#define LOWBIT_GPU_LAYERS_ALL (-1)  /* every layer and the output head on the GPU */
#define LOWBIT_GPU_LAYERS_AUTO (-2) /* as many as fit in the GPU's free memory (the planner) */

typedef struct lowbit_load_params {
  int32_t threads; /* matmul threads; 0: all cores */
  int64_t ctx;     /* context length of each session; 0: the model's maximum */
  const char* isa; /* CPU kernels: "auto" (or NULL), "scalar", "avx2", "avxvnni", "avx512", "avx512zmm", "neon" */
  /* The first gpu_layers layers on the GPU, the rest on the CPU (default 0: CPU only). A count
   * > 0 or ALL without a usable GPU is LOWBIT_INVALID_ARGUMENT, saying why; AUTO then uses the
   * CPU. A GPU that runs out of memory moves layers to the CPU with one warning on stderr. */
  int32_t gpu_layers;
} lowbit_load_params;

LOWBIT_API lowbit_load_params lowbit_load_default_params(void);

/* Loads a model: the manifest directory written by lowbit_convert (or `lowbit convert`), mapped in
 * place; a GGUF file or an HF directory, imported in memory at load (GGUF tensors keep their own
 * types where lowbit has them; an HF directory gets the 4-bit default recipe). params may be
 * NULL for the defaults. LOWBIT_NOT_FOUND when dir or its manifest.json is missing,
 * LOWBIT_VERSION when the manifest's format_version is newer than this library's. */
LOWBIT_API lowbit_status lowbit_model_load(const char* dir, const lowbit_load_params* params,
                                           lowbit_model** out);
LOWBIT_API void lowbit_model_free(lowbit_model* model);

typedef struct lowbit_model_info {
  const char* arch; /* "llama", "mistral", "qwen2", "qwen3"; valid while the model is loaded */
  int64_t vocab_size;
  int64_t ctx; /* context length sessions get */
  int64_t dim;
  int64_t n_layers;
  int32_t bos_id; /* -1: none */
  int32_t eos_id; /* the first end-of-sequence id; -1: none */
} lowbit_model_info;

LOWBIT_API lowbit_status lowbit_model_get_info(const lowbit_model* model, lowbit_model_info* out);

/* ---- tokenizer ---------------------------------------------------------------------------- */

/* Encodes text_len bytes of UTF-8. add_bos != 0 adds what the model's tokenizer config adds
 * around one sequence (BOS, sometimes EOS). *n_tokens is always set to the number of ids the
 * text needs; they are written when capacity suffices, else LOWBIT_BUFFER_TOO_SMALL (no ids
 * written). tokens == NULL with capacity == 0 is a size query and returns LOWBIT_OK. */
LOWBIT_API lowbit_status lowbit_tokenize(const lowbit_model* model, const char* text,
                                         size_t text_len, int add_bos, int32_t* tokens,
                                         size_t capacity, size_t* n_tokens);

/* Decodes ids to UTF-8 (special tokens left out), writes it NUL-terminated. *text_len is always
 * set to the byte length without the NUL; capacity must be at least *text_len + 1, else
 * LOWBIT_BUFFER_TOO_SMALL. text == NULL with capacity == 0 is a size query (LOWBIT_OK). */
LOWBIT_API lowbit_status lowbit_detokenize(const lowbit_model* model, const int32_t* tokens,
                                           size_t n_tokens, char* text, size_t capacity,
                                           size_t* text_len);

/* ---- sessions: one sequence's KV cache ---------------------------------------------------- */

LOWBIT_API lowbit_status lowbit_session_create(const lowbit_model* model, lowbit_session** out);
LOWBIT_API void lowbit_session_free(lowbit_session* session);

/* Feeds n_tokens ids at the session's next positions. logits (may be NULL) receives float
 * (n_tokens, vocab_size) when all_logits != 0, else (vocab_size) for the last token;
 * logits_capacity is its length in floats. LOWBIT_CONTEXT_FULL when the tokens do not fit. */
LOWBIT_API lowbit_status lowbit_session_eval(lowbit_session* session, const int32_t* tokens,
                                             size_t n_tokens, int all_logits, float* logits,
                                             size_t logits_capacity);
LOWBIT_API lowbit_status lowbit_session_position(const lowbit_session* session, int64_t* out);
/* Forgets positions >= position (0 starts over). */
LOWBIT_API lowbit_status lowbit_session_truncate(lowbit_session* session, int64_t position);

/* ---- sampling ----------------------------------------------------------------------------- */

typedef struct lowbit_sampler_params {
  float temperature;        /* 0: greedy (argmax) */
  int32_t top_k;            /* 0: off */
  float top_p;              /* 1: off */
  float min_p;              /* 0: off; keeps tokens with p >= min_p * p_max */
  float repetition_penalty; /* 1: off */
  int32_t repetition_window; /* recent tokens the penalties look at */
  /* OpenAI's, in [-2, 2] (0: off): a token seen c times in the window loses
   * c * frequency_penalty + (c > 0) * presence_penalty from its logit, after the repetition penalty. */
  float presence_penalty;
  float frequency_penalty;
  uint64_t seed;            /* same seed, same choices */
} lowbit_sampler_params;

LOWBIT_API lowbit_sampler_params lowbit_sampler_default_params(void);
LOWBIT_API lowbit_status lowbit_sampler_create(const lowbit_sampler_params* params,
                                               lowbit_sampler** out);
LOWBIT_API void lowbit_sampler_free(lowbit_sampler* sampler);
/* Picks the next id from logits (vocab_size floats, modified in place by the penalties);
 * recent: the n_recent ids so far (prompt included), may be NULL when n_recent == 0. */
LOWBIT_API lowbit_status lowbit_sampler_sample(lowbit_sampler* sampler, float* logits,
                                               size_t vocab_size, const int32_t* recent,
                                               size_t n_recent, int32_t* out_token);

/* ---- generation --------------------------------------------------------------------------- */

typedef struct lowbit_generate_params {
  int64_t max_tokens; /* new tokens at most */
  lowbit_sampler_params sampler;
  const char* const* stop; /* n_stop non-empty stop strings, not included in the output */
  size_t n_stop;
  int add_bos; /* nonzero: encode the prompt with the tokenizer's BOS */
  /* NULL or "": free text. "json": the text is one JSON object. Otherwise a JSON schema (as text)
   * the text is one value of: tokens that cannot continue one are never sampled, as Ollama's
   * format and OpenAI's json_schema (docs/SERVING.md "Structured outputs" lists what a schema may
   * say; anything else is LOWBIT_INVALID_ARGUMENT naming the keyword and its place). */
  const char* format;
} lowbit_generate_params;

LOWBIT_API lowbit_generate_params lowbit_generate_default_params(void);

/* Called with each new piece of text as soon as it is complete UTF-8 (piece is not
 * NUL-terminated; token is the id that completed it, or -1 for text flushed at the end). Return
 * nonzero to stop generating. */
typedef int (*lowbit_token_callback)(const char* piece, size_t len, int32_t token, void* user);

typedef enum lowbit_stop_reason {
  LOWBIT_STOP_EOS = 0,      /* the model emitted an end (or BOS) token */
  LOWBIT_STOP_LENGTH = 1,   /* max_tokens reached */
  LOWBIT_STOP_STRING = 2,   /* a stop string appeared */
  LOWBIT_STOP_CALLBACK = 3, /* the callback returned nonzero */
  LOWBIT_STOP_CONTEXT = 4,  /* the session's context is full */
  LOWBIT_STOP_CANCELLED = 5 /* lowbit_batch_cancel */
} lowbit_stop_reason;

typedef struct lowbit_generate_result {
  lowbit_stop_reason stop_reason;
  int64_t prompt_tokens;
  int64_t generated_tokens;
  double prompt_seconds;
  double gen_seconds;
} lowbit_generate_result;

/* Encodes prompt, evaluates it from the session's current position (truncate to 0 to reuse a
 * session from scratch) and generates, calling callback (may be NULL) with each piece. A stop
 * asked by the callback is a normal end: LOWBIT_OK with stop_reason LOWBIT_STOP_CALLBACK.
 * params and result may be NULL. */
LOWBIT_API lowbit_status lowbit_generate(lowbit_session* session, const char* prompt,
                                         const lowbit_generate_params* params,
                                         lowbit_token_callback callback, void* user,
                                         lowbit_generate_result* result);

/* The same from the prompt's token ids (n_prompt >= 1), e.g. lowbit_chat_tokenize's; add_bos in
 * params is not looked at. */
LOWBIT_API lowbit_status lowbit_generate_tokens(lowbit_session* session, const int32_t* prompt,
                                                size_t n_prompt, const lowbit_generate_params* params,
                                                lowbit_token_callback callback, void* user,
                                                lowbit_generate_result* result);

/* ---- chat templates ----------------------------------------------------------------------- */

/* A conversation through the model's own chat template (tokenizer_config.json's chat_template or
 * the GGUF's tokenizer.chat_template), as transformers' apply_chat_template renders it.
 * messages_json: a NUL-terminated JSON array of {"role": ..., "content": ...} objects;
 * add_generation_prompt != 0 opens the assistant's turn. Writes the text NUL-terminated, with the
 * size convention of lowbit_detokenize (text == NULL, capacity == 0: a size query).
 * LOWBIT_NOT_FOUND: the model has no template; LOWBIT_INVALID_ARGUMENT: not a JSON array, or
 * messages the template refuses (its raise_exception); LOWBIT_FORMAT: a template that does not
 * parse. A chat turn is then: this, lowbit_chat_tokenize, lowbit_generate_tokens. */
LOWBIT_API lowbit_status lowbit_chat_apply_template(const lowbit_model* model,
                                                    const char* messages_json,
                                                    int add_generation_prompt, char* text,
                                                    size_t capacity, size_t* text_len);

/* The ids of a rendered conversation as lowbit's chat front ends (lowbit run, lowbit serve) feed
 * them: the tokenizer's specials (BOS where the model's tokenizer adds one), and never a second
 * BOS when the template wrote one itself. Size convention of lowbit_tokenize. */
LOWBIT_API lowbit_status lowbit_chat_tokenize(const lowbit_model* model, const char* text,
                                              size_t text_len, int32_t* tokens, size_t capacity,
                                              size_t* n_tokens);

/* ---- thinking models ---------------------------------------------------------------------- */

/* A thinking model (Qwen3, DeepSeek-R1, QwQ, ...: its chat template writes </think>) reasons in a
 * <think> block before it answers. A turn is: lowbit_chat_apply_template_vars (vars_json
 * {"enable_thinking": false} asks a template that reads it for an answer without reasoning),
 * lowbit_chat_tokenize, lowbit_generate_tokens whose pieces go through a lowbit_thinking, which
 * cuts the reply into reasoning and answer as `lowbit serve` does (docs/SERVING.md, "Thinking
 * models"). */

/* 1 when the model's chat template is a thinking model's, 0 when not (or it has none, or model is
 * not a live handle). */
LOWBIT_API int lowbit_chat_thinks(const lowbit_model* model);

/* lowbit_chat_apply_template with more variables for the template: vars_json NULL, or a JSON
 * object whose keys the template sees, as apply_chat_template's keyword arguments (one named like
 * the chat's own variables, messages or add_generation_prompt, is LOWBIT_INVALID_ARGUMENT). */
LOWBIT_API lowbit_status lowbit_chat_apply_template_vars(const lowbit_model* model, const char* messages_json,
                                                         int add_generation_prompt, const char* vars_json,
                                                         char* text, size_t capacity, size_t* text_len);

/* One reply cut into reasoning and answer as it streams. Not thread-safe: one reply, one thread. */
typedef struct lowbit_thinking lowbit_thinking;
/* prompt: the rendered prompt the reply follows (NULL for none): a prompt that leaves a <think>
 * block open (DeepSeek-R1's) starts the reply inside it. */
LOWBIT_API lowbit_status lowbit_thinking_create(const char* prompt, lowbit_thinking** out);
LOWBIT_API void lowbit_thinking_free(lowbit_thinking* thinking);
/* Feeds piece_len bytes of the reply (piece may be NULL when 0); end != 0 says the reply ended
 * (all that is held back is then given out). What the reply's text so far makes certain is then
 * lowbit_thinking_reasoning's and lowbit_thinking_answer's: each NUL-terminated, valid until the
 * next feed or free, "" when none (NULL when thinking is not a live handle). */
LOWBIT_API lowbit_status lowbit_thinking_feed(lowbit_thinking* thinking, const char* piece, size_t piece_len,
                                              int end);
LOWBIT_API const char* lowbit_thinking_reasoning(const lowbit_thinking* thinking);
LOWBIT_API const char* lowbit_thinking_answer(const lowbit_thinking* thinking);

/* ---- tool calling ------------------------------------------------------------------------- */

/* Functions the model may call, offered through its own chat template (one that writes tool
 * calls: Qwen2.5's, Hermes', Llama 3.x's, ...; lowbit learns the call syntax from the template, as
 * `lowbit serve` does: docs/SERVING.md "Tool calling"). A turn with tools is:
 * lowbit_tools_apply_template, lowbit_chat_tokenize, lowbit_generate_tokens with params.format =
 * lowbit_tools_format(tools), then lowbit_tools_read_reply on the generated text.
 * A lowbit_tools holds the model loaded and is immutable: any number of threads may use one. */
typedef struct lowbit_tools lowbit_tools;

/* tools_json: a non-empty JSON array of {"type": "function", "function": {"name", "description",
 * "parameters"}} (OpenAI's and Ollama's form). tool_choice: NULL or "auto" (the model decides
 * whether to call), "none" (the tools are shown, the reply is text), "required" (the reply is one
 * call of one of the tools, at most 16) or a function's name (one call of it); a forced call's
 * arguments are held to the tool's parameters. LOWBIT_NOT_FOUND: the model has no chat template;
 * LOWBIT_INVALID_ARGUMENT: tools_json not of that shape, a template that writes no tool calls, a
 * tool_choice naming no tool. */
LOWBIT_API lowbit_status lowbit_tools_create(const lowbit_model* model, const char* tools_json,
                                             const char* tool_choice, lowbit_tools** out);
LOWBIT_API void lowbit_tools_free(lowbit_tools* tools);
/* The conversation (as lowbit_chat_apply_template's messages_json; an assistant message may carry
 * "tool_calls" and a "tool" message a call's result, as chat completions send them) with the tools
 * shown and the assistant's turn opened, begun with the call's opening when one is forced. Size
 * convention of lowbit_detokenize; errors as lowbit_chat_apply_template's. */
LOWBIT_API lowbit_status lowbit_tools_apply_template(const lowbit_tools* tools, const char* messages_json,
                                                     char* text, size_t capacity, size_t* text_len);
/* The format a forced call is generated under (for lowbit_generate_params.format); NULL when no
 * call is forced (or tools is not a live handle). Valid while tools lives. */
LOWBIT_API const char* lowbit_tools_format(const lowbit_tools* tools);
/* A reply (the text generated after lowbit_tools_apply_template's prompt) read back as JSON text:
 * {"content": the text outside the calls, "tool_calls": [{"name": ..., "arguments": {...}}]}
 * (no calls with "none"; a forced reply cut short is all content). Size convention of
 * lowbit_detokenize. */
LOWBIT_API lowbit_status lowbit_tools_read_reply(const lowbit_tools* tools, const char* reply,
                                                 size_t reply_len, char* json, size_t capacity,
                                                 size_t* json_len);

/* ---- batches: many sequences decoded together ---------------------------------------------- */

/* A batch advances many independent sequences of one model together: each lowbit_batch_step is
 * one forward pass holding one row per generating sequence and chunks of prompts still being
 * read, so the weights are read once per step for all of them. Sequences join (lowbit_batch_add)
 * and leave (finishing, lowbit_batch_cancel) between steps. Each sequence has its own sampler,
 * and gets exactly the tokens lowbit_generate gives it alone (for prompts under 128 tokens; see
 * runtime/batch.h for the one exception). */

typedef struct lowbit_batch_params {
  int32_t max_sequences;   /* sequences generating at once; more wait in a queue */
  int64_t max_step_tokens; /* rows per step (decode rows + prompt chunks); > max_sequences */
  /* Prompt cache (default 0: off): the KV caches of this many finished sequences are kept, and a
   * sequence whose prompt begins with the tokens one of them read starts from them, reading only
   * the rest (a chat's next turn), with exactly the tokens it would get without. */
  int32_t keep_caches;
} lowbit_batch_params;

LOWBIT_API lowbit_batch_params lowbit_batch_default_params(void);
/* params may be NULL. LOWBIT_INVALID_ARGUMENT for params that cannot work. */
LOWBIT_API lowbit_status lowbit_batch_create(const lowbit_model* model, const lowbit_batch_params* params,
                                             lowbit_batch** out);
LOWBIT_API void lowbit_batch_free(lowbit_batch* batch);

typedef struct lowbit_sequence_params {
  int64_t max_tokens; /* new tokens at most */
  lowbit_sampler_params sampler;
  const char* const* stop; /* n_stop non-empty stop strings, not included in the text */
  size_t n_stop;
  const char* format; /* as lowbit_generate_params.format */
} lowbit_sequence_params;

LOWBIT_API lowbit_sequence_params lowbit_sequence_default_params(void);

/* Queues a sequence: n_prompt token ids (e.g. from lowbit_tokenize), then up to max_tokens
 * generated. params may be NULL. *out_id (may be NULL) gets its id, never 0.
 * LOWBIT_INVALID_ARGUMENT for an empty prompt, an id outside the vocabulary or bad settings;
 * LOWBIT_CONTEXT_FULL when the prompt does not fit the model's context. */
LOWBIT_API lowbit_status lowbit_batch_add(lowbit_batch* batch, const int32_t* prompt, size_t n_prompt,
                                          const lowbit_sequence_params* params, uint64_t* out_id);
/* Ends a waiting or generating sequence; its last event (LOWBIT_STOP_CANCELLED) comes from the
 * next step. LOWBIT_NOT_FOUND when the id is unknown or already finished. */
LOWBIT_API lowbit_status lowbit_batch_cancel(lowbit_batch* batch, uint64_t id);

/* What one step did for one sequence. */
typedef struct lowbit_batch_event {
  uint64_t id;
  int32_t token;    /* the token generated; -1 when none (the sequence ended on EOS, or was cancelled) */
  const char* text; /* newly complete UTF-8 text (stop strings cut), text_len bytes, not NUL-terminated */
  size_t text_len;
  int finished;                   /* nonzero on the sequence's last event */
  lowbit_stop_reason stop_reason; /* why it finished, when finished */
  int64_t cached_tokens;          /* on the last event: prompt tokens read from the prompt cache */
} lowbit_batch_event;

/* Runs one step and returns its events: *events points to *n_events of them (one per sequence
 * that produced a token or finished), valid until the next lowbit_batch_step or
 * lowbit_batch_free. When nothing is left to compute it returns LOWBIT_OK and no events. */
LOWBIT_API lowbit_status lowbit_batch_step(lowbit_batch* batch, const lowbit_batch_event** events,
                                           size_t* n_events);
/* Sequences generating (running) and queued (waiting); either may be NULL. Step while their sum
 * is positive. */
LOWBIT_API lowbit_status lowbit_batch_pending(const lowbit_batch* batch, size_t* running, size_t* waiting);

/* ---- kernels: single matrices ------------------------------------------------------------- */

/* Quantizes w, an (n, k) row-major fp32 matrix, to the named type: "f32", "f16", "bf16",
 * "q4_g32_asym", "q8_g32_sym", "q2_row_asym", ... or the short forms "q8", "q4". quantizer is
 * "rtn" or "search" (NULL: "rtn"). LOWBIT_INVALID_ARGUMENT names a NaN/Inf weight. */
LOWBIT_API lowbit_status lowbit_quantize(const float* w, int64_t n, int64_t k, const char* type,
                                         const char* quantizer, lowbit_qtensor** out);
LOWBIT_API void lowbit_qtensor_free(lowbit_qtensor* tensor);

typedef struct lowbit_qtensor_info {
  const char* type; /* canonical type name; valid while the tensor lives */
  int64_t n, k;     /* rows (output features), columns (input features) */
  size_t nbytes;    /* storage: codes, scales and mins */
  double bits_per_weight;
  const void* data; /* the matrix in lowbit's layout (docs/FORMAT.md), nbytes long */
} lowbit_qtensor_info;

LOWBIT_API lowbit_status lowbit_qtensor_get_info(const lowbit_qtensor* tensor,
                                                 lowbit_qtensor_info* out);
/* out: (n, k) floats; capacity is its length in floats. */
LOWBIT_API lowbit_status lowbit_qtensor_dequantize(const lowbit_qtensor* tensor, float* out,
                                                   size_t capacity);
/* y (m, n) = x (m, k) * W^T with the fastest kernels of this CPU and the process's thread pool.
 * Quantized weights take int8 activations (per-32 scales), as inside a model. */
LOWBIT_API lowbit_status lowbit_matmul(const lowbit_qtensor* w, const float* x, int64_t m,
                                       float* y);

/* ---- conversion --------------------------------------------------------------------------- */

typedef struct lowbit_convert_progress {
  int64_t tensor, tensors; /* index of the tensor just written, and the count */
  const char* name;        /* its HF name; valid during the callback */
  int64_t bytes_done, bytes_total;
} lowbit_convert_progress;

/* Return nonzero to cancel; the conversion then returns LOWBIT_CANCELLED and writes nothing. */
typedef int (*lowbit_convert_callback)(const lowbit_convert_progress* progress, void* user);

typedef struct lowbit_convert_params {
  int32_t bits;        /* 1, 2, 4, 8 (quantized), 16 (f16) or 32 (f32) */
  int32_t group;       /* 32, 64, 128, 256, or 0 for one group per row */
  const char* scheme;  /* "sym", "asym", or NULL: sym at 8 bits, asym below */
  const char* quantizer; /* "search" (default) or "rtn" */
  const char* const* keep; /* n_keep "NAME_GLOB=TYPE" overrides, the last match wins */
  size_t n_keep;
  int32_t threads;     /* 0: all cores */
  int force;           /* nonzero: replace an existing out_dir */
  int allow_nonfinite; /* nonzero: store NaN/Inf weights as 0 instead of failing */
  lowbit_convert_callback progress; /* may be NULL */
  void* progress_user;
} lowbit_convert_params;

typedef struct lowbit_convert_summary {
  int64_t tensors;
  int64_t weights;
  int64_t input_bytes, output_bytes;
  int64_t nonfinite_replaced;
  double bits_per_weight;
  double seconds;
} lowbit_convert_summary;

LOWBIT_API lowbit_convert_params lowbit_convert_default_params(void);
/* HF directory (config.json, *.safetensors, tokenizer files) -> manifest directory, written
 * atomically (nothing is left behind on failure). params and summary may be NULL. */
LOWBIT_API lowbit_status lowbit_convert(const char* hf_dir, const char* out_dir,
                                        const lowbit_convert_params* params,
                                        lowbit_convert_summary* summary);

#ifdef __cplusplus
}
#endif

#endif /* LOWBIT_H */
