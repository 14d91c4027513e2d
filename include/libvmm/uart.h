/* libvmm: a 16550A UART (the PC serial port), on port I/O.
 *
 * The eight registers at `port` (RBR/THR, IER, IIR/FCR, LCR, MCR, LSR, MSR, SCR, with the
 * divisor latch behind LCR.DLAB), 16-byte receive FIFO, the four interrupt sources in
 * their IIR priority order (line status, received data / FIFO timeout, transmitter empty,
 * modem status), loopback mode (MCR bit 4) as Linux's 8250 driver probes it, and the
 * scratch register. There is no timing model: a byte written to THR leaves at once (LSR
 * always says THRE and TEMT), and input is offered to the guest as fast as it reads it.
 * Enough for Linux's serial console (ttyS0, console=ttyS0) in both directions.
 *
 * Interrupts: the device drives its GSI as the 16550's INTR pin, gated by MCR.OUT2 as on
 * every PC: the line is high while an enabled interrupt is pending and OUT2 is set (and
 * not in loopback mode), low otherwise, through vmm_irq_set_line. The IOAPIC pin (or PIC
 * input) is programmed edge-triggered by the guest, as ACPI's IRQNoFlags and ISA
 * describe it; each new interrupt condition after the guest's handler has cleared the
 * previous ones is a new rising edge.
 *
 * Back ends:
 *  - VMM_UART_FD: output bytes are written to out_fd without blocking (what the fd does
 *    not take waits in a 64 KiB buffer, flushed from `loop`; beyond that, or without a
 *    loop, it is dropped: a stalled terminal must not stall the guest). Input is read
 *    from in_fd on `loop` (required if in_fd >= 0). The fds stay the caller's, and so
 *    do their flags: the device writes and reads through descriptors of its own (as
 *    virtio-console does; see virtio_console.h). Either fd may be -1; both -1 is a sink.
 *  - VMM_UART_CALLBACK: output goes to `output`, input comes from vmm_uart_input.
 * vmm_uart_input works with either back end. Input the guest has not taken yet waits in
 * a 64 KiB buffer behind the FIFO; when it is full, vmm_uart_input accepts less and the
 * input fd is not read (host memory never grows with guest slowness). What sits in the
 * FIFO when the guest resets it (FCR) is gone, as on the chip: Linux does that when it
 * opens or closes the port, so input offered before the guest's shell reads may lose
 * up to 16 bytes per reset.
 *
 * Threading: register accesses arrive on vCPU threads (several at once are fine: the
 * device has its own lock). Create and destroy while the VM's vCPUs and `loop` are not
 * running (or destroy from the loop thread), and destroy before the VM and the loop.
 */
#ifndef LIBVMM_UART_H
#define LIBVMM_UART_H

#include <libvmm/common.h>
#include <libvmm/loop.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vmm_uart vmm_uart;

#define VMM_UART_COM1_PORT 0x3f8u
#define VMM_UART_COM1_GSI 4u
#define VMM_UART_COM2_PORT 0x2f8u
#define VMM_UART_COM2_GSI 3u

typedef enum vmm_uart_backend {
	VMM_UART_FD = 0,
	VMM_UART_CALLBACK = 1,
} vmm_uart_backend;

/* Guest output for VMM_UART_CALLBACK: called on the vCPU thread that wrote THR, once per
 * byte, with the device locked (so calls are serialized and in order). It stalls that
 * vCPU while it runs: keep it short. It may call vmm_uart_input (e.g. to echo); no other
 * function of this device. */
typedef void (*vmm_uart_output_fn)(void *ctx, const void *data, size_t len);

typedef struct vmm_uart_opts {
	uint32_t size;              /* sizeof(vmm_uart_opts) */
	uint16_t port;              /* first of the 8 ports; 0 = VMM_UART_COM1_PORT */
	uint32_t gsi;               /* interrupt line; 0 = VMM_UART_COM1_GSI */
	vmm_uart_backend backend;
	int in_fd, out_fd;          /* VMM_UART_FD; -1 = none */
	vmm_loop *loop;             /* VMM_UART_FD: where in_fd is read and out_fd flushed */
	vmm_uart_output_fn output;  /* VMM_UART_CALLBACK: required */
	void *ctx;                  /* passed to output */
	/* The bus to register on; NULL = vmm_vm_bus(vm). With a bus of its own, `vm` may be
	 * NULL: the device then raises no interrupts (for tests and tools). */
	vmm_bus *bus;
} vmm_uart_opts;

#define VMM_UART_OPTS_INIT { sizeof(vmm_uart_opts), 0, 0, VMM_UART_FD, -1, -1, 0, 0, 0, 0 }

/* Creates the UART and registers its 8 ports. opts may be NULL (COM1, no back end).
 * Returns 0, -EINVAL (bad options: no VM and no bus, a port range past 0xffff, a GSI the
 * VM cannot route, a callback back end without `output`, in_fd without a loop), -EEXIST
 * (the ports are taken), -ENOMEM, or the errno of opening the fds. */
VMM_API int vmm_uart_create(vmm_uart **out, vmm_vm *vm, const vmm_uart_opts *opts);

/* Unregisters the ports, stops watching the fds, frees the device (the caller's fds stay
 * open). NULL is a no-op. */
VMM_API void vmm_uart_destroy(vmm_uart *uart);

/* Offers `len` bytes of input to the guest: they enter the receive FIFO as the guest
 * reads (raising the receive interrupt if enabled). Any thread, including from the
 * output callback. Returns the number of bytes accepted (less than len when the input
 * buffer is full), or -EINVAL. */
VMM_API long vmm_uart_input(vmm_uart *uart, const void *data, size_t len);

#ifdef __cplusplus
}
#endif
#endif
