#include "proc.h"

#include <bsd/libutil.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

static struct pidfh *proc_pidfh;
static int proc_ready_fd = -1;	/* the write end the parent waits on */
static bool proc_quiet_when_ready;	/* stderr to /dev/null at proc_ready */

int
proc_start(struct config *cfg)
{
	int fds[2], devnull;
	pid_t pid, other;

	if (cfg->log_file[0] != '\0' && log_open_file(cfg->log_file) != 0)
		fatal("could not open log file %s", cfg->log_file);
	if (cfg->pidfile[0] != '\0') {
		proc_pidfh = pidfile_open(cfg->pidfile, 0644, &other);
		if (proc_pidfh == NULL) {
			if (errno == EEXIST)
				fatalx("already running, pid %d (pidfile %s)",
				    (int)other, cfg->pidfile);
			fatal("could not open pidfile %s", cfg->pidfile);
		}
	}
	if (!cfg->daemon) {
		if (proc_pidfh != NULL && pidfile_write(proc_pidfh) != 0)
			fatal("could not write pidfile %s", cfg->pidfile);
		return 0;
	}

	if (pipe2(fds, O_CLOEXEC) != 0)
		fatal("could not make a pipe");
	pid = fork();
	if (pid < 0)
		fatal("could not fork");
	if (pid > 0) {
		char byte;
		int status;

		/* Exit 0 once the child is ready, or as the child did. */
		close(fds[1]);
		if (read(fds[0], &byte, 1) == 1)
			_exit(0);
		if (waitpid(pid, &status, 0) == pid && WIFEXITED(status))
			_exit(WEXITSTATUS(status));
		_exit(1);
	}
	close(fds[0]);
	proc_ready_fd = fds[1];
	if (setsid() < 0)
		fatal("could not start a new session");
	if (chdir("/") != 0)
		fatal("could not change to /");
	devnull = open("/dev/null", O_RDWR);
	if (devnull < 0)
		fatal("could not open /dev/null");
	dup2(devnull, STDIN_FILENO);
	dup2(devnull, STDOUT_FILENO);
	if (devnull > STDERR_FILENO)
		close(devnull);
	/* Start-up errors still reach the terminal the parent waits on. */
	proc_quiet_when_ready = cfg->log_file[0] == '\0';
	if (proc_pidfh != NULL && pidfile_write(proc_pidfh) != 0)
		fatal("could not write pidfile %s", cfg->pidfile);
	return 0;
}

void
proc_ready(void)
{
	log_started();
	if (proc_quiet_when_ready) {
		int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);

		if (devnull >= 0) {
			dup2(devnull, STDERR_FILENO);
			close(devnull);
		}
	}
	if (proc_ready_fd < 0)
		return;
	if (write(proc_ready_fd, "", 1) != 1) {
		/* The parent is gone; nobody waits. */
	}
	close(proc_ready_fd);
	proc_ready_fd = -1;
}

void
proc_forget_pidfile(void)
{
	if (proc_pidfh != NULL)
		pidfile_close(proc_pidfh);
	proc_pidfh = NULL;
	if (proc_ready_fd >= 0)
		close(proc_ready_fd);
	proc_ready_fd = -1;
}

void
proc_finish(void)
{
	if (proc_pidfh != NULL)
		pidfile_remove(proc_pidfh);
	proc_pidfh = NULL;
}
