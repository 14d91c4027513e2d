/* The 16550 UART with a real CPL-0 guest (tests/guests/platform_uart.c), in the
 * kernel-irqchip and split-irqchip compositions: the guest probes and programs the UART
 * like Linux's 8250 driver, its output reaches the host callback, and host input reaches
 * its interrupt handler through IOAPIC pin 4 (edge-triggered, as ACPI describes COM1):
 * input queued while the vCPU is stopped, input sent from another thread while the guest
 * sits in HLT, and a burst larger than the FIFO. Each delivery is one interrupt. */
#include "harness/harness.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define READY 0x5541u
#define VECTOR 0x44u
#define GREETING "hello from the guest's 16550\r\n"

struct capture {
	pthread_mutex_t lock;
	char buf[1024];
	size_t len;
};

static void capture_out(void *ctx, const void *data, size_t len)
{
	struct capture *c = ctx;
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < len && c->len < sizeof c->buf - 1; i++)
		c->buf[c->len++] = ((const char *)data)[i];
	c->buf[c->len] = 0;
	pthread_mutex_unlock(&c->lock);
}

/* The device and its capture outlive a failing test's longjmp: freed in teardown, before
 * the VM whose bus the device is registered on. */
static vmm_uart *uart;
static struct capture cap = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int teardown(void **state)
{
	vmm_uart_destroy(uart);
	uart = NULL;
	return kt_teardown(state);
}

struct later {
	vmm_uart *uart;
	const char *s;
	long accepted;
};

static void *input_later(void *arg)
{
	struct later *l = arg;
	usleep(100 * 1000); /* the guest is in HLT by now (or soon): either way it must wake */
	l->accepted = vmm_uart_input(l->uart, l->s, strlen(l->s));
	return NULL;
}

/* Runs until the guest's handler has received `total` bytes; returns how many
 * interrupts it took. */
static unsigned run_until_received(kt_vm *t, uint32_t total)
{
	unsigned irqs = 0;
	for (;;) {
		vmm_exit e;
		int r = kt_run(t, 0, &e, 0);
		char buf[256];
		if (r != 0 || e.reason != VMM_EXIT_GUEST || (e.u.guest.code >> 16) != VECTOR ||
		    (e.u.guest.code & 0xffff) > total)
			fail_msg("waiting for %u bytes: r=%d %s; %s", total, r,
				 kt_exit_str(&e, buf, sizeof buf), vmm_last_error());
		irqs++;
		if ((e.u.guest.code & 0xffff) == total)
			return irqs;
	}
}

static void check_received(kt_vm *t, const char *expect)
{
	size_t n = strlen(expect);
	char got[1024];
	assert_true(n < sizeof got);
	kt_read(t, kt_sym(t, "rx_buf"), got, n);
	assert_memory_equal(got, expect, n);
}

static void run_uart(void **state, vmm_irqchip_mode mode)
{
	kt_opts o = { .guest = "platform_uart", .cpl = 0, .irqchip = mode };
	kt_vm *t = kt_create(state, &o);
	kt_set_gate(t, 0, VECTOR, "uart_isr", 0);
	cap.len = 0;
	cap.buf[0] = 0;
	vmm_uart_opts uo = VMM_UART_OPTS_INIT;
	uo.backend = VMM_UART_CALLBACK;
	uo.output = capture_out;
	uo.ctx = &cap;
	kt_check(vmm_uart_create(&uart, t->vm, &uo), "vmm_uart_create");

	/* Probe, setup and the greeting, written polling THRE. */
	kt_run_expect(t, 0, READY);
	pthread_mutex_lock(&cap.lock);
	assert_string_equal(cap.buf, GREETING);
	pthread_mutex_unlock(&cap.lock);

	/* Input queued while the vCPU is out of the guest: one interrupt on entry. */
	assert_int_equal(vmm_uart_input(uart, "ping", 4), 4);
	assert_int_equal(run_until_received(t, 4), 1);
	check_received(t, "ping");

	/* Input from another thread while the guest waits in HLT. */
	struct later l = { .uart = uart, .s = "pong!" };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, input_later, &l), 0);
	unsigned irqs = run_until_received(t, 9);
	pthread_join(th, NULL);
	assert_int_equal(l.accepted, 5);
	assert_int_equal(irqs, 1);
	check_received(t, "pingpong!");

	/* A burst six times the FIFO: the handler drains it all, refilled from the
	 * device's buffer as it reads. */
	char burst[101];
	for (int i = 0; i < 100; i++)
		burst[i] = (char)('A' + i % 26);
	burst[100] = 0;
	assert_int_equal(vmm_uart_input(uart, burst, 100), 100);
	irqs = run_until_received(t, 109);
	assert_int_equal(irqs, 1);
	char all[110];
	snprintf(all, sizeof all, "pingpong!%s", burst);
	check_received(t, all);

	/* The guest's handler ran once per report: no spurious or lost interrupts. */
	assert_int_equal(kt_read_u64(t, kt_sym(t, "isr_count")) & 0xffffffff, 3);
	/* Nothing more is pending: a kick comes back as a kick (the guest stays in HLT). */
	vmm_vcpu_kick(t->vcpu[0]);
	vmm_exit e;
	assert_int_equal(vmm_vcpu_run(t->vcpu[0], &e), 0);
	assert_int_equal(e.reason, VMM_EXIT_KICK);
}

static void test_kernel_irqchip(void **state) { run_uart(state, VMM_IRQCHIP_KERNEL); }
static void test_split_irqchip(void **state) { run_uart(state, VMM_IRQCHIP_SPLIT); }

/* The same ports cannot be claimed twice on one VM. */
static void test_ports_taken(void **state)
{
	kt_opts o = { .guest = NULL, .cpl = 0 };
	kt_vm *t = kt_create(state, &o);
	kt_check(vmm_uart_create(&uart, t->vm, NULL), "vmm_uart_create");
	vmm_uart *second = NULL;
	assert_int_equal(vmm_uart_create(&second, t->vm, NULL), -EEXIST);
	vmm_uart_opts uo = VMM_UART_OPTS_INIT;
	uo.port = VMM_UART_COM2_PORT;
	uo.gsi = VMM_UART_COM2_GSI;
	kt_check(vmm_uart_create(&second, t->vm, &uo), "vmm_uart_create(COM2)");
	vmm_uart_destroy(second);
}

int main(void)
{
	kvm_test_require();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_kernel_irqchip, teardown),
		cmocka_unit_test_teardown(test_split_irqchip, teardown),
		cmocka_unit_test_teardown(test_ports_taken, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
