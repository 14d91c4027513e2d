/* The KVM test harness (see harness.h). */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void kvm_test_require(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		return;
	}
	int err = errno;
	const char *req = getenv("LIBVMM_REQUIRE_KVM");
	if (req && strcmp(req, "1") == 0) {
		fprintf(stderr, "FAIL: /dev/kvm: %s, and LIBVMM_REQUIRE_KVM=1\n", strerror(err));
		exit(1);
	}
	fprintf(stderr, "SKIP: /dev/kvm: %s (set LIBVMM_REQUIRE_KVM=1 to fail instead)\n",
		strerror(err));
	exit(77);
}

uint64_t kt_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- console device on port 0xe9 ---- */

static void console_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
	kt_vm *t = opaque;
	(void)offset;
	pthread_mutex_lock(&t->console_lock);
	for (unsigned i = 0; i < size && t->console_len < KT_CONSOLE_MAX; i++)
		t->console[t->console_len++] = (char)(value >> (8 * i));
	t->console[t->console_len] = 0;
	pthread_mutex_unlock(&t->console_lock);
}

const char *kt_console(kt_vm *t, char *buf, size_t n)
{
	if (n == 0)
		return buf;
	pthread_mutex_lock(&t->console_lock);
	size_t len = t->console_len < n - 1 ? t->console_len : n - 1;
	memcpy(buf, t->console, len);
	buf[len] = 0;
	pthread_mutex_unlock(&t->console_lock);
	return buf;
}

void kt_console_clear(kt_vm *t)
{
	pthread_mutex_lock(&t->console_lock);
	t->console_len = 0;
	t->console[0] = 0;
	pthread_mutex_unlock(&t->console_lock);
}

/* ---- setup ---- */

static void read_image(kt_vm *t, const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("%s: %s (was the guest built? target vmm_guests)", path, strerror(errno));
	struct stat st;
	if (fstat(fileno(f), &st) != 0 || st.st_size <= 0) {
		fclose(f);
		fail_msg("%s: cannot stat or empty", path);
	}
	t->image_size = (size_t)st.st_size;
	t->image = malloc(t->image_size);
	size_t got = t->image ? fread(t->image, 1, t->image_size, f) : 0;
	fclose(f);
	if (got != t->image_size)
		fail_msg("%s: short read", path);
}

kt_vm *kt_create(void **state, const kt_opts *o)
{
	kt_destroy(*state);
	*state = NULL;
	kt_vm *t = calloc(1, sizeof *t);
	assert_non_null(t);
	pthread_mutex_init(&t->console_lock, NULL);
	*state = t;
	t->cpl = o->cpl;
	unsigned n = o->vcpus ? o->vcpus : 1;
	assert_true(n <= KT_MAX_VCPUS);

	vmm_vm_opts vo = VMM_VM_OPTS_INIT;
	vo.irqchip = o->irqchip;
	vo.flags = o->vm_flags;
	kt_check(vmm_vm_create(&t->vm, &vo), "vmm_vm_create");
	t->mem = vmm_vm_mem(t->vm);
	t->bus = vmm_vm_bus(t->vm);
	t->irq = vmm_vm_irq(t->vm);
	assert_non_null(t->mem);
	assert_non_null(t->bus);

	vmm_mem_region_opts ro = VMM_MEM_REGION_OPTS_INIT;
	ro.gpa = 0;
	ro.len = o->ram ? o->ram : KT_RAM_DEFAULT;
	ro.name = "kt-ram";
	kt_check(vmm_mem_add_region(t->mem, &ro), "vmm_mem_add_region(RAM)");

	vmm_bus_ops console = { .read = NULL, .write = console_write };
	kt_check(vmm_bus_register(t->bus, VMM_BUS_PIO, KT_CONSOLE_PORT, 1, &console, t),
		 "vmm_bus_register(console)");

	uint64_t entry = 0;
	if (o->guest) {
		char path[512];
		snprintf(path, sizeof path, "%s/%s.elf", GUEST_DIR, o->guest);
		read_image(t, path);
		kt_check(vmm_elf_load_file(t->mem, path, &t->elf), path);
		entry = t->elf.entry;
	}

	for (unsigned i = 0; i < n; i++) {
		vmm_vcpu_opts co = VMM_VCPU_OPTS_INIT;
		co.id = i;
		kt_check(vmm_vcpu_create(&t->vcpu[i], t->vm, &co), "vmm_vcpu_create");
		t->nvcpus = i + 1;
		vmm_long_mode_opts lm = VMM_LONG_MODE_OPTS_INIT;
		lm.flags = o->no_fault_idt ? 0 : VMM_LONG_MODE_FAULT_IDT;
		lm.cpl = o->cpl;
		lm.entry = entry;
		lm.stack = KT_STACK_TOP - i * KT_STACK_SPACING;
		lm.system_area = (uint64_t)i * VMM_LONG_MODE_SYSTEM_AREA_SIZE;
		kt_check(vmm_vcpu_setup_long_mode(t->vcpu[i], &lm), "vmm_vcpu_setup_long_mode");
	}
	return t;
}

void kt_destroy(kt_vm *t)
{
	if (!t)
		return;
	vmm_vm_destroy(t->vm);
	free(t->image);
	pthread_mutex_destroy(&t->console_lock);
	free(t);
}

int kt_teardown(void **state)
{
	kt_destroy(*state);
	*state = NULL;
	return 0;
}

uint64_t kt_sym(kt_vm *t, const char *name)
{
	uint64_t v = 0;
	assert_non_null(t->image);
	kt_check(vmm_elf_symbol(t->image, t->image_size, name, &v), name);
	return v;
}

void kt_set_gate(kt_vm *t, unsigned cpu, uint8_t vector, const char *handler, unsigned dpl)
{
	assert_true(cpu < t->nvcpus);
	kt_check(vmm_vcpu_set_idt_gate(t->vcpu[cpu], vector, kt_sym(t, handler), dpl),
		 "vmm_vcpu_set_idt_gate");
}

void kt_set_arg(kt_vm *t, unsigned cpu, uint64_t arg)
{
	vmm_regs r;
	assert_true(cpu < t->nvcpus);
	kt_check(vmm_vcpu_get_regs(t->vcpu[cpu], &r), "vmm_vcpu_get_regs");
	r.rdi = arg;
	kt_check(vmm_vcpu_set_regs(t->vcpu[cpu], &r), "vmm_vcpu_set_regs");
}

void kt_read(kt_vm *t, uint64_t gpa, void *buf, size_t len)
{
	kt_check(vmm_mem_read(t->mem, gpa, buf, len), "vmm_mem_read");
}

void kt_write(kt_vm *t, uint64_t gpa, const void *buf, size_t len)
{
	kt_check(vmm_mem_write(t->mem, gpa, buf, len), "vmm_mem_write");
}

uint64_t kt_read_u64(kt_vm *t, uint64_t gpa)
{
	uint64_t v;
	kt_read(t, gpa, &v, sizeof v);
	return v;
}

/* ---- running with a watchdog ---- */

struct watchdog {
	vmm_vcpu *vcpu;
	unsigned timeout_ms;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	bool fired;
};

static void *watchdog_main(void *arg)
{
	struct watchdog *w = arg;
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += w->timeout_ms / 1000;
	deadline.tv_nsec += (long)(w->timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&w->lock);
	while (!w->done) {
		if (pthread_cond_timedwait(&w->cond, &w->lock, &deadline) == ETIMEDOUT) {
			w->fired = true;
			vmm_vcpu_kick(w->vcpu);
			break;
		}
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

int kt_run(kt_vm *t, unsigned cpu, vmm_exit *exit, unsigned timeout_ms)
{
	assert_true(cpu < t->nvcpus);
	struct watchdog w = { .vcpu = t->vcpu[cpu], .timeout_ms = timeout_ms ? timeout_ms : KT_TIMEOUT_MS };
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w.cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&w.lock, NULL);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, watchdog_main, &w), 0);

	int r;
	for (;;) {
		memset(exit, 0, sizeof *exit);
		r = vmm_vcpu_run(t->vcpu[cpu], exit);
		if (r != 0 || exit->reason != VMM_EXIT_KICK)
			break;
		pthread_mutex_lock(&w.lock);
		bool fired = w.fired;
		pthread_mutex_unlock(&w.lock);
		if (fired) {
			r = -ETIMEDOUT;
			break;
		}
	}

	pthread_mutex_lock(&w.lock);
	w.done = true;
	pthread_cond_signal(&w.cond);
	pthread_mutex_unlock(&w.lock);
	pthread_join(th, NULL);
	pthread_cond_destroy(&w.cond);
	pthread_mutex_destroy(&w.lock);
	return r;
}

const char *kt_exit_str(const vmm_exit *e, char *buf, size_t n)
{
	switch (e->reason) {
	case VMM_EXIT_HLT:
		snprintf(buf, n, "HLT");
		break;
	case VMM_EXIT_SHUTDOWN:
		snprintf(buf, n, "SHUTDOWN");
		break;
	case VMM_EXIT_GUEST:
		snprintf(buf, n, "GUEST code %#" PRIx64, e->u.guest.code);
		break;
	case VMM_EXIT_FAULT:
		snprintf(buf, n, "FAULT vector %u error %#" PRIx64 "%s rip %#" PRIx64 " cr2 %#" PRIx64
			 " cs %#" PRIx64, e->u.fault.vector, e->u.fault.error_code,
			 e->u.fault.has_error_code ? "" : " (none)", e->u.fault.rip, e->u.fault.cr2,
			 e->u.fault.cs);
		break;
	case VMM_EXIT_KICK:
		snprintf(buf, n, "KICK");
		break;
	case VMM_EXIT_IO:
		snprintf(buf, n, "IO %s %s addr %#" PRIx64 " size %u value %#" PRIx64,
			 e->u.io.is_mmio ? "mmio" : "pio", e->u.io.is_write ? "write" : "read",
			 e->u.io.addr, e->u.io.size, e->u.io.value);
		break;
	case VMM_EXIT_SYSTEM_EVENT:
		snprintf(buf, n, "SYSTEM_EVENT type %u", e->u.system.type);
		break;
	case VMM_EXIT_INTERNAL_ERROR:
		snprintf(buf, n, "INTERNAL_ERROR rip %#" PRIx64 " suberror %u", e->u.internal.rip,
			 e->u.internal.suberror);
		break;
	default:
		snprintf(buf, n, "exit reason %d", (int)e->reason);
		break;
	}
	return buf;
}

void kt_run_expect(kt_vm *t, unsigned cpu, uint64_t code)
{
	vmm_exit e;
	int r = kt_run(t, cpu, &e, 0);
	if (r == 0 && e.reason == VMM_EXIT_GUEST && e.u.guest.code == code)
		return;
	char ebuf[256], cbuf[2048];
	fail_msg("vCPU %u: expected GUEST code %#" PRIx64 ", got r=%d (%s), %s; last error: %s; "
		 "console: \"%s\"", cpu, code, r, vmm_strerror(r), kt_exit_str(&e, ebuf, sizeof ebuf),
		 vmm_last_error(), kt_console(t, cbuf, sizeof cbuf));
}

enum kt_fork_view kt_fork_view(const void *host, const void *expect, size_t len)
{
	fflush(NULL); /* no buffered output printed twice */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* msync fails with ENOMEM on an address nothing maps, without touching it. */
		void *page = (void *)((uintptr_t)host & ~(uintptr_t)4095);
		if (msync(page, 4096, MS_ASYNC) < 0)
			_exit(errno == ENOMEM ? KT_FORK_UNMAPPED : 1);
		_exit(memcmp(host, expect, len) == 0 ? KT_FORK_SAME : KT_FORK_DIFFERENT);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		assert_int_equal(errno, EINTR);
	if (!WIFEXITED(status) || WEXITSTATUS(status) < KT_FORK_UNMAPPED)
		fail_msg("fork child: status %#x", status);
	return (enum kt_fork_view)WEXITSTATUS(status);
}
