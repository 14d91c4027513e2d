/* Object lifetimes and argument checking: destroying a VM whose vCPUs still run on
 * library threads, bad arguments to every constructor, a KVM that lacks a needed
 * capability (faked by the ioctl() below), vmm_strerror, and state round trips. The suite
 * runs under ASan/LSan in CI, and the fd count is checked here, so leaks fail. */
#include "harness/harness.h"
#include "internal.h" /* vmm_vm_fd */

#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- a KVM that lacks chosen capabilities ----
 * The test links libvmm statically, so the library's ioctl() calls bind to this
 * definition; it forwards everything to the next ioctl (libc's, or the sanitizer's
 * interceptor, which then calls libc's) except KVM_CHECK_EXTENSION of a hidden
 * capability, which reports it absent (0), and KVM_GET_API_VERSION while fake_api_version
 * is set. With nothing hidden it is a plain pass-through. */
#define MAX_HIDDEN 2
#define NO_CAP (-1L) /* not 0: that is KVM_CAP_IRQCHIP */
static atomic_long hidden_caps[MAX_HIDDEN] = { NO_CAP, NO_CAP };
static atomic_int hidden_asked;             /* KVM_CHECK_EXTENSION calls answered 0 */
static atomic_int fake_api_version;         /* 0 = the real one */

typedef int (*ioctl_fn)(int, unsigned long, ...);
static _Atomic(ioctl_fn) next_ioctl; /* vCPU threads call ioctl too */

int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	va_start(ap, req);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	if (req == KVM_CHECK_EXTENSION) {
		for (int i = 0; i < MAX_HIDDEN; i++) {
			long cap = atomic_load(&hidden_caps[i]);
			if (cap != NO_CAP && cap == (long)(uintptr_t)arg) {
				atomic_fetch_add(&hidden_asked, 1);
				return 0;
			}
		}
	}
	if (req == KVM_GET_API_VERSION && atomic_load(&fake_api_version))
		return atomic_load(&fake_api_version);
	ioctl_fn next = atomic_load(&next_ioctl);
	if (!next) {
		next = (ioctl_fn)dlsym(RTLD_NEXT, "ioctl");
		if (!next) {
			errno = ENOSYS;
			return -1;
		}
		atomic_store(&next_ioctl, next);
	}
	return next(fd, req, arg);
}

static void hide_caps(long a, long b)
{
	atomic_store(&hidden_caps[0], a);
	atomic_store(&hidden_caps[1], b);
	atomic_store(&hidden_asked, 0);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	int n = 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static int keep_running(void *ctx, vmm_vcpu *vcpu, const vmm_exit *exit, int err)
{
	(void)vcpu;
	(void)exit;
	(void)err;
	atomic_fetch_add((atomic_int *)ctx, 1);
	return 0; /* never asks to stop: destroy must stop the thread anyway */
}

static void count_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
	(void)offset;
	(void)size;
	(void)value;
	atomic_fetch_add((atomic_int *)opaque, 1);
}

struct destroyer {
	kt_vm *t;
	atomic_bool done;
};

static void *destroy_main(void *arg)
{
	struct destroyer *d = arg;
	kt_destroy(d->t);
	atomic_store(&d->done, true);
	return NULL;
}

/* Two vCPUs busy on library threads (one spinning without exits, one exiting on port
 * I/O without end, its callback always saying "keep running"); vmm_vm_destroy must
 * stop both and return. */
static void test_destroy_running_vm(void **state)
{
	int fds = count_fds();
	for (int round = 0; round < 3; round++) {
		kt_opts o = { .guest = "vcpus", .cpl = 3, .vcpus = 2 };
		kt_vm *t = kt_create(state, &o);
		kt_set_arg(t, 0, 2);
		kt_set_arg(t, 1, 3);
		static atomic_int exits, writes;
		atomic_store(&exits, 0);
		atomic_store(&writes, 0);
		vmm_bus_ops ops = { .write = count_write };
		kt_check(vmm_bus_register(t->bus, VMM_BUS_PIO, 0x300, 1, &ops, &writes), "register");
		kt_check(vmm_vcpu_start(t->vcpu[0], keep_running, &exits), "vmm_vcpu_start(0)");
		kt_check(vmm_vcpu_start(t->vcpu[1], keep_running, &exits), "vmm_vcpu_start(1)");
		/* Let the port-I/O vCPU make some exits (handled inside vmm_vcpu_run). */
		uint64_t end = kt_now_ms() + 5000;
		while (atomic_load(&writes) < 10 && kt_now_ms() < end)
			usleep(1000);
		assert_true(atomic_load(&writes) >= 10);
		assert_int_equal(atomic_load(&exits), 0); /* nothing the caller had to see */

		*state = NULL;
		struct destroyer d = { .t = t };
		pthread_t th;
		assert_int_equal(pthread_create(&th, NULL, destroy_main, &d), 0);
		end = kt_now_ms() + 15000;
		while (!atomic_load(&d.done) && kt_now_ms() < end)
			usleep(1000);
		if (!atomic_load(&d.done)) {
			fprintf(stderr, "vmm_vm_destroy did not return within 15 s\n");
			_exit(1); /* cannot recover a stuck thread */
		}
		pthread_join(th, NULL);
	}
	assert_int_equal(count_fds(), fds);
}

/* vmm_vcpu_destroy of one started vCPU, then the VM. */
static void test_destroy_running_vcpu(void **state)
{
	kt_opts o = { .guest = "vcpus", .cpl = 3, .vcpus = 2 };
	kt_vm *t = kt_create(state, &o);
	kt_set_arg(t, 0, 2);
	kt_set_arg(t, 1, 2);
	static atomic_int exits;
	kt_check(vmm_vcpu_start(t->vcpu[1], keep_running, &exits), "vmm_vcpu_start");
	usleep(10000);
	vmm_vcpu_destroy(t->vcpu[1]);
	t->vcpu[1] = NULL;
	t->nvcpus = 1;
	/* The VM still works: vCPU 0 runs and exits. */
	uint32_t release = 9;
	kt_write(t, kt_sym(t, "release"), &release, sizeof release);
	kt_run_expect(t, 0, 9);
}

static void test_create_many(void **state)
{
	(void)state;
	int fds = count_fds();
	for (int i = 0; i < 20; i++) {
		vmm_vm *vm = NULL;
		kt_check(vmm_vm_create(&vm, NULL), "vmm_vm_create");
		vmm_vcpu *v;
		kt_check(vmm_vcpu_create(&v, vm, NULL), "vmm_vcpu_create");
		if (i & 1)
			vmm_vcpu_destroy(v);
		vmm_vm_destroy(vm);
	}
	assert_int_equal(count_fds(), fds);
	vmm_vm_destroy(NULL);
	vmm_vcpu_destroy(NULL);
}

static void test_vm_bad_arguments(void **state)
{
	(void)state;
	vmm_vm *vm = (vmm_vm *)1;
	assert_int_equal(vmm_vm_create(NULL, NULL), -EINVAL);

	vmm_vm_opts o = VMM_VM_OPTS_INIT;
	o.kvm_path = "/nonexistent/kvm";
	assert_int_equal(vmm_vm_create(&vm, &o), -ENODEV);
	assert_null(vm);
	assert_non_null(strstr(vmm_last_error(), "/nonexistent/kvm"));

	o.kvm_path = "/dev/null"; /* opens, but is not KVM */
	assert_int_equal(vmm_vm_create(&vm, &o), -ENODEV);
	assert_null(vm);

	o = (vmm_vm_opts)VMM_VM_OPTS_INIT;
	o.flags = 1u << 31;
	assert_int_equal(vmm_vm_create(&vm, &o), -EINVAL);
	o = (vmm_vm_opts)VMM_VM_OPTS_INIT;
	o.irqchip = (vmm_irqchip_mode)7;
	assert_int_equal(vmm_vm_create(&vm, &o), -EINVAL);
	o = (vmm_vm_opts)VMM_VM_OPTS_INIT;
	o.size = 2; /* smaller than the size field itself */
	assert_int_equal(vmm_vm_create(&vm, &o), -EINVAL);
	o = (vmm_vm_opts)VMM_VM_OPTS_INIT;
	o.kick_signal = SIGKILL;
	assert_int_equal(vmm_vm_create(&vm, &o), -EINVAL);

	/* An older, smaller opts struct (just size and flags) still works. */
	o = (vmm_vm_opts)VMM_VM_OPTS_INIT;
	o.size = 8;
	o.irqchip = (vmm_irqchip_mode)7; /* beyond `size`: must be ignored */
	kt_check(vmm_vm_create(&vm, &o), "vmm_vm_create(small opts)");
	assert_non_null(vmm_vm_irq(vm)); /* default: kernel irqchip */
	assert_int_equal(vmm_vm_exit_port(vm), 0xf4);
	assert_int_equal(vmm_vm_fault_port(vm), 0xf5);
	vmm_vm_destroy(vm);
}

/* vmm_vm_create with capability `cap` (and `cap2`, NO_CAP = none) hidden must fail with
 * -ENOTSUP, leave *out NULL, leak no fd, and name `name` in vmm_last_error(). */
static void expect_missing_cap(const vmm_vm_opts *o, long cap, long cap2, const char *name)
{
	int fds = count_fds();
	vmm_vm *vm = (vmm_vm *)1;
	hide_caps(cap, cap2);
	int r = vmm_vm_create(&vm, o);
	int asked = atomic_load(&hidden_asked);
	hide_caps(NO_CAP, NO_CAP);
	if (r == 0)
		vmm_vm_destroy(vm);
	if (r != -ENOTSUP || !strstr(vmm_last_error(), name))
		fail_msg("hiding %s (irqchip %d, flags %#x): got %d, \"%s\" (%d hidden queries)", name,
			 (int)o->irqchip, o->flags, r, vmm_last_error(), asked);
	assert_true(asked > 0); /* the library asked, and this file's ioctl answered */
	assert_null(vm);
	assert_int_equal(count_fds(), fds);
}

/* The same capability hidden, but a composition that does not need it: created. */
static void expect_created_without(const vmm_vm_opts *o, long cap, const char *name)
{
	vmm_vm *vm = NULL;
	hide_caps(cap, NO_CAP);
	int r = vmm_vm_create(&vm, o);
	hide_caps(NO_CAP, NO_CAP);
	if (r != 0)
		fail_msg("without %s (irqchip %d, flags %#x): %d, %s", name, (int)o->irqchip, o->flags,
			 r, vmm_last_error());
	assert_non_null(vm);
	vmm_vm_destroy(vm);
}

/* -ENOTSUP names the capability KVM lacks: one every composition needs, each of the
 * in-kernel interrupt controller's, the split composition's own, the PIT's, and the
 * dirty ring's; a capability only another composition needs does not stop creation. */
static void test_vm_missing_caps(void **state)
{
	(void)state;
	vmm_vm_opts o = VMM_VM_OPTS_INIT;
	expect_missing_cap(&o, KVM_CAP_USER_MEMORY, NO_CAP, "KVM_CAP_USER_MEMORY");
	expect_missing_cap(&o, KVM_CAP_IOEVENTFD, NO_CAP, "KVM_CAP_IOEVENTFD");
	expect_missing_cap(&o, KVM_CAP_IRQCHIP, NO_CAP, "KVM_CAP_IRQCHIP");
	expect_missing_cap(&o, KVM_CAP_IRQFD, NO_CAP, "KVM_CAP_IRQFD");
	expect_missing_cap(&o, KVM_CAP_SIGNAL_MSI, NO_CAP, "KVM_CAP_SIGNAL_MSI");
	expect_missing_cap(&o, KVM_CAP_PIT2, NO_CAP, "KVM_CAP_PIT2");
	expect_created_without(&o, KVM_CAP_SPLIT_IRQCHIP, "KVM_CAP_SPLIT_IRQCHIP");
	o.flags = VMM_VM_NO_PIT;
	expect_created_without(&o, KVM_CAP_PIT2, "KVM_CAP_PIT2");

	o = (vmm_vm_opts)VMM_VM_OPTS_INIT;
	o.irqchip = VMM_IRQCHIP_SPLIT;
	expect_missing_cap(&o, KVM_CAP_SPLIT_IRQCHIP, NO_CAP, "KVM_CAP_SPLIT_IRQCHIP");
	expect_missing_cap(&o, KVM_CAP_IRQFD, NO_CAP, "KVM_CAP_IRQFD");
	expect_missing_cap(&o, KVM_CAP_IRQ_ROUTING, NO_CAP, "KVM_CAP_IRQ_ROUTING");
	expect_created_without(&o, KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP");
	expect_created_without(&o, KVM_CAP_PIT2, "KVM_CAP_PIT2");

	o = (vmm_vm_opts)VMM_VM_OPTS_INIT;
	o.irqchip = VMM_IRQCHIP_NONE;
	expect_missing_cap(&o, KVM_CAP_IMMEDIATE_EXIT, NO_CAP, "KVM_CAP_IMMEDIATE_EXIT");
	expect_created_without(&o, KVM_CAP_IRQFD, "KVM_CAP_IRQFD");

	/* Dirty rings: neither flavour. */
	o = (vmm_vm_opts)VMM_VM_OPTS_INIT;
	o.dirty_ring_entries = 4096;
	expect_missing_cap(&o, KVM_CAP_DIRTY_LOG_RING_ACQ_REL, KVM_CAP_DIRTY_LOG_RING,
			   "KVM_CAP_DIRTY_LOG_RING");

	/* An API version other than 12: -ENOTSUP, naming the version found. */
	int fds = count_fds();
	vmm_vm *vm = (vmm_vm *)1;
	atomic_store(&fake_api_version, KVM_API_VERSION + 1);
	int r = vmm_vm_create(&vm, NULL);
	atomic_store(&fake_api_version, 0);
	assert_int_equal(r, -ENOTSUP);
	assert_null(vm);
	assert_non_null(strstr(vmm_last_error(), "API version 13"));
	assert_int_equal(count_fds(), fds);

	/* Nothing hidden any more: creation works again. */
	kt_check(vmm_vm_create(&vm, NULL), "vmm_vm_create");
	vmm_vm_destroy(vm);
}

/* vmm_strerror: the documented strings, the same for positive and negative codes, and
 * never NULL. */
static void test_strerror(void **state)
{
	(void)state;
	assert_string_equal(vmm_strerror(0), "success");
	assert_string_equal(vmm_strerror(-ENOTSUP), "not supported by this host");
	assert_string_equal(vmm_strerror(-EINVAL), "invalid argument");
	assert_string_equal(vmm_strerror(EINVAL), "invalid argument");
	assert_ptr_equal(vmm_strerror(ENOTSUP), vmm_strerror(-ENOTSUP));
	assert_ptr_equal(vmm_strerror(EAGAIN), vmm_strerror(-EAGAIN));
	assert_string_equal(vmm_strerror(-EAGAIN), "try again (interrupt not delivered)");
	/* error.h's own example. */
	assert_string_equal(vmm_strerror(-ENODEV), "no such device (is /dev/kvm present?)");
	/* Codes it has no text for. */
	assert_string_equal(vmm_strerror(-EDOM), "unknown error");
	assert_string_equal(vmm_strerror(-9999), "unknown error");
	assert_string_equal(vmm_strerror(9999), "unknown error");
	/* Its negation overflows an int: UBSan checks the library does not do it. */
	assert_string_equal(vmm_strerror(INT_MIN), "unknown error");
	assert_string_equal(vmm_strerror(INT_MAX), "unknown error");
	/* Every value the library documents returning has its own text. */
	static const int documented[] = { ENODEV, EACCES, ENOTSUP, EINVAL, ENOMEM, EFAULT, EROFS,
					  EEXIST, ENOENT, ENOSPC, EBUSY, EIO, ENOEXEC, EFBIG, EINTR,
					  EAGAIN, EPERM, E2BIG };
	for (size_t i = 0; i < sizeof documented / sizeof documented[0]; i++) {
		const char *s = vmm_strerror(-documented[i]);
		assert_non_null(s);
		assert_true(s[0] != '\0');
		assert_string_not_equal(s, "unknown error");
	}
}

/* No permission on the device: -EACCES. As root, permissions are bypassed, so the
 * check runs in a child that drops to an unprivileged user (/dev/kvm is usually 0600 or
 * 0660); as a normal user, on a file without any permission. */
static void test_vm_eacces(void **state)
{
	(void)state;
	char path[] = "/tmp/libvmm-noperm-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(chmod(path, 0), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
			_exit(3);
		vmm_vm *vm = NULL;
		vmm_vm_opts o = VMM_VM_OPTS_INIT;
		o.kvm_path = path;
		int r = vmm_vm_create(&vm, &o);
		_exit(r == -EACCES && vm == NULL ? 0 : 4);
	}
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	unlink(path);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_vcpu_bad_arguments(void **state)
{
	kt_opts o = { .guest = "vcpus", .cpl = 3 };
	kt_vm *t = kt_create(state, &o);
	vmm_vcpu *v = NULL;
	vmm_vcpu_opts co = VMM_VCPU_OPTS_INIT;
	assert_int_equal(vmm_vcpu_create(NULL, t->vm, &co), -EINVAL);
	assert_int_equal(vmm_vcpu_create(&v, NULL, &co), -EINVAL);
	co.id = 0; /* kt_create made vCPU 0 */
	assert_int_equal(vmm_vcpu_create(&v, t->vm, &co), -EEXIST);
	assert_null(v);
	co.size = 1;
	assert_int_equal(vmm_vcpu_create(&v, t->vm, &co), -EINVAL);

	vmm_long_mode_opts lm = VMM_LONG_MODE_OPTS_INIT;
	lm.entry = t->elf.entry;
	lm.stack = KT_STACK_TOP;
	lm.cpl = 2;
	assert_int_equal(vmm_vcpu_setup_long_mode(t->vcpu[0], &lm), -EINVAL);
	lm.cpl = 3;
	lm.system_area = 0x800; /* not page aligned */
	assert_int_equal(vmm_vcpu_setup_long_mode(t->vcpu[0], &lm), -EINVAL);
	lm.system_area = 0x40000000; /* 1 GiB: not RAM */
	assert_int_equal(vmm_vcpu_setup_long_mode(t->vcpu[0], &lm), -EFAULT);
	lm.system_area = KT_RAM_DEFAULT - 0x8000; /* runs past the end of RAM */
	assert_int_equal(vmm_vcpu_setup_long_mode(t->vcpu[0], &lm), -EFAULT);
	assert_int_equal(vmm_vcpu_setup_long_mode(NULL, &lm), -EINVAL);
	assert_int_equal(vmm_vcpu_setup_long_mode(t->vcpu[0], NULL), -EINVAL);

	vmm_exit e;
	assert_int_equal(vmm_vcpu_run(NULL, &e), -EINVAL);
	assert_int_equal(vmm_vcpu_run(t->vcpu[0], NULL), -EINVAL);
	assert_int_equal(vmm_vcpu_join(t->vcpu[0], NULL), -EINVAL); /* not started */
	assert_int_equal(vmm_vcpu_start(t->vcpu[0], NULL, NULL), -EINVAL);

	uint32_t idx[257] = { 0 };
	uint64_t val[257] = { 0 };
	assert_int_equal(vmm_vcpu_get_msrs(t->vcpu[0], idx, val, 0), -EINVAL);
	assert_int_equal(vmm_vcpu_get_msrs(t->vcpu[0], idx, val, 257), -EINVAL);
	assert_int_equal(vmm_vcpu_get_msrs(t->vcpu[0], NULL, val, 1), -EINVAL);
	idx[0] = 0xdeadbeef; /* no such MSR */
	assert_int_equal(vmm_vcpu_set_msrs(t->vcpu[0], idx, val, 1), -EIO);
	assert_non_null(strstr(vmm_last_error(), "deadbeef"));

	assert_int_equal(vmm_vcpu_get_regs(NULL, NULL), -EINVAL);
	assert_int_equal(vmm_vcpu_translate(t->vcpu[0], 0x4000000000ull, &val[0]), -EFAULT);
	/* The vCPU still works after all that. */
	kt_set_arg(t, 0, 2);
	uint32_t release = 5;
	kt_write(t, kt_sym(t, "release"), &release, sizeof release);
	kt_run_expect(t, 0, 5);
}

static void test_state_round_trips(void **state)
{
	kt_opts o = { .guest = "vcpus", .cpl = 3 };
	kt_vm *t = kt_create(state, &o);
	vmm_vcpu *v = t->vcpu[0];

	vmm_regs r, r2;
	kt_check(vmm_vcpu_get_regs(v, &r), "get_regs");
	assert_int_equal(r.rip, t->elf.entry);
	assert_int_equal(r.rsp, KT_STACK_TOP);
	assert_int_equal(r.rflags & 0x3000, 0x3000); /* IOPL 3 at CPL 3 */
	uint64_t *w = &r.rax;
	for (int i = 0; i < 16; i++)
		w[i] = 0x1111111111111111ull * (uint64_t)(i + 1) ^ 0xa5;
	r.rip = 0x100123;
	r.rflags = 0x3202;
	kt_check(vmm_vcpu_set_regs(v, &r), "set_regs");
	kt_check(vmm_vcpu_get_regs(v, &r2), "get_regs");
	assert_memory_equal(&r, &r2, sizeof r);

	vmm_sregs s, s2;
	kt_check(vmm_vcpu_get_sregs(v, &s), "get_sregs");
	assert_int_equal(s.cs.dpl, 3);
	assert_int_equal(s.cs.l, 1);
	assert_true(s.efer & (1u << 10)); /* LMA */
	assert_true(s.cr0 & 0x80000001u); /* PG, PE */
	s.cr2 = 0x123456789000ull;
	kt_check(vmm_vcpu_set_sregs(v, &s), "set_sregs");
	kt_check(vmm_vcpu_get_sregs(v, &s2), "get_sregs");
	assert_int_equal(s2.cr2, s.cr2);
	assert_int_equal(s2.cr3, s.cr3);
	assert_int_equal(s2.efer, s.efer);
	assert_int_equal(s2.gdt.base, s.gdt.base);
	assert_int_equal(s2.idt.limit, s.idt.limit);
	assert_int_equal(s2.tr.selector, s.tr.selector);

	vmm_fpu f, f2;
	kt_check(vmm_vcpu_get_fpu(v, &f), "get_fpu");
	for (int i = 0; i < 16; i++)
		f.xmm[3][i] = (uint8_t)(0xf0 + i);
	f.fcw = 0x27f;
	kt_check(vmm_vcpu_set_fpu(v, &f), "set_fpu");
	kt_check(vmm_vcpu_get_fpu(v, &f2), "get_fpu");
	assert_memory_equal(f2.xmm[3], f.xmm[3], 16);
	assert_int_equal(f2.fcw, 0x27f);

	const uint32_t idx[2] = { 0xc0000103u /* TSC_AUX */, 0xc0000102u /* KERNEL_GS_BASE */ };
	const uint64_t val[2] = { 0x1234, 0xffff800012345000ull };
	uint64_t got[2] = { 0, 0 };
	kt_check(vmm_vcpu_set_msrs(v, idx, val, 2), "set_msrs");
	kt_check(vmm_vcpu_get_msrs(v, idx, got, 2), "get_msrs");
	assert_int_equal(got[0], val[0]);
	assert_int_equal(got[1], val[1]);

	/* Identity map: a virtual address translates to itself. */
	uint64_t gpa = 0;
	kt_check(vmm_vcpu_translate(v, 0x123456, &gpa), "translate");
	assert_int_equal(gpa, 0x123456);
	kt_check(vmm_vcpu_translate(v, 0xfffff000ull, &gpa), "translate");
	assert_int_equal(gpa, 0xfffff000ull);
}

/* Other objects' argument checks, through a VM. */
static void test_other_bad_arguments(void **state)
{
	kt_opts o = { .guest = "vcpus", .cpl = 3 };
	kt_vm *t = kt_create(state, &o);
	vmm_mem_region_opts mo = VMM_MEM_REGION_OPTS_INIT;
	mo.gpa = 0x4000001;
	mo.len = 4096;
	assert_int_equal(vmm_mem_add_region(t->mem, &mo), -EINVAL);
	mo.gpa = 0x4000000;
	mo.len = 0;
	assert_int_equal(vmm_mem_add_region(t->mem, &mo), -EINVAL);
	mo.len = 4096;
	mo.gpa = 0x1000; /* inside RAM */
	assert_int_equal(vmm_mem_add_region(t->mem, &mo), -EEXIST);

	vmm_bus_ops ops = { 0 };
	assert_int_equal(vmm_bus_register(t->bus, VMM_BUS_PIO, 0xe9, 1, &ops, NULL), -EEXIST);
	assert_int_equal(vmm_bus_register(t->bus, VMM_BUS_PIO, 0x200, 0, &ops, NULL), -EINVAL);
	assert_int_equal(vmm_bus_register(t->bus, VMM_BUS_PIO, 0xfff0, 0x20, &ops, NULL), -EINVAL);
	assert_int_equal(vmm_bus_unregister(t->bus, VMM_BUS_PIO, 0x200), -ENOENT);

	vmm_elf_info info;
	assert_int_equal(vmm_elf_load_file(t->mem, GUEST_DIR "/no-such-guest.elf", &info), -ENOENT);
	static const uint8_t junk[64] = { 0x7f, 'E', 'L', 'F' };
	assert_int_equal(vmm_elf_load(t->mem, junk, sizeof junk, &info), -EINVAL);
	uint64_t sym;
	assert_int_equal(vmm_elf_symbol(t->image, t->image_size, "no_such_symbol", &sym), -ENOENT);
}

/* True if KVM has the VM's in-kernel irqchip (KVM_GET_IRQCHIP answers). */
static bool kvm_has_irqchip(vmm_vm *vm)
{
	struct kvm_irqchip c;
	memset(&c, 0, sizeof c);
	c.chip_id = KVM_IRQCHIP_PIC_MASTER;
	return ioctl(vmm_vm_fd(vm), KVM_GET_IRQCHIP, &c) == 0;
}

/* The interrupt controller is made in KVM when first needed, so memory added before it
 * does not pay the cost of the first slot after KVM_CREATE_IRQCHIP: not by
 * vmm_vm_create, but by the first vCPU, or by the first vmm_irq call that reaches KVM
 * (which then works before any vCPU exists); the guest-visible result is the same. */
static void test_irqchip_on_demand(void **state)
{
	(void)state;
	vmm_vm *vm;
	kt_check(vmm_vm_create(&vm, NULL), "vmm_vm_create");
	assert_false(kvm_has_irqchip(vm));
	vmm_mem_region_opts ram = VMM_MEM_REGION_OPTS_INIT;
	ram.len = 2u << 20;
	kt_check(vmm_mem_add_region(vmm_vm_mem(vm), &ram), "add RAM");
	assert_false(kvm_has_irqchip(vm));
	vmm_vcpu *cpu;
	kt_check(vmm_vcpu_create(&cpu, vm, NULL), "vmm_vcpu_create");
	assert_true(kvm_has_irqchip(vm));
	vmm_vm_destroy(vm);

	/* An irq call first: routes and irqfds work before any vCPU exists; an MSI finds
	 * no LAPIC yet. */
	uint64_t addr;
	uint32_t data;
	vmm_irq_msi_for(0, 0x40, &addr, &data);
	for (int split = 0; split < 2; split++) {
		vmm_vm_opts o = VMM_VM_OPTS_INIT;
		o.irqchip = split ? VMM_IRQCHIP_SPLIT : VMM_IRQCHIP_KERNEL;
		kt_check(vmm_vm_create(&vm, &o), "vmm_vm_create");
		vmm_irq *irq = vmm_vm_irq(vm);
		kt_check(vmm_irq_route_msi(irq, 40, addr, data), "vmm_irq_route_msi before any vCPU");
		assert_int_equal(kvm_has_irqchip(vm), !split); /* split: no PIC to read */
		int efd = eventfd(0, EFD_CLOEXEC);
		assert_true(efd >= 0);
		kt_check(vmm_irq_add_irqfd(irq, efd, 40, -1), "vmm_irq_add_irqfd before any vCPU");
		assert_int_equal(vmm_irq_msi(irq, addr, data), -EAGAIN);
		kt_check(vmm_vcpu_create(&cpu, vm, NULL), "vmm_vcpu_create after the irqchip");
		vmm_vm_destroy(vm);
		close(efd);
	}
}

int main(void)
{
	kvm_test_require();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_destroy_running_vm, kt_teardown),
		cmocka_unit_test_teardown(test_destroy_running_vcpu, kt_teardown),
		cmocka_unit_test(test_create_many),
		cmocka_unit_test(test_vm_bad_arguments),
		cmocka_unit_test(test_vm_eacces),
		cmocka_unit_test(test_vm_missing_caps),
		cmocka_unit_test(test_strerror),
		cmocka_unit_test(test_irqchip_on_demand),
		cmocka_unit_test_teardown(test_vcpu_bad_arguments, kt_teardown),
		cmocka_unit_test_teardown(test_state_round_trips, kt_teardown),
		cmocka_unit_test_teardown(test_other_bad_arguments, kt_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
