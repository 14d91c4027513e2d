/* libvmm device-author API: write a virtio device in one file.
 *
 * A device is a vmm_virtio_device_ops table plus an opaque context. A transport (today
 * virtio-mmio, vmm_virtio_mmio_attach) owns feature negotiation, the status register,
 * the queues' registers and interrupts; the device sees its queues only after the driver
 * set DRIVER_OK (activate), and is told when a queue is notified.
 *
 * Threading: the transport serialises every callback of one device with a per-device
 * lock: register accesses arrive on vCPU threads, queue notifications and the device's
 * own fds (vmm_virtio_dev_watch) on the loop thread, and never two at once. Device code
 * therefore needs no locking of its own, unless the application calls into it from
 * other threads (device-specific APIs take the lock with vmm_virtio_dev_lock).
 */
#ifndef LIBVMM_SYS_DEVICE_H
#define LIBVMM_SYS_DEVICE_H

#include <stdbool.h>
#include <libvmm/common.h>
#include <libvmm/loop.h>
#include <libvmm/sys/virtq.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The transport-side handle of a device, passed to its callbacks. */
typedef struct vmm_virtio_dev vmm_virtio_dev;
/* A device not yet attached to a transport (what vmm_virtio_*_create return). */
typedef struct vmm_virtio_device vmm_virtio_device;

#define VMM_VIRTIO_MAX_QUEUES 64

typedef struct vmm_virtio_device_ops {
	uint32_t size;            /* sizeof(vmm_virtio_device_ops) */
	const char *name;         /* for messages, e.g. "virtio-blk" */
	uint32_t device_id;       /* VIRTIO_ID_*: 1 net, 2 block, 3 console, 4 rng,
	                           * 5 balloon, 19 vsock, ... */
	uint16_t num_queues;      /* 1 .. VMM_VIRTIO_MAX_QUEUES */
	uint16_t queue_size_max;  /* power of two <= VMM_VIRTQ_MAX_SIZE */
	/* Device feature bits (the transport adds VIRTIO_F_VERSION_1 and offers
	 * VIRTIO_F_RING_INDIRECT_DESC and VIRTIO_F_RING_EVENT_IDX itself). */
	uint64_t features;
	uint32_t config_size;     /* bytes of device config space */

	/* Config space access: offset + len <= config_size (checked by the transport),
	 * len 1, 2, 4 or 8. NULL config_write: writes are ignored. */
	void (*config_read)(void *ctx, uint32_t offset, void *data, uint32_t len);
	void (*config_write)(void *ctx, uint32_t offset, const void *data, uint32_t len);
	/* The driver set DRIVER_OK with `features` accepted. Queues are ready (or unused).
	 * Return 0, or a negative errno to refuse (the device then needs a reset). */
	int (*activate)(void *ctx, vmm_virtio_dev *dev, uint64_t features);
	/* Queue `queue` was notified (or a watched fd woke it up): process what is there,
	 * with bounded work per call. Called only between activate and reset. */
	void (*notify)(void *ctx, vmm_virtio_dev *dev, uint16_t queue);
	/* The driver reset the device (or it is being detached): forget all in-flight
	 * state; queues are reset by the transport. May be NULL. */
	void (*reset)(void *ctx, vmm_virtio_dev *dev);
	/* Frees ctx and the back ends (called when the transport is destroyed). */
	void (*destroy)(void *ctx);

	/* ---- optional, for snapshots (vmm_virtio_mmio_save_state/_load_state); added
	 * after the fields above: a device built against an older header (smaller
	 * ops.size) gets NULL for both. A device without state of its own beyond its
	 * queues and config leaves them NULL; a device whose config or back end matters
	 * after a restore must provide both. Called with the device lock held, while the
	 * VM and loop are stopped. ---- */

	/* Writes the device's state into buf (cap bytes) and its length into *len; with
	 * buf NULL (cap 0) only sets *len. The length must not change between a sizing
	 * call and the call that follows it. Return 0 or a negative errno (-ENOSPC when
	 * cap is too small). */
	int (*save_state)(void *ctx, vmm_virtio_dev *dev, void *buf, size_t cap, size_t *len);
	/* Loads what save_state wrote (untrusted bytes: validate everything, and change
	 * nothing on failure). Called after the transport state was loaded: when the
	 * saved device was active, activate has just been called with the saved features
	 * and the queues are enabled (the in-flight chains will come back from
	 * vmm_virtq_pop). len may be 0 when the blob carried no device state. Return 0,
	 * or -EINVAL with a message (vmm_err is for the library; a device may return
	 * -EINVAL and let the transport report it). */
	int (*load_state)(void *ctx, vmm_virtio_dev *dev, const void *buf, size_t len);
} vmm_virtio_device_ops;

#define VMM_VIRTIO_DEVICE_OPS_INIT { sizeof(vmm_virtio_device_ops), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }

/* Wraps ops (copied) and ctx into a device a transport can attach. Returns 0, -EINVAL
 * (bad queue counts or sizes, missing activate/notify/destroy, only one of
 * save_state/load_state), -ENOMEM. On failure ctx is not destroyed. */
VMM_API int vmm_virtio_device_create(vmm_virtio_device **out, const vmm_virtio_device_ops *ops, void *ctx);
/* Destroys a device that was never attached (calls ops->destroy). NULL is a no-op. */
VMM_API void vmm_virtio_device_destroy(vmm_virtio_device *dev);
/* The device's context and ops (for device-specific APIs to check what they got). */
VMM_API void *vmm_virtio_device_ctx(const vmm_virtio_device *dev);
VMM_API const vmm_virtio_device_ops *vmm_virtio_device_get_ops(const vmm_virtio_device *dev);
/* The transport handle once attached, else NULL. */
VMM_API vmm_virtio_dev *vmm_virtio_device_dev(const vmm_virtio_device *dev);

/* ---- calls for device code (inside callbacks, or with vmm_virtio_dev_lock held) ---- */

VMM_API vmm_virtq *vmm_virtio_dev_queue(vmm_virtio_dev *dev, uint16_t index);
VMM_API vmm_mem *vmm_virtio_dev_mem(vmm_virtio_dev *dev);
VMM_API vmm_loop *vmm_virtio_dev_loop(vmm_virtio_dev *dev);
/* The features the driver accepted (0 before activation). */
VMM_API uint64_t vmm_virtio_dev_features(const vmm_virtio_dev *dev);

/* Pushes are done; raise the used-buffer interrupt for `queue` unless the driver
 * suppressed it. Returns 0 or a negative errno. */
VMM_API int vmm_virtio_dev_interrupt(vmm_virtio_dev *dev, uint16_t queue);
/* The config space changed: bump the generation and raise a config interrupt (once the
 * driver has set DRIVER_OK; before that it reads the generation when it starts). */
VMM_API void vmm_virtio_dev_config_changed(vmm_virtio_dev *dev);
/* The driver broke the rules (e.g. vmm_virtq_pop returned -EIO): set
 * DEVICE_NEEDS_RESET, raise a config interrupt, stop calling notify until reset. `why` is
 * kept for vmm_virtio_mmio_error. */
VMM_API void vmm_virtio_dev_fail(vmm_virtio_dev *dev, const char *why);

/* Watches a back-end fd on the device's loop; fn runs with the device lock held, and
 * only while the device is active (events before activate, after reset or after
 * vmm_virtio_dev_fail are left pending). A watch survives a reset: it is paused and
 * resumes at the next activation. Unwatched automatically on detach. Returns 0, -EEXIST
 * (fd already watched), -EINVAL, -ENOMEM, or an epoll errno. */
VMM_API int vmm_virtio_dev_watch(vmm_virtio_dev *dev, int fd, uint32_t events, vmm_loop_fn fn, void *ctx);
VMM_API int vmm_virtio_dev_unwatch(vmm_virtio_dev *dev, int fd);
VMM_API int vmm_virtio_dev_watch_modify(vmm_virtio_dev *dev, int fd, uint32_t events);

/* Calls notify(queue) again from the loop soon (a device that stopped after its work
 * budget uses this to continue without starving other devices). */
VMM_API void vmm_virtio_dev_reschedule(vmm_virtio_dev *dev, uint16_t queue);

/* The per-device lock, for device-specific APIs called from application threads. */
VMM_API void vmm_virtio_dev_lock(vmm_virtio_dev *dev);
VMM_API void vmm_virtio_dev_unlock(vmm_virtio_dev *dev);

#ifdef __cplusplus
}
#endif
#endif
