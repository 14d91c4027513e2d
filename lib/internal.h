/* libvmm internal declarations shared across lib/. Not installed. */
#ifndef LIBVMM_INTERNAL_H
#define LIBVMM_INTERNAL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <libvmm/libvmm.h>

#define VMM_HIDDEN __attribute__((visibility("hidden")))
#define VMM_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Records a detail message for vmm_last_error() and returns err (a negative errno).
 * Usage: return vmm_err(-EINVAL, "ELF image: %s", why); */
VMM_HIDDEN int vmm_err(int err, const char *fmt, ...) VMM_PRINTF(2, 3);
/* Clears the detail message (on success paths that want a clean state). */
VMM_HIDDEN void vmm_err_clear(void);
/* Appends to the current detail message (for multi-part reports). */
VMM_HIDDEN void vmm_err_append(const char *fmt, ...) VMM_PRINTF(1, 2);

/* Size-versioned options: copies min(src->size, sizeof *dst) bytes of the caller's
 * struct over defaults already in *dst. Returns -EINVAL if size is smaller than the
 * leading size field. */
VMM_HIDDEN int vmm_opts_copy(void *dst, size_t dst_size, const void *src);

/* Overflow-checked a + b <= limit style helpers. */
static inline bool vmm_add_overflows(uint64_t a, uint64_t b, uint64_t *sum)
{
	return __builtin_add_overflow(a, b, sum);
}

/* ---- objects owned by a VM ---- */
VMM_HIDDEN int vmm_mem_create_for_vm(vmm_mem **out, int vm_fd, uint32_t max_slots);
VMM_HIDDEN void vmm_mem_free(vmm_mem *mem);
/* VMM_VM_DONTFORK: regions added from now on are madvise(MADV_DONTFORK). */
VMM_HIDDEN void vmm_mem_set_dontfork(vmm_mem *mem, bool on);
VMM_HIDDEN int vmm_bus_create_for_vm(vmm_bus **out, int vm_fd);
VMM_HIDDEN void vmm_bus_free(vmm_bus *bus);

/* Dirty-ring mode of a VM's memory map: `harvest(ctx)` moves every vCPU's dirty ring
 * into the map (with vmm_mem_ring_harvest) and resets the rings. */
struct kvm_dirty_gfn;
typedef void (*vmm_mem_ring_harvest_fn)(void *ctx);
VMM_HIDDEN void vmm_mem_set_ring_mode(vmm_mem *mem, vmm_mem_ring_harvest_fn harvest, void *ctx);
/* Moves the dirty entries of one vCPU ring (`entries`, a power of two) from index
 * *fetch on into the map's bitmaps, marking them for reset. Returns how many. */
VMM_HIDDEN uint32_t vmm_mem_ring_harvest(vmm_mem *mem, struct kvm_dirty_gfn *ring, uint32_t entries,
					 uint32_t *fetch);

/* The /dev/kvm fd and the VM fd of a VM (borrowed). */
VMM_HIDDEN int vmm_vm_kvm_fd(const vmm_vm *vm);
VMM_HIDDEN int vmm_vm_fd(const vmm_vm *vm);

/* The raw KVM CPUID entries for KVM_SET_CPUID2 (struct kvm_cpuid_entry2 layout is
 * produced inside lib/cpu/x86/cpuid.c). */
VMM_HIDDEN const vmm_cpuid_entry *vmm_cpuid_entries(const vmm_cpuid *cpuid, size_t *n);

#endif
