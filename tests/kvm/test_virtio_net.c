/* virtio-net end to end (guest: tests/guests/vnet_guest.c).
 *
 * - callback back end: frames the guest sends reach the tx callback byte for byte (a
 *   header-only chain is counted as an error, not sent); frames injected with
 *   vmm_virtio_net_receive reach the guest through mergeable buffers smaller than the
 *   frames, with the right num_buffers; the MAC and link status are in config space.
 * - full receive queue (CVE-2020-16843): frames injected while the guest has no buffers
 *   wait in the backlog (the one beyond it is dropped and counted) and reach the guest
 *   as soon as it posts buffers, with nothing injected after that.
 * - a flood: another thread injects FLOOD_FRAMES frames as fast as the backlog takes them
 *   while the guest receives and reposts; every frame arrives once, in order, intact
 *   (regression test for a lost RX wake-up that stalled the device under this load).
 * - TAP back end inside a network namespace of its own: the host's stack sees the
 *   guest's frames and answers its ARP request, and a burst sent to the guest while it
 *   has two buffers gets through in order as it posts more.
 */
#include "harness/virtio_harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/if_ether.h>
#include <linux/if_tun.h>
#include <linux/if_packet.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>

#define TX_FRAMES 8
#define TAP_FRAMES 8
#define MRG_BUF 512u
#define HDR 12u

struct frame_result {
	uint32_t len;
	uint16_t num_buffers;
	uint16_t ethertype;
	uint64_t sum;
};

static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static const uint8_t host_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 };

static uint64_t checksum(const uint8_t *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

/* What the guest writes after the Ethernet header of its TX frame i. */
static uint8_t tx_byte(uint32_t i, uint32_t k) { return (uint8_t)(i * 37u + k * 11u + (k >> 8)); }

static void host_frame(uint8_t *f, size_t len, const uint8_t dst[6], uint16_t type, unsigned seed)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, host_mac, 6);
	f[12] = (uint8_t)(type >> 8);
	f[13] = (uint8_t)type;
	for (size_t k = 14; k < len; k++)
		f[k] = (uint8_t)(seed * 13u + k * 5u + (k >> 7));
}

/* ---- the tx callback: copies of what the guest sent ---- */

struct capture {
	pthread_mutex_t lock;
	unsigned n;
	size_t len[16];
	uint8_t *frame[16];
};

static void capture_tx(void *ctx, const void *frame, size_t len)
{
	struct capture *c = ctx;
	pthread_mutex_lock(&c->lock);
	if (c->n < 16) {
		c->frame[c->n] = malloc(len);
		if (c->frame[c->n])
			memcpy(c->frame[c->n], frame, len);
		c->len[c->n] = len;
	}
	c->n++;
	pthread_mutex_unlock(&c->lock);
}

static void capture_free(struct capture *c)
{
	for (unsigned i = 0; i < 16; i++) {
		free(c->frame[i]);
		c->frame[i] = NULL;
	}
	c->n = 0;
}

static void drop_tx(void *ctx, const void *frame, size_t len)
{
	(void)ctx;
	(void)frame;
	(void)len;
}

static vmm_virtio_net_stats stats_of(vmm_virtio_mmio *t)
{
	vmm_virtio_net_stats st;
	kt_check(vmm_virtio_net_get_stats(vmm_virtio_mmio_device(t), &st), "vmm_virtio_net_get_stats");
	return st;
}

static void check_healthy(vmm_virtio_mmio *t)
{
	char why[256];
	uint32_t st = vmm_virtio_mmio_status(t);
	if (!(st & VIRTIO_CONFIG_S_DRIVER_OK) || (st & VIRTIO_CONFIG_S_NEEDS_RESET))
		fail_msg("device status %#x: %s", st, vmm_virtio_mmio_error(t, why, sizeof why));
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* ---- callback back end ---- */

static void test_callback(void **state)
{
	static struct capture cap = { .lock = PTHREAD_MUTEX_INITIALIZER };
	kt_opts o = { .guest = "vnet_guest", .cpl = 3 };
	vt_env *e = vt_create(state, &o);
	vmm_virtio_net_opts no = VMM_VIRTIO_NET_OPTS_INIT;
	no.backend = VMM_NET_CALLBACK;
	no.tx = capture_tx;
	no.ctx = &cap;
	memcpy(no.mac, guest_mac, 6);
	vmm_virtio_device *dev;
	kt_check(vmm_virtio_net_create(&dev, &no), "vmm_virtio_net_create");
	vmm_virtio_mmio *t = vt_attach(e, 0, dev);

	/* TX, and config space. */
	capture_free(&cap);
	kt_set_arg(e->kt, 0, 1);
	kt_run_expect(e->kt, 0, 0x100);
	uint8_t mac[6];
	uint16_t status;
	kt_read(e->kt, kt_sym(e->kt, "cfg_mac"), mac, 6);
	kt_read(e->kt, kt_sym(e->kt, "cfg_status"), &status, 2);
	assert_memory_equal(mac, guest_mac, 6);
	assert_int_equal(status, VIRTIO_NET_S_LINK_UP);

	uint32_t tx_len[TX_FRAMES];
	kt_read(e->kt, kt_sym(e->kt, "tx_len"), tx_len, sizeof tx_len);
	pthread_mutex_lock(&cap.lock);
	unsigned got = cap.n;
	pthread_mutex_unlock(&cap.lock);
	assert_int_equal(got, TX_FRAMES); /* the header-only chain was not sent */
	uint64_t tx_bytes = 0;
	for (uint32_t i = 0; i < TX_FRAMES; i++) {
		const uint8_t *f = cap.frame[i];
		assert_non_null(f);
		assert_int_equal(cap.len[i], tx_len[i]);
		assert_memory_equal(f, "\xff\xff\xff\xff\xff\xff", 6);
		assert_memory_equal(f + 6, guest_mac, 6);
		assert_int_equal(f[12] << 8 | f[13], 0x88b5);
		for (uint32_t k = 14; k < tx_len[i]; k++)
			if (f[k] != tx_byte(i, k))
				fail_msg("TX frame %u byte %u: %#x, expected %#x", i, k, f[k], tx_byte(i, k));
		tx_bytes += tx_len[i];
	}
	vmm_virtio_net_stats st = stats_of(t);
	assert_int_equal(st.tx_frames, TX_FRAMES);
	assert_int_equal(st.tx_bytes, tx_bytes);
	assert_int_equal(st.tx_errors, 1);

	/* RX: frames larger than the guest's 512-byte buffers span several of them. */
	kt_run_expect(e->kt, 0, 0x101);
	static const uint32_t rx_len[] = { 60, 500, 501, 1514, 3000, 9000 };
	const uint32_t n_rx = sizeof rx_len / sizeof rx_len[0];
	static uint8_t frames[6][9000];
	uint64_t rx_bytes = 0;
	for (uint32_t i = 0; i < n_rx; i++) {
		host_frame(frames[i], rx_len[i], guest_mac, 0x88b6, i);
		kt_check(vmm_virtio_net_receive(dev, frames[i], rx_len[i]), "vmm_virtio_net_receive");
		rx_bytes += rx_len[i];
	}
	kt_write(e->kt, kt_sym(e->kt, "rx_expect"), &n_rx, sizeof n_rx);
	kt_run_expect(e->kt, 0, 0x102);

	struct frame_result res[6];
	kt_read(e->kt, kt_sym(e->kt, "results"), res, sizeof res);
	for (uint32_t i = 0; i < n_rx; i++) {
		assert_int_equal(res[i].len, rx_len[i]);
		assert_int_equal(res[i].num_buffers, (HDR + rx_len[i] + MRG_BUF - 1) / MRG_BUF);
		assert_int_equal(res[i].ethertype, 0x88b6);
		if (res[i].sum != checksum(frames[i], rx_len[i]))
			fail_msg("RX frame %u: the guest's bytes differ", i);
	}
	assert_true(res[4].num_buffers > 1 && res[5].num_buffers == 18);
	st = stats_of(t);
	assert_int_equal(st.rx_frames, n_rx);
	assert_int_equal(st.rx_bytes, rx_bytes);
	assert_int_equal(st.rx_dropped, 0);
	check_healthy(t);
	capture_free(&cap);
}

/* ---- full receive queue ---- */

static void test_rx_full(void **state)
{
	kt_opts o = { .guest = "vnet_guest", .cpl = 3 };
	vt_env *e = vt_create(state, &o);
	vmm_virtio_net_opts no = VMM_VIRTIO_NET_OPTS_INIT;
	no.backend = VMM_NET_CALLBACK;
	no.tx = drop_tx;
	no.rx_backlog = 3;
	memcpy(no.mac, guest_mac, 6);
	vmm_virtio_device *dev;
	kt_check(vmm_virtio_net_create(&dev, &no), "vmm_virtio_net_create");
	vmm_virtio_mmio *t = vt_attach(e, 0, dev);

	kt_set_arg(e->kt, 0, 2);
	kt_run_expect(e->kt, 0, 0x200); /* two buffers posted */
	static uint8_t frames[6][1514];
	uint32_t len[6];
	for (uint32_t i = 0; i < 6; i++) {
		len[i] = 100 + 250 * i;
		host_frame(frames[i], len[i], guest_mac, 0x88b7, 40 + i);
	}
	for (uint32_t i = 0; i < 2; i++)
		kt_check(vmm_virtio_net_receive(dev, frames[i], len[i]), "receive");
	uint64_t t0 = kt_now_ms();
	while (stats_of(t).rx_frames < 2 && kt_now_ms() - t0 < 5000)
		sleep_ms(1);
	assert_int_equal(stats_of(t).rx_frames, 2);

	/* No buffers left: three frames wait in the backlog, the fourth is dropped. */
	for (uint32_t i = 2; i < 5; i++)
		kt_check(vmm_virtio_net_receive(dev, frames[i], len[i]), "receive");
	assert_int_equal(vmm_virtio_net_receive(dev, frames[5], len[5]), -ENOBUFS);
	sleep_ms(50);
	vmm_virtio_net_stats st = stats_of(t);
	assert_int_equal(st.rx_frames, 2);
	assert_int_equal(st.rx_dropped, 1);

	/* The guest takes its two frames, posts three buffers, and the waiting frames
	 * arrive with nothing more injected. */
	kt_run_expect(e->kt, 0, 0x201);
	struct frame_result res[5];
	kt_read(e->kt, kt_sym(e->kt, "results"), res, sizeof res);
	for (uint32_t i = 0; i < 5; i++) {
		assert_int_equal(res[i].len, len[i]);
		assert_int_equal(res[i].num_buffers, 1);
		if (res[i].sum != checksum(frames[i], len[i]))
			fail_msg("RX frame %u: the guest's bytes differ", i);
	}
	st = stats_of(t);
	assert_int_equal(st.rx_frames, 5);
	assert_int_equal(st.rx_dropped, 1);
	check_healthy(t);
}

/* ---- a flood from another thread ---- */

#define FLOOD_FRAMES 100000u
/* Keep in sync with flood_mode (tests/guests/vnet_guest.c). */
#define FLOOD_LEN(seq) (60u + (seq) % 200u)
#define FLOOD_BYTE(seq, k) ((uint8_t)((seq) * 7u + (k)))

struct flooder {
	vmm_virtio_device *dev;
	pthread_t th;
	uint32_t sent;
	uint64_t full;  /* -ENOBUFS answers: the backlog was full, retried */
	int err;        /* another error, or -ETIMEDOUT */
};

static void *flood_main(void *arg)
{
	struct flooder *f = arg;
	uint8_t frame[300];
	uint64_t deadline = kt_now_ms() + 60000;
	for (uint32_t seq = 0; seq < FLOOD_FRAMES;) {
		uint32_t n = FLOOD_LEN(seq);
		memcpy(frame, guest_mac, 6);
		memcpy(frame + 6, host_mac, 6);
		frame[12] = 0x88;
		frame[13] = 0xb8;
		for (int b = 0; b < 4; b++)
			frame[14 + b] = (uint8_t)(seq >> (8 * b));
		for (uint32_t k = 18; k < n; k++)
			frame[k] = FLOOD_BYTE(seq, k);
		int r = vmm_virtio_net_receive(f->dev, frame, n);
		if (r == 0) {
			f->sent = ++seq;
		} else if (r == -ENOBUFS) {
			f->full++;
			if (kt_now_ms() > deadline) {
				f->err = -ETIMEDOUT;
				break;
			}
			sched_yield();
		} else {
			f->err = r;
			break;
		}
	}
	return NULL;
}

static void test_flood(void **state)
{
	kt_opts o = { .guest = "vnet_guest", .cpl = 3 };
	vt_env *e = vt_create(state, &o);
	vmm_virtio_net_opts no = VMM_VIRTIO_NET_OPTS_INIT;
	no.backend = VMM_NET_CALLBACK;
	no.tx = drop_tx;
	memcpy(no.mac, guest_mac, 6);
	vmm_virtio_device *dev;
	kt_check(vmm_virtio_net_create(&dev, &no), "vmm_virtio_net_create");
	vmm_virtio_mmio *t = vt_attach(e, 0, dev);

	const uint32_t n = FLOOD_FRAMES;
	kt_set_arg(e->kt, 0, 4);
	kt_run_expect(e->kt, 0, 0x400); /* buffers posted */
	kt_write(e->kt, kt_sym(e->kt, "rx_expect"), &n, sizeof n);
	struct flooder f = { .dev = dev };
	assert_int_equal(pthread_create(&f.th, NULL, flood_main, &f), 0);
	/* The harness's watchdog ends the guest if the device ever stalls. */
	uint64_t t0 = kt_now_ms();
	vmm_exit ex;
	int r = kt_run(e->kt, 0, &ex, 60000);
	pthread_join(f.th, NULL);
	uint32_t count, bad;
	kt_read(e->kt, kt_sym(e->kt, "flood_count"), &count, sizeof count);
	kt_read(e->kt, kt_sym(e->kt, "flood_bad"), &bad, sizeof bad);
	print_message("flood: %u frames in %llu ms, the backlog was full %llu times\n", count,
		      (unsigned long long)(kt_now_ms() - t0), (unsigned long long)f.full);
	assert_int_equal(f.err, 0);
	assert_int_equal(f.sent, n);
	char why[256];
	if (r != 0 || ex.reason != VMM_EXIT_GUEST || ex.u.guest.code != 0x401)
		fail_msg("guest: %d, %s", r, kt_exit_str(&ex, why, sizeof why));
	assert_int_equal(count, n);
	assert_int_equal(bad, 0);
	vmm_virtio_net_stats st = stats_of(t);
	assert_int_equal(st.rx_frames, n);
	/* Every -ENOBUFS the injector saw was a frame refused (and counted), then resent. */
	assert_int_equal(st.rx_dropped, f.full);
	check_healthy(t);
}

/* ---- TAP back end in a network namespace ---- */

#define TAP_NAME "vmmnet0"

struct netns {
	int orig; /* this thread's namespace before the test */
};

static bool require_kvm(void)
{
	const char *v = getenv("LIBVMM_REQUIRE_KVM");
	return v && strcmp(v, "1") == 0;
}

static void netns_enter(struct netns *ns)
{
	ns->orig = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (ns->orig < 0 || unshare(CLONE_NEWNET) != 0) {
		int err = errno;
		if (ns->orig >= 0)
			close(ns->orig);
		ns->orig = -1;
		if (require_kvm())
			fail_msg("cannot create a network namespace: %s", strerror(err));
		print_message("skipping: cannot create a network namespace: %s\n", strerror(err));
		skip();
	}
}

static void netns_leave(struct netns *ns)
{
	if (ns->orig >= 0) {
		if (setns(ns->orig, CLONE_NEWNET) != 0)
			fail_msg("setns back: %s", strerror(errno));
		close(ns->orig);
		ns->orig = -1;
	}
}

static void write_sysctl(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, val, strlen(val)) < 0) {
			/* IPv6 may be absent: then there is no noise to silence either. */
		}
		close(fd);
	}
}

/* Brings the TAP up as 10.0.0.1/24 and returns its MAC and ifindex. */
static void tap_configure(uint8_t mac[6], int *ifindex)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, TAP_NAME);
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(0x0a000001);
	if (ioctl(s, SIOCSIFADDR, &ifr) != 0)
		fail_msg("SIOCSIFADDR: %s", strerror(errno));
	sin->sin_addr.s_addr = htonl(0xffffff00);
	if (ioctl(s, SIOCSIFNETMASK, &ifr) != 0)
		fail_msg("SIOCSIFNETMASK: %s", strerror(errno));
	assert_int_equal(ioctl(s, SIOCGIFFLAGS, &ifr), 0);
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0)
		fail_msg("SIOCSIFFLAGS: %s", strerror(errno));
	assert_int_equal(ioctl(s, SIOCGIFHWADDR, &ifr), 0);
	memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	assert_int_equal(ioctl(s, SIOCGIFINDEX, &ifr), 0);
	*ifindex = ifr.ifr_ifindex;
	close(s);
}

/* A packet socket on the TAP: what the guest sends arrives here, what we send here goes
 * to the guest. */
static int packet_socket(int ifindex)
{
	int s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
	assert_true(s >= 0);
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
				   .sll_ifindex = ifindex };
	assert_int_equal(bind(s, (struct sockaddr *)&sll, sizeof sll), 0);
	struct timeval tv = { .tv_sec = 1 };
	assert_int_equal(setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
	return s;
}

/* An fd the application opened itself: taken (dup'ed) if it is a plain TAP, refused if
 * it is a TUN or would carry virtio headers the device does not expect. (Packet
 * information cannot be detected: TUNGETIFF reports IFF_NOFILTER in the IFF_NO_PI bit.) */
static int open_tap(const char *name, short flags)
{
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, name);
	ifr.ifr_flags = flags;
	if (ioctl(fd, TUNSETIFF, &ifr) != 0)
		fail_msg("TUNSETIFF %s: %s", name, strerror(errno));
	return fd;
}

static void check_tap_fd_adoption(void)
{
	vmm_virtio_net_opts no = VMM_VIRTIO_NET_OPTS_INIT;
	vmm_virtio_device *dev = NULL;
	int good = open_tap("vmmfd0", IFF_TAP | IFF_NO_PI);
	no.tap_fd = good;
	kt_check(vmm_virtio_net_create(&dev, &no), "create with tap_fd");
	vmm_virtio_device_destroy(dev);
	assert_true(fcntl(good, F_GETFL) & O_NONBLOCK); /* the shared file is non-blocking */
	assert_true(fcntl(good, F_GETFD) >= 0);          /* and still the caller's */
	close(good);

	int vnet = open_tap("vmmfd1", IFF_TAP | IFF_NO_PI | IFF_VNET_HDR);
	int tun = open_tap("vmmfd2", IFF_TUN | IFF_NO_PI);
	int fds[2] = { vnet, tun };
	for (int i = 0; i < 2; i++) {
		no.tap_fd = fds[i];
		dev = NULL;
		int r = vmm_virtio_net_create(&dev, &no);
		if (r != -EINVAL)
			fail_msg("tap fd %d (case %d) accepted: %d", fds[i], i, r);
		assert_null(dev);
		close(fds[i]);
	}
}

static void test_tap(void **state)
{
	struct netns ns = { -1 };
	netns_enter(&ns);
	check_tap_fd_adoption();
	/* No IPv6 chatter (router solicitations, MLD) on the interface we are about to
	 * create: the guest has two buffers and would rather see only our frames. */
	write_sysctl("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");

	kt_opts o = { .guest = "vnet_guest", .cpl = 3 };
	vt_env *e = vt_create(state, &o);
	vmm_virtio_net_opts no = VMM_VIRTIO_NET_OPTS_INIT;
	no.backend = VMM_NET_TAP;
	no.tap_name = TAP_NAME;
	memcpy(no.mac, guest_mac, 6);
	vmm_virtio_device *dev;
	kt_check(vmm_virtio_net_create(&dev, &no), "vmm_virtio_net_create (TAP)");
	vmm_virtio_mmio *t = vt_attach(e, 0, dev);
	uint8_t tap_mac[6];
	int ifindex;
	tap_configure(tap_mac, &ifindex);
	int ps = packet_socket(ifindex);

	kt_set_arg(e->kt, 0, 3);
	kt_run_expect(e->kt, 0, 0x300);

	/* The guest's frame and its ARP request, as the host sees them on the TAP. */
	bool saw_custom = false, saw_arp = false;
	uint64_t t0 = kt_now_ms();
	while ((!saw_custom || !saw_arp) && kt_now_ms() - t0 < 5000) {
		uint8_t buf[2048];
		struct sockaddr_ll from;
		socklen_t fl = sizeof from;
		ssize_t n = recvfrom(ps, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
		if (n < 14 || from.sll_pkttype == PACKET_OUTGOING || memcmp(buf + 6, guest_mac, 6) != 0)
			continue;
		uint16_t type = (uint16_t)(buf[12] << 8 | buf[13]);
		if (type == 0x88b5) {
			assert_int_equal(n, 200);
			for (uint32_t k = 14; k < 200; k++)
				assert_int_equal(buf[k], tx_byte(100, k));
			saw_custom = true;
		} else if (type == 0x0806) {
			saw_arp = true;
		}
	}
	assert_true(saw_custom);
	assert_true(saw_arp);
	assert_int_equal(stats_of(t).tx_frames, 2);

	/* A burst while the guest has at most two buffers: the frames wait (in the TAP,
	 * which we stop reading, and the backlog) instead of being lost. */
	static uint8_t frames[TAP_FRAMES][1000];
	for (unsigned i = 0; i < TAP_FRAMES; i++) {
		host_frame(frames[i], sizeof frames[i], guest_mac, 0x88b6, 70 + i);
		memcpy(frames[i] + 6, tap_mac, 6);
		struct sockaddr_ll to = { .sll_family = AF_PACKET, .sll_ifindex = ifindex, .sll_halen = 6 };
		memcpy(to.sll_addr, guest_mac, 6);
		ssize_t n = sendto(ps, frames[i], sizeof frames[i], 0, (struct sockaddr *)&to, sizeof to);
		if (n != (ssize_t)sizeof frames[i])
			fail_msg("sendto on the TAP: %zd (%s)", n, strerror(errno));
	}
	sleep_ms(200);
	assert_true(stats_of(t).rx_frames <= 2);

	kt_run_expect(e->kt, 0, 0x301);
	uint32_t nres;
	struct frame_result res[64];
	kt_read(e->kt, kt_sym(e->kt, "nresults"), &nres, sizeof nres);
	kt_read(e->kt, kt_sym(e->kt, "results"), res, sizeof res);
	unsigned next = 0;
	for (uint32_t i = 0; i < nres && i < 64; i++) {
		if (res[i].ethertype != 0x88b6)
			continue;
		assert_true(next < TAP_FRAMES);
		assert_int_equal(res[i].len, sizeof frames[next]);
		if (res[i].sum != checksum(frames[next], sizeof frames[next]))
			fail_msg("TAP frame %u: the guest's bytes differ", next);
		next++;
	}
	assert_int_equal(next, TAP_FRAMES);

	/* The host's stack answered the ARP request: 10.0.0.1 is at the TAP's MAC. */
	uint8_t arp[64];
	uint32_t arp_len;
	kt_read(e->kt, kt_sym(e->kt, "arp_reply"), arp, sizeof arp);
	kt_read(e->kt, kt_sym(e->kt, "arp_len"), &arp_len, sizeof arp_len);
	assert_true(arp_len >= 42);
	assert_memory_equal(arp, guest_mac, 6);
	assert_memory_equal(arp + 22, tap_mac, 6);
	assert_memory_equal(arp + 28, "\x0a\x00\x00\x01", 4);
	assert_memory_equal(arp + 32, guest_mac, 6);
	assert_memory_equal(arp + 38, "\x0a\x00\x00\x02", 4);

	vmm_virtio_net_stats st = stats_of(t);
	assert_true(st.rx_frames >= TAP_FRAMES + 1);
	assert_int_equal(st.rx_dropped, 0);
	assert_int_equal(st.tx_errors, 0);
	check_healthy(t);
	close(ps);
	vt_teardown(state); /* the TAP goes with the device, then the namespace with us */
	netns_leave(&ns);
}

int main(void)
{
	kvm_test_require();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_callback, vt_teardown),
		cmocka_unit_test_teardown(test_rx_full, vt_teardown),
		cmocka_unit_test_teardown(test_flood, vt_teardown),
		cmocka_unit_test_teardown(test_tap, vt_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
