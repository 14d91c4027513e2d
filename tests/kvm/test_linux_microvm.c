/* Runs examples/microvm as a user would, on libvmm's minimal guest kernel and test
 * initramfs: 2 vCPUs, a disk, virtio-rng, the console on virtio-console (hvc0), and an
 * init told to expect 3 CPUs. The init then counts one failed check (nproc) and writes
 * that count to the exit port, so microvm must exit with status 1 and print the init's
 * lines, hvc0 carrying the console. Checks the example's command line, its console
 * wiring and the propagation of the guest's exit code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT_S 1200

extern char **environ;

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return NULL;
	size_t cap = 1 << 16, len = 0, n;
	char *buf = malloc(cap);
	while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (cap - len < 4096) {
			char *p = realloc(buf, cap * 2);
			if (!p)
				free(buf);
			buf = p;
			cap *= 2;
		}
	}
	fclose(f);
	if (buf)
		buf[len] = '\0';
	return buf;
}

static int copy_file(const char *from, const char *to)
{
	char cmd[1024];
	if (snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to) >= (int)sizeof cmd)
		return -1;
	return system(cmd) == 0 ? 0 : -1;
}

static void test_microvm_example(void **state)
{
	(void)state;
	const char *gdir = getenv("LIBVMM_GUEST_DIR");
	if (!gdir)
		gdir = LINUX_GUEST_DIR;
	char kernel[512], initrd[512], disk_src[512], dir[] = "/tmp/libvmm-microvm-XXXXXX";
	snprintf(kernel, sizeof kernel, "%s/microvm/vmlinux", gdir);
	snprintf(initrd, sizeof initrd, "%s/initramfs-microvm.cpio", gdir);
	snprintf(disk_src, sizeof disk_src, "%s/rootfs.ext4", gdir);
	assert_non_null(mkdtemp(dir));
	char disk[64], out[64];
	snprintf(disk, sizeof disk, "%s/disk.ext4", dir);
	snprintf(out, sizeof out, "%s/stdout", dir);
	assert_int_equal(copy_file(disk_src, disk), 0);

	char *argv[] = { MICROVM_PATH, "--kernel", kernel, "--initrd", initrd, "--cpus", "2",
			 "--mem", "128", "--disk", disk, "--rng", "--console", "virtio",
			 "--cmdline", "libvmm.cpus=3", NULL };
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	pid_t pid;
	time_t start = time(NULL);
	assert_int_equal(posix_spawn(&pid, MICROVM_PATH, &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	int status = 0;
	pid_t w;
	while ((w = waitpid(pid, &status, WNOHANG)) == 0 && time(NULL) - start < TIMEOUT_S)
		sleep(1);
	if (w == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	char *text = read_all(out);
	fprintf(stderr, "%s\ntest_linux_microvm: microvm ran %ld s, ", text ? text : "(no output)",
		(long)(time(NULL) - start));
	if (WIFEXITED(status))
		fprintf(stderr, "exit status %d\n", WEXITSTATUS(status));
	else
		fprintf(stderr, "killed by signal %d\n", WTERMSIG(status));
	unlink(disk);
	unlink(out);
	rmdir(dir);

	assert_true(w == pid);
	assert_non_null(text);
	/* hvc0 is the console: the kernel's log and the init's lines came through it. */
	assert_non_null(strstr(text, "Run /init as init process"));
	assert_non_null(strstr(text, "libvmm-init: checksum: ok"));
	assert_non_null(strstr(text, "libvmm-init: hwrng: ok virtio_rng."));
	assert_non_null(strstr(text, "libvmm-init: nproc: FAIL 2 (expected 3)"));
	assert_non_null(strstr(text, "libvmm-init: done failures=1"));
	/* ... and the init's failure count became microvm's exit status. */
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	free(text);
}

int main(void)
{
	if (access("/dev/kvm", R_OK | W_OK) != 0) {
		const char *req = getenv("LIBVMM_REQUIRE_KVM");
		fprintf(stderr, "test_linux_microvm: no usable /dev/kvm\n");
		return req && strcmp(req, "1") == 0 ? 1 : 77;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_microvm_example),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
