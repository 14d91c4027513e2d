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
 * What is not in a snapshot (yet): devices on the VM's bus (virtio transports, UARTs,
 * ...), the application's MSI routes and irqfds (vmm_irq_route_msi, vmm_irq_add_irqfd),
 * and the user-space IOAPIC of VMM_IRQCHIP_SPLIT (saving such a VM fails with -ENOTSUP).
 * After a restore the application registers its devices on the new VM again.
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
} vmm_snapshot_save_opts;

#define VMM_SNAPSHOT_SAVE_OPTS_INIT { sizeof(vmm_snapshot_save_opts), 0, 0, -1, 0, -1 }

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
	/* Host-side VM options: kvm_path, kick_signal and dirty_ring_entries are taken from
	 * here (NULL = defaults). The guest-visible composition (irqchip, flags, exit and
	 * fault ports) always comes from the snapshot; these fields are ignored. */
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

#ifdef __cplusplus
}
#endif
#endif
