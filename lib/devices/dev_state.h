/* Little-endian packing for the built-in devices' save_state / load_state records
 * (see vmm_virtio_device_ops). Each record starts with a four-character tag naming the
 * device and the record's version ("BLK1", ...), so a blob of one device, or of an
 * older layout, is never taken for another. */
#ifndef LIBVMM_DEVICES_DEV_STATE_H
#define LIBVMM_DEVICES_DEV_STATE_H

#include <endian.h>
#include <string.h>

#include "../internal.h"

#define DEV_STATE_TAG(a, b, c, d) ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)

struct dsw {
	uint8_t *p;
};

static inline void dsw_bytes(struct dsw *w, const void *v, size_t n)
{
	if (n)
		memcpy(w->p, v, n);
	w->p += n;
}

static inline void dsw_u16(struct dsw *w, uint16_t v)
{
	v = htole16(v);
	dsw_bytes(w, &v, 2);
}

static inline void dsw_u32(struct dsw *w, uint32_t v)
{
	v = htole32(v);
	dsw_bytes(w, &v, 4);
}

static inline void dsw_u64(struct dsw *w, uint64_t v)
{
	v = htole64(v);
	dsw_bytes(w, &v, 8);
}

/* A reader that never runs past its end: a short record reads zeros and sets `bad`. */
struct dsr {
	const uint8_t *p;
	size_t left;
	bool bad;
};

static inline const uint8_t *dsr_take(struct dsr *r, size_t n)
{
	if (r->bad || n > r->left) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *p = r->p;
	r->p += n;
	r->left -= n;
	return p;
}

static inline uint16_t dsr_u16(struct dsr *r)
{
	uint16_t v = 0;
	const uint8_t *p = dsr_take(r, 2);
	if (p)
		memcpy(&v, p, 2);
	return le16toh(v);
}

static inline uint32_t dsr_u32(struct dsr *r)
{
	uint32_t v = 0;
	const uint8_t *p = dsr_take(r, 4);
	if (p)
		memcpy(&v, p, 4);
	return le32toh(v);
}

static inline uint64_t dsr_u64(struct dsr *r)
{
	uint64_t v = 0;
	const uint8_t *p = dsr_take(r, 8);
	if (p)
		memcpy(&v, p, 8);
	return le64toh(v);
}

/* The common save_state prologue: sets *len to `need`; returns 1 to go on writing,
 * 0 when only the size was asked, or -ENOSPC. */
static inline int dev_state_begin(void *buf, size_t cap, size_t *len, size_t need)
{
	*len = need;
	if (!buf)
		return 0;
	return cap < need ? -ENOSPC : 1;
}

#endif
