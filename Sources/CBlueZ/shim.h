// CBlueZ: BlueZ's kernel socket ABI (sockaddr_l2, BT_* socket options), headers only.
// libbluetooth (GPL-2.0+) is deliberately NOT linked: this module has no `link` line and the
// manifest gives it no pkgConfig, so only the kernel ABI from the headers is used.
#ifndef OCKAM_EDGE_CBLUEZ_SHIM_H
#define OCKAM_EDGE_CBLUEZ_SHIM_H
#include <sys/socket.h>
#include <bluetooth/bluetooth.h>
#include <bluetooth/l2cap.h>
#include <bluetooth/hci.h>
#endif
