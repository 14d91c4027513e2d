/* hello: the smallest libvmm program. Loads a freestanding guest (tests/guests/hello.c)
 * into 32 MiB of RAM, gives it a message to checksum, runs it in 64-bit mode at CPL 3,
 * forwards what it writes to port 0xe9 to stdout and prints its exit code.
 * Usage: hello [guest.elf]  (default: the hello guest built with the project) */
#include <stdio.h>
#include <string.h>
#include <libvmm/libvmm.h>

#define RAM_SIZE (32u << 20)
#define INPUT_GPA 0x400000u /* the guest reads a u32 length and the bytes here */

/* The console: each byte the guest writes to port 0xe9 goes to stdout. */
static void console_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
	(void)opaque;
	(void)offset;
	for (unsigned i = 0; i < size; i++)
		putchar((int)(value >> (8 * i) & 0xff));
}

static int fail(const char *what, int err)
{
	fprintf(stderr, "hello: %s: %s (%s)\n", what, vmm_strerror(err), vmm_last_error());
	return 1;
}

int main(int argc, char **argv)
{
	const char *guest = argc > 1 ? argv[1] : GUEST_DIR "/hello.elf";
	static const char msg[] = "Hello from the host, checksum me!";
	vmm_vm *vm;
	vmm_vcpu *vcpu;
	vmm_elf_info elf;
	vmm_exit exit;
	int r, rc = 1;

	if ((r = vmm_vm_create(&vm, NULL)))
		return fail("creating the VM", r);
	vmm_mem_region_opts ram = VMM_MEM_REGION_OPTS_INIT;
	ram.len = RAM_SIZE;
	vmm_bus_ops console = { .write = console_write };
	uint32_t len = sizeof msg - 1;
	if ((r = vmm_mem_add_region(vmm_vm_mem(vm), &ram)) ||
	    (r = vmm_bus_register(vmm_vm_bus(vm), VMM_BUS_PIO, 0xe9, 1, &console, NULL)) ||
	    (r = vmm_elf_load_file(vmm_vm_mem(vm), guest, &elf)) ||
	    (r = vmm_mem_write(vmm_vm_mem(vm), INPUT_GPA, &len, sizeof len)) ||
	    (r = vmm_mem_write(vmm_vm_mem(vm), INPUT_GPA + 4, msg, len))) {
		fail("setting up memory, console and guest", r);
		goto out;
	}
	vmm_long_mode_opts lm = VMM_LONG_MODE_OPTS_INIT;
	lm.cpl = 3;
	lm.entry = elf.entry;
	lm.stack = 0x800000;
	if ((r = vmm_vcpu_create(&vcpu, vm, NULL)) || (r = vmm_vcpu_setup_long_mode(vcpu, &lm))) {
		fail("creating the vCPU", r);
		goto out;
	}
	if ((r = vmm_vcpu_run(vcpu, &exit))) {
		fail("running the guest", r);
		goto out;
	}
	fflush(stdout);
	if (exit.reason == VMM_EXIT_GUEST) {
		printf("guest exited with code %#llx (the CRC-32 of \"%s\")\n",
		       (unsigned long long)exit.u.guest.code, msg);
		rc = 0;
	} else if (exit.reason == VMM_EXIT_FAULT) {
		fprintf(stderr, "hello: guest fault: vector %u at rip %#llx\n", exit.u.fault.vector,
			(unsigned long long)exit.u.fault.rip);
	} else {
		fprintf(stderr, "hello: unexpected exit reason %d\n", (int)exit.reason);
	}
out:
	vmm_vm_destroy(vm);
	return rc;
}
