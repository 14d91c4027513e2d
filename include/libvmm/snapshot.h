/* libvmm: snapshots — save a stopped VM to files, restore it into a new VM.
 *
 * A snapshot is two parts:
 *  - the state file: a versioned, checksummed stream (magic "LVMMSNAP", format version,
 *    total size, CRC32C over the whole file) of typed sections: the VM (interrupt
 *    controller composition, flags, ports), the memory map, the in-kernel PIC and IOAPIC,
 *    the PIT, the kvmclock, and per vCPU its registers, special registers, FPU/XSAVE
 *    state, XCRs, MSRs (TSC included), LAPIC, pending events, debug registers, MP state,
 *    TSC frequency and CPUID table. At most VMM_SNAPSHOT_MAX_STATE_SIZE bytes.
 *  - guest memory: a sparse memory file (a 4 KiB header page, then every region's bytes;
 *    only non-zero pages are written, all-zero pages stay holes), or nothing at all with
 *    VMM_SNAPSHOT_SAVE_MEM_IN_PLACE, where memory stays in the memfds (or files) the
 *    regions live in and the caller keeps those.
 * A restore reads everything it uses from the state file through one validator before it
 * touches KVM: a truncated, bit-flipped or hostile file gives -EINVAL or -EBADMSG and a
 * message naming the problem, never a crash.
 *
 * Devices: the virtio transports listed in the save (or take) options have their state
 * stored too (vmm_virtio_mmio_save_state, one blob per device, in list order), for the
 * application to load into the devices it attaches to the restored or cloned VM
 * (vmm_snapshot_open + vmm_snapshot_device_state, then vmm_virtio_mmio_load_state), and
 * vmm_snapshot_reset_with reloads them in place.
 * What is not in a snapshot (yet): other devices on the VM's bus (UARTs, ...), the
 * application's MSI routes and irqfds (vmm_irq_route_msi, vmm_irq_add_irqfd), and the
 * user-space IOAPIC of VMM_IRQCHIP_SPLIT (saving such a VM fails with -ENOTSUP). After a
 * restore the application registers its devices on the new VM again.
 *
 * Threading: a save needs the VM's vCPUs outside vmm_vcpu_run for its whole duration:
 * kick them (vmm_vcpu_kick) and let them return, or call it from the exit callback of a
 * single-vCPU VM. While it runs, vmm_vcpu_run on that VM's vCPUs fails with -EBUSY.
 * Devices must not write guest memory during a save either, and no thread may create or
 * destroy vCPUs or change the memory map meanwhile (the save fails with -EBUSY if it
 * notices). A restore may run on any thread and creates a VM nobody else knows yet.
 */
#ifndef LIBVMM_SNAPSHOT_H
#define LIBVMM_SNAPSHOT_H

#include <libvmm/common.h>
#include <libvmm/virtio.h>
#include <libvmm/vm.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest state file a restore accepts (guest memory is separate and not limited). */
#define VMM_SNAPSHOT_MAX_STATE_SIZE (64u << 20)
/* The state file format this library writes and reads. */
#define VMM_SNAPSHOT_FORMAT_VERSION 1u

/* vmm_snapshot_save_opts.flags */
/* Write no memory file: each region's memory stays in the memfd or file it lives in. The
 * snapshot then refers to region i of the memory map (vmm_mem_get_region order), and a
 * restore needs those descriptors back (vmm_snapshot_restore_opts.region_fds). Every
 * region must have a descriptor of its own memory (memfd or shared file backing:
 * -EINVAL for anonymous, host or private copy-on-write memory). The caller keeps that
 * memory unchanged for as long as it restores from the snapshot and while VMs restored
 * lazily from it live (a lazy VM still reads the source for the pages it has not
 * written): dup the fds (vmm_mem_get_region) and don't run the saved VM again; destroy
 * it, or keep it paused, and run restored VMs instead. */
#define VMM_SNAPSHOT_SAVE_MEM_IN_PLACE (1u << 0)
/* fdatasync the files before returning (durability against power loss). */
#define VMM_SNAPSHOT_SAVE_SYNC (1u << 1)

typedef struct vmm_snapshot_save_opts {
	uint32_t size;          /* sizeof(vmm_snapshot_save_opts); set by the _INIT macro */
	uint32_t flags;         /* VMM_SNAPSHOT_SAVE_* */
	/* The state file: state_path is created (mode 0600) or truncated; or, with
	 * state_path NULL, state_fd: a writable regular file (memfd included), truncated
	 * and written from offset 0; it stays the caller's. One of the two is required. */
	const char *state_path;
	int state_fd;
	/* The memory file, the same way (regular file: the sparse layout needs holes).
	 * Required unless VMM_SNAPSHOT_SAVE_MEM_IN_PLACE (then both must be unset). */
	const char *mem_path;
	int mem_fd;
	/* Virtio devices whose state goes into the snapshot, in this order (their index
	 * is the one vmm_snapshot_device_state takes). Borrowed for the call; each must be
	 * quiescent (see vmm_virtio_mmio_save_state). Ignored by vmm_snapshot_write, which
	 * writes the device states the in-memory snapshot holds. */
	vmm_virtio_mmio *const *devices;
	size_t nr_devices;
} vmm_snapshot_save_opts;

#define VMM_SNAPSHOT_SAVE_OPTS_INIT { sizeof(vmm_snapshot_save_opts), 0, 0, -1, 0, -1, 0, 0 }

/* Saves `vm` (stopped: see the threading note above) to a state file and, unless
 * VMM_SNAPSHOT_SAVE_MEM_IN_PLACE, a memory file. Before reading a vCPU's state, it
 * completes the port I/O or MMIO access the vCPU last exited for (KVM finishes those at
 * the next KVM_RUN; the save does that KVM_RUN itself, with immediate exit, so no guest
 * instruction runs): the saved state is exactly the one the vCPU would continue from,
 * and continuing the saved VM afterwards is unaffected. The VM is otherwise untouched.
 * A file created by path is removed again if the save fails.
 * Returns 0, or -EINVAL (bad options, a region without a descriptor under
 * VMM_SNAPSHOT_SAVE_MEM_IN_PLACE, a state file over the size limit), -EBUSY (a vCPU is
 * inside vmm_vcpu_run), -ENOTSUP (VMM_IRQCHIP_SPLIT), -EAGAIN (a vCPU is in the middle
 * of a string I/O instruction that needs another exit: run it again first), -ENOMEM,
 * or the errno of the failed file or KVM call; vmm_last_error() says which. */
VMM_API int vmm_snapshot_save(vmm_vm *vm, const vmm_snapshot_save_opts *opts);

/* How a restore brings guest memory back. */
typedef enum vmm_snapshot_mem_mode {
	/* Read the memory into fresh memfd regions (holes of the source stay unallocated).
	 * Restore time grows with the non-zero memory; afterwards the new VM owns all of
	 * it and the source may go away. */
	VMM_SNAPSHOT_MEM_EAGER = 0,
	/* Map the source copy-on-write (MAP_PRIVATE, VMM_MEM_FILE + VMM_MEM_PRIVATE):
	 * pages are read on first access and copied on first write, so restore time does
	 * not depend on guest size, and the new VM's writes never reach the source. The
	 * source file must stay unchanged while the VM lives (the mapping keeps it open). */
	VMM_SNAPSHOT_MEM_LAZY = 1,
	/* Map the source shared (VMM_MEM_FILE): the restored VM runs on the source memory
	 * itself and its writes go there (e.g. resume from memfds handed over by
	 * VMM_SNAPSHOT_SAVE_MEM_IN_PLACE after the saved VM is gone). Needs writable
	 * descriptors. */
	VMM_SNAPSHOT_MEM_SHARED = 2,
} vmm_snapshot_mem_mode;

/* vmm_snapshot_restore_opts.flags */
/* Accept a host whose TSC frequency differs from the snapshot's when KVM cannot scale
 * it (KVM_SET_TSC_KHZ fails): the guest's clocks then run at the new rate. Without it
 * such a restore fails with -ENOTSUP. */
#define VMM_SNAPSHOT_RESTORE_ANY_TSC_KHZ (1u << 0)

typedef struct vmm_snapshot_restore_opts {
	uint32_t size;          /* sizeof(vmm_snapshot_restore_opts); set by the _INIT macro */
	uint32_t flags;         /* VMM_SNAPSHOT_RESTORE_* */
	/* The state: state_buf/state_len (borrowed for the call), else state_path, else
	 * state_fd (read from offset 0; stays the caller's). */
	const void *state_buf;
	size_t state_len;
	const char *state_path;
	int state_fd;
	/* The memory file of a snapshot saved with one: mem_path, else mem_fd (stays the
	 * caller's; LAZY and SHARED keep their own duplicate open while the VM lives; an
	 * EAGER restore seeks it with SEEK_DATA/SEEK_HOLE, so its file offset changes). */
	const char *mem_path;
	int mem_fd;
	/* A snapshot saved with VMM_SNAPSHOT_SAVE_MEM_IN_PLACE: region i's descriptor
	 * (the memfd or file of region i of the saved VM, in memory-map order) in
	 * region_fds[i], nr_region_fds of them. Borrowed for the call, as mem_fd is, and
	 * kept unchanged by the caller as VMM_SNAPSHOT_SAVE_MEM_IN_PLACE describes. */
	const int *region_fds;
	size_t nr_region_fds;
	vmm_snapshot_mem_mode mem_mode; /* default VMM_SNAPSHOT_MEM_EAGER */
	/* Host-side VM options: kvm_path, kick_signal, dirty_ring_entries and the
	 * VMM_VM_DONTFORK flag are taken from here (NULL = defaults). The guest-visible
	 * composition (irqchip, other flags, exit and fault ports) always comes from the
	 * snapshot; those fields are ignored. */
	const vmm_vm_opts *vm_opts;
} vmm_snapshot_restore_opts;

#define VMM_SNAPSHOT_RESTORE_OPTS_INIT \
	{ sizeof(vmm_snapshot_restore_opts), 0, 0, 0, 0, -1, 0, -1, 0, 0, VMM_SNAPSHOT_MEM_EAGER, 0 }

/* Creates a new VM from a snapshot: validates the whole state file first (nothing is
 * created for a bad one), creates the VM with the snapshot's composition, recreates
 * the memory map (gpa, length, read-only flag, names) with memory per mem_mode,
 * recreates every vCPU with the same id, CPUID table and state, in the saved order
 * (vmm_vm_get_vcpu(vm, i) is saved vCPU i), then the PIC, IOAPIC, PIT and kvmclock.
 * The new VM has an empty bus: register devices before running it. Its vCPUs continue
 * exactly where the saved ones stopped when run.
 * Returns 0 and *out (destroy it with vmm_vm_destroy), or: -EINVAL (bad options, a
 * malformed state file, a memory file that does not belong to it or is too short, a
 * wrong number of region_fds), -EBADMSG (checksum mismatch: the file was corrupted),
 * -ENOTSUP (a newer format version, or this host lacks what the snapshot needs: a
 * capability, the TSC frequency), -ENOMEM, or the errno of the failed file or KVM call.
 * On failure nothing is left behind. */
VMM_API int vmm_snapshot_restore(vmm_vm **out, const vmm_snapshot_restore_opts *opts);

/* ---- In-memory snapshots: take, clone, reset ----
 *
 * A vmm_snapshot is an opened, validated snapshot held in memory: the parsed state (the
 * same description a state file holds) plus the guest memory, kept in one sealed memfd
 * (take) or in the memory file / region files it was opened from (open), and mapped
 * read-only and shared into this process.
 *
 * Ownership: the creator (take, open) holds one reference, and every VM cloned from the
 * snapshot holds another until it is destroyed; vmm_snapshot_free drops the caller's, and
 * the memory goes away with the last. The VM a snapshot was taken from holds none: it
 * runs on its own memory.
 *
 * Immutability and threading: a snapshot never changes after creation, so clone, reset,
 * write and the getters may run on one snapshot from several threads at once (each on
 * its own VM). A VM takes part in one take, reset or clone at a time; the stopping rules
 * of vmm_snapshot_save apply to take and reset (no vCPU inside vmm_vcpu_run: -EBUSY;
 * devices quiescent; no vCPU or memory-map changes meanwhile).
 *
 * What a clone shares: the snapshot's memory pages, copy-on-write (MAP_PRIVATE of the
 * snapshot memfd or file): a page costs the clone memory only once the clone (guest or
 * host) writes it, and a clone's writes are never seen by the snapshot or its siblings.
 * Nothing else: each clone has its own KVM VM, vCPUs, irqchip, clock, bus and devices.
 *
 * Dirty tracking: take and clone leave the VM "bound" to the snapshot, tracking the
 * pages written since (KVM's dirty log, or the dirty ring with
 * vmm_vm_opts.dirty_ring_entries, plus pages the host wrote through vmm_mem_write, write
 * translations and the library's devices). This tracking is the library's own: it does
 * not interfere with vmm_mem_dirty_start/collect/stop by the application. A host write
 * through a raw pointer kept from vmm_mem_get_region().host is NOT seen: use
 * vmm_mem_write or a write translation for anything a reset must undo. A binding lasts
 * as long as the VM (or until another take re-binds it), also after the snapshot is
 * freed; while bound, the first guest write to each page after a reset costs KVM a
 * write-protection fault, as any dirty logging does.
 *
 * Costs (x86_64 KVM): take copies the guest's non-zero memory once (like a save to a
 * file, in memory), clone maps it (cost independent of guest size, then one page copy
 * per page first written), reset copies back only the dirtied pages and reloads the
 * vCPU, irqchip and clock state (see vmm_snapshot_reset); reset allocates nothing. */
typedef struct vmm_snapshot vmm_snapshot;

typedef struct vmm_snapshot_take_opts {
	uint32_t size;  /* sizeof(vmm_snapshot_take_opts); set by the _INIT macro */
	uint32_t flags; /* none yet: must be 0 */
	/* Virtio devices whose state the snapshot keeps, as in vmm_snapshot_save_opts. */
	vmm_virtio_mmio *const *devices;
	size_t nr_devices;
} vmm_snapshot_take_opts;

#define VMM_SNAPSHOT_TAKE_OPTS_INIT { sizeof(vmm_snapshot_take_opts), 0, 0, 0 }

/* Takes a snapshot of a stopped VM into memory (same stopping rules and pending-I/O
 * completion as vmm_snapshot_save). Guest memory is copied into a new memfd (all-zero
 * pages stay holes) sealed against writes. `vm` may run again afterwards, and may later
 * be reset to the snapshot: the take binds it (dirty tracking on, see above; a VM is
 * bound to the snapshot it was last taken from, cloned from or reset to).
 * Returns 0 and *out (free with vmm_snapshot_free), or -EINVAL (bad arguments),
 * -EBUSY (a vCPU is inside vmm_vcpu_run), -ENOTSUP (VMM_IRQCHIP_SPLIT), -EAGAIN (a
 * vCPU is mid string-I/O: run it again first), -ENOMEM, or the errno of the failed call.
 * Thread: any, with the VM stopped. */
VMM_API int vmm_snapshot_take(vmm_vm *vm, const vmm_snapshot_take_opts *opts, vmm_snapshot **out);

/* Opens snapshot files (state + memory file or region fds, exactly as for
 * vmm_snapshot_restore; mem_mode and vm_opts are ignored: memory is mapped read-only,
 * shared, and read lazily). The files must stay unchanged while the snapshot lives (it
 * keeps duplicates of the descriptors open; mem_fd's file offset may change: the open
 * looks for holes with SEEK_DATA / SEEK_HOLE). Validation and errors as for
 * vmm_snapshot_restore; nothing is created in KVM. Thread: any. */
VMM_API int vmm_snapshot_open(vmm_snapshot **out, const vmm_snapshot_restore_opts *opts);

/* Writes an in-memory snapshot to a state file and a memory file, as vmm_snapshot_save
 * would have (same opts; VMM_SNAPSHOT_SAVE_MEM_IN_PLACE is refused with -EINVAL, and
 * devices/nr_devices are ignored: the snapshot's own device states are written). The
 * files pair with each other like a save's, and vmm_snapshot_open or
 * vmm_snapshot_restore read them back. Thread: any. */
VMM_API int vmm_snapshot_write(const vmm_snapshot *snap, const vmm_snapshot_save_opts *opts);

/* Creates a new VM from the snapshot: the snapshot's composition, memory map (each
 * region mapped MAP_PRIVATE from the snapshot's memory: copy-on-write), vCPUs with their
 * ids, CPUID and state, irqchip, PIT and clock, like a lazy vmm_snapshot_restore, bound
 * to the snapshot for vmm_snapshot_reset. The VM holds a reference on `snap` until
 * vmm_vm_destroy. Its bus is empty: register devices (and load their states, see
 * vmm_snapshot_device_state) before running it. Cost does not grow with guest size.
 * host_opts: kvm_path, kick_signal, dirty_ring_entries and VMM_VM_DONTFORK are used
 * (NULL = defaults), the rest comes from the snapshot. Returns 0 and *out, or -EINVAL, -ENOTSUP, -ENOMEM,
 * or the errno of the failed KVM call (nothing left behind). Thread: any. */
VMM_API int vmm_snapshot_clone(vmm_snapshot *snap, const vmm_vm_opts *host_opts, vmm_vm **out);

/* What a reset did (optional output). Set `size` (the _INIT macro does): the library
 * fills only the fields that fit. */
typedef struct vmm_snapshot_reset_stats {
	uint32_t size;          /* sizeof(vmm_snapshot_reset_stats) */
	uint32_t nr_vcpus;      /* vCPUs whose state was loaded */
	uint64_t pages_copied;  /* 4 KiB pages copied back from the snapshot */
	uint64_t runs;          /* runs of consecutive dirty pages among them */
	uint64_t devices;       /* device states reloaded */
	uint64_t ns_total;      /* wall time of the whole reset (CLOCK_MONOTONIC) */
	uint64_t ns_memory;     /* ... completing pending I/O, collecting the dirty log, copying */
	uint64_t ns_vcpus;      /* ... loading vCPU, irqchip, PIT and clock state */
} vmm_snapshot_reset_stats;

#define VMM_SNAPSHOT_RESET_STATS_INIT { sizeof(vmm_snapshot_reset_stats), 0, 0, 0, 0, 0, 0, 0 }

/* vmm_snapshot_reset_opts.flags */
/* Memory (and the listed devices) only: copies back the pages dirtied since the snapshot
 * or the last reset and reloads the device states, and leaves every vCPU, the irqchip,
 * PIT and kvmclock exactly as they are: no vCPU or VM ioctl at all. Not even the pending
 * port I/O or MMIO of a vCPU's last exit is completed: the next KVM_RUN completes it, as
 * it would have without the reset (an IN's value goes to RAX then; a string IN writes
 * its data to memory then, after the reset). The vCPUs' state stays the caller's
 * contract: use this only when every vCPU is already in a state equivalent to the
 * snapshot's, e.g. a guest that returned to the same instruction with the same
 * registers (general, RFLAGS, segments, control and debug registers, MSRs, FPU/SSE/AVX
 * state, no pending event) as at the take. A guest that reads the TSC or the kvmclock
 * then sees time pass across the reset (a full reset sets them back). Anything else
 * (a guest that faulted, was stopped at an unknown point, may have changed an MSR or
 * its LAPIC, ...) needs the full reset. stats: nr_vcpus and ns_vcpus are 0. */
#define VMM_SNAPSHOT_RESET_MEMORY_ONLY (1u << 0)

typedef struct vmm_snapshot_reset_opts {
	uint32_t size;  /* sizeof(vmm_snapshot_reset_opts); set by the _INIT macro */
	uint32_t flags; /* VMM_SNAPSHOT_RESET_* */
	/* Devices to bring back too: devices[i] gets the snapshot's device state i
	 * (vmm_virtio_mmio_load_state); nr_devices must be 0 or the snapshot's
	 * vmm_snapshot_device_count. Each must be quiescent, as for a take. */
	vmm_virtio_mmio *const *devices;
	size_t nr_devices;
} vmm_snapshot_reset_opts;

#define VMM_SNAPSHOT_RESET_OPTS_INIT { sizeof(vmm_snapshot_reset_opts), 0, 0, 0 }

/* Brings `vm` back to the snapshot in place: `vm` must be bound to `snap` (a clone of
 * it, the VM it was taken from, or a VM last reset to it) with the same memory map and
 * vCPUs. Completes each vCPU's pending port I/O or MMIO (as a save does), copies back
 * only the pages written since the snapshot or the last reset (see "Dirty tracking"),
 * then loads every vCPU's registers, special registers, FPU/XSAVE, XCRs, LAPIC, MSRs
 * (TSC included: the guest's time goes back to the snapshot's), MP state, pending events
 * and debug registers, then the PIC, IOAPIC, PIT and kvmclock. Cost grows with dirtied
 * pages, not guest size: one memcpy per run of dirty pages (memset for pages that are
 * zero in the snapshot), plus a fixed part of about ten vCPU ioctls per vCPU (sub-
 * microsecond each on bare-metal KVM; ~5 us each on nested PVM, where a 1-vCPU reset
 * with 16 dirty pages measured ~60 us). No memory is allocated for up to 8 vCPUs
 * (reloading devices may allocate, in the device). Same stopping rules as a save.
 * Returns 0, or -EINVAL (not bound to this snapshot, memory map or vCPUs changed),
 * -EBUSY (a vCPU is inside vmm_vcpu_run), -EAGAIN (as for a save), or the errno of the
 * failed KVM call (the VM is then in an undefined state: reset it again or destroy it).
 * stats may be NULL. Thread: any, one reset per VM at a time. */
VMM_API int vmm_snapshot_reset(vmm_snapshot *snap, vmm_vm *vm, vmm_snapshot_reset_stats *stats);
/* The same with options (device states to reload, VMM_SNAPSHOT_RESET_MEMORY_ONLY).
 * opts may be NULL. */
VMM_API int vmm_snapshot_reset_with(vmm_snapshot *snap, vmm_vm *vm, const vmm_snapshot_reset_opts *opts,
				    vmm_snapshot_reset_stats *stats);

/* Device states the snapshot holds (from take/save opts devices, in that order), each a
 * blob for vmm_virtio_mmio_load_state on a device re-created on a restored or cloned VM.
 * *ptr stays valid while the snapshot lives. Returns 0, or -ENOENT (i out of range). */
VMM_API size_t vmm_snapshot_device_count(const vmm_snapshot *snap);
VMM_API int vmm_snapshot_device_state(const vmm_snapshot *snap, size_t i, const void **ptr, size_t *len);

/* Guest memory size (sum of the regions' lengths) and vCPU count of the snapshot. */
VMM_API uint64_t vmm_snapshot_mem_size(const vmm_snapshot *snap);
VMM_API size_t vmm_snapshot_vcpu_count(const vmm_snapshot *snap);

/* Drops the caller's reference (clones keep theirs). NULL is a no-op. */
VMM_API void vmm_snapshot_free(vmm_snapshot *snap);

#ifdef __cplusplus
}
#endif
#endif
