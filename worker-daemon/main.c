/*
 * order-worker: the program's start. main reads the options and the
 * config file, starts the log, takes the pidfile (with --daemon it goes to
 * the background) and hands over to the master (master.c), which forks
 * the worker processes (worker.c) and supervises them until it stops.
 */
#include <stddef.h>

#include "config.h"
#include "log.h"
#include "master.h"
#include "proc.h"

int
main(int argc, char **argv)
{
	struct config cfg;
	int status;

	if (!config_setup(&cfg, CONFIG_WORKER, argc, argv, NULL, &status))
		return status;
	log_init(cfg.progname, cfg.log_level);
	log_procinit("order-worker[master]");
	proc_start(&cfg);
	status = master_run(&cfg);
	proc_finish();
	return status;
}
