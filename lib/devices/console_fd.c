/* virtio-console back-end plumbing: the byte ring, private non-blocking fds on the
 * caller's descriptors, SIGPIPE-free writes, and the pseudo-terminal.
 *
 * The caller's fds stay the caller's, and so should their open file descriptions: setting
 * O_NONBLOCK on a dup of stdout would make the caller's shell see EAGAIN. So the device
 * writes through a descriptor of its own where Linux allows one: a socket needs no flag
 * (send with MSG_DONTWAIT), a regular file never blocks, a pipe, FIFO or terminal is
 * reopened through /proc/self/fd with O_NONBLOCK. Only where that is impossible (a pty
 * master, which /proc would turn into a new pty; a missing /proc) does the device set
 * O_NONBLOCK on the shared description, as the header documents. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "console_internal.h"

/* ---- the ring ---- */

size_t con_ring_put(con_ring *r, const void *data, size_t len)
{
	const uint8_t *p = data;
	size_t room = CON_RING_SIZE - r->len, n = len < room ? len : room;
	for (size_t done = 0; done < n;) {
		size_t tail = (r->head + r->len) % CON_RING_SIZE;
		size_t run = CON_RING_SIZE - tail < n - done ? CON_RING_SIZE - tail : n - done;
		memcpy(&r->data[tail], p + done, run);
		r->len += run;
		done += run;
	}
	return n;
}

const uint8_t *con_ring_peek(const con_ring *r, size_t *len)
{
	size_t run = CON_RING_SIZE - r->head;
	*len = r->len < run ? r->len : run;
	return &r->data[r->head];
}

void con_ring_drop(con_ring *r, size_t n)
{
	if (n > r->len)
		n = r->len;
	r->head = (r->head + n) % CON_RING_SIZE;
	r->len -= n;
	if (r->len == 0)
		r->head = 0;
}

/* ---- private fds ---- */

static bool is_pty_master(int fd)
{
	unsigned int n;
	return ioctl(fd, TIOCGPTN, &n) == 0;
}

static int dup_nonblock_shared(int fd)
{
	int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (nfd < 0)
		return -errno;
	int fl = fcntl(nfd, F_GETFL);
	if (fl < 0 || fcntl(nfd, F_SETFL, fl | O_NONBLOCK) < 0) {
		int e = errno;
		close(nfd);
		return -e;
	}
	return nfd;
}

static int open_private(int fd, int acc, con_fd_kind *kind)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return -errno;
	if (S_ISSOCK(st.st_mode) || S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) {
		*kind = S_ISSOCK(st.st_mode) ? CON_FD_SOCKET : CON_FD_PLAIN;
		int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		return nfd < 0 ? -errno : nfd;
	}
	*kind = S_ISFIFO(st.st_mode) ? CON_FD_PIPE : CON_FD_PLAIN;
	if (!(S_ISCHR(st.st_mode) && is_pty_master(fd))) {
		char path[64];
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
		int nfd = open(path, acc | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (nfd >= 0)
			return nfd;
	}
	return dup_nonblock_shared(fd);
}

int con_fd_open_out(int fd, con_fd_kind *kind)
{
	return open_private(fd, O_WRONLY, kind);
}

int con_fd_open_in(int fd, con_fd_kind *kind)
{
	return open_private(fd, O_RDONLY, kind);
}

/* A write to a pipe without readers raises SIGPIPE, which by default kills the process;
 * a library must not install a handler, so the signal is blocked on this thread for the
 * write and, if the write raised it, taken back before unblocking. */
static ssize_t write_nosigpipe(int fd, const void *buf, size_t len)
{
	sigset_t pipe_set, old, pending;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	sigpending(&pending);
	bool was_pending = sigismember(&pending, SIGPIPE);
	ssize_t n = write(fd, buf, len);
	int e = errno;
	if (n < 0 && e == EPIPE && !was_pending) {
		struct timespec zero = { 0, 0 };
		while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = e;
	return n;
}

ssize_t con_fd_write(int fd, con_fd_kind kind, const void *buf, size_t len)
{
	switch (kind) {
	case CON_FD_SOCKET:
		return send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	case CON_FD_PIPE:
		return write_nosigpipe(fd, buf, len);
	default:
		return write(fd, buf, len);
	}
}

ssize_t con_fd_read(int fd, con_fd_kind kind, void *buf, size_t len)
{
	if (kind == CON_FD_SOCKET)
		return recv(fd, buf, len, MSG_DONTWAIT);
	return read(fd, buf, len);
}

/* ---- pseudo-terminal ---- */

int con_pty_open(int *master, int *slave, char *path, size_t path_len)
{
	*master = *slave = -1;
	int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0)
		return vmm_err(-errno, "virtio-console: posix_openpt: %s", strerror(errno));
	int s = -1, e = 0;
	const char *step = "grantpt";
	if (grantpt(m) != 0)
		goto fail;
	step = "unlockpt";
	if (unlockpt(m) != 0)
		goto fail;
	step = "ptsname_r";
	if ((e = ptsname_r(m, path, path_len)) != 0) {
		errno = e;
		goto fail;
	}
	step = "opening the slave";
	if ((s = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0)
		goto fail;
	/* Raw: the guest's bytes pass unchanged both ways (no echo, no line editing, no
	 * CR/LF translation); the guest's own console driver does any of that. */
	struct termios t;
	step = "setting raw mode";
	if (tcgetattr(s, &t) != 0)
		goto fail;
	cfmakeraw(&t);
	if (tcsetattr(s, TCSANOW, &t) != 0)
		goto fail;
	step = "setting O_NONBLOCK";
	int fl = fcntl(m, F_GETFL);
	if (fl < 0 || fcntl(m, F_SETFL, fl | O_NONBLOCK) < 0)
		goto fail;
	*master = m;
	*slave = s;
	return 0;
fail:
	e = errno ? errno : EIO;
	if (s >= 0)
		close(s);
	close(m);
	return vmm_err(-e, "virtio-console: pty: %s failed: %s", step, strerror(e));
}
