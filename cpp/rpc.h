// ggml RPC workers (rpc.cpp), as model loading uses them.
#pragma once

#include "errors.h"

// The devices of the RPC server at endpoint (connects; GIL released). Raises
// RpcConnectionError when nothing answers there.
std::vector<ggml_backend_dev_t> rpc_devices(const std::string &endpoint);
// How often the connection to endpoint has failed so far.
uint64_t rpc_n_failures(const std::string &endpoint);
