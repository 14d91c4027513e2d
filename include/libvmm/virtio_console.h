/* libvmm: virtio-console (device id 3), one port (no multiport), with three back ends:
 *  - VMM_CONSOLE_FD: guest output is written to out_fd, input read from in_fd (either
 *    may be -1); the fds stay the caller's. Writes that would block are dropped beyond
 *    a bounded buffer (a slow terminal must not stall the guest or grow memory). The
 *    device writes through a descriptor of its own so the caller's open file description
 *    keeps its flags (sockets: send with MSG_DONTWAIT; pipes, FIFOs, terminals: reopened
 *    through /proc/self/fd with O_NONBLOCK); only a pty master, or a system without
 *    /proc, gets O_NONBLOCK set on the shared description. A write to a pipe without
 *    readers raises no SIGPIPE. The device must be the only reader of in_fd. Input the
 *    guest does not take stays in the fd (at most 64 KiB is read ahead).
 *  - VMM_CONSOLE_PTY: the device opens a pseudo-terminal in raw mode;
 *    vmm_virtio_console_pty_path names its slave side for a terminal program to open.
 *    The device keeps a slave fd open itself, so terminals may come and go.
 *  - VMM_CONSOLE_CALLBACK: output goes to output_fn on the loop thread; input comes from
 *    vmm_virtio_console_input.
 */
#ifndef LIBVMM_VIRTIO_CONSOLE_H
#define LIBVMM_VIRTIO_CONSOLE_H

#include <libvmm/sys/device.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum vmm_console_backend {
	VMM_CONSOLE_FD = 0,
	VMM_CONSOLE_PTY = 1,
	VMM_CONSOLE_CALLBACK = 2,
} vmm_console_backend;

/* Guest output for VMM_CONSOLE_CALLBACK, on the loop thread. */
typedef void (*vmm_console_output_fn)(void *ctx, const void *data, size_t len);

typedef struct vmm_virtio_console_opts {
	uint32_t size;                /* sizeof(vmm_virtio_console_opts) */
	vmm_console_backend backend;
	int in_fd, out_fd;            /* VMM_CONSOLE_FD */
	vmm_console_output_fn output; /* VMM_CONSOLE_CALLBACK */
	void *ctx;
	uint16_t cols, rows;          /* reported with VIRTIO_CONSOLE_F_SIZE if non-zero */
} vmm_virtio_console_opts;

#define VMM_VIRTIO_CONSOLE_OPTS_INIT { sizeof(vmm_virtio_console_opts), VMM_CONSOLE_FD, -1, -1, 0, 0, 0, 0 }

/* Returns 0, -EINVAL, -ENOMEM, or the errno of opening the pty. */
VMM_API int vmm_virtio_console_create(vmm_virtio_device **out, const vmm_virtio_console_opts *opts);

/* VMM_CONSOLE_CALLBACK: queues input for the guest (bounded buffer of 64 KiB) and
 * delivers what the guest's receive buffers take. Any thread, including from inside the
 * output callback; before or after attach. Returns the number of bytes accepted (may be
 * less than len when the buffer is full), or -EINVAL. */
VMM_API long vmm_virtio_console_input(vmm_virtio_device *dev, const void *data, size_t len);

/* VMM_CONSOLE_PTY: the slave path (e.g. "/dev/pts/3"), or NULL for other back ends. */
VMM_API const char *vmm_virtio_console_pty_path(const vmm_virtio_device *dev);

#ifdef __cplusplus
}
#endif
#endif
