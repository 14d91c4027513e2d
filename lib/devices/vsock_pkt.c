/* virtio-vsock: packet header and handshake-line parsing (pure functions, no state). */
#include <string.h>
#include <endian.h>

#include "vsock_internal.h"

/* The wire header is packed little-endian; go through a byte copy so alignment of the
 * guest's buffer never matters. */
void vsock_hdr_decode(const void *raw, struct vsock_hdr *h)
{
	struct virtio_vsock_hdr w;
	memcpy(&w, raw, sizeof w);
	h->src_cid = le64toh(w.src_cid);
	h->dst_cid = le64toh(w.dst_cid);
	h->src_port = le32toh(w.src_port);
	h->dst_port = le32toh(w.dst_port);
	h->len = le32toh(w.len);
	h->type = le16toh(w.type);
	h->op = le16toh(w.op);
	h->flags = le32toh(w.flags);
	h->buf_alloc = le32toh(w.buf_alloc);
	h->fwd_cnt = le32toh(w.fwd_cnt);
}

void vsock_hdr_encode(const struct vsock_hdr *h, void *raw)
{
	struct virtio_vsock_hdr w;
	w.src_cid = htole64(h->src_cid);
	w.dst_cid = htole64(h->dst_cid);
	w.src_port = htole32(h->src_port);
	w.dst_port = htole32(h->dst_port);
	w.len = htole32(h->len);
	w.type = htole16(h->type);
	w.op = htole16(h->op);
	w.flags = htole32(h->flags);
	w.buf_alloc = htole32(h->buf_alloc);
	w.fwd_cnt = htole32(h->fwd_cnt);
	memcpy(raw, &w, sizeof w);
}

enum vsock_verdict vsock_hdr_check(const struct vsock_hdr *h, uint64_t guest_cid, uint64_t payload_avail,
				   const char **why)
{
	/* A packet that does not come from the guest's own CID is not the guest's to send;
	 * answering it would let the guest aim resets at addresses of its choosing. */
	if (h->src_cid != guest_cid) {
		*why = "source CID is not the guest's";
		return VSOCK_PKT_DROP;
	}
	enum vsock_verdict bad = h->op == VIRTIO_VSOCK_OP_RST ? VSOCK_PKT_DROP : VSOCK_PKT_RST;
	if (h->dst_cid != VSOCK_HOST_CID) {
		*why = "destination is not the host CID";
		return bad;
	}
	if (h->type != VIRTIO_VSOCK_TYPE_STREAM) {
		*why = "socket type is not stream";
		return bad;
	}
	if (h->op == VIRTIO_VSOCK_OP_INVALID || h->op > VIRTIO_VSOCK_OP_CREDIT_REQUEST) {
		*why = "unknown op";
		return bad;
	}
	if (h->len > payload_avail) {
		*why = "len exceeds the buffer";
		return bad;
	}
	if (h->len > VSOCK_BUF_ALLOC) {
		*why = "len exceeds the receive buffer";
		return bad;
	}
	if (h->op != VIRTIO_VSOCK_OP_RW && h->len != 0) {
		*why = "payload on a control packet";
		return bad;
	}
	*why = NULL;
	return VSOCK_PKT_OK;
}

int vsock_parse_connect(const char *line, size_t len, uint32_t *port)
{
	static const char verb[] = "CONNECT ";
	const size_t vlen = sizeof verb - 1;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len <= vlen || memcmp(line, verb, vlen) != 0)
		return -EINVAL;
	uint64_t v = 0;
	size_t digits = len - vlen;
	if (digits > 10)
		return -EINVAL;
	for (size_t i = vlen; i < len; i++) {
		if (line[i] < '0' || line[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(line[i] - '0');
	}
	/* 0xffffffff is VMADDR_PORT_ANY, never a listener's port. */
	if (v >= 0xffffffffull)
		return -EINVAL;
	*port = (uint32_t)v;
	return 0;
}
