// CSodium: libsodium's C API (X25519, Ed25519, SHA-256, HMAC, AEADs, randomness, guarded memory).
#ifndef OCKAM_EDGE_CSODIUM_SHIM_H
#define OCKAM_EDGE_CSODIUM_SHIM_H
#include <sodium.h>
#endif
