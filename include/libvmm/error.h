/* libvmm: error reporting.
 *
 * Every libvmm function that can fail returns 0 (or a non-negative count) on success
 * and a negative errno value on failure. The human-readable reason for the most recent
 * failure on the calling thread is kept in a per-thread buffer: vmm_last_error().
 */
#ifndef LIBVMM_ERROR_H
#define LIBVMM_ERROR_H

#include <libvmm/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A short description of a (negative or positive) errno value, e.g. vmm_strerror(-ENODEV)
 * is "no such device (is /dev/kvm present?)"; codes libvmm never returns give "unknown
 * error". Never NULL; the string is static. Any thread. */
VMM_API const char *vmm_strerror(int err);

/* The detail message of the last libvmm failure on the calling thread, e.g.
 * "ELF image: program header 2 extends past end of file". Empty string if none yet.
 * The buffer is thread-local and valid until the next libvmm call on this thread. */
VMM_API const char *vmm_last_error(void);

#ifdef __cplusplus
}
#endif
#endif
