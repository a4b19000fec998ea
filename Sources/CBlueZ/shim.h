// CBlueZ: BlueZ's kernel socket ABI (sockaddr_l2, BT_* socket options), headers only.
// libbluetooth (GPL-2.0+) is deliberately NOT linked: this module has no `link` line and the
// manifest gives it no pkgConfig, so only the kernel ABI from the headers is used.
// The static inline helpers below compile into the caller; none of them calls into libbluetooth.
#ifndef OCKAM_EDGE_CBLUEZ_SHIM_H
#define OCKAM_EDGE_CBLUEZ_SHIM_H
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <sys/eventfd.h>
#include <bluetooth/bluetooth.h>
#include <bluetooth/l2cap.h>
#include <bluetooth/hci.h>

/// `struct hci_dev_list_req` with room for HCI_MAX_DEV entries (the header's flexible array is not
/// usable from Swift).
struct cbluez_hci_dev_list {
    uint16_t dev_num;
    struct hci_dev_req dev_req[HCI_MAX_DEV];
};

/// ioctl(fd, HCIGETDEVLIST, list): `HCIGETDEVLIST` is a function-like macro Swift cannot import.
static inline int cbluez_hci_get_dev_list(int fd, struct cbluez_hci_dev_list *list) {
    return ioctl(fd, HCIGETDEVLIST, (void *)list);
}

/// ioctl(fd, HCIGETDEVINFO, info).
static inline int cbluez_hci_get_dev_info(int fd, struct hci_dev_info *info) {
    return ioctl(fd, HCIGETDEVINFO, (void *)info);
}

/// glibc's accept4(2), which <sys/socket.h> declares only under _GNU_SOURCE (bound by symbol name, so it is
/// libc's own function).
extern int cbluez_accept4(int fd, struct sockaddr *address, socklen_t *length, int flags) __asm__("accept4");

/// The `HCI_UP` bit of `hci_dev_info.flags` (an enum bit index in hci.h).
static inline uint32_t cbluez_hci_flag_up(void) { return 1u << HCI_UP; }
/// The `HCI_RUNNING` bit of `hci_dev_info.flags`.
static inline uint32_t cbluez_hci_flag_running(void) { return 1u << HCI_RUNNING; }

/// poll(2)'s POLLRDHUP (the peer shut its sending side down), which <poll.h> defines only under _GNU_SOURCE.
static inline short cbluez_pollrdhup(void) { return 0x2000; }
#endif
