/* Save and restore of real guests (tests/guests/snap_count.c, snap_irq.c):
 *  - a CPL-3 guest stopped in the middle of its count (a kick) continues exactly where it
 *    was after a restore into a new VM: registers, special registers, FPU/SSE state, MSRs,
 *    LAPIC, PIC/IOAPIC/PIT and every byte of memory compare equal to the saved state, and
 *    the count and its running hash go on without a skipped or repeated iteration;
 *  - a snapshot taken right after a port-I/O exit does not repeat that I/O on restore
 *    (an OUT to the exit port, and an IN KVM has not completed yet);
 *  - memory that stays in place (a memfd): lazy clones run side by side without seeing
 *    each other's writes, an eager copy runs, and a shared restore resumes on the memfd
 *    itself;
 *  - x2APIC + IOAPIC state: a halted guest receives its interrupt in the new VM;
 *  - a save while a vCPU runs is refused; restore errors are clear. */
#include "test_snapshot_common.h"

#define EVERY (1u << 24)

static void set_u64(kt_vm *t, const char *sym, uint64_t v)
{
	kt_write(t, kt_sym(t, sym), &v, sizeof v);
}

/* Runs to the next report and checks it and the guest's counter and hash. */
static void expect_report(kt_vm *t, uint32_t k, uint64_t sym_counter, uint64_t sym_hash)
{
	kt_run_expect(t, 0, k);
	uint64_t n = (uint64_t)k * EVERY;
	assert_int_equal(kt_read_u64(t, sym_counter), n);
	assert_int_equal(kt_read_u64(t, sym_hash), st_count_hash(n));
}

/* vmm_sregs has padding: compare it field by field. */
static void segment_equal(const vmm_segment *a, const vmm_segment *b)
{
	assert_int_equal(a->base, b->base);
	assert_int_equal(a->limit, b->limit);
	assert_int_equal(a->selector, b->selector);
	assert_int_equal(a->type, b->type);
	assert_int_equal(a->present, b->present);
	assert_int_equal(a->dpl, b->dpl);
	assert_int_equal(a->db, b->db);
	assert_int_equal(a->s, b->s);
	assert_int_equal(a->l, b->l);
	assert_int_equal(a->g, b->g);
	assert_int_equal(a->avl, b->avl);
	assert_int_equal(a->unusable, b->unusable);
}

static void sregs_equal(const vmm_sregs *a, const vmm_sregs *b)
{
	segment_equal(&a->cs, &b->cs);
	segment_equal(&a->ds, &b->ds);
	segment_equal(&a->es, &b->es);
	segment_equal(&a->fs, &b->fs);
	segment_equal(&a->gs, &b->gs);
	segment_equal(&a->ss, &b->ss);
	segment_equal(&a->tr, &b->tr);
	segment_equal(&a->ldt, &b->ldt);
	assert_int_equal(a->gdt.base, b->gdt.base);
	assert_int_equal(a->gdt.limit, b->gdt.limit);
	assert_int_equal(a->idt.base, b->idt.base);
	assert_int_equal(a->idt.limit, b->idt.limit);
	assert_int_equal(a->cr0, b->cr0);
	assert_int_equal(a->cr2, b->cr2);
	assert_int_equal(a->cr3, b->cr3);
	assert_int_equal(a->cr4, b->cr4);
	assert_int_equal(a->cr8, b->cr8);
	assert_int_equal(a->efer, b->efer);
	assert_int_equal(a->apic_base, b->apic_base);
}

static void test_count_continues(void **state)
{
	kt_opts ko = { .guest = "snap_count", .cpl = 3 };
	kt_vm *t = kt_create(state, &ko);
	uint64_t sym_counter = kt_sym(t, "counter"), sym_hash = kt_sym(t, "hash");
	set_u64(t, "cfg_every", EVERY);
	kt_run_expect(t, 0, 1);
	uint32_t k = st_run_until_kicked(t, 0, 1);
	uint64_t c0 = kt_read_u64(t, sym_counter);
	st_assert_mid_count(c0, k, EVERY);

	st_files f;
	st_files_init(&f);
	uint64_t h1 = st_mem_hash(t->vm);
	st_save(t->vm, &f);
	vmm_vm *vm2 = st_restore(&f, VMM_SNAPSHOT_MEM_EAGER);
	kt_vm *t2 = st_wrap(vm2, 3);

	/* Every byte of memory, and all the state, as saved. */
	assert_int_equal(st_mem_hash(vm2), h1);
	assert_int_equal(st_mem_hash(t->vm), h1);
	struct snap_desc *saved = st_parse_file(f.state);
	struct snap_desc *now2 = st_capture(vm2), *now1 = st_capture(t->vm);
	st_compare(saved, now2, 10);
	st_compare(saved, now1, 10);
	assert_int_equal(saved->nr_vcpus, 1);
	assert_true(saved->have & SNAP_HAVE_PIT);
	assert_int_equal(saved->pit.channels[0].count, 0x1234);
	assert_int_equal(saved->pit.channels[0].mode, 2);
	assert_int_equal(saved->pic[0].imr, 0xff);
	snap_desc_free(now1);
	snap_desc_free(now2);
	snap_desc_free(saved);

	/* The same through the public getters, and the values the guest loaded. */
	vmm_regs r1, r2;
	vmm_sregs s1, s2;
	vmm_fpu f1, f2;
	kt_check(vmm_vcpu_get_regs(t->vcpu[0], &r1), "regs");
	kt_check(vmm_vcpu_get_regs(t2->vcpu[0], &r2), "regs");
	assert_memory_equal(&r1, &r2, sizeof r1);
	kt_check(vmm_vcpu_get_sregs(t->vcpu[0], &s1), "sregs");
	kt_check(vmm_vcpu_get_sregs(t2->vcpu[0], &s2), "sregs");
	sregs_equal(&s1, &s2);
	assert_int_equal(s2.cs.dpl, 3);
	memset(&f1, 0, sizeof f1); /* the getter fills fields, not padding */
	memset(&f2, 0, sizeof f2);
	kt_check(vmm_vcpu_get_fpu(t->vcpu[0], &f1), "fpu");
	kt_check(vmm_vcpu_get_fpu(t2->vcpu[0], &f2), "fpu");
	assert_memory_equal(&f1, &f2, sizeof f1);
	assert_int_equal(f2.fcw, 0xf7f);
	for (int i = 0; i < 16; i++)
		for (int j = 0; j < 16; j++)
			assert_int_equal(f2.xmm[i][j], (uint8_t)(16 * i + j + 1));
	static const uint32_t msrs[] = { 0x277, 0xc0000081, 0xc0000082, 0xc0000102, 0x174, 0x175, 0x176 };
	uint64_t m1[7], m2[7];
	kt_check(vmm_vcpu_get_msrs(t->vcpu[0], msrs, m1, 7), "msrs");
	kt_check(vmm_vcpu_get_msrs(t2->vcpu[0], msrs, m2, 7), "msrs");
	assert_memory_equal(m1, m2, sizeof m1);

	/* Both continue: the next report, with the counter and hash of exactly that many
	 * iterations. */
	expect_report(t2, k + 1, sym_counter, sym_hash);
	expect_report(t, k + 1, sym_counter, sym_hash);

	/* A save right after a report (an OUT the vCPU has not completed yet): the restored
	 * VM must not report k + 1 again. */
	st_save(vm2, &f);
	vmm_vm *vm3 = st_restore(&f, VMM_SNAPSHOT_MEM_LAZY);
	kt_vm *t3 = st_wrap(vm3, 3);
	expect_report(t3, k + 2, sym_counter, sym_hash);
	expect_report(t2, k + 2, sym_counter, sym_hash);
	expect_report(t3, k + 3, sym_counter, sym_hash);

	/* A lazily restored VM (private file mapping) saves like any other; by fd, not into
	 * the very file it runs on; by path, the file is replaced and the VM keeps the old. */
	vmm_snapshot_save_opts so = VMM_SNAPSHOT_SAVE_OPTS_INIT;
	so.state_path = f.state;
	so.mem_fd = open(f.mem, O_RDWR | O_CLOEXEC);
	assert_true(so.mem_fd >= 0);
	assert_int_equal(vmm_snapshot_save(vm3, &so), -EINVAL);
	assert_non_null(strstr(vmm_last_error(), "mapped from"));
	close(so.mem_fd);
	st_save(vm3, &f);
	vmm_vm *vm4 = st_restore(&f, VMM_SNAPSHOT_MEM_EAGER);
	kt_vm *t4 = st_wrap(vm4, 3);
	assert_int_equal(st_mem_hash(vm4), st_mem_hash(vm3));
	expect_report(t4, k + 4, sym_counter, sym_hash);

	kt_destroy(t4);
	kt_destroy(t3);
	kt_destroy(t2);
	st_files_remove(&f);
}

/* A save between a port-read exit and its completion: the restored guest must not read
 * the port again (KVM finishes an IN only at the next KVM_RUN; the save does that). */
static void test_pending_in(void **state)
{
	kt_opts ko = { .guest = "snap_io", .cpl = 3, .vm_flags = VMM_VM_EXIT_ON_UNHANDLED_IO };
	kt_vm *t = kt_create(state, &ko);
	vmm_exit e;
	kt_check(kt_run(t, 0, &e, 0), "run");
	assert_int_equal(e.reason, VMM_EXIT_IO);
	assert_int_equal(e.u.io.addr, 0x99);
	assert_int_equal(e.u.io.is_write, 0);
	st_files f;
	st_files_init(&f);
	st_save(t->vm, &f);
	vmm_vm *vm2 = st_restore(&f, VMM_SNAPSHOT_MEM_EAGER);
	kt_vm *t2 = st_wrap(vm2, 3);
	kt_run_expect(t2, 0, 0x1ff);
	kt_run_expect(t2, 0, 0x200);
	kt_run_expect(t, 0, 0x1ff);
	kt_destroy(t2);
	st_files_remove(&f);
}

/* Memory stays in the memfd: the original is destroyed (its memfd kept), then two lazy
 * clones run side by side, each seeing only its own writes while the memfd keeps the
 * snapshot's bytes; an eager copy runs too; finally a shared restore resumes on the
 * memfd itself and its writes land there. */
static void test_in_place(void **state)
{
	kt_opts ko = { .guest = "snap_count", .cpl = 3 };
	kt_vm *t = kt_create(state, &ko);
	uint64_t sym_counter = kt_sym(t, "counter"), sym_hash = kt_sym(t, "hash");
	set_u64(t, "cfg_every", EVERY);
	kt_run_expect(t, 0, 1);

	st_files f;
	st_files_init(&f);
	vmm_snapshot_save_opts so = VMM_SNAPSHOT_SAVE_OPTS_INIT;
	so.flags = VMM_SNAPSHOT_SAVE_MEM_IN_PLACE;
	so.state_path = f.state;
	kt_check(vmm_snapshot_save(t->vm, &so), "save in place");
	assert_int_equal(access(f.mem, F_OK), -1); /* no memory file */
	assert_int_equal(vmm_mem_region_count(t->mem), 1);
	vmm_mem_region_info info;
	kt_check(vmm_mem_get_region(t->mem, 0, &info), "region");
	int memfd = dup(info.fd);
	assert_true(memfd >= 0);
	kt_destroy(t);
	*state = NULL;

	vmm_snapshot_restore_opts ro = VMM_SNAPSHOT_RESTORE_OPTS_INIT;
	ro.state_path = f.state;
	ro.region_fds = &memfd;
	ro.nr_region_fds = 1;
	/* The memory file options are for snapshots with one; the fd count must match. */
	ro.mem_fd = memfd;
	vmm_vm *bad = NULL;
	assert_int_equal(vmm_snapshot_restore(&bad, &ro), -EINVAL);
	ro.mem_fd = -1;
	ro.nr_region_fds = 2;
	assert_int_equal(vmm_snapshot_restore(&bad, &ro), -EINVAL);
	assert_non_null(strstr(vmm_last_error(), "region fds"));
	assert_null(bad);
	ro.nr_region_fds = 1;

	ro.mem_mode = VMM_SNAPSHOT_MEM_LAZY;
	vmm_vm *a = NULL, *b = NULL, *c = NULL;
	kt_check(vmm_snapshot_restore(&a, &ro), "lazy clone a");
	kt_check(vmm_snapshot_restore(&b, &ro), "lazy clone b");
	ro.mem_mode = VMM_SNAPSHOT_MEM_EAGER;
	kt_check(vmm_snapshot_restore(&c, &ro), "eager copy c");
	kt_vm *ta = st_wrap(a, 3), *tb = st_wrap(b, 3), *tc = st_wrap(c, 3);
	expect_report(ta, 2, sym_counter, sym_hash);
	expect_report(ta, 3, sym_counter, sym_hash);
	assert_int_equal(kt_read_u64(tb, sym_counter), EVERY); /* b has not moved */
	expect_report(tb, 2, sym_counter, sym_hash);
	assert_int_equal(kt_read_u64(ta, sym_counter), 3ull * EVERY);
	expect_report(tc, 2, sym_counter, sym_hash);
	uint64_t v;
	assert_int_equal(pread(memfd, &v, sizeof v, (off_t)sym_counter), sizeof v);
	assert_int_equal(v, EVERY); /* the snapshot's memory is untouched */
	kt_destroy(ta);
	kt_destroy(tb);
	kt_destroy(tc);

	ro.mem_mode = VMM_SNAPSHOT_MEM_SHARED;
	vmm_vm *shared = NULL;
	kt_check(vmm_snapshot_restore(&shared, &ro), "restore shared");
	kt_vm *ts = st_wrap(shared, 3);
	*state = ts;
	expect_report(ts, 2, sym_counter, sym_hash);
	assert_int_equal(pread(memfd, &v, sizeof v, (off_t)sym_counter), sizeof v);
	assert_int_equal(v, 2ull * EVERY); /* its writes land in the memfd */
	close(memfd);
	st_files_remove(&f);
}

/* x2APIC, LAPIC and IOAPIC state: the halted guest gets its IOAPIC interrupt in the new
 * VM (and in the old one). */
static void test_irqchip(void **state)
{
	kt_opts ko = { .guest = "snap_irq", .cpl = 0 };
	kt_vm *t = kt_create(state, &ko);
	kt_set_gate(t, 0, 0x42, "edge_handler", 0);
	kt_run_expect(t, 0, 0x52454459);
	/* Let it reach its HLT (in the kernel: the watchdog's kick brings it back). */
	vmm_exit e;
	assert_int_equal(kt_run(t, 0, &e, 100), -ETIMEDOUT);

	st_files f;
	st_files_init(&f);
	st_save(t->vm, &f);
	struct snap_desc *saved = st_parse_file(f.state);
	assert_int_equal(saved->vcpus[0].mp_state, KVM_MP_STATE_HALTED);
	assert_int_equal(saved->vcpus[0].sregs.apic_base & 0xc00, 0xc00); /* x2APIC on */
	assert_int_equal(saved->ioapic.redirtbl[6].fields.vector, 0x42);
	assert_int_equal(saved->ioapic.redirtbl[6].fields.mask, 0);

	vmm_vm *vm2 = st_restore(&f, VMM_SNAPSHOT_MEM_LAZY);
	kt_vm *t2 = st_wrap(vm2, 0);
	struct snap_desc *now = st_capture(vm2);
	st_compare(saved, now, 10);
	snap_desc_free(now);
	snap_desc_free(saved);
	uint32_t svr_idx = 0x80f;
	uint64_t svr;
	kt_check(vmm_vcpu_get_msrs(t2->vcpu[0], &svr_idx, &svr, 1), "x2APIC SVR");
	assert_int_equal(svr & 0x1ff, 0x1ff);
	/* The IDT gate set before the save can be set again (the library knows the IDT). */
	kt_check(vmm_vcpu_set_idt_gate(t2->vcpu[0], 0x42, kt_sym(t, "edge_handler"), 0), "set gate");

	kt_check(vmm_irq_pulse(t2->irq, 6), "pulse pin 6");
	kt_run_expect(t2, 0, 0x42u << 16 | 1);
	kt_check(vmm_irq_pulse(t2->irq, 6), "pulse pin 6");
	kt_run_expect(t2, 0, 0x42u << 16 | 2);
	kt_check(vmm_irq_pulse(t->irq, 6), "pulse pin 6 (original)");
	kt_run_expect(t, 0, 0x42u << 16 | 1);
	kt_destroy(t2);
	st_files_remove(&f);
}

/* Two vCPUs, each stopped at its own point of its own count: the restored VM has them in
 * the same order with the same ids, and each continues exactly. */
static void test_two_vcpus(void **state)
{
	kt_opts ko = { .guest = "snap_count", .cpl = 3, .vcpus = 2 };
	kt_vm *t = kt_create(state, &ko);
	uint64_t sym_counter = kt_sym(t, "counter"), sym_hash = kt_sym(t, "hash");
	set_u64(t, "cfg_every", EVERY);
	kt_set_arg(t, 1, 1);
	/* vCPU 0 at report 1 (a completed OUT), vCPU 1 kicked in the middle. */
	kt_run_expect(t, 0, 1);
	uint32_t k1 = st_run_until_kicked(t, 1, 0);
	st_assert_mid_count(kt_read_u64(t, sym_counter + 8), k1, EVERY);

	st_files f;
	st_files_init(&f);
	st_save(t->vm, &f);
	vmm_vm *vm2 = st_restore(&f, VMM_SNAPSHOT_MEM_LAZY);
	kt_vm *t2 = st_wrap(vm2, 3);
	assert_int_equal(t2->nvcpus, 2);
	assert_int_equal(vmm_vcpu_id(t2->vcpu[0]), 0);
	assert_int_equal(vmm_vcpu_id(t2->vcpu[1]), 1);
	assert_null(vmm_vm_get_vcpu(vm2, 2));
	struct snap_desc *saved = st_parse_file(f.state), *now = st_capture(vm2);
	st_compare(saved, now, 10);
	snap_desc_free(now);
	snap_desc_free(saved);

	kt_run_expect(t2, 1, k1 + 1);
	assert_int_equal(kt_read_u64(t2, sym_counter + 8), (uint64_t)(k1 + 1) * EVERY);
	assert_int_equal(kt_read_u64(t2, sym_hash + 8), st_count_hash((uint64_t)(k1 + 1) * EVERY));
	expect_report(t2, 2, sym_counter, sym_hash);
	kt_destroy(t2);
	st_files_remove(&f);
}

struct busy_ctx {
	int exits;
};

static int busy_fn(void *ctx, vmm_vcpu *vcpu, const vmm_exit *exit, int err)
{
	(void)vcpu;
	(void)err;
	struct busy_ctx *c = ctx;
	c->exits++;
	return exit && exit->reason == VMM_EXIT_KICK ? 1 : 0;
}

/* A save while a vCPU is inside vmm_vcpu_run is refused, and the VM is unharmed. */
static void test_busy(void **state)
{
	kt_opts ko = { .guest = "snap_count", .cpl = 3 };
	kt_vm *t = kt_create(state, &ko);
	set_u64(t, "cfg_every", UINT64_MAX); /* never reports */
	struct busy_ctx c = { 0 };
	kt_check(vmm_vcpu_start(t->vcpu[0], busy_fn, &c), "start");
	while (kt_read_u64(t, kt_sym(t, "counter")) == 0)
		usleep(1000);
	st_files f;
	st_files_init(&f);
	vmm_snapshot_save_opts o = VMM_SNAPSHOT_SAVE_OPTS_INIT;
	o.state_path = f.state;
	o.mem_path = f.mem;
	assert_int_equal(vmm_snapshot_save(t->vm, &o), -EBUSY);
	assert_non_null(strstr(vmm_last_error(), "vmm_vcpu_kick"));
	assert_int_equal(access(f.state, F_OK), -1); /* nothing left behind */
	assert_int_equal(access(f.mem, F_OK), -1);
	vmm_vcpu_kick(t->vcpu[0]);
	int result = 0;
	kt_check(vmm_vcpu_join(t->vcpu[0], &result), "join");
	assert_int_equal(result, 1);
	/* Stopped now: the save works, and the restored guest counts on. */
	st_save(t->vm, &f);
	uint64_t c0 = kt_read_u64(t, kt_sym(t, "counter"));
	vmm_vm *vm2 = st_restore(&f, VMM_SNAPSHOT_MEM_EAGER);
	kt_vm *t2 = st_wrap(vm2, 3);
	vmm_exit e;
	/* 50 ms runs until it has counted: a shared host can stall this vCPU's CPU for
	 * the whole of one run while the watchdog's CPU goes on. */
	uint64_t now = c0;
	for (int i = 0; i < 200 && now <= c0; i++) {
		assert_int_equal(kt_run(t2, 0, &e, 50), -ETIMEDOUT);
		now = kt_read_u64(t2, kt_sym(t, "counter"));
	}
	assert_true(now > c0);
	kt_destroy(t2);
	st_files_remove(&f);
}

/* Restore errors that concern the files, not the format (the format's own errors are
 * in tests/unit/test_snapshot_format.c). */
static void test_restore_errors(void **state)
{
	kt_opts ko = { .guest = "snap_count", .cpl = 3 };
	kt_vm *t = kt_create(state, &ko);
	set_u64(t, "cfg_every", EVERY);
	kt_run_expect(t, 0, 1);
	st_files a, b;
	st_files_init(&a);
	st_files_init(&b);
	st_save(t->vm, &a);
	st_save(t->vm, &b);
	vmm_vm *vm = NULL;
	vmm_snapshot_restore_opts o = VMM_SNAPSHOT_RESTORE_OPTS_INIT;

	/* The memory file of another snapshot. */
	o.state_path = a.state;
	o.mem_path = b.mem;
	assert_int_equal(vmm_snapshot_restore(&vm, &o), -EINVAL);
	assert_non_null(strstr(vmm_last_error(), "different snapshot"));
	/* No memory file. */
	o.mem_path = NULL;
	assert_int_equal(vmm_snapshot_restore(&vm, &o), -EINVAL);
	/* A truncated memory file. */
	o.mem_path = a.mem;
	assert_int_equal(truncate(a.mem, 8192), 0);
	assert_int_equal(vmm_snapshot_restore(&vm, &o), -EINVAL);
	assert_non_null(strstr(vmm_last_error(), "truncated"));
	/* A corrupted state file. */
	o.state_path = b.state;
	o.mem_path = b.mem;
	int fd = open(b.state, O_RDWR);
	assert_true(fd >= 0);
	uint8_t byte;
	assert_int_equal(pread(fd, &byte, 1, 200), 1);
	byte ^= 0x10;
	assert_int_equal(pwrite(fd, &byte, 1, 200), 1);
	close(fd);
	assert_int_equal(vmm_snapshot_restore(&vm, &o), -EBADMSG);
	assert_null(vm);
	/* Bad options. */
	o.mem_mode = (vmm_snapshot_mem_mode)7;
	assert_int_equal(vmm_snapshot_restore(&vm, &o), -EINVAL);
	assert_int_equal(vmm_snapshot_restore(NULL, &o), -EINVAL);
	vmm_snapshot_save_opts so = VMM_SNAPSHOT_SAVE_OPTS_INIT;
	so.state_path = a.state;
	assert_int_equal(vmm_snapshot_save(t->vm, &so), -EINVAL); /* no memory file */
	st_files_remove(&a);
	st_files_remove(&b);
}

int main(void)
{
	kvm_test_require();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_count_continues, kt_teardown),
		cmocka_unit_test_teardown(test_pending_in, kt_teardown),
		cmocka_unit_test_teardown(test_in_place, kt_teardown),
		cmocka_unit_test_teardown(test_irqchip, kt_teardown),
		cmocka_unit_test_teardown(test_two_vcpus, kt_teardown),
		cmocka_unit_test_teardown(test_busy, kt_teardown),
		cmocka_unit_test_teardown(test_restore_errors, kt_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
