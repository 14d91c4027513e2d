/* Guest-virtual to guest-physical translation by walking the guest's page tables in
 * guest memory (used for fault frames and instruction fetches of emulation fix-ups). */
#include "../../core/vm_internal.h"
#include "../../kvm/kvm.h"

#define CR0_PG (1ull << 31)
#define CR4_PSE (1ull << 4)
#define CR4_PAE (1ull << 5)
#define CR4_LA57 (1ull << 12)
#define EFER_LMA (1ull << 10)
#define PTE_P 1ull
#define PTE_PS 0x80ull
#define ADDR_MASK 0x000ffffffffff000ull

static int read_pte(vmm_mem *mem, uint64_t gpa, unsigned size, uint64_t *pte)
{
	*pte = 0;
	return vmm_mem_read(mem, gpa, pte, size);
}

/* 4- or 5-level paging (long mode) and 3-level PAE paging share this walk. */
static int walk64(vmm_mem *mem, uint64_t table, uint64_t gva, int levels, uint64_t *gpa)
{
	for (int level = levels; level >= 1; level--) {
		unsigned shift = 12 + 9 * (unsigned)(level - 1);
		uint64_t idx = (gva >> shift) & 0x1ff;
		if (levels == 3 && level == 3)
			idx = (gva >> 30) & 3; /* PAE PDPT: 4 entries */
		/* A PAE CR3 points at a 32-byte aligned table; every other table is a page. */
		uint64_t at = (levels == 3 && level == 3) ? (table & 0xffffffe0) : (table & ADDR_MASK);
		uint64_t pte;
		if (read_pte(mem, at + idx * 8, 8, &pte) || !(pte & PTE_P))
			return -EFAULT;
		if ((level == 2 || level == 3) && (pte & PTE_PS) && !(levels == 3 && level == 3)) {
			uint64_t page = 1ull << shift;
			*gpa = (pte & ADDR_MASK & ~(page - 1)) | (gva & (page - 1));
			return 0;
		}
		table = pte;
	}
	*gpa = (table & ADDR_MASK) | (gva & 0xfff);
	return 0;
}

static int walk32(vmm_mem *mem, uint64_t cr3, uint64_t cr4, uint32_t gva, uint64_t *gpa)
{
	uint64_t pde, pte;
	if (read_pte(mem, (cr3 & 0xfffff000) + (gva >> 22) * 4, 4, &pde) || !(pde & PTE_P))
		return -EFAULT;
	if ((pde & PTE_PS) && (cr4 & CR4_PSE)) {
		*gpa = (pde & 0xffc00000) | ((pde >> 13 & 0xff) << 32) | (gva & 0x3fffff);
		return 0;
	}
	if (read_pte(mem, (pde & 0xfffff000) + ((gva >> 12) & 0x3ff) * 4, 4, &pte) || !(pte & PTE_P))
		return -EFAULT;
	*gpa = (pte & 0xfffff000) | (gva & 0xfff);
	return 0;
}

int vmm_vcpu_translate(vmm_vcpu *v, uint64_t gva, uint64_t *gpa)
{
	if (!v || !gpa)
		return vmm_err(-EINVAL, "vmm_vcpu_translate: NULL argument");
	struct kvm_sregs s;
	int r = vmm_kvm_get_sregs(v->fd, &s);
	if (r < 0)
		return vmm_err(r, "KVM_GET_SREGS failed");
	if (!(s.cr0 & CR0_PG)) {
		*gpa = gva;
		return 0;
	}
	if (s.efer & EFER_LMA)
		r = walk64(v->vm->mem, s.cr3, gva, (s.cr4 & CR4_LA57) ? 5 : 4, gpa);
	else if (s.cr4 & CR4_PAE)
		r = walk64(v->vm->mem, s.cr3, gva & 0xffffffff, 3, gpa);
	else
		r = walk32(v->vm->mem, s.cr3, s.cr4, (uint32_t)gva, gpa);
	return r ? vmm_err(r, "guest address %#llx is not mapped", (unsigned long long)gva) : 0;
}
