// CNATS: the NATS C client (libnats): connections, JetStream publish with acknowledgement, stream lookups.
#ifndef OCKAM_EDGE_CNATS_SHIM_H
#define OCKAM_EDGE_CNATS_SHIM_H
#include <nats/nats.h>
#endif
