/* The TAP back end of virtio-net: a /dev/net/tun interface in TAP mode (Ethernet frames)
 * without packet information and without the kernel's virtio-net header (IFF_VNET_HDR):
 * we offer no offloads, so the device adds and strips the header itself and the TAP
 * carries plain frames. The fd is non-blocking; the loop tells us when it is readable.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/if.h>
#include <linux/if_tun.h>

#include "net_internal.h"

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

int vmm_net_tap_open(const char *name, int *fd_out)
{
	struct ifreq ifr;
	int fd, r;

	*fd_out = -1;
	memset(&ifr, 0, sizeof ifr);
	if (name) {
		size_t len = strlen(name);
		if (len >= IFNAMSIZ)
			return vmm_err(-EINVAL, "virtio-net: TAP name \"%s\" is longer than %d characters",
				       name, IFNAMSIZ - 1);
		memcpy(ifr.ifr_name, name, len);
	}
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;

	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return vmm_err(-errno, "virtio-net: cannot open /dev/net/tun: %s", strerror(errno));
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		r = -errno;
		close(fd);
		return vmm_err(r, "virtio-net: TUNSETIFF \"%s\": %s%s", name ? name : "", strerror(-r),
			       r == -EPERM ? " (needs CAP_NET_ADMIN)" : "");
	}
	*fd_out = fd;
	return 0;
}

int vmm_net_tap_adopt(int fd, int *fd_out)
{
	struct ifreq ifr;
	int dup_fd, r;

	*fd_out = -1;
	memset(&ifr, 0, sizeof ifr);
	if (ioctl(fd, TUNGETIFF, &ifr) < 0)
		return vmm_err(-EINVAL, "virtio-net: tap_fd %d is not an attached TAP: %s", fd, strerror(errno));
	/* IFF_NO_PI cannot be checked: TUNGETIFF reports IFF_NOFILTER, the same bit, for
	 * every queue without a socket filter. It is the caller's promise. */
	if ((ifr.ifr_flags & (IFF_TAP | IFF_TUN)) != IFF_TAP || (ifr.ifr_flags & IFF_VNET_HDR))
		return vmm_err(-EINVAL, "virtio-net: tap_fd %d must be IFF_TAP (not IFF_TUN) without "
			       "IFF_VNET_HDR (flags %#x)", fd, (unsigned)(uint16_t)ifr.ifr_flags);
	dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (dup_fd < 0)
		return vmm_err(-errno, "virtio-net: dup of tap_fd %d: %s", fd, strerror(errno));
	/* O_NONBLOCK belongs to the open file description, shared with the caller's fd. */
	r = set_nonblock(dup_fd);
	if (r < 0) {
		close(dup_fd);
		return vmm_err(r, "virtio-net: tap_fd %d: cannot make it non-blocking", fd);
	}
	*fd_out = dup_fd;
	return 0;
}
