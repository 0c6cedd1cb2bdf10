/*
 * LD_PRELOAD interposer for running the real, unmodified hv_kvp_daemon in a
 * test (tests/interop.rs). Without it the daemon needs /dev/vmbus/hv_kvp
 * (a Hyper-V guest) and writes /var/lib/hyperv (root's real pools).
 *
 *   HVKVP_INTEROP_DIR     every path under /var/lib/hyperv is taken from
 *                         this directory instead
 *   HVKVP_INTEROP_SOCKET  opening /dev/vmbus/hv_kvp returns a SOCK_SEQPACKET
 *                         Unix socket connected to this path: the host
 *                         simulator, which plays the kernel driver's part of
 *                         the KVP message protocol (one message per read or
 *                         write, as the character device gives)
 *   HVKVP_INTEROP_LOG     the daemon's syslog messages go to stderr, so the
 *                         test can show what the daemon said (set to 1)
 *
 * Only the calls the daemon makes on those paths are covered: open, open64,
 * openat, openat64, fopen, fopen64, mkdir, access, stat, lstat. glibc's
 * fopen does not go through the exported open, hence both.
 *
 * Built by the test with: cc -shared -fPIC -O2 -o X.so preload.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#define POOL_DIR "/var/lib/hyperv"
#define DEVICE "/dev/vmbus/hv_kvp"

static __thread char mapped[PATH_MAX];

/* The path to use instead of `path`, or `path` itself. */
static const char *map(const char *path)
{
	const char *dir = getenv("HVKVP_INTEROP_DIR");
	size_t n = strlen(POOL_DIR);

	if (!path || !dir || strncmp(path, POOL_DIR, n) != 0 ||
	    (path[n] != '\0' && path[n] != '/'))
		return path;
	if ((size_t)snprintf(mapped, sizeof(mapped), "%s%s", dir, path + n) >=
	    sizeof(mapped))
		return path;
	return mapped;
}

static int is_device(const char *path)
{
	return path && getenv("HVKVP_INTEROP_SOCKET") && strcmp(path, DEVICE) == 0;
}

/* A socket connected to the host simulator, standing in for the device. */
static int open_device(int flags)
{
	const char *sock = getenv("HVKVP_INTEROP_SOCKET");
	struct sockaddr_un sa;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(sock) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sa.sun_path, sock);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | ((flags & O_CLOEXEC) ? SOCK_CLOEXEC : 0), 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

#define REAL(name) \
	static __typeof__(name) *real; \
	if (!real) \
		real = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

static mode_t mode_arg(int flags, va_list ap)
{
	if (flags & (O_CREAT | O_TMPFILE))
		return (mode_t)va_arg(ap, int);
	return 0;
}

/* open, open64, openat and openat64: the device, or the mapped path. */
#define OPEN(name, params, ...)                         \
	int name params                                 \
	{                                               \
		va_list ap;                             \
		mode_t mode;                            \
		REAL(name);                             \
                                                        \
		va_start(ap, flags);                    \
		mode = mode_arg(flags, ap);             \
		va_end(ap);                             \
		if (is_device(path))                    \
			return open_device(flags);      \
		return real(__VA_ARGS__, flags, mode);  \
	}

OPEN(open, (const char *path, int flags, ...), map(path))
OPEN(open64, (const char *path, int flags, ...), map(path))
OPEN(openat, (int dirfd, const char *path, int flags, ...), dirfd, map(path))
OPEN(openat64, (int dirfd, const char *path, int flags, ...), dirfd, map(path))

FILE *fopen(const char *path, const char *how)
{
	REAL(fopen);
	return real(map(path), how);
}

FILE *fopen64(const char *path, const char *how)
{
	REAL(fopen64);
	return real(map(path), how);
}

int mkdir(const char *path, mode_t mode)
{
	REAL(mkdir);
	return real(map(path), mode);
}

int access(const char *path, int how)
{
	REAL(access);
	return real(map(path), how);
}

int stat(const char *path, struct stat *st)
{
	REAL(stat);
	return real(map(path), st);
}

int lstat(const char *path, struct stat *st)
{
	REAL(lstat);
	return real(map(path), st);
}

static void log_line(int pri, const char *fmt, va_list ap)
{
	if (!getenv("HVKVP_INTEROP_LOG"))
		return;
	fprintf(stderr, "hv_kvp_daemon[%d] syslog(%d): ", (int)getpid(), pri & 7);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

/* syslog(3) as the daemon's fortified build calls it. */
void __syslog_chk(int pri, int flag, const char *fmt, ...)
{
	va_list ap;
	(void)flag;

	va_start(ap, fmt);
	log_line(pri, fmt, ap);
	va_end(ap);
}

void syslog(int pri, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line(pri, fmt, ap);
	va_end(ap);
}
