/* libvmm: virtio-net (device id 1) with a TAP or a callback back end.
 *
 * One receive queue (0) and one transmit queue (1), 256 entries each; no control queue,
 * no multiqueue. The MAC is in config space (VIRTIO_NET_F_MAC) with the link always up
 * (VIRTIO_NET_F_STATUS); mergeable receive buffers (VIRTIO_NET_F_MRG_RXBUF) are offered;
 * checksum and segmentation offloads are off, so every frame is a plain Ethernet frame of
 * at most 65535 bytes and the virtio-net header is added and stripped by the device.
 *
 * Ingress never stalls (CVE-2020-16843): when the guest's receive queue is full, frames
 * wait in a bounded backlog of rx_backlog frames (dropped beyond it, counted) and
 * delivery resumes as soon as the guest adds buffers (it notifies the receive queue),
 * without waiting for more ingress. With the TAP back end the device stops reading the
 * TAP meanwhile, so the kernel queues (and beyond its queue drops) like a full NIC.
 * A device reset drops the frames still waiting.
 *
 * Usage (callback back end):
 *     vmm_virtio_net_opts o = VMM_VIRTIO_NET_OPTS_INIT;
 *     o.backend = VMM_NET_CALLBACK;
 *     o.tx = my_tx;                 // frames from the guest, on the loop thread
 *     o.ctx = me;
 *     vmm_virtio_device *net;
 *     vmm_virtio_net_create(&net, &o);
 *     vmm_virtio_mmio_attach(&t, vm, loop, &mo, net);
 *     ...
 *     vmm_virtio_net_receive(net, frame, len);  // to the guest, from any thread
 */
#ifndef LIBVMM_VIRTIO_NET_H
#define LIBVMM_VIRTIO_NET_H

#include <libvmm/sys/device.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum vmm_net_backend {
	VMM_NET_TAP = 0,      /* /dev/net/tun: tap_name (created or attached) or tap_fd */
	VMM_NET_CALLBACK = 1, /* frames from the guest go to tx; frames to it via receive */
} vmm_net_backend;

/* A frame the guest sent (Ethernet header onwards, no virtio header, 14..65535 bytes),
 * on the loop thread. The buffer is the device's copy, valid during the call. The
 * callback may call vmm_virtio_net_receive (on this device or another). */
typedef void (*vmm_net_tx_fn)(void *ctx, const void *frame, size_t len);

typedef struct vmm_virtio_net_opts {
	uint32_t size;            /* sizeof(vmm_virtio_net_opts) */
	vmm_net_backend backend;
	uint8_t mac[6];           /* all zero: a random locally administered MAC; else a
	                           * unicast MAC (multicast is -EINVAL) */
	const char *tap_name;     /* VMM_NET_TAP with tap_fd -1: the interface to create or
	                           * attach to (IFF_TAP | IFF_NO_PI, no IFF_VNET_HDR; needs
	                           * CAP_NET_ADMIN); NULL: the kernel picks tapN */
	int tap_fd;               /* VMM_NET_TAP: an already attached TAP fd, or -1. It must
	                           * be IFF_TAP | IFF_NO_PI without IFF_VNET_HDR (IFF_TUN and
	                           * IFF_VNET_HDR are refused; IFF_NO_PI cannot be checked, the
	                           * kernel reports that bit ambiguously). It is dup'ed (the
	                           * caller keeps its own) and the shared open file is made
	                           * non-blocking. */
	vmm_net_tx_fn tx;         /* VMM_NET_CALLBACK: required */
	void *ctx;                /* passed to tx */
	uint32_t rx_backlog;      /* frames held while RX is full; 0 = 256, at most 1024 (each
	                           * frame slot reserves 64 KiB of address space, touched only
	                           * as far as frames fill it) */
} vmm_virtio_net_opts;

#define VMM_VIRTIO_NET_OPTS_INIT { sizeof(vmm_virtio_net_opts), VMM_NET_TAP, { 0 }, 0, -1, 0, 0, 0 }

/* Creates the device (attach it with vmm_virtio_mmio_attach, which then owns it; or free
 * it with vmm_virtio_device_destroy). opts NULL: the defaults, a TAP the kernel names.
 * Returns 0, -EINVAL (bad options, tap_fd not a suitable TAP), -ENOMEM, or the errno of
 * opening the TAP (e.g. -EPERM without CAP_NET_ADMIN, -EBUSY if the interface is in use). */
VMM_API int vmm_virtio_net_create(vmm_virtio_device **out, const vmm_virtio_net_opts *opts);

/* Delivers a frame (Ethernet header onwards) to the guest: copies it into the backlog
 * and wakes the device's loop, which delivers it as soon as the guest has buffers.
 * Meant for VMM_NET_CALLBACK; works with the TAP back end too (the frames mix). Any
 * thread, including the tx callback; never blocks on the guest. Frames queued before
 * the driver is ready wait for it (a device reset drops them). Returns 0, -ENOBUFS
 * (backlog full: frame dropped and counted in rx_dropped), -EMSGSIZE (over 65535
 * bytes), -EINVAL (not a virtio-net device, NULL frame, under 14 bytes). */
VMM_API int vmm_virtio_net_receive(vmm_virtio_device *dev, const void *frame, size_t len);

/* Counters since create. Bytes count frames without the virtio-net header. */
typedef struct vmm_virtio_net_stats {
	uint64_t tx_frames, tx_bytes, rx_frames, rx_bytes;
	uint64_t rx_dropped;   /* frames not delivered: backlog overflow, a frame larger than
	                        * the guest's buffer (without mergeable buffers) or than all
	                        * the buffers it can have outstanding, dropped by a reset */
	uint64_t tx_errors;    /* chains completed without sending: malformed (no header,
	                        * under 14 or over 65535 bytes) or refused by the TAP (e.g.
	                        * the interface is down) */
} vmm_virtio_net_stats;

/* Any thread. Returns 0 or -EINVAL (not a virtio-net device). */
VMM_API int vmm_virtio_net_get_stats(vmm_virtio_device *dev, vmm_virtio_net_stats *out);
/* The MAC in use (random if none was given). Any thread. Returns 0 or -EINVAL. */
VMM_API int vmm_virtio_net_get_mac(vmm_virtio_device *dev, uint8_t mac[6]);

#ifdef __cplusplus
}
#endif
#endif
