/* A sandbox's VM: one memory region at GPA 0, one vCPU in long mode, page tables
 * trimmed so that stray guest pointers fault, and the program's export table. */
#include <stdlib.h>
#include <string.h>

#include "sandbox_internal.h"

#define PTE_P 0x1ull
#define PTE_RW 0x2ull
#define PTE_US 0x4ull
#define PTE_ADDR 0x000ffffffffff000ull

static int read64(vmm_sandbox *sb, uint64_t gpa, uint64_t *v)
{
	return vmm_mem_read(vmm_vm_mem(sb->vm), gpa, v, sizeof *v);
}

static int write64(vmm_sandbox *sb, uint64_t gpa, uint64_t v)
{
	return vmm_mem_write(vmm_vm_mem(sb->vm), gpa, &v, sizeof v);
}

/* Replaces the identity map's first 2 MiB page by 4 KiB pages: page 0 and the unused
 * pages below the program not present (NULL and small stray pointers fault), the page
 * table and the vCPU's system area supervisor-only (user code cannot rewrite its IDT or
 * page tables), the call page user-writable. Removes the 2 MiB pages past the end of
 * RAM, so that a wild pointer faults instead of exiting as MMIO. */
static int trim_page_tables(vmm_sandbox *sb, uint64_t map_bytes)
{
	vmm_sregs s;
	int r = vmm_vcpu_get_sregs(sb->vcpu, &s);
	if (r)
		return r;
	uint64_t pml4e, pdpt;
	if ((r = read64(sb, s.cr3 & PTE_ADDR, &pml4e)))
		return r;
	pdpt = pml4e & PTE_ADDR;
	for (uint64_t g = 0; g < map_bytes >> 30; g++) {
		uint64_t pdpte;
		if ((r = read64(sb, pdpt + g * 8, &pdpte)))
			return r;
		uint64_t pd = pdpte & PTE_ADDR;
		for (uint64_t j = 0; j < 512; j++) {
			uint64_t gpa = g << 30 | j << 21;
			if (gpa >= sb->mem_size && (r = write64(sb, pd + j * 8, 0)))
				return r;
		}
		if (g == 0 && (r = write64(sb, pd, SBX_PT_GPA | PTE_P | PTE_RW | PTE_US)))
			return r;
	}
	uint64_t pt[512];
	for (uint64_t i = 0; i < 512; i++) {
		uint64_t gpa = i << 12;
		if (gpa >= VMM_GUEST_LOAD_ADDR)
			pt[i] = gpa | PTE_P | PTE_RW | PTE_US;
		else if (gpa == VMM_GUEST_CALL_PAGE)
			pt[i] = gpa | PTE_P | PTE_RW | PTE_US;
		else if (gpa == SBX_PT_GPA ||
			 (gpa >= SBX_SYSTEM_AREA && gpa < SBX_SYSTEM_AREA + VMM_LONG_MODE_SYSTEM_AREA_SIZE))
			pt[i] = gpa | PTE_P | PTE_RW;
		else
			pt[i] = 0;
	}
	return vmm_mem_write(vmm_vm_mem(sb->vm), SBX_PT_GPA, pt, sizeof pt);
}

/* Creates the VM, trying a dirty ring first: collecting a few dirty pages from a ring
 * costs less than fetching and clearing a whole bitmap, which is what every per-call
 * reset does. Hosts without the ring get the bitmap. */
static int create_vm(vmm_sandbox *sb, vmm_vm_opts *vo)
{
	vo->dirty_ring_entries = SBX_DIRTY_RING_ENTRIES;
	int r = vmm_vm_create(&sb->vm, vo);
	if (r == -ENOTSUP) {
		vo->dirty_ring_entries = 0;
		r = vmm_vm_create(&sb->vm, vo);
	}
	return r;
}

int sbx_setup_vm(vmm_sandbox *sb, const vmm_vm_opts *host)
{
	vmm_vm_opts vo = VMM_VM_OPTS_INIT;
	/* The guest takes no interrupts: no interrupt controller at all, so a full reset
	 * has no LAPIC, PIC, IOAPIC or PIT state to load. */
	vo.irqchip = VMM_IRQCHIP_NONE;
	/* An access to a port or address nothing handles ends the call with an error
	 * instead of reading all-ones. */
	vo.flags = VMM_VM_NO_PIT | VMM_VM_EXIT_ON_UNHANDLED_IO;
	vo.exit_port = VMM_GUEST_PORT;
	if (host) {
		vmm_vm_opts h = VMM_VM_OPTS_INIT;
		if (vmm_opts_copy(&h, sizeof h, host))
			return vmm_err(-EINVAL, "sandbox: vm_opts->size is too small");
		vo.kvm_path = h.kvm_path;
		vo.kick_signal = h.kick_signal;
		vo.flags |= h.flags & VMM_VM_DONTFORK;
	}
	int r = create_vm(sb, &vo);
	if (r)
		return r;
	vmm_mem_region_opts mo = VMM_MEM_REGION_OPTS_INIT;
	mo.gpa = 0;
	mo.len = sb->mem_size;
	mo.name = "sandbox";
	if ((r = vmm_mem_add_region(vmm_vm_mem(sb->vm), &mo)))
		return r;
	return vmm_vcpu_create(&sb->vcpu, sb->vm, NULL);
}

/* Long mode at CPL 3 (or 0), entry at the ELF entry point; the runtime's _start sets
 * its own stack. */
static int setup_vcpu(vmm_sandbox *sb, uint64_t entry)
{
	vmm_long_mode_opts lo = VMM_LONG_MODE_OPTS_INIT;
	lo.cpl = (sb->flags & VMM_SANDBOX_RING0) ? 0 : 3;
	lo.entry = entry;
	lo.stack = sb->io_base;
	lo.system_area = SBX_SYSTEM_AREA;
	lo.identity_map = (sb->mem_size + (1ull << 30) - 1) & ~((1ull << 30) - 1);
	int r = vmm_vcpu_setup_long_mode(sb->vcpu, &lo);
	if (r)
		return r;
	r = trim_page_tables(sb, lo.identity_map);
	if (r)
		return vmm_err(r, "sandbox: cannot write the guest page tables");
	return 0;
}

int sbx_check_range(const vmm_sandbox *sb, uint64_t addr, uint64_t len)
{
	uint64_t end;
	if (addr < VMM_GUEST_LOAD_ADDR || vmm_add_overflows(addr, len, &end) || end > sb->mem_size)
		return vmm_err(-EFAULT, "sandbox: guest range [%#llx, +%#llx) is outside the guest's memory "
				"[%#x, %#llx)", (unsigned long long)addr, (unsigned long long)len,
			       VMM_GUEST_LOAD_ADDR, (unsigned long long)sb->mem_size);
	return 0;
}

int sbx_read_string(vmm_sandbox *sb, uint64_t addr, char *buf, size_t cap)
{
	if (addr < VMM_GUEST_LOAD_ADDR || addr >= sb->mem_size)
		return vmm_err(-EFAULT, "sandbox: guest string at %#llx is outside the guest's memory",
			       (unsigned long long)addr);
	uint64_t avail = sb->mem_size - addr;
	size_t n = avail < cap ? (size_t)avail : cap;
	int r = vmm_mem_read(vmm_vm_mem(sb->vm), addr, buf, n);
	if (r)
		return vmm_err(r, "sandbox: cannot read the guest string at %#llx", (unsigned long long)addr);
	if (!memchr(buf, 0, n))
		return vmm_err(-EFAULT, "sandbox: guest string at %#llx is not NUL-terminated within %zu bytes",
			       (unsigned long long)addr, cap);
	return 0;
}

static uint64_t symbol_or(vmm_sandbox *sb, const char *name, int *err)
{
	uint64_t v = 0;
	int r = vmm_elf_symbol(sb->elf, sb->elf_size, name, &v);
	if (r && !*err)
		*err = vmm_err(r == -ENOENT ? -EINVAL : r, "sandbox: the program has no symbol %s: "
			       "link it with the guest SDK (libvmm_add_guest)", name);
	return v;
}

int sbx_read_exports(vmm_sandbox *sb)
{
	int err = 0;
	uint64_t start = symbol_or(sb, "__vmm_exports_start", &err);
	uint64_t end = symbol_or(sb, "__vmm_exports_end", &err);
	if (err)
		return err;
	const uint64_t ent = sizeof(struct vmm_guest_export);
	if (end < start || (end - start) % ent || (end - start) / ent > 65536)
		return vmm_err(-EINVAL, "sandbox: malformed export table [%#llx, %#llx)",
			       (unsigned long long)start, (unsigned long long)end);
	size_t n = (size_t)((end - start) / ent);
	sb->exports = calloc(n ? n : 1, sizeof *sb->exports);
	if (!sb->exports)
		return vmm_err(-ENOMEM, "sandbox: out of memory");
	for (size_t i = 0; i < n; i++) {
		struct vmm_guest_export e;
		char name[128];
		int r = sbx_check_range(sb, start + i * ent, ent);
		if (!r)
			r = vmm_mem_read(vmm_vm_mem(sb->vm), start + i * ent, &e, sizeof e);
		if (!r)
			r = sbx_read_string(sb, e.name, name, sizeof name);
		if (r)
			return vmm_err(r, "sandbox: export %zu: bad entry or name (%s)", i, vmm_strerror(r));
		if (e.fn < VMM_GUEST_LOAD_ADDR || e.fn >= sb->heap_start)
			return vmm_err(-EINVAL, "sandbox: export \"%s\" points outside the program (%#llx)",
				       name, (unsigned long long)e.fn);
		for (size_t k = 0; k < sb->nr_exports; k++)
			if (!strcmp(sb->exports[k].name, name))
				return vmm_err(-EINVAL, "sandbox: function \"%s\" is exported twice", name);
		sb->exports[i].name = strdup(name);
		if (!sb->exports[i].name)
			return vmm_err(-ENOMEM, "sandbox: out of memory");
		sb->exports[i].fn = e.fn;
		sb->nr_exports = i + 1;
	}
	return 0;
}

int sbx_load(vmm_sandbox *sb)
{
	vmm_elf_info info;
	int r = vmm_elf_load(vmm_vm_mem(sb->vm), sb->elf, sb->elf_size, &info);
	if (r)
		return r;
	if (info.low < VMM_GUEST_LOAD_ADDR)
		return vmm_err(-EINVAL, "sandbox: the program loads at %#llx, below %#x (link it with the "
				"guest SDK's linker script)", (unsigned long long)info.low, VMM_GUEST_LOAD_ADDR);
	uint64_t heap = (info.high + VMM_PAGE_SIZE - 1) & ~(uint64_t)(VMM_PAGE_SIZE - 1);
	if (heap > sb->io_base)
		return vmm_err(-EFBIG, "sandbox: the program (up to %#llx) overlaps the I/O area at %#llx: "
				"raise mem_size", (unsigned long long)info.high, (unsigned long long)sb->io_base);
	sb->heap_start = heap;
	if ((r = sbx_read_exports(sb)))
		return r;
	return setup_vcpu(sb, info.entry);
}
