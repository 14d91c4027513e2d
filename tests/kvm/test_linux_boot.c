/* Boots libvmm's minimal Linux guest kernel (scripts/build-guest-kernel.sh) with the test
 * initramfs (scripts/build-initramfs.sh, guest/initramfs/init) on 2 vCPUs with every
 * device, once, and checks both sides of every device:
 *   - virtio-blk: the init mounts the ext4 disk (a copy of scripts/build-rootfs.sh's),
 *     verifies a known file's checksum, writes a file with a nonce, syncs; after the VM
 *     is gone the host reads that file back from the image with debugfs;
 *   - virtio-net: eth0 comes up with our MAC, pings a fake peer and gets a UDP echo; the
 *     peer saw the ARP request, the echo request and the datagram;
 *   - virtio-vsock: a stream to a host Unix-socket service, request and reply checked on
 *     both ends;
 *   - virtio-rng: /dev/hwrng reads 16 bytes from virtio_rng, the device was notified;
 *   - virtio-console: a line written to /dev/hvc0 arrives in the host's callback;
 *   - SMP: nproc == 2 (the second vCPU started by the guest through INIT/SIPI);
 *   - the end: the init's failure count (0) arrives on a host port, then `poweroff -f`
 *     powers the machine off through the ACPI sleep register: a clean
 *     VMM_SYSTEM_EVENT_SHUTDOWN, no timeout, no vCPU error.
 * The boot runs once in the group set-up; each test below asserts one part of it.
 * Needs LIBVMM_LINUX_TESTS=ON (the kernel is built then); takes minutes on hosts whose
 * KVM interprets ring-0 guest code, under a second on bare-metal KVM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "linux_vm.h"

#define CPUS 2
#define MEM_MIB 128
#define VSOCK_CID 3
#define VSOCK_PORT 5000
#define UDP_PORT 7777
#define PEER_IP 0x0a000201u /* 10.0.2.1; the guest is 10.0.2.15/24 */

static const uint8_t peer_mac[6] = { 0x52, 0x54, 0x00, 0xaa, 0xbb, 0x01 };
static const char guest_mac[] = "52:54:00:12:34:56"; /* linux_vm.c's NIC */

/* The host end of the guest's vsock connection: accepts one connection on
 * "<uds>_<VSOCK_PORT>", reads the request line, answers "pong:<line>" and closes. */
struct vsock_service {
	int fd;
	pthread_t thread;
	char path[108];
	char request[256];
	bool answered;
};

struct boot {
	lvm *m;
	lvm_peer peer;
	struct vsock_service vs;
	char dir[32];
	char disk[64];
	char nonce[32];
	char known_sha[65];
	char guest_wrote[256]; /* /guest-wrote.txt read from the disk after the run */
	vmm_virtio_blk_stats blk;
	vmm_virtio_net_stats net;
	vmm_virtio_mmio_stats rng_stats, con_stats, vsock_stats;
	uint32_t blk_status, net_status, vsock_status, con_status, rng_status;
};

static void *vsock_service_main(void *arg)
{
	struct vsock_service *s = arg;
	struct pollfd p = { .fd = s->fd, .events = POLLIN };
	/* The guest connects minutes into the boot; the listening fd is shut down when the
	 * test ends, which wakes this poll. */
	if (poll(&p, 1, -1) <= 0 || !(p.revents & POLLIN))
		return NULL;
	int c = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		return NULL;
	size_t len = 0;
	while (len < sizeof s->request - 1 && !memchr(s->request, '\n', len)) {
		struct pollfd cp = { .fd = c, .events = POLLIN };
		if (poll(&cp, 1, 60000) <= 0)
			break;
		ssize_t n = read(c, s->request + len, sizeof s->request - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	s->request[len] = '\0';
	char *nl = strchr(s->request, '\n');
	if (nl) {
		*nl = '\0';
		char reply[300];
		int n = snprintf(reply, sizeof reply, "pong:%s\n", s->request);
		s->answered = write(c, reply, (size_t)n) == n;
	}
	close(c);
	return NULL;
}

static int vsock_service_start(struct vsock_service *s, const char *uds)
{
	if (snprintf(s->path, sizeof s->path, "%s_%u", uds, VSOCK_PORT) >= (int)sizeof s->path)
		return -ENAMETOOLONG;
	s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof a.sun_path, "%s", s->path);
	if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&a, sizeof a) || listen(s->fd, 1))
		return -errno;
	return -pthread_create(&s->thread, NULL, vsock_service_main, s);
}

static void vsock_service_stop(struct vsock_service *s)
{
	shutdown(s->fd, SHUT_RDWR);
	pthread_join(s->thread, NULL);
	close(s->fd);
	unlink(s->path);
}

static int copy_file(const char *from, const char *to)
{
	int in = open(from, O_RDONLY | O_CLOEXEC), out = -1, r = 0;
	char buf[1 << 16];
	ssize_t n;
	if (in < 0 || (out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
		r = -errno;
	while (r == 0 && (n = read(in, buf, sizeof buf)) != 0)
		if (n < 0 || write(out, buf, (size_t)n) != n)
			r = -EIO;
	if (in >= 0)
		close(in);
	if (out >= 0 && close(out))
		r = -errno;
	return r;
}

/* Reads a whole (small) text file into buf; returns 0 or -1. */
static int read_text(const char *path, char *buf, size_t n)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	size_t got = fread(buf, 1, n - 1, f);
	buf[got] = '\0';
	fclose(f);
	return 0;
}

/* /guest-wrote.txt from the ext4 image, through debugfs (no mount, no root needed). */
static void read_guest_file(struct boot *b)
{
	char cmd[512];
	snprintf(cmd, sizeof cmd,
		 "PATH=\"$PATH:/sbin:/usr/sbin\" debugfs -R 'cat /guest-wrote.txt' '%s' 2>/dev/null", b->disk);
	FILE *p = popen(cmd, "r");
	if (!p)
		return;
	size_t got = fread(b->guest_wrote, 1, sizeof b->guest_wrote - 1, p);
	b->guest_wrote[got] = '\0';
	pclose(p);
}

static void collect_stats(struct boot *b)
{
	lvm *m = b->m;
	if (m->blk.mmio) {
		vmm_virtio_blk_get_stats(m->blk.dev, &b->blk);
		b->blk_status = m->blk.status_at_done;
	}
	if (m->net.mmio) {
		vmm_virtio_net_get_stats(m->net.dev, &b->net);
		b->net_status = m->net.status_at_done;
	}
	if (m->vsock.mmio) {
		vmm_virtio_mmio_get_stats(m->vsock.mmio, &b->vsock_stats);
		b->vsock_status = m->vsock.status_at_done;
	}
	if (m->con.mmio) {
		vmm_virtio_mmio_get_stats(m->con.mmio, &b->con_stats);
		b->con_status = m->con.status_at_done;
	}
	if (m->rng.mmio) {
		vmm_virtio_mmio_get_stats(m->rng.mmio, &b->rng_stats);
		b->rng_status = m->rng.status_at_done;
	}
}

static struct boot boot;

static int boot_linux(void **state)
{
	struct boot *b = &boot;
	const char *gdir = getenv("LIBVMM_GUEST_DIR");
	if (!gdir)
		gdir = LINUX_GUEST_DIR;
	char kernel[512], initrd[512], disk_src[512], sha[512];
	snprintf(kernel, sizeof kernel, "%s/microvm/vmlinux", gdir);
	snprintf(initrd, sizeof initrd, "%s/initramfs-microvm.cpio", gdir);
	snprintf(disk_src, sizeof disk_src, "%s/rootfs.ext4", gdir);
	snprintf(sha, sizeof sha, "%s/rootfs.known.sha256", gdir);
	if (access(kernel, R_OK) || access(initrd, R_OK) || access(disk_src, R_OK) ||
	    read_text(sha, b->known_sha, sizeof b->known_sha) || strlen(b->known_sha) != 64) {
		fprintf(stderr, "test_linux_boot: guest files missing in %s (build target linux_guest)\n", gdir);
		return -1;
	}

	char uds[64];
	strcpy(b->dir, "/tmp/libvmm-linux-XXXXXX");
	if (!mkdtemp(b->dir) || snprintf(b->disk, sizeof b->disk, "%s/disk.ext4", b->dir) >= (int)sizeof b->disk ||
	    snprintf(uds, sizeof uds, "%s/vsock", b->dir) >= (int)sizeof uds)
		return -1;
	if (copy_file(disk_src, b->disk)) {
		fprintf(stderr, "test_linux_boot: copying %s failed\n", disk_src);
		return -1;
	}
	if (vsock_service_start(&b->vs, uds)) {
		fprintf(stderr, "test_linux_boot: vsock service on %s failed\n", b->vs.path);
		return -1;
	}
	lvm_peer_init(&b->peer, peer_mac, PEER_IP, UDP_PORT);
	snprintf(b->nonce, sizeof b->nonce, "n%lx-%d", (unsigned long)time(NULL), (int)getpid());

	char cmdline[512];
	int n = snprintf(cmdline, sizeof cmdline,
		 "libvmm.exit_port=%#x libvmm.nonce=%s libvmm.cpus=%u libvmm.vsock_port=%u "
		 "libvmm.ip=10.0.2.15/24 libvmm.peer=10.0.2.1 libvmm.udp_port=%u",
		 LVM_STATUS_PORT, b->nonce, CPUS, VSOCK_PORT, UDP_PORT);
	if (n < 0 || n >= (int)sizeof cmdline)
		return -1;
	lvm_opts o = {
		.kernel = kernel, .initrd = initrd, .disk = b->disk, .cpus = CPUS, .mem_mib = MEM_MIB,
		.cmdline = cmdline, .peer = &b->peer, .vsock_cid = VSOCK_CID, .vsock_uds = uds,
		.hvc = true, .rng = true, .timeout_s = 1200,
	};
	if (lvm_create(&b->m, &o))
		return -1;
	if (lvm_run(b->m))
		return -1;
	collect_stats(b);
	lvm *m = b->m;
	fprintf(stderr, "\ntest_linux_boot: ended: %s\n", m->end_detail);
	fprintf(stderr, "test_linux_boot: seconds from the first vCPU start: 'Run /init' %.1f, "
			"init's first line %.1f, power-off %.1f\n",
		m->t_run_init ? m->t_run_init - m->t_start : -1.0,
		m->t_init_start ? m->t_init_start - m->t_start : -1.0, m->t_end - m->t_start);
	/* Only after the VM (and its disk file) is gone. */
	vsock_service_stop(&b->vs);
	read_guest_file(b);
	*state = b;
	return 0;
}

static int cleanup(void **state)
{
	(void)state;
	struct boot *b = &boot;
	lvm_destroy(b->m);
	lvm_peer_fini(&b->peer);
	if (b->disk[0])
		unlink(b->disk);
	if (b->dir[0])
		rmdir(b->dir);
	return 0;
}

/* The console holds this line (as a substring of one line of output). */
static bool console_has(const char *fmt, ...)
{
	char want[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(want, sizeof want, fmt, ap);
	va_end(ap);
	return boot.m->console && strstr(boot.m->console, want);
}

#define assert_console(...)                                                                   \
	do {                                                                                  \
		if (!console_has(__VA_ARGS__)) {                                              \
			char w_[512];                                                         \
			snprintf(w_, sizeof w_, __VA_ARGS__);                                 \
			fail_msg("console output lacks \"%s\"", w_);                          \
		}                                                                             \
	} while (0)

#define VIRTIO_DRIVER_OK 4u
#define VIRTIO_NEEDS_RESET 64u
#define VIRTIO_FAILED 128u
static void assert_driver_ok(uint32_t status, const char *what)
{
	if ((status & VIRTIO_DRIVER_OK) == 0 || (status & (VIRTIO_NEEDS_RESET | VIRTIO_FAILED)))
		fail_msg("%s: device status %#x (want DRIVER_OK, no error)", what, status);
}

static void test_kernel_reached_init(void **state)
{
	(void)state;
	assert_console("Run /init as init process");
	assert_console("libvmm-init: start");
	/* The kernel found the machine through the ACPI tables. */
	assert_console("ACPI: Using ACPI (MADT) for SMP configuration information");
	assert_console("ttyS0 at I/O 0x3f8");
}

static void test_clean_poweroff(void **state)
{
	(void)state;
	lvm *m = boot.m;
	assert_false(m->timed_out);
	if (m->end_event != VMM_SYSTEM_EVENT_SHUTDOWN)
		fail_msg("the run ended with: %s (want an ACPI power-off)", m->end_detail);
	assert_console("libvmm-init: done failures=0");
	assert_int_equal(m->status_value, 0); /* the init's failure count, through /dev/port */
}

static void test_smp(void **state)
{
	(void)state;
	assert_console("smp: Brought up 1 node, %u CPUs", CPUS);
	assert_console("libvmm-init: nproc: ok %u", CPUS);
}

static void test_blk(void **state)
{
	(void)state;
	assert_console("virtio_blk virtio0: [vda]");
	assert_console("libvmm-init: mount: ok /dev/vda ext4");
	assert_console("libvmm-init: checksum: ok %s", boot.known_sha);
	assert_console("libvmm-init: write: ok");
	assert_driver_ok(boot.blk_status, "virtio-blk");
	assert_true(boot.blk.reads > 0);
	assert_true(boot.blk.bytes_read >= (1u << 20)); /* at least the 1 MiB known file */
	assert_true(boot.blk.writes > 0);
	assert_true(boot.blk.flushes > 0);
	assert_int_equal(boot.blk.errors, 0);
	char want[128];
	snprintf(want, sizeof want, "written by the libvmm test init: %s", boot.nonce);
	if (!strstr(boot.guest_wrote, want))
		fail_msg("/guest-wrote.txt on the disk holds \"%s\", want \"%s\"", boot.guest_wrote, want);
}

static void test_net(void **state)
{
	(void)state;
	assert_console("libvmm-init: eth0: ok up mac=%s", guest_mac);
	assert_console("libvmm-init: ping: ok 10.0.2.1");
	assert_console("libvmm-init: udp: ok reply: pong:libvmm-udp-ping");
	assert_driver_ok(boot.net_status, "virtio-net");
	lvm_peer *p = &boot.peer;
	assert_true(p->arp_replies >= 1);
	assert_true(p->icmp_echoes >= 1);
	assert_int_equal(p->udp_datagrams, 1);
	assert_string_equal(p->udp_payload, "libvmm-udp-ping");
	char mac[18];
	snprintf(mac, sizeof mac, "%02x:%02x:%02x:%02x:%02x:%02x", p->guest_mac[0], p->guest_mac[1],
		 p->guest_mac[2], p->guest_mac[3], p->guest_mac[4], p->guest_mac[5]);
	assert_string_equal(mac, guest_mac);
	assert_true(boot.net.tx_frames >= 3); /* ARP request, echo request, datagram */
	assert_true(boot.net.rx_frames >= 3);
	assert_int_equal(boot.net.tx_errors, 0);
}

static void test_vsock(void **state)
{
	(void)state;
	assert_console("NET: Registered PF_VSOCK protocol family");
	assert_console("libvmm-init: vsock: ok reply: pong:libvmm-vsock-ping");
	assert_driver_ok(boot.vsock_status, "virtio-vsock");
	assert_string_equal(boot.vs.request, "libvmm-vsock-ping");
	assert_true(boot.vs.answered);
	assert_true(boot.vsock_stats.notifies > 0);
	assert_true(boot.vsock_stats.interrupts > 0);
}

static void test_rng(void **state)
{
	(void)state;
	assert_console("libvmm-init: hwrng: ok virtio_rng.");
	assert_driver_ok(boot.rng_status, "virtio-rng");
	assert_true(boot.rng_stats.notifies > 0);
	assert_true(boot.rng_stats.interrupts > 0);
}

static void test_hvc(void **state)
{
	(void)state;
	assert_console("libvmm-init: hvc0: ok");
	assert_driver_ok(boot.con_status, "virtio-console");
	assert_non_null(boot.m->hvc);
	assert_non_null(strstr(boot.m->hvc, "libvmm-init: hello from hvc0"));
}

int main(void)
{
	if (access("/dev/kvm", R_OK | W_OK) != 0) {
		const char *req = getenv("LIBVMM_REQUIRE_KVM");
		fprintf(stderr, "test_linux_boot: no usable /dev/kvm\n");
		return req && strcmp(req, "1") == 0 ? 1 : 77;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kernel_reached_init),
		cmocka_unit_test(test_clean_poweroff),
		cmocka_unit_test(test_smp),
		cmocka_unit_test(test_blk),
		cmocka_unit_test(test_net),
		cmocka_unit_test(test_vsock),
		cmocka_unit_test(test_rng),
		cmocka_unit_test(test_hvc),
	};
	return cmocka_run_group_tests(tests, boot_linux, cleanup);
}
