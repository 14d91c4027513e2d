/* The boot test's fake network peer: ARP, ICMP echo and a UDP echo port (see
 * linux_peer.h). Frames come from the guest: every length is checked before use. */
#include "linux_peer.h"

#include <stdio.h>
#include <string.h>

#define ETH_HLEN 14
#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_ARP 0x0806
#define ARP_LEN 28
#define IP_PROTO_ICMP 1
#define IP_PROTO_UDP 17
#define ICMP_ECHO_REQUEST 8
#define ICMP_ECHO_REPLY 0
#define UDP_HLEN 8
#define FRAME_MAX 1514

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)(v >> 16)); put16(p + 2, (uint16_t)v); }

/* The Internet checksum (RFC 1071) of len bytes. */
static uint16_t inet_csum(const uint8_t *p, size_t len)
{
	uint32_t sum = 0;
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += get16(p + i);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

void lvm_peer_init(lvm_peer *p, const uint8_t mac[6], uint32_t ip, uint16_t udp_port)
{
	memset(p, 0, sizeof *p);
	memcpy(p->mac, mac, 6);
	p->ip = ip;
	p->udp_port = udp_port;
	pthread_mutex_init(&p->lock, NULL);
}

void lvm_peer_fini(lvm_peer *p)
{
	pthread_mutex_destroy(&p->lock);
}

static void send_frame(lvm_peer *p, const uint8_t *frame, size_t len)
{
	int r = vmm_virtio_net_receive(p->net, frame, len);
	if (r < 0)
		fprintf(stderr, "linux_peer: vmm_virtio_net_receive: %s\n", vmm_strerror(r));
}

static void eth_reply_header(lvm_peer *p, uint8_t *out, const uint8_t *in, uint16_t type)
{
	memcpy(out, in + 6, 6); /* to whoever sent the request */
	memcpy(out + 6, p->mac, 6);
	put16(out + 12, type);
}

static void handle_arp(lvm_peer *p, const uint8_t *f, size_t len)
{
	const uint8_t *a = f + ETH_HLEN;
	if (len < ETH_HLEN + ARP_LEN || get16(a) != 1 || get16(a + 2) != ETHERTYPE_IPV4 || a[4] != 6 ||
	    a[5] != 4 || get16(a + 6) != 1) {
		p->other++;
		return;
	}
	p->arp_requests++;
	if (get32(a + 24) != p->ip)
		return; /* not for us */
	uint8_t out[ETH_HLEN + ARP_LEN];
	eth_reply_header(p, out, f, ETHERTYPE_ARP);
	uint8_t *r = out + ETH_HLEN;
	put16(r, 1);
	put16(r + 2, ETHERTYPE_IPV4);
	r[4] = 6;
	r[5] = 4;
	put16(r + 6, 2); /* reply */
	memcpy(r + 8, p->mac, 6);
	put32(r + 14, p->ip);
	memcpy(r + 18, a + 8, 10); /* target = the requester's MAC and IP */
	p->arp_replies++;
	send_frame(p, out, sizeof out);
}

/* An IPv4 header (20 bytes, no options) from us to `dst` carrying `payload_len` bytes. */
static void ip_header(lvm_peer *p, uint8_t *ip, uint32_t dst, uint8_t proto, size_t payload_len)
{
	memset(ip, 0, 20);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)(20 + payload_len));
	ip[8] = 64;
	ip[9] = proto;
	put32(ip + 12, p->ip);
	put32(ip + 16, dst);
	put16(ip + 10, inet_csum(ip, 20));
}

static void handle_ipv4(lvm_peer *p, const uint8_t *f, size_t len)
{
	const uint8_t *ip = f + ETH_HLEN;
	if (len < ETH_HLEN + 20 || ip[0] >> 4 != 4) {
		p->other++;
		return;
	}
	size_t ihl = (size_t)(ip[0] & 0xf) * 4, total = get16(ip + 2);
	if (ihl < 20 || total < ihl || total > len - ETH_HLEN || get32(ip + 16) != p->ip ||
	    (get16(ip + 6) & 0x3fff) != 0 /* fragments */) {
		p->other++;
		return;
	}
	const uint8_t *l4 = ip + ihl;
	size_t l4_len = total - ihl;
	uint32_t src = get32(ip + 12);
	uint8_t out[FRAME_MAX];

	if (ip[9] == IP_PROTO_ICMP && l4_len >= 8 && l4[0] == ICMP_ECHO_REQUEST &&
	    ETH_HLEN + 20 + l4_len <= sizeof out) {
		p->icmp_echoes++;
		eth_reply_header(p, out, f, ETHERTYPE_IPV4);
		ip_header(p, out + ETH_HLEN, src, IP_PROTO_ICMP, l4_len);
		uint8_t *icmp = out + ETH_HLEN + 20;
		memcpy(icmp, l4, l4_len); /* same id, sequence and data */
		icmp[0] = ICMP_ECHO_REPLY;
		put16(icmp + 2, 0);
		put16(icmp + 2, inet_csum(icmp, l4_len));
		send_frame(p, out, ETH_HLEN + 20 + l4_len);
		return;
	}
	if (ip[9] == IP_PROTO_UDP && l4_len >= UDP_HLEN && get16(l4 + 2) == p->udp_port) {
		size_t ulen = get16(l4 + 4);
		if (ulen < UDP_HLEN || ulen > l4_len) {
			p->other++;
			return;
		}
		size_t n = ulen - UDP_HLEN;
		p->udp_datagrams++;
		snprintf(p->udp_payload, sizeof p->udp_payload, "%.*s", (int)(n < 127 ? n : 127),
			 (const char *)l4 + UDP_HLEN);
		static const char pong[] = "pong:";
		size_t reply = sizeof pong - 1 + n;
		if (ETH_HLEN + 20 + UDP_HLEN + reply > sizeof out)
			return;
		eth_reply_header(p, out, f, ETHERTYPE_IPV4);
		ip_header(p, out + ETH_HLEN, src, IP_PROTO_UDP, UDP_HLEN + reply);
		uint8_t *udp = out + ETH_HLEN + 20;
		put16(udp, p->udp_port);
		put16(udp + 2, get16(l4)); /* back to the sender's port */
		put16(udp + 4, (uint16_t)(UDP_HLEN + reply));
		put16(udp + 6, 0); /* no checksum (allowed over IPv4) */
		memcpy(udp + UDP_HLEN, pong, sizeof pong - 1);
		memcpy(udp + UDP_HLEN + sizeof pong - 1, l4 + UDP_HLEN, n);
		send_frame(p, out, ETH_HLEN + 20 + UDP_HLEN + reply);
		return;
	}
	p->other++;
}

void lvm_peer_tx(void *ctx, const void *frame, size_t len)
{
	lvm_peer *p = ctx;
	const uint8_t *f = frame;
	pthread_mutex_lock(&p->lock);
	p->frames++;
	if (len >= ETH_HLEN) {
		memcpy(p->guest_mac, f + 6, 6);
		uint16_t type = get16(f + 12);
		if (type == ETHERTYPE_ARP)
			handle_arp(p, f, len);
		else if (type == ETHERTYPE_IPV4)
			handle_ipv4(p, f, len);
		else
			p->other++; /* e.g. IPv6 neighbour discovery */
	}
	pthread_mutex_unlock(&p->lock);
}
