/* libvmm: function sandboxes — call functions of a guest program in a VM that is reset
 * to a snapshot after every call.
 *
 * A sandbox runs one guest program built with the guest SDK (sdk/guest: libvmm_guest.h,
 * its runtime and linker script, the CMake helper libvmm_add_guest). Creating it loads
 * the ELF into a small VM of its own (one vCPU, no interrupt controller, no devices),
 * runs the program's init function, and takes a snapshot (vmm_snapshot_take). Each
 * vmm_sandbox_call then
 *   1. resets the VM to that snapshot if the previous call left it changed (only the
 *      pages dirtied since are copied back; see vmm_snapshot_reset),
 *   2. copies the input buffers into the guest's I/O area,
 *   3. runs the exported function: one VM exit per call, plus one per host call the
 *      guest makes (the guest waits on a port write; the host writes the call into a
 *      shared page and re-enters the vCPU, without touching its registers),
 *   4. copies the output buffers back.
 * So every call starts from the state init left, and the state a call leaves behind
 * stays readable (vmm_sandbox_read, counters) until the next call resets it.
 *
 * How much a reset restores: after a call that returned normally, the SDK runtime has
 * already put the vCPU back where the snapshot left it (it zeroes the general registers,
 * resets RSP, RFLAGS and the x87/SSE/AVX state to init's control word and MXCSR with
 * zeroed data registers, and waits at the same instruction); the sandbox verifies that
 * from the registers KVM reports at the exit (RIP, every general register, RFLAGS,
 * segments, control registers including CR2, no pending event), and then resets memory
 * only (VMM_SNAPSHOT_RESET_MEMORY_ONLY: dirtied pages and nothing else, no vCPU ioctl).
 * After an error, a mismatch, at ring 0, or when the runtime cannot vouch for every
 * enabled state component, the reset is full (vCPU, clock and memory). Consequences: the
 * guest's TSC keeps running across normal calls (a full reset sets it back, as far as KVM
 * allows); init's vector register contents do not reach calls (they start zeroed); and
 * register changes an application makes through vmm_sandbox_vcpu between calls are not
 * undone after a normal call (that pointer is for inspection).
 *
 * Errors leave the sandbox usable: a guest CPU exception (-EFAULT; the message names the
 * vector, RIP, error code and CR2), a deadline that expires (-ETIMEDOUT; the vCPU is
 * kicked), a guest that breaks the protocol (-EPROTO) or aborts (-ECANCELED), a host
 * function that fails (its error) all end the call, and the next call starts from the
 * snapshot, even with VMM_SANDBOX_NO_RESET. Bad arguments (-EINVAL), buffers too big for
 * the I/O area (-E2BIG) and unknown functions (-ENOENT) are refused before the guest
 * runs and change nothing.
 *
 * Threading: a sandbox is used by one thread at a time (calls on one sandbox must not
 * overlap; a host function must not call into its own sandbox: -EBUSY). Any number of
 * sandboxes may live in one process and run on different threads at once. With a
 * deadline, each sandbox has one watchdog thread, started at the first call that needs
 * it; it does nothing but sleep and kick. The calling thread must not block the kick
 * signal (vmm_vm_opts.kick_signal, default SIGRTMAX - 1).
 *
 * Guest privilege: the program runs at CPL 3 (user mode) by default, which is the fast
 * mode on nested KVM hosts (see PLATFORM.md); VMM_SANDBOX_RING0 runs it at CPL 0.
 */
#ifndef LIBVMM_SANDBOX_H
#define LIBVMM_SANDBOX_H

#include <stdbool.h>
#include <libvmm/common.h>
#include <libvmm/vm.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vmm_sandbox vmm_sandbox;

#define VMM_SANDBOX_MAX_ARGS 6u /* integer arguments of a guest function or host call */
#define VMM_SANDBOX_MAX_BUFS 8u /* input buffers, and output buffers, per call */

/* A host function the guest calls with vmm_guest_host_call (by id) or
 * vmm_guest_host_call_name (by name). `args` holds nargs (<= 6) values; store the result
 * the guest sees in *ret (0 if untouched). Return 0 to continue the guest, or a negative
 * errno to end the whole call with that error (the sandbox is reset). Use the checked
 * accessors (vmm_sandbox_read/write/ptr) for guest pointers among the args. Called on
 * the thread of vmm_sandbox_call (or of vmm_sandbox_create, for host calls made by the
 * guest's init). It must not call vmm_sandbox_call on the same sandbox. */
typedef int (*vmm_sandbox_host_fn)(void *ctx, vmm_sandbox *sb, const uint64_t *args, uint32_t nargs,
				   uint64_t *ret);

typedef struct vmm_sandbox_host_func {
	uint32_t id;          /* below 0xffff0000 (the SDK's own ids); unique */
	const char *name;     /* NULL, or a unique name (< 64 bytes) for calls by name */
	vmm_sandbox_host_fn fn;
	void *ctx;
} vmm_sandbox_host_func;

/* Receives what the guest writes with vmm_guest_write/vmm_guest_print. */
typedef void (*vmm_sandbox_output_fn)(void *ctx, const char *data, size_t len);

/* vmm_sandbox_opts.flags */
#define VMM_SANDBOX_NO_RESET (1u << 0) /* don't reset between calls: each call continues
                                        * from the state the last one left (errors still
                                        * reset) */
#define VMM_SANDBOX_RING0 (1u << 1)    /* run the guest at CPL 0 instead of 3 */

typedef struct vmm_sandbox_opts {
	uint32_t size;       /* sizeof(vmm_sandbox_opts); set by the _INIT macro */
	uint32_t flags;      /* VMM_SANDBOX_* */
	/* The guest program: elf/elf_size (copied), else elf_path. */
	const void *elf;
	size_t elf_size;
	const char *elf_path;
	/* Guest RAM in bytes, rounded up to 2 MiB; default 16 MiB, at most 4 GiB. */
	uint64_t mem_size;
	/* Bytes at the top of guest RAM for the call's buffers, rounded up to 4 KiB;
	 * default 1 MiB. The input and output buffers of a call must fit in it together. */
	uint64_t io_size;
	/* Default time limit of a call, in nanoseconds; 0 = none. */
	uint64_t deadline_ns;
	/* Time limit of the guest's init; 0 = none. */
	uint64_t init_deadline_ns;
	/* Host functions (copied, names included). */
	const vmm_sandbox_host_func *host_funcs;
	size_t nr_host_funcs;
	vmm_sandbox_output_fn output; /* NULL: the guest's output is dropped */
	void *output_ctx;
	/* Host-side VM options: kvm_path, kick_signal and the VMM_VM_DONTFORK flag are
	 * used; NULL = defaults. */
	const vmm_vm_opts *vm_opts;
} vmm_sandbox_opts;

#define VMM_SANDBOX_OPTS_INIT { sizeof(vmm_sandbox_opts), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }

/* Creates a sandbox: loads the ELF, sets the vCPU up in long mode, runs the guest's
 * init function (VMM_GUEST_INIT; host functions may be called from it) and takes the
 * snapshot every call starts from. Returns 0 and *out, or -EINVAL (bad options or ELF,
 * not an SDK program: no export table, wrong ABI version), -ENOEXEC (not an x86_64
 * static ELF), -EFBIG (program too large for mem_size), -ECANCELED (init returned
 * non-zero or aborted), -EFAULT, -ETIMEDOUT, -EPROTO (init crashed, ran out of time, or
 * broke the protocol), -ENODEV/-EACCES (no usable /dev/kvm), -ENOMEM, or a KVM errno.
 * vmm_last_error() says why. Thread: any. */
VMM_API int vmm_sandbox_create(vmm_sandbox **out, const vmm_sandbox_opts *opts);

/* Destroys the sandbox (stops its watchdog thread, destroys its VM and snapshot). No
 * call may be in progress. NULL is a no-op. */
VMM_API void vmm_sandbox_destroy(vmm_sandbox *sb);

/* An input buffer: `len` bytes at `data`, copied into the guest before the call. */
typedef struct vmm_sandbox_in {
	const void *data;
	size_t len;
} vmm_sandbox_in;

/* An output buffer: the guest may write up to `cap` bytes; on success, `len` is how many
 * it produced (vmm_guest_set_out_len) and those bytes are copied to `data`. */
typedef struct vmm_sandbox_out {
	void *data;
	size_t cap;
	size_t len;
} vmm_sandbox_out;

/* vmm_sandbox_call_opts.flags */
#define VMM_SANDBOX_CALL_KEEP_STATE (1u << 0) /* don't reset before this call: continue
                                               * from the state the last call left */

typedef struct vmm_sandbox_call_opts {
	uint32_t size;   /* sizeof(vmm_sandbox_call_opts); set by the _INIT macro */
	uint32_t flags;  /* VMM_SANDBOX_CALL_* */
	const vmm_sandbox_in *in;   /* up to VMM_SANDBOX_MAX_BUFS each */
	size_t nr_in;
	vmm_sandbox_out *out;
	size_t nr_out;
	/* Time limit of this call in ns: 0 = the sandbox's deadline_ns, UINT64_MAX = none. */
	uint64_t deadline_ns;
} vmm_sandbox_call_opts;

#define VMM_SANDBOX_CALL_OPTS_INIT { sizeof(vmm_sandbox_call_opts), 0, 0, 0, 0, 0, 0 }

/* Calls the guest function exported as `fn` with nargs (<= 6) integer arguments and
 * stores its return value in *ret (may be NULL). opts (NULL = no buffers, defaults)
 * passes buffers and a deadline. Returns 0, or a negative errno as described at the top
 * of this header, with vmm_last_error() saying why; the sandbox is usable afterwards.
 * -EBUSY if a call on this sandbox is already in progress. Thread: see above. */
VMM_API int vmm_sandbox_call(vmm_sandbox *sb, const char *fn, const uint64_t *args, size_t nargs,
			     const vmm_sandbox_call_opts *opts, uint64_t *ret);

/* Resets the sandbox to its snapshot now (vmm_sandbox_call does it by itself before a
 * call that needs it). Returns 0, -EBUSY (a call is in progress), or the errno of
 * vmm_snapshot_reset (the next call tries again). Thread: as vmm_sandbox_call. */
VMM_API int vmm_sandbox_reset(vmm_sandbox *sb);

/* The value (address) of symbol `name` in the guest program's ELF symbol table, e.g.
 * "__start___sancov_cntrs" / "__stop___sancov_cntrs" for the coverage counters of a
 * program built with COVERAGE (page aligned, in pages of their own). Returns 0, -ENOENT,
 * or -EINVAL. Thread: any. */
VMM_API int vmm_sandbox_symbol(const vmm_sandbox *sb, const char *name, uint64_t *value);

/* Checked access to guest memory (identity-mapped: guest pointers are addresses), for
 * host functions and for inspecting the state a call left. Only the program's memory
 * from VMM_GUEST_LOAD_ADDR (1 MiB) to the end of RAM is accessible; anything else, or a
 * range that overflows, gives -EFAULT (with a message naming the range). Writes made
 * here are undone by the next reset. Thread: the one using the sandbox (host functions
 * run on it), or any thread while no call is in progress. */
VMM_API int vmm_sandbox_read(vmm_sandbox *sb, uint64_t addr, void *buf, size_t len);
VMM_API int vmm_sandbox_write(vmm_sandbox *sb, uint64_t addr, const void *buf, size_t len);

/* The host address of guest range [addr, addr+len), checked as above. The pointer stays
 * valid until vmm_sandbox_destroy; what it shows changes with the guest and with resets
 * (e.g. coverage counters: read them after a call, before the next one). With
 * `writable`, the pages are marked dirty now, so the next reset undoes host writes made
 * through the pointer until then; for writes after that reset, call this again.
 * Returns 0 or -EFAULT. */
VMM_API int vmm_sandbox_ptr(vmm_sandbox *sb, uint64_t addr, size_t len, bool writable, void **host);

/* The sandbox's VM and vCPU (borrowed, valid until vmm_sandbox_destroy; for inspection,
 * e.g. registers after a fault, from the thread using the sandbox). */
VMM_API vmm_vm *vmm_sandbox_vm(vmm_sandbox *sb);
VMM_API vmm_vcpu *vmm_sandbox_vcpu(vmm_sandbox *sb);

/* Counters since creation. */
typedef struct vmm_sandbox_stats {
	uint32_t size;          /* sizeof(vmm_sandbox_stats) */
	uint64_t calls;         /* vmm_sandbox_call invocations that ran the guest */
	uint64_t errors;        /* ... of which ended with an error */
	uint64_t resets;        /* snapshot resets */
	uint64_t host_calls;    /* host functions called by the guest */
	uint64_t pages_reset;   /* pages copied back by resets */
} vmm_sandbox_stats;

#define VMM_SANDBOX_STATS_INIT { sizeof(vmm_sandbox_stats), 0, 0, 0, 0, 0 }

/* Fills the fields of *stats that fit in stats->size. Returns 0 or -EINVAL. Thread: as
 * vmm_sandbox_call. */
VMM_API int vmm_sandbox_get_stats(const vmm_sandbox *sb, vmm_sandbox_stats *stats);

#ifdef __cplusplus
}
#endif
#endif
