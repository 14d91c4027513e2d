/* virtio-vsock: the connection table, owed packets, the per-connection send buffer. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>

#include "vsock_internal.h"

/* splitmix64's finaliser: the guest picks the ports, the per-device seed keeps it from
 * predicting buckets and piling every connection into one chain. */
static uint32_t conn_hash(const struct vsock *v, uint32_t guest_port, uint32_t host_port)
{
	uint64_t x = ((uint64_t)guest_port << 32 | host_port) ^ v->seed;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	x ^= x >> 31;
	return (uint32_t)x & (v->nbuckets - 1);
}

int vsock_table_init(struct vsock *v, uint32_t max_conns)
{
	uint32_t n = 16;
	while (n < max_conns)
		n <<= 1;
	v->buckets = calloc(n, sizeof *v->buckets);
	if (!v->buckets)
		return -ENOMEM;
	v->nbuckets = n;
	v->max_conns = max_conns;
	if (getrandom(&v->seed, sizeof v->seed, GRND_NONBLOCK) != sizeof v->seed)
		v->seed = (uint64_t)(uintptr_t)v ^ 0x9e3779b97f4a7c15ull;
	v->next_port = VSOCK_LOCAL_PORT_FIRST;
	return 0;
}

void vsock_table_fini(struct vsock *v)
{
	while (v->all)
		vsock_conn_free(v->all);
	free(v->buckets);
	v->buckets = NULL;
	v->nbuckets = 0;
}

struct vsock_conn *vsock_conn_find(struct vsock *v, uint32_t guest_port, uint32_t host_port)
{
	for (struct vsock_conn *c = v->buckets[conn_hash(v, guest_port, host_port)]; c; c = c->hnext)
		if (c->guest_port == guest_port && c->host_port == host_port)
			return c;
	return NULL;
}

struct vsock_conn *vsock_conn_new(struct vsock *v, int fd, enum vsock_conn_state state)
{
	if (v->nconns >= v->max_conns)
		return NULL;
	struct vsock_conn *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->v = v;
	c->fd = fd;
	c->state = state;
	c->next = v->all;
	if (v->all)
		v->all->prev = c;
	v->all = c;
	v->nconns++;
	return c;
}

void vsock_conn_insert(struct vsock_conn *c)
{
	struct vsock *v = c->v;
	uint32_t b = conn_hash(v, c->guest_port, c->host_port);
	c->hnext = v->buckets[b];
	v->buckets[b] = c;
	c->in_table = true;
}

static void owe_unlink(struct vsock_conn *c)
{
	struct vsock *v = c->v;
	if (!c->on_owe)
		return;
	if (c->oprev)
		c->oprev->onext = c->onext;
	else
		v->owe_head = c->onext;
	if (c->onext)
		c->onext->oprev = c->oprev;
	else
		v->owe_tail = c->oprev;
	c->oprev = c->onext = NULL;
	c->on_owe = false;
}

void vsock_conn_owe(struct vsock_conn *c, uint32_t bits)
{
	struct vsock *v = c->v;
	c->owe |= bits;
	if (c->on_owe || !c->owe)
		return;
	c->oprev = v->owe_tail;
	c->onext = NULL;
	if (v->owe_tail)
		v->owe_tail->onext = c;
	else
		v->owe_head = c;
	v->owe_tail = c;
	c->on_owe = true;
}

void vsock_conn_owe_clear(struct vsock_conn *c, uint32_t bits)
{
	c->owe &= ~bits;
	if (!c->owe)
		owe_unlink(c);
}

void vsock_conn_free(struct vsock_conn *c)
{
	struct vsock *v = c->v;
	if (c->in_table) {
		struct vsock_conn **p = &v->buckets[conn_hash(v, c->guest_port, c->host_port)];
		while (*p && *p != c)
			p = &(*p)->hnext;
		if (*p)
			*p = c->hnext;
	}
	owe_unlink(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		v->all = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->watched && v->dev)
		vmm_virtio_dev_unwatch(v->dev, c->fd);
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	free(c);
	v->nconns--;
}

int vsock_alloc_port(struct vsock *v, uint32_t guest_port, uint32_t *port)
{
	/* At most nconns ports can be taken for this guest port, so nconns + 1 candidates
	 * always find a free one. */
	for (uint32_t tries = 0; tries <= v->nconns; tries++) {
		uint32_t p = v->next_port;
		v->next_port = p >= VSOCK_LOCAL_PORT_LAST ? VSOCK_LOCAL_PORT_FIRST : p + 1;
		if (!vsock_conn_find(v, guest_port, p)) {
			*port = p;
			return 0;
		}
	}
	return -EADDRINUSE;
}

bool vsock_rst_push(struct vsock *v, uint64_t src_cid, uint32_t src_port, uint32_t dst_port)
{
	if (v->rst_len >= VSOCK_RST_QUEUE) {
		v->stats.rst_dropped++;
		return false;
	}
	struct vsock_rst *r = &v->rst[(v->rst_head + v->rst_len) % VSOCK_RST_QUEUE];
	r->src_cid = src_cid;
	r->src_port = src_port;
	r->dst_port = dst_port;
	v->rst_len++;
	return true;
}

/* ---- send buffer: a ring of VSOCK_BUF_ALLOC bytes ---- */

static int buf_room(struct vsock_conn *c, uint32_t len, uint32_t *tail)
{
	if (len > VSOCK_BUF_ALLOC - c->buf_len)
		return -ENOBUFS;
	if (!c->buf) {
		c->buf = malloc(VSOCK_BUF_ALLOC);
		if (!c->buf)
			return -ENOMEM;
		c->buf_head = 0;
	}
	*tail = (c->buf_head + c->buf_len) % VSOCK_BUF_ALLOC;
	return 0;
}

int vsock_buf_append(struct vsock_conn *c, const void *data, uint32_t len)
{
	uint32_t tail;
	int r = buf_room(c, len, &tail);
	if (r < 0)
		return r;
	uint32_t first = VSOCK_BUF_ALLOC - tail;
	if (first > len)
		first = len;
	memcpy(c->buf + tail, data, first);
	memcpy(c->buf, (const uint8_t *)data + first, len - first);
	c->buf_len += len;
	return 0;
}

int vsock_buf_append_chain(struct vsock_conn *c, const vmm_virtq_chain *ch, uint64_t off, uint32_t len)
{
	uint32_t tail;
	int r = buf_room(c, len, &tail);
	if (r < 0)
		return r;
	uint32_t first = VSOCK_BUF_ALLOC - tail;
	if (first > len)
		first = len;
	/* The caller checked len against the chain, so these copy everything. */
	size_t got = vmm_virtq_chain_read(ch, off, c->buf + tail, first);
	got += vmm_virtq_chain_read(ch, off + first, c->buf, len - first);
	if (got != len)
		return -EFAULT;
	c->buf_len += len;
	return 0;
}

int vsock_buf_iov(const struct vsock_conn *c, struct iovec iov[2])
{
	if (!c->buf_len)
		return 0;
	uint32_t first = VSOCK_BUF_ALLOC - c->buf_head;
	if (first >= c->buf_len) {
		iov[0] = (struct iovec){ c->buf + c->buf_head, c->buf_len };
		return 1;
	}
	iov[0] = (struct iovec){ c->buf + c->buf_head, first };
	iov[1] = (struct iovec){ c->buf, c->buf_len - first };
	return 2;
}

void vsock_buf_consume(struct vsock_conn *c, uint32_t n)
{
	if (n > c->buf_len)
		n = c->buf_len;
	c->buf_head = (c->buf_head + n) % VSOCK_BUF_ALLOC;
	c->buf_len -= n;
	if (!c->buf_len) {
		/* An idle connection gives its 256 KiB back. */
		free(c->buf);
		c->buf = NULL;
		c->buf_head = 0;
	}
}

int vsock_chain_iov(const vmm_virtq_chain *ch, bool writable, uint64_t off, uint64_t max, struct iovec *iov,
		    uint64_t *bytes)
{
	unsigned first = writable ? ch->n_out : 0;
	unsigned n = writable ? ch->n_in : ch->n_out;
	int cnt = 0;
	uint64_t total = 0;
	for (unsigned i = 0; i < n && total < max; i++) {
		const vmm_virtq_seg *s = &ch->segs[first + i];
		if (off >= s->len) {
			off -= s->len;
			continue;
		}
		uint64_t take = s->len - off;
		if (take > max - total)
			take = max - total;
		iov[cnt].iov_base = (uint8_t *)s->host + off;
		iov[cnt].iov_len = take;
		cnt++;
		total += take;
		off = 0;
	}
	*bytes = total;
	return cnt;
}
