/* KVM dirty ring support: each vCPU pushes the pages it dirties into a ring shared with
 * us; harvesting moves them into the regions' host-side bitmaps (the same ones host
 * writes use), so vmm_mem_dirty_collect reports ring and host writes alike. With rings
 * on, KVM refuses KVM_GET_DIRTY_LOG, so fetch() skips it (see dirty.c). */
#include <linux/kvm.h>

#include "mem_internal.h"

void vmm_mem_set_ring_mode(vmm_mem *mem, vmm_mem_ring_harvest_fn harvest, void *ctx)
{
	mem->ring_harvest = harvest;
	mem->ring_ctx = ctx;
}

/* The region whose KVM slot is `slot`, trying the last hit first (rings show long runs
 * from one slot). */
static struct mem_region *slot_region(vmm_mem *mem, uint32_t slot, size_t *hint)
{
	if (*hint < mem->nr && mem->regions[*hint].slot == slot)
		return &mem->regions[*hint];
	for (size_t i = 0; i < mem->nr; i++) {
		if (mem->regions[i].slot == slot) {
			*hint = i;
			return &mem->regions[i];
		}
	}
	return NULL;
}

uint32_t vmm_mem_ring_harvest(vmm_mem *mem, struct kvm_dirty_gfn *ring, uint32_t entries, uint32_t *fetch)
{
	uint32_t n = 0;
	size_t hint = 0;
	/* Bounded: at most one full lap of the ring. */
	for (; n < entries; n++) {
		struct kvm_dirty_gfn *e = &ring[*fetch & (entries - 1)];
		uint32_t flags = __atomic_load_n(&e->flags, __ATOMIC_ACQUIRE);
		if (!(flags & KVM_DIRTY_GFN_F_DIRTY))
			break;
		/* Upper 16 bits of the slot are the address space (SMM); we use space 0. */
		struct mem_region *r = (e->slot >> 16) ? NULL : slot_region(mem, e->slot & 0xffff, &hint);
		if (r && e->offset < mem_pages(r->len))
			vmm_mem_mark_dirty(r, e->offset << MEM_PAGE_SHIFT, 1ull << MEM_PAGE_SHIFT);
		__atomic_store_n(&e->flags, KVM_DIRTY_GFN_F_RESET, __ATOMIC_RELEASE);
		(*fetch)++;
	}
	return n;
}
