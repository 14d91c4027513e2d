/* Snapshots (lib/snapshot): the on-disk format and the in-memory description.
 *
 * The pipeline has four steps, and only two of them touch KVM:
 *   save:    capture (KVM -> snap_desc)  then  encode (snap_desc -> bytes)
 *   restore: parse (bytes -> snap_desc, validating every field)  then  apply (snap_desc ->
 *            a new VM)
 * parse and encode are pure functions of their input, so the unit tests and the fuzz
 * target drive them without /dev/kvm, and nothing from a file reaches KVM unvalidated.
 *
 * ---- State file format (version 1; little-endian, x86_64) ----
 *   file header (40 bytes): magic "LVMMSNAP", u32 version, u32 header size (40),
 *       u64 total size (the whole file), u32 section count, u32 flags (0),
 *       u32 CRC32C (of the whole file, computed with this field zero), u32 reserved (0)
 *   then `section count` sections, each a 16-byte header (u32 type, u32 instance,
 *       u32 payload length, u16 section version (1), u16 flags) and the payload, padded
 *       with zero bytes to a multiple of 8. Sections end exactly at the total size.
 * A section with SNAP_SECF_OPTIONAL may be skipped by a reader that does not know its
 * type (later additions that an older reader can do without); any other unknown type
 * is an error. The VM section comes first, so the vCPU count is known before any vCPU
 * section. The per-vCPU sections carry KVM's x86 uapi structs (a stable ABI) as they
 * are; the rest are the records below.
 *
 * ---- Memory file ----
 *   page 0: struct snap_mem_header; then region i's bytes at snap_region.offset
 *   (page aligned, in GPA order). Pages that were all zeros are holes.
 */
#ifndef LIBVMM_SNAPSHOT_INTERNAL_H
#define LIBVMM_SNAPSHOT_INTERNAL_H

#include <linux/kvm.h>

#include "../internal.h"

#define SNAP_MAGIC "LVMMSNAP"
#define SNAP_MEM_MAGIC "LVMMMEM1"
#define SNAP_VERSION VMM_SNAPSHOT_FORMAT_VERSION
#define SNAP_SECTION_VERSION 1u
#define SNAP_ALIGN 8u
#define SNAP_MEM_HEADER_SIZE 4096u

/* Bounds on counts a file may claim (each also bounded by the bytes it occupies). */
#define SNAP_MAX_VCPUS 4096u
#define SNAP_MAX_REGIONS 32764u /* KVM_USER_MEM_SLOTS on x86_64 */
#define SNAP_MAX_MSRS 4096u
#define SNAP_MAX_CPUID 256u      /* VMM_CPUID_MAX_ENTRIES */
#define SNAP_MIN_XSAVE 4096u
#define SNAP_MAX_XSAVE (64u << 10)
#define SNAP_REGION_NAME 64u /* = lib/mem's own limit */
#define SNAP_MAX_DEVICES 1024u
#define SNAP_MAX_DEVICE_STATE (1u << 20) /* one device's blob */
/* Guest-physical addresses stop at 2^52 on x86_64 (MAXPHYADDR). */
#define SNAP_MAX_GPA (1ull << 52)

enum snap_section_type {
	SNAP_SEC_VM = 1,
	SNAP_SEC_MEMMAP = 2,
	SNAP_SEC_IRQCHIP = 3,  /* instance: KVM_IRQCHIP_PIC_MASTER, _PIC_SLAVE, _IOAPIC */
	SNAP_SEC_PIT = 4,
	SNAP_SEC_CLOCK = 5,
	/* Per vCPU: instance = the vCPU's index (creation order), < the VM's vCPU count. */
	SNAP_SEC_VCPU = 0x10,
	SNAP_SEC_VCPU_REGS = 0x11,
	SNAP_SEC_VCPU_SREGS = 0x12,
	SNAP_SEC_VCPU_FPU = 0x13,   /* exactly one of FPU and XSAVE */
	SNAP_SEC_VCPU_XSAVE = 0x14,
	SNAP_SEC_VCPU_XCRS = 0x15,
	SNAP_SEC_VCPU_LAPIC = 0x16,
	SNAP_SEC_VCPU_EVENTS = 0x17,
	SNAP_SEC_VCPU_DEBUGREGS = 0x18,
	SNAP_SEC_VCPU_MSRS = 0x19,
	SNAP_SEC_VCPU_CPUID = 0x1a,
	/* A device's state blob (vmm_virtio_mmio_save_state), opaque here: the device's
	 * own loader validates it. instance = device index: 0, 1, ... in file order. */
	SNAP_SEC_DEVICE = 0x100,
};

#define SNAP_SECF_OPTIONAL (1u << 0)

/* Where guest memory is (snap_vm_rec.mem_source). */
enum snap_mem_source {
	SNAP_MEM_FILE = 0,     /* the memory file, region i at regions[i].offset */
	SNAP_MEM_IN_PLACE = 1, /* the caller's fd i at regions[i].offset */
};

/* ---- records as stored (packed by construction: natural alignment, no holes) ---- */

struct snap_file_header {
	char magic[8];
	uint32_t version;
	uint32_t header_size;
	uint64_t total_size;
	uint32_t nr_sections;
	uint32_t flags;
	uint32_t crc;
	uint32_t reserved;
};

struct snap_section_header {
	uint32_t type;
	uint32_t instance;
	uint32_t length;
	uint16_t version;
	uint16_t flags;
};

struct snap_vm_rec {
	uint32_t irqchip;   /* vmm_irqchip_mode: KERNEL or NONE */
	uint32_t vm_flags;  /* VMM_VM_* */
	uint16_t exit_port;
	uint16_t fault_port;
	uint32_t nr_vcpus;
	uint32_t nr_regions;
	uint32_t mem_source; /* enum snap_mem_source */
	uint8_t mem_id[16];  /* also in the memory file's header: pairs the two files */
	uint64_t mem_file_size;
};

struct snap_memmap_head {
	uint32_t nr_regions;
	uint32_t reserved;
};

struct snap_region_rec {
	uint64_t gpa;
	uint64_t len;
	uint64_t offset;   /* in the memory file, or in the region's own fd (in place) */
	uint32_t flags;    /* VMM_MEM_READONLY, VMM_MEM_THP, VMM_MEM_HUGEPAGES */
	uint32_t reserved;
	char name[SNAP_REGION_NAME]; /* NUL-terminated, NUL-padded */
};

struct snap_vcpu_rec {
	uint32_t id;
	uint32_t mp_state;  /* KVM_MP_STATE_* */
	uint32_t tsc_khz;   /* 0: unknown */
	uint32_t lib_flags; /* SNAP_VCPU_* */
	uint64_t idt_gpa;   /* vmm_vcpu_setup_long_mode's IDT, for vmm_vcpu_set_idt_gate */
};

#define SNAP_VCPU_HAS_IDT (1u << 0)

/* MSRS and CPUID sections: this head, then the entries. */
struct snap_list_head {
	uint32_t nr;
	uint32_t reserved;
};

struct snap_msr_rec {
	uint32_t index;
	uint32_t reserved;
	uint64_t value;
};

struct snap_xcr_rec {
	uint32_t xcr;
	uint32_t reserved;
	uint64_t value;
};

struct snap_clock_rec {
	uint64_t clock;
	uint64_t reserved;
};

struct snap_mem_header {
	char magic[8];
	uint32_t version;
	uint32_t header_size; /* SNAP_MEM_HEADER_SIZE */
	uint8_t id[16];
	uint64_t file_size;
	uint32_t nr_regions;
	uint32_t crc;         /* CRC32C of this struct with crc = 0 */
};

/* ---- the in-memory description ---- */

/* snap_vcpu.have / snap_desc.have bits: which optional parts are present. */
#define SNAP_HAVE_XSAVE (1u << 0)  /* else the legacy FPU */
#define SNAP_HAVE_XCRS (1u << 1)
#define SNAP_HAVE_LAPIC (1u << 2)
#define SNAP_HAVE_IRQCHIP (1u << 3) /* desc: pic[0], pic[1], ioapic */
#define SNAP_HAVE_PIT (1u << 4)
#define SNAP_HAVE_CLOCK (1u << 5)

struct snap_msr {
	uint32_t index;
	uint64_t value;
};

struct snap_vcpu {
	uint32_t id;
	uint32_t mp_state;
	uint32_t tsc_khz;
	uint32_t lib_flags;
	uint64_t idt_gpa;
	uint32_t have;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_fpu fpu;
	uint8_t *xsave;      /* xsave_len bytes (SNAP_HAVE_XSAVE) */
	uint32_t xsave_len;
	struct kvm_xcrs xcrs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_debugregs debugregs;
	struct snap_msr *msrs;   /* sorted by index, no duplicates */
	uint32_t nr_msrs;
	vmm_cpuid_entry *cpuid;  /* sorted by (function, index), no duplicates */
	uint32_t nr_cpuid;
	/* Built by snap_prepare from the fields above, so that loading the state (restore,
	 * clone, reset) allocates nothing: the KVM_SET_MSRS list, the XSAVE image
	 * zero-extended to SNAP_MAX_XSAVE bytes (KVM_SET_XSAVE reads as many bytes as the
	 * host's KVM_CAP_XSAVE2 says, which the load checks is no more), and the events
	 * with the flags KVM_SET_VCPU_EVENTS needs. */
	struct kvm_msrs *set_msrs;
	uint8_t *set_xsave;
	struct kvm_vcpu_events set_events;
};

/* A device state (SNAP_SEC_DEVICE). */
struct snap_blob {
	uint8_t *data;
	uint32_t len;
};

struct snap_region {
	uint64_t gpa;
	uint64_t len;
	uint64_t offset;
	uint32_t flags;
	char name[SNAP_REGION_NAME];
};

struct snap_desc {
	uint32_t irqchip;
	uint32_t vm_flags;
	uint16_t exit_port;
	uint16_t fault_port;
	uint32_t mem_source;
	uint8_t mem_id[16];
	uint64_t mem_file_size;
	uint32_t have;
	uint32_t nr_vcpus;
	struct snap_vcpu *vcpus;
	uint32_t nr_regions;
	struct snap_region *regions; /* sorted by gpa, non-overlapping */
	struct kvm_pic_state pic[2];
	struct kvm_ioapic_state ioapic;
	struct kvm_pit_state2 pit;
	uint64_t clock;
	uint32_t nr_devices;
	struct snap_blob *devices;
	bool prepared; /* snap_prepare ran */
};

/* MSRs KVM refuses to set (even to 0, even from the host) on a vCPU without an in-kernel
 * LAPIC: MSR_KVM_ASYNC_PF_INT (its vector goes to the LAPIC). KVM still lists and reads
 * them, so a VM created with VMM_IRQCHIP_NONE leaves them out of its snapshots (the guest
 * cannot have set them either: its own writes fail the same way), and a load leaves them
 * out of the list it sets (state files written before this rule existed). */
static inline bool snap_msr_needs_lapic(uint32_t index)
{
	return index == 0x4b564d06u; /* MSR_KVM_ASYNC_PF_INT */
}

/* Region flags a snapshot keeps (the rest describe the old VM's backing). */
#define SNAP_REGION_FLAGS (VMM_MEM_READONLY | VMM_MEM_THP | VMM_MEM_HUGEPAGES)

/* crc32c.c: CRC-32C (Castagnoli), as in iSCSI and ext4; `crc` 0 to start, and the
 * result of one call continues into the next. */
VMM_HIDDEN uint32_t vmm_crc32c(uint32_t crc, const void *buf, size_t len);

/* format_read.c: validates `len` bytes at `buf` into a new description (freed with
 * snap_desc_free). Returns 0, -EINVAL (malformed), -EBADMSG (checksum), -ENOTSUP
 * (newer format), -ENOMEM; the message names the problem. Never touches KVM. */
VMM_HIDDEN int snap_parse(const void *buf, size_t len, struct snap_desc **out);
/* Frees the description and everything it owns. NULL is a no-op. */
VMM_HIDDEN void snap_desc_free(struct snap_desc *d);
/* Checks a memory file's header page against the description. */
VMM_HIDDEN int snap_check_mem_header(const struct snap_desc *d, const void *page, size_t len);

/* format_write.c: encodes `d` into a new malloc'd buffer (*out, *len), checksum
 * included. Returns 0, -EINVAL (over VMM_SNAPSHOT_MAX_STATE_SIZE), -ENOMEM. The writer
 * does not re-check what capture produced: snap_parse is the one validator. */
VMM_HIDDEN int snap_encode(const struct snap_desc *d, uint8_t **out, size_t *len);
/* Fills the memory file's header page (SNAP_MEM_HEADER_SIZE bytes at `page`). */
VMM_HIDDEN void snap_fill_mem_header(const struct snap_desc *d, void *page);

/* claim.c: the vCPUs a save holds. */
#define SNAP_CLAIM_INLINE 8
struct snap_claim {
	vmm_vcpu **vcpus; /* the VM's vCPU list at claim time */
	size_t n;
	/* Up to SNAP_CLAIM_INLINE vCPUs are held here, so a reset needs no allocation. */
	vmm_vcpu *inline_vcpus[SNAP_CLAIM_INLINE];
};
/* Marks every vCPU of the VM as running, so vmm_vcpu_run refuses to enter (-EBUSY) for
 * the whole save, and remembers the list. Fails with -EBUSY if one is inside
 * vmm_vcpu_run. Takes vm->lock. */
VMM_HIDDEN int snap_claim_vcpus(vmm_vm *vm, struct snap_claim *c);
/* Completes each claimed vCPU's pending port I/O or MMIO (see claim.c). Runs without
 * vm->lock: a device callback it triggers may take it. With `only_pending`, skips
 * vCPUs whose last exit was not port I/O or MMIO (nothing to complete: a reset). */
VMM_HIDDEN int snap_complete_io(const struct snap_claim *c, bool only_pending);
/* Undoes the marks and frees the list. */
VMM_HIDDEN void snap_release_vcpus(struct snap_claim *c);
/* capture.c: reads the state of `vm` into a new description (regions with offsets for a memory
 * file of the given source). The vCPUs must be claimed: -EBUSY if the VM's vCPU list
 * is no longer the claimed one. Takes vm->lock. */
VMM_HIDDEN int snap_capture(vmm_vm *vm, const struct snap_claim *c, uint32_t mem_source, struct snap_desc **out);

/* capture.c: the states of `n` devices into d->devices (vmm_virtio_mmio_save_state). */
VMM_HIDDEN int snap_capture_devices(struct snap_desc *d, vmm_virtio_mmio *const *devs, size_t n);

/* take.c: the part of a save and a take that reads the VM: holds every vCPU out of
 * vmm_vcpu_run (snap_claim_vcpus), completes their pending I/O, captures the state and
 * the device states, encodes it and parses it back (whatever a snapshot holds is what
 * the one validator accepts). On success the vCPUs stay claimed (the caller copies the
 * memory, then calls snap_release_vcpus), *state is the encoded state file and *out the
 * parsed description. */
VMM_HIDDEN int snap_take_state(vmm_vm *vm, uint32_t mem_source, vmm_virtio_mmio *const *devs, size_t nr_devs,
			       struct snap_claim *c, uint8_t **state, size_t *state_len, struct snap_desc **out);

/* apply.c: builds the prepared fields of every vCPU (set_msrs, set_xsave, set_events).
 * Idempotent. Returns 0 or -ENOMEM. */
VMM_HIDDEN int snap_prepare(struct snap_desc *d);
/* Creates the vCPUs of prepared `d` in `vm` (memory already in place) with their ids,
 * CPUID tables and TSC rates, loads their state, then the irqchip, PIT and clock. */
VMM_HIDDEN int snap_apply(vmm_vm *vm, const struct snap_desc *d, uint32_t flags);
/* Checks once per VM what snap_load_vcpu relies on: the host can take the snapshot's
 * FPU/XSAVE and XCR state from the prepared buffers. */
VMM_HIDDEN int snap_check_host(vmm_vm *vm, const struct snap_desc *d);
/* Loads one vCPU's state (prepared `v`) into an existing vCPU; allocation-free. */
VMM_HIDDEN int snap_load_vcpu(vmm_vcpu *vc, const struct snap_vcpu *v);
/* The same for a reset (allocation-free): with `sync` (snap_can_sync_regs), registers,
 * special registers and events go through one KVM_RUN with immediate_exit. */
VMM_HIDDEN int snap_reset_vcpu(vmm_vcpu *vc, const struct snap_vcpu *v, bool sync);
VMM_HIDDEN bool snap_can_sync_regs(vmm_vm *vm);
/* Loads the PIC, IOAPIC, PIT and kvmclock; allocation-free. */
VMM_HIDDEN int snap_load_vm(vmm_vm *vm, const struct snap_desc *d);
/* Creates a VM with the snapshot's composition and the host options of `host` (may be
 * NULL; its size is checked by the caller or here). */
VMM_HIDDEN int snap_new_vm(const struct snap_desc *d, const vmm_vm_opts *host, vmm_vm **out);

/* memfile.c: where a region's bytes are, for writing a memory file. */
struct snap_mem_view {
	const uint8_t *host; /* the region's bytes, readable */
	int fd;              /* a file holding them at fd_off, or -1: its holes are skipped */
	uint64_t fd_off;
};
/* Writes a memory file (header page, then region i's non-zero pages at
 * d->regions[i].offset) to out_fd, from views[i] for region i. Refuses an out_fd that
 * is one of the views' files (it would be truncated under them). */
VMM_HIDDEN int snap_write_mem_views(const struct snap_desc *d, const struct snap_mem_view *views, int out_fd);
/* The same from a VM's memory map (must match d's regions). */
VMM_HIDDEN int snap_write_memory(vmm_vm *vm, const struct snap_desc *d, int fd);
struct snap_mem_src {
	int file_fd;           /* SNAP_MEM_FILE: the memory file, else -1 */
	const int *region_fds; /* SNAP_MEM_IN_PLACE */
	size_t nr_region_fds;
};
VMM_HIDDEN int snap_restore_memory(vmm_vm *vm, const struct snap_desc *d, const struct snap_mem_src *src,
				   int mode);

/* ---- in-memory snapshots (inmem.c, reset.c) ---- */

struct vmm_snapshot {
	_Atomic unsigned refs;
	struct snap_desc *d; /* validated and prepared */
	int mem_fd;          /* SNAP_MEM_FILE: the memory file or the take's sealed memfd */
	int *region_fds;     /* SNAP_MEM_IN_PLACE: one per region (ours), else NULL */
	const uint8_t **ro;  /* per region: read-only shared mapping of its bytes */
	/* Per region, a bit per page: 1 if the source has data there, 0 for a hole (all
	 * zeros). A reset clears a hole page with memset instead of reading the mapping:
	 * a read fault on a hole would allocate a zero page in the source memfd and costs
	 * far more than the copy. */
	uint64_t **data;
	uint64_t mem_size;
};

static inline int snap_region_fd(const struct vmm_snapshot *s, uint32_t i)
{
	return s->region_fds ? s->region_fds[i] : s->mem_fd;
}

/* inmem.c: a new snapshot from a validated, prepared description (taken over, also on
 * failure) and its memory (descriptors duplicated; the caller keeps its own). With
 * `populate`, the data pages are mapped at once (memory already in the page cache). */
VMM_HIDDEN int snap_from_sources(struct snap_desc *d, const struct snap_mem_src *src, bool populate,
				 struct vmm_snapshot **out);

/* One more reference (a clone's). */
VMM_HIDDEN void snap_ref(struct vmm_snapshot *s);

/* snapshot.c: the output-file helpers shared by save and write. */
VMM_HIDDEN int snap_write_files(const vmm_snapshot_save_opts *o, const uint8_t *state, size_t state_len,
				int (*write_mem)(void *ctx, int fd), void *ctx);

#endif
