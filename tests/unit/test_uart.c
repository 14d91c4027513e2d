/* Unit tests for the 16550A UART through a standalone bus: registers, divisor latch,
 * FIFO and held-back input, interrupt identification and the INTR line (with OUT2 and
 * loopback gating), Linux's loopback probe, the callback and fd back ends. */
#include <fcntl.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <libvmm/libvmm.h>
#include "devices/platform_internal.h"

#define BASE 0x3f8u
enum { RBR = 0, IER = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7 };

struct fixture {
	vmm_bus *bus;
	vmm_uart *uart;
	char out[256];
	size_t out_len;
	bool echo; /* the output callback feeds each byte back as input */
};

static void capture(void *ctx, const void *data, size_t len)
{
	struct fixture *f = ctx;
	for (size_t i = 0; i < len && f->out_len < sizeof f->out; i++)
		f->out[f->out_len++] = ((const char *)data)[i];
	if (f->echo)
		assert_int_equal(vmm_uart_input(f->uart, data, len), (long)len);
}

static uint8_t rd(struct fixture *f, unsigned reg)
{
	uint8_t v = 0;
	assert_int_equal(vmm_bus_read(f->bus, VMM_BUS_PIO, BASE + reg, &v, 1), 0);
	return v;
}

static void wr(struct fixture *f, unsigned reg, uint8_t v)
{
	assert_int_equal(vmm_bus_write(f->bus, VMM_BUS_PIO, BASE + reg, &v, 1), 0);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	assert_non_null(f);
	assert_int_equal(vmm_bus_create(&f->bus), 0);
	vmm_uart_opts o = VMM_UART_OPTS_INIT;
	o.backend = VMM_UART_CALLBACK;
	o.output = capture;
	o.ctx = f;
	o.bus = f->bus;
	assert_int_equal(vmm_uart_create(&f->uart, NULL, &o), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	vmm_uart_destroy(f->uart);
	vmm_bus_destroy(f->bus);
	free(f);
	return 0;
}

static void test_reset_state(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(rd(f, IER), 0);
	assert_int_equal(rd(f, IIR), 0x01);  /* nothing pending, FIFOs off */
	assert_int_equal(rd(f, LCR), 0);
	assert_int_equal(rd(f, MCR), 0);
	assert_int_equal(rd(f, LSR), 0x60);  /* THRE | TEMT, no data */
	assert_int_equal(rd(f, MSR), 0xb0);  /* DCD | DSR | CTS: a terminal is there */
	assert_int_equal(rd(f, RBR), 0);     /* empty */
	assert_false(vmm_uart_irq_level(f->uart));
}

static void test_output(void **state)
{
	struct fixture *f = *state;
	const char *s = "hello, 16550\r\n";
	for (size_t i = 0; s[i]; i++) {
		assert_true(rd(f, LSR) & 0x20);
		wr(f, RBR, (uint8_t)s[i]);
	}
	assert_int_equal(f->out_len, strlen(s));
	assert_memory_equal(f->out, s, strlen(s));
}

static void test_divisor_latch_and_scratch(void **state)
{
	struct fixture *f = *state;
	wr(f, LCR, 0x83); /* DLAB, 8N1 */
	wr(f, RBR, 0x01); /* DLL: 115200 baud */
	wr(f, IER, 0x00); /* DLM */
	assert_int_equal(rd(f, RBR), 0x01);
	assert_int_equal(rd(f, IER), 0x00);
	wr(f, RBR, 0x0c);
	wr(f, IER, 0x34);
	assert_int_equal(rd(f, RBR), 0x0c);
	assert_int_equal(rd(f, IER), 0x34);
	wr(f, LCR, 0x03);
	assert_int_equal(rd(f, LCR), 0x03);
	assert_int_equal(f->out_len, 0); /* divisor writes are not output */
	assert_int_equal(rd(f, IER), 0); /* IER untouched by DLM */
	wr(f, LCR, 0x83);
	assert_int_equal(rd(f, RBR), 0x0c); /* the divisor kept its value */
	wr(f, LCR, 0x03);

	/* IER has 4 bits: Linux writes bit 6 to probe for an XScale UART. */
	wr(f, IER, 0xff);
	assert_int_equal(rd(f, IER), 0x0f);
	wr(f, IER, 0);

	wr(f, SCR, 0xa5);
	assert_int_equal(rd(f, SCR), 0xa5);
	wr(f, SCR, 0x5a);
	assert_int_equal(rd(f, SCR), 0x5a);

	/* LSR and MSR ignore writes. */
	wr(f, LSR, 0x00);
	assert_int_equal(rd(f, LSR), 0x60);
}

/* What Linux's 8250 autoconfig does before it believes there is a UART. */
static void test_linux_probe(void **state)
{
	struct fixture *f = *state;
	/* IER read-back test. */
	wr(f, IER, 0);
	assert_int_equal(rd(f, IER) & 0x0f, 0);
	wr(f, IER, 0x0f);
	assert_int_equal(rd(f, IER) & 0x0f, 0x0f);
	wr(f, IER, 0);
	/* Loopback: MCR = LOOP | OUT2 | RTS must read back in MSR as DCD | CTS. */
	wr(f, MCR, 0x1a);
	assert_int_equal(rd(f, MSR) & 0xf0, 0x90);
	wr(f, MCR, 0x1f);
	assert_int_equal(rd(f, MSR) & 0xf0, 0xf0);
	wr(f, MCR, 0x10);
	assert_int_equal(rd(f, MSR) & 0xf0, 0x00);
	/* Loopback data goes to the receiver, not the back end. */
	wr(f, RBR, 'x');
	assert_int_equal(rd(f, LSR) & 0x01, 0x01);
	assert_int_equal(rd(f, RBR), 'x');
	assert_int_equal(rd(f, LSR) & 0x01, 0);
	assert_int_equal(f->out_len, 0);
	/* FIFO enable shows in IIR bits 7:6 (16550A); 64-byte mode does not stick. */
	wr(f, MCR, 0x0b);
	wr(f, FCR, 0x07);
	assert_int_equal(rd(f, IIR) & 0xc0, 0xc0);
	wr(f, LCR, 0x80);
	wr(f, FCR, 0x27);
	assert_int_equal(rd(f, IIR) & 0x20, 0);
	wr(f, LCR, 0x03);
	wr(f, FCR, 0x00);
	assert_int_equal(rd(f, IIR) & 0xc0, 0);
}

static void test_rx_fifo_and_hold(void **state)
{
	struct fixture *f = *state;
	char in[100];
	for (size_t i = 0; i < sizeof in; i++)
		in[i] = (char)('a' + i % 26);
	/* FIFOs off: one byte at a time reaches RBR, the rest waits. */
	assert_int_equal(vmm_uart_input(f->uart, in, 50), 50);
	for (size_t i = 0; i < 50; i++) {
		assert_true(rd(f, LSR) & 0x01);
		assert_int_equal(rd(f, RBR), (uint8_t)in[i]);
	}
	assert_int_equal(rd(f, LSR) & 0x01, 0);
	/* FIFOs on. */
	wr(f, FCR, 0x01);
	assert_int_equal(vmm_uart_input(f->uart, in, sizeof in), sizeof in);
	for (size_t i = 0; i < sizeof in; i++)
		assert_int_equal(rd(f, RBR), (uint8_t)in[i]);
	assert_int_equal(rd(f, LSR), 0x60); /* no overrun from host input, ever */
}

static void test_hold_is_bounded(void **state)
{
	struct fixture *f = *state;
	size_t big = 70000;
	uint8_t *in = malloc(big);
	assert_non_null(in);
	for (size_t i = 0; i < big; i++)
		in[i] = (uint8_t)(i * 7);
	wr(f, FCR, 0x01);
	/* 64 KiB wait behind the FIFO; the FIFO took 16 of them at once, which makes
	 * room for 16 more; then it is full. */
	size_t took = (size_t)vmm_uart_input(f->uart, in, big);
	assert_int_equal(took, 65536);
	assert_int_equal(vmm_uart_input(f->uart, in + took, big - took), 16);
	took += 16;
	assert_int_equal(vmm_uart_input(f->uart, in + took, big - took), 0);
	for (size_t i = 0; i < 100; i++)
		assert_int_equal(rd(f, RBR), in[i]);
	/* Reading made room for exactly what was read. */
	assert_int_equal(vmm_uart_input(f->uart, in + took, big - took), 100);
	took += 100;
	for (size_t i = 100; i < took; i++)
		assert_int_equal(rd(f, RBR), in[i]);
	assert_int_equal(rd(f, LSR) & 0x01, 0);
	assert_int_equal(vmm_uart_input(f->uart, NULL, 0), 0);
	assert_int_equal(vmm_uart_input(f->uart, NULL, 1), -EINVAL);
	assert_int_equal(vmm_uart_input(NULL, in, 1), -EINVAL);
	free(in);
}

static void test_interrupts(void **state)
{
	struct fixture *f = *state;
	wr(f, MCR, 0x0b); /* DTR | RTS | OUT2 */

	/* Received data. */
	wr(f, IER, 0x01);
	assert_false(vmm_uart_irq_level(f->uart));
	assert_int_equal(vmm_uart_input(f->uart, "ab", 2), 2);
	assert_int_equal(rd(f, IIR), 0x04);
	assert_true(vmm_uart_irq_level(f->uart));
	assert_int_equal(rd(f, RBR), 'a');
	assert_int_equal(rd(f, IIR), 0x04); /* 'b' moved up */
	assert_int_equal(rd(f, RBR), 'b');
	assert_int_equal(rd(f, IIR), 0x01);
	assert_false(vmm_uart_irq_level(f->uart));

	/* Transmitter empty: raised when enabled, acknowledged by reading IIR, raised
	 * again by each THR write. */
	wr(f, IER, 0x02);
	assert_true(vmm_uart_irq_level(f->uart));
	assert_int_equal(rd(f, IIR), 0x02);
	assert_false(vmm_uart_irq_level(f->uart));
	assert_int_equal(rd(f, IIR), 0x01);
	wr(f, RBR, 'z');
	assert_true(vmm_uart_irq_level(f->uart));
	wr(f, IER, 0x00);
	assert_false(vmm_uart_irq_level(f->uart));
	wr(f, IER, 0x02); /* re-enabling re-raises */
	assert_int_equal(rd(f, IIR), 0x02);

	/* Priority: data over THRE. */
	wr(f, IER, 0x03);
	wr(f, RBR, 'y'); /* THRE pending again */
	assert_int_equal(vmm_uart_input(f->uart, "c", 1), 1);
	assert_int_equal(rd(f, IIR), 0x04);
	assert_int_equal(rd(f, RBR), 'c');
	assert_int_equal(rd(f, IIR), 0x02);
	assert_int_equal(rd(f, IIR), 0x01);

	/* OUT2 gates the line; loopback forces it off. */
	wr(f, IER, 0x01);
	assert_int_equal(vmm_uart_input(f->uart, "d", 1), 1);
	assert_true(vmm_uart_irq_level(f->uart));
	wr(f, MCR, 0x03);
	assert_false(vmm_uart_irq_level(f->uart));
	assert_int_equal(rd(f, IIR), 0x04); /* still pending, just not wired */
	wr(f, MCR, 0x1b);
	assert_false(vmm_uart_irq_level(f->uart));
	wr(f, MCR, 0x0b);
	assert_true(vmm_uart_irq_level(f->uart));
	assert_int_equal(rd(f, RBR), 'd');
	assert_false(vmm_uart_irq_level(f->uart));
	assert_int_equal(f->out_len, 2); /* 'z' and 'y' */
}

static void test_line_status_and_modem_status(void **state)
{
	struct fixture *f = *state;
	wr(f, IER, 0x07);
	/* Overrun in loopback, FIFO off: the second byte finds RBR full. */
	wr(f, MCR, 0x1b);
	(void)rd(f, IIR); /* acknowledge THRE from enabling it */
	wr(f, RBR, '1');
	wr(f, RBR, '2');
	assert_int_equal(rd(f, IIR), 0x06); /* line status first */
	assert_int_equal(rd(f, LSR), 0x63); /* THRE TEMT OE DR */
	assert_int_equal(rd(f, IIR), 0x04); /* then the data */
	assert_int_equal(rd(f, LSR), 0x61); /* OE was cleared by the read */
	assert_int_equal(rd(f, RBR), '1');
	assert_int_equal(rd(f, IIR), 0x02); /* THRE from the writes */
	assert_int_equal(rd(f, IIR), 0x01);

	/* Modem status: in loopback, toggling RTS changes CTS. */
	wr(f, IER, 0x08);
	(void)rd(f, MSR);
	wr(f, MCR, 0x19); /* RTS off */
	assert_int_equal(rd(f, IIR), 0x00);
	assert_int_equal(rd(f, MSR), 0xa1); /* DCD DSR, delta CTS */
	assert_int_equal(rd(f, IIR), 0x01);
	wr(f, MCR, 0x1d); /* OUT1 on: RI */
	assert_int_equal(rd(f, MSR) & 0x44, 0x40);
	wr(f, MCR, 0x19); /* RI trailing edge */
	assert_int_equal(rd(f, MSR) & 0x4f, 0x04);
}

static void test_fifo_trigger_and_timeout(void **state)
{
	struct fixture *f = *state;
	wr(f, MCR, 0x08);
	wr(f, IER, 0x01);
	wr(f, FCR, 0xc7); /* FIFO on, cleared, trigger 14 */
	assert_int_equal(vmm_uart_input(f->uart, "0123456789abc", 13), 13);
	assert_int_equal(rd(f, IIR), 0xcc); /* below the trigger: character timeout */
	assert_int_equal(vmm_uart_input(f->uart, "d", 1), 1);
	assert_int_equal(rd(f, IIR), 0xc4); /* at the trigger */
	wr(f, FCR, 0xc3);                   /* clear the receive FIFO */
	assert_int_equal(rd(f, LSR) & 0x01, 0);
	assert_int_equal(rd(f, IIR), 0xc1);
	assert_false(vmm_uart_irq_level(f->uart));
}

static void test_wide_access(void **state)
{
	struct fixture *f = *state;
	wr(f, IER, 0x05);
	wr(f, SCR, 0x77);
	uint16_t v16 = 0;
	assert_int_equal(vmm_bus_read(f->bus, VMM_BUS_PIO, BASE + 6, &v16, 2), 0);
	assert_int_equal(v16, 0x77b0); /* MSR, SCR */
	/* Bytes to IER, FCR, LCR, MCR in turn. */
	uint32_t v32 = 0x0b030000u;
	assert_int_equal(vmm_bus_write(f->bus, VMM_BUS_PIO, BASE + 1, &v32, 4), 0);
	assert_int_equal(rd(f, IER), 0);
	assert_int_equal(rd(f, LCR), 0x03);
	assert_int_equal(rd(f, MCR), 0x0b);
	/* An access straddling the end of the 8 ports is not the UART's. */
	assert_int_equal(vmm_bus_read(f->bus, VMM_BUS_PIO, BASE + 7, &v16, 2), -ENOENT);
}

static void test_echo_from_output_callback(void **state)
{
	struct fixture *f = *state;
	f->echo = true; /* the callback calls vmm_uart_input on the locked device */
	wr(f, FCR, 0x01);
	wr(f, RBR, 'e');
	wr(f, RBR, 'f');
	assert_int_equal(rd(f, RBR), 'e');
	assert_int_equal(rd(f, RBR), 'f');
	assert_int_equal(f->out_len, 2);
}

static void test_bad_options(void **state)
{
	struct fixture *f = *state;
	vmm_uart *u = NULL;
	vmm_uart_opts o = VMM_UART_OPTS_INIT;
	assert_int_equal(vmm_uart_create(&u, NULL, &o), -EINVAL); /* no VM, no bus */
	assert_int_equal(vmm_uart_create(&u, NULL, NULL), -EINVAL);
	assert_int_equal(vmm_uart_create(NULL, NULL, &o), -EINVAL);
	o.bus = f->bus;
	assert_int_equal(vmm_uart_create(&u, NULL, &o), -EEXIST); /* COM1 is taken */
	o.port = 0xfffc;
	assert_int_equal(vmm_uart_create(&u, NULL, &o), -EINVAL);
	o.port = VMM_UART_COM2_PORT;
	o.backend = VMM_UART_CALLBACK;
	assert_int_equal(vmm_uart_create(&u, NULL, &o), -EINVAL); /* no output function */
	o.backend = (vmm_uart_backend)7;
	assert_int_equal(vmm_uart_create(&u, NULL, &o), -EINVAL);
	o.backend = VMM_UART_FD;
	o.in_fd = 0;
	assert_int_equal(vmm_uart_create(&u, NULL, &o), -EINVAL); /* in_fd needs a loop */
	o.in_fd = -1;
	o.gsi = VMM_IRQ_MAX_GSI;
	assert_int_equal(vmm_uart_create(&u, NULL, &o), -EINVAL);
	o.gsi = 3;
	o.size = 2;
	assert_int_equal(vmm_uart_create(&u, NULL, &o), -EINVAL);
	o.size = sizeof o;
	/* A sink: no fds. */
	assert_int_equal(vmm_uart_create(&u, NULL, &o), 0);
	uint8_t b = 'q';
	assert_int_equal(vmm_bus_write(f->bus, VMM_BUS_PIO, VMM_UART_COM2_PORT, &b, 1), 0);
	vmm_uart_destroy(u);
	/* Gone from the bus. */
	assert_int_equal(vmm_bus_write(f->bus, VMM_BUS_PIO, VMM_UART_COM2_PORT, &b, 1), -ENOENT);
	vmm_uart_destroy(NULL);
}

/* ---- fd back end ---- */

static void test_fd_backend(void **state)
{
	(void)state;
	int in[2], outp[2];
	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(outp), 0);
	vmm_bus *bus;
	vmm_loop *loop;
	assert_int_equal(vmm_bus_create(&bus), 0);
	assert_int_equal(vmm_loop_create(&loop), 0);
	vmm_uart_opts o = VMM_UART_OPTS_INIT;
	o.in_fd = in[0];
	o.out_fd = outp[1];
	o.loop = loop;
	o.bus = bus;
	vmm_uart *u;
	assert_int_equal(vmm_uart_create(&u, NULL, &o), 0);
	struct fixture f = { .bus = bus, .uart = u };

	/* Output goes straight to the pipe. */
	wr(&f, RBR, 'O');
	wr(&f, RBR, 'K');
	char buf[8] = { 0 };
	assert_int_equal(read(outp[0], buf, sizeof buf), 2);
	assert_memory_equal(buf, "OK", 2);

	/* Input is read on the loop. */
	wr(&f, FCR, 0x01);
	assert_int_equal(write(in[1], "in!", 3), 3);
	assert_int_equal(rd(&f, LSR) & 0x01, 0); /* the loop has not run */
	assert_true(vmm_loop_run_once(loop, 1000) >= 1);
	assert_int_equal(rd(&f, RBR), 'i');
	assert_int_equal(rd(&f, RBR), 'n');
	assert_int_equal(rd(&f, RBR), '!');

	/* The caller's descriptors keep their flags (blocking). */
	assert_int_equal(fcntl(outp[1], F_GETFL) & O_NONBLOCK, 0);
	assert_int_equal(fcntl(in[0], F_GETFL) & O_NONBLOCK, 0);

	/* A full pipe: bytes wait in the device and go out from the loop. */
	int cap = fcntl(outp[1], F_GETPIPE_SZ);
	assert_true(cap > 0);
	char *fill = calloc(1, (size_t)cap);
	assert_non_null(fill);
	assert_int_equal(write(outp[1], fill, (size_t)cap), cap);
	wr(&f, RBR, 'L');
	wr(&f, RBR, 'Z');
	assert_int_equal(vmm_loop_run_once(loop, 0), 0); /* still full: nothing to do */
	size_t got = 0;
	while (got < (size_t)cap) {
		ssize_t n = read(outp[0], fill, (size_t)cap - got);
		assert_true(n > 0);
		got += (size_t)n;
	}
	assert_true(vmm_loop_run_once(loop, 1000) >= 1);
	assert_int_equal(read(outp[0], buf, sizeof buf), 2);
	assert_memory_equal(buf, "LZ", 2);
	free(fill);

	/* EOF on input: no longer watched, the loop goes quiet (no spinning). */
	close(in[1]);
	assert_true(vmm_loop_run_once(loop, 1000) >= 1);
	assert_int_equal(vmm_loop_run_once(loop, 0), 0);
	/* vmm_uart_input still works with the fd back end. */
	assert_int_equal(vmm_uart_input(u, "x", 1), 1);
	assert_int_equal(rd(&f, RBR), 'x');

	vmm_uart_destroy(u);
	vmm_loop_destroy(loop);
	vmm_bus_destroy(bus);
	close(in[0]);
	close(outp[0]);
	close(outp[1]);
}

/* A guest that reads nothing stops the reading of in_fd once 64 KiB wait. */
static void test_fd_input_backpressure(void **state)
{
	(void)state;
	int in[2];
	assert_int_equal(pipe(in), 0);
	assert_int_equal(fcntl(in[1], F_SETFL, O_NONBLOCK), 0);
	vmm_bus *bus;
	vmm_loop *loop;
	assert_int_equal(vmm_bus_create(&bus), 0);
	assert_int_equal(vmm_loop_create(&loop), 0);
	vmm_uart_opts o = VMM_UART_OPTS_INIT;
	o.in_fd = in[0];
	o.loop = loop;
	o.bus = bus;
	vmm_uart *u;
	assert_int_equal(vmm_uart_create(&u, NULL, &o), 0);
	struct fixture f = { .bus = bus, .uart = u };

	static char chunk[4096];
	size_t written = 0;
	for (int round = 0; round < 200; round++) {
		ssize_t n = write(in[1], chunk, sizeof chunk);
		if (n > 0)
			written += (size_t)n;
		if (vmm_loop_run_once(loop, 0) == 0 && n < 0)
			break; /* pipe full and the device no longer reads */
	}
	assert_true(written > 65536);
	/* The device holds at most 64 KiB + 1; the rest stays in the pipe. */
	assert_int_equal(vmm_uart_input(u, "x", 1), 0);
	/* Draining re-arms the reading. */
	for (int i = 0; i < 5000; i++)
		(void)rd(&f, RBR);
	assert_true(vmm_loop_run_once(loop, 1000) >= 1);

	vmm_uart_destroy(u);
	vmm_loop_destroy(loop);
	vmm_bus_destroy(bus);
	close(in[0]);
	close(in[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reset_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output, setup, teardown),
		cmocka_unit_test_setup_teardown(test_divisor_latch_and_scratch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_linux_probe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_fifo_and_hold, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hold_is_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_interrupts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_line_status_and_modem_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fifo_trigger_and_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wide_access, setup, teardown),
		cmocka_unit_test_setup_teardown(test_echo_from_output_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
		cmocka_unit_test(test_fd_backend),
		cmocka_unit_test(test_fd_input_backpressure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
