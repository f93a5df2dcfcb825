/* Greedy generation through liblowbit.so loaded at run time, using only the C API.
 *
 *   dlopen_generate LIBLOWBIT_SO MANIFEST_DIR [N_TOKENS]
 *
 * Opens the library with dlopen(), resolves each function with dlsym(), refuses a library whose
 * ABI version differs from the header's, loads the manifest and streams N_TOKENS (default 256)
 * greedy tokens from an empty prompt (BOS only) to stdout, followed by a newline.
 *
 * The program never links against liblowbit: the function pointer types are taken from the
 * declarations in lowbit.h with __typeof__ (GCC and Clang), so they cannot drift from them. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include "lowbit.h"

/* Declares p_NAME, a pointer of NAME's type, resolved from the library; 0 on success. */
#define RESOLVE(lib, name) \
  __typeof__(&name) p_##name = (__typeof__(&name))dlsym(lib, #name); \
  if (!p_##name) { \
    fprintf(stderr, "dlopen_generate: %s not found in the library: %s\n", #name, dlerror()); \
    return 1; \
  }

static int print_piece(const char* piece, size_t len, int32_t token, void* user) {
  (void)token;
  (void)user;
  fwrite(piece, 1, len, stdout);
  fflush(stdout);
  return 0; /* keep going */
}

int main(int argc, char** argv) {
  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: %s LIBLOWBIT_SO MANIFEST_DIR [N_TOKENS]\n", argv[0]);
    return 2;
  }
  const long n_tokens = argc == 4 ? strtol(argv[3], NULL, 10) : 256;

  void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    fprintf(stderr, "dlopen_generate: %s\n", dlerror());
    return 1;
  }
  /* The ABI check comes first: nothing else may be called through a mismatched header. */
  RESOLVE(lib, lowbit_abi_version);
  if (p_lowbit_abi_version() != LOWBIT_ABI_VERSION) {
    fprintf(stderr, "dlopen_generate: %s has ABI version %d, this program was built for %d\n", argv[1],
            p_lowbit_abi_version(), LOWBIT_ABI_VERSION);
    return 1;
  }
  RESOLVE(lib, lowbit_version);
  RESOLVE(lib, lowbit_last_error);
  RESOLVE(lib, lowbit_status_name);
  RESOLVE(lib, lowbit_model_load);
  RESOLVE(lib, lowbit_model_free);
  RESOLVE(lib, lowbit_session_create);
  RESOLVE(lib, lowbit_session_free);
  RESOLVE(lib, lowbit_generate_default_params);
  RESOLVE(lib, lowbit_generate);

  lowbit_model* model = NULL;
  lowbit_status st = p_lowbit_model_load(argv[2], NULL, &model);
  if (st != LOWBIT_OK) {
    fprintf(stderr, "dlopen_generate: %s: %s\n", p_lowbit_status_name(st), p_lowbit_last_error());
    return 1;
  }
  lowbit_session* session = NULL;
  st = p_lowbit_session_create(model, &session);
  if (st == LOWBIT_OK) {
    lowbit_generate_params gp = p_lowbit_generate_default_params();
    gp.max_tokens = n_tokens;
    gp.sampler.temperature = 0.0f; /* greedy */
    lowbit_generate_result r;
    st = p_lowbit_generate(session, "", &gp, print_piece, NULL, &r);
    if (st == LOWBIT_OK) {
      printf("\n");
      fprintf(stderr, "lowbit %s: %lld tokens, %.1f tokens/s\n", p_lowbit_version(), (long long)r.generated_tokens,
              r.gen_seconds > 0 ? r.generated_tokens / r.gen_seconds : 0.0);
    }
  }
  if (st != LOWBIT_OK) fprintf(stderr, "dlopen_generate: %s: %s\n", p_lowbit_status_name(st), p_lowbit_last_error());
  p_lowbit_session_free(session);
  p_lowbit_model_free(model);
  dlclose(lib);
  return st == LOWBIT_OK ? 0 : 1;
}
