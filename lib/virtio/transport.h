/* The transport-independent half of a virtio device (lib/virtio/device.c): feature
 * negotiation, the status state machine, queue configuration, interrupts status, the
 * device's watched fds and rescheduling. A concrete transport (mmio.c) embeds a
 * struct vmm_virtio_dev, decodes its registers into the vdev_* calls below, and supplies
 * two hooks: how a QueueNotify register write reaches the device, and how an interrupt
 * reaches the guest. The fuzz target drives the same code with stub hooks and no VM.
 *
 * Locking: every vdev_* call except vdev_init/vdev_teardown is made with dev->lock held.
 */
#ifndef LIBVMM_VIRTIO_TRANSPORT_H
#define LIBVMM_VIRTIO_TRANSPORT_H

#include <pthread.h>
#include <stdatomic.h>

#include "../internal.h"
#include <libvmm/sys/device.h>

struct vmm_virtio_device {
	vmm_virtio_device_ops ops; /* validated copy */
	void *ctx;
	vmm_virtio_dev *dev;       /* set once attached */
};

struct vmm_virtio_dev;

struct vdev_hooks {
	/* The driver wrote `queue` (< num_queues) to QueueNotify and no ioeventfd took it.
	 * Called with the lock held, on the vCPU thread. */
	void (*kick)(struct vmm_virtio_dev *dev, uint16_t queue);
	/* Deliver an interrupt (InterruptStatus already updated). Lock held; any thread. */
	void (*irq)(struct vmm_virtio_dev *dev);
};

/* One queue as the driver configures it. The register values are kept here and only
 * handed to the vmm_virtq when the driver sets QueueReady (size, addresses) and
 * DRIVER_OK (features, enable), so the virtq never sees half-written state. */
struct vdev_queue {
	struct vmm_virtio_dev *dev; /* back pointer: the doorbell callback's context */
	uint16_t index;
	vmm_virtq *vq;
	uint32_t num;               /* QueueNum as written */
	uint64_t desc, driver, device;
	bool ready;                 /* QueueReady */
	int kick_fd;                /* doorbell eventfd, -1 if none (owned by the transport) */
};

struct vdev_watch {
	int fd;
	uint32_t events;
	vmm_loop_fn fn;
	void *ctx;
	bool in_loop; /* registered with the loop (only while the device is active) */
};

#define VDEV_ERROR_MAX 256

struct vmm_virtio_dev {
	pthread_mutex_t lock;
	vmm_virtio_device *device;
	const vmm_virtio_device_ops *ops; /* &device->ops */
	void *ctx;
	vmm_mem *mem;
	vmm_loop *loop;                   /* may be NULL (fuzzing): no watches, no reschedule */
	const struct vdev_hooks *hooks;

	uint64_t offered;                 /* device features offered to the driver */
	uint64_t driver_features;         /* as written by the driver */
	uint64_t features;                /* accepted at FEATURES_OK */
	uint32_t dev_feat_sel, drv_feat_sel, queue_sel;
	_Atomic uint32_t status;          /* written under the lock, read from anywhere */
	_Atomic uint32_t isr;             /* InterruptStatus */
	uint32_t config_gen;

	bool active;    /* between a successful DRIVER_OK and reset: notify may be called */
	bool activated; /* ops->activate was called since the last reset (reset owed) */
	bool failed;    /* DEVICE_NEEDS_RESET */

	uint16_t nq;
	struct vdev_queue q[VMM_VIRTIO_MAX_QUEUES];

	struct vdev_watch *watches;       /* sorted by fd */
	size_t nwatch, capwatch;

	uint64_t resched_mask;            /* queues waiting for a rescheduled notify */
	int resched_fd;                   /* eventfd on the loop, -1 without a loop */

	pthread_mutex_t err_lock;         /* error[], readable while dev->lock is held elsewhere */
	char error[VDEV_ERROR_MAX];

	_Atomic uint64_t notifies, interrupts;
};

/* Sets up `dev` for `device` (queues, reschedule eventfd on `loop`). On failure nothing
 * is left to free. Does not take ownership of `device` (vdev_teardown does). */
VMM_HIDDEN int vdev_init(struct vmm_virtio_dev *dev, vmm_virtio_device *device, vmm_mem *mem,
			 vmm_loop *loop, const struct vdev_hooks *hooks);
/* Resets the device if it was activated, unregisters its fds from the loop, frees the
 * queues, then destroys the device (ops->destroy) when `destroy_device`. Lock not held;
 * nothing may call into dev concurrently. */
VMM_HIDDEN void vdev_teardown(struct vmm_virtio_dev *dev, bool destroy_device);

/* ---- driver-visible state, lock held ---- */
VMM_HIDDEN uint32_t vdev_device_features(struct vmm_virtio_dev *dev);  /* window dev_feat_sel */
VMM_HIDDEN void vdev_set_driver_features(struct vmm_virtio_dev *dev, uint32_t val);
VMM_HIDDEN void vdev_set_status(struct vmm_virtio_dev *dev, uint32_t val);
VMM_HIDDEN void vdev_reset(struct vmm_virtio_dev *dev);
/* The selected queue, or NULL when QueueSel is out of range. */
VMM_HIDDEN struct vdev_queue *vdev_sel_queue(struct vmm_virtio_dev *dev);
/* Whether the selected queue's registers may be written now. */
VMM_HIDDEN bool vdev_queue_writable(struct vmm_virtio_dev *dev, const struct vdev_queue *q);
VMM_HIDDEN void vdev_set_queue_ready(struct vmm_virtio_dev *dev, struct vdev_queue *q, bool ready);
VMM_HIDDEN void vdev_config_read(struct vmm_virtio_dev *dev, uint32_t off, void *data, uint32_t len);
VMM_HIDDEN void vdev_config_write(struct vmm_virtio_dev *dev, uint32_t off, const void *data, uint32_t len);
/* A notification of `queue` arrived (doorbell or register write): counts it, and calls
 * the device's notify if it is active, not failed, and the queue is ready. */
VMM_HIDDEN void vdev_notify(struct vmm_virtio_dev *dev, uint16_t queue);
/* Runs the notifications the device asked for with vmm_virtio_dev_reschedule (the
 * loop does this on its own; without a loop the caller does). */
VMM_HIDDEN void vdev_run_rescheduled(struct vmm_virtio_dev *dev);
/* Sets InterruptStatus bits and delivers an interrupt. */
VMM_HIDDEN void vdev_raise(struct vmm_virtio_dev *dev, uint32_t isr_bits);

/* ---- loading saved state (mmio_state.c), lock held, after vdev_reset ---- */
/* DEVICE_NEEDS_RESET with reason `why`, as vmm_virtio_dev_fail but without an
 * interrupt (the saved InterruptStatus says what the driver was told). */
VMM_HIDDEN void vdev_restore_failed(struct vmm_virtio_dev *dev, const char *why);
/* The saved driver had set DRIVER_OK: with the status, features and enabled queues
 * already in place, activates the device as DRIVER_OK does (its watched fds, then
 * ops->activate). Returns 0, or activate's error (the device then needs a reset). */
VMM_HIDDEN int vdev_restore_active(struct vmm_virtio_dev *dev);

#endif
