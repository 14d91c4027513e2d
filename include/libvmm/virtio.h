/* libvmm: attaching virtio devices to a VM through the virtio-mmio transport (virtio
 * 1.2, section 4.2; version 2 registers, modern devices only).
 *
 * A transport occupies VMM_VIRTIO_MMIO_SIZE bytes of MMIO at `base` and one interrupt
 * line `gsi`. Doorbells (QueueNotify) are ioeventfds and interrupts irqfds when the VM's
 * irqchip allows (kernel irqchip), so device I/O runs on the loop thread without
 * involving vCPU threads; with the split irqchip interrupts go through vmm_irq_set_line.
 *
 * Usage:
 *     vmm_virtio_device *rng;
 *     vmm_virtio_rng_create(&rng, NULL);
 *     vmm_virtio_mmio_opts mo = VMM_VIRTIO_MMIO_OPTS_INIT;
 *     mo.base = 0xd0000000; mo.gsi = 5;
 *     vmm_virtio_mmio *t;
 *     vmm_virtio_mmio_attach(&t, vm, loop, &mo, rng);   // t owns rng from here on
 *
 * The registers identify the device with vendor id 0x4d4d564c ("LVMM"). A 32-bit write
 * of a queue index to QueueNotify is taken by its ioeventfd; anything else written there
 * exits to user space like any register write (out-of-range indexes and other access
 * sizes are ignored). Queue registers are locked once a queue is ready and after
 * DRIVER_OK; a ring outside RAM or a device refusing activation sets
 * DEVICE_NEEDS_RESET at DRIVER_OK.
 *
 * Threading: attach and destroy while the VM's vCPUs and the loop are not running.
 * The status and stats calls may be made from any thread. Saving and loading the
 * device's state for snapshots: see vmm_virtio_mmio_save_state below.
 */
#ifndef LIBVMM_VIRTIO_H
#define LIBVMM_VIRTIO_H

#include <libvmm/common.h>
#include <libvmm/loop.h>
#include <libvmm/sys/device.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vmm_virtio_mmio vmm_virtio_mmio;

#define VMM_VIRTIO_MMIO_SIZE 0x1000u

typedef struct vmm_virtio_mmio_opts {
	uint32_t size; /* sizeof(vmm_virtio_mmio_opts) */
	uint64_t base; /* MMIO base, 4 KiB aligned, not overlapping RAM or another device */
	uint32_t gsi;  /* interrupt line (an IOAPIC pin, 0-23) */
} vmm_virtio_mmio_opts;

#define VMM_VIRTIO_MMIO_OPTS_INIT { sizeof(vmm_virtio_mmio_opts), 0, 0 }

/* Attaches `dev` to `vm` at opts->base. On success the transport owns dev (destroyed
 * with the transport); on failure dev stays the caller's. Returns 0, -EINVAL, -EEXIST
 * (MMIO range taken), -ENOMEM, or the errno of ioeventfd/irqfd setup. */
VMM_API int vmm_virtio_mmio_attach(vmm_virtio_mmio **out, vmm_vm *vm, vmm_loop *loop,
				   const vmm_virtio_mmio_opts *opts, vmm_virtio_device *dev);

/* Detaches and destroys the transport and its device. NULL is a no-op. */
VMM_API void vmm_virtio_mmio_destroy(vmm_virtio_mmio *t);

/* The attached device. */
VMM_API vmm_virtio_device *vmm_virtio_mmio_device(const vmm_virtio_mmio *t);

/* The device status register (VIRTIO_CONFIG_S_* bits: ACKNOWLEDGE 1, DRIVER 2,
 * DRIVER_OK 4, FEATURES_OK 8, DEVICE_NEEDS_RESET 64, FAILED 128). Any thread. */
VMM_API uint32_t vmm_virtio_mmio_status(const vmm_virtio_mmio *t);

/* Why the device entered DEVICE_NEEDS_RESET (empty if it did not). Any thread; the
 * string is copied into buf. */
VMM_API const char *vmm_virtio_mmio_error(const vmm_virtio_mmio *t, char *buf, size_t n);

/* Writes the Linux kernel command-line fragment describing the device,
 * "virtio_mmio.device=4K@0xd0000000:5". Returns the length (like snprintf). */
VMM_API int vmm_virtio_mmio_cmdline(const vmm_virtio_mmio *t, char *buf, size_t n);

/* Counters for benchmarks and tests (monotonic since attach). */
typedef struct vmm_virtio_mmio_stats {
	uint64_t notifies;   /* queue notifications received */
	uint64_t interrupts; /* interrupts raised */
} vmm_virtio_mmio_stats;
VMM_API void vmm_virtio_mmio_get_stats(const vmm_virtio_mmio *t, vmm_virtio_mmio_stats *out);

/* ---- device state for snapshots ----
 *
 * vmm_virtio_mmio_save_state serializes the transport (status, features offered and
 * accepted, feature and queue selectors, each queue's size, ready flag and ring
 * addresses, interrupt status, config generation, DEVICE_NEEDS_RESET and its reason),
 * every enabled virtqueue's progress (last avail index, used index, event-index and
 * notification bookkeeping, the heads in flight in the order they were popped) and the
 * device's own state (vmm_virtio_device_ops.save_state, when the device has one) into a
 * self-describing, versioned blob ("LVDS" magic, format version, device id, queue count,
 * section lengths, CRC-32C; layout in lib/virtio/mmio_state.c). Guest memory (the rings
 * themselves) is not in the blob: it is the VM snapshot's business.
 *
 * In-flight requests: chains popped and not yet pushed (a network device holds receive
 * buffers this way while a frame is half delivered, balloon its statistics buffer,
 * virtio-blk a request its rate limit holds back) are saved by head. After a load the
 * queue hands them to the device again, oldest first, from vmm_virtq_pop before anything
 * new in the avail ring (their descriptors are read and checked afresh), so the device
 * processes them again from the start: a receive buffer is simply filled anew; a
 * request that was in flight is performed again (a block write rewrites the same data,
 * a packet may be sent twice). The built-in devices finish console, rng, block and
 * transmit requests before their callbacks return, so a stopped device has at most
 * such held buffers in flight.
 *
 * What the built-in devices keep (their save_state/load_state):
 *  - virtio-blk: the disk's size and writability, which must match the new disk
 *    (-EINVAL otherwise); the rate limit starts afresh.
 *  - virtio-console: the window size the driver read, input not yet delivered to the
 *    guest (it replaces whatever input the device held before the load) and output the
 *    old fd had not taken (written to the new back end).
 *  - virtio-net: the MAC. A device created with a MAC of the application's (a clone's
 *    identity) keeps it; one with a random MAC takes the saved one. Frames waiting in
 *    the receive backlog are dropped (a NIC may drop frames).
 *  - virtio-vsock: connections do not survive (their host ends belonged to the saved
 *    device). After a load the device sends the driver VIRTIO_VSOCK_EVENT_TRANSPORT_RESET
 *    (virtio 1.2, 5.10.6.6; as soon as an event buffer is there), upon which the guest
 *    resets every socket and reads the guest CID again: the new device's own CID.
 *  - virtio-balloon: target, actual size, counters and the guest's last statistics.
 *  - virtio-rng: nothing (no state of its own).
 *
 * Quiescence and threads: both calls take the device lock themselves (do not hold
 * vmm_virtio_dev_lock around them: it is not recursive), so they are safe against the
 * loop and vCPU threads. For the state to be consistent with a VM snapshot, though,
 * nothing may move the device between the VM's save and the device's: the VM's vCPUs
 * are out of vmm_vcpu_run (as vmm_snapshot_save requires) and the transport's loop is
 * not dispatching (vmm_loop_run has returned, or the loop is driven by this thread).
 * Likewise load before the restored VM's vCPUs run. A save changes nothing: the VM may
 * continue afterwards.
 */

/* Writes the state of `t` into buf (cap bytes) and its length into *len. buf NULL or
 * cap 0: only *len is set (the size needed). Returns 0, -EINVAL (NULL t or len),
 * -ENOSPC (cap too small; *len says how much is needed), -ENOMEM, or the device's
 * save_state error. */
VMM_API int vmm_virtio_mmio_save_state(vmm_virtio_mmio *t, void *buf, size_t cap, size_t *len);

/* Loads a blob made by vmm_virtio_mmio_save_state into `t`, a transport of the same
 * device type and queue layout attached to the VM restored from the matching snapshot
 * (a new back end is fine: a clone's own TAP, its own vsock CID). The blob is untrusted
 * (it may come from a file): every field is checked against `t` and the VM's memory
 * map — magic, version, length, checksum, device id, queue count, config size, feature
 * bits (offered and accepted ones a subset of what `t` offers), status consistency,
 * queue sizes (powers of two <= the device's maximum), ring addresses (aligned, inside
 * guest RAM, the used ring writable), in-flight heads (< queue size, no duplicates, as
 * many as the indices say) — and a failure returns -EINVAL with a message, leaving `t`
 * as it was. Then `t` is reset (as if the driver wrote 0 to Status: nothing for a fresh
 * transport) and given the state; if the device's own load_state refuses its part,
 * -EINVAL is returned and `t` is left reset.
 *
 * On success the device is where the saved one was: if the driver had set DRIVER_OK
 * (and the device did not need a reset) the queues are enabled on the saved rings with
 * their progress and the device is activated as at DRIVER_OK (ops->activate with the
 * saved features; its watched fds armed; doorbells and the interrupt line are the
 * transport's ioeventfds and irqfd, registered at attach and independent of the
 * driver), then given its own state; every ready queue gets one notification on the
 * loop (a doorbell the guest rang just before the save went to the old transport), and
 * an interrupt still pending in the saved InterruptStatus is raised again. A device that
 * needed a reset comes back needing one, with its reason (vmm_virtio_mmio_error).
 * Returns 0, -EINVAL, -ENOMEM, or the device's activate error (the device then needs a
 * reset, as after a refused DRIVER_OK). The transport writes no guest memory; a
 * device's load_state may (vsock's event). */
VMM_API int vmm_virtio_mmio_load_state(vmm_virtio_mmio *t, const void *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
