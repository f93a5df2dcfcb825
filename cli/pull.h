// Pulling a model into the store from the shell (server/pull.h), its progress on one rewritten
// line of stderr when that is a terminal: `lowbit pull`, and `lowbit run` for a Hugging Face name
// it does not have yet.
#pragma once

#include <string>

#include "store/model_store.h"

namespace lowbit::cli {

// Ctrl-C or SIGTERM stops it between chunks (and leaves nothing). quiet: no progress at all.
StoredModel pull_with_progress(ModelStore& store, const std::string& name, int threads, bool insecure, bool quiet);

}  // namespace lowbit::cli
