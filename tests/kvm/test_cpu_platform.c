/* End to end through real guests: what a guest sees of the CPUID table libvmm installs,
 * and timer interrupts of the in-kernel PIT.
 *
 * CPUID (tests/guests/cpu_cpuid.c): a table made with the public API (the default,
 * features hidden by name, and a filter callback that writes a marker signature into
 * the hypervisor leaf 0x40000000, hides kvmclock in 0x40000001 and lowers the highest
 * basic leaf) is installed with vmm_vcpu_set_cpuid on an existing vCPU and through
 * vmm_vcpu_opts.cpuid on a new one; the guest executes CPUID and the host compares every
 * register with the table, and checks that a vCPU with the default table in the same VM
 * sees the default (so the values did not come from somewhere else).
 *
 * Nested-PVM hosts (vmm_linux_host_is_nested, see PLATFORM.md) differ from bare-metal
 * KVM in two documented ways, which the tests allow only there:
 *  - CPUID at CPL 3 is not intercepted: the guest sees the host CPU's values. The CPL-3
 *    test then accepts, register by register, the table's value or the host's.
 *  - At CPL 0 the feature registers of leaves 1 (ECX, EDX) and 7 show host bits whatever
 *    the table says (measured: RDRAND, MOVBE, AVX2, BMI1 stay set after being hidden;
 *    leaf 7 EDX is the host's as a whole). There every bit the guest sees must be the
 *    table's or the host CPU's; the hidden features of leaf 0x80000001, the paravirt
 *    leaves, leaf 0, the APIC ids and all other registers must match exactly
 *    everywhere.
 *
 * PIT (tests/guests/cpu_pit.c): with the default composition (in-kernel PIC, IOAPIC and
 * PIT), a CPL-0 guest programs channel 0 for 100 Hz and counts the interrupts on IOAPIC
 * pins 0 and 2. libvmm's routing is the identity (GSI n = pin n; KVM's PIT raises GSI 0,
 * see VMM_ACPI_IRQ0_TO_GSI2), so all ticks must arrive on pin 0, no faster than the
 * programmed rate allows. Without the in-kernel PIT (VMM_VM_NO_PIT) none arrive. */
#include "harness/harness.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* ---- CPUID ---- */

#define CPUID_MAX_QUERIES 16 /* as in tests/guests/cpu_cpuid.c */
#define CPUID_DONE 0xc1d00000u

struct cpuid_query {
	uint32_t leaf, sub;
};

static const struct cpuid_query queries[] = {
	{ 0, 0 }, { 1, 0 }, { 7, 0 }, { 0xb, 0 },
	{ 0x40000000, 0 }, { 0x40000001, 0 }, { 0x80000000, 0 }, { 0x80000001, 0 },
};
#define NQUERIES (sizeof queries / sizeof queries[0])

static const char marker_sig[12] = { 'l', 'i', 'b', 'v', 'm', 'm', '-', 'c', 'p', 'u', 'i', 'd' };
static const char kvm_sig[12] = { 'K', 'V', 'M', 'K', 'V', 'M', 'K', 'V', 'M', 0, 0, 0 };

#define KVM_FEATURE_CLOCKSOURCE (1u << 0)
#define KVM_FEATURE_CLOCKSOURCE2 (1u << 3)
#define FILTER_MAX_BASIC_LEAF 0xdu

/* Hidden by name; each is in a different leaf register. "Portable" ones must be hidden
 * from the guest on every host; the others are among those nested-PVM hosts leak. */
static const struct hidden {
	const char *name;
	uint32_t leaf;
	vmm_cpuid_reg reg;
	uint32_t bit;
	bool leaks_on_nested;
} hidden[] = {
	{ "lahf_lm", 0x80000001, VMM_CPUID_ECX, 1u << 0, false },
	{ "3dnowprefetch", 0x80000001, VMM_CPUID_ECX, 1u << 8, false },
	{ "rdrand", 1, VMM_CPUID_ECX, 1u << 30, true },
	{ "movbe", 1, VMM_CPUID_ECX, 1u << 22, true },
	{ "avx2", 7, VMM_CPUID_EBX, 1u << 5, true },
};
#define NHIDDEN (sizeof hidden / sizeof hidden[0])

struct filter_ctx {
	size_t calls;
	bool saw_sig_leaf, saw_pv_leaf;
};

static int marker_filter(void *opaque, vmm_cpuid_entry *e)
{
	struct filter_ctx *c = opaque;
	c->calls++;
	if (e->function == 0 && e->eax > FILTER_MAX_BASIC_LEAF)
		e->eax = FILTER_MAX_BASIC_LEAF;
	if (e->function == 0x40000000) {
		memcpy(&e->ebx, marker_sig, 4);
		memcpy(&e->ecx, marker_sig + 4, 4);
		memcpy(&e->edx, marker_sig + 8, 4);
		c->saw_sig_leaf = true;
	}
	if (e->function == 0x40000001) {
		e->eax &= ~(KVM_FEATURE_CLOCKSOURCE | KVM_FEATURE_CLOCKSOURCE2);
		c->saw_pv_leaf = true;
	}
	/* Changes to the entry's place in the table are discarded. */
	e->function ^= 0x1000;
	e->flags ^= 0x4;
	return 0;
}

static uint32_t reg_of(const vmm_cpuid_entry *e, vmm_cpuid_reg r)
{
	const uint32_t v[4] = { e->eax, e->ebx, e->ecx, e->edx };
	return v[r];
}

static vmm_cpuid_entry get_entry(const vmm_cpuid *c, uint32_t leaf, uint32_t sub)
{
	vmm_cpuid_entry e;
	kt_check(vmm_cpuid_get(c, leaf, sub, &e), "vmm_cpuid_get");
	return e;
}

/* The default table for vCPU `id`, filtered as described at the top; checks the table
 * itself (host side): every filtered value differs from the default one. */
static vmm_cpuid *filtered_table(kt_vm *t, uint32_t id, vmm_cpuid **default_out)
{
	vmm_cpuid *def, *c;
	kt_check(vmm_cpuid_create_default(&def, t->vm, id), "vmm_cpuid_create_default");
	kt_check(vmm_cpuid_clone(&c, def), "vmm_cpuid_clone");
	for (size_t i = 0; i < NHIDDEN; i++)
		kt_check(vmm_cpuid_hide_feature(c, hidden[i].name), hidden[i].name);
	struct filter_ctx ctx = { 0 };
	kt_check(vmm_cpuid_filter(c, marker_filter, &ctx), "vmm_cpuid_filter");
	assert_int_equal(ctx.calls, vmm_cpuid_count(c));
	assert_true(ctx.saw_sig_leaf);
	assert_true(ctx.saw_pv_leaf);

	/* Every leaf the guest asks for is in both tables (leaf 0xB at its place). */
	for (size_t i = 0; i < NQUERIES; i++) {
		get_entry(def, queries[i].leaf, queries[i].sub);
		get_entry(c, queries[i].leaf, queries[i].sub);
	}
	vmm_cpuid_entry d = get_entry(def, 0x40000000, 0), f = get_entry(c, 0x40000000, 0);
	assert_memory_equal(&d.ebx, kvm_sig, 4);
	assert_memory_equal(&d.ecx, kvm_sig + 4, 4);
	assert_memory_equal(&d.edx, kvm_sig + 8, 4);
	assert_memory_equal(&f.ebx, marker_sig, 4);
	assert_int_equal(f.eax, d.eax);
	d = get_entry(def, 0x40000001, 0);
	f = get_entry(c, 0x40000001, 0);
	assert_true(d.eax & (KVM_FEATURE_CLOCKSOURCE | KVM_FEATURE_CLOCKSOURCE2));
	assert_int_equal(f.eax, d.eax & ~(KVM_FEATURE_CLOCKSOURCE | KVM_FEATURE_CLOCKSOURCE2));
	d = get_entry(def, 0, 0);
	f = get_entry(c, 0, 0);
	assert_true(d.eax >= 0xb);
	assert_int_equal(f.eax, d.eax < FILTER_MAX_BASIC_LEAF ? d.eax : FILTER_MAX_BASIC_LEAF);
	/* x2APIC id of this vCPU in leaves 1 and 0xB. */
	assert_int_equal(get_entry(c, 1, 0).ebx >> 24, id);
	assert_int_equal(get_entry(c, 0xb, 0).edx, id);
	for (size_t i = 0; i < NHIDDEN; i++) {
		vmm_cpuid_entry e = get_entry(c, hidden[i].leaf, 0);
		assert_int_equal(reg_of(&e, hidden[i].reg) & hidden[i].bit, 0);
	}
	/* At least one portable hidden bit was offered by default, or hiding proves
	 * nothing on this host. */
	bool any = false;
	for (size_t i = 0; i < NHIDDEN; i++) {
		vmm_cpuid_entry e = get_entry(def, hidden[i].leaf, 0);
		if (!hidden[i].leaks_on_nested && (reg_of(&e, hidden[i].reg) & hidden[i].bit))
			any = true;
	}
	assert_true(any);
	if (default_out)
		*default_out = def;
	else
		vmm_cpuid_destroy(def);
	return c;
}

/* Bits KVM computes at run time from guest state, whatever the table says: OSXSAVE
 * (CR4), APIC (IA32_APIC_BASE enable), OSPKE (CR4). */
static uint32_t dynamic_bits(uint32_t leaf, uint32_t sub, vmm_cpuid_reg r)
{
	if (leaf == 1 && r == VMM_CPUID_ECX)
		return 1u << 27;
	if (leaf == 1 && r == VMM_CPUID_EDX)
		return 1u << 9;
	if (leaf == 7 && sub == 0 && r == VMM_CPUID_ECX)
		return 1u << 4;
	return 0;
}

/* Registers whose feature bits a nested-PVM host may replace by its own at CPL 0 (only
 * the bits set in the host's CPUID may appear). */
static bool leaky_on_nested(uint32_t leaf, vmm_cpuid_reg r)
{
	return (leaf == 1 && (r == VMM_CPUID_ECX || r == VMM_CPUID_EDX)) ||
	       (leaf == 7 && r != VMM_CPUID_EAX);
}

/* Bits of the host's CPUID that depend on the CPU that executes it: the APIC ids. */
static uint32_t per_cpu_bits(uint32_t leaf, vmm_cpuid_reg r)
{
	if (leaf == 1 && r == VMM_CPUID_EBX)
		return 0xff000000u;
	if (leaf == 0xb && r == VMM_CPUID_EDX)
		return ~0u;
	return 0;
}

static void host_cpuid(uint32_t leaf, uint32_t sub, uint32_t out[4])
{
	__asm__ volatile("cpuid" : "=a"(out[0]), "=b"(out[1]), "=c"(out[2]), "=d"(out[3]) : "a"(leaf), "c"(sub));
}

static const char *const reg_name[4] = { "eax", "ebx", "ecx", "edx" };

/* Runs vCPU `cpu` of the cpu_cpuid guest and compares what it saw with `want`. */
static void expect_guest_sees(kt_vm *t, unsigned cpu, unsigned cpl, const vmm_cpuid *want, const char *what)
{
	uint32_t n = NQUERIES;
	_Static_assert(NQUERIES <= CPUID_MAX_QUERIES, "too many queries");
	uint32_t zero[CPUID_MAX_QUERIES][4];
	memset(zero, 0xa5, sizeof zero);
	kt_write(t, kt_sym(t, "cpuid_result"), zero, sizeof zero);
	kt_write(t, kt_sym(t, "cpuid_query"), queries, sizeof queries);
	kt_write(t, kt_sym(t, "cpuid_nquery"), &n, sizeof n);
	kt_console_clear(t);
	kt_run_expect(t, cpu, CPUID_DONE | NQUERIES);
	uint32_t seen[CPUID_MAX_QUERIES][4];
	kt_read(t, kt_sym(t, "cpuid_result"), seen, sizeof seen);

	bool nested = vmm_linux_host_is_nested();
	char bad[4096];
	size_t len = 0;
	unsigned host_values = 0;
	bad[0] = 0;
	for (size_t i = 0; i < NQUERIES; i++) {
		uint32_t leaf = queries[i].leaf, sub = queries[i].sub, native[4];
		vmm_cpuid_entry e = get_entry(want, leaf, sub);
		host_cpuid(leaf, sub, native);
		for (vmm_cpuid_reg r = VMM_CPUID_EAX; r <= VMM_CPUID_EDX; r++) {
			uint32_t mask = ~dynamic_bits(leaf, sub, r), w = reg_of(&e, r), g = seen[i][r];
			if ((g & mask) == (w & mask))
				continue;
			/* Nested PVM at CPL 3: the host CPU's value, which holds the APIC id
			 * of whichever host CPU ran the guest. */
			uint32_t pcpu = ~per_cpu_bits(leaf, r);
			if (nested && cpl == 3 && (g & pcpu) == (native[r] & pcpu)) {
				host_values++;
				continue;
			}
			/* Nested PVM at CPL 0: each bit the guest sees is the table's or the
			 * host CPU's (leaf 7 EDX was measured to be the host's as a whole). */
			if (nested && cpl == 0 && leaky_on_nested(leaf, r) && (g & mask & ~(w | native[r])) == 0) {
				host_values++;
				continue;
			}
			len += (size_t)snprintf(bad + len, sizeof bad - len,
						" [%#x.%u %s: guest %#x, table %#x, host %#x]", leaf, sub,
						reg_name[r], g, w, native[r]);
			if (len >= sizeof bad)
				len = sizeof bad - 1;
		}
	}
	if (len) {
		char cbuf[2048];
		fail_msg("%s (CPL %u%s): the guest's CPUID differs from the installed table:%s; console:\n%s",
			 what, cpl, nested ? ", nested host" : "", bad, kt_console(t, cbuf, sizeof cbuf));
	}
	if (host_values)
		print_message("note: %s (CPL %u): %u register(s) showed the host CPU's bits "
			      "(nested-PVM host, see PLATFORM.md)\n", what, cpl, host_values);
}

/* What the guest sees of leaf 0x40000000's signature registers. */
static void guest_sig(kt_vm *t, char sig[12])
{
	uint32_t seen[CPUID_MAX_QUERIES][4];
	kt_read(t, kt_sym(t, "cpuid_result"), seen, sizeof seen);
	for (size_t i = 0; i < NQUERIES; i++)
		if (queries[i].leaf == 0x40000000) {
			memcpy(sig, &seen[i][1], 4);
			memcpy(sig + 4, &seen[i][2], 4);
			memcpy(sig + 8, &seen[i][3], 4);
			return;
		}
	fail_msg("no 0x40000000 query");
}

/* vmm_vcpu_set_cpuid on the harness's vCPU 0 before its first run. */
static void run_set_cpuid(void **state, unsigned cpl)
{
	kt_opts o = { .guest = "cpu_cpuid", .cpl = cpl };
	kt_vm *t = kt_create(state, &o);
	vmm_cpuid *c = filtered_table(t, 0, NULL);
	vmm_cpuid *installed;
	kt_check(vmm_cpuid_clone(&installed, c), "vmm_cpuid_clone");
	kt_check(vmm_vcpu_set_cpuid(t->vcpu[0], c), "vmm_vcpu_set_cpuid");
	/* The table was copied: changing and freeing ours afterwards changes nothing. */
	kt_check(vmm_cpuid_update(c, 0x40000000, 0, VMM_CPUID_EBX, ~0u, 0x12345678), "vmm_cpuid_update");
	vmm_cpuid_destroy(c);

	expect_guest_sees(t, 0, cpl, installed, "vmm_vcpu_set_cpuid");
	char sig[12];
	guest_sig(t, sig);
	bool nested = vmm_linux_host_is_nested();
	if (cpl == 0 || !nested)
		assert_memory_equal(sig, marker_sig, sizeof sig);
	vmm_cpuid_destroy(installed);
}

static void test_set_cpuid_cpl0(void **state) { run_set_cpuid(state, 0); }
static void test_set_cpuid_cpl3(void **state) { run_set_cpuid(state, 3); }

/* vmm_vcpu_opts.cpuid on a second vCPU (id 1) of the same VM; vCPU 0 keeps the default
 * table and must see it: the marker comes from vCPU 1's table, not from the VM. */
static void test_vcpu_opts_cpuid(void **state)
{
	kt_opts o = { .guest = "cpu_cpuid", .cpl = 0 };
	kt_vm *t = kt_create(state, &o);
	vmm_cpuid *c = filtered_table(t, 1, NULL);
	vmm_vcpu_opts co = VMM_VCPU_OPTS_INIT;
	co.id = 1;
	co.cpuid = c;
	kt_check(vmm_vcpu_create(&t->vcpu[1], t->vm, &co), "vmm_vcpu_create(id 1, cpuid)");
	t->nvcpus = 2;
	vmm_long_mode_opts lm = VMM_LONG_MODE_OPTS_INIT;
	lm.cpl = 0;
	lm.entry = t->elf.entry;
	lm.stack = KT_STACK_TOP - KT_STACK_SPACING;
	lm.system_area = VMM_LONG_MODE_SYSTEM_AREA_SIZE;
	kt_check(vmm_vcpu_setup_long_mode(t->vcpu[1], &lm), "vmm_vcpu_setup_long_mode(1)");

	expect_guest_sees(t, 1, 0, c, "vmm_vcpu_opts.cpuid");
	char sig[12];
	guest_sig(t, sig);
	assert_memory_equal(sig, marker_sig, sizeof sig);

	vmm_cpuid *def0;
	kt_check(vmm_cpuid_create_default(&def0, t->vm, 0), "vmm_cpuid_create_default(0)");
	expect_guest_sees(t, 0, 0, def0, "default table");
	guest_sig(t, sig);
	assert_memory_equal(sig, kvm_sig, sizeof sig);
	vmm_cpuid_destroy(def0);
	vmm_cpuid_destroy(c);
}

/* ---- PIT ---- */

#define PIT_DONE 0x7170d000u
#define PIT_TICKS 10u
#define PIT_PERIOD_MS 10u /* 100 Hz, as programmed by the guest */
#define PIT_DEADLINE_MS 20000u

static uint32_t guest_u32(kt_vm *t, const char *sym)
{
	uint32_t v;
	kt_read(t, kt_sym(t, sym), &v, sizeof v);
	return v;
}

static void test_pit_ioapic_pin0(void **state)
{
	kt_opts o = { .guest = "cpu_pit", .cpl = 0 }; /* default: kernel irqchip with PIT */
	kt_vm *t = kt_create(state, &o);
	kt_set_gate(t, 0, 0x30, "pit_pin0_handler", 0);
	kt_set_gate(t, 0, 0x32, "pit_pin2_handler", 0);
	kt_set_arg(t, 0, PIT_TICKS);
	vmm_exit e;
	uint64_t start = kt_now_ms();
	int r = kt_run(t, 0, &e, PIT_DEADLINE_MS);
	uint64_t elapsed = kt_now_ms() - start;
	uint32_t pin0 = guest_u32(t, "pin0_count"), pin2 = guest_u32(t, "pin2_count");
	if (r != 0 || e.reason != VMM_EXIT_GUEST || e.u.guest.code != PIT_DONE) {
		char buf[256], cbuf[1024];
		fail_msg("PIT guest: r=%d (%s) %s after %" PRIu64 " ms; pin 0: %u, pin 2: %u interrupts, "
			 "PIT programmed: %u; last error: %s; console: \"%s\"", r, vmm_strerror(r),
			 kt_exit_str(&e, buf, sizeof buf), elapsed, pin0, pin2,
			 guest_u32(t, "pit_programmed"), vmm_last_error(), kt_console(t, cbuf, sizeof cbuf));
	}
	print_message("PIT: %u interrupts on pin 0, %u on pin 2 in %" PRIu64 " ms\n", pin0, pin2, elapsed);
	assert_true(pin0 >= PIT_TICKS);
	assert_int_equal(pin2, 0);
	/* Ticks cannot come faster than the programmed rate (KVM may catch up on ticks it
	 * delivered late, but never runs ahead): 10 ticks take at least 9 periods. */
	assert_true(elapsed >= (PIT_TICKS - 1) * PIT_PERIOD_MS);
	char cbuf[256];
	char want[64];
	snprintf(want, sizeof want, "pit: pin0 %u pin2 0\n", pin0);
	assert_string_equal(kt_console(t, cbuf, sizeof cbuf), want);
}

/* Without the in-kernel PIT the same guest gets no timer interrupt: they did come from
 * the PIT. (Port writes to 0x40/0x43 then reach no device and are dropped.) */
static void test_no_pit_no_ticks(void **state)
{
	kt_opts o = { .guest = "cpu_pit", .cpl = 0, .vm_flags = VMM_VM_NO_PIT };
	kt_vm *t = kt_create(state, &o);
	kt_set_gate(t, 0, 0x30, "pit_pin0_handler", 0);
	kt_set_gate(t, 0, 0x32, "pit_pin2_handler", 0);
	kt_set_arg(t, 0, 1);
	vmm_exit e;
	int r = kt_run(t, 0, &e, 1000);
	char buf[256];
	if (r != -ETIMEDOUT)
		fail_msg("without a PIT: expected the guest to wait forever, got r=%d %s", r,
			 kt_exit_str(&e, buf, sizeof buf));
	assert_int_equal(guest_u32(t, "pit_programmed"), 1);
	assert_int_equal(guest_u32(t, "pin0_count"), 0);
	assert_int_equal(guest_u32(t, "pin2_count"), 0);
}

int main(void)
{
	kvm_test_require();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_set_cpuid_cpl0, kt_teardown),
		cmocka_unit_test_teardown(test_set_cpuid_cpl3, kt_teardown),
		cmocka_unit_test_teardown(test_vcpu_opts_cpuid, kt_teardown),
		cmocka_unit_test_teardown(test_pit_ioapic_pin0, kt_teardown),
		cmocka_unit_test_teardown(test_no_pit_no_ticks, kt_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
