/* Unit tests for the device tree: the blob parses back with libfdt (header, nodes,
 * properties, phandles), memory nodes come from ranges or from a memory map, bounds and
 * bad options fail cleanly, and `dtc -I dtb -O dts` (Debian's device-tree-compiler,
 * installed by scripts/setup-debian.sh: a missing dtc fails) decompiles it without a
 * warning. */
#include <errno.h>
#include <fcntl.h>
#include <libfdt.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <libvmm/libvmm.h>

static const vmm_fdt_range two_ranges[2] = {
	{ 0, 0x80000000ull },
	{ 0x100000000ull, 0x40000000ull },
};
static const uint32_t two_ids[2] = { 0, 2 };
static const vmm_fdt_virtio_mmio two_virtio[2] = {
	{ 0xd0000000ull, 0x1000, 5, 0 },
	{ 0xd0001000ull, 0x200, 6, VMM_FDT_IRQ_LEVEL | VMM_FDT_IRQ_ACTIVE_LOW },
};

static vmm_fdt_opts full_opts(void)
{
	vmm_fdt_opts o = VMM_FDT_OPTS_INIT;
	o.flags = VMM_FDT_SERIAL;
	o.memory = two_ranges;
	o.nmemory = 2;
	o.ncpus = 2;
	o.apic_ids = two_ids;
	o.bootargs = "console=ttyS0 root=/dev/vda";
	o.initrd_start = 0x4000000;
	o.initrd_size = 0x123000;
	o.virtio = two_virtio;
	o.nvirtio = 2;
	return o;
}

static int node(const void *fdt, const char *path)
{
	int off = fdt_path_offset(fdt, path);
	if (off < 0)
		fail_msg("no node %s: %s", path, fdt_strerror(off));
	return off;
}

static const void *prop(const void *fdt, const char *path, const char *name, int len)
{
	int l = -1;
	const void *p = fdt_getprop(fdt, node(fdt, path), name, &l);
	if (!p)
		fail_msg("no property %s in %s", name, path);
	if (len >= 0 && l != len)
		fail_msg("%s/%s has %d bytes, expected %d", path, name, l, len);
	return p;
}

static uint32_t cell(const void *p, int i)
{
	fdt32_t v;
	memcpy(&v, (const char *)p + 4 * i, 4);
	return fdt32_to_cpu(v);
}

static uint64_t u64(const void *p, int i)
{
	return (uint64_t)cell(p, 2 * i) << 32 | cell(p, 2 * i + 1);
}

static void check_reg64(const void *fdt, const char *path, uint64_t base, uint64_t size)
{
	const void *reg = prop(fdt, path, "reg", 16);
	assert_int_equal(u64(reg, 0), base);
	assert_int_equal(u64(reg, 1), size);
}

static void test_tree_parses_back(void **state)
{
	(void)state;
	vmm_fdt_opts o = full_opts();
	static uint8_t buf[16384];
	size_t size = 0;
	assert_int_equal(vmm_fdt_build(&o, buf, sizeof buf, &size), 0);
	const void *fdt = buf;
	assert_int_equal(fdt_check_header(fdt), 0);
	assert_int_equal(fdt_totalsize(fdt), size);
	assert_true(size < sizeof buf);

	assert_int_equal(cell(prop(fdt, "/", "#address-cells", 4), 0), 2);
	assert_int_equal(cell(prop(fdt, "/", "#size-cells", 4), 0), 2);
	assert_string_equal(prop(fdt, "/chosen", "bootargs", -1), "console=ttyS0 root=/dev/vda");
	assert_int_equal(u64(prop(fdt, "/chosen", "linux,initrd-start", 8), 0), 0x4000000);
	assert_int_equal(u64(prop(fdt, "/chosen", "linux,initrd-end", 8), 0), 0x4123000);
	assert_string_equal(prop(fdt, "/chosen", "stdout-path", -1), "/isa@i0/serial@i3f8");

	check_reg64(fdt, "/memory@0", 0, 0x80000000ull);
	check_reg64(fdt, "/memory@100000000", 0x100000000ull, 0x40000000ull);
	assert_string_equal(prop(fdt, "/memory@0", "device_type", -1), "memory");

	assert_int_equal(cell(prop(fdt, "/cpus", "#address-cells", 4), 0), 1);
	assert_int_equal(cell(prop(fdt, "/cpus", "#size-cells", 4), 0), 0);
	assert_int_equal(cell(prop(fdt, "/cpus/cpu@0", "reg", 4), 0), 0);
	assert_int_equal(cell(prop(fdt, "/cpus/cpu@2", "reg", 4), 0), 2);
	assert_string_equal(prop(fdt, "/cpus/cpu@2", "device_type", -1), "cpu");
	int ncpu = 0, cpus = node(fdt, "/cpus"), sub;
	fdt_for_each_subnode(sub, fdt, cpus)
		ncpu++;
	assert_int_equal(ncpu, 2);

	/* The IOAPIC is the root's interrupt parent, through its phandle. */
	int ioapic = fdt_node_offset_by_compatible(fdt, -1, "intel,ce4100-ioapic");
	assert_true(ioapic >= 0);
	uint32_t parent = cell(prop(fdt, "/", "interrupt-parent", 4), 0);
	assert_int_equal(fdt_node_offset_by_phandle(fdt, parent), ioapic);
	assert_int_equal(fdt_get_phandle(fdt, ioapic), parent);
	assert_non_null(fdt_getprop(fdt, ioapic, "interrupt-controller", NULL));
	assert_int_equal(cell(fdt_getprop(fdt, ioapic, "#interrupt-cells", NULL), 0), 2);
	check_reg64(fdt, "/interrupt-controller@fec00000", 0xfec00000ull, 0x1000);
	assert_true(fdt_node_offset_by_compatible(fdt, -1, "intel,ce4100-lapic") >= 0);

	/* COM1 in I/O space on the isa bus. */
	const void *reg = prop(fdt, "/isa@i0/serial@i3f8", "reg", 12);
	assert_int_equal(cell(reg, 0), 1);
	assert_int_equal(cell(reg, 1), 0x3f8);
	assert_int_equal(cell(reg, 2), 8);
	const void *irq = prop(fdt, "/isa@i0/serial@i3f8", "interrupts", 8);
	assert_int_equal(cell(irq, 0), 4);
	assert_int_equal(cell(irq, 1), 0); /* edge rising */
	assert_int_equal(cell(prop(fdt, "/isa@i0/serial@i3f8", "clock-frequency", 4), 0), 1843200);
	assert_string_equal(prop(fdt, "/isa@i0/serial@i3f8", "compatible", -1), "ns16550a");

	/* virtio-mmio devices with their windows and interrupt senses. */
	int nvirtio = 0;
	for (int off = fdt_node_offset_by_compatible(fdt, -1, "virtio,mmio"); off >= 0;
	     off = fdt_node_offset_by_compatible(fdt, off, "virtio,mmio"))
		nvirtio++;
	assert_int_equal(nvirtio, 2);
	check_reg64(fdt, "/virtio_mmio@d0000000", 0xd0000000ull, 0x1000);
	check_reg64(fdt, "/virtio_mmio@d0001000", 0xd0001000ull, 0x200);
	irq = prop(fdt, "/virtio_mmio@d0000000", "interrupts", 8);
	assert_int_equal(cell(irq, 0), 5);
	assert_int_equal(cell(irq, 1), 0); /* edge rising */
	irq = prop(fdt, "/virtio_mmio@d0001000", "interrupts", 8);
	assert_int_equal(cell(irq, 0), 6);
	assert_int_equal(cell(irq, 1), 1); /* level low */
}

static void test_minimal_tree(void **state)
{
	(void)state;
	vmm_fdt_opts o = VMM_FDT_OPTS_INIT;
	static const vmm_fdt_range r = { 0, 0x10000000 };
	o.memory = &r;
	o.nmemory = 1;
	static uint8_t buf[4096];
	size_t size;
	assert_int_equal(vmm_fdt_build(&o, buf, sizeof buf, &size), 0);
	assert_int_equal(fdt_check_header(buf), 0);
	assert_true(fdt_path_offset(buf, "/isa@i0") < 0);
	assert_true(fdt_path_offset(buf, "/cpus/cpu@0") >= 0);
	assert_true(fdt_path_offset(buf, "/cpus/cpu@1") < 0);
	int chosen = fdt_path_offset(buf, "/chosen");
	assert_true(chosen >= 0);
	assert_null(fdt_getprop(buf, chosen, "bootargs", NULL));
	assert_null(fdt_getprop(buf, chosen, "linux,initrd-start", NULL));
	assert_true(fdt_node_offset_by_compatible(buf, -1, "virtio,mmio") < 0);
}

/* Memory nodes from a memory map: writable regions only. */
static void test_memory_from_map(void **state)
{
	(void)state;
	vmm_mem *mem = NULL;
	assert_int_equal(vmm_mem_create(&mem), 0);
	static const struct { uint64_t gpa, len; uint32_t flags; } map[] = {
		{ 0, 0x100000, 0 }, { 0x200000, 0x1000, VMM_MEM_READONLY }, { 0x400000, 0x200000, 0 },
	};
	for (unsigned i = 0; i < 3; i++) {
		vmm_mem_region_opts r = VMM_MEM_REGION_OPTS_INIT;
		r.gpa = map[i].gpa;
		r.len = map[i].len;
		r.flags = map[i].flags;
		r.backing = VMM_MEM_ANON;
		assert_int_equal(vmm_mem_add_region(mem, &r), 0);
	}
	vmm_fdt_opts o = VMM_FDT_OPTS_INIT;
	o.mem = mem;
	void *blob = NULL;
	size_t size = 0;
	assert_int_equal(vmm_fdt_build_alloc(&o, &blob, &size), 0);
	assert_non_null(blob);
	assert_int_equal(fdt_check_header(blob), 0);
	assert_int_equal(fdt_totalsize(blob), size);
	check_reg64(blob, "/memory@0", 0, 0x100000);
	check_reg64(blob, "/memory@400000", 0x400000, 0x200000);
	assert_true(fdt_path_offset(blob, "/memory@200000") < 0);
	free(blob);

	/* Explicit ranges win over the map. */
	static const vmm_fdt_range r = { 0x1000000, 0x1000000 };
	o.memory = &r;
	o.nmemory = 1;
	assert_int_equal(vmm_fdt_build_alloc(&o, &blob, &size), 0);
	assert_true(fdt_path_offset(blob, "/memory@0") < 0);
	check_reg64(blob, "/memory@1000000", 0x1000000, 0x1000000);
	free(blob);
	vmm_mem_destroy(mem);
}

static void test_small_buffer_and_big_tree(void **state)
{
	(void)state;
	vmm_fdt_opts o = full_opts();
	size_t need;
	static uint8_t buf[16384];
	assert_int_equal(vmm_fdt_build(&o, buf, sizeof buf, &need), 0);
	uint8_t *small = malloc(need + 64);
	assert_non_null(small);
	/* one byte short: -ENOSPC and nothing written past the given capacity */
	memset(small, 0xa5, need + 64);
	size_t size = 0;
	assert_int_equal(vmm_fdt_build(&o, small, need - 1, &size), -ENOSPC);
	for (size_t i = need - 1; i < need + 64; i++)
		assert_int_equal(small[i], 0xa5);
	assert_int_equal(vmm_fdt_build(&o, small, need, &size), 0);
	assert_int_equal(size, need);
	assert_memory_equal(small, buf, need);
	free(small);

	/* 1024 vCPUs and 256 devices: larger than the first allocation guess. */
	static vmm_fdt_virtio_mmio many[VMM_FDT_MAX_VIRTIO];
	for (unsigned i = 0; i < VMM_FDT_MAX_VIRTIO; i++)
		many[i] = (vmm_fdt_virtio_mmio){ 0xc0000000ull + 0x1000ull * i, 0x1000, 5 + i % 19, 0 };
	o.ncpus = VMM_FDT_MAX_CPUS;
	o.apic_ids = NULL;
	o.virtio = many;
	o.nvirtio = VMM_FDT_MAX_VIRTIO;
	void *blob = NULL;
	assert_int_equal(vmm_fdt_build_alloc(&o, &blob, &size), 0);
	assert_int_equal(fdt_check_full(blob, size), 0);
	assert_true(fdt_path_offset(blob, "/cpus/cpu@3ff") >= 0);
	assert_true(fdt_path_offset(blob, "/virtio_mmio@c00ff000") >= 0);
	free(blob);
}

static void test_bad_options(void **state)
{
	(void)state;
	vmm_fdt_opts o;
	vmm_fdt_range r[2];
	vmm_fdt_virtio_mmio v[2];
	uint32_t ids[2];
	static uint8_t buf[16384];
	size_t size;

#define BAD(setup)                                                          \
	do {                                                                \
		o = full_opts();                                            \
		memcpy(r, two_ranges, sizeof r);                            \
		memcpy(v, two_virtio, sizeof v);                            \
		o.memory = r;                                               \
		o.virtio = v;                                               \
		setup;                                                      \
		if (vmm_fdt_build(&o, buf, sizeof buf, &size) != -EINVAL)   \
			fail_msg("accepted: %s", #setup);                   \
		void *blob = (void *)1;                                     \
		assert_int_equal(vmm_fdt_build_alloc(&o, &blob, &size), -EINVAL); \
		assert_null(blob);                                          \
	} while (0)

	BAD(o.nmemory = 0);                          /* no ranges and no map */
	BAD(o.memory = NULL);
	BAD(o.nmemory = VMM_FDT_MAX_MEMORY + 1);
	BAD(r[0].size = 0);
	BAD(r[1].base = UINT64_MAX - 0x1000);
	BAD(r[1].base = 0x7fff0000);                 /* overlaps range 0 */
	BAD(o.ncpus = 0);
	BAD(o.ncpus = VMM_FDT_MAX_CPUS + 1; o.apic_ids = NULL);
	BAD(ids[0] = 3; ids[1] = 3; o.apic_ids = ids);
	BAD(o.flags = 1u << 9);
	BAD(o.initrd_start = UINT64_MAX - 0x10);
	BAD(o.nvirtio = VMM_FDT_MAX_VIRTIO + 1);
	BAD(o.virtio = NULL);
	BAD(v[0].size = 0);
	BAD(v[0].gsi = 24);
	BAD(v[1].flags = 1u << 4);
	BAD(v[1].base = 0xd0000800ull);             /* overlaps device 0 */
	BAD(o.size = 3);
#undef BAD
	o = full_opts();
	assert_int_equal(vmm_fdt_build(NULL, buf, sizeof buf, &size), -EINVAL);
	assert_int_equal(vmm_fdt_build(&o, NULL, sizeof buf, &size), -EINVAL);
	assert_int_equal(vmm_fdt_build(&o, buf, sizeof buf, NULL), -EINVAL);
	assert_int_equal(vmm_fdt_build_alloc(&o, NULL, &size), -EINVAL);
}

/* ---- dtc ----------------------------------------------------------------------------- */

static int run(const char *log, char *const argv[])
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0)
			_exit(126);
		dup2(fd, 1);
		dup2(fd, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		fail_msg("cannot open %s", path);
	static char text[1 << 20];
	size_t n = fread(text, 1, sizeof text - 1, f);
	fclose(f);
	text[n] = 0;
	return text;
}

static void test_dtc_decompiles(void **state)
{
	(void)state;
	char dir[] = "/tmp/libvmm-fdt-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char dtb[512], dts[512], log[512];
	snprintf(dtb, sizeof dtb, "%s/vm.dtb", dir);
	snprintf(dts, sizeof dts, "%s/vm.dts", dir);
	snprintf(log, sizeof log, "%s/dtc.log", dir);

	vmm_fdt_opts o = full_opts();
	void *blob;
	size_t size;
	assert_int_equal(vmm_fdt_build_alloc(&o, &blob, &size), 0);
	FILE *f = fopen(dtb, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(blob, 1, size, f), size);
	fclose(f);
	free(blob);

	char *const argv[] = { "dtc", "-I", "dtb", "-O", "dts", "-o", dts, dtb, NULL };
	int st = run(log, argv);
	if (st == 127)
		fail_msg("dtc not found: install device-tree-compiler (scripts/setup-debian.sh)");
	char *out = slurp(log);
	if (st != 0)
		fail_msg("dtc exited with %d:\n%s", st, out);
	/* dtc's checks (unit addresses vs reg, #cells, phandles...) print warnings. */
	if (strstr(out, "Warning") || strstr(out, "ERROR"))
		fail_msg("dtc complains:\n%s", out);
	char *text = slurp(dts);
	assert_non_null(strstr(text, "virtio_mmio@d0000000 {"));
	assert_non_null(strstr(text, "virtio_mmio@d0001000 {"));
	assert_non_null(strstr(text, "compatible = \"virtio,mmio\";"));
	assert_non_null(strstr(text, "bootargs = \"console=ttyS0 root=/dev/vda\";"));
	assert_non_null(strstr(text, "serial@i3f8 {"));
	assert_non_null(strstr(text, "compatible = \"intel,ce4100-ioapic\";"));

	/* And back: dtc compiles its own output again without complaint. */
	char dtb2[512];
	snprintf(dtb2, sizeof dtb2, "%s/vm2.dtb", dir);
	char *const argv2[] = { "dtc", "-I", "dts", "-O", "dtb", "-o", dtb2, dts, NULL };
	st = run(log, argv2);
	out = slurp(log);
	if (st != 0 || strstr(out, "Warning"))
		fail_msg("dtc -I dts exited with %d:\n%s", st, out);

	char *const rm[] = { "rm", "-rf", dir, NULL };
	assert_int_equal(run("/dev/null", rm), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tree_parses_back),
		cmocka_unit_test(test_minimal_tree),
		cmocka_unit_test(test_memory_from_map),
		cmocka_unit_test(test_small_buffer_and_big_tree),
		cmocka_unit_test(test_bad_options),
		cmocka_unit_test(test_dtc_decompiles),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
