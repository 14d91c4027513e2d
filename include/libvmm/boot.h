/* libvmm: booting Linux (x86_64): kernel loaders, e820 map, command-line builder.
 *
 * vmm_linux_load puts a kernel, its initrd and its command line into guest memory and
 * (given the boot vCPU) sets the vCPU up to enter the kernel:
 *
 *   - bzImage: the Linux/x86 64-bit boot protocol. The setup header is validated
 *     (boot flag, "HdrS", protocol >= 2.12 with XLF_KERNEL_64, sizes against the file),
 *     the protected-mode kernel is copied to its load address, and a boot_params
 *     ("zero page") gets the header, command line, initrd, e820 map, RSDP and the
 *     setup_data chain. Entry in 64-bit mode at load address + 0x200 with RSI =
 *     boot_params.
 *   - vmlinux ELF with a PVH note (XEN_ELFNOTE_PHYS32_ENTRY): the PT_LOAD segments are
 *     loaded at their physical addresses and an hvm_start_info (version 1, with the
 *     e820 map as its memmap table and the initrd as module 0) is built. Entry in
 *     32-bit protected mode, paging off, EBX = hvm_start_info. This skips the
 *     decompression a bzImage needs.
 *   - vmlinux ELF without a PVH note: loaded the same way and entered like a bzImage
 *     (64-bit, RSI = boot_params) at e_entry, with a setup header the loader makes up.
 *
 * Guest memory layout. The loader uses guest RAM [VMM_LINUX_BOOT_AREA_START,
 * VMM_LINUX_BOOT_AREA_END) (page tables, GDT, boot_params or hvm_start_info, memmap
 * table, command line); it must be writable RAM and nothing else may live there. An
 * ELF kernel goes to its p_paddr. A relocatable bzImage goes to its pref_address
 * (usually 16 MiB), or if that is taken to the lowest address above it, aligned to
 * kernel_alignment, with room for its init_size (a relocatable kernel never runs below
 * pref_address: loaded lower, it would move itself up); a non-relocatable one goes to
 * pref_address or fails. The initrd goes as high as the kernel's initrd_addr_max (2 GiB
 * for ELF kernels, as x86_64 bzImages declare) and the top of RAM below 4 GiB allow;
 * setup_data blobs go below it. Nothing is
 * placed below 1 MiB except the boot area, and nothing above 4 GiB.
 *
 * The e820 map (vmm_e820_build) reports each writable memory region as RAM, except
 * that [0x9fc00, 0x100000) is reported reserved, as on a PC (EBDA, VGA and BIOS
 * ranges; Linux reserves the first 1 MiB anyway), and read-only regions are reported
 * reserved. Caller-given ranges (e.g. ACPI tables as VMM_E820_ACPI) override that.
 *
 * Errors: every function returns 0 or a negative errno and leaves the reason in
 * vmm_last_error(), e.g. "bzImage: setup header version 2.06 too old (need 2.12 for
 * the 64-bit entry)". Images are untrusted input: every header field is checked with
 * overflow-checked arithmetic.
 *
 * Threading: no shared state. Loading must not race with changes to the memory map or
 * with the vCPUs running.
 */
#ifndef LIBVMM_BOOT_H
#define LIBVMM_BOOT_H

#include <stdbool.h>
#include <libvmm/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- e820 memory map ---------------------------------------------------------------- */

/* e820 entry types (the values of the PC BIOS interface and Linux's boot protocol). */
#define VMM_E820_RAM 1u
#define VMM_E820_RESERVED 2u
#define VMM_E820_ACPI 3u      /* ACPI tables: RAM the OS may reclaim after parsing them */
#define VMM_E820_NVS 4u
#define VMM_E820_UNUSABLE 5u
#define VMM_E820_PMEM 7u

typedef struct vmm_e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type; /* VMM_E820_* */
} vmm_e820_entry;

/* Most entries a map carries (the size of boot_params' e820 table). */
#define VMM_E820_MAX_ENTRIES 128u

/* Builds the e820 map of `mem` as described at the top of this header: writable regions
 * as RAM (with the PC legacy hole [0x9fc00, 0x100000) reserved), read-only regions
 * reserved, then each of the `nextra` caller ranges with its own type, overriding what
 * is below it (later ranges win; they may also lie outside RAM). The result is sorted,
 * non-overlapping, with adjacent entries of one type merged, in out[0..*count).
 * `extra` may be NULL when nextra is 0. Returns 0, -EINVAL (NULL argument, an extra
 * range of size 0, wrapping around, or of an unknown type), -E2BIG (more than `max`
 * entries; *count says how many were needed), -ENOMEM. */
VMM_API int vmm_e820_build(vmm_mem *mem, const vmm_e820_entry *extra, size_t nextra,
			   vmm_e820_entry *out, size_t max, size_t *count);

/* ---- kernel command line -------------------------------------------------------------- */

/* A command line built one parameter at a time. It stays quote-free: keys and values
 * containing spaces, quotes or control characters are rejected instead of being quoted,
 * so every parameter the kernel parses is exactly one that was added. */
typedef struct vmm_cmdline vmm_cmdline;

/* The longest command line Linux/x86 accepts (COMMAND_LINE_SIZE 2048 minus the NUL);
 * a bzImage announces its own limit in its header (vmm_linux_kernel.cmdline_max). */
#define VMM_CMDLINE_DEFAULT_MAX 2047u
/* The longest command line the loader places (its slot in the boot area, minus NUL). */
#define VMM_CMDLINE_LIMIT 65535u

/* Creates an empty command line of at most `max_len` bytes (without the terminating
 * NUL); 0 = VMM_CMDLINE_DEFAULT_MAX. Returns 0, -EINVAL (max_len > VMM_CMDLINE_LIMIT),
 * -ENOMEM. The caller owns *out and frees it with vmm_cmdline_destroy. */
VMM_API int vmm_cmdline_create(vmm_cmdline **out, size_t max_len);
/* NULL is a no-op. */
VMM_API void vmm_cmdline_destroy(vmm_cmdline *cl);

/* Appends "key=value", or "key" alone when value is NULL ("key=" when value is "").
 * key: non-empty, printable ASCII without space, '"' or '='; value: printable ASCII
 * (or UTF-8 bytes >= 0x80) without space or '"'. Returns 0, -EINVAL (bad key or
 * value; nothing appended), -E2BIG (the result would exceed the maximum; nothing
 * appended), -ENOMEM. */
VMM_API int vmm_cmdline_add(vmm_cmdline *cl, const char *key, const char *value);
/* vmm_cmdline_add with the value formatted by printf(fmt, ...). */
VMM_API int vmm_cmdline_addf(vmm_cmdline *cl, const char *key, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 3, 4)))
#endif
	;
/* Appends already-formed text: one or more parameters separated by spaces (runs of
 * spaces and leading or trailing spaces are collapsed). Same character rules as values,
 * with spaces allowed between parameters. Returns as vmm_cmdline_add. */
VMM_API int vmm_cmdline_append(vmm_cmdline *cl, const char *text);
/* True if a parameter with this key ("key" or "key=...") is present. */
VMM_API bool vmm_cmdline_has(const vmm_cmdline *cl, const char *key);
/* The NUL-terminated command line ("" when empty), valid until the next change or
 * destroy; and its length. */
VMM_API const char *vmm_cmdline_str(const vmm_cmdline *cl);
VMM_API size_t vmm_cmdline_len(const vmm_cmdline *cl);

/* ---- Linux loader ---------------------------------------------------------------------- */

/* The boot path: requested in vmm_linux_opts.protocol, reported in the info structs. */
typedef enum vmm_linux_protocol {
	VMM_LINUX_AUTO = 0,    /* request only: bzImage -> BZIMAGE, ELF -> PVH if it has the
	                        * note, else ELF64 */
	VMM_LINUX_BZIMAGE = 1, /* bzImage, 64-bit boot protocol */
	VMM_LINUX_PVH = 2,     /* vmlinux ELF, PVH 32-bit entry with hvm_start_info */
	VMM_LINUX_ELF64 = 3,   /* vmlinux ELF, 64-bit entry at e_entry with boot_params */
} vmm_linux_protocol;

/* The guest-physical range the loader reserves for its own structures (see the top of
 * this header), and the fixed addresses in it. */
#define VMM_LINUX_BOOT_AREA_START 0x10000u
#define VMM_LINUX_BOOT_AREA_END 0x50000u
#define VMM_LINUX_BOOT_PARAMS 0x30000u /* boot_params, or hvm_start_info for PVH */
#define VMM_LINUX_CMDLINE 0x40000u

/* Types of setup_data blobs (Linux's SETUP_* values). */
#define VMM_LINUX_SETUP_DTB 2u      /* a flattened device tree */
#define VMM_LINUX_SETUP_RNG_SEED 9u /* bytes of seed for the kernel's RNG */

typedef struct vmm_linux_setup_data {
	uint32_t type;    /* VMM_LINUX_SETUP_* or another of Linux's SETUP_* types */
	const void *data; /* copied into guest memory; stays the caller's */
	uint32_t len;     /* bytes, > 0 */
} vmm_linux_setup_data;

/* Most setup_data blobs and e820 override ranges per load. */
#define VMM_LINUX_MAX_SETUP_DATA 16u
#define VMM_LINUX_MAX_E820_EXTRA 64u

typedef struct vmm_linux_opts {
	uint32_t size;        /* sizeof(vmm_linux_opts) */
	vmm_linux_protocol protocol; /* VMM_LINUX_AUTO (default), or a path to insist on:
	                        * a kernel that does not offer it is refused (-ENOEXEC) */
	/* The kernel: a file (`kernel_path`, at most 1 GiB) or a buffer (`kernel`,
	 * `kernel_size`; copied, stays the caller's). Exactly one of the two. */
	const char *kernel_path;
	const void *kernel;
	size_t kernel_size;
	/* The initrd, optional: a file (read straight into guest memory) or a buffer; at
	 * most one of the two. Size below 4 GiB. */
	const char *initrd_path;
	const void *initrd;
	size_t initrd_size;
	/* The command line (NULL = empty): printable characters only (no newline or other
	 * control character), at most the kernel's limit (a bzImage's cmdline_size, else
	 * VMM_CMDLINE_DEFAULT_MAX). vmm_cmdline_str() of a builder fits here. */
	const char *cmdline;
	/* Guest-physical address of the ACPI RSDP, 0 = none: boot_params.acpi_rsdp_addr
	 * (ignored by kernels before boot protocol 2.14, which scan 0xe0000-0xfffff for it)
	 * or hvm_start_info.rsdp_paddr. */
	uint64_t rsdp;
	/* Ranges the e820 map reports with their own type (e.g. the ACPI tables as
	 * VMM_E820_ACPI, an MMIO window as VMM_E820_RESERVED); the loader places nothing
	 * there. At most VMM_LINUX_MAX_E820_EXTRA; copied. */
	const vmm_e820_entry *e820_extra;
	size_t n_e820_extra;
	/* setup_data blobs chained from boot_params (bzImage and ELF64 only; PVH has no
	 * setup_data: -ENOTSUP). At most VMM_LINUX_MAX_SETUP_DATA; copied. */
	const vmm_linux_setup_data *setup_data;
	size_t n_setup_data;
} vmm_linux_opts;

#define VMM_LINUX_OPTS_INIT { sizeof(vmm_linux_opts), VMM_LINUX_AUTO, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }

/* What a load did (all addresses guest-physical). */
typedef struct vmm_linux_info {
	vmm_linux_protocol protocol; /* the path taken, never VMM_LINUX_AUTO */
	uint16_t boot_version;  /* boot protocol version in boot_params (e.g. 0x020f);
	                         * 0 for PVH */
	uint64_t entry;         /* first instruction: load + 0x200, the PVH note, or e_entry */
	uint64_t kernel_addr;   /* lowest address of the kernel */
	uint64_t kernel_end;    /* end of what the kernel may use before it reads the memory
	                         * map (bzImage: load + init_size; ELF: end of its bss) */
	uint64_t boot_params;   /* boot_params or hvm_start_info: RSI or EBX at entry */
	uint64_t cmdline_addr;
	uint32_t cmdline_len;   /* without the NUL */
	uint32_t e820_entries;
	uint64_t initrd_addr;   /* 0 without initrd */
	uint64_t initrd_size;
	uint64_t setup_data;    /* first setup_data node, 0 if none */
	uint64_t system_area;   /* 64-bit paths: the vmm_vcpu_setup_long_mode area (page
	                         * tables); 0 for PVH */
} vmm_linux_info;

/* What a kernel image announces, from its headers alone (vmm_linux_probe). */
typedef struct vmm_linux_kernel {
	vmm_linux_protocol protocol; /* the path AUTO would take */
	uint16_t boot_version;   /* bzImage: the header's protocol version; else 0 */
	uint16_t xloadflags;     /* bzImage: XLF_* flags */
	bool relocatable;        /* bzImage: relocatable_kernel */
	bool has_pvh;            /* ELF: it has a PVH entry note */
	uint32_t cmdline_max;    /* longest command line (without NUL) it accepts */
	uint64_t pref_address;   /* bzImage: preferred load address; ELF: lowest p_paddr */
	uint64_t alignment;      /* bzImage: kernel_alignment; ELF: 0 */
	uint64_t init_size;      /* bytes needed from the load address: bzImage's init_size,
	                          * or the ELF's span of loaded segments */
	uint64_t initrd_max;     /* highest address the initrd may occupy (inclusive) */
	uint64_t entry;          /* PVH or ELF entry; bzImage: 0x200 (offset from load) */
} vmm_linux_kernel;

/* Validates a kernel image in a buffer and describes it, without touching guest memory.
 * Returns 0, -EINVAL (malformed: truncated, a bad field), -ENOEXEC (well-formed but not
 * bootable here: not a bzImage or ELF, protocol too old, no 64-bit entry). */
VMM_API int vmm_linux_probe(const void *image, size_t size, vmm_linux_kernel *out);

/* Loads kernel, initrd, command line and boot structures into `mem` and, when `bsp` is
 * not NULL, sets `bsp` up to enter the kernel (vmm_linux_setup_vcpu). `bsp` must belong
 * to the VM whose memory map `mem` is; with bsp NULL `mem` may be a standalone map.
 * `info` may be NULL. The whole plan (image headers, placement of every piece in RAM,
 * command line) is validated before guest memory is written; only an I/O error while
 * reading the initrd file, or a failing vCPU call, can leave guest memory partly
 * written. Call it on the thread that drives `bsp`, before its first run.
 * Returns 0, or -EINVAL (malformed image, bad options), -ENOEXEC (unsupported kernel or
 * protocol), -E2BIG (command line too long, e820 map too big), -ENOSPC (kernel, initrd
 * or setup_data does not fit in guest RAM within the kernel's limits), -EFAULT (the
 * boot area or a fixed-address piece is not in writable RAM), -ENOTSUP (setup_data
 * with PVH), -ENOMEM, the errno of reading a file, or a KVM errno. */
VMM_API int vmm_linux_load(vmm_mem *mem, vmm_vcpu *bsp, const vmm_linux_opts *opts,
			   vmm_linux_info *info);

/* Sets the vCPU up to enter a kernel loaded by vmm_linux_load (for a vCPU that was not
 * given to it, or to start over without reloading):
 *   64-bit paths: vmm_vcpu_setup_long_mode at info->system_area (identity map of 4 GiB,
 *   the fault-reporting IDT so an exception before the kernel has its own IDT ends in
 *   VMM_EXIT_FAULT), then a GDT with the boot protocol's __BOOT_CS 0x10 and __BOOT_DS
 *   0x18, RSI = boot_params, RIP = entry, other GPRs 0, interrupts off.
 *   PVH: 32-bit protected mode, paging off (CR0 = PE|ET, CR4 = 0, EFER = 0), flat
 *   segments (CS 0x10, data 0x18, base 0, limit 4 GiB), a 32-bit TSS at 0 (limit
 *   0x67), EBX = hvm_start_info, EIP = entry, other GPRs 0, interrupts off.
 * Returns 0, -EINVAL (NULL argument, unknown protocol), -EFAULT, or a KVM errno. */
VMM_API int vmm_linux_setup_vcpu(vmm_vcpu *bsp, const vmm_linux_info *info);

/* ==== Linux guest platform set-up (lib/boot/linux_platform.c) =========================
 *
 * What a Linux guest needs from the VMM besides being loaded. A microVM calls, before the
 * first vmm_vcpu_run of any vCPU:
 *     vmm_linux_prepare_vm(vm);                  once
 *     vmm_linux_prepare_vcpu(vcpu);              for every vCPU, boot vCPU and the others
 * and builds its command line with vmm_linux_cmdline_nested_defaults when
 * vmm_linux_host_is_nested() says so. Everything here is also right on bare-metal KVM. */

/* Masks both 8259 PICs of the in-kernel irqchip (VMM_IRQCHIP_KERNEL; a no-op with the
 * other compositions). KVM's PICs start unmasked with vector base 0, and a Linux guest
 * with libvmm's hardware-reduced ACPI tables never programs them while it keeps the boot
 * vCPU's LINT0 in ExtINT mode (see acpi.h): every interrupt on GSIs 0-15 would also
 * reach that vCPU as vector 0-15, an exception vector. A BIOS leaves them masked too.
 * Call before the vCPUs run. Returns 0, -EINVAL (NULL vm), or a KVM errno. */
VMM_API int vmm_linux_prepare_vm(vmm_vm *vm);

/* Switches the vCPU's local APIC to x2APIC mode (IA32_APIC_BASE, MSR 0x1B: enable and
 * EXTD bits set, base and BSP flag kept: 0xFEE00D00 on the boot vCPU, 0xFEE00C00 on the
 * others), as firmware may leave it. Linux then keeps using x2APIC, whose registers are
 * MSRs; some nested hosts cannot emulate the xAPIC's MMIO page at all (it ends in a
 * shutdown), and a kernel that found the APIC in xAPIC mode would touch it before
 * switching. INIT and SIPI keep the mode, so secondary vCPUs started by the guest stay
 * in x2APIC. The vCPU's CPUID must advertise x2APIC (libvmm's default table does); the
 * guest kernel must support x2APIC (CONFIG_X86_X2APIC; every distribution kernel does).
 * Call on the thread that drives the vCPU, before its first run (after
 * vmm_vcpu_set_cpuid if you install your own table). Returns 0, -EINVAL (NULL vcpu),
 * -EIO (KVM refused: e.g. x2APIC not in the vCPU's CPUID), or a KVM errno. */
VMM_API int vmm_linux_prepare_vcpu(vmm_vcpu *vcpu);

/* True if this host's KVM runs guests without hardware virtualization: the kvm_pvm
 * module is loaded, or the CPU flags in /proc/cpuinfo show neither vmx nor svm although
 * KVM works (a paravirtual KVM nested in a cloud VM). There, guest ring-0 code is
 * interpreted, instructions such as XSAVE, POPCNT or STAC fail to emulate, and a Linux
 * guest needs vmm_linux_cmdline_nested_defaults. False on bare-metal KVM and on nested
 * KVM with VMX/SVM (also when /proc is not readable). Any thread. */
VMM_API bool vmm_linux_host_is_nested(void);

/* Appends the kernel parameters a Linux guest needs on such hosts (each skipped if `cl`
 * already has a parameter with that key, so a caller's own choice wins). First what the
 * guest needs to work at all: the host's KVM cannot complete some instructions at ring
 * 0, and the guest sees the host's CPUID whatever KVM_SET_CPUID2 says, so features are
 * hidden on the command line:
 *   clearcpuid=popcnt,ssse3,sse4_1,sse4_2,pclmulqdq,aes,cx16,rdtscp,rdpid,smap,
 *              fsgsbase,invpcid,pcid,rdrand,rdseed,erms,fsrm,xsavec,xsaves
 *                           popcnt: hweight() is patched to POPCNT; cx16: SLUB's
 *                           LOCK CMPXCHG16B; smap: STAC/CLAC around user accesses;
 *                           rdtscp: rdtsc_ordered(); pcid/invpcid: INVPCID; ssse3,
 *                           sse4_*, pclmulqdq, aes: SIMD crypto and CRC code (blake2s
 *                           runs LDMXCSR); fsgsbase, rdpid, rdrand, rdseed: precaution;
 *                           erms, fsrm: speed (memcpy/memset then use REP MOVSQ/STOSQ,
 *                           several times faster to interpret than REP MOVSB/STOSB);
 *                           xsaves, xsavec: they touch supervisor state KVM never hands
 *                           to user space, so they cannot be completed soundly; the
 *                           kernel then uses XSAVE/XSAVEOPT/XRSTOR in the standard
 *                           format, which vmm_vcpu_run completes in user space (the
 *                           emulator fails on them too). The guest's FPU, AVX and
 *                           AVX-512 state is then saved whole on every task switch.
 * Then what makes the boot take minutes rather than much longer, every ring-0
 * instruction being interpreted:
 *   mitigations=off         no speculation-mitigation sequences on every kernel entry
 *   cryptomgr.notests=1     no crypto self-tests
 *   initcall_blacklist=load_system_certificate_list,trace_eval_init,init_kprobe_trace
 *                           61, 22 and 40 s in Debian's cloud kernel (a kernel without
 *                           kallsyms says it cannot blacklist; harmless)
 *   8250.nr_uarts=1         one legacy serial port probed, not four
 *   rcupdate.rcu_cpu_stall_suppress=1
 *                           a vCPU busy in a long interpreted stretch looks stalled to
 *                           RCU, and the NMI backtraces it then prints cost more time
 * None of these is needed on bare-metal KVM, and mitigations=off weakens the guest
 * there: call this only when vmm_linux_host_is_nested() says so. User space of a stock
 * kernel still cannot make system calls on such hosts; a kernel with libvmm's guest
 * patch (guest/kernel/patches) can. Returns 0, -EINVAL (NULL), -E2BIG (the line is
 * full; the parameters added before stay), -ENOMEM. */
VMM_API int vmm_linux_cmdline_nested_defaults(vmm_cmdline *cl);

#ifdef __cplusplus
}
#endif
#endif
