// COpenSSL: OpenSSL libcrypto, used only where libsodium has no primitive (ECDSA P-256) or no
// portable implementation (constant-time software AES-256-GCM on CPUs without AES instructions).
#ifndef OCKAM_EDGE_COPENSSL_SHIM_H
#define OCKAM_EDGE_COPENSSL_SHIM_H
#include <openssl/evp.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/param_build.h>
#endif
