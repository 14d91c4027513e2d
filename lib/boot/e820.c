/* The e820 map of a memory map, and the placement of boot pieces in guest RAM.
 *
 * Both work from vmm_mem's region list (GPA order), so they need no other view of the
 * machine. The e820 map is computed by cutting the address space at every region,
 * override and legacy-hole boundary, typing each piece, and merging neighbours of one
 * type: simple, obviously non-overlapping, and cheap for the few dozen ranges a VM has.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "boot_internal.h"

/* Bounds the work (and the allocation) for caller-given override ranges. */
#define E820_MAX_EXTRA 1024u

static bool known_type(uint32_t t)
{
	return t == VMM_E820_RAM || t == VMM_E820_RESERVED || t == VMM_E820_ACPI ||
	       t == VMM_E820_NVS || t == VMM_E820_UNUSABLE || t == VMM_E820_PMEM;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The memory map's regions, copied out once (GPA order, as vmm_mem_get_region gives). */
static int get_regions(vmm_mem *mem, vmm_mem_region_info **out, size_t *n)
{
	size_t count = vmm_mem_region_count(mem);
	*out = NULL;
	*n = 0;
	if (count == 0)
		return 0;
	vmm_mem_region_info *r = calloc(count, sizeof *r);
	if (!r)
		return vmm_err(-ENOMEM, "e820: out of memory");
	for (size_t i = 0; i < count; i++) {
		if (vmm_mem_get_region(mem, i, &r[i]) != 0) {
			/* the map changed under us: the mem API forbids that, but don't crash */
			free(r);
			return vmm_err(-EINVAL, "e820: memory map changed while it was read");
		}
	}
	*out = r;
	*n = count;
	return 0;
}

/* The type of the elementary piece starting at `a` (pieces never straddle a boundary):
 * the last override covering it, else what the region holding it says, else 0 (hole). */
static uint32_t piece_type(uint64_t a, const vmm_mem_region_info *reg, size_t nreg, size_t *ri,
			   const vmm_e820_entry *extra, size_t nextra)
{
	for (size_t k = nextra; k-- > 0;)
		if (extra[k].addr <= a && a - extra[k].addr < extra[k].size)
			return extra[k].type;
	while (*ri < nreg && reg[*ri].gpa + reg[*ri].len <= a)
		(*ri)++;
	if (*ri == nreg || reg[*ri].gpa > a)
		return 0;
	if (reg[*ri].flags & VMM_MEM_READONLY)
		return VMM_E820_RESERVED; /* ROM: the kernel must not allocate from it */
	if (a >= BOOT_LEGACY_HOLE && a < BOOT_HIGH_MEM)
		return VMM_E820_RESERVED; /* EBDA, VGA window, option and BIOS ROMs on a PC */
	return VMM_E820_RAM;
}

int vmm_e820_build(vmm_mem *mem, const vmm_e820_entry *extra, size_t nextra, vmm_e820_entry *out,
		   size_t max, size_t *count)
{
	if (!mem || !count || (nextra && !extra) || (max && !out))
		return vmm_err(-EINVAL, "vmm_e820_build: NULL argument");
	*count = 0;
	if (nextra > E820_MAX_EXTRA)
		return vmm_err(-EINVAL, "e820: %zu override ranges, more than %u", nextra, E820_MAX_EXTRA);
	for (size_t k = 0; k < nextra; k++) {
		uint64_t end;
		if (extra[k].size == 0 || vmm_add_overflows(extra[k].addr, extra[k].size, &end))
			return vmm_err(-EINVAL, "e820: override %zu [%#" PRIx64 ", +%#" PRIx64
				       ") is empty or wraps around", k, extra[k].addr, extra[k].size);
		if (!known_type(extra[k].type))
			return vmm_err(-EINVAL, "e820: override %zu has unknown type %u", k, extra[k].type);
	}

	vmm_mem_region_info *reg;
	size_t nreg;
	int r = get_regions(mem, &reg, &nreg);
	if (r)
		return r;
	/* Every boundary: region ends, override ends, and the legacy hole's two ends. An
	 * override ending at 2^64 - 1 + 1 cannot happen (checked above), so ends fit. */
	size_t np = 0, cap = 2 * nreg + 2 * nextra + 2;
	uint64_t *pt = malloc(cap * sizeof *pt);
	if (!pt) {
		free(reg);
		return vmm_err(-ENOMEM, "e820: out of memory");
	}
	for (size_t i = 0; i < nreg; i++) {
		pt[np++] = reg[i].gpa;
		pt[np++] = reg[i].gpa + reg[i].len;
	}
	for (size_t k = 0; k < nextra; k++) {
		pt[np++] = extra[k].addr;
		pt[np++] = extra[k].addr + extra[k].size;
	}
	pt[np++] = BOOT_LEGACY_HOLE;
	pt[np++] = BOOT_HIGH_MEM;
	qsort(pt, np, sizeof *pt, cmp_u64);

	size_t n = 0, ri = 0;
	uint64_t last_end = 0;
	uint32_t last_type = 0;
	for (size_t i = 0; i + 1 < np; i++) {
		uint64_t a = pt[i], b = pt[i + 1];
		if (a == b)
			continue;
		uint32_t t = piece_type(a, reg, nreg, &ri, extra, nextra);
		if (t == 0)
			continue;
		if (n > 0 && last_type == t && last_end == a) {
			if (n <= max)
				out[n - 1].size += b - a;
		} else {
			if (n < max)
				out[n] = (vmm_e820_entry){ .addr = a, .size = b - a, .type = t };
			n++;
		}
		last_end = b;
		last_type = t;
	}
	free(pt);
	free(reg);
	*count = n;
	if (n > max)
		return vmm_err(-E2BIG, "e820: the memory map needs %zu entries, more than the %zu "
			       "available", n, max);
	return 0;
}

/* ---- placement ------------------------------------------------------------------------- */

/* Index of the writable region holding all of [gpa, end), or -1. */
static long ram_region(vmm_mem *mem, uint64_t gpa, uint64_t end)
{
	size_t n = vmm_mem_region_count(mem);
	for (size_t i = 0; i < n; i++) {
		vmm_mem_region_info ri;
		if (vmm_mem_get_region(mem, i, &ri) != 0)
			return -1;
		if (gpa >= ri.gpa && end <= ri.gpa + ri.len)
			return (ri.flags & VMM_MEM_READONLY) ? -1 : (long)i;
	}
	return -1;
}

/* Index of a taken range overlapping [start, end), or -1. */
static int find_overlap(const struct vmm_boot_plan *p, uint64_t start, uint64_t end, bool shared)
{
	for (unsigned i = 0; i < p->nused; i++) {
		if (shared && p->used[i].shared)
			continue;
		if (start < p->used[i].end && p->used[i].start < end)
			return (int)i;
	}
	return -1;
}

bool vmm_boot_fits(const struct vmm_boot_plan *p, uint64_t gpa, uint64_t len)
{
	uint64_t end;
	if (len == 0 || vmm_add_overflows(gpa, len, &end))
		return false;
	return ram_region(p->mem, gpa, end) >= 0 && find_overlap(p, gpa, end, false) < 0;
}

int vmm_boot_claim(struct vmm_boot_plan *p, uint64_t gpa, uint64_t len, unsigned flags, const char *what)
{
	uint64_t end;
	if (len == 0)
		return 0;
	if (vmm_add_overflows(gpa, len, &end))
		return vmm_err(-EINVAL, "%s: [%#" PRIx64 ", +%#" PRIx64 ") wraps around", what, gpa, len);
	if ((flags & BOOT_CLAIM_RAM) && ram_region(p->mem, gpa, end) < 0)
		return vmm_err(-EFAULT, "%s: [%#" PRIx64 ", %#" PRIx64 ") is not in writable guest RAM "
			       "(it must lie inside one memory region)", what, gpa, end);
	int o = find_overlap(p, gpa, end, flags & BOOT_CLAIM_SHARED);
	if (o >= 0)
		return vmm_err(-ENOSPC, "%s: [%#" PRIx64 ", %#" PRIx64 ") overlaps the %s at [%#" PRIx64
			       ", %#" PRIx64 ")", what, gpa, end, p->used[o].what, p->used[o].start,
			       p->used[o].end);
	if (p->nused == BOOT_MAX_USED)
		return vmm_err(-ENOSPC, "%s: more than %d pieces to place", what, BOOT_MAX_USED);
	p->used[p->nused].start = gpa;
	p->used[p->nused].end = end;
	p->used[p->nused].what = what;
	p->used[p->nused].shared = flags & BOOT_CLAIM_SHARED;
	p->nused++;
	return 0;
}

/* Highest aligned start in [lo, hi - len] clear of every taken range, or false. Each
 * step moves below one taken range for good, so there are at most nused + 1 steps. */
static bool fit_top_down(const struct vmm_boot_plan *p, uint64_t lo, uint64_t hi, uint64_t len,
			 uint64_t align, uint64_t *out)
{
	uint64_t cand = (hi - len) & ~(align - 1);
	for (unsigned step = 0; step <= p->nused && cand >= lo; step++) {
		int o = find_overlap(p, cand, cand + len, false);
		if (o < 0) {
			*out = cand;
			return true;
		}
		if (p->used[o].start < len)
			return false;
		cand = (p->used[o].start - len) & ~(align - 1);
	}
	return false;
}

/* Lowest aligned start in [lo, hi - len] clear of every taken range, or false. */
static bool fit_bottom_up(const struct vmm_boot_plan *p, uint64_t lo, uint64_t hi, uint64_t len,
			  uint64_t align, uint64_t *out)
{
	uint64_t cand;
	if (vmm_add_overflows(lo, align - 1, &cand))
		return false;
	cand &= ~(align - 1);
	for (unsigned step = 0; step <= p->nused && cand <= hi - len; step++) {
		int o = find_overlap(p, cand, cand + len, false);
		if (o < 0) {
			*out = cand;
			return true;
		}
		if (vmm_add_overflows(p->used[o].end, align - 1, &cand))
			return false;
		cand &= ~(align - 1);
	}
	return false;
}

int vmm_boot_alloc(struct vmm_boot_plan *p, uint64_t len, uint64_t align, uint64_t min, uint64_t limit,
		   bool top_down, const char *what, uint64_t *out)
{
	if (len == 0 || align == 0 || (align & (align - 1)))
		return vmm_err(-EINVAL, "%s: bad placement request (%#" PRIx64 " bytes, alignment %#"
			       PRIx64 ")", what, len, align);
	size_t n = vmm_mem_region_count(p->mem);
	for (size_t k = 0; k < n; k++) {
		vmm_mem_region_info ri;
		if (vmm_mem_get_region(p->mem, top_down ? n - 1 - k : k, &ri) != 0)
			break;
		if (ri.flags & VMM_MEM_READONLY)
			continue;
		uint64_t lo = ri.gpa > min ? ri.gpa : min;
		uint64_t hi = ri.gpa + ri.len < limit ? ri.gpa + ri.len : limit;
		if (hi <= lo || hi - lo < len)
			continue;
		uint64_t at;
		bool found = top_down ? fit_top_down(p, lo, hi, len, align, &at)
				      : fit_bottom_up(p, lo, hi, len, align, &at);
		if (!found)
			continue;
		int r = vmm_boot_claim(p, at, len, BOOT_CLAIM_RAM, what);
		if (r == 0)
			*out = at;
		return r;
	}
	return vmm_err(-ENOSPC, "%s: no room for %#" PRIx64 " bytes (aligned to %#" PRIx64 ") in "
		       "guest RAM within [%#" PRIx64 ", %#" PRIx64 ") that is clear of the boot area, "
		       "the kernel and the other pieces", what, len, align, min, limit);
}
