/* The 16550A UART (see include/libvmm/uart.h).
 *
 * State lives under one mutex: register accesses come from any vCPU thread, input from
 * the loop thread or the application's. Every change ends in uart_sync(), which moves
 * held-back input into the FIFO, recomputes the INTR line and re-arms the input fd.
 *
 * Input path: host bytes -> `hold` (64 KiB ring) -> rx FIFO (16 bytes, 1 with the FIFO
 * off) -> RBR. The FIFO never overruns from host input: bytes wait in `hold` until the
 * guest makes room, so a slow guest only stops the reading. Only loopback writes can
 * overrun (LSR.OE), as on the chip.
 *
 * Output path: THR -> callback, or -> out_fd (non-blocking, the rest queued in `out` and
 * flushed on the loop). Transmission is instant, so THR is empty again as soon as it was
 * written, and each write re-arms the THRE interrupt. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "console_internal.h"
#include "platform_internal.h"

#define UART_NPORTS 8u
#define UART_FIFO 16u
#define UART_READ_CHUNK 1024u

/* Register offsets. */
enum { REG_RBR = 0, REG_IER = 1, REG_IIR = 2, REG_LCR = 3, REG_MCR = 4, REG_LSR = 5, REG_MSR = 6, REG_SCR = 7 };

#define IER_RDI 0x01u  /* received data available */
#define IER_THRI 0x02u /* transmitter holding register empty */
#define IER_RLSI 0x04u /* receiver line status */
#define IER_MSI 0x08u  /* modem status */
#define IER_MASK 0x0fu /* the 16550A has no more (Linux probes bit 6 for XScale) */

#define IIR_NONE 0x01u
#define IIR_MSI 0x00u
#define IIR_THRI 0x02u
#define IIR_RDI 0x04u
#define IIR_RLSI 0x06u
#define IIR_TIMEOUT 0x0cu
#define IIR_FIFOS 0xc0u

#define FCR_ENABLE 0x01u
#define FCR_CLEAR_RX 0x02u

#define LCR_DLAB 0x80u

#define MCR_DTR 0x01u
#define MCR_RTS 0x02u
#define MCR_OUT1 0x04u
#define MCR_OUT2 0x08u
#define MCR_LOOP 0x10u
#define MCR_MASK 0x1fu

#define LSR_DR 0x01u
#define LSR_OE 0x02u
#define LSR_THRE 0x20u
#define LSR_TEMT 0x40u

#define MSR_DCTS 0x01u
#define MSR_DDSR 0x02u
#define MSR_TERI 0x04u
#define MSR_DDCD 0x08u
#define MSR_CTS 0x10u
#define MSR_DSR 0x20u
#define MSR_RI 0x40u
#define MSR_DCD 0x80u

struct vmm_uart {
	pthread_mutex_t lock;
	vmm_bus *bus;
	uint16_t port;
	bool registered;
	vmm_irq *irq; /* NULL: no interrupts (standalone bus, or no irqchip) */
	uint32_t gsi;
	bool level;   /* what INTR is (computed) */
	bool line;    /* what was last given to vmm_irq_set_line */

	/* Registers. */
	uint8_t ier, lcr, mcr, scr, dll, dlm;
	uint8_t lsr_err;   /* latched LSR error bits (OE), cleared by reading LSR */
	uint8_t msr_delta; /* MSR bits 0-3, cleared by reading MSR */
	bool fifo_on;
	uint8_t trigger;   /* receive FIFO trigger level: 1, 4, 8 or 14 */
	bool thri;         /* THRE interrupt pending */
	uint8_t rx[UART_FIFO];
	unsigned rx_head, rx_count;

	/* Back end. */
	vmm_uart_backend backend;
	vmm_uart_output_fn output;
	void *ctx;
	/* The thread inside `output` (0 if none): it holds `lock` already, so
	 * vmm_uart_input called from the callback must not take it again. */
	_Atomic unsigned long output_thread;
	vmm_loop *loop;
	int rfd, wfd; /* the device's own descriptors, -1 if none */
	con_fd_kind rkind, wkind;
	bool in_watched, out_watched, in_closed, out_closed;
	con_ring hold; /* input not yet in the FIFO */
	con_ring out;  /* output out_fd did not take yet */
};

/* ---- derived state ---- */

static unsigned fifo_cap(const vmm_uart *u)
{
	return u->fifo_on ? UART_FIFO : 1;
}

/* MSR bits 4-7: in loopback the modem outputs feed the inputs (RTS->CTS, DTR->DSR,
 * OUT1->RI, OUT2->DCD: Linux's probe checks exactly this); otherwise a terminal is
 * connected and ready. */
static uint8_t msr_status(const vmm_uart *u)
{
	if (!(u->mcr & MCR_LOOP))
		return MSR_CTS | MSR_DSR | MSR_DCD;
	return (uint8_t)(((u->mcr & MCR_RTS) ? MSR_CTS : 0) | ((u->mcr & MCR_DTR) ? MSR_DSR : 0) |
			 ((u->mcr & MCR_OUT1) ? MSR_RI : 0) | ((u->mcr & MCR_OUT2) ? MSR_DCD : 0));
}

static uint8_t lsr_value(const vmm_uart *u)
{
	return (uint8_t)((u->rx_count ? LSR_DR : 0) | u->lsr_err | LSR_THRE | LSR_TEMT);
}

/* The highest-priority pending interrupt, as IIR bits 0-3. */
static uint8_t iir_source(const vmm_uart *u)
{
	if ((u->ier & IER_RLSI) && u->lsr_err)
		return IIR_RLSI;
	if ((u->ier & IER_RDI) && u->rx_count)
		/* No timing model: data below the trigger level reports as the FIFO timeout
		 * at once, so any data interrupts (drivers treat both alike). */
		return u->fifo_on && u->rx_count < u->trigger ? IIR_TIMEOUT : IIR_RDI;
	if ((u->ier & IER_THRI) && u->thri)
		return IIR_THRI;
	if ((u->ier & IER_MSI) && u->msr_delta)
		return IIR_MSI;
	return IIR_NONE;
}

/* ---- back-end plumbing (called with the lock held) ---- */

static void uart_in_ready(void *ctx, int fd, uint32_t events);
static void uart_out_ready(void *ctx, int fd, uint32_t events);

/* The input fd is watched only while `hold` has room (and the fd is alive). Add/remove
 * rather than an empty interest set: epoll reports a hang-up even then, which would spin
 * the loop while we cannot read. */
static void in_watch(vmm_uart *u, bool on)
{
	if (on == u->in_watched || u->rfd < 0 || !u->loop || (on && u->in_closed))
		return;
	if (on ? vmm_loop_add(u->loop, u->rfd, VMM_LOOP_IN, uart_in_ready, u) == 0
	       : vmm_loop_remove(u->loop, u->rfd) == 0)
		u->in_watched = on;
}

static void out_watch(vmm_uart *u, bool on)
{
	if (on == u->out_watched || u->wfd < 0 || !u->loop)
		return;
	if (on ? vmm_loop_add(u->loop, u->wfd, VMM_LOOP_OUT, uart_out_ready, u) == 0
	       : vmm_loop_remove(u->loop, u->wfd) == 0)
		u->out_watched = on;
}

static void out_dead(vmm_uart *u)
{
	u->out_closed = true;
	u->out.len = u->out.head = 0;
	out_watch(u, false);
}

/* Writes what the fd takes now; returns the count (0 if it would block). */
static size_t out_try(vmm_uart *u, const uint8_t *p, size_t len)
{
	ssize_t n = con_fd_write(u->wfd, u->wkind, p, len);
	if (n >= 0)
		return (size_t)n;
	if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		out_dead(u);
	return 0;
}

static void out_flush(vmm_uart *u)
{
	while (u->out.len > 0 && !u->out_closed) {
		size_t run;
		const uint8_t *p = con_ring_peek(&u->out, &run);
		size_t n = out_try(u, p, run);
		if (n == 0)
			break;
		con_ring_drop(&u->out, n);
	}
	out_watch(u, u->out.len > 0 && !u->out_closed);
}

/* One transmitted byte. */
static void emit(vmm_uart *u, uint8_t b)
{
	if (u->backend == VMM_UART_CALLBACK) {
		atomic_store(&u->output_thread, (unsigned long)pthread_self());
		u->output(u->ctx, &b, 1);
		atomic_store(&u->output_thread, 0ul);
		return;
	}
	if (u->wfd < 0 || u->out_closed)
		return;
	if (u->out.len == 0 && out_try(u, &b, 1) == 1)
		return;
	if (u->out_closed)
		return;
	/* Behind earlier bytes, or the fd is full: queue (dropped when the queue is full;
	 * without a loop nothing would flush it, so drop at once). */
	if (u->loop)
		con_ring_put(&u->out, &b, 1);
	out_watch(u, u->out.len > 0);
}

/* Moves held input into the FIFO, re-arms the input fd, and drives INTR. Every path
 * that changes state ends here. */
static void uart_sync(vmm_uart *u)
{
	/* In loopback the serial input is disconnected: host input waits. */
	if (!(u->mcr & MCR_LOOP)) {
		while (u->rx_count < fifo_cap(u) && u->hold.len > 0) {
			size_t run;
			const uint8_t *p = con_ring_peek(&u->hold, &run);
			u->rx[(u->rx_head + u->rx_count) % UART_FIFO] = p[0];
			u->rx_count++;
			con_ring_drop(&u->hold, 1);
		}
	}
	in_watch(u, u->hold.len < CON_RING_SIZE);

	/* The PC wires INTR through a buffer enabled by OUT2, which loopback forces off. */
	u->level = iir_source(u) != IIR_NONE && (u->mcr & MCR_OUT2) && !(u->mcr & MCR_LOOP);
	if (u->irq && u->level != u->line && vmm_irq_set_line(u->irq, u->gsi, u->level) == 0)
		u->line = u->level;
}

/* ---- registers ---- */

static uint8_t rbr_read(vmm_uart *u)
{
	if (u->rx_count == 0)
		return 0;
	uint8_t b = u->rx[u->rx_head];
	u->rx_head = (u->rx_head + 1) % UART_FIFO;
	u->rx_count--;
	return b;
}

static void rx_clear(vmm_uart *u)
{
	u->rx_head = u->rx_count = 0;
}

static void thr_write(vmm_uart *u, uint8_t b)
{
	if (u->mcr & MCR_LOOP) {
		if (u->rx_count < fifo_cap(u)) {
			u->rx[(u->rx_head + u->rx_count) % UART_FIFO] = b;
			u->rx_count++;
		} else {
			u->lsr_err |= LSR_OE;
		}
	} else {
		emit(u, b);
	}
	u->thri = true; /* sent at once: THR is empty again */
}

static void fcr_write(vmm_uart *u, uint8_t v)
{
	static const uint8_t triggers[4] = { 1, 4, 8, 14 };
	bool on = v & FCR_ENABLE;
	if (on != u->fifo_on || (v & FCR_CLEAR_RX))
		rx_clear(u); /* switching the FIFOs on or off empties them */
	u->fifo_on = on;
	u->trigger = triggers[v >> 6];
}

static void mcr_write(vmm_uart *u, uint8_t v)
{
	uint8_t before = msr_status(u);
	u->mcr = v & MCR_MASK;
	uint8_t after = msr_status(u), changed = before ^ after;
	if (changed & MSR_CTS)
		u->msr_delta |= MSR_DCTS;
	if (changed & MSR_DSR)
		u->msr_delta |= MSR_DDSR;
	if ((before & MSR_RI) && !(after & MSR_RI))
		u->msr_delta |= MSR_TERI; /* trailing edge only */
	if (changed & MSR_DCD)
		u->msr_delta |= MSR_DDCD;
}

static uint8_t reg_read(vmm_uart *u, unsigned reg)
{
	bool dlab = u->lcr & LCR_DLAB;
	switch (reg) {
	case REG_RBR:
		return dlab ? u->dll : rbr_read(u);
	case REG_IER:
		return dlab ? u->dlm : u->ier;
	case REG_IIR: {
		uint8_t src = iir_source(u);
		if (src == IIR_THRI)
			u->thri = false; /* reading IIR acknowledges THRE */
		return (uint8_t)(src | (u->fifo_on ? IIR_FIFOS : 0));
	}
	case REG_LCR:
		return u->lcr;
	case REG_MCR:
		return u->mcr;
	case REG_LSR: {
		uint8_t v = lsr_value(u);
		u->lsr_err = 0;
		return v;
	}
	case REG_MSR: {
		uint8_t v = (uint8_t)(msr_status(u) | u->msr_delta);
		u->msr_delta = 0;
		return v;
	}
	default:
		return u->scr;
	}
}

static void reg_write(vmm_uart *u, unsigned reg, uint8_t v)
{
	bool dlab = u->lcr & LCR_DLAB;
	switch (reg) {
	case REG_RBR:
		if (dlab)
			u->dll = v;
		else
			thr_write(u, v);
		break;
	case REG_IER:
		if (dlab) {
			u->dlm = v;
		} else {
			/* Enabling THRE with THR empty raises it at once (Linux's start-up
			 * test relies on this). */
			if ((v & IER_THRI) && !(u->ier & IER_THRI))
				u->thri = true;
			u->ier = v & IER_MASK;
		}
		break;
	case REG_IIR:
		fcr_write(u, v);
		break;
	case REG_LCR:
		u->lcr = v;
		break;
	case REG_MCR:
		mcr_write(u, v);
		break;
	case REG_SCR:
		u->scr = v;
		break;
	default:
		break; /* LSR and MSR: factory test writes, ignored */
	}
}

/* The bus guarantees offset + size <= 8; a wide access is consecutive byte accesses. */
static uint64_t uart_bus_read(void *opaque, uint64_t offset, unsigned size)
{
	vmm_uart *u = opaque;
	uint64_t v = 0;
	pthread_mutex_lock(&u->lock);
	for (unsigned i = 0; i < size; i++)
		v |= (uint64_t)reg_read(u, (unsigned)offset + i) << (8 * i);
	uart_sync(u);
	pthread_mutex_unlock(&u->lock);
	return v;
}

static void uart_bus_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
	vmm_uart *u = opaque;
	pthread_mutex_lock(&u->lock);
	for (unsigned i = 0; i < size; i++)
		reg_write(u, (unsigned)offset + i, (uint8_t)(value >> (8 * i)));
	uart_sync(u);
	pthread_mutex_unlock(&u->lock);
}

/* ---- loop callbacks ---- */

static void uart_in_ready(void *ctx, int fd, uint32_t events)
{
	vmm_uart *u = ctx;
	uint8_t buf[UART_READ_CHUNK];
	(void)fd;
	(void)events;
	pthread_mutex_lock(&u->lock);
	size_t room = CON_RING_SIZE - u->hold.len;
	if (room > sizeof buf)
		room = sizeof buf;
	if (room > 0 && u->rfd >= 0) {
		ssize_t n = con_fd_read(u->rfd, u->rkind, buf, room);
		if (n > 0) {
			con_ring_put(&u->hold, buf, (size_t)n);
		} else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
			/* EOF or a dead fd: level-triggered, it would report forever. */
			in_watch(u, false);
			u->in_closed = true;
		}
	}
	uart_sync(u); /* also stops watching if `hold` is now full */
	pthread_mutex_unlock(&u->lock);
}

static void uart_out_ready(void *ctx, int fd, uint32_t events)
{
	vmm_uart *u = ctx;
	(void)fd;
	(void)events;
	pthread_mutex_lock(&u->lock);
	out_flush(u);
	pthread_mutex_unlock(&u->lock);
}

/* ---- public API ---- */

long vmm_uart_input(vmm_uart *u, const void *data, size_t len)
{
	if (!u || (!data && len))
		return vmm_err(-EINVAL, "vmm_uart_input: NULL argument");
	/* From inside the output callback this thread already holds the lock. */
	bool relock = atomic_load(&u->output_thread) != (unsigned long)pthread_self();
	if (relock)
		pthread_mutex_lock(&u->lock);
	size_t n = con_ring_put(&u->hold, data, len);
	uart_sync(u);
	if (relock)
		pthread_mutex_unlock(&u->lock);
	return (long)n;
}

bool vmm_uart_irq_level(vmm_uart *u)
{
	pthread_mutex_lock(&u->lock);
	bool level = u->level;
	pthread_mutex_unlock(&u->lock);
	return level;
}

static int open_fds(vmm_uart *u, const vmm_uart_opts *o)
{
	int r;
	if (o->in_fd >= 0) {
		if (!o->loop)
			return vmm_err(-EINVAL, "uart: in_fd needs a loop to be read on");
		if ((r = con_fd_open_in(o->in_fd, &u->rkind)) < 0)
			return vmm_err(r, "uart: in_fd %d: %s", o->in_fd, vmm_strerror(r));
		u->rfd = r;
	}
	if (o->out_fd >= 0) {
		if ((r = con_fd_open_out(o->out_fd, &u->wkind)) < 0)
			return vmm_err(r, "uart: out_fd %d: %s", o->out_fd, vmm_strerror(r));
		u->wfd = r;
	}
	return 0;
}

void vmm_uart_destroy(vmm_uart *u)
{
	if (!u)
		return;
	/* After unregister returns no register access runs or will run. */
	if (u->registered)
		vmm_bus_unregister(u->bus, VMM_BUS_PIO, u->port);
	in_watch(u, false);
	out_watch(u, false);
	if (u->irq && u->line)
		vmm_irq_set_line(u->irq, u->gsi, false);
	if (u->rfd >= 0)
		close(u->rfd);
	if (u->wfd >= 0)
		close(u->wfd);
	pthread_mutex_destroy(&u->lock);
	free(u);
}

int vmm_uart_create(vmm_uart **out, vmm_vm *vm, const vmm_uart_opts *opts)
{
	if (!out)
		return vmm_err(-EINVAL, "vmm_uart_create: out is NULL");
	*out = NULL;
	vmm_uart_opts o = VMM_UART_OPTS_INIT;
	if (opts && vmm_opts_copy(&o, sizeof o, opts))
		return vmm_err(-EINVAL, "vmm_uart_create: opts->size is too small");
	vmm_bus *bus = o.bus ? o.bus : vmm_vm_bus(vm);
	if (!bus)
		return vmm_err(-EINVAL, "vmm_uart_create: needs a VM or a bus");
	uint32_t port = o.port ? o.port : VMM_UART_COM1_PORT;
	if (port + UART_NPORTS - 1 > 0xffffu)
		return vmm_err(-EINVAL, "uart: ports %#x-%#x go past 0xffff", port, port + UART_NPORTS - 1);
	uint32_t gsi = o.gsi ? o.gsi : VMM_UART_COM1_GSI;
	if (gsi >= VMM_IRQ_MAX_GSI)
		return vmm_err(-EINVAL, "uart: GSI %u out of range", gsi);
	if (o.backend != VMM_UART_FD && o.backend != VMM_UART_CALLBACK)
		return vmm_err(-EINVAL, "uart: unknown back end %d", (int)o.backend);
	if (o.backend == VMM_UART_CALLBACK && !o.output)
		return vmm_err(-EINVAL, "uart: the callback back end needs an output function");

	vmm_uart *u = calloc(1, sizeof *u);
	if (!u)
		return vmm_err(-ENOMEM, "uart: out of memory");
	pthread_mutex_init(&u->lock, NULL);
	atomic_init(&u->output_thread, 0ul);
	u->bus = bus;
	u->port = (uint16_t)port;
	u->irq = vm ? vmm_vm_irq(vm) : NULL;
	u->gsi = gsi;
	u->rfd = u->wfd = -1;
	u->trigger = 1;
	u->backend = o.backend;
	u->output = o.output;
	u->ctx = o.ctx;
	u->loop = o.loop;
	int r = 0;
	if (o.backend == VMM_UART_FD)
		r = open_fds(u, &o);
	if (!r) {
		vmm_bus_ops ops = { .read = uart_bus_read, .write = uart_bus_write };
		r = vmm_bus_register(bus, VMM_BUS_PIO, port, UART_NPORTS, &ops, u);
		u->registered = r == 0;
	}
	if (r) {
		vmm_uart_destroy(u);
		return r;
	}
	pthread_mutex_lock(&u->lock);
	uart_sync(u); /* starts watching in_fd */
	pthread_mutex_unlock(&u->lock);
	*out = u;
	return 0;
}
