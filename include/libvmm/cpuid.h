/* libvmm: CPUID tables.
 *
 * A vmm_cpuid is a table of CPUID leaves a vCPU reports to its guest. It is usually
 * built from what KVM supports (vmm_cpuid_create_default) and then filtered: clear or
 * set bits, hide named features, or run a callback over every entry.
 *
 * Note for nested-KVM machines: some hosts ignore parts of the table (see the README);
 * the library still installs it as given.
 *
 * Threading: a table is not synchronised; don't modify it while another thread uses it.
 */
#ifndef LIBVMM_CPUID_H
#define LIBVMM_CPUID_H

#include <libvmm/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vmm_cpuid_entry {
	uint32_t function;
	uint32_t index;  /* sub-leaf; ignored unless flags has VMM_CPUID_SIGNIFICANT_INDEX */
	uint32_t flags;
	uint32_t eax, ebx, ecx, edx;
} vmm_cpuid_entry;

#define VMM_CPUID_SIGNIFICANT_INDEX (1u << 0)

typedef enum vmm_cpuid_reg { VMM_CPUID_EAX = 0, VMM_CPUID_EBX, VMM_CPUID_ECX, VMM_CPUID_EDX } vmm_cpuid_reg;

#define VMM_CPUID_MAX_ENTRIES 256

/* An empty table. Returns 0 or -ENOMEM. */
VMM_API int vmm_cpuid_create(vmm_cpuid **out);

/* The table KVM supports on this host (KVM_GET_SUPPORTED_CPUID) for vCPU `vcpu_id`,
 * with libvmm's defaults applied: x2APIC advertised, the APIC id set in leaves 1 and 0xB,
 * the KVM paravirt leaf without features that need VMCALL (PV_UNHALT, PV_SEND_IPI,
 * PV_SCHED_YIELD, ...). Returns 0, -ENOMEM, or the errno of the KVM call. */
VMM_API int vmm_cpuid_create_default(vmm_cpuid **out, vmm_vm *vm, uint32_t vcpu_id);

/* A copy of `src`. Returns 0 or -ENOMEM. */
VMM_API int vmm_cpuid_clone(vmm_cpuid **out, const vmm_cpuid *src);

VMM_API void vmm_cpuid_destroy(vmm_cpuid *cpuid);

VMM_API size_t vmm_cpuid_count(const vmm_cpuid *cpuid);
/* Entry i (0 <= i < count). Returns 0 or -ENOENT. */
VMM_API int vmm_cpuid_entry_at(const vmm_cpuid *cpuid, size_t i, vmm_cpuid_entry *out);

/* The entry for (function, index); index is ignored for leaves without a significant
 * index. Returns 0 or -ENOENT. */
VMM_API int vmm_cpuid_get(const vmm_cpuid *cpuid, uint32_t function, uint32_t index, vmm_cpuid_entry *out);

/* Inserts or replaces the entry for (function, index). A leaf is either indexed (all
 * its entries have VMM_CPUID_SIGNIFICANT_INDEX) or plain (one entry, stored with index
 * 0, that answers every sub-leaf); flags must not have other bits.
 * Returns 0, -ENOSPC (table full: VMM_CPUID_MAX_ENTRIES), or -EINVAL (unknown flags, or
 * a plain entry for an indexed leaf or the reverse: remove the old entries first). */
VMM_API int vmm_cpuid_set(vmm_cpuid *cpuid, const vmm_cpuid_entry *entry);

/* Removes the entry. Returns 0 or -ENOENT. */
VMM_API int vmm_cpuid_remove(vmm_cpuid *cpuid, uint32_t function, uint32_t index);

/* Clears then sets bits of one register of an entry: reg = (reg & ~clear) | set.
 * Returns 0 or -ENOENT. */
VMM_API int vmm_cpuid_update(vmm_cpuid *cpuid, uint32_t function, uint32_t index, vmm_cpuid_reg reg,
			     uint32_t clear, uint32_t set);

/* Hides a feature by its Linux /proc/cpuinfo name ("avx2", "xsave", "popcnt", "x2apic",
 * ...; the list is vmm_cpuid_feature_name; "sse3", "lzcnt" and "sha" are accepted for
 * pni, abm and sha_ni). Hiding a feature also hides features that depend on it (xsave
 * hides avx, avx2, fma, avx512*, xsaveopt, ...) and removes the XSAVE state components
 * it owns from leaf 0xD.0 (avx: YMM, avx512f: opmask/ZMM). OS-controlled bits (osxsave,
 * ospke) are not offered: they go with xsave and pku. A leaf absent from the table means
 * the feature is already hidden: 0. Returns 0 or -ENOENT (unknown name). */
VMM_API int vmm_cpuid_hide_feature(vmm_cpuid *cpuid, const char *name);

/* Name of known feature i, or NULL past the end (to list them). */
VMM_API const char *vmm_cpuid_feature_name(size_t i);

/* Calls fn on every entry, in order; fn may change the registers. Changes fn makes to
 * function, index or flags are discarded (they are the entry's place in the table). The
 * change made by a call that returns non-zero is kept; that value stops the walk and is
 * returned. Returns 0 when fn returned 0 for every entry. */
typedef int (*vmm_cpuid_filter_fn)(void *ctx, vmm_cpuid_entry *entry);
VMM_API int vmm_cpuid_filter(vmm_cpuid *cpuid, vmm_cpuid_filter_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif
#endif
