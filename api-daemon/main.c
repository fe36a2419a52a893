/*
 * order-api: accept orders over HTTP, commit them to LMDB, ring the worker.
 */
#include <civetweb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "committer.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "store.h"

int
main(int argc, char **argv)
{
	struct http_context ctx = { 0 };
	struct committer *committer = NULL;
	struct http_server *srv = NULL;
	struct store *store = NULL;
	struct config cfg;
	sigset_t stop_signals;
	int rc, sig, status = 1;

	if (!config_setup(&cfg, CONFIG_API, argc, argv, &status))
		return status;
	log_init(cfg.progname, cfg.log_level);

	/*
	 * Every thread started from here on inherits this mask, so the
	 * stop signals reach only the sigwait below.
	 */
	/* A shell's background job starts with SIGINT ignored: undo that. */
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGTERM);
	sigaddset(&stop_signals, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
	signal(SIGPIPE, SIG_IGN);

	rc = store_open(&store, cfg.data_dir, cfg.map_size, 0);
	if (rc != 0) {
		log_error("could not open the LMDB environment in %s: %s",
		    cfg.data_dir, store_strerror(rc));
		goto out;
	}
	rc = committer_create(&committer, store, cfg.queue);
	if (rc != 0) {
		log_error("could not start the committer thread: %s",
		    strerror(rc));
		goto out_store;
	}
	mg_init_library(0);
	ctx.cfg = &cfg;
	ctx.store = store;
	ctx.committer = committer;
	atomic_init(&ctx.stopping, false);
	if (http_start(&srv, &ctx) != 0)
		goto out_committer;
	log_info("serving http://%s:%u/ with %u threads; data in %s, queue %s",
	    cfg.listen_addr, cfg.listen_port, cfg.threads, cfg.data_dir,
	    cfg.queue);

	do {
		rc = sigwait(&stop_signals, &sig);
	} while (rc != 0);
	log_info("stopping on %s: finishing the requests in hand",
	    sig == SIGTERM ? "SIGTERM" : "SIGINT");
	atomic_store(&ctx.stopping, true);
	status = 0;

	http_stop(srv);
out_committer:
	/* After the server: handlers still waiting on a commit get it. */
	committer_destroy(committer);
	mg_exit_library();
out_store:
	store_close(store);
out:
	if (status == 0)
		log_info("stopped");
	return status;
}
