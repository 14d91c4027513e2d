/* bench_virtio: a VM with one virtio-mmio device and a benchmark guest, through the
 * public API only (as an application builds one): default memfd RAM, the guest ELF at
 * CPL 3 in long mode, the device's loop on a thread of its own, and a watchdog that
 * kicks the vCPU if a pass hangs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "bench_virtio_host.h"

#define STACK_TOP BV_RAM /* the guests' images and buffers sit far below */

static int fail(const char *what, int err)
{
	fprintf(stderr, "bench_virtio: %s: %s (%s)\n", what, vmm_strerror(err), vmm_last_error());
	return -1;
}

#define CHECK(call)                                   \
	do {                                          \
		int r_ = (call);                      \
		if (r_ < 0)                           \
			return fail(#call, r_);       \
	} while (0)

static void console_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
	struct bv_vm *v = opaque;
	(void)offset;
	pthread_mutex_lock(&v->lock);
	for (unsigned i = 0; i < size && v->console_len + 1 < sizeof v->console; i++)
		v->console[v->console_len++] = (char)(value >> (8 * i));
	v->console[v->console_len] = 0;
	pthread_mutex_unlock(&v->lock);
}

static int read_image(struct bv_vm *v, const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "bench_virtio: %s: %s (build the target vmm_guests)\n", path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fileno(f), &st) != 0 || st.st_size <= 0) {
		fclose(f);
		fprintf(stderr, "bench_virtio: %s: empty or unreadable\n", path);
		return -1;
	}
	v->image_size = (size_t)st.st_size;
	v->image = malloc(v->image_size);
	size_t got = v->image ? fread(v->image, 1, v->image_size, f) : 0;
	fclose(f);
	if (got != v->image_size) {
		fprintf(stderr, "bench_virtio: %s: short read\n", path);
		return -1;
	}
	return 0;
}

static double cpu_ns(clockid_t id)
{
	struct timespec ts;
	if (clock_gettime(id, &ts) != 0)
		return 0;
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void *dog_main(void *arg)
{
	struct bv_vm *v = arg;
	pthread_mutex_lock(&v->lock);
	while (!v->dog_stop) {
		if (v->deadline_ns > 0 && bench_now_ns() >= v->deadline_ns) {
			v->fired = true;
			v->deadline_ns = 0;
			vmm_vcpu_kick(v->vcpu);
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&v->cond, &v->lock, &ts);
	}
	pthread_mutex_unlock(&v->lock);
	return NULL;
}

int bv_vm_open(struct bv_vm *v, const char *guest, const struct bv_params *p)
{
	memset(v, 0, sizeof *v);
	v->timeout_s = p->quick ? 30 : 120;
	pthread_mutex_init(&v->lock, NULL);
	pthread_cond_init(&v->cond, NULL);

	vmm_vm_opts vo = VMM_VM_OPTS_INIT; /* kernel irqchip: doorbells and interrupts bypass us */
	CHECK(vmm_vm_create(&v->vm, &vo));
	vmm_mem_region_opts ro = VMM_MEM_REGION_OPTS_INIT;
	ro.gpa = 0;
	ro.len = BV_RAM;
	ro.name = "bench-ram";
	CHECK(vmm_mem_add_region(vmm_vm_mem(v->vm), &ro));
	vmm_bus_ops console = { .read = NULL, .write = console_write };
	CHECK(vmm_bus_register(vmm_vm_bus(v->vm), VMM_BUS_PIO, 0xe9, 1, &console, v));

	char path[512];
	snprintf(path, sizeof path, "%s/%s.elf", GUEST_DIR, guest);
	if (read_image(v, path))
		return -1;
	vmm_elf_info info;
	CHECK(vmm_elf_load_file(vmm_vm_mem(v->vm), path, &info));
	CHECK(vmm_vcpu_create(&v->vcpu, v->vm, NULL));
	vmm_long_mode_opts lm = VMM_LONG_MODE_OPTS_INIT;
	lm.cpl = 3;
	lm.entry = info.entry;
	lm.stack = STACK_TOP;
	CHECK(vmm_vcpu_setup_long_mode(v->vcpu, &lm));
	CHECK(vmm_loop_create(&v->loop));
	if (pthread_create(&v->dog, NULL, dog_main, v) != 0) {
		fprintf(stderr, "bench_virtio: pthread_create failed\n");
		return -1;
	}
	v->dog_running = true;
	pthread_setname_np(v->dog, "bench-watchdog");
	return 0;
}

static void *loop_main(void *arg)
{
	struct bv_vm *v = arg;
	v->loop_result = vmm_loop_run(v->loop);
	return NULL;
}

int bv_vm_attach_start(struct bv_vm *v, vmm_virtio_device *dev)
{
	vmm_virtio_mmio_opts mo = VMM_VIRTIO_MMIO_OPTS_INIT;
	mo.base = BV_DEV_BASE;
	mo.gsi = BV_DEV_GSI;
	int r = vmm_virtio_mmio_attach(&v->mmio, v->vm, v->loop, &mo, dev);
	if (r) {
		vmm_virtio_device_destroy(dev);
		return fail("vmm_virtio_mmio_attach", r);
	}
	if (pthread_create(&v->loop_thread, NULL, loop_main, v) != 0) {
		fprintf(stderr, "bench_virtio: pthread_create failed\n");
		return -1;
	}
	v->loop_running = true;
	pthread_setname_np(v->loop_thread, "bench-loop"); /* for perf and top */
	double ns;
	return bv_vm_pass(v, &ns); /* to the guest's first BV_READY */
}

uint64_t bv_vm_sym(struct bv_vm *v, const char *name)
{
	uint64_t a = 0;
	int r = vmm_elf_symbol(v->image, v->image_size, name, &a);
	if (r) {
		fail(name, r);
		return 0;
	}
	return a;
}

int bv_vm_write(struct bv_vm *v, uint64_t gpa, const void *buf, size_t len)
{
	CHECK(vmm_mem_write(vmm_vm_mem(v->vm), gpa, buf, len));
	return 0;
}

int bv_vm_read(struct bv_vm *v, uint64_t gpa, void *buf, size_t len)
{
	CHECK(vmm_mem_read(vmm_vm_mem(v->vm), gpa, buf, len));
	return 0;
}

int bv_vm_pass(struct bv_vm *v, double *ns)
{
	vmm_exit e;
	int r;
	pthread_mutex_lock(&v->lock);
	v->fired = false;
	v->deadline_ns = bench_now_ns() + v->timeout_s * 1e9;
	pthread_mutex_unlock(&v->lock);
	clockid_t loop_clock;
	bool have_loop = v->loop_running && pthread_getcpuclockid(v->loop_thread, &loop_clock) == 0;
	double c0 = cpu_ns(CLOCK_THREAD_CPUTIME_ID), l0 = have_loop ? cpu_ns(loop_clock) : 0;
	double t0 = bench_now_ns();
	for (;;) {
		r = vmm_vcpu_run(v->vcpu, &e);
		if (r != 0 || e.reason != VMM_EXIT_KICK)
			break;
		pthread_mutex_lock(&v->lock);
		bool fired = v->fired;
		pthread_mutex_unlock(&v->lock);
		if (fired)
			break;
	}
	*ns = bench_now_ns() - t0;
	v->pass_vcpu_cpu_ns = cpu_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
	v->pass_loop_cpu_ns = have_loop ? cpu_ns(loop_clock) - l0 : 0;
	pthread_mutex_lock(&v->lock);
	v->deadline_ns = 0;
	pthread_mutex_unlock(&v->lock);
	if (r == 0 && e.reason == VMM_EXIT_GUEST && e.u.guest.code == BV_READY)
		return 0;
	char why[256] = "";
	if (v->mmio)
		vmm_virtio_mmio_error(v->mmio, why, sizeof why);
	pthread_mutex_lock(&v->lock);
	fprintf(stderr, "bench_virtio: guest run failed: r=%d (%s), exit reason %d, guest code %#llx%s; "
		"device status %#x %s; last error: %s; console: \"%s\"\n", r, vmm_strerror(r), (int)e.reason,
		e.reason == VMM_EXIT_GUEST ? (unsigned long long)e.u.guest.code : 0ull,
		e.reason == VMM_EXIT_KICK ? " (watchdog: timed out)" : "",
		v->mmio ? vmm_virtio_mmio_status(v->mmio) : 0, why, vmm_last_error(), v->console);
	pthread_mutex_unlock(&v->lock);
	return -1;
}

void bv_vm_close(struct bv_vm *v)
{
	if (v->loop_running) {
		vmm_loop_stop(v->loop);
		pthread_join(v->loop_thread, NULL);
		v->loop_running = false;
		if (v->loop_result)
			fail("vmm_loop_run", v->loop_result);
	}
	if (v->dog_running) {
		pthread_mutex_lock(&v->lock);
		v->dog_stop = true;
		pthread_cond_signal(&v->cond);
		pthread_mutex_unlock(&v->lock);
		pthread_join(v->dog, NULL);
		v->dog_running = false;
	}
	vmm_virtio_mmio_destroy(v->mmio);
	v->mmio = NULL;
	vmm_vm_destroy(v->vm);
	v->vm = NULL;
	vmm_loop_destroy(v->loop);
	v->loop = NULL;
	free(v->image);
	v->image = NULL;
	pthread_cond_destroy(&v->cond);
	pthread_mutex_destroy(&v->lock);
}
