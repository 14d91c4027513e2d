/* virtio-console internals: the byte ring both directions use, and the fd / pty back-end
 * helpers (console_fd.c). */
#ifndef LIBVMM_DEVICES_CONSOLE_INTERNAL_H
#define LIBVMM_DEVICES_CONSOLE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../internal.h"

#define CON_RING_SIZE 65536u /* input waiting for the guest; output waiting for out_fd */

typedef struct con_ring {
	uint8_t data[CON_RING_SIZE];
	size_t head; /* index of the oldest byte */
	size_t len;
} con_ring;

/* Appends up to len bytes; returns how many fit. */
VMM_HIDDEN size_t con_ring_put(con_ring *r, const void *data, size_t len);
/* The oldest contiguous run of bytes (len 0 if empty). */
VMM_HIDDEN const uint8_t *con_ring_peek(const con_ring *r, size_t *len);
VMM_HIDDEN void con_ring_drop(con_ring *r, size_t n);

/* How writes to a back-end fd are made without blocking and without SIGPIPE. */
typedef enum con_fd_kind {
	CON_FD_PLAIN = 0, /* regular file, or an fd with O_NONBLOCK of its own */
	CON_FD_SOCKET,    /* send(MSG_DONTWAIT | MSG_NOSIGNAL) */
	CON_FD_PIPE,      /* non-blocking; SIGPIPE blocked around the write */
} con_fd_kind;

/* A private non-blocking fd for writing to the caller's `fd` (see console_fd.c for how
 * it avoids changing the caller's open file description). Returns the fd or -errno. */
VMM_HIDDEN int con_fd_open_out(int fd, con_fd_kind *kind);
/* A private fd for reading the caller's `fd` (a dup). Returns the fd or -errno. */
VMM_HIDDEN int con_fd_open_in(int fd, con_fd_kind *kind);
/* write/read that never blocks (EAGAIN instead) and never raises SIGPIPE.
 * Return what write(2)/read(2) return, errno set on -1. */
VMM_HIDDEN ssize_t con_fd_write(int fd, con_fd_kind kind, const void *buf, size_t len);
VMM_HIDDEN ssize_t con_fd_read(int fd, con_fd_kind kind, void *buf, size_t len);

/* Opens a pseudo-terminal in raw mode: the master (non-blocking) in *master, the device's
 * own slave fd in *slave (kept open so the master never reads a hang-up while no terminal
 * is attached), the slave's path in path. Returns 0 or -errno (message set). */
VMM_HIDDEN int con_pty_open(int *master, int *slave, char *path, size_t path_len);

#endif
