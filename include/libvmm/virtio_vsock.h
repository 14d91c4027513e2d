/* libvmm: virtio-vsock (device id 19) in user space, with Unix-socket back ends in the
 * Firecracker convention:
 *  - guest -> host: a guest connection to host port P connects to the Unix socket
 *    "<uds_path>_<P>" (a host service listens there). If nothing listens there, the
 *    guest gets a reset (connection refused).
 *  - host -> guest: a host program connects to the Unix socket <uds_path> (the device
 *    listens there), writes "CONNECT <port>\n", gets "OK <local port>\n" once the
 *    guest accepts, then talks to the guest's listener on <port>. Bytes written right
 *    after the line wait until then. A malformed line (over 32 bytes, or not
 *    "CONNECT <decimal port>") or a refusal by the guest closes the socket. The device's
 *    side of such a connection uses a local port of 2^30 or above.
 * Stream sockets only (VIRTIO_VSOCK_F_STREAM semantics), with credit-based flow control:
 * the device advertises 256 KiB per connection and never sends the guest more than
 * the guest's credit; host -> guest data is read from the host socket only as credit
 * and rx buffers allow, so it is never buffered in the device. A guest that sends
 * beyond its credit, or malformed packets on a connection, has the connection reset;
 * malformed packets get a reset or are dropped, never more.
 * Closing: host EOF becomes a SHUTDOWN to the guest; the guest's SHUTDOWN of both
 * directions is answered, once every byte reached the host socket, with a reset that
 * closes the host socket. A guest reset closes the host socket at once.
 *
 * The listening socket is created by vmm_virtio_vsock_create (a stale socket at the
 * path is replaced, anything else there is an error) and removed when the device is
 * destroyed. Connections are accepted only while the guest driver is active; a device
 * reset closes every connection.
 * Memory: at most max_connections x 256 KiB of guest -> host data waiting for slow host
 * sockets, allocated only while a host socket lags behind.
 */
#ifndef LIBVMM_VIRTIO_VSOCK_H
#define LIBVMM_VIRTIO_VSOCK_H

#include <libvmm/sys/device.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vmm_virtio_vsock_opts {
	uint32_t size;        /* sizeof(vmm_virtio_vsock_opts) */
	uint64_t guest_cid;   /* 3 .. 2^32 - 2 */
	const char *uds_path; /* base path of the host-side Unix sockets (copied); at most
	                       * 96 bytes so "<uds_path>_<port>" fits a socket address */
	uint32_t max_connections; /* open connections in both directions, including host
	                           * clients still in the handshake; 0 = 1024, max 65536 */
} vmm_virtio_vsock_opts;

#define VMM_VIRTIO_VSOCK_OPTS_INIT { sizeof(vmm_virtio_vsock_opts), 0, 0, 0 }

/* Creates the device and its listening socket. Returns 0, -EINVAL (bad CID, limit or
 * path), -EEXIST (something other than a socket is at uds_path), -ENOMEM, or the errno
 * of creating the listening socket. */
VMM_API int vmm_virtio_vsock_create(vmm_virtio_device **out, const vmm_virtio_vsock_opts *opts);

#ifdef __cplusplus
}
#endif
#endif
