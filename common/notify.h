/*
 * notify: the systemd service-manager protocol (sd_notify(3)): READY=1,
 * STOPPING=1, STATUS= and the watchdog. Uses libsystemd's sd_notify when
 * built with it (-Dsystemd=enabled), else sends the same datagram itself.
 * Without $NOTIFY_SOCKET (no systemd, Type=simple) every call does
 * nothing. Call from the main process only: a unit's NotifyAccess=main
 * ignores its children. Thread-safe.
 */
#ifndef OP_NOTIFY_H
#define OP_NOTIFY_H

#include <stdint.h>

void notify_ready(const char *status);
void notify_stopping(void);
void notify_watchdog(void);
/*
 * How often to call notify_watchdog: half of $WATCHDOG_USEC, in ms, or 0
 * when no watchdog is set for this process.
 */
int64_t notify_watchdog_interval_ms(void);

#endif
