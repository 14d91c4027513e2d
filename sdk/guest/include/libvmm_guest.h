/* libvmm guest SDK: write functions that a host program calls inside a libvmm sandbox
 * (include/libvmm/sandbox.h on the host side).
 *
 * A guest program is a freestanding static ELF (no libc) built with the SDK's runtime
 * and linker script, e.g. with the CMake helper libvmm_add_guest() (sdk/guest/
 * libvmm_guest.cmake). It
 *   - exports functions by name:
 *         uint64_t add(uint64_t a, uint64_t b) { return a + b; }
 *         VMM_GUEST_EXPORT(add);
 *     An exported function takes up to 6 integer or pointer arguments and returns an
 *     integer (or nothing); the host passes the arguments of vmm_sandbox_call.
 *   - may have one init function, run once before the host takes its snapshot (so work
 *     done there - tables, parsed configuration - is free for every call):
 *         static int setup(void) { ...; return 0; }   (non-zero fails sandbox creation)
 *         VMM_GUEST_INIT(setup);
 *   - reads the call's input buffers and writes its output buffers in place
 *     (vmm_guest_in, vmm_guest_out, vmm_guest_set_out_len);
 *   - calls functions the host registered (vmm_guest_host_call by id or by name).
 * Global and static variables keep their init-time values at the start of every call
 * when the host resets the sandbox after each call (the default).
 *
 * The program runs at CPL 3 (user mode) by default, single-threaded, without
 * interrupts. A CPU exception (bad pointer, division by zero, ud2) ends the call with an
 * error on the host, which resets the sandbox. Floating point and SSE work at CPL 3.
 */
#ifndef LIBVMM_GUEST_H
#define LIBVMM_GUEST_H

#include <stddef.h>
#include <stdint.h>

#include "libvmm_guest_abi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Exports `fn` under its own name. Use at file scope, once per function. */
#define VMM_GUEST_EXPORT(fn)                                                                  \
	static const struct {                                                                 \
		const char *name;                                                             \
		void (*addr)(void);                                                           \
	} vmm_guest_export_##fn __attribute__((used, section(".vmm_exports"), aligned(16))) = \
		{ #fn, (void (*)(void))(fn) }

/* Makes `fn` (int fn(void)) the program's init function. At most one per program. */
#define VMM_GUEST_INIT(fn) int (*const vmm_guest_init_fn)(void) __attribute__((used)) = (fn)

/* Casts a pointer for a host-call argument. */
#define VMM_GUEST_PTR(p) ((uint64_t)(uintptr_t)(p))

/* ---- buffers of the current call ---- */

/* Input buffer i of the current call: its address (read-only by convention), and its
 * length in *len (may be NULL). NULL (and *len 0) if the call has no buffer i. */
const void *vmm_guest_in(unsigned i, size_t *len);

/* Output buffer i: its address and capacity in *cap (may be NULL); NULL if none. */
void *vmm_guest_out(unsigned i, size_t *cap);

/* Tells the host how many bytes of output buffer i are valid (0 unless set). Returns 0,
 * or -1 if there is no buffer i or len exceeds its capacity (nothing recorded). */
int vmm_guest_set_out_len(unsigned i, size_t len);

/* ---- host calls ---- */

/* Calls the host function registered with `id` with nargs (at most 6) arguments and
 * returns its result. Unknown ids end the whole call with -ENOSYS on the host. */
uint64_t vmm_guest_host_call_v(uint32_t id, const uint64_t *args, unsigned nargs);

/* The same, by the name the host registered the function under. */
uint64_t vmm_guest_host_call_name_v(const char *name, const uint64_t *args, unsigned nargs);

/* Convenience forms with 1 to 6 arguments (use 0 as a dummy for none; pointers through
 * VMM_GUEST_PTR): r = vmm_guest_host_call(7, VMM_GUEST_PTR(buf), len); */
#define vmm_guest_host_call(id, ...)                                                           \
	vmm_guest_host_call_v((id), (const uint64_t[]){ __VA_ARGS__ },                         \
			      (unsigned)(sizeof((const uint64_t[]){ __VA_ARGS__ }) / sizeof(uint64_t)))
#define vmm_guest_host_call_name(name, ...)                                                    \
	vmm_guest_host_call_name_v((name), (const uint64_t[]){ __VA_ARGS__ },                  \
				   (unsigned)(sizeof((const uint64_t[]){ __VA_ARGS__ }) / sizeof(uint64_t)))

/* ---- misc ---- */

/* Sends bytes to the host's output callback (vmm_sandbox_opts.output); dropped if the
 * host set none. One VM exit per call: buffer output. */
void vmm_guest_write(const void *data, size_t len);
void vmm_guest_print(const char *s);

/* Ends the current call (or init) at once with -ECANCELED on the host, whose error
 * message quotes `msg` (may be NULL; up to 255 bytes). */
__attribute__((noreturn)) void vmm_guest_abort(const char *msg);

/* The free memory between the program's end and the I/O area (for the program's own
 * allocator). Returns its start and stores its size in *size. */
void *vmm_guest_heap(size_t *size);

/* The compiler may emit calls to these even in freestanding code; the runtime has
 * simple versions (weak: a program may bring faster ones). */
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
void *memset(void *d, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);

#ifdef __cplusplus
}
#endif
#endif
