/* libvmm guest SDK: the binary interface between a sandboxed guest program and the host
 * library (lib/sandbox). Both sides include this header; it needs only <stdint.h>.
 *
 * Guest-physical memory of a sandbox (the guest runs identity-mapped, so an address is
 * both virtual and physical):
 *   0x0000 - 0x0fff     not mapped: a NULL dereference faults
 *   0x1000 - 0x1fff     page table of the first 2 MiB (supervisor only)
 *   0x2000 - 0x2fff     the call page (struct vmm_guest_call_page), user read/write
 *   0x10000 - 0x2ffff   the vCPU's system area: GDT, TSS, IDT, ring-0 stack (supervisor)
 *   0x100000 (1 MiB)    the program (VMM_GUEST_LOAD_ADDR), then its stack, then the heap
 *   mem_size - io_size  the I/O area: in and out buffers of the current call
 * Everything else below 1 MiB and above the end of RAM is not mapped.
 *
 * Protocol: the guest signals the host by writing a 32-bit VMM_GUEST_EXIT_* code to port
 * VMM_GUEST_PORT; arguments and results travel through the call page. One such exit ends
 * every call, so a call costs one VM exit plus the host calls the function makes.
 */
#ifndef LIBVMM_GUEST_ABI_H
#define LIBVMM_GUEST_ABI_H

#include <stdint.h>

#define VMM_GUEST_ABI_VERSION 1u
#define VMM_GUEST_LOAD_ADDR 0x100000u
#define VMM_GUEST_CALL_PAGE 0x2000u
#define VMM_GUEST_PORT 0xf4u /* the VM's exit port */

/* Exit codes (the value written to VMM_GUEST_PORT). */
#define VMM_GUEST_EXIT_DONE 0x5b0d0001u     /* init finished, or a call returned */
#define VMM_GUEST_EXIT_HOST_CALL 0x5b0d0002u /* host_call.* filled; re-entry = answered */
#define VMM_GUEST_EXIT_ABORT 0x5b0d0003u    /* vmm_guest_abort: message at abort_msg */

#define VMM_GUEST_MAX_ARGS 6u
#define VMM_GUEST_MAX_BUFS 8u
#define VMM_GUEST_MAX_NAME 64u   /* longest host function name, NUL included */
#define VMM_GUEST_MAX_ABORT 256u /* longest abort message the host reports */

/* Host functions with ids at or above this are the SDK's own. */
#define VMM_GUEST_HC_BUILTIN 0xffff0000u
#define VMM_GUEST_HC_WRITE 0xffff0001u   /* (ptr, len): guest output for the host's log */
#define VMM_GUEST_HC_BY_NAME 0xffff0002u /* call the host function named at host_call.name */

struct vmm_guest_buf {
	uint64_t addr; /* guest address in the I/O area */
	uint64_t len;  /* in: bytes; out: capacity */
};

/* An entry of the export table (section .vmm_exports, between __vmm_exports_start and
 * __vmm_exports_end): the function's name and address. */
struct vmm_guest_export {
	uint64_t name; /* guest address of a NUL-terminated name */
	uint64_t fn;   /* guest address of the function */
};

struct vmm_guest_call_page {
	uint32_t abi_version; /* host writes VMM_GUEST_ABI_VERSION before init */
	int32_t init_status;  /* guest: the init function's result */
	uint64_t heap_start;  /* host: free memory after the program ... */
	uint64_t heap_end;    /* ... up to the I/O area */

	/* host -> guest: the call */
	uint64_t fn;
	uint64_t args[VMM_GUEST_MAX_ARGS];
	uint32_t nr_in, nr_out;
	struct vmm_guest_buf in[VMM_GUEST_MAX_BUFS];
	struct vmm_guest_buf out[VMM_GUEST_MAX_BUFS];

	/* guest -> host: the result */
	uint64_t ret;
	uint64_t out_len[VMM_GUEST_MAX_BUFS]; /* bytes produced, at most out[i].len (the
	                                       * host sets them to 0 before the call) */

	/* guest <-> host: a host call in progress */
	struct {
		uint32_t id;
		uint32_t nargs;
		uint64_t name; /* VMM_GUEST_HC_BY_NAME: guest address of the name */
		uint64_t args[VMM_GUEST_MAX_ARGS];
		uint64_t ret;  /* host's answer */
	} host_call;

	uint64_t abort_msg; /* VMM_GUEST_EXIT_ABORT: guest address of a message (or 0) */
};

#endif
