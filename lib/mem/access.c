/* Checked host access to guest memory: translation, copies, host-side dirty marking.
 * Nothing here takes a lock: the region array only changes while no access runs (see
 * the threading note in mem.h), and dirty bits are set with atomic OR. */
#include <string.h>

#include "mem_internal.h"

void vmm_mem_mark_dirty(struct mem_region *r, uint64_t off, uint64_t len)
{
	if (len == 0)
		return;
	uint64_t first = off >> MEM_PAGE_SHIFT, last = (off + len - 1) >> MEM_PAGE_SHIFT;
	for (uint64_t w = first / 64; w <= last / 64; w++) {
		unsigned lo = w == first / 64 ? (unsigned)(first % 64) : 0;
		unsigned hi = w == last / 64 ? (unsigned)(last % 64) : 63;
		uint64_t mask = (~0ull >> (63 - (hi - lo))) << lo;
		/* Skip the locked OR when the pages are already marked: repeated writes to
		 * a hot page would otherwise bounce its cache line between threads. */
		if ((atomic_load_explicit(&r->dirty[w], memory_order_relaxed) & mask) != mask)
			atomic_fetch_or_explicit(&r->dirty[w], mask, memory_order_release);
	}
}

static bool tracking(const vmm_mem *mem)
{
	return atomic_load_explicit(&mem->dirty_on, memory_order_relaxed);
}

int vmm_mem_translate(vmm_mem *mem, uint64_t gpa, uint64_t len, bool write, void **host)
{
	uint64_t end;
	if (!mem)
		return vmm_err(-EINVAL, "vmm_mem_translate: NULL map");
	if (vmm_add_overflows(gpa, len, &end))
		return vmm_err(-EFAULT, "guest memory: range 0x%llx + 0x%llx wraps around 2^64",
			       (unsigned long long)gpa, (unsigned long long)len);
	long i = vmm_mem_find(mem, gpa);
	if (i < 0)
		return vmm_err(-EFAULT, "guest memory: 0x%llx is outside guest RAM", (unsigned long long)gpa);
	struct mem_region *r = &mem->regions[i];
	uint64_t off = gpa - r->gpa;
	if (len > r->len - off)
		return vmm_err(-EFAULT, "guest memory: [0x%llx, 0x%llx) crosses the end of its region at 0x%llx",
			       (unsigned long long)gpa, (unsigned long long)end,
			       (unsigned long long)(r->gpa + r->len));
	if (write && (r->flags & VMM_MEM_READONLY))
		return vmm_err(-EROFS, "guest memory: write to read-only region at 0x%llx", (unsigned long long)gpa);
	if (write && tracking(mem))
		vmm_mem_mark_dirty(r, off, len);
	if (host)
		*host = r->host + off;
	return 0;
}

/* Checks that [gpa, gpa + len) is covered by adjacent regions (writable ones if
 * `write`) and returns the index of the first, or a negative errno. */
static long span_check(const vmm_mem *mem, uint64_t gpa, uint64_t len, bool write)
{
	const char *what = write ? "write" : "read";
	uint64_t end;
	if (vmm_add_overflows(gpa, len, &end))
		return vmm_err(-EFAULT, "guest memory: %s of 0x%llx bytes at 0x%llx wraps around 2^64", what,
			       (unsigned long long)len, (unsigned long long)gpa);
	long first = vmm_mem_find(mem, gpa);
	if (first < 0)
		return vmm_err(-EFAULT, "guest memory: %s at 0x%llx: outside guest RAM", what,
			       (unsigned long long)gpa);
	uint64_t cur = gpa;
	for (size_t i = (size_t)first;; i++) {
		const struct mem_region *r = &mem->regions[i];
		if (write && (r->flags & VMM_MEM_READONLY))
			return vmm_err(-EROFS, "guest memory: write of 0x%llx bytes at 0x%llx: region at 0x%llx is read-only",
				       (unsigned long long)len, (unsigned long long)gpa, (unsigned long long)r->gpa);
		uint64_t r_end = r->gpa + r->len; /* cannot wrap: checked when added */
		if (end <= r_end)
			return first;
		cur = r_end;
		if (i + 1 >= mem->nr || mem->regions[i + 1].gpa != cur)
			return vmm_err(-EFAULT, "guest memory: %s of 0x%llx bytes at 0x%llx: 0x%llx is outside guest RAM",
				       what, (unsigned long long)len, (unsigned long long)gpa, (unsigned long long)cur);
	}
}

int vmm_mem_read(vmm_mem *mem, uint64_t gpa, void *buf, size_t len)
{
	if (!mem || (!buf && len))
		return vmm_err(-EINVAL, "vmm_mem_read: NULL %s", mem ? "buffer" : "map");
	long i = span_check(mem, gpa, len, false);
	if (i < 0)
		return (int)i;
	uint8_t *dst = buf;
	for (size_t idx = (size_t)i; len; idx++) {
		const struct mem_region *r = &mem->regions[idx];
		uint64_t off = gpa - r->gpa;
		size_t n = r->len - off < len ? (size_t)(r->len - off) : len;
		memcpy(dst, r->host + off, n);
		dst += n;
		gpa += n;
		len -= n;
	}
	return 0;
}

int vmm_mem_write(vmm_mem *mem, uint64_t gpa, const void *buf, size_t len)
{
	if (!mem || (!buf && len))
		return vmm_err(-EINVAL, "vmm_mem_write: NULL %s", mem ? "buffer" : "map");
	long i = span_check(mem, gpa, len, true);
	if (i < 0)
		return (int)i;
	const uint8_t *src = buf;
	bool dirty = tracking(mem);
	for (size_t idx = (size_t)i; len; idx++) {
		struct mem_region *r = &mem->regions[idx];
		uint64_t off = gpa - r->gpa;
		size_t n = r->len - off < len ? (size_t)(r->len - off) : len;
		memcpy(r->host + off, src, n);
		/* Marked after the copy: a collector that sees the bit also sees the data,
		 * and one that misses it gets the page in its next round. */
		if (dirty)
			vmm_mem_mark_dirty(r, off, n);
		src += n;
		gpa += n;
		len -= n;
	}
	return 0;
}
