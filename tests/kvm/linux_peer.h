/* The far end of the boot test's virtio-net link: a fake host on the guest's subnet that
 * answers ARP requests for its address, ICMP echo requests, and echoes UDP datagrams to
 * one port back with "pong:" in front. Frames come from virtio-net's callback back end
 * (lvm_peer_tx on the loop thread) and replies go back with vmm_virtio_net_receive.
 * Counts what it saw, so the test can assert the guest's traffic from the host side. */
#ifndef LINUX_PEER_H
#define LINUX_PEER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <libvmm/libvmm.h>

typedef struct lvm_peer {
	uint8_t mac[6];           /* the peer's MAC */
	uint32_t ip;              /* the peer's IPv4 address, host byte order */
	uint16_t udp_port;        /* echo port */
	vmm_virtio_device *net;   /* set once the device exists (lvm_create does it) */

	pthread_mutex_t lock;
	uint8_t guest_mac[6];     /* source MAC of the guest's last frame */
	unsigned frames, arp_requests, arp_replies, icmp_echoes, udp_datagrams, other;
	char udp_payload[128];    /* the last datagram's payload, NUL-terminated */
} lvm_peer;

/* Sets up a peer with the given address (mutex included). */
void lvm_peer_init(lvm_peer *p, const uint8_t mac[6], uint32_t ip, uint16_t udp_port);
void lvm_peer_fini(lvm_peer *p);

/* vmm_net_tx_fn: a frame from the guest. ctx is the lvm_peer. */
void lvm_peer_tx(void *ctx, const void *frame, size_t len);

#endif
