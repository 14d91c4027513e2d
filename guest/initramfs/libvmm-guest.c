/*
 * libvmm-guest: the few things the test initramfs needs that busybox cannot do.
 * Built static (gcc -static) by scripts/build-initramfs.sh; runs inside the guest.
 *
 *   libvmm-guest outb PORT VALUE         write one byte to an I/O port: through /dev/port
 *                                        (kernel-side OUT, ring 0) if the kernel has it,
 *                                        else ioperm() + OUT from user space. Used to
 *                                        hand init's exit code to the VMM's exit port.
 *   libvmm-guest vsock CID PORT MESSAGE  connect a vsock stream to CID:PORT, send
 *                                        MESSAGE and a newline, shut down the sending
 *                                        side, print everything received until EOF.
 *   libvmm-guest udp IPV4 PORT MESSAGE   send MESSAGE as one datagram, print the first
 *                                        datagram that comes back within 5 s.
 *
 * Exit status 0 on success, 1 on failure (with a message on stderr).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/socket.h>
#include <unistd.h>

static int fail(const char *what)
{
	fprintf(stderr, "libvmm-guest: %s: %s\n", what, strerror(errno));
	return 1;
}

static int number(const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(s, &end, 0);
	if (errno || end == s || *end || *out > max) {
		fprintf(stderr, "libvmm-guest: bad number '%s'\n", s);
		return -1;
	}
	return 0;
}

static int cmd_outb(const char *port_s, const char *value_s)
{
	unsigned long port, value;
	unsigned char byte;
	int fd;

	if (number(port_s, 0xffff, &port) || number(value_s, 0xff, &value))
		return 1;
	byte = (unsigned char)value;
	fd = open("/dev/port", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = pwrite(fd, &byte, 1, (off_t)port);

		close(fd);
		if (n == 1)
			return 0;
	}
	/* No /dev/port (Debian's kernels leave it out): the TSS I/O bitmap instead. */
	if (ioperm(port, 1, 1) != 0)
		return fail("ioperm");
	outb(byte, (unsigned short)port);
	return 0;
}

/* Copies what the peer sends to stdout until EOF, or until one datagram if `once`. */
static int relay_reply(int fd, int once)
{
	char buf[4096];
	struct pollfd p = { .fd = fd, .events = POLLIN };

	for (;;) {
		int r = poll(&p, 1, 5000);
		ssize_t n;

		if (r < 0)
			return fail("poll");
		if (r == 0) {
			fprintf(stderr, "libvmm-guest: no reply within 5 s\n");
			return 1;
		}
		n = read(fd, buf, sizeof buf);
		if (n < 0)
			return fail("read");
		if (n == 0)
			return 0;
		if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
			return fail("stdout");
		if (once)
			return 0;
	}
}

static int send_all(int fd, const char *msg, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, msg, len);

		if (n < 0)
			return fail("write");
		msg += n;
		len -= (size_t)n;
	}
	return 0;
}

static int cmd_vsock(const char *cid_s, const char *port_s, const char *msg)
{
	unsigned long cid, port;
	struct sockaddr_vm sa = { .svm_family = AF_VSOCK };
	int fd, rc;

	if (number(cid_s, 0xffffffffUL, &cid) || number(port_s, 0xffffffffUL, &port))
		return 1;
	sa.svm_cid = (unsigned int)cid;
	sa.svm_port = (unsigned int)port;
	fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail("socket(AF_VSOCK)");
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		rc = fail("vsock connect");
	} else if (send_all(fd, msg, strlen(msg)) || send_all(fd, "\n", 1)) {
		rc = 1;
	} else {
		shutdown(fd, SHUT_WR);
		rc = relay_reply(fd, 0);
	}
	close(fd);
	return rc;
}

static int cmd_udp(const char *ip_s, const char *port_s, const char *msg)
{
	unsigned long port;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int fd, rc;

	if (number(port_s, 0xffff, &port))
		return 1;
	if (inet_pton(AF_INET, ip_s, &sa.sin_addr) != 1) {
		fprintf(stderr, "libvmm-guest: bad IPv4 address '%s'\n", ip_s);
		return 1;
	}
	sa.sin_port = htons((unsigned short)port);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail("socket(AF_INET)");
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
		rc = fail("udp connect");
	else
		rc = send_all(fd, msg, strlen(msg)) ? 1 : relay_reply(fd, 1);
	close(fd);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "outb") == 0 && argv[3])
		return cmd_outb(argv[2], argv[3]);
	if (argc == 5 && strcmp(argv[1], "vsock") == 0)
		return cmd_vsock(argv[2], argv[3], argv[4]);
	if (argc == 5 && strcmp(argv[1], "udp") == 0)
		return cmd_udp(argv[2], argv[3], argv[4]);
	fprintf(stderr, "usage: libvmm-guest outb PORT VALUE | vsock CID PORT MESSAGE | "
			"udp IPV4 PORT MESSAGE\n");
	return 2;
}
