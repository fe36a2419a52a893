#include "notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>

static void
notify_send(const char *message)
{
	sd_notify(0, message);
}
#else
/* The datagram sd_notify sends, to the socket in $NOTIFY_SOCKET. */
static void
notify_send(const char *message)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	socklen_t len;
	int fd, saved_errno = errno;

	if (path == NULL || (path[0] != '/' && path[0] != '@') ||
	    strlen(path) >= sizeof(addr.sun_path))
		return;
	memcpy(addr.sun_path, path, strlen(path));
	if (path[0] == '@')
		addr.sun_path[0] = '\0';	/* an abstract socket */
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
	    strlen(path));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, message, strlen(message), MSG_NOSIGNAL,
	    (struct sockaddr *)&addr, len) < 0) {
		/* systemd went away: nothing to tell. */
	}
	close(fd);
	errno = saved_errno;
}
#endif

void
notify_ready(const char *status)
{
	char message[256];

	snprintf(message, sizeof(message), "READY=1\nSTATUS=%s", status);
	notify_send(message);
}

void
notify_stopping(void)
{
	notify_send("STOPPING=1\nSTATUS=stopping");
}

void
notify_watchdog(void)
{
	notify_send("WATCHDOG=1");
}

int64_t
notify_watchdog_interval_ms(void)
{
	const char *usec = getenv("WATCHDOG_USEC");
	const char *pid = getenv("WATCHDOG_PID");
	long long v;
	char *end;

	if (usec == NULL)
		return 0;
	/* A watchdog meant for another process (our parent) is not ours. */
	if (pid != NULL && strtoll(pid, NULL, 10) != (long long)getpid())
		return 0;
	errno = 0;
	v = strtoll(usec, &end, 10);
	if (errno != 0 || *end != '\0' || v <= 0)
		return 0;
	return v / 2000;
}
