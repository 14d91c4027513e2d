/* libvmm: virtio-rng (entropy source, device id 4). Requests are filled with
 * getrandom(2) directly into the guest buffer: the device never allocates memory per
 * request, whatever the guest asks for, and fills at most max_bytes_per_request bytes of
 * one request (the rest of the buffer is left untouched and not reported as written). */
#ifndef LIBVMM_VIRTIO_RNG_H
#define LIBVMM_VIRTIO_RNG_H

#include <libvmm/sys/device.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vmm_virtio_rng_opts {
	uint32_t size;                  /* sizeof(vmm_virtio_rng_opts) */
	uint32_t max_bytes_per_request; /* 0 = 64 KiB */
} vmm_virtio_rng_opts;

#define VMM_VIRTIO_RNG_OPTS_INIT { sizeof(vmm_virtio_rng_opts), 0 }

/* opts may be NULL. Returns 0, -EINVAL, -ENOMEM. */
VMM_API int vmm_virtio_rng_create(vmm_virtio_device **out, const vmm_virtio_rng_opts *opts);

#ifdef __cplusplus
}
#endif
#endif
